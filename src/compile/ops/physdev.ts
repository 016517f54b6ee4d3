// physdev (src/extensions/physdev.ts): the bridge ports the packet came in and goes out on, as interface names.
import type { PhysdevOptions } from '../../extensions/physdev';
import { OP } from './format';
import { b, op, type MatchEncoder } from './op';

const enc = new TextEncoder();

/** A name (without its '+') as 4 words, NUL padded; undefined past 15 bytes. */
function name(n: string): number[] | undefined {
  const bytes = enc.encode(n);
  if (bytes.length > 15) return undefined;
  const w = [0, 0, 0, 0];
  bytes.forEach((c, i) => (w[i >> 2] = (w[i >> 2] | (c << (8 * (i & 3)))) >>> 0));
  return w;
}

export const physdev: MatchEncoder = (m) => {
  const o = m.opts as PhysdevOptions;
  const side = (d: PhysdevOptions['in']): number[] | undefined => {
    if (!d) return [0, 0, 0, 0, 0, 0, 0];
    const plus = d.name.endsWith('+');
    const w = name(plus ? d.name.slice(0, -1) : d.name);
    return w && [1, b(d.invert), b(plus), ...w];
  };
  const flag = (f: PhysdevOptions['isIn']): number[] => (f ? [1, b(f.invert)] : [0, 0]);
  const i = side(o.in);
  const out = side(o.out);
  if (!i || !out) return undefined;
  return op(OP.PHYSDEV, [...i, ...out, ...flag(o.isIn), ...flag(o.isOut), ...flag(o.isBridged)]);
};
