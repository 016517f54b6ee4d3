// Ruleset -> per-chain indexes, built once per load (Engine.swap), never per packet.
import type { Chain, Ruleset } from '../rules/model';
import { ChainIndex, type IndexStats } from './chain-index';
import { ruleKey } from './keys';

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

export function compileRuleset(rules: Ruleset, opts: CompileOptions = {}): CompiledRuleset {
  const min = opts.minRules ?? DEFAULT_MIN_RULES;
  const chains = new Map<Chain, ChainIndex>();
  const stats: IndexStats = { rules: 0, wild: 0, dst: 0, mark: 0, iface: 0 };
  for (const t of rules.tables.values()) {
    for (const c of t.chains.values()) {
      if (c.rules.length === 0 || c.rules.length < min) continue;
      const keys = c.rules.map(ruleKey);
      // All wildcards: the index would list every rule, so walking is the same and cheaper.
      if (keys.every((k) => k.kind === 'wild')) continue;
      const idx = new ChainIndex(c, keys);
      chains.set(c, idx);
      for (const k of ['rules', 'wild', 'dst', 'mark', 'iface'] as const) stats[k] += idx.stats[k];
    }
  }
  return { chains, stats };
}
