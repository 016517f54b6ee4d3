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

  it('names the file when it cannot be read', () => {
    assert.throws(() => loadRuleFile(path.join(dir, 'missing.rules'), 4), /missing\.rules:0:0: cannot read rule file: ENOENT/);
  });
});
