// udp and udplite (src/extensions/udp.ts): the protocol is the one the module serves.
import type { UdpOptions } from '../../extensions/udp';
import { OP } from './format';
import { b, op, type MatchEncoder } from './op';

export const udp: MatchEncoder = (m) => {
  const o = m.opts as UdpOptions;
  const proto = m.ext.protocolMatch;
  if (proto === undefined) return undefined;
  return op(OP.UDP, [proto, o.sport.min, o.sport.max, b(o.sportInvert), o.dport.min, o.dport.max, b(o.dportInvert)]);
};
