// value[/mask] words for MARK, CONNMARK and TPROXY (libxtables XTTYPE_MARKMASK32): both parts strtoul base 0 up to
// 0xffffffff; a missing mask means all bits.
import { parseUInt } from '../../rules/services';
import { RuleError, type OptionUse } from '../types';

export interface MarkMask {
  value: number;
  mask: number;
}

export function parseMarkMask(ext: string, u: OptionUse, i = 0): MarkMask {
  const word = u.args[i] ?? '';
  const loc = u.argLocs[i] ?? u.loc;
  const parts = word.split('/');
  if (parts.length > 2)
    throw new RuleError(`${ext}: trailing garbage after value for option "--${u.name}".`, loc);
  const value = parseUInt(parts[0], 0xffffffff);
  const mask = parts.length === 2 ? parseUInt(parts[1], 0xffffffff) : 0xffffffff;
  if (value === undefined || mask === undefined)
    throw new RuleError(`${ext}: bad integer value for option "--${u.name}", or out of range.`, loc);
  return { value, mask };
}

/** `(mark & ~mask) ^ value` as an unsigned 32-bit number: the kernel's xmark operation. */
export function xmark(mark: number, value: number, mask: number): number {
  return ((mark & ~mask) ^ value) >>> 0;
}
