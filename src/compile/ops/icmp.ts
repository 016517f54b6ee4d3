// icmp and icmp6 (src/extensions/icmp.ts, icmp6.ts); type 0xff is icmp's "any" (IPv4 only).
import type { IcmpOptions } from '../../extensions/icmp';
import { OP } from './format';
import { b, op, type MatchEncoder } from './op';

export const icmp: MatchEncoder = (m) => {
  const o = m.opts as IcmpOptions;
  const proto = m.ext.name === 'icmp' ? 1 : 58;
  return op(OP.ICMP, [proto, o.type, o.codeMin, o.codeMax, b(o.invert), b(proto === 1 && o.type === 0xff)]);
};
