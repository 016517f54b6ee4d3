// Which exact key, if any, a rule *requires* of every packet it matches, such that a packet without that key can skip
// the rule with no observable difference. The chain index (chain-index.ts) files each rule under its key.
//
// When skipping is exact (worked out from Engine.walk, engine.ts):
//  - The engine checks the base fields first, in this order: -s, -d, -i, -o, -p, -f. Each is a pure compare, except
//    that -p on IPv6 hotdrops when the header chain is broken (ipv6HeaderChainBroken), and that check runs only after
//    -s/-d/-i/-o passed. Then the matches run in order, stopping at the first that fails; any of them may set hotdrop
//    (the packet is dropped, the rule not counted) or keep per-rule state, or touch shared state (recent lists, quota,
//    limit buckets, statistic nth counters).
//  - So a rule may be skipped for a packet only if its evaluation would certainly return "no match" *before* anything
//    with an effect runs: a failing base field, or a failing match that is preceded only by matches that are pure
//    (no createState, never hotdrop, never write the context) and that itself fails without effect.
//  - Keys from base fields: -d a/32 (/128), -i NAME, -o NAME (no '+' wildcard), none negated: always safe, since
//    they are compared before -p could hotdrop. -p P (not negated, not 0) is safe on IPv4; on IPv6 it is safe only
//    when the packet's header chain is not broken, so the lookup declines to index such packets (the whole chain is
//    walked, as without the index).
//  - Keys from matches: a single, non-negated destination port of tcp (only in the form iptables-nft lowers to payload
//    compares, which never hotdrop: no --tcp-option, see tcpUsesXt), udp/udplite (with a port test: the empty form
//    hotdrops) or sctp (whose xt match hotdrops when the 12-byte common header is cut short: the lookup then takes
//    every port-keyed sctp rule as a candidate); and `-m mark --mark v/m` not negated. Each only when every match
//    before it in the rule is in PURE_MATCHES. A later match in the rule does not matter: when the key fails the
//    engine never reaches it.
//  - Rules without such a key (negated or ranged fields, prefix wildcards, stateful matches first) are wildcards:
//    candidates for every packet.
//  - The packet's keys can change while a chain is walked: MARK and CONNMARK targets write the mark, mangle targets
//    rewrite bytes, a jumped-to chain may do either. The engine looks the chain up again after every target that
//    continues and on every return, so a lookup always reflects the packet as the next rule would see it.
import type { MatchUse, Rule } from '../rules/model';
import { tcpUsesXt, type TcpOptions } from '../extensions/tcp';
import type { UdpOptions } from '../extensions/udp';
import type { SctpOptions } from '../extensions/sctp';
import type { MarkMask } from '../extensions/util/markmask';
import { isAllPorts, noPortTest } from '../extensions/util/ports';

/**
 * Matches that only read the packet, its metadata, the connection, the host or the sets: no createState, no hotdrop,
 * no writes to the context (checked by reading each module). A rule's key match may follow any number of these.
 */
export const PURE_MATCHES: ReadonlySet<string> = new Set([
  'comment',
  'mark',
  'connmark',
  'conntrack',
  'state',
  'addrtype',
  'pkttype',
  'mac',
  'physdev',
  'iprange',
  'set',
  'ttl',
  'hl',
  'tos',
  'dscp',
  'ecn',
  'length',
  'owner',
  'devgroup',
  'helper',
]);

/** The protocols whose --dport a key may come from, and how many transport bytes the match needs to read it. */
export const PORT_PROTOCOLS: ReadonlyMap<number, { ext: string; need: number; hotdropsShort: boolean }> = new Map([
  [6, { ext: 'tcp', need: 4, hotdropsShort: false }],
  [17, { ext: 'udp', need: 4, hotdropsShort: false }],
  [136, { ext: 'udplite', need: 4, hotdropsShort: false }],
  [132, { ext: 'sctp', need: 12, hotdropsShort: true }],
]);

export type RuleKey =
  | { kind: 'dst'; dst: DstKey; proto?: number; port?: number }
  | { kind: 'mark'; mask: number; value: number }
  | { kind: 'in'; iface: string }
  | { kind: 'out'; iface: string }
  | { kind: 'wild' };

/** An exact address as a hash key: the IPv4 address as a number, an IPv6 one as an 8-character string. */
export type DstKey = number | string;

export function dstKey(a: Uint8Array): DstKey {
  if (a.length === 4) return ((a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]) >>> 0;
  let s = '';
  for (let i = 0; i < a.length; i += 2) s += String.fromCharCode((a[i] << 8) | a[i + 1]);
  return s;
}

function fullMask(m: Uint8Array): boolean {
  for (let i = 0; i < m.length; i++) if (m[i] !== 0xff) return false;
  return true;
}

function pure(m: MatchUse): boolean {
  const e = m.ext;
  return (
    PURE_MATCHES.has(e.name) &&
    e.match !== undefined &&
    e.createState === undefined &&
    e.unsupported === undefined &&
    e.unsupportedFor?.(m.opts) === undefined
  );
}

/** The single destination port a protocol match requires, when it fails without effect on any other port. */
function requiredPort(m: MatchUse, proto: number): number | undefined {
  const spec = PORT_PROTOCOLS.get(proto);
  if (!spec || m.ext.name !== spec.ext || m.ext.protocolMatch !== proto || m.ext.match === undefined) return undefined;
  if (m.ext.createState !== undefined) return undefined;
  if (spec.ext === 'tcp') {
    const o = m.opts as TcpOptions;
    if (tcpUsesXt(o) || o.dportInvert || o.dport.min !== o.dport.max) return undefined;
    return o.dport.min;
  }
  if (spec.ext === 'sctp') {
    const o = m.opts as SctpOptions;
    if (!o.dport || o.dport.invert || o.dport.min !== o.dport.max) return undefined;
    return o.dport.min;
  }
  const o = m.opts as UdpOptions;
  if (noPortTest(o) || o.dportInvert || o.dport.min !== o.dport.max || isAllPorts(o.dport)) return undefined;
  return o.dport.min;
}

/** A safe key match: the first non-pure match ends the search (it must run for every packet that reaches it). */
function keyMatch<T>(rule: Rule, pick: (m: MatchUse) => T | undefined): T | undefined {
  for (const m of rule.matches) {
    const k = pick(m);
    if (k !== undefined) return k;
    if (!pure(m)) return undefined;
  }
  return undefined;
}

/** The most selective key the rule requires (see the header comment for why each is exact). */
export function ruleKey(rule: Rule): RuleKey {
  const d = rule.dst;
  if (d && !d.negated && fullMask(d.value.mask)) {
    const dst = dstKey(d.value.addr);
    const p = rule.proto;
    if (!p || p.negated || p.value === 0) return { kind: 'dst', dst };
    const proto = p.value;
    const port = keyMatch(rule, (m) => requiredPort(m, proto));
    return port === undefined ? { kind: 'dst', dst, proto } : { kind: 'dst', dst, proto, port };
  }
  const mark = keyMatch(rule, (m) => {
    if (m.ext.name !== 'mark' || !pure(m)) return undefined;
    const o = m.opts as MarkMask;
    return o.invert ? undefined : o;
  });
  if (mark) return { kind: 'mark', mask: mark.mask >>> 0, value: mark.mark >>> 0 };
  const i = rule.inIface;
  if (i && !i.negated && !i.value.endsWith('+')) return { kind: 'in', iface: i.value };
  const o = rule.outIface;
  if (o && !o.negated && !o.value.endsWith('+')) return { kind: 'out', iface: o.value };
  return { kind: 'wild' };
}
