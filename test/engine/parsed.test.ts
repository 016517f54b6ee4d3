// The engine on rule files parsed by the real parser with the real extension modules.
import assert from 'node:assert/strict';
import { explain } from '../../src/cli/explain';
import { craftPacket } from '../../src/engine/craft';
import type { PacketInput } from '../../src/engine/decision';
import { Engine } from '../../src/engine/engine';
import { StaticHost } from '../../src/engine/host';
import { parsePacket } from '../../src/engine/packet';
import { EmptySets } from '../../src/engine/sets';
import { parseRuleset } from '../../src/rules/parse';
import type { Hook, Ruleset } from '../../src/rules/model';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { v4 } from './build';

function rules(text: string): Ruleset {
  return parseRuleset(text, 'test.rules', { family: 4 });
}

function tcp(hook: Hook, dport: number, opts: { src?: string; in?: string; out?: string; flags?: number } = {}): PacketInput {
  return {
    family: 4,
    data: craftPacket({
      family: 4,
      src: v4(opts.src ?? '198.18.0.1'),
      dst: v4('198.18.1.1'),
      proto: 6,
      sport: 40000,
      dport,
      tcpFlags: opts.flags ?? 0x02,
    }),
    meta: { hook, inIface: opts.in, outIface: opts.out, mark: 0, pktType: 'unicast' },
  };
}

function engineFor(rs: Ruleset): Engine {
  return new Engine({ rules4: rs, host: new StaticHost({ local: ['198.18.1.1'] }), sets: new EmptySets(), random31: () => 0 });
}

describe('engine on parsed rule files', () => {
  it('jump/RETURN, goto, the policy and counters', () => {
    const rs = rules(`*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
-A INPUT -p tcp -j A
-A INPUT -p tcp --dport 80 -j ACCEPT
-A A -s 10.0.0.0/8 -j RETURN
-A A -p tcp --dport 22 -g B
-A B -p tcp --dport 22 -s 198.18.0.0/15
COMMIT
`);
    const e = engineFor(rs);
    const http = tcp('INPUT', 80);
    assert.equal(e.decide(http).verdict, 'accept', 'A falls through, rule 2 accepts');
    assert.equal(e.decide(tcp('INPUT', 22)).verdict, 'drop', 'goto B, end of B → policy of INPUT');
    assert.equal(e.decide(tcp('INPUT', 80, { src: '10.1.1.1' })).verdict, 'accept', 'RETURN from A');
    const filter = rs.tables.get('filter')!;
    const input = filter.chains.get('INPUT')!;
    const b = filter.chains.get('B')!;
    assert.deepEqual(
      input.rules.map((r) => r.counters.packets),
      [3, 2],
    );
    assert.equal(b.rules[0].counters.packets, 1, 'count-only rule in B');
    assert.deepEqual(input.counters, { packets: 1, bytes: 40 });
  });

  it('mangle MARK then filter matches the mark; ACCEPT in mangle does not stop filter', () => {
    const rs = rules(`*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A INPUT -p tcp --dport 443 -j MARK --set-mark 0x7
-A INPUT -j ACCEPT
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m mark --mark 0x7 -j DROP
COMMIT
`);
    const e = engineFor(rs);
    const d = e.decide(tcp('INPUT', 443));
    assert.equal(d.verdict, 'drop');
    assert.equal(d.mark, 7);
    assert.equal(e.decide(tcp('INPUT', 80)).verdict, 'accept');
  });

  it('REJECT with tcp-reset returns a reset; the nat table with DNAT (not yet evaluable) is skipped', () => {
    const rs = rules(`*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 198.18.1.2:80
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 23 -j REJECT --reject-with tcp-reset
COMMIT
`);
    const e = engineFor(rs);
    const d = e.decide(tcp('INPUT', 23, { in: 'eth0' }));
    assert.equal(d.verdict, 'drop');
    assert.equal(d.replies.length, 1);
    const r = parsePacket(d.replies[0], 4);
    assert.equal(r.tcpFlags, 0x14);
    assert.equal(r.dport, 40000);
    assert.equal(e.decide(tcp('PREROUTING', 8080, { in: 'eth0' })).verdict, 'accept');
  });

  it('explain shows the NAT binding a first packet requests, and skips nat for an established one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-explain-'));
    try {
      const file = path.join(dir, 'nat.rules');
      fs.writeFileSync(file, '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 198.19.100.10/32 -p tcp --dport 80 -j DNAT --to-destination 198.19.2.2:8080\nCOMMIT\n');
      const first = explain({ rules: file, hook: 'PREROUTING', in: 'eth0', src: '198.18.0.2', dst: '198.19.100.10', dport: '80' });
      assert.match(first, /PREROUTING #1: -A PREROUTING -d 198\.19\.100\.10\/32 .*-j DNAT --to-destination 198\.19\.2\.2:8080/);
      assert.match(first, /^nat: {5}DST 198\.19\.2\.2:8080 /m);
      const later = explain({ rules: file, hook: 'PREROUTING', src: '198.18.0.2', dst: '198.19.100.10', dport: '80', ctstate: 'established' });
      assert.doesNotMatch(later, /^nat:/m);
      assert.doesNotMatch(later, /PREROUTING #1/);
      assert.throws(() => explain({ rules: file, hook: 'PREROUTING', src: '198.18.0.2', dst: '198.19.100.10', ctstate: 'OLD' }), /unknown connection state "OLD"/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('explain prints the path with rule text, the verdict and the mark', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-explain-'));
    try {
      const file = path.join(dir, 'r.rules');
      fs.writeFileSync(
        file,
        `*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:SSH - [0:0]
-A INPUT -p tcp -j SSH
-A SSH -s 10.0.0.0/8 -j RETURN
-A SSH -p tcp --dport 22 -j ACCEPT
COMMIT
`,
      );
      const out = explain({ rules: file, hook: 'INPUT', in: 'eth0', src: '10.0.0.1', dst: '198.18.1.1', dport: '22' });
      assert.match(out, /INPUT #1: -A INPUT -p tcp -j SSH/);
      assert.match(out, /-> jump/);
      assert.match(out, /SSH #1: -A SSH -s 10\.0\.0\.0\/8 -j RETURN/);
      assert.match(out, /INPUT: policy DROP/);
      assert.match(out, /verdict: DROP/);
      const ok = explain({ rules: file, hook: 'INPUT', src: '198.18.0.9', dst: '198.18.1.1', dport: '22', mark: '0x5' });
      assert.match(ok, /SSH #2: .*-> ACCEPT|SSH #2: -A SSH -p tcp -m tcp --dport 22 -j ACCEPT/);
      assert.match(ok, /verdict: ACCEPT/);
      assert.match(ok, /mark: {4}0x5$/m);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
