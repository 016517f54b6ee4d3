// VALUE[/MASK] arguments with names (realm, devgroup): xtables_parse_val_mask and the matching print functions.
import type { OptionUse } from '../types';
import { failArg, parseUintWord } from './b-opts';
import { nameOf } from './b-names';

export interface ValMask {
  value: number;
  mask: number;
  invert: boolean;
}

export function parseValMask(use: OptionUse, names: Map<string, number>, ext: string): ValMask {
  const word = use.args[0] ?? '';
  const byName = names.get(word);
  if (byName !== undefined) return { value: byName, mask: 0xffffffff, invert: use.negated };
  const slash = word.indexOf('/');
  const v = parseUintWord(slash < 0 ? word : word.slice(0, slash));
  const m = slash < 0 ? 0xffffffff : parseUintWord(word.slice(slash + 1));
  if (v === undefined || m === undefined) failArg(use, `${ext}: Bad value for "--${use.name}" option: "${word}"`);
  return { value: v!, mask: m!, invert: use.negated };
}

/** The name when the mask is full and one is known, else 0xVALUE[/0xMASK]. */
export function formatValMask(v: ValMask, names: Map<string, number>): string {
  if (v.mask === 0xffffffff) {
    const n = nameOf(names, v.value);
    if (n !== undefined) return n;
    return `0x${v.value.toString(16)}`;
  }
  return `0x${v.value.toString(16)}/0x${v.mask.toString(16)}`;
}
