// Corpus rulesets as the differential tests run them: every user chain reachable from a hook, so each rule can be
// aimed at (shared by test/compile/corpus.test.ts and matcher-diff.test.ts).
import { BUILTIN_CHAINS } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { reachingHooks } from '../../src/rules/validate';

/** The text with `line` added at the end of `table`'s section. */
function appendTo(text: string, table: string, line: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === `*${table}`);
  const commit = lines.findIndex((l, k) => k > start && l.trim() === 'COMMIT');
  lines.splice(commit, 0, line);
  return lines.join('\n');
}

/** Adds a jump from a built-in chain to every user chain nothing reaches, where validation allows one. */
export function reachEverything(text: string, file: string, family: 4 | 6): string {
  let out = text;
  const rules = parseRuleset(out, file, { family });
  for (const t of rules.tables.values()) {
    const reach = reachingHooks(t);
    for (const c of t.chains.values()) {
      if (c.builtin || (reach.get(c.name)?.size ?? 0) > 0) continue;
      for (const b of BUILTIN_CHAINS[t.name]) {
        const next = appendTo(out, t.name, `-A ${b} -j ${c.name}`);
        try {
          parseRuleset(next, file, { family });
          out = next;
          break;
        } catch {
          // This hook may not use what the chain does (a DNAT chain from POSTROUTING): try the next.
        }
      }
    }
  }
  return out;
}
