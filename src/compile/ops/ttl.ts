// ttl and hl (src/extensions/util/ttlhl.ts): the IPv4 TTL or the IPv6 hop limit against a value.
import type { TtlHlOptions } from '../../extensions/util/ttlhl';
import { OP } from './format';
import { op, type MatchEncoder } from './op';

const MODE = { eq: 0, ne: 1, lt: 2, gt: 3 } as const;

export const ttl: MatchEncoder = (m) => {
  const o = m.opts as TtlHlOptions;
  return op(OP.TTL, [MODE[o.mode], o.value]);
};
