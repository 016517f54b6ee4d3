// `value[/mask]` as XTTYPE_MARKMASK32 reads it and mark_mt_save / connmark_mt_save print it.
import type { OptionUse } from '../types';
import { badArg, hex, parseUintWord } from './opts';

export interface MarkMask {
  mark: number;
  mask: number;
  invert: boolean;
}

export function parseMarkMask(use: OptionUse, ext: string): MarkMask {
  const word = use.args[0] ?? '';
  const slash = word.indexOf('/');
  const v = parseUintWord(slash < 0 ? word : word.slice(0, slash));
  const m = slash < 0 ? 0xffffffff : parseUintWord(word.slice(slash + 1));
  if (v === undefined || m === undefined)
    badArg(use, `${ext}: bad integer value for option "--${use.name}", or out of range.`);
  return { mark: v, mask: m, invert: use.negated };
}

export function formatMarkMask(o: MarkMask): string {
  return `${o.invert ? '! ' : ''}--mark ${hex(o.mark)}${o.mask === 0xffffffff ? '' : `/${hex(o.mask)}`}`;
}

/** (mark & mask) == value, XOR the inversion (xt_mark.c, xt_connmark.c). */
export function markMatches(o: MarkMask, mark: number): boolean {
  return (((mark & o.mask) >>> 0) === o.mark) !== o.invert;
}
