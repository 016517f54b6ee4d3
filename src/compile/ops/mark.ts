// mark and connmark (src/extensions/mark.ts, connmark.ts): (mark & mask) == value, XOR the inversion.
import type { MarkMask } from '../../extensions/util/markmask';
import { OP } from './format';
import { b, op, type MatchEncoder } from './op';

export const mark: MatchEncoder = (m) => {
  const o = m.opts as MarkMask;
  return op(OP.MARK, [o.mark, o.mask, b(o.invert)]);
};

export const connmark: MatchEncoder = (m) => {
  const o = m.opts as MarkMask;
  return op(OP.CONNMARK, [o.mark, o.mask, b(o.invert)]);
};
