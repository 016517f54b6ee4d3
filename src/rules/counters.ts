import type { Ruleset } from './model';

/** Zeroes every rule and chain counter (iptables -Z). Returns how many counters were zeroed. */
export function zeroCounters(rulesets: readonly (Ruleset | undefined)[]): number {
  let n = 0;
  for (const rs of rulesets) {
    if (!rs) continue;
    for (const t of rs.tables.values()) {
      for (const c of t.chains.values()) {
        c.counters.packets = 0;
        c.counters.bytes = 0;
        n++;
        for (const r of c.rules) {
          r.counters.packets = 0;
          r.counters.bytes = 0;
          n++;
        }
      }
    }
  }
  return n;
}
