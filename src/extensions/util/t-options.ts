// Option bookkeeping shared by the target modules, with the messages libxtables prints for the same mistakes
// (xtables_options_fcheck and the x6 option parser), so a user sees what iptables-restore would have told them.
import type { SourceLocation } from '../../rules/model';
import { parseUInt } from '../../rules/services';
import { RuleError, type OptionUse, type ParseContext } from '../types';

/** The last use of each option, refusing a second use of one that may appear only once. */
export function collect(ext: string, uses: readonly OptionUse[]): Map<string, OptionUse> {
  const seen = new Map<string, OptionUse>();
  for (const u of uses) {
    if (u.negated) throw new RuleError(`${ext}: option "--${u.name}" cannot be inverted.`, u.loc);
    if (seen.has(u.name)) throw new RuleError(`${ext}: option "--${u.name}" can only be used once.`, u.loc);
    seen.set(u.name, u);
  }
  return seen;
}

/**
 * Refuse two options of one exclusive group. `group` is in the order of the module's option table, which is the
 * order libxtables names them in; the error sits at whichever of the two came later on the line.
 */
export function exclusive(ext: string, seen: Map<string, OptionUse>, group: readonly string[]): void {
  const present = group.filter((n) => seen.has(n));
  if (present.length < 2) return;
  const [a, b] = present;
  const ua = seen.get(a) as OptionUse;
  const ub = seen.get(b) as OptionUse;
  const later = laterOf(ua.loc, ub.loc) === ua.loc ? ua : ub;
  throw new RuleError(`${ext}: option "--${a}" cannot be used together with "--${b}".`, later.loc);
}

function laterOf(a: SourceLocation, b: SourceLocation): SourceLocation {
  if (a.line !== b.line) return a.line > b.line ? a : b;
  return a.column >= b.column ? a : b;
}

export function mustSpecify(ext: string, seen: Map<string, OptionUse>, name: string, ctx: ParseContext): OptionUse {
  const u = seen.get(name);
  if (!u) throw new RuleError(`${ext}: option "--${name}" must be specified`, ctx.loc);
  return u;
}

/** XTTYPE_UINT* with a range: strtoul base 0 on the whole word. */
export function uintArg(ext: string, u: OptionUse, min: number, max: number, i = 0): number {
  const v = parseUInt(u.args[i] ?? '', max);
  if (v === undefined || v < min)
    throw new RuleError(`${ext}: bad value for option "--${u.name}", or out of range (${min}-${max}).`, u.argLocs[i] ?? u.loc);
  return v;
}

export function hex(v: number): string {
  return `0x${(v >>> 0).toString(16)}`;
}

/** The rule's -p, when it names one protocol without `!`. */
export function plainProto(ctx: ParseContext): number | undefined {
  return ctx.proto && !ctx.proto.negated ? ctx.proto.value : undefined;
}
