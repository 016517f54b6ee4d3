// addrtype with LOCAL alone in --src-type/--dst-type and no interface limit: the host's own addresses (mt::Host).
// Every other type asks routes the matcher is not given: SLOW.
import { ADDR_TYPES, type AddrtypeOptions } from '../../extensions/addrtype';
import { OP } from './format';
import { b, op, type MatchEncoder } from './op';

const LOCAL = 1 << ADDR_TYPES.indexOf('LOCAL');

export const addrtype: MatchEncoder = (m) => {
  const o = m.opts as AddrtypeOptions;
  if (o.limitIface !== undefined) return undefined;
  if ((o.source !== 0 && o.source !== LOCAL) || (o.dest !== 0 && o.dest !== LOCAL)) return undefined;
  return op(OP.ADDRTYPE, [b(o.source !== 0), b(o.sourceInvert), b(o.dest !== 0), b(o.destInvert)]);
};
