// `nfqwall list` against `iptables -L`: the fixture rule files are loaded with counters (iptables-restore -c) in a
// throwaway namespace, and every table is listed with each flag combination by the kernel's iptables and by
// src/rules/list; the text must be identical. Root only.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { listTable } from '../../src/rules/list';
import { parseRuleset } from '../../src/rules/parse';
import { Netns, whyNoKernel } from './netns';

const FIXTURES = path.join(__dirname, '..', '..', '..', 'test', 'rules', 'fixtures');
const fixture = (name: string): string => {
  // From test/rules under tsx, from dist/test/rules when compiled.
  for (const dir of [path.join(__dirname, 'fixtures'), FIXTURES]) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return fs.readFileSync(p, 'utf8');
  }
  throw new Error(`fixture ${name} not found`);
};

const FLAGS: string[][] = [
  ['-v', '-n', '-x', '--line-numbers'],
  ['-n'],
  ['-v', '-n'],
  [],
  ['-v'],
  ['--line-numbers', '-v', '-x'],
];

describe('rules/list against iptables -L (root)', function () {
  this.timeout(120_000);
  const ns = new Netns('h10list');

  before(function () {
    const why = whyNoKernel();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    ns.create();
  });
  after(() => ns.destroy());

  for (const [file, family] of [
    ['list-v4.rules', 4],
    ['list-v4b.rules', 4],
    ['list-v6.rules', 6],
  ] as const) {
    it(`${file}: every table, every flag set, as iptables -L prints it`, () => {
      const text = fixture(file);
      const r = ns.restore(family, text, ['-c']);
      assert.equal(r.status, 0, r.stderr);
      const rs = parseRuleset(text, file, { family });
      const bin = family === 6 ? 'ip6tables' : 'iptables';
      let lines = 0;
      for (const table of rs.tables.keys())
        for (const flags of FLAGS) {
          const kernel = ns.exec([bin, '-t', table, '-L', ...flags]);
          assert.equal(kernel.status, 0, kernel.stderr);
          const ours = listTable(rs, table, {
            verbose: flags.includes('-v'),
            numeric: flags.includes('-n'),
            exact: flags.includes('-x'),
            lineNumbers: flags.includes('--line-numbers'),
          });
          assert.equal(ours, kernel.stdout, `${bin} -t ${table} -L ${flags.join(' ')}`);
          lines += kernel.stdout.split('\n').length;
        }
      assert.ok(lines > 50, `only ${lines} lines compared`);
      for (const table of rs.tables.keys()) ns.clear(family, table);
    });
  }
});
