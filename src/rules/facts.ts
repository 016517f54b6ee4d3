// What the parser saw while it built a ruleset, for the passes that look for a few kinds of rule in all of them: a
// reload of 110,000 rules walks every match three more times (enforceability, set names, recent and hashlimit names)
// to find, as a rule, none. The parser already holds each rule in hand, so it ORs a few bits per rule line.
// The bits describe the ruleset as parsed: code that adds rules to a parsed ruleset afterwards gets stale facts, and
// nothing in nfqwall does; a ruleset built by hand has none, and the passes walk it all.
import type { Rule, Ruleset } from './model';

/** Some rule has `-m set`. */
export const USES_SET = 1;
/** Some rule has `-m recent` or `-m hashlimit` (their lists and tables outlive a reload). */
export const USES_STORES = 2;
/** Some rule has a match or target that may not be enforceable (checkEnforceable). */
export const MAY_BE_UNENFORCEABLE = 4;

const facts = new WeakMap<Ruleset, number>();

/** The bits of one rule. */
export function ruleFacts(r: Rule): number {
  let bits = 0;
  const ms = r.matches;
  for (let k = 0; k < ms.length; k++) {
    const ext = ms[k].ext;
    if (ext.name === 'set') bits |= USES_SET;
    else if (ext.name === 'recent' || ext.name === 'hashlimit') bits |= USES_STORES;
    if (ext.unsupported !== undefined || ext.unsupportedFor !== undefined) bits |= MAY_BE_UNENFORCEABLE;
  }
  const t = r.target;
  if (t?.kind === 'extension' && (t.ext.unsupported !== undefined || t.ext.unsupportedFor !== undefined)) bits |= MAY_BE_UNENFORCEABLE;
  return bits;
}

/** Records the bits of every rule line of a parsed ruleset (a superset when lines were deleted). */
export function recordFacts(rs: Ruleset, bits: number): void {
  facts.set(rs, bits);
}

/** Whether a parsed ruleset surely has no rule with any of `bits`; false for one the parser did not make. */
export function surelyNone(rs: Ruleset, bits: number): boolean {
  const f = facts.get(rs);
  return f !== undefined && (f & bits) === 0;
}
