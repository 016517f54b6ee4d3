// statistic (src/extensions/statistic.ts): --mode random draws one 31-bit number per evaluation, as the engine's
// ctx.random31(). nth keeps a counter per rule in JavaScript: SLOW.
import type { StatisticOptions } from '../../extensions/statistic';
import { OP } from './format';
import { b, op, type MatchEncoder } from './op';

export const statistic: MatchEncoder = (m) => {
  const o = m.opts as StatisticOptions;
  if (o.mode !== 'random') return undefined;
  return op(OP.STATISTIC, [o.probability, b(o.invert)]);
};
