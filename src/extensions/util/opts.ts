// Helpers the part-A match modules share: located errors, option lookup, and numbers as libxtables reads them.
import { RuleError, type OptionUse, type ParseContext } from '../types';
import type { SourceLocation } from '../../rules/model';

/** The location of an option's argument, or of the option word when it has none. */
export function argLoc(use: OptionUse, i = 0): SourceLocation {
  return use.argLocs[i] ?? use.loc;
}

/** Refuse an option's value, pointing at the value. */
export function badArg(use: OptionUse, message: string, i = 0): never {
  throw new RuleError(message, argLoc(use, i));
}

/** Refuse an option itself (conflicts, misuse), pointing at the option word. */
export function badOpt(use: OptionUse, message: string): never {
  throw new RuleError(message, use.loc);
}

/** Refuse the match as a whole (a required option is missing), pointing at `-m name`. */
export function badMatch(ctx: ParseContext, message: string): never {
  throw new RuleError(message, ctx.loc);
}

/**
 * The options by canonical name. The parser already refuses repeats of non-repeatable options; this refuses them
 * again (with iptables' message) so a module stays correct when called directly.
 */
export function byName(opts: OptionUse[], ext: string): Map<string, OptionUse> {
  const m = new Map<string, OptionUse>();
  for (const o of opts) {
    if (m.has(o.name)) badOpt(o, `${ext}: option "--${o.name}" can only be used once.`);
    m.set(o.name, o);
  }
  return m;
}

/**
 * strtoul(s, &end, 0) over the whole word (xtables_strtoui): decimal, 0x hex or 0-prefixed octal.
 * Undefined when it is not a number or exceeds max.
 */
export function parseUintWord(word: string, max = 0xffffffff): number | undefined {
  const m = /^\s*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(word);
  if (!m) return undefined;
  const text = m[1];
  let v: number;
  if (/^0[xX]/.test(text)) v = parseInt(text.slice(2), 16);
  else if (text.length > 1 && text.startsWith('0')) v = parseInt(text.slice(1), 8);
  else v = parseInt(text, 10);
  if (!Number.isFinite(v) || v > max) return undefined;
  return v;
}

/** An XTTYPE_UINT* value with libxtables' out-of-range message. */
export function uintArg(use: OptionUse, min: number, max: number, ext: string): number {
  const v = parseUintWord(use.args[0] ?? '', max);
  if (v === undefined || v < min) badArg(use, `${ext}: bad value for option "--${use.name}", or out of range (${min}-${max}).`);
  return v;
}

/** `0x%x`, as iptables prints marks. */
export function hex(v: number): string {
  return `0x${(v >>> 0).toString(16)}`;
}

/** `! ` before an option when negated. */
export function bang(negated: boolean): string {
  return negated ? '! ' : '';
}
