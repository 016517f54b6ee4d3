// Ruleset -> per-chain indexes, built once per load (Engine.prepare), never per packet.
import type { Chain, MatchUse, Rule, Ruleset } from '../rules/model';
import { runSync, type Steps } from '../steps';
import { ChainIndex, type IndexStats } from './chain-index';
import { ruleKey, type RuleKey } from './keys';

export interface CompileOptions {
  /**
   * Chains with fewer rules are walked rule by rule: a lookup costs a few hash probes and an allocation, more than
   * evaluating a handful of rules.
   */
  minRules?: number;
}

export const DEFAULT_MIN_RULES = 8;

export interface CompiledRuleset {
  /** Indexed chains; a chain absent here is walked rule by rule. */
  chains: Map<Chain, ChainIndex>;
  stats: IndexStats;
}

/** The ruleset compiled before, whose indexes and keys a reload may reuse. */
export interface PreviousCompile {
  rules: Ruleset;
  compiled: CompiledRuleset;
}

/** Rules keyed between two yields: a 100,000-rule chain is keyed in steps, not in one. */
const RULES_PER_STEP = 4096;

export function compileRuleset(rules: Ruleset, opts: CompileOptions = {}): CompiledRuleset {
  return runSync(compileRulesetSteps(rules, opts));
}

/**
 * compileRuleset in steps (src/steps.ts). With `prev`, a rule whose key inputs are the very objects of the rule at
 * the same place of the same chain before (a line the parser's cache copied, ParseCache) keeps its key without
 * working it out, and a chain whose keys all came out equal keeps its index: ChainIndex holds rule positions and
 * keys only, so it serves any chain with the same keys in the same order.
 */
export function* compileRulesetSteps(rules: Ruleset, opts: CompileOptions = {}, prev?: PreviousCompile): Steps<CompiledRuleset> {
  const min = opts.minRules ?? DEFAULT_MIN_RULES;
  const chains = new Map<Chain, ChainIndex>();
  const stats: IndexStats = { rules: 0, wild: 0, dst: 0, mark: 0, iface: 0 };
  let work = 0;
  for (const [tname, t] of rules.tables) {
    const oldTable = prev?.rules.tables.get(tname);
    for (const [cname, c] of t.chains) {
      const rs = c.rules;
      const n = rs.length;
      if (n === 0 || n < min) continue;
      const oldChain = oldTable?.chains.get(cname);
      const oldIdx = oldChain === undefined ? undefined : prev?.compiled.chains.get(oldChain);
      const oldRules = oldIdx === undefined ? undefined : oldChain?.rules;
      let idx: ChainIndex;
      if (oldRules === rs) {
        // The chain holds the very rules it held (the parser shared them, or carryCounters did): the index serves.
        idx = oldIdx!;
        work += n;
      } else {
        let same = oldIdx !== undefined && oldIdx.keys.length === n;
        let allWild = true;
        const keys = new Array<RuleKey>(n);
        for (let k = 0; k < n; k++) {
          const r = rs[k];
          let key: RuleKey;
          if (oldRules !== undefined && k < oldRules.length && sameKeyInputs(r, oldRules[k])) {
            key = oldIdx!.keys[k];
          } else {
            key = ruleKey(r);
            if (same && !sameKey(key, oldIdx!.keys[k])) same = false;
          }
          if (key.kind !== 'wild') allWild = false;
          keys[k] = key;
          if (++work >= RULES_PER_STEP) {
            work = 0;
            yield;
          }
        }
        // All wildcards: the index would list every rule, so walking is the same and cheaper.
        if (allWild) continue;
        idx = same ? oldIdx! : new ChainIndex(c, keys);
      }
      chains.set(c, idx);
      for (const k of ['rules', 'wild', 'dst', 'mark', 'iface'] as const) stats[k] += idx.stats[k];
      if (work >= RULES_PER_STEP) {
        work = 0;
        yield;
      }
    }
  }
  return { chains, stats };
}

/** Whether ruleKey surely gives `a` and `b` the same key: it reads only these fields and the matches' ext and opts. */
function sameKeyInputs(a: Rule, b: Rule): boolean {
  return a.dst === b.dst && a.proto === b.proto && a.inIface === b.inIface && a.outIface === b.outIface && sameMatches(a.matches, b.matches);
}

function sameMatches(a: readonly MatchUse[], b: readonly MatchUse[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k].ext !== b[k].ext || a[k].opts !== b[k].opts) return false;
  return true;
}

function sameKey(a: RuleKey, b: RuleKey): boolean {
  switch (a.kind) {
    case 'wild':
      return b.kind === 'wild';
    case 'dst':
      return b.kind === 'dst' && a.dst === b.dst && a.proto === b.proto && a.port === b.port;
    case 'mark':
      return b.kind === 'mark' && a.mask === b.mask && a.value === b.value;
    case 'in':
      return b.kind === 'in' && a.iface === b.iface;
    case 'out':
      return b.kind === 'out' && a.iface === b.iface;
  }
}
