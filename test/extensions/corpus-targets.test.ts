// Every target in the corpus' kernel renderings (iptables-save of the rules loaded into a namespace) must parse and
// print back to exactly the kernel's text.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { findTarget, TARGETS } from '../../src/extensions/index';
import type { Family, TableName } from '../../src/rules/model';
import { parseProtocol } from '../../src/rules/services';
import { pctx, uses } from './t-fixture';

import { CORPUS } from '../paths';
const MINE = [
  'ACCEPT', 'DROP', 'RETURN', 'REJECT', 'DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT', 'NETMAP', 'MARK', 'CONNMARK', 'LOG',
  'NFLOG', 'CT', 'NOTRACK', 'CHECKSUM', 'TCPMSS', 'TTL', 'HL', 'DSCP', 'TOS', 'SET', 'CLASSIFY', 'TPROXY', 'NFQUEUE',
  'TRACE', 'AUDIT', 'CONNSECMARK', 'SECMARK', 'IDLETIMER', 'LED', 'SYNPROXY', 'TEE',
];

interface Use {
  file: string;
  family: Family;
  table: TableName;
  chain: string;
  proto?: { value: number; negated: boolean };
  target: string;
  text: string;
}

function corpusUses(): Use[] {
  const out: Use[] = [];
  for (const f of fs.readdirSync(CORPUS).filter((n) => n.endsWith('.kernel-save')).sort()) {
    const family: Family = f.endsWith('-v6.kernel-save') ? 6 : 4;
    let table: TableName = 'filter';
    for (const line of fs.readFileSync(path.join(CORPUS, f), 'utf8').split('\n')) {
      if (line.startsWith('*')) table = line.slice(1) as TableName;
      const m = /^-A (\S+) (.*?)-j ([A-Z]+)(?: (.*))?$/.exec(line);
      if (!m || !MINE.includes(m[3])) continue;
      const pm = /(!? ?)-p (\S+)/.exec(m[2]);
      const u: Use = { file: f, family, table, chain: m[1], target: m[3], text: m[4] ?? '' };
      if (pm) u.proto = { value: parseProtocol(pm[2]), negated: pm[1].startsWith('!') };
      out.push(u);
    }
  }
  return out;
}

describe('targets against the corpus kernel renderings', () => {
  it('registers every target module under its name', () => {
    for (const name of MINE) assert.equal(findTarget(name)?.name, name, `${name} is registered`);
    assert.equal(new Set(TARGETS.map((t) => t.name)).size, TARGETS.length, 'no name twice');
  });

  const all = corpusUses();
  it('finds the corpus targets', () => {
    const names = new Set(all.map((u) => u.target));
    for (const n of ['REJECT', 'DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT', 'MARK', 'CONNMARK', 'LOG', 'NFLOG', 'CT', 'SET', 'TPROXY', 'CHECKSUM'])
      assert.ok(names.has(n), `corpus uses ${n}`);
    assert.ok(all.length > 300);
  });

  it('parses each and prints the kernel text back', () => {
    const failures: string[] = [];
    for (const u of all) {
      const ext = findTarget(u.target);
      if (!ext) {
        failures.push(`${u.file}: ${u.target} not registered`);
        continue;
      }
      const ctx = pctx({ family: u.family, table: u.table, chain: u.chain });
      if (u.proto) ctx.proto = u.proto;
      try {
        const got = ext.format(ext.parse(uses(ext, u.text), ctx), u.family);
        if (got !== u.text) failures.push(`${u.file}: -j ${u.target} ${u.text} => ${got}`);
      } catch (e) {
        failures.push(`${u.file}: -j ${u.target} ${u.text} threw ${String(e)}`);
      }
    }
    assert.deepEqual(failures, []);
  });
});
