// iprange (src/extensions/iprange.ts): inclusive big-endian ranges of the rule's family.
import type { IprangeOptions } from '../../extensions/iprange';
import { OP, addrWords } from './format';
import { b, op, type MatchEncoder } from './op';

export const iprange: MatchEncoder = (m, family) => {
  const o = m.opts as IprangeOptions;
  const len = family === 4 ? 4 : 16;
  for (const r of [o.src, o.dst]) if (r && (r.min.length !== len || r.max.length !== len)) return undefined;
  const part = (r: IprangeOptions['src']): number[] =>
    r ? [1, b(r.invert), ...addrWords(r.min), ...addrWords(r.max)] : [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  return op(OP.IPRANGE, [...part(o.src), ...part(o.dst)]);
};
