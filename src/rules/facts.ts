// What the parser saw while it built a ruleset, for the passes that look for a few kinds of rule in all of them: a
// reload of 110,000 rules walks every match three more times (enforceability, set names, recent and hashlimit names)
// to find, as a rule, none. The parser already holds each rule in hand, so it ORs a few bits per rule line.
// The bits describe the ruleset as parsed: code that adds rules to a parsed ruleset afterwards gets stale facts, and
// nothing in nfqwall does; a ruleset built by hand has none, and the passes walk it all.
import type { MatchUse, Rule, Ruleset, Table } from './model';

/** Some rule has `-m set`. */
export const USES_SET = 1;
/** Some rule has `-m recent` or `-m hashlimit` (their lists and tables outlive a reload). */
export const USES_STORES = 2;
/** Some rule has a match or target that may not be enforceable (checkEnforceable). */
export const MAY_BE_UNENFORCEABLE = 4;
/** Some rule has a match that keeps state of its own (keepsState). */
export const HAS_STATE = 8;
/** Some rule reads the connection's status bits (`-m conntrack --ctstatus`). */
export const READS_CTSTATUS = 16;

/** Whether a match keeps state of its own (Extension.createState and keepsState), which the engine carries over a reload. */
export function keepsState(m: MatchUse): boolean {
  return m.ext.createState !== undefined && m.ext.keepsState?.(m.opts) !== false;
}

const facts = new WeakMap<Ruleset, number>();
const stateful = new WeakMap<Table, readonly Rule[]>();

/** The bits of one rule. */
export function ruleFacts(r: Rule): number {
  let bits = 0;
  const ms = r.matches;
  for (let k = 0; k < ms.length; k++) {
    const ext = ms[k].ext;
    if (ext.name === 'set') bits |= USES_SET;
    else if (ext.name === 'recent' || ext.name === 'hashlimit') bits |= USES_STORES;
    if (ext.unsupported !== undefined || ext.unsupportedFor !== undefined) bits |= MAY_BE_UNENFORCEABLE;
    if (keepsState(ms[k])) bits |= HAS_STATE;
    if (ext.name === 'conntrack' && (ms[k].opts as { status?: unknown }).status !== undefined) bits |= READS_CTSTATUS;
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

/**
 * Records the rules of a parsed table that have HAS_STATE: every such rule the parse put in it, and maybe rules it
 * took out again (a superset). The engine looks at these alone when it carries match state over a reload, instead of
 * at every match of the table (a tenth of a second at 110,000 rules).
 */
export function recordStatefulRules(t: Table, rules: readonly Rule[]): void {
  stateful.set(t, rules);
}

/** A superset of the rules of a parsed table with HAS_STATE; undefined for a table the parser did not make. */
export function statefulRulesOf(t: Table): readonly Rule[] | undefined {
  return stateful.get(t);
}
