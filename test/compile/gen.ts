// Seeded random rulesets and packets for comparing the engine with and without the chain index: many exact keys
// (destination, protocol, port, mark, interface) drawn from small pools so packets hit them, mixed with what must
// defeat the index: negations, ranges, prefixes, '+' wildcards, stateful and hotdropping matches before the key,
// mark changes mid-chain, jumps, gotos and RETURN.
import { craftPacket } from '../../src/engine/craft';
import type { PacketInput } from '../../src/engine/decision';
import type { ConnInfo, CtState } from '../../src/extensions/types';
import type { Hook } from '../../src/rules/model';
import { parseIpAddr } from '../../src/rules/addr';

export { Rng } from '../rng';
import { Rng } from '../rng';

const DST4 = ['198.18.0.1', '198.18.0.2', '198.18.1.7', '198.19.0.9', '198.19.3.3'];
const DST6 = ['2001:db8::1', '2001:db8::2', '2001:db8:1::7', '2001:db8:2::9', '2001:db8:3::3'];
const SRC4 = ['198.18.9.1', '198.18.9.2', '198.19.9.3'];
const SRC6 = ['2001:db8:9::1', '2001:db8:9::2', '2001:db8:a::3'];
const PORTS = [22, 53, 80, 443, 8080];
const MARKS = [0, 1, 2, 0x4000, 0x4001];
const IFACES = ['eth0', 'eth1', 'veth1', 'veth2'];
const USER_CHAINS = ['U0', 'U1', 'U2', 'U3'];
const MANGLE_CHAINS = ['M0'];

interface ChainPlan {
  table: 'filter' | 'mangle';
  name: string;
  builtin: boolean;
  /** Chains it may jump to (later ones only: no loops). */
  callees: string[];
  inOk: boolean;
  outOk: boolean;
}

const PLANS: ChainPlan[] = [
  { table: 'mangle', name: 'PREROUTING', builtin: true, callees: MANGLE_CHAINS, inOk: true, outOk: false },
  { table: 'mangle', name: 'FORWARD', builtin: true, callees: MANGLE_CHAINS, inOk: true, outOk: true },
  { table: 'mangle', name: 'M0', builtin: false, callees: [], inOk: true, outOk: false },
  { table: 'filter', name: 'INPUT', builtin: true, callees: [], inOk: true, outOk: false },
  { table: 'filter', name: 'FORWARD', builtin: true, callees: USER_CHAINS, inOk: true, outOk: true },
  { table: 'filter', name: 'OUTPUT', builtin: true, callees: [], inOk: false, outOk: true },
  { table: 'filter', name: 'U0', builtin: false, callees: ['U1', 'U2', 'U3'], inOk: true, outOk: true },
  { table: 'filter', name: 'U1', builtin: false, callees: ['U2', 'U3'], inOk: true, outOk: true },
  { table: 'filter', name: 'U2', builtin: false, callees: ['U3'], inOk: true, outOk: true },
  { table: 'filter', name: 'U3', builtin: false, callees: [], inOk: true, outOk: true },
];

export const HOOKS_USED: readonly Hook[] = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT'];

function protoName(p: number, family: 4 | 6): string {
  return p === 6 ? 'tcp' : p === 17 ? 'udp' : p === 132 ? 'sctp' : p === 136 ? 'udplite' : family === 4 ? 'icmp' : 'ipv6-icmp';
}

/** One stateful or hotdropping match to put before a key: the index must not skip past it. */
function blocker(rng: Rng, proto: number | undefined, tag: string): string {
  const k = rng.int(0, proto === 6 ? 6 : proto === 17 ? 5 : 4);
  switch (k) {
    case 0:
      return `-m statistic --mode nth --every ${rng.int(2, 4)} --packet ${rng.int(0, 1)}`;
    case 1:
      return `-m limit --limit ${rng.int(1, 5)}/sec --limit-burst ${rng.int(1, 3)}`;
    case 2:
      return `-m quota --quota ${rng.int(100, 3000)}`;
    case 3:
      return rng.chance(0.5)
        ? `-m recent --set --name ${tag}r${rng.int(0, 1)} --rsource`
        : `-m recent --rcheck --name ${tag}r${rng.int(0, 1)} --rsource`;
    case 4:
      return `-m statistic --mode random --probability 0.5`;
    case 5:
      return `-m multiport --dports ${rng.pick(PORTS)},1000:2000`;
    default:
      return `-m tcp --tcp-option ${rng.pick([2, 3, 4, 8])}`;
  }
}

function pureMatch(rng: Rng): string {
  switch (rng.int(0, 3)) {
    case 0:
      return `-m comment --comment "c${rng.int(0, 99)}"`;
    case 1:
      return `-m mark --mark ${rng.pick(MARKS)}/0xffff`;
    case 2:
      return `-m length --length ${rng.int(20, 80)}:${rng.int(80, 1500)}`;
    default:
      return `-m pkttype --pkt-type unicast`;
  }
}

function portMatch(rng: Rng, proto: number, family: 4 | 6): string | undefined {
  const name = protoName(proto, family);
  if (![6, 17, 132].includes(proto)) return undefined;
  if (!rng.chance(0.75)) return undefined;
  const parts: string[] = [];
  if (rng.chance(0.15)) parts.push(`${rng.chance(0.3) ? '! ' : ''}--sport ${rng.pick(PORTS)}`);
  const r = rng.next();
  if (r < 0.7) parts.push(`--dport ${rng.pick(PORTS)}`);
  else if (r < 0.8) parts.push(`! --dport ${rng.pick(PORTS)}`);
  else if (r < 0.9) parts.push(`--dport ${rng.pick(PORTS)}:${rng.int(8080, 9000)}`);
  if (proto === 6 && rng.chance(0.15)) parts.push(rng.chance(0.5) ? '--syn' : '--tcp-option 2');
  if (parts.length === 0) return proto === 132 ? undefined : `-m ${name}`;
  return `-m ${name} ${parts.join(' ')}`;
}

function addr(rng: Rng, family: 4 | 6, pool: readonly string[]): string {
  const a = rng.pick(pool);
  const r = rng.next();
  if (r < 0.75) return `${a}/${family === 4 ? 32 : 128}`;
  if (r < 0.9) return family === 4 ? `${a.split('.').slice(0, 3).join('.')}.0/24` : `${a}/64`;
  return `${a}/${family === 4 ? 31 : 127}`;
}

function iface(rng: Rng): string {
  const n = rng.pick(IFACES);
  return rng.chance(0.25) ? `${n.slice(0, -1)}+` : n;
}

function neg(rng: Rng, p: number): string {
  return rng.chance(p) ? '! ' : '';
}

function ruleLine(rng: Rng, plan: ChainPlan, family: 4 | 6, tag: string): string {
  const w: string[] = [`-A ${plan.name}`];
  if (rng.chance(0.15)) w.push(`${neg(rng, 0.3)}-s ${addr(rng, family, family === 4 ? SRC4 : SRC6)}`);
  if (rng.chance(0.65)) w.push(`${neg(rng, 0.1)}-d ${addr(rng, family, family === 4 ? DST4 : DST6)}`);
  if (plan.inOk && rng.chance(0.2)) w.push(`${neg(rng, 0.2)}-i ${iface(rng)}`);
  if (plan.outOk && rng.chance(0.2)) w.push(`${neg(rng, 0.2)}-o ${iface(rng)}`);
  let proto: number | undefined;
  if (rng.chance(0.75)) {
    proto = rng.pick([6, 6, 6, 17, 17, 132, 136, family === 4 ? 1 : 58]);
    const negated = rng.chance(0.08);
    w.push(`${negated ? '! ' : ''}-p ${protoName(proto, family)}`);
    if (negated) proto = undefined;
  }
  if (family === 4 && rng.chance(0.04)) w.push(`${neg(rng, 0.5)}-f`);
  const matches: string[] = [];
  if (rng.chance(0.3)) matches.push(pureMatch(rng));
  if (rng.chance(0.2)) matches.push(blocker(rng, proto, tag));
  if (rng.chance(0.2)) matches.push(`-m mark ${neg(rng, 0.15)}--mark ${rng.pick(MARKS)}${rng.chance(0.3) ? '/0xff' : ''}`);
  const pm = proto === undefined ? undefined : portMatch(rng, proto, family);
  if (pm) matches.push(pm);
  if (rng.chance(0.15)) matches.push(blocker(rng, proto, tag));
  w.push(...matches);
  const r = rng.next();
  if (r < 0.12) w.push('-j ACCEPT');
  else if (r < 0.22) w.push('-j DROP');
  else if (r < 0.3 && !plan.builtin) w.push('-j RETURN');
  else if (r < 0.45 && plan.callees.length) w.push(`-${rng.chance(0.3) ? 'g' : 'j'} ${rng.pick(plan.callees)}`);
  else if (r < 0.62) w.push(`-j MARK --set-xmark ${rng.pick(MARKS)}/0xffffffff`);
  else if (r < 0.66) w.push(`-j LOG --log-prefix "p${rng.int(0, 9)} "`);
  else if (r < 0.7 && plan.table === 'mangle') w.push(family === 4 ? '-j TTL --ttl-dec 1' : '-j HL --hl-dec 1');
  else if (r < 0.72 && plan.table === 'filter' && proto === 6) w.push('-j REJECT --reject-with tcp-reset');
  else if (r < 0.76) w.push('-j RETURN');
  return w.join(' ');
}

/** A filter + mangle ruleset; `tag` names the recent lists so two engines in one process do not share them. */
export function genRuleset(seed: number, family: 4 | 6, tag: string): string {
  const rng = new Rng(seed);
  const out: string[] = [];
  for (const table of ['mangle', 'filter'] as const) {
    const plans = PLANS.filter((p) => p.table === table);
    out.push(`*${table}`);
    for (const p of plans) out.push(p.builtin ? `:${p.name} ${rng.chance(0.5) ? 'ACCEPT' : 'DROP'} [0:0]` : `:${p.name} - [0:0]`);
    for (const p of plans) {
      const n = p.builtin ? rng.int(10, 40) : rng.int(4, 20);
      for (let k = 0; k < n; k++) out.push(ruleLine(rng, p, family, tag));
    }
    out.push('COMMIT');
  }
  return `${out.join('\n')}\n`;
}

/** A ruleset text with the recent-list tag replaced, so each engine gets its own lists. */
export function retag(text: string, from: string, to: string): string {
  return text.split(`--name ${from}`).join(`--name ${to}`);
}

const HOOK_IFACES: Record<string, { in: boolean; out: boolean }> = {
  PREROUTING: { in: true, out: false },
  INPUT: { in: true, out: false },
  FORWARD: { in: true, out: true },
  OUTPUT: { in: false, out: true },
};

/** A packet aimed at the pools the rules draw from, sometimes cut short, fragmented or with a broken IPv6 chain. */
export function genPacket(rng: Rng, family: 4 | 6): PacketInput {
  const hook = rng.pick(HOOKS_USED);
  const proto = rng.pick([6, 6, 17, 17, 132, 136, family === 4 ? 1 : 58, 47]);
  const dstPool = family === 4 ? DST4 : DST6;
  const dst = rng.chance(0.85) ? rng.pick(dstPool) : family === 4 ? '198.18.200.1' : '2001:db8:ff::1';
  const src = rng.pick(family === 4 ? SRC4 : SRC6);
  let data = craftPacket({
    family,
    src: ipOf(src, family),
    dst: ipOf(dst, family),
    proto,
    sport: rng.chance(0.7) ? rng.pick(PORTS) : rng.int(1024, 65535),
    dport: rng.chance(0.85) ? rng.pick(PORTS) : rng.int(1, 65535),
    tcpFlags: rng.pick([0x02, 0x10, 0x12, 0x11]),
    tcpOptions: proto === 6 && rng.chance(0.3) ? Uint8Array.of(2, 4, 5, 0xb4) : undefined,
    icmpType: 8,
    ttl: rng.int(1, 64),
    payload: new Uint8Array(rng.int(0, 40)),
  });
  let length: number | undefined;
  const r = rng.next();
  if (r < 0.05) {
    // Cut short inside the transport header (the queue copied less): hotdrops in xt matches.
    const l3 = family === 4 ? 20 : 40;
    length = data.length;
    data = data.slice(0, l3 + rng.int(0, 10));
  } else if (r < 0.09 && family === 4) {
    // A later fragment at offset 8: tcp's xt match drops it as evil.
    data = data.slice();
    data[6] = 0x20;
    data[7] = rng.chance(0.5) ? 1 : 2;
  } else if (r < 0.13 && family === 6) {
    data = brokenChain6(data);
  }
  const io = HOOK_IFACES[hook];
  const meta = {
    hook,
    inIface: io.in ? rng.pick(IFACES) : undefined,
    outIface: io.out ? rng.pick(IFACES) : undefined,
    mark: rng.pick(MARKS),
    pktType: 'unicast' as const,
  };
  const input: PacketInput = { family, data, meta };
  if (length !== undefined) input.length = length;
  if (rng.chance(0.5)) input.ct = conn(rng, data, family);
  return input;
}

function ipOf(s: string, family: 4 | 6): Uint8Array {
  const a = parseIpAddr(s, family);
  if (!a) throw new Error(`bad address ${s}`);
  return a;
}

/** An IPv6 packet whose first extension header (hop-by-hop) is cut off: ipv6_find_hdr fails on it. */
function brokenChain6(data: Uint8Array): Uint8Array {
  const d = data.slice(0, 42);
  d[6] = 0; // next header: hop-by-hop
  return d;
}

function conn(rng: Rng, data: Uint8Array, family: 4 | 6): ConnInfo {
  const a = family === 4 ? data.slice(12, 16) : data.slice(8, 24);
  const b = family === 4 ? data.slice(16, 20) : data.slice(24, 40);
  const t = { src: a, dst: b, protocol: 6, sport: 1, dport: 2 };
  const state: CtState = rng.pick(['NEW', 'ESTABLISHED', 'RELATED', 'INVALID']);
  return { state, status: 0, mark: rng.pick(MARKS), direction: 'ORIGINAL', orig: t, reply: t, expiresSeconds: 60, zone: 0 };
}
