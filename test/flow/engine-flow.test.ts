// The engine's flow-cache answers (Decision.flowStable, Decision.counted): which decisions every packet of a
// connection would get again, and exactly which counters a decision moved.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { craftPacket } from '../../src/engine/craft';
import type { PacketInput } from '../../src/engine/decision';
import { Engine } from '../../src/engine/engine';
import { StaticHost } from '../../src/engine/host';
import { EmptySets } from '../../src/engine/sets';
import type { ConnInfo, CtState } from '../../src/extensions/types';
import type { Counters, Family, Hook, Ruleset } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { parseIpAddr } from '../../src/rules/addr';
import { kubeProxyRules } from '../../scripts/gen-kube-proxy';
import { Rng } from '../rng';

function addr(text: string, family: Family): Uint8Array {
  const a = parseIpAddr(text, family);
  if (!a) throw new Error(`not an address: ${text}`);
  return a;
}

export interface PacketSpec {
  family?: Family;
  hook: Hook;
  src?: string;
  dst?: string;
  proto?: number;
  sport?: number;
  dport?: number;
  tcpFlags?: number;
  in?: string;
  out?: string;
  mark?: number;
  state?: CtState;
  ctmark?: number;
}

export function packet(p: PacketSpec): PacketInput {
  const family = p.family ?? 4;
  const src = addr(p.src ?? (family === 4 ? '198.18.0.1' : '2001:db8::1'), family);
  const dst = addr(p.dst ?? (family === 4 ? '198.18.1.1' : '2001:db8:1::1'), family);
  const proto = p.proto ?? 6;
  const sport = p.sport ?? 40000;
  const dport = p.dport ?? 80;
  const data = craftPacket({ family, src, dst, proto, sport, dport, tcpFlags: p.tcpFlags ?? 0x10 });
  const t = { src, dst, protocol: proto, sport, dport };
  const back = { src: dst, dst: src, protocol: proto, sport: dport, dport: sport };
  const ct: ConnInfo = {
    state: p.state ?? 'ESTABLISHED',
    status: 0xe,
    mark: p.ctmark ?? 0,
    direction: 'ORIGINAL',
    orig: t,
    reply: back,
    expiresSeconds: 100,
    zone: 0,
  };
  return { family, data, meta: { hook: p.hook, inIface: p.in, outIface: p.out, mark: p.mark ?? 0, pktType: 'unicast' }, ct };
}

export function engineFor(rules: Ruleset, index = true): Engine {
  const opts = { host: new StaticHost({ local: ['198.18.1.1/32'] }), sets: new EmptySets(), random31: () => 5, index };
  return new Engine(rules.family === 4 ? { ...opts, rules4: rules } : { ...opts, rules6: rules });
}

/** Every counter object of the ruleset (rules and chain policies). */
function allCounters(rs: Ruleset): Counters[] {
  const out: Counters[] = [];
  for (const t of rs.tables.values())
    for (const c of t.chains.values()) {
      out.push(c.counters);
      for (const r of c.rules) out.push(r.counters);
    }
  return out;
}

/**
 * decide() with `flow`, and checks that Decision.counted lists exactly the counters that moved, each as many times
 * as it moved, with the packet's length in bytes each time. Returns the decision.
 */
export function decideChecked(e: Engine, rs: Ruleset, input: PacketInput): ReturnType<Engine['decide']> {
  const counters = allCounters(rs);
  const before = counters.map((c) => [c.packets, c.bytes] as const);
  const d = e.decide(input, { flow: true });
  assert.ok(d.counted !== undefined, 'counted is given with flow');
  assert.equal(typeof d.flowStable, 'boolean');
  const listed = new Map<Counters, number>();
  for (const c of d.counted) listed.set(c, (listed.get(c) ?? 0) + 1);
  const length = input.data.length;
  counters.forEach((c, i) => {
    const moved = c.packets - before[i]![0];
    assert.equal(listed.get(c) ?? 0, moved, `counter #${i} moved ${moved} times, listed ${listed.get(c) ?? 0}`);
    assert.equal(c.bytes - before[i]![1], moved * length);
    listed.delete(c);
  });
  assert.equal(listed.size, 0, 'counted names only counters of the ruleset');
  return d;
}

function rules(text: string, family: Family = 4): Ruleset {
  return parseRuleset(text, 'flow.rules', { family });
}

/** A filter table with `body`'s rules; the user chains they append to are declared. */
function F(body: string, policy = 'ACCEPT'): string {
  const user = new Set([...body.matchAll(/^-A (\S+)/gm)].map((m) => m[1]!).filter((c) => !['INPUT', 'FORWARD', 'OUTPUT'].includes(c)));
  const decl = [...user].map((c) => `:${c} - [0:0]\n`).join('');
  return `*filter\n:INPUT ${policy} [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${decl}${body}\nCOMMIT\n`;
}

interface Case {
  name: string;
  text: string;
  pkt: PacketSpec;
  stable: boolean;
  verdict?: 'accept' | 'drop' | 'queue';
}

const CASES: Case[] = [
  { name: 'policy only', text: F(''), pkt: { hook: 'INPUT' }, stable: true, verdict: 'accept' },
  { name: 'tcp port accept', text: F('-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT'), pkt: { hook: 'INPUT' }, stable: true },
  {
    name: 'ctstate ESTABLISHED accept',
    text: F('-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -j DROP', 'DROP'),
    pkt: { hook: 'INPUT' },
    stable: true,
    verdict: 'accept',
  },
  { name: 'state match', text: F('-A INPUT -m state --state ESTABLISHED -j DROP'), pkt: { hook: 'INPUT' }, stable: true, verdict: 'drop' },
  { name: 'limit evaluated', text: F('-A INPUT -m limit --limit 5/sec -j ACCEPT'), pkt: { hook: 'INPUT' }, stable: false },
  {
    name: 'limit behind a source that does not match',
    text: F('-A INPUT -s 10.0.0.0/8 -m limit --limit 5/sec -j ACCEPT\n-A INPUT -j ACCEPT'),
    pkt: { hook: 'INPUT' },
    stable: true,
  },
  {
    name: 'limit behind a port that does not match',
    text: F('-A INPUT -p tcp -m tcp --dport 22 -m limit --limit 5/sec -j ACCEPT'),
    pkt: { hook: 'INPUT', dport: 80 },
    stable: true,
  },
  {
    name: 'limit behind a port that matches',
    text: F('-A INPUT -p tcp -m tcp --dport 22 -m limit --limit 5/sec -j ACCEPT'),
    pkt: { hook: 'INPUT', dport: 22 },
    stable: false,
  },
  {
    name: 'statistic evaluated and not matching',
    text: F('-A INPUT -m statistic --mode nth --every 1000 --packet 999 -j DROP\n-A INPUT -j ACCEPT'),
    pkt: { hook: 'INPUT' },
    stable: false,
    verdict: 'accept',
  },
  { name: 'LOG target', text: F('-A INPUT -j LOG --log-prefix "x "'), pkt: { hook: 'INPUT' }, stable: false },
  { name: 'NFLOG target', text: F('-A INPUT -j NFLOG --nflog-group 3'), pkt: { hook: 'INPUT' }, stable: false },
  { name: 'REJECT target', text: F('-A INPUT -p tcp -j REJECT --reject-with tcp-reset'), pkt: { hook: 'INPUT' }, stable: false },
  { name: 'tcp --syn evaluated', text: F('-A INPUT -p tcp -m tcp --syn -j DROP'), pkt: { hook: 'INPUT' }, stable: false },
  { name: 'tcp --tcp-flags', text: F('-A INPUT -p tcp -m tcp --tcp-flags RST RST -j DROP'), pkt: { hook: 'INPUT' }, stable: false },
  { name: 'udp ports', text: F('-A INPUT -p udp -m udp --sport 53 -j DROP'), pkt: { hook: 'INPUT', proto: 17 }, stable: true },
  { name: 'multiport', text: F('-A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT'), pkt: { hook: 'INPUT' }, stable: true },
  { name: 'iprange', text: F('-A INPUT -m iprange --src-range 198.18.0.0-198.18.0.9 -j DROP'), pkt: { hook: 'INPUT' }, stable: true },
  { name: 'comment', text: F('-A INPUT -m comment --comment "hello" -j ACCEPT'), pkt: { hook: 'INPUT' }, stable: true },
  { name: 'mark match', text: F('-A INPUT -m mark --mark 0x4/0x4 -j DROP'), pkt: { hook: 'INPUT', mark: 4 }, stable: true },
  { name: 'connmark match', text: F('-A INPUT -m connmark --mark 0x7 -j DROP'), pkt: { hook: 'INPUT', ctmark: 7 }, stable: true },
  { name: 'addrtype', text: F('-A INPUT -m addrtype --dst-type LOCAL -j DROP'), pkt: { hook: 'INPUT' }, stable: true, verdict: 'drop' },
  { name: 'conntrack --ctexpire', text: F('-A INPUT -m conntrack --ctexpire 1:1000 -j DROP'), pkt: { hook: 'INPUT' }, stable: false },
  { name: 'conntrack tuples', text: F('-A INPUT -m conntrack --ctorigdst 198.18.1.1 --ctdir ORIGINAL -j DROP'), pkt: { hook: 'INPUT' }, stable: true },
  { name: 'ttl match', text: F('-A INPUT -m ttl --ttl-gt 1 -j DROP'), pkt: { hook: 'INPUT' }, stable: false },
  { name: 'length match', text: F('-A INPUT -m length --length 0:100 -j DROP'), pkt: { hook: 'INPUT' }, stable: false },
  { name: 'icmp type', text: F('-A INPUT -p icmp -m icmp --icmp-type 8 -j DROP'), pkt: { hook: 'INPUT', proto: 1, sport: 0, dport: 0 }, stable: false },
  {
    name: 'jump, RETURN, goto, MARK, policy DROP',
    text: F('-A INPUT -j A\n-A INPUT -g B\n-A A -j MARK --set-xmark 0x10/0xff\n-A A -j RETURN\n-A B -m mark --mark 0x10 -j MARK --or-mark 0x1', 'DROP'),
    pkt: { hook: 'INPUT' },
    stable: true,
    verdict: 'drop',
  },
  { name: 'CONNMARK target', text: F('-A INPUT -j CONNMARK --set-mark 5'), pkt: { hook: 'INPUT' }, stable: false },
  { name: 'NFQUEUE target', text: F('-A INPUT -j NFQUEUE --queue-balance 2:5'), pkt: { hook: 'INPUT' }, stable: true, verdict: 'queue' },
  {
    name: 'mangle TTL rewrite',
    text: '*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A FORWARD -j TTL --ttl-dec 1\nCOMMIT\n',
    pkt: { hook: 'FORWARD' },
    stable: false,
  },
  {
    name: 'mangle MARK then filter FORWARD',
    text:
      '*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n' +
      '-A FORWARD -i veth0 -j MARK --set-mark 9\nCOMMIT\n' +
      F('-A FORWARD -m mark --mark 9 -o veth1 -j ACCEPT', 'DROP').replace(':FORWARD ACCEPT', ':FORWARD DROP'),
    pkt: { hook: 'FORWARD', in: 'veth0', out: 'veth1' },
    stable: true,
    verdict: 'accept',
  },
  {
    name: 'a NEW packet runs nat',
    text: '*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j DNAT --to-destination 198.18.2.2\nCOMMIT\n',
    pkt: { hook: 'PREROUTING', state: 'NEW' },
    stable: false,
  },
  {
    name: 'an ESTABLISHED packet skips nat',
    text: '*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j DNAT --to-destination 198.18.2.2\nCOMMIT\n',
    pkt: { hook: 'PREROUTING' },
    stable: true,
  },
  {
    name: 'raw CT --notrack',
    text: '*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j CT --notrack\nCOMMIT\n',
    pkt: { hook: 'PREROUTING' },
    stable: false,
  },
  { name: 'recent', text: F('-A INPUT -m recent --name x --rcheck -j DROP'), pkt: { hook: 'INPUT' }, stable: false },
  {
    name: 'IPv6 tcp port and ESTABLISHED',
    text: F('-A INPUT -m conntrack --ctstate ESTABLISHED -p tcp -m tcp --dport 80 -j ACCEPT', 'DROP'),
    pkt: { family: 6, hook: 'INPUT' },
    stable: true,
    verdict: 'accept',
  },
];

describe('flow cache: engine', () => {
  for (const index of [true, false]) {
    describe(index ? 'with the chain index' : 'walking every rule', () => {
      for (const c of CASES) {
        it(`${c.name}: ${c.stable ? 'stable' : 'unstable'}`, () => {
          const rs = rules(c.text, c.pkt.family ?? 4);
          const e = engineFor(rs, index);
          const d = decideChecked(e, rs, packet(c.pkt));
          assert.equal(d.flowStable, c.stable);
          if (c.verdict !== undefined) assert.equal(d.verdict, c.verdict);
          // The same packet again: the same answer, and the counters listed again.
          const again = decideChecked(e, rs, packet(c.pkt));
          if (c.stable) {
            assert.equal(again.flowStable, true);
            assert.equal(again.verdict, d.verdict);
            assert.equal(again.mark, d.mark);
          }
        });
      }
    });
  }

  it('rules the chain index skips by destination do not make the decision unstable', () => {
    const lines: string[] = [];
    for (let i = 0; i < 40; i++) lines.push(`-A INPUT -d 198.19.${i}.1/32 -m limit --limit 1/sec -j DROP`);
    lines.push('-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT');
    const rs = rules(F(lines.join('\n'), 'DROP'));
    const d = decideChecked(engineFor(rs), rs, packet({ hook: 'INPUT' }));
    assert.equal(d.flowStable, true);
    assert.equal(d.verdict, 'accept');
    assert.equal(d.counted?.length, 1);
  });

  it('without `flow` the decision carries neither', () => {
    const rs = rules(F('-A INPUT -p tcp -j ACCEPT'));
    const d = engineFor(rs).decide(packet({ hook: 'INPUT' }));
    assert.equal(d.flowStable, undefined);
    assert.equal(d.counted, undefined);
    assert.equal(rs.tables.get('filter')!.chains.get('INPUT')!.rules[0]!.counters.packets, 1);
  });

  it('a rule counted twice on one path is listed twice', () => {
    const rs = rules(F('-A INPUT -j A\n-A INPUT -j A\n-A A -m comment --comment twice'));
    const d = decideChecked(engineFor(rs), rs, packet({ hook: 'INPUT' }));
    const a = rs.tables.get('filter')!.chains.get('A')!.rules[0]!.counters;
    assert.equal(d.counted?.filter((c) => c === a).length, 2);
  });

  it('a generated kube-proxy ruleset and the corpus: counted equals the counters that moved, for random packets', () => {
    const rng = new Rng(6);
    const random = (): number => rng.next();
    const sets: { name: string; rs: Ruleset }[] = [{ name: 'kube-proxy', rs: rules(kubeProxyRules(30, 3)) }];
    const dir = '/work/shared/corpus';
    const corpus = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.rules')) : [];
    for (const f of corpus) {
      const text = fs.readFileSync(path.join(dir, f), 'utf8');
      for (const family of [4, 6] as const) {
        try {
          sets.push({ name: `${f}/${family}`, rs: parseRuleset(text, f, { family }) });
          break;
        } catch {
          // The file is of the other family.
        }
      }
    }
    const hooks: Hook[] = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];
    const states: CtState[] = ['ESTABLISHED', 'NEW', 'RELATED'];
    let checked = 0;
    let stable = 0;
    for (const { rs } of sets) {
      const e = engineFor(rs);
      const v4 = rs.family === 4;
      for (let k = 0; k < 60; k++) {
        const pick = <T>(xs: readonly T[]): T => rng.pick(xs);
        const spec: PacketSpec = {
          family: rs.family,
          hook: pick(hooks),
          src: v4 ? `10.${pick([0, 96, 244])}.${Math.floor(random() * 4)}.${1 + Math.floor(random() * 20)}` : '2001:db8::5',
          dst: v4 ? pick(['10.96.0.10', '10.0.0.1', '127.0.0.1', '198.18.1.1', '172.17.0.2']) : '2001:db8:1::7',
          proto: pick([6, 17]),
          dport: pick([53, 80, 443, 8080, 30000 + Math.floor(random() * 5)]),
          in: pick(['eth0', 'docker0', 'lo', undefined]),
          out: pick(['eth0', 'cni0', undefined]),
          mark: pick([0, 0x4000, 0x8000]),
          state: pick(states),
        };
        let d;
        try {
          d = decideChecked(e, rs, packet(spec));
        } catch (err) {
          // Only an extension the engine cannot evaluate (TPROXY and the like) may stop a decision.
          if (err instanceof assert.AssertionError || !/cannot be evaluated/.test(String(err))) throw err;
          continue;
        }
        checked++;
        if (d.flowStable) stable++;
      }
    }
    assert.ok(checked >= 300, `only ${checked} decisions checked`);
    assert.ok(stable > 0 && stable < checked, `${stable} of ${checked} stable`);
  });
});
