// multiport (src/extensions/multiport.ts): at most 15 slots, so at most 15 items.
import type { MultiportOptions } from '../../extensions/multiport';
import { OP } from './format';
import { b, op, type MatchEncoder } from './op';

const DIR = { sports: 0, dports: 1, ports: 2 } as const;

export const multiport: MatchEncoder = (m) => {
  const o = m.opts as MultiportOptions;
  if (o.items.length > 15) return undefined;
  return op(OP.MULTIPORT, [DIR[o.dir], b(o.invert), o.items.length, ...o.items.flatMap((i) => [i.min, i.max])]);
};
