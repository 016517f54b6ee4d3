// The chain index on its own: which key each rule form gets (and which forms must stay wildcards), the candidate
// lists a lookup gives, and the engine with the index on equal to the walk in the cases the random test may miss.
import assert from 'node:assert/strict';
import { Candidates, ChainIndex } from '../../src/compile/chain-index';
import { compileRuleset } from '../../src/compile/compile';
import { dstKey, ruleKey, type RuleKey } from '../../src/compile/keys';
import { craftPacket } from '../../src/engine/craft';
import type { PacketInput } from '../../src/engine/decision';
import { Engine } from '../../src/engine/engine';
import { StaticHost } from '../../src/engine/host';
import { parsePacket } from '../../src/engine/packet';
import { EmptySets } from '../../src/engine/sets';
import type { PacketMeta } from '../../src/extensions/types';
import { parseIpAddr } from '../../src/rules/addr';
import type { Chain, Ruleset } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { kubeProxyRules } from '../../bench/parse';
import { assertSame, runSide } from './compare';

function ip(s: string): Uint8Array {
  const a = parseIpAddr(s, s.includes(':') ? 6 : 4);
  if (!a) throw new Error(s);
  return a;
}

function rulesOf(lines: string[], family: 4 | 6 = 4): Ruleset {
  return parseRuleset(`*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n${lines.map((l) => `-A FORWARD ${l}`).join('\n')}\nCOMMIT\n`, 't.rules', { family });
}

function chainOf(lines: string[], family: 4 | 6 = 4): Chain {
  const c = rulesOf(lines, family).tables.get('filter')?.chains.get('FORWARD');
  if (!c) throw new Error('no chain');
  return c;
}

function keyOf(line: string, family: 4 | 6 = 4): RuleKey {
  const r = chainOf([line], family).rules[0];
  if (!r) throw new Error('no rule');
  return ruleKey(r);
}

const VIP = dstKey(ip('198.18.0.10'));

describe('chain index: rule keys', () => {
  it("takes destination, protocol and port from kube-proxy's service rule", () => {
    assert.deepEqual(keyOf('-d 198.18.0.10/32 -p tcp -m comment --comment "ns/svc:p80 cluster IP" -m tcp --dport 80 -j ACCEPT'), {
      kind: 'dst',
      dst: VIP,
      proto: 6,
      port: 80,
    });
    assert.deepEqual(keyOf('-d 198.18.0.10/32 -p udp -m udp --dport 53 -j ACCEPT'), { kind: 'dst', dst: VIP, proto: 17, port: 53 });
    assert.deepEqual(keyOf('-d 198.18.0.10/32 -p sctp -m sctp --dport 9 -j ACCEPT'), { kind: 'dst', dst: VIP, proto: 132, port: 9 });
    assert.deepEqual(keyOf('-d 2001:db8::10/128 -p tcp -m tcp --dport 443 -j ACCEPT', 6), {
      kind: 'dst',
      dst: dstKey(ip('2001:db8::10')),
      proto: 6,
      port: 443,
    });
  });

  it('does not take the port from behind a match with state or a hotdrop', () => {
    for (const before of [
      '-m statistic --mode nth --every 2 --packet 0',
      '-m limit --limit 1/sec',
      '-m quota --quota 100',
      '-m recent --rcheck --name x',
      '-m multiport --dports 80,443',
    ]) {
      assert.deepEqual(keyOf(`-d 198.18.0.10/32 -p tcp ${before} -m tcp --dport 80 -j ACCEPT`), { kind: 'dst', dst: VIP, proto: 6 }, before);
    }
    // After the key the match never runs for a packet the key refuses: the port is usable.
    assert.deepEqual(keyOf('-d 198.18.0.10/32 -p tcp -m tcp --dport 80 -m statistic --mode nth --every 2 --packet 0 -j ACCEPT'), {
      kind: 'dst',
      dst: VIP,
      proto: 6,
      port: 80,
    });
  });

  it('takes no port from a negated or ranged --dport, nor from the xt form of tcp that hotdrops', () => {
    for (const m of ['-m tcp ! --dport 80', '-m tcp --dport 80:90', '-m tcp --dport 80 --tcp-option 2', '-m tcp --sport 80'])
      assert.deepEqual(keyOf(`-d 198.18.0.10/32 -p tcp ${m} -j ACCEPT`), { kind: 'dst', dst: VIP, proto: 6 }, m);
    assert.deepEqual(keyOf('-d 198.18.0.10/32 ! -p tcp -j ACCEPT'), { kind: 'dst', dst: VIP });
  });

  it('leaves negated, prefix and wildcard forms to every packet', () => {
    for (const l of [
      '! -d 198.18.0.10/32 -j ACCEPT',
      '-d 198.18.0.0/24 -p tcp --dport 80 -j ACCEPT',
      '-i eth+ -j ACCEPT',
      '! -i eth0 -j ACCEPT',
      '-m mark ! --mark 0x4000/0x4000 -j ACCEPT',
      '-m limit --limit 1/sec -m mark --mark 1 -j ACCEPT',
      '-p tcp -m tcp --dport 80 -j ACCEPT',
    ])
      assert.deepEqual(keyOf(l), { kind: 'wild' }, l);
  });

  it('keys marks by mask and value, and interfaces by exact name', () => {
    assert.deepEqual(keyOf('-m comment --comment x -m mark --mark 0x10/0xff -j ACCEPT'), { kind: 'mark', mask: 0xff, value: 0x10 });
    assert.deepEqual(keyOf('-m mark --mark 7 -j ACCEPT'), { kind: 'mark', mask: 0xffffffff, value: 7 });
    assert.deepEqual(keyOf('-i eth0 -j ACCEPT'), { kind: 'in', iface: 'eth0' });
    assert.deepEqual(keyOf('-o eth1 -j ACCEPT'), { kind: 'out', iface: 'eth1' });
  });
});

function drain(c: Candidates | undefined): number[] {
  assert.ok(c, 'the lookup declined');
  const out: number[] = [];
  for (let n = c.next(); n >= 0; n = c.next()) out.push(n);
  return out;
}

function meta(o: Partial<PacketMeta> = {}): PacketMeta {
  return { hook: 'FORWARD', mark: 0, pktType: 'unicast', inIface: 'eth0', outIface: 'eth1', ...o };
}

describe('chain index: lookups', () => {
  it('merges the lists a packet selects in rule order, from any position', () => {
    const c = new Candidates([[0, 5, 9], [2, 3], [7]]);
    c.seek(0);
    assert.deepEqual(drain(c), [0, 2, 3, 5, 7, 9]);
    c.seek(4);
    assert.deepEqual(drain(c), [5, 7, 9]);
    c.seek(10);
    assert.deepEqual(drain(c), []);
  });

  const lines = [
    /* 0 */ '-d 198.18.0.10/32 -p tcp -m tcp --dport 80 -j ACCEPT',
    /* 1 */ '-d 198.18.0.11/32 -p tcp -m tcp --dport 80 -j ACCEPT',
    /* 2 */ '-m limit --limit 1/sec -j ACCEPT',
    /* 3 */ '-d 198.18.0.10/32 -p tcp -m tcp --dport 443 -j ACCEPT',
    /* 4 */ '-d 198.18.0.10/32 -p udp -j ACCEPT',
    /* 5 */ '-d 198.18.0.10/32 -j ACCEPT',
    /* 6 */ '-m mark --mark 0x4000/0x4000 -j ACCEPT',
    /* 7 */ '-i eth0 -j ACCEPT',
    /* 8 */ '-o eth9 -j ACCEPT',
    /* 9 */ '-d 198.18.0.10/32 -p sctp -m sctp --dport 80 -j ACCEPT',
    /* 10 */ '-d 198.18.0.10/32 -p tcp -m tcp --dport 80 -j DROP',
  ];

  function lookup(proto: number, dport: number, m: PacketMeta, cut?: number): number[] {
    const idx = new ChainIndex(chainOf(lines));
    let data = craftPacket({ family: 4, src: ip('198.19.0.1'), dst: ip('198.18.0.10'), proto, sport: 1000, dport });
    if (cut !== undefined) data = data.slice(0, cut);
    const c = idx.lookup(parsePacket(data, 4), m);
    c?.seek(0);
    return drain(c);
  }

  it('gives exactly the rules whose keys the packet has, plus the wildcards', () => {
    assert.deepEqual(lookup(6, 80, meta()), [0, 2, 5, 7, 10]);
    assert.deepEqual(lookup(6, 443, meta({ mark: 0x4001 })), [2, 3, 5, 6, 7]);
    assert.deepEqual(lookup(17, 80, meta({ inIface: 'eth1', outIface: 'eth9' })), [2, 4, 5, 8]);
  });

  it('offers every port-keyed sctp rule when the sctp header is cut short (its match hotdrops), no tcp one', () => {
    assert.deepEqual(lookup(132, 443, meta(), 20 + 8), [2, 5, 7, 9]);
    assert.deepEqual(lookup(132, 443, meta()), [2, 5, 7]);
    assert.deepEqual(lookup(6, 80, meta(), 20 + 2), [2, 5, 7]);
  });

  it('declines an IPv6 packet whose header chain is broken (-p would hotdrop)', () => {
    const idx = new ChainIndex(chainOf(['-d 2001:db8::10/128 -p tcp -m tcp --dport 80 -j ACCEPT'], 6));
    const data = craftPacket({ family: 6, src: ip('2001:db8::1'), dst: ip('2001:db8::10'), proto: 6, sport: 1, dport: 80 }).slice(0, 42);
    data[6] = 0;
    assert.equal(idx.lookup(parsePacket(data, 6), meta()), undefined);
    const whole = craftPacket({ family: 6, src: ip('2001:db8::1'), dst: ip('2001:db8::10'), proto: 6, sport: 1, dport: 80 });
    assert.deepEqual(drain(idx.lookup(parsePacket(whole, 6), meta())), [0]);
  });
});

function tcpTo(dst: string, dport: number, hook: PacketInput['meta']['hook'] = 'FORWARD'): PacketInput {
  return {
    family: 4,
    data: craftPacket({ family: 4, src: ip('198.19.0.1'), dst: ip(dst), proto: 6, sport: 40000, dport }),
    meta: { hook, mark: 0, pktType: 'unicast', inIface: 'eth0', outIface: hook === 'FORWARD' ? 'eth1' : undefined },
  };
}

describe('chain index: the engine with it', () => {
  it('looks the chain up again after a target changes the mark', () => {
    const pad = Array.from({ length: 10 }, (_, k) => `-d 198.18.1.${k}/32 -j ACCEPT`);
    const text = `*filter\n:FORWARD ACCEPT [0:0]\n${[...pad, '-j MARK --set-mark 5', '-m mark --mark 5 -j DROP'].map((l) => `-A FORWARD ${l}`).join('\n')}\nCOMMIT\n`;
    const packets = [tcpTo('198.18.2.1', 80)];
    const indexed = runSide(text, 4, packets, true);
    assert.equal((indexed.decisions[0] as { verdict: string }).verdict, 'drop');
    assertSame(runSide(text, 4, packets, false), indexed, packets, 'mark');
  });

  it('stops a goto loop at the same rule, with the same counters, as the walk', function () {
    this.timeout(60_000);
    const pad = (c: string): string[] => Array.from({ length: 30 }, (_, k) => `-A ${c} -d 198.18.1.${k}/32 -j ACCEPT`);
    const text = `*filter\n:FORWARD ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A FORWARD -j A\n${[...pad('A'), '-A A -g B', ...pad('B'), '-A B -j ACCEPT'].join('\n')}\nCOMMIT\n`;
    // The validator refuses loops, so close B -> A by hand, as an unvalidated ruleset could.
    const loop = (rs: Ruleset): void => {
      const b = rs.tables.get('filter')?.chains.get('B');
      const last = b?.rules[b.rules.length - 1];
      if (!last) throw new Error('no rule');
      last.target = { kind: 'chain', chain: 'A', goto: true, loc: last.loc };
    };
    const run = (index: boolean): { d: unknown; counts: number[] } => {
      const rs = parseRuleset(text, 'loop.rules', { family: 4 });
      loop(rs);
      const e = new Engine({ rules4: rs, host: new StaticHost(), sets: new EmptySets(), index: index ? { minRules: 1 } : false });
      const d = e.decide(tcpTo('198.18.2.1', 80), { trace: true });
      const counts = [...(rs.tables.get('filter')?.chains.values() ?? [])].flatMap((c) => c.rules.map((r) => r.counters.packets));
      return { d, counts };
    };
    const walked = run(false);
    const indexed = run(true);
    assert.equal((walked.d as { verdict: string }).verdict, 'drop');
    assert.deepStrictEqual(indexed.d, walked.d);
    assert.deepStrictEqual(indexed.counts, walked.counts);
  });

  it('indexes kube-proxy KUBE-SERVICES by default and DNATs the last of 1,000 services as the walk does', () => {
    const text = kubeProxyRules(1000, 2);
    const rs = parseRuleset(text, 'kube.rules', { family: 4 });
    const services = rs.tables.get('nat')?.chains.get('KUBE-SERVICES');
    assert.ok(services);
    const compiled = compileRuleset(rs);
    assert.equal(compiled.chains.get(services)?.stats.dst, 1000);
    const vip = '172.30.3.231'; // service 999
    const packets = [tcpTo(vip, 80, 'PREROUTING'), tcpTo(vip, 81, 'PREROUTING'), tcpTo('172.30.0.0', 80, 'PREROUTING')];
    for (const p of packets) {
      p.ct = { state: 'NEW', status: 0, mark: 0, direction: 'ORIGINAL', orig: conn(p), reply: conn(p), expiresSeconds: 60, zone: 0 };
    }
    const walked = runSide(text, 4, packets, false);
    const indexed = runSide(text, 4, packets, true, { minRules: undefined });
    assertSame(walked, indexed, packets, 'kube-proxy');
    const nat = (indexed.decisions[0] as { ct?: { nat?: { minAddr?: Uint8Array }[] } }).ct?.nat?.[0];
    assert.deepEqual(nat?.minAddr, ip('10.0.7.206')); // endpoint 1998 or 1999, picked by random31
  });
});

function conn(p: PacketInput): { src: Uint8Array; dst: Uint8Array; protocol: number; sport: number; dport: number } {
  const d = p.data;
  return { src: d.slice(12, 16), dst: d.slice(16, 20), protocol: 6, sport: 40000, dport: (d[22] << 8) | d[23] };
}
