// Seeded random rulesets and packets for the native matcher's differential test (matcher-diff.test.ts): every table
// and hook, exact destinations (so chains get keyed), negations and ranges, marks set by MARK and tested in later
// tables and chains, jumps, gotos and RETURN, connection state; with `slow` > 0, extensions the matcher leaves to
// JavaScript (NAT, REJECT, LOG, CONNMARK, stateful matches, addrtype types other than LOCAL) mixed in.
import { craftPacket } from '../../src/engine/craft';
import type { PacketInput } from '../../src/engine/decision';
import type { ConnInfo, CtState } from '../../src/extensions/types';
import type { Hook } from '../../src/rules/model';
import { parseIpAddr } from '../../src/rules/addr';
import { Rng } from '../rng';
import { LOCAL4, LOCAL6 } from './matcher-harness';

const DST4 = ['198.18.0.1', '198.18.0.2', '198.18.1.7', '198.19.0.9', '198.19.3.3', '198.18.2.1', '198.18.2.2', '198.18.2.3'];
const DST6 = ['2001:db8::1', '2001:db8::2', '2001:db8:1::7', '2001:db8:2::9', '2001:db8:3::3', '2001:db8:4::1', '2001:db8:4::2'];
const SRC4 = ['198.18.9.1', '198.18.9.2', '198.19.9.3', '198.18.0.1'];
const SRC6 = ['2001:db8:9::1', '2001:db8:9::2', '2001:db8:a::3', '2001:db8::1'];
const PORTS = [22, 53, 80, 443, 8080];
const MARKS = [0, 1, 2, 0x10, 0x11];
export const IFACES = ['eth0', 'eth1', 'veth1', 'veth2', 'lo'];

const IN_HOOKS = new Set<Hook>(['PREROUTING', 'INPUT', 'FORWARD']);
const OUT_HOOKS = new Set<Hook>(['FORWARD', 'OUTPUT', 'POSTROUTING']);

type TableName = 'raw' | 'mangle' | 'nat' | 'filter';

interface Plan {
  table: TableName;
  name: string;
  builtin: boolean;
  /** User chains it may jump to: later ones only, so there is no loop. */
  callees: string[];
}

const TABLE_CHAINS: Record<TableName, { builtins: Hook[]; users: string[] }> = {
  raw: { builtins: ['PREROUTING', 'OUTPUT'], users: ['R0'] },
  mangle: { builtins: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'], users: ['M0', 'M1'] },
  nat: { builtins: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'], users: ['N0', 'N1'] },
  filter: { builtins: ['INPUT', 'FORWARD', 'OUTPUT'], users: ['U0', 'U1', 'U2', 'U3'] },
};

function plans(table: TableName): Plan[] {
  const { builtins, users } = TABLE_CHAINS[table];
  return [
    ...builtins.map((name) => ({ table, name, builtin: true, callees: users })),
    ...users.map((name, k) => ({ table, name, builtin: false, callees: users.slice(k + 1) })),
  ];
}

function protoName(p: number, family: 4 | 6): string {
  if (p === 0) return 'all';
  return p === 6 ? 'tcp' : p === 17 ? 'udp' : p === 132 ? 'sctp' : p === 136 ? 'udplite' : family === 4 ? 'icmp' : 'ipv6-icmp';
}

const neg = (rng: Rng, p: number): string => (rng.chance(p) ? '! ' : '');

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

function ports(rng: Rng): string {
  const r = rng.next();
  if (r < 0.6) return `${rng.pick(PORTS)}`;
  if (r < 0.8) {
    const lo = rng.pick(PORTS);
    return `${lo}:${lo + rng.int(0, 1000)}`;
  }
  return `${rng.int(0, 100)}:`;
}

function protoMatch(rng: Rng, proto: number, family: 4 | 6): string | undefined {
  if (proto === 6) {
    const parts: string[] = [];
    if (rng.chance(0.2)) parts.push(`${neg(rng, 0.3)}--sport ${ports(rng)}`);
    if (rng.chance(0.7)) parts.push(`${neg(rng, 0.15)}--dport ${ports(rng)}`);
    if (rng.chance(0.15)) parts.push(rng.chance(0.5) ? `${neg(rng, 0.3)}--syn` : `${neg(rng, 0.3)}--tcp-flags SYN,ACK ${rng.pick(['SYN', 'ACK', 'SYN,ACK', 'NONE'])}`);
    return `-m tcp ${parts.join(' ')}`.trim();
  }
  if (proto === 132) return `-m sctp --dport ${rng.pick(PORTS)}`;
  if (proto === 136) return `-m multiport ${neg(rng, 0.2)}--dports ${rng.pick(PORTS)},${rng.pick(PORTS)}`;
  if (proto === 17) {
    const parts: string[] = [];
    if (rng.chance(0.2)) parts.push(`${neg(rng, 0.3)}--sport ${ports(rng)}`);
    if (rng.chance(0.7)) parts.push(`${neg(rng, 0.15)}--dport ${ports(rng)}`);
    return `-m udp ${parts.join(' ')}`.trim();
  }
  if (proto === 1 && family === 4)
    return `-m icmp ${neg(rng, 0.2)}--icmp-type ${rng.pick(['echo-request', 'echo-reply', 'any', 'destination-unreachable', '3/1'])}`;
  if (proto === 58 && family === 6)
    return `-m icmp6 ${neg(rng, 0.2)}--icmpv6-type ${rng.pick(['echo-request', 'echo-reply', '1', '1/3'])}`;
  return undefined;
}

const STATES = ['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED', 'SNAT', 'DNAT'];

function physdev(rng: Rng): string {
  const parts: string[] = [];
  if (rng.chance(0.5)) parts.push(`${neg(rng, 0.3)}--physdev-in ${iface(rng)}`);
  if (rng.chance(0.4)) parts.push(`${neg(rng, 0.3)}--physdev-out ${iface(rng)}`);
  if (rng.chance(0.3)) parts.push(`${neg(rng, 0.5)}--physdev-is-in`);
  if (rng.chance(0.3)) parts.push(`${neg(rng, 0.5)}--physdev-is-bridged`);
  if (parts.length === 0) parts.push(`${neg(rng, 0.5)}--physdev-is-out`);
  return `-m physdev ${parts.join(' ')}`;
}

function pureMatch(rng: Rng, family: 4 | 6, proto: number | undefined, chain: string): string {
  if (chain !== 'OUTPUT' && rng.chance(0.08)) return physdev(rng);
  switch (rng.int(0, 9)) {
    case 9:
      return statistic(rng);
    case 0:
      return `-m comment --comment "c${rng.int(0, 99)}"`;
    case 1:
      return `-m mark ${neg(rng, 0.2)}--mark ${rng.pick(MARKS)}${rng.chance(0.3) ? '/0xf' : ''}`;
    case 2:
      return `-m connmark ${neg(rng, 0.2)}--mark ${rng.pick(MARKS)}${rng.chance(0.3) ? '/0xf' : ''}`;
    case 3: {
      const parts: string[] = [];
      if (rng.chance(0.8)) parts.push(`${neg(rng, 0.2)}--ctstate ${[...new Set([rng.pick(STATES), rng.pick(STATES)])].join(',')}`);
      if (rng.chance(0.3)) parts.push(`${neg(rng, 0.2)}--ctstatus ${rng.pick(['SEEN_REPLY', 'ASSURED', 'CONFIRMED', 'EXPECTED,ASSURED', 'NONE'])}`);
      if (rng.chance(0.3) || parts.length === 0) parts.push(`--ctdir ${rng.pick(['ORIGINAL', 'REPLY'])}`);
      return `-m conntrack ${parts.join(' ')}`;
    }
    case 4:
      return `-m state ${neg(rng, 0.2)}--state ${[...new Set([rng.pick(STATES.slice(0, 5)), rng.pick(STATES.slice(0, 5))])].join(',')}`;
    case 5: {
      const r = family === 4 ? `198.18.0.${rng.int(0, 3)}-198.18.${rng.int(0, 2)}.9` : `2001:db8::${rng.int(0, 3)}-2001:db8:${rng.int(1, 3)}::9`;
      return `-m iprange ${neg(rng, 0.2)}--${rng.pick(['src', 'dst'])}-range ${r}`;
    }
    case 6:
      return `-m addrtype ${neg(rng, 0.2)}--${rng.pick(['src', 'dst'])}-type LOCAL`;
    case 7:
      if (proto === 6 || proto === 17 || proto === 136) return `-m multiport ${neg(rng, 0.2)}--${rng.pick(['sports', 'dports', 'ports'])} ${rng.pick(PORTS)},${rng.pick(PORTS)}:9000`;
      return `-m mark --mark ${rng.pick(MARKS)}`;
    default:
      return `-m conntrack --ctstate ${rng.pick(['NEW', 'ESTABLISHED,RELATED', 'INVALID', 'DNAT'])}`;
  }
}

/** statistic --mode random, probabilities as kube-proxy writes them (1/n) and the ends of the range. */
function statistic(rng: Rng): string {
  const p = rng.pick(['0.50000000000', '0.33333333349', '0.25000000000', '0.10000000009', '0.00000000000', '1.00000000000', '0.99']);
  return `-m statistic --mode random ${neg(rng, 0.2)}--probability ${p}`;
}

const NAT4 = ['198.18.5.5', '198.18.5.9', '198.19.6.6'];
const NAT6 = ['2001:db8:5::5', '2001:db8:5::9', '2001:db8:6::6'];

function natPorts(rng: Rng, base: boolean): string {
  const lo = rng.pick([80, 1024, 8080]);
  const r = rng.next();
  if (r < 0.5) return `${lo}`;
  if (base && r < 0.65) return `${lo}-${lo + 100}/${lo + 7}`;
  return `${lo}-${lo + rng.int(0, 500)}`;
}

function natAddr(rng: Rng, family: 4 | 6): string {
  const pool = family === 4 ? NAT4 : NAT6;
  const a = rng.pick(pool);
  return rng.chance(0.3) ? `${a}-${pool[1]}` : a;
}

/** `--to-destination`/`--to-source`: address, range, ports, ports only. */
function natRange(rng: Rng, family: 4 | 6, ports: boolean, base: boolean): string {
  const r = rng.next();
  const a = natAddr(rng, family);
  if (!ports || r < 0.4) return a;
  const p = natPorts(rng, base);
  if (r < 0.55) return `:${p}`;
  return family === 4 ? `${a}:${p}` : `[${a}]:${p}`;
}

function flags(rng: Rng, names: string[]): string {
  return names.filter(() => rng.chance(0.25)).map((n) => ` --${n}`).join('');
}

/**
 * A NAT target for a built-in nat chain, in every form its module reads. `ports`: the rule's -p is TCP or UDP, so a
 * port range is allowed.
 */
function natTarget(rng: Rng, chain: string, family: 4 | 6, ports: boolean): string {
  const netmap = family === 4 ? `198.18.64.0/${rng.pick([24, 30, 32])}` : `2001:db8:64::/${rng.pick([64, 120, 128])}`;
  if (rng.chance(0.1)) return `-j NETMAP --to ${netmap}`;
  if (chain === 'PREROUTING' || chain === 'OUTPUT') {
    if (rng.chance(0.3)) return `-j REDIRECT${ports && rng.chance(0.6) ? ` --to-ports ${natPorts(rng, false)}` : ''}${flags(rng, ['random'])}`;
    return `-j DNAT --to-destination ${natRange(rng, family, ports, true)}${flags(rng, ['random', 'persistent'])}`;
  }
  if (chain === 'POSTROUTING' && rng.chance(0.4))
    return `-j MASQUERADE${ports && rng.chance(0.4) ? ` --to-ports ${natPorts(rng, false)}` : ''}${flags(rng, ['random', 'random-fully'])}`;
  return `-j SNAT --to-source ${natRange(rng, family, ports, true)}${flags(rng, ['random', 'random-fully', 'persistent'])}`;
}

function slowMatch(rng: Rng, proto: number | undefined): string {
  switch (rng.int(0, 4)) {
    case 0:
      return `-m statistic --mode nth --every ${rng.int(2, 4)} --packet 0`;
    case 1:
      return `-m limit --limit ${rng.int(1, 5)}/sec`;
    case 2:
      return `-m addrtype --dst-type ${rng.pick(['UNICAST', 'MULTICAST', 'LOCAL,UNICAST'])}`;
    case 3:
      return proto === 6 ? '-m tcp --tcp-option 2' : '-m length --length 20:100';
    default:
      return `-m conntrack --ctproto ${rng.pick(['tcp', 'udp'])}`;
  }
}

function slowTarget(rng: Rng, plan: Plan, family: 4 | 6, proto: number | undefined): string | undefined {
  const r = rng.int(0, 5);
  if (r === 0) return `-j LOG --log-prefix "p${rng.int(0, 9)} "`;
  if (r === 1 && plan.table === 'filter') return '-j REJECT';
  if (r === 2 && plan.table === 'mangle') return `-j CONNMARK --set-mark ${rng.pick(MARKS)}`;
  if (r === 3 && plan.table === 'nat' && (plan.name === 'PREROUTING' || plan.name === 'OUTPUT'))
    return family === 4 ? '-j DNAT --to-destination 198.18.5.5' : '-j DNAT --to-destination [2001:db8:5::5]';
  if (r === 3 && plan.table === 'nat' && (plan.name === 'POSTROUTING' || plan.name === 'INPUT'))
    return family === 4 ? '-j SNAT --to-source 198.18.6.6' : '-j SNAT --to-source 2001:db8:6::6';
  if (r === 4) return '-j NFQUEUE --queue-balance 2:3';
  if (r === 5 && plan.table === 'raw') return '-j CT --notrack';
  return proto === 6 && plan.table === 'mangle' ? '-j TCPMSS --set-mss 1200' : undefined;
}

function ruleLine(rng: Rng, plan: Plan, family: 4 | 6, slow: number): string {
  const w: string[] = [`-A ${plan.name}`];
  const inOk = plan.builtin && IN_HOOKS.has(plan.name as Hook);
  const outOk = plan.builtin && OUT_HOOKS.has(plan.name as Hook);
  if (rng.chance(0.15)) w.push(`${neg(rng, 0.3)}-s ${addr(rng, family, family === 4 ? SRC4 : SRC6)}`);
  if (rng.chance(0.6)) w.push(`${neg(rng, 0.1)}-d ${addr(rng, family, family === 4 ? DST4 : DST6)}`);
  if (inOk && rng.chance(0.2)) w.push(`${neg(rng, 0.2)}-i ${iface(rng)}`);
  if (outOk && rng.chance(0.2)) w.push(`${neg(rng, 0.2)}-o ${iface(rng)}`);
  let proto: number | undefined;
  if (rng.chance(0.7)) {
    proto = rng.pick([6, 6, 6, 17, 17, 136, 0, family === 4 ? 1 : 58, ...(slow > 0 ? [132] : [])]);
    const negated = proto !== 0 && rng.chance(0.08); // `! -p all` is refused
    w.push(`${negated ? '! ' : ''}-p ${protoName(proto, family)}`);
    if (negated || proto === 0) proto = undefined;
  }
  if (family === 4 && rng.chance(0.03)) w.push(`${neg(rng, 0.5)}-f`);
  if (rng.chance(0.35)) w.push(pureMatch(rng, family, proto, plan.name));
  if (slow > 0 && rng.chance(slow)) w.push(slowMatch(rng, proto));
  if (proto !== undefined && rng.chance(0.7)) {
    const pm = protoMatch(rng, proto, family);
    if (pm) w.push(pm);
  }
  if (rng.chance(0.15)) w.push(pureMatch(rng, family, proto, plan.name));
  const st = slow > 0 && rng.chance(slow) ? slowTarget(rng, plan, family, proto) : undefined;
  if (st) {
    w.push(st);
    return w.join(' ');
  }
  if (plan.table === 'nat' && plan.builtin && rng.chance(0.3)) {
    w.push(natTarget(rng, plan.name, family, proto === 6 || proto === 17));
    return w.join(' ');
  }
  const r = rng.next();
  if (r < 0.1) w.push('-j ACCEPT');
  else if (r < 0.2) w.push('-j DROP');
  else if (r < 0.3 && !plan.builtin) w.push('-j RETURN');
  else if (r < 0.5 && plan.callees.length) w.push(`-${rng.chance(0.3) ? 'g' : 'j'} ${rng.pick(plan.callees)}`);
  else if (r < 0.62) w.push(`-j MARK --set-xmark ${rng.pick(MARKS)}/${rng.pick(['0xffffffff', '0xf', '0x10'])}`);
  else if (r < 0.66) w.push(`-j MARK --or-mark ${rng.pick(MARKS)}`);
  else if (r < 0.7) w.push(`-j NFQUEUE --queue-num ${rng.int(0, 3)}`);
  else if (r < 0.74) w.push('-j RETURN');
  return w.join(' ');
}

/** A raw + mangle + nat + filter ruleset. `slow`: how often a rule carries something the matcher leaves to JavaScript. */
export function genMatcherRuleset(seed: number, family: 4 | 6, slow: number): string {
  const rng = new Rng(seed);
  const out: string[] = [];
  for (const table of ['raw', 'mangle', 'nat', 'filter'] as const) {
    const ps = plans(table);
    out.push(`*${table}`);
    for (const p of ps) out.push(p.builtin ? `:${p.name} ${table === 'filter' && rng.chance(0.5) ? 'DROP' : 'ACCEPT'} [0:0]` : `:${p.name} - [0:0]`);
    for (const p of ps) {
      const n = p.builtin ? rng.int(4, 30) : rng.int(3, 16);
      for (let k = 0; k < n; k++) out.push(ruleLine(rng, p, family, slow));
    }
    out.push('COMMIT');
  }
  return `${out.join('\n')}\n`;
}

const HOOKS: Hook[] = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];
const STATUS_BITS = [0x2, 0x4, 0x8, 0x10, 0x20, 0x80, 0x100, 0x1];

function ipOf(s: string, family: 4 | 6): Uint8Array {
  const a = parseIpAddr(s, family);
  if (!a) throw new Error(`bad address ${s}`);
  return a;
}

/**
 * A packet aimed at the pools the rules draw from. `odd` > 0: that share is cut short, fragmented, carries IPv6
 * extension headers or comes from an untracked queue (no connection).
 */
export function genMatcherPacket(rng: Rng, family: 4 | 6, odd: number): PacketInput {
  const hook = rng.pick(HOOKS);
  const proto = rng.pick([6, 6, 17, 17, family === 4 ? 1 : 58, 132, 136, 47]);
  const dstPool = [...(family === 4 ? DST4 : DST6), ...(family === 4 ? LOCAL4 : LOCAL6)];
  const dst = rng.chance(0.9) ? rng.pick(dstPool) : family === 4 ? '198.18.200.1' : '2001:db8:ff::1';
  const src = rng.pick(family === 4 ? SRC4 : SRC6);
  let data = craftPacket({
    family,
    src: ipOf(src, family),
    dst: ipOf(dst, family),
    proto,
    sport: rng.chance(0.6) ? rng.pick(PORTS) : rng.int(1024, 65535),
    dport: rng.chance(0.85) ? rng.pick(PORTS) : rng.int(1, 65535),
    tcpFlags: rng.pick([0x02, 0x10, 0x12, 0x11, 0x04]),
    icmpType: rng.pick(family === 4 ? [8, 0, 3] : [128, 129, 1]),
    icmpCode: rng.pick([0, 1, 3]),
    payload: new Uint8Array(rng.int(0, 40)),
  });
  let length: number | undefined;
  let tracked = true;
  if (odd > 0 && rng.chance(odd)) {
    const k = rng.int(0, 3);
    if (k === 0) {
      length = data.length;
      data = data.slice(0, (family === 4 ? 20 : 40) + rng.int(0, 12));
    } else if (k === 1 && family === 4) {
      data = data.slice();
      data[6] = 0x20;
      data[7] = rng.pick([0, 1, 2]);
    } else if (k === 1) {
      data = data.slice(0, 42);
      data[6] = 0;
    } else {
      tracked = false;
    }
  }
  const meta = {
    hook,
    inIface: IN_HOOKS.has(hook) ? rng.pick(IFACES) : undefined,
    outIface: OUT_HOOKS.has(hook) ? rng.pick(IFACES) : undefined,
    mark: rng.pick(MARKS),
    pktType: 'unicast' as const,
    // A bridged packet's ports (br_netfilter) at the hooks a bridge passes.
    physIn: hook !== 'OUTPUT' && rng.chance(0.3) ? rng.pick(IFACES) : undefined,
    physOut: OUT_HOOKS.has(hook) && rng.chance(0.3) ? rng.pick(IFACES) : undefined,
  };
  const input: PacketInput = { family, data, meta };
  if (length !== undefined) input.length = length;
  if (tracked) input.ct = conn(rng, data, family);
  return input;
}

function conn(rng: Rng, data: Uint8Array, family: 4 | 6): ConnInfo {
  const a = family === 4 ? data.slice(12, 16) : data.slice(8, 24);
  const b = family === 4 ? data.slice(16, 20) : data.slice(24, 40);
  const t = { src: a, dst: b, protocol: 6, sport: 1, dport: 2 };
  const state: CtState = rng.pick(['NEW', 'NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'UNTRACKED']);
  let status = 0;
  for (const bit of STATUS_BITS) if (rng.chance(0.25)) status |= bit;
  return {
    state,
    status,
    mark: rng.pick(MARKS),
    direction: rng.chance(0.75) ? 'ORIGINAL' : 'REPLY',
    orig: t,
    reply: t,
    expiresSeconds: 60,
    zone: 0,
  };
}
