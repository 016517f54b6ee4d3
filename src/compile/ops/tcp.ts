// tcp (src/extensions/tcp.ts): the nft payload form, and the xt form without --tcp-option (an option walk: SLOW).
import type { TcpOptions } from '../../extensions/tcp';
import { tcpUsesXt } from '../../extensions/tcp';
import { OP } from './format';
import { b, op, type MatchEncoder } from './op';

export const tcp: MatchEncoder = (m) => {
  const o = m.opts as TcpOptions;
  const xt = tcpUsesXt(o);
  if (xt && (o.option !== 0 || o.optionInvert)) return undefined;
  return op(OP.TCP, [
    b(!xt),
    o.sport.min,
    o.sport.max,
    b(o.sportInvert),
    o.dport.min,
    o.dport.max,
    b(o.dportInvert),
    o.flagMask,
    o.flagCmp,
    b(o.flagsInvert),
  ]);
};
