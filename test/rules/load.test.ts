import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadRuleFile } from '../../src/rules/load';

describe('rules/load', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-load-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'counted.rules');
  fs.writeFileSync(file, '*filter\n:INPUT DROP [7:700]\n[3:180] -A INPUT -p tcp -j ACCEPT\nCOMMIT\n');

  it('starts every counter from zero, as iptables-restore without --counters does', () => {
    const input = loadRuleFile(file, 4).tables.get('filter')!.chains.get('INPUT')!;
    assert.deepEqual(input.counters, { packets: 0, bytes: 0 });
    assert.deepEqual(input.rules[0]!.counters, { packets: 0, bytes: 0 });
  });

  it('keeps the file\'s counters when asked, as iptables-restore --counters does', () => {
    const input = loadRuleFile(file, 4, { counters: true }).tables.get('filter')!.chains.get('INPUT')!;
    assert.deepEqual(input.counters, { packets: 7, bytes: 700 });
    assert.deepEqual(input.rules[0]!.counters, { packets: 3, bytes: 180 });
  });

  it('reads a file of several read steps whole, non-ASCII text included', () => {
    // 4 MiB a step: a file of about 9 MiB, its last rule after the last step's start.
    const filler = `# ${'é'.repeat(40)} ${'x'.repeat(900)}\n`.repeat(10_000);
    const text = `*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment "naïve" -j ACCEPT\n${filler}-A INPUT -s 198.18.0.1/32 -j DROP\nCOMMIT\n`;
    const big = path.join(dir, 'big.rules');
    fs.writeFileSync(big, text);
    assert.ok(fs.statSync(big).size > 8 << 20);
    const rules = loadRuleFile(big, 4).tables.get('filter')!.chains.get('INPUT')!.rules;
    assert.equal(rules.length, 2);
    assert.deepEqual(rules[0]!.matches[0]!.opts, { comment: 'naïve' });
    assert.equal(rules[1]!.loc.line, text.split('\n').length - 2);
  });

  it('names the file when it cannot be read', () => {
    assert.throws(() => loadRuleFile(path.join(dir, 'missing.rules'), 4), /missing\.rules:0:0: cannot read rule file: ENOENT/);
  });
});
