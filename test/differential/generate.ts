// Random filter-table rulesets (seeded) and, for each rule, packets that hit it and packets that nearly miss it
// (the hit packet with one of the rule's fields moved just outside).
import { addrBytes, DIRECTIONS, familyOf, interfacesOf, pools, totalLength, type Direction, type PacketSpec } from './packets';
import { CLIENT_ADDRS, SERVER_ADDRS } from './harness';

export { Rng } from '../rng';
import { Rng } from '../rng';

interface Net {
  base: string;
  len: number;
}
interface Ranged {
  lo: number;
  hi: number;
}

/** One generated rule: the fields the packet generator reads, and its iptables-save text. */
export interface GenRule {
  chain: string;
  proto?: 6 | 17 | 1 | 58;
  src?: Net & { neg: boolean };
  dst?: Net & { neg: boolean };
  inIf?: { name: string; neg: boolean };
  outIf?: { name: string; neg: boolean };
  sport?: Ranged & { neg: boolean };
  dport?: Ranged & { neg: boolean };
  syn?: boolean;
  flags?: { mask: number; comp: number; neg: boolean };
  icmp?: { type: number; code?: number; neg: boolean };
  multiport?: { which: 'sports' | 'dports' | 'ports'; list: Ranged[]; neg: boolean };
  iprange?: { which: 'src' | 'dst'; lo: string; hi: string; neg: boolean };
  length?: Ranged & { neg: boolean };
  ttl?: { op: 'eq' | 'lt' | 'gt'; v: number; neg: boolean };
  mark?: { value: number; mask: number; neg: boolean };
  comment?: boolean;
  text: string;
}

export interface GenRuleset {
  text: string;
  rules: GenRule[];
  /** Which fw hook directions reach each chain (user chains: those of their callers). */
  reach: Map<string, Direction[]>;
  family: 4 | 6;
}

const NETS: Net[] = [
  { base: '198.18.0.0', len: 24 },
  { base: '198.18.0.0', len: 25 },
  { base: '198.18.0.128', len: 25 },
  { base: '198.18.0.64', len: 26 },
  { base: '198.18.0.66', len: 32 },
  { base: '198.18.0.2', len: 31 },
  { base: '198.19.0.0', len: 24 },
  { base: '198.19.0.128', len: 26 },
  { base: '198.19.0.200', len: 32 },
  { base: '198.19.0.0', len: 25 },
  { base: '198.18.0.0', len: 15 },
  { base: '198.18.0.1', len: 32 },
  { base: '198.19.0.1', len: 32 },
  { base: '198.16.0.0', len: 14 },
];
const FLAG_NAMES: [string, number][] = [['FIN', 1], ['SYN', 2], ['RST', 4], ['PSH', 8], ['ACK', 16], ['URG', 32]];
const NETS6: Net[] = [
  { base: '2001:db8::', len: 64 },
  { base: '2001:db8::', len: 120 },
  { base: '2001:db8::80', len: 121 },
  { base: '2001:db8::66', len: 128 },
  { base: '2001:db8::2', len: 127 },
  { base: '2001:db8:1::', len: 64 },
  { base: '2001:db8:1::80', len: 122 },
  { base: '2001:db8:1::c8', len: 128 },
  { base: '2001:db8::', len: 32 },
  { base: '2001:db8::1', len: 128 },
  { base: '2001:db8:1::1', len: 128 },
  { base: '2001:db8::', len: 48 },
];
const ICMP6_TYPES: { name: string; type: number; code?: number }[] = [
  { name: 'echo-request', type: 128 },
  { name: 'echo-reply', type: 129 },
  { name: '128/0', type: 128, code: 0 },
  { name: 'destination-unreachable', type: 1 },
  { name: 'port-unreachable', type: 1, code: 4 },
  { name: 'packet-too-big', type: 2 },
  { name: 'time-exceeded', type: 3 },
];
const REJECT_WITH6 = ['icmp6-no-route', 'icmp6-adm-prohibited', 'icmp6-addr-unreachable', 'icmp6-port-unreachable'];
const ICMP_TYPES: { name: string; type: number; code?: number }[] = [
  { name: 'echo-request', type: 8 },
  { name: 'echo-reply', type: 0 },
  { name: '8/0', type: 8, code: 0 },
  { name: 'timestamp-request', type: 13 },
  { name: 'destination-unreachable', type: 3 },
  { name: 'port-unreachable', type: 3, code: 3 },
  { name: 'time-exceeded', type: 11 },
];
const REJECT_WITH = [
  'icmp-net-unreachable', 'icmp-host-unreachable', 'icmp-port-unreachable', 'icmp-proto-unreachable',
  'icmp-net-prohibited', 'icmp-host-prohibited', 'icmp-admin-prohibited',
];

function ip2n(a: string): number {
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}
function n2ip(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}
function inNet(a: string, n: Net): boolean {
  const x = addrBytes(a);
  const b = addrBytes(n.base);
  if (x.length !== b.length) return false;
  let bits = n.len;
  for (let i = 0; i < x.length && bits > 0; i++, bits -= 8) {
    const m = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((x[i] ?? 0) & m) !== ((b[i] ?? 0) & m)) return false;
  }
  return true;
}
function ports(r: Ranged): string {
  return r.lo === r.hi ? String(r.lo) : `${r.lo}:${r.hi}`;
}
function neg(b: boolean): string {
  return b ? '! ' : '';
}

export interface GenOptions {
  seed: number;
  userChains: number;
  rulesPerChain: number;
  /** Include REJECT targets (their replies are compared byte for byte). */
  reject: boolean;
  /** Also a mangle table (TTL, TOS, DSCP, MARK rewrites; filter's -m mark then sees the marks) and a raw table. */
  mangle?: boolean;
  /** ip6tables rules and IPv6 packets (default 4). */
  family?: 4 | 6;
}

const MANGLE_TARGETS = [
  '-j TTL --ttl-set 33', '-j TTL --ttl-dec 1', '-j TTL --ttl-inc 2', '-j TOS --set-tos 0x10', '-j TOS --set-tos 0x08/0x0f',
  '-j TOS --and-tos 0x0f', '-j TOS --or-tos 0x04', '-j TOS --xor-tos 0x1c', '-j DSCP --set-dscp 0x2e', '-j DSCP --set-dscp-class AF21',
  '-j MARK --set-xmark 0x5/0xff', '-j MARK --set-mark 0x1', '-j MARK --or-mark 0x10', '-j MARK --and-mark 0xf0',
  '-j ACCEPT', '-j DROP', '',
];
const MANGLE_CHAINS = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];

/** Rules for a built-in chain of mangle or raw: the matches of a random filter rule with a target of that table. */
function tableRules(rng: Rng, table: 'mangle' | 'raw', chain: string, n: number, o: GenOptions): GenRule[] {
  const out: GenRule[] = [];
  for (let i = 0; i < n; i++) {
    const r = randomRule(rng, chain, directionsOf(chain), [], { ...o, reject: false });
    const matches = r.text.replace(/ -[jg] .*$/, '');
    const mangleTargets = o.family === 6 ? MANGLE_TARGETS.map((t) => t.replace('-j TTL --ttl', '-j HL --hl')) : MANGLE_TARGETS;
    const target = table === 'raw' ? rng.pick(['-j DROP', '-j ACCEPT', '', '']) : rng.pick(mangleTargets);
    // A rule that drops everything would leave nothing for the filter table to see.
    const dropsAll = target === '-j DROP' && !/ -p | -s | -d /.test(matches);
    out.push({ ...r, text: `${matches}${target === '' || dropsAll ? '' : ` ${target}`}` });
  }
  return out;
}

/** A random filter-table ruleset. User chain Un only jumps to Um with m > n, so there are no loops. */
export function generateRuleset(o: GenOptions): GenRuleset {
  const rng = new Rng(o.seed);
  const users = Array.from({ length: o.userChains }, (_, i) => `U${i + 1}`);
  const builtins = ['INPUT', 'FORWARD', 'OUTPUT'];
  const reach = new Map<string, Direction[]>([
    ['INPUT', ['in-c', 'in-s']],
    ['FORWARD', ['fwd-cs', 'fwd-sc']],
    ['OUTPUT', ['out']],
  ]);
  const perChain = new Map<string, GenRule[]>();
  const addReach = (callee: string, from: Direction[]): void => {
    reach.set(callee, [...new Set([...(reach.get(callee) ?? []), ...from])]);
  };
  for (const chain of [...builtins, ...users]) {
    if (users.includes(chain)) {
      // An unconditional jump from an earlier chain, near its top, so this chain's rules see traffic.
      const callers = [...perChain.keys()];
      const caller = rng.pick(callers);
      const list = perChain.get(caller) as GenRule[];
      const jump: GenRule = { chain: caller, text: `-A ${caller} -j ${chain}` };
      list.splice(rng.int(0, Math.min(2, list.length)), 0, jump);
      addReach(chain, reach.get(caller) ?? [...DIRECTIONS]);
    }
    const here = reach.get(chain) ?? [...DIRECTIONS];
    const list: GenRule[] = [];
    perChain.set(chain, list);
    const n = rng.int(Math.max(1, o.rulesPerChain - 3), o.rulesPerChain + 3);
    for (let i = 0; i < n; i++) {
      const r = randomRule(rng, chain, here, users, o);
      list.push(r);
      const j = /-[jg] (U\d+)/.exec(r.text);
      if (j) addReach(j[1] as string, here);
    }
  }
  const rules = [...perChain.values()].flat();
  const body = rules.map((r) => r.text);
  const pol = (): string => (rng.chance(0.35) ? 'DROP' : 'ACCEPT');
  const pre: string[] = [];
  if (o.mangle === true) {
    const mangle = MANGLE_CHAINS.flatMap((c) => tableRules(rng, 'mangle', c, rng.int(1, 4), o));
    const raw = ['PREROUTING', 'OUTPUT'].flatMap((c) => tableRules(rng, 'raw', c, rng.int(0, 2), o));
    rules.push(...mangle, ...raw);
    pre.push('*raw', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ...raw.map((r) => r.text), 'COMMIT');
    pre.push('*mangle', ...MANGLE_CHAINS.map((c) => `:${c} ACCEPT [0:0]`), ...mangle.map((r) => r.text), 'COMMIT');
  }
  const text = [
    ...pre,
    '*filter',
    `:INPUT ${pol()} [0:0]`,
    `:FORWARD ${pol()} [0:0]`,
    `:OUTPUT ${pol()} [0:0]`,
    ...users.map((u) => `:${u} - [0:0]`),
    ...body,
    'COMMIT',
    '',
  ].join('\n');
  return { text, rules, reach, family: o.family ?? 4 };
}

function randomRule(rng: Rng, chain: string, dirs: Direction[], users: string[], o: GenOptions): GenRule {
  const r: GenRule = { chain, text: '' };
  const parts: string[] = [`-A ${chain}`];
  const v6 = o.family === 6;
  const hasIn = dirs.some((d) => d !== 'out');
  const hasOut = dirs.some((d) => d.startsWith('fwd') || d === 'out');
  if (rng.chance(0.25)) {
    r.src = { ...rng.pick(v6 ? NETS6 : NETS), neg: rng.chance(0.2) };
    parts.push(`${neg(r.src.neg)}-s ${r.src.base}/${r.src.len}`);
  }
  if (rng.chance(0.25)) {
    r.dst = { ...rng.pick(v6 ? NETS6 : NETS), neg: rng.chance(0.2) };
    parts.push(`${neg(r.dst.neg)}-d ${r.dst.base}/${r.dst.len}`);
  }
  if (hasIn && chain !== 'OUTPUT' && chain !== 'POSTROUTING' && rng.chance(0.2)) {
    r.inIf = { name: rng.pick(['to-client', 'to-server', 'to-+']), neg: rng.chance(0.3) };
    parts.push(`${neg(r.inIf.neg)}-i ${r.inIf.name}`);
  }
  if (hasOut && chain !== 'INPUT' && chain !== 'PREROUTING' && rng.chance(0.2)) {
    r.outIf = { name: rng.pick(['to-client', 'to-server', 'to-c+']), neg: rng.chance(0.3) };
    parts.push(`${neg(r.outIf.neg)}-o ${r.outIf.name}`);
  }
  const protoRoll = rng.next();
  // A rule with no protocol keeps at least an address, so no rule but the harness's jumps matches everything.
  const icmpProto = v6 ? 58 : 1;
  r.proto = protoRoll < 0.45 ? 6 : protoRoll < 0.75 ? 17 : protoRoll < 0.92 || (r.src === undefined && r.dst === undefined) ? icmpProto : undefined;
  if (r.proto !== undefined) parts.push(`-p ${r.proto === 6 ? 'tcp' : r.proto === 17 ? 'udp' : v6 ? 'ipv6-icmp' : 'icmp'}`);
  if (r.proto === 6 || r.proto === 17) {
    const mod = r.proto === 6 ? 'tcp' : 'udp';
    const m: string[] = [];
    if (rng.chance(0.3)) {
      const lo = rng.pick([1024, 5000, 40000, 40010]);
      r.sport = { lo, hi: rng.chance(0.5) ? lo : lo + rng.int(1, 20), neg: rng.chance(0.2) };
      m.push(`${neg(r.sport.neg)}--sport ${ports(r.sport)}`);
    }
    if (rng.chance(0.6)) {
      const lo = rng.pick([22, 53, 80, 443, 1000, 8080]);
      r.dport = { lo, hi: rng.chance(0.6) ? lo : lo + rng.int(1, 30), neg: rng.chance(0.2) };
      m.push(`${neg(r.dport.neg)}--dport ${ports(r.dport)}`);
    }
    if (r.proto === 6 && rng.chance(0.35)) {
      if (rng.chance(0.4)) {
        r.syn = !rng.chance(0.3);
        m.push(r.syn ? '--syn' : '! --syn');
      } else {
        const maskNames = FLAG_NAMES.filter(() => rng.chance(0.5));
        if (maskNames.length === 0) maskNames.push(['SYN', 2]);
        const compNames = maskNames.filter(() => rng.chance(0.5));
        const mask = maskNames.reduce((a, [, v]) => a | v, 0);
        const comp = compNames.reduce((a, [, v]) => a | v, 0);
        r.flags = { mask, comp, neg: rng.chance(0.2) };
        const names = (l: [string, number][]): string => (l.length === 0 ? 'NONE' : l.map(([n]) => n).join(','));
        m.push(`${neg(r.flags.neg)}--tcp-flags ${names(maskNames)} ${names(compNames)}`);
      }
    }
    if (m.length > 0) parts.push(`-m ${mod}`, ...m);
  }
  if ((r.proto === 1 || r.proto === 58) && rng.chance(0.7)) {
    const t = rng.pick(v6 ? ICMP6_TYPES : ICMP_TYPES);
    r.icmp = { type: t.type, neg: rng.chance(0.2), ...(t.code !== undefined ? { code: t.code } : {}) };
    parts.push(v6 ? '-m icmp6' : '-m icmp', `${neg(r.icmp.neg)}--icmp${v6 ? 'v6' : ''}-type ${t.name}`);
  }
  if ((r.proto === 6 || r.proto === 17) && r.sport === undefined && r.dport === undefined && rng.chance(0.35)) {
    const which = rng.pick(['sports', 'dports', 'ports'] as const);
    const list: Ranged[] = [];
    for (let i = rng.int(1, 4); i > 0; i--) {
      const lo = which === 'sports' ? rng.pick([40000, 40005, 40020, 5000]) : rng.pick([22, 25, 53, 80, 110, 443, 8000]);
      list.push({ lo, hi: rng.chance(0.3) ? lo + rng.int(1, 9) : lo });
    }
    r.multiport = { which, list, neg: rng.chance(0.2) };
    parts.push('-m multiport', `${neg(r.multiport.neg)}--${which} ${list.map(ports).join(',')}`);
  }
  if (!v6 && rng.chance(0.1) && (r.src === undefined || r.dst === undefined)) {
    const which = r.src === undefined ? 'src' : 'dst';
    const pool = rng.pick([CLIENT_ADDRS, SERVER_ADDRS]);
    const a = ip2n(rng.pick(pool));
    const lo = n2ip(a - rng.int(0, 2));
    const hi = n2ip(a + rng.int(0, 70));
    r.iprange = { which, lo, hi, neg: rng.chance(0.25) };
    parts.push('-m iprange', `${neg(r.iprange.neg)}--${which}-range ${lo}-${hi}`);
  }
  if (rng.chance(0.08)) {
    const lo = rng.pick([28, 40, 48, 60, 100]);
    r.length = { lo, hi: rng.chance(0.3) ? lo : lo + rng.int(1, 60), neg: rng.chance(0.2) };
    parts.push('-m length', `${neg(r.length.neg)}--length ${ports(r.length)}`);
  }
  if (rng.chance(0.08)) {
    r.ttl = { op: rng.pick(['eq', 'lt', 'gt'] as const), v: rng.pick([1, 63, 64, 127, 128]), neg: false };
    if (r.ttl.op === 'eq' && rng.chance(0.3)) r.ttl.neg = true;
    parts.push(v6 ? '-m hl' : '-m ttl', `${r.ttl.neg ? '! ' : ''}--${v6 ? 'hl' : 'ttl'}-${r.ttl.op} ${r.ttl.v}`);
  }
  if (rng.chance(0.08)) {
    r.mark = { value: rng.pick([0, 1, 5, 0x10]), mask: rng.pick([0xffffffff, 0xff, 0x0f]), neg: rng.chance(0.3) };
    parts.push('-m mark', `${neg(r.mark.neg)}--mark 0x${r.mark.value.toString(16)}${r.mark.mask === 0xffffffff ? '' : `/0x${r.mark.mask.toString(16)}`}`);
  }
  if (rng.chance(0.08)) {
    r.comment = true;
    parts.push('-m comment', `--comment "rule ${chain} ${rng.int(1, 999)}"`);
  }
  // Only limits whose outcome does not depend on timing: a burst that never runs out within a run, or a rate so
  // low that nothing refills during one (each ruleset runs for a few seconds).
  if (rng.chance(0.07)) {
    parts.push('-m limit', rng.pick(['--limit 1000/sec --limit-burst 1000', `--limit 1/hour --limit-burst ${rng.int(1, 5)}`, `--limit 1/min --limit-burst ${rng.int(1, 5)}`]));
  }
  if (rng.chance(0.07)) {
    const every = rng.int(2, 4);
    parts.push('-m statistic', `--mode nth --every ${every} --packet ${rng.int(0, every - 1)}`);
  }
  const later = users.filter((u) => chain === 'INPUT' || chain === 'FORWARD' || chain === 'OUTPUT' || Number(u.slice(1)) > Number(chain.slice(1)));
  const roll = rng.next();
  const filterOk = chain === 'INPUT' || chain === 'FORWARD' || chain === 'OUTPUT' || chain.startsWith('U');
  if (roll < 0.08) parts.push('-j ACCEPT');
  else if (roll < 0.16) parts.push('-j DROP');
  else if (roll < 0.26 && o.reject && filterOk) {
    if (r.proto === 6 && rng.chance(0.5)) parts.push('-j REJECT --reject-with tcp-reset');
    else parts.push(`-j REJECT --reject-with ${rng.pick(v6 ? REJECT_WITH6 : REJECT_WITH)}`);
  } else if (roll < 0.34 && chain.startsWith('U')) parts.push('-j RETURN');
  else if (roll < 0.68 && later.length > 0) parts.push(`-${rng.chance(0.25) ? 'g' : 'j'} ${rng.pick(later)}`);
  else if (roll < 0.76) parts.push(`-j LOG --log-prefix "nfqw-${chain} "`);
  else if (roll < 0.9) {
    parts.push(rng.pick(['-j MARK --set-xmark 0x5/0xff', '-j MARK --set-xmark 0x1/0xffffffff', '-j MARK --set-xmark 0x10/0x10', '-j MARK --set-xmark 0x0/0xf']));
  }
  // else: no target, a counting rule
  r.text = parts.join(' ');
  return r;
}

function clampPort(p: number): number {
  return Math.min(65535, Math.max(1, p));
}

/** The packet fields a rule's matches ask for, starting from a plausible packet in one of the chain's directions. */
export function hitPacket(rng: Rng, r: GenRule, dirs: Direction[], family: 4 | 6 = 4): PacketSpec {
  let dir = rng.pick(dirs);
  // Prefer a direction whose interfaces fit -i/-o.
  const fits = (d: Direction, dst: string): boolean => {
    const f = interfacesOf({ dir: d, dst });
    const ok = (name: string | undefined, m: { name: string; neg: boolean } | undefined): boolean => {
      if (!m) return true;
      if (name === undefined) return false;
      const match = m.name.endsWith('+') ? name.startsWith(m.name.slice(0, -1)) : name === m.name;
      return match !== m.neg;
    };
    return ok(f.in, r.inIf) && ok(f.out, r.outIf);
  };
  const pool = pools(dir, family);
  const addrFits = (a: string, n: (Net & { neg: boolean }) | undefined, which: 'src' | 'dst'): boolean => {
    if (n && inNet(a, n) === n.neg) return false;
    const ir = r.iprange;
    if (ir && ir.which === which) {
      const x = ip2n(a);
      if ((x >= ip2n(ir.lo) && x <= ip2n(ir.hi)) === ir.neg) return false;
    }
    return true;
  };
  let src = rng.pick(pool.src);
  let dst = rng.pick(pool.dst);
  // Search the directions and pools for addresses and interfaces that fit (random order, first fit wins).
  const tries: Direction[] = [dir, ...dirs.filter((d) => d !== dir)];
  search: for (const d of tries) {
    const p = pools(d, family);
    const srcs = p.src.filter((a) => addrFits(a, r.src, 'src'));
    const dsts = p.dst.filter((a) => addrFits(a, r.dst, 'dst') && fits(d, a));
    if (srcs.length > 0 && dsts.length > 0) {
      dir = d;
      src = rng.pick(srcs);
      dst = rng.pick(dsts);
      break search;
    }
  }
  const icmpProto = family === 4 ? 1 : 58;
  const echo = family === 4 ? 8 : 128;
  const proto = r.proto === 1 || r.proto === 58 ? icmpProto : (r.proto ?? rng.pick([6, 17, icmpProto]));
  const p: PacketSpec = {
    dir, src, dst, proto,
    sport: rng.pick([40000, 40001, 40007, 5000, 1024]),
    dport: rng.pick([80, 22, 443, 53, 1000, 9999]),
    flags: rng.pick([0x02, 0x12, 0x10, 0x18, 0x11, 0x04]),
    icmpType: echo, icmpCode: 0,
    ttl: rng.pick([64, 64, 128, 2, 255]),
    tos: 0,
    payloadLen: rng.pick([0, 0, 4, 12, 40]),
  };
  if (r.sport) p.sport = r.sport.neg ? clampPort(r.sport.hi + 1) : rng.int(r.sport.lo, r.sport.hi);
  if (r.dport) p.dport = r.dport.neg ? clampPort(r.dport.hi + 1) : rng.int(r.dport.lo, r.dport.hi);
  if (r.multiport) {
    const e = rng.pick(r.multiport.list);
    const v = r.multiport.neg ? 61000 : rng.int(e.lo, e.hi);
    if (r.multiport.which === 'sports') p.sport = v;
    else if (r.multiport.which === 'dports') p.dport = v;
    else if (rng.chance(0.5)) p.sport = v;
    else p.dport = v;
  }
  if (r.syn !== undefined) p.flags = r.syn ? 0x02 : 0x12;
  if (r.flags) p.flags = r.flags.neg ? (r.flags.comp ^ r.flags.mask) & 0x3f || 0x10 : (r.flags.comp | (rng.int(0, 63) & ~r.flags.mask)) & 0x3f;
  if (r.icmp) {
    if (r.icmp.neg) p.icmpType = r.icmp.type === echo ? echo + (family === 4 ? -8 : 1) : echo;
    else {
      p.icmpType = r.icmp.type;
      p.icmpCode = r.icmp.code ?? rng.pick([0, 1, 3]);
    }
    if (family === 4 ? p.icmpType === 3 || p.icmpType === 11 : p.icmpType < 128) p.payloadLen = Math.max(p.payloadLen, 48);
  }
  const fwdLike = dir === 'fwd-cs' || dir === 'fwd-sc';
  if (r.ttl) {
    // A forwarded packet's TTL is one less from FORWARD on.
    const want = r.ttl.op === 'eq' ? (r.ttl.neg ? r.ttl.v + 1 : r.ttl.v) : r.ttl.op === 'lt' ? r.ttl.v - 1 : r.ttl.v + 1;
    p.ttl = Math.min(255, Math.max(1, want + (fwdLike && r.chain !== 'INPUT' ? 1 : 0)));
  }
  if (r.length) {
    const want = r.length.neg ? r.length.hi + 1 : rng.int(r.length.lo, r.length.hi);
    p.payloadLen = Math.max(0, want - totalLength({ proto: p.proto, payloadLen: 0, src: p.src }));
  }
  return p;
}

/** The hit packet with one of the rule's fields moved just outside what the rule matches. */
export function nearMiss(rng: Rng, r: GenRule, hit: PacketSpec): PacketSpec {
  const p = { ...hit };
  const options: (() => void)[] = [];
  if (r.sport) options.push(() => (p.sport = clampPort(rng.chance(0.5) ? r.sport!.lo - 1 : r.sport!.hi + 1)));
  if (r.dport) options.push(() => (p.dport = clampPort(rng.chance(0.5) ? r.dport!.lo - 1 : r.dport!.hi + 1)));
  if (r.multiport) options.push(() => {
    const e = rng.pick(r.multiport!.list);
    const v = clampPort(e.hi + 1);
    if (r.multiport!.which === 'sports') p.sport = v;
    else p.dport = v;
  });
  if (r.syn !== undefined || r.flags) options.push(() => (p.flags ^= r.flags ? 1 << rng.int(0, 5) & (r.flags.mask || 2) : 0x10));
  const echo = familyOf(hit.src) === 4 ? 8 : 128;
  const reply = familyOf(hit.src) === 4 ? 0 : 129;
  if (r.icmp) options.push(() => (r.icmp!.code !== undefined ? (p.icmpCode = r.icmp!.code + 1) : (p.icmpType = r.icmp!.type === reply ? echo : reply)));
  if (r.proto !== undefined) options.push(() => (p.proto = r.proto === 6 ? 17 : 6));
  if (r.ttl) options.push(() => (p.ttl = Math.min(255, Math.max(1, p.ttl + (rng.chance(0.5) ? 1 : -1)))));
  if (r.length) options.push(() => {
    const total = totalLength(p);
    const target = rng.chance(0.5) ? r.length!.lo - 1 : r.length!.hi + 1;
    p.payloadLen = Math.max(0, p.payloadLen + target - total);
  });
  if (r.src || r.dst || r.iprange) options.push(() => {
    const which = r.src ? 'src' : r.dst ? 'dst' : r.iprange!.which;
    const pool = pools(p.dir, familyOf(hit.src))[which];
    const other = pool.filter((a) => a !== p[which]);
    if (other.length > 0) p[which] = rng.pick(other);
  });
  if (options.length === 0) options.push(() => (p.ttl = p.ttl === 64 ? 65 : 64));
  rng.pick(options)();
  return p;
}

/** For every rule: hits and near misses, shuffled lightly, plus some plain random packets. */
export function generatePackets(rs: GenRuleset, seed: number, perRule: number): PacketSpec[] {
  const rng = new Rng(seed ^ 0x5eed);
  const out: PacketSpec[] = [];
  for (const r of rs.rules) {
    const dirs = rs.reach.get(r.chain) ?? directionsOf(r.chain);
    for (let i = 0; i < perRule; i++) {
      const hit = hitPacket(rng, r, dirs, rs.family);
      out.push(hit);
      out.push(nearMiss(rng, r, hit));
    }
  }
  for (let i = 0; i < 10; i++) {
    const dir = rng.pick(DIRECTIONS);
    const pool = pools(dir, rs.family);
    const icmp = rs.family === 4 ? 1 : 58;
    out.push({
      dir, src: rng.pick(pool.src), dst: rng.pick(pool.dst), proto: rng.pick([6, 17, icmp]), sport: 40000 + i, dport: 80,
      flags: 2, icmpType: rs.family === 4 ? 8 : 128, icmpCode: 0, ttl: 64, tos: 0, payloadLen: 0,
    });
  }
  return out;
}

function tokens(text: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) out.push(m[1] ?? m[2] ?? '');
  return out;
}

function portRange(v: string): Ranged {
  const [lo, hi] = v.split(':');
  const l = lo === '' || lo === undefined ? 0 : Number(lo);
  const h = hi === undefined ? l : hi === '' ? 65535 : Number(hi);
  return { lo: l, hi: h };
}

const FLAG_BITS: Record<string, number> = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16, URG: 32, ALL: 63, NONE: 0 };
function flagBits(v: string): number {
  return v.split(',').reduce((a, n) => a | (FLAG_BITS[n] ?? 0), 0);
}
const ICMP_NAMES: Record<string, [number, number?]> = {
  'echo-reply': [0], 'destination-unreachable': [3], 'port-unreachable': [3, 3], 'echo-request': [8],
  'time-exceeded': [11], 'timestamp-request': [13], 'parameter-problem': [12], any: [8],
  'router-advertisement': [134], 'router-solicitation': [133], 'neighbour-solicitation': [135],
  'neighbour-advertisement': [136], 'packet-too-big': [2], 'redirect': [137],
};

/**
 * The fields the packet generator can aim at, read from a rule as kernel iptables-save prints it (`-A CHAIN ...`).
 * Matches it cannot aim at (conntrack state, interfaces of other machines, ...) are left to chance.
 */
export function ruleFromText(line: string): GenRule | undefined {
  const t = tokens(line);
  if (t[0] !== '-A' || t[1] === undefined) return undefined;
  const r: GenRule = { chain: t[1], text: line };
  let negNext = false;
  for (let i = 2; i < t.length; i++) {
    const tok = t[i] as string;
    const val = t[i + 1] ?? '';
    const neg = negNext;
    negNext = false;
    switch (tok) {
      case '!':
        negNext = true;
        break;
      case '-p':
        r.proto = val === 'tcp' ? 6 : val === 'udp' ? 17 : val === 'icmp' ? 1 : /^(ipv6-icmp|icmpv6|icmp6|58)$/.test(val) ? 58 : undefined;
        i++;
        break;
      case '-s':
      case '-d': {
        const [base, len] = val.split('/');
        const net = { base: base ?? val, len: len === undefined ? 32 : Number(len), neg };
        if (tok === '-s') r.src = net;
        else r.dst = net;
        i++;
        break;
      }
      case '-i':
      case '-o':
        if (tok === '-i') r.inIf = { name: val, neg };
        else r.outIf = { name: val, neg };
        i++;
        break;
      case '--sport':
      case '--dport': {
        const pr = { ...portRange(val), neg };
        if (tok === '--sport') r.sport = pr;
        else r.dport = pr;
        i++;
        break;
      }
      case '--sports':
      case '--dports':
      case '--ports':
        r.multiport = { which: tok.slice(2) as 'sports' | 'dports' | 'ports', list: val.split(',').map(portRange), neg };
        i++;
        break;
      case '--tcp-flags':
        r.flags = { mask: flagBits(val), comp: flagBits(t[i + 2] ?? ''), neg };
        i += 2;
        break;
      case '--icmpv6-type':
      case '--icmp-type': {
        const [ty, code] = val.includes('/') ? val.split('/').map(Number) : (ICMP_NAMES[val] ?? [Number(val)]);
        r.icmp = { type: ty ?? 8, neg, ...(code !== undefined ? { code } : {}) };
        i++;
        break;
      }
      default:
        break;
    }
  }
  return r;
}

/** Which directions through fw reach a built-in chain; user chains may be reached from anywhere. */
export function directionsOf(chain: string): Direction[] {
  switch (chain) {
    case 'INPUT':
      return ['in-c', 'in-s'];
    case 'FORWARD':
      return ['fwd-cs', 'fwd-sc'];
    case 'OUTPUT':
      return ['out'];
    case 'PREROUTING':
      return ['in-c', 'in-s', 'fwd-cs', 'fwd-sc'];
    case 'POSTROUTING':
      return ['fwd-cs', 'fwd-sc', 'out'];
    default:
      return [...DIRECTIONS];
  }
}
