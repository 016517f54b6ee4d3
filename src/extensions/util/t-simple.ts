// Targets without options (ACCEPT, DROP, RETURN, NOTRACK, TRACE...): the parser finds no option to hand over, since
// their option table is empty; parse only has to refuse what slipped through.
import { RuleError, type OptionUse } from '../types';

export type NoOptions = Record<string, never>;

export function parseNone(ext: string, uses: readonly OptionUse[]): NoOptions {
  if (uses.length > 0) throw new RuleError(`${ext}: unknown option "--${uses[0].name}"`, uses[0].loc);
  return {};
}
