// -m addrtype, revision 1 (libxt_addrtype.c, kernel xt_addrtype.c). The address type comes from the host's routing
// view (ctx.host.addressType, which mirrors `ip route get`), limited to the in/out device's table on request.
import type { AddrType, MatchContext, MatchExtension, OptionUse } from './types';
import { badArg, badMatch, badOpt, bang, byName } from './util/opts';

/** RTN_* numbering: bit i of a type mask is type i. */
export const ADDR_TYPES: readonly AddrType[] = [
  'UNSPEC',
  'UNICAST',
  'LOCAL',
  'BROADCAST',
  'ANYCAST',
  'MULTICAST',
  'BLACKHOLE',
  'UNREACHABLE',
  'PROHIBIT',
  'THROW',
  'NAT',
  'XRESOLVE',
];

const bit = (t: AddrType): number => 1 << ADDR_TYPES.indexOf(t);

export interface AddrtypeOptions {
  /** Type masks; 0 = not tested. */
  source: number;
  sourceInvert: boolean;
  dest: number;
  destInvert: boolean;
  limitIface?: 'in' | 'out';
}

function parseTypes(use: OptionUse): number {
  let mask = 0;
  for (const word of (use.args[0] ?? '').split(',')) {
    const i = ADDR_TYPES.indexOf(word.toUpperCase() as AddrType);
    if (i < 0) badArg(use, `addrtype: bad type "${word}"`);
    mask |= 1 << i;
  }
  return mask;
}

function formatTypes(mask: number): string {
  return ADDR_TYPES.filter((_, i) => mask & (1 << i)).join(',');
}

/** Built-in chains where the kernel accepts each interface limit (addrtype_mt_checkentry_v1). */
const IN_HOOKS = new Set(['PREROUTING', 'INPUT', 'FORWARD']);
const OUT_HOOKS = new Set(['OUTPUT', 'POSTROUTING', 'FORWARD']);
const BUILTIN = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/** The kernel's IPv6 rules (match_type6): multicast/unicast/unspec from the address itself, the rest from routes. */
function matchType6(ctx: MatchContext, addr: Uint8Array, mask: number, iface: string | undefined): boolean {
  const multicast = addr[0] === 0xff;
  const any = addr.every((b) => b === 0);
  if (mask & bit('MULTICAST') && !multicast) return false;
  if (mask & bit('UNICAST') && (multicast || any)) return false;
  if (mask & bit('UNSPEC') && !any) return false;
  const routed = bit('LOCAL') | bit('ANYCAST') | bit('UNREACHABLE');
  if (mask & routed) {
    const t = ctx.host.addressType(6, addr, iface);
    return (mask & routed & bit(t)) !== 0;
  }
  return true;
}

function matchType(ctx: MatchContext, addr: Uint8Array, mask: number, iface: string | undefined): boolean {
  if (ctx.pkt.family === 6) return matchType6(ctx, addr, mask, iface);
  return (mask & bit(ctx.host.addressType(4, addr, iface))) !== 0;
}

const addrtype: MatchExtension<AddrtypeOptions> = {
  kind: 'match',
  flowStable: () => true,
  name: 'addrtype',
  options: [
    { name: 'src-type', args: 1, invertible: true },
    { name: 'dst-type', args: 1, invertible: true },
    { name: 'limit-iface-in', args: 0 },
    { name: 'limit-iface-out', args: 0 },
  ],
  parse(opts, ctx) {
    const m = byName(opts, 'addrtype');
    const both = m.get('limit-iface-in') && m.get('limit-iface-out');
    if (both) badOpt(both, 'addrtype: option "--limit-iface-in" cannot be used together with "--limit-iface-out".');
    const o: AddrtypeOptions = { source: 0, sourceInvert: false, dest: 0, destInvert: false };
    const src = m.get('src-type');
    const dst = m.get('dst-type');
    if (!src && !dst) badMatch(ctx, 'addrtype: you must specify --src-type or --dst-type');
    for (const u of [src, dst]) {
      if (!u) continue;
      const mask = parseTypes(u);
      if (ctx.family === 6) {
        // addrtype_mt_checkentry_v1 refuses these for IPv6 (the kernel answers EINVAL).
        if (mask & bit('BLACKHOLE')) badArg(u, 'addrtype: ipv6 BLACKHOLE matching not supported');
        if (mask & bit('PROHIBIT')) badArg(u, 'addrtype: ipv6 PROHIBIT (THROW, NAT ..) matching not supported');
        if (mask & bit('BROADCAST')) badArg(u, 'addrtype: ipv6 does not support BROADCAST matching');
      }
      if (u === src) {
        o.source = mask;
        o.sourceInvert = u.negated;
      } else {
        o.dest = mask;
        o.destInvert = u.negated;
      }
    }
    const lin = m.get('limit-iface-in');
    const lout = m.get('limit-iface-out');
    // Only built-in chains are checked here; user chains need the callers' hooks (validation).
    if (lin) {
      if (BUILTIN.has(ctx.chain) && !IN_HOOKS.has(ctx.chain))
        badOpt(lin, 'addrtype: --limit-iface-in is only valid in PREROUTING, INPUT and FORWARD');
      o.limitIface = 'in';
    }
    if (lout) {
      if (BUILTIN.has(ctx.chain) && !OUT_HOOKS.has(ctx.chain))
        badOpt(lout, 'addrtype: --limit-iface-out is only valid in OUTPUT, POSTROUTING and FORWARD');
      o.limitIface = 'out';
    }
    return o;
  },
  format(o) {
    const out: string[] = [];
    if (o.source) out.push(`${bang(o.sourceInvert)}--src-type ${formatTypes(o.source)}`);
    if (o.dest) out.push(`${bang(o.destInvert)}--dst-type ${formatTypes(o.dest)}`);
    if (o.limitIface === 'in') out.push('--limit-iface-in');
    if (o.limitIface === 'out') out.push('--limit-iface-out');
    return out.join(' ');
  },
  match(o, ctx) {
    const iface = o.limitIface === 'in' ? ctx.meta.inIface : o.limitIface === 'out' ? ctx.meta.outIface : undefined;
    if (o.source && matchType(ctx, ctx.pkt.src, o.source, iface) === o.sourceInvert) return false;
    if (o.dest && matchType(ctx, ctx.pkt.dst, o.dest, iface) === o.destInvert) return false;
    return true;
  },
};

export default addrtype;
