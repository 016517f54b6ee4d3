// The README's metrics reference is what the daemon registers today: regenerate it with
// `npx tsx test/readme/metrics-table.ts` after adding or changing a metric in src/daemon/metrics.ts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { BEGIN, END, metricsTable, readmePath, registeredMetrics, replaceGenerated } from './metrics-table';

describe('README metrics reference', () => {
  const readme = fs.readFileSync(readmePath(), 'utf8');

  it('is the generator output (run `npx tsx test/readme/metrics-table.ts` after changing a metric)', () => {
    const b = readme.indexOf(BEGIN);
    const e = readme.indexOf(END);
    assert.ok(b >= 0 && e > b, 'README.md lost its metrics-table markers');
    assert.equal(readme.slice(b, e + END.length), metricsTable());
  });

  it('documents every nfqwall_* metric the daemon registers, once, with its labels', () => {
    const { own } = registeredMetrics();
    assert.ok(own.length >= 20, `only ${own.length} nfqwall metrics registered`);
    for (const m of own) {
      const rows = readme.split('\n').filter((l) => l.startsWith(`| \`${m.name}\` |`));
      assert.equal(rows.length, 1, `README rows for ${m.name}`);
      for (const l of m.labels) assert.ok(rows[0]!.includes(l), `${m.name}: label ${l} not in its row`);
    }
  });

  it('names no nfqwall_* metric the daemon does not register', () => {
    const known = new Set(registeredMetrics().own.map((m) => m.name));
    for (const [name] of readme.matchAll(/\bnfqwall_[a-z_]*[a-z](?![a-z_*])/g)) {
      // Prefix forms (`nfqwall_queue_*`) are not matched: the lookahead leaves them out.
      assert.ok(known.has(name), `README mentions ${name}, which src/daemon/metrics.ts does not register`);
    }
  });

  it('replaces only what is between the markers', () => {
    assert.equal(replaceGenerated(`a\n${BEGIN}\nold\n${END}\nb\n`, `${BEGIN}\nnew\n${END}`), `a\n${BEGIN}\nnew\n${END}\nb\n`);
    assert.throws(() => replaceGenerated('none', 'x'), /no metrics table markers/);
  });
});
