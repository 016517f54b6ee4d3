// -m iprange, revision 1 (libxt_iprange.c, kernel xt_iprange.c): inclusive address ranges `a-b` (or one address).
// A reversed range is accepted and never matches, as in the kernel.
import { formatIpAddr, parseIpAddr } from '../rules/addr';
import type { Family } from '../rules/model';
import type { MatchExtension, OptionUse } from './types';
import { badArg, badMatch, bang, byName } from './util/opts';

export interface IpRange {
  min: Uint8Array;
  max: Uint8Array;
  invert: boolean;
}

export interface IprangeOptions {
  src?: IpRange;
  dst?: IpRange;
}

function parseRange(use: OptionUse, family: Family): IpRange {
  const word = use.args[0] ?? '';
  const dash = word.indexOf('-');
  const parts = dash < 0 ? [word, word] : [word.slice(0, dash), word.slice(dash + 1)];
  const [min, max] = parts.map((p) => {
    const a = parseIpAddr(p, family);
    if (!a) badArg(use, `iprange: Bad value for "--${use.name}" option: "${p}"`);
    return a;
  });
  return { min, max, invert: use.negated };
}

/** Big-endian comparison of two addresses of one family. */
function cmp(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

function inRange(r: IpRange, addr: Uint8Array): boolean {
  if (addr.length !== r.min.length) return false;
  return (cmp(addr, r.min) >= 0 && cmp(addr, r.max) <= 0) !== r.invert;
}

const iprange: MatchExtension<IprangeOptions> = {
  kind: 'match',
  flowStable: () => true,
  name: 'iprange',
  options: [
    { name: 'src-range', args: 1, invertible: true },
    { name: 'dst-range', args: 1, invertible: true },
  ],
  parse(opts, ctx) {
    const m = byName(opts, 'iprange');
    const src = m.get('src-range');
    const dst = m.get('dst-range');
    if (!src && !dst) badMatch(ctx, "iprange match: You must specify `--src-range' or `--dst-range'");
    const o: IprangeOptions = {};
    if (src) o.src = parseRange(src, ctx.family);
    if (dst) o.dst = parseRange(dst, ctx.family);
    return o;
  },
  format(o) {
    const out: string[] = [];
    if (o.src) out.push(`${bang(o.src.invert)}--src-range ${formatIpAddr(o.src.min)}-${formatIpAddr(o.src.max)}`);
    if (o.dst) out.push(`${bang(o.dst.invert)}--dst-range ${formatIpAddr(o.dst.min)}-${formatIpAddr(o.dst.max)}`);
    return out.join(' ');
  },
  match(o, ctx) {
    if (o.src && !inRange(o.src, ctx.pkt.src)) return false;
    if (o.dst && !inRange(o.dst, ctx.pkt.dst)) return false;
    return true;
  },
};

export default iprange;
