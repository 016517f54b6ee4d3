// The README's extension table is generated from the registry: it must be what the generator prints today.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { BEGIN, END, extensionTable, readmePath, replaceGenerated } from '../../scripts/gen-extension-table';
import { MATCHES, TARGETS } from '../../src/extensions/index';

describe('README extension table', () => {
  const readme = fs.readFileSync(readmePath(), 'utf8');

  it('is the generator output (run `npx tsx scripts/gen-extension-table.ts` after changing an extension)', () => {
    const b = readme.indexOf(BEGIN);
    const e = readme.indexOf(END);
    assert.ok(b >= 0 && e > b, 'README.md lost its generated-table markers');
    assert.equal(readme.slice(b, e + END.length), extensionTable());
  });

  it('has one row per registered match and target, saying whether it is enforced and why not', () => {
    const table = extensionTable();
    for (const ext of [...MATCHES, ...TARGETS]) {
      const name = ext.kind === 'match' ? `-m ${ext.name}` : `-j ${ext.name}`;
      const rows = table.split('\n').filter((l) => l.startsWith(`| \`${name}\` |`));
      assert.equal(rows.length, 1, `rows for ${name}`);
      const cells = rows[0]!.split(' | ');
      if (ext.unsupported === undefined) assert.match(cells[3] ?? '', /^yes/, `${name} is enforced`);
      else {
        assert.equal(cells[3], 'no', `${name} is not enforced`);
        // The reason without the leading "name: " the registry puts there, but otherwise its words.
        const reason = ext.unsupported.replace(`${ext.name}: `, '').split(/\s+/).slice(0, 4).join(' ');
        assert.ok(rows[0]!.includes(reason), `${name}: the reason "${ext.unsupported}" is not in its row:\n${rows[0]}`);
      }
    }
  });

  it('replaces only what is between the markers', () => {
    const text = `before\n${BEGIN}\nold\n${END}\nafter\n`;
    assert.equal(replaceGenerated(text, `${BEGIN}\nnew\n${END}`), `before\n${BEGIN}\nnew\n${END}\nafter\n`);
    assert.throws(() => replaceGenerated('no markers', 'x'), /has no/);
  });
});
