// Differential property test: seeded random rulesets and packets through the engine walking every rule and through
// the engine using the chain index must give identical decisions, traces, counters and match state.
import assert from 'node:assert/strict';
import { compileRuleset } from '../../src/compile/compile';
import { ruleKey } from '../../src/compile/keys';
import { parseRuleset } from '../../src/rules/parse';
import type { PacketInput } from '../../src/engine/decision';
import { assertSame, runSide } from './compare';
import { genPacket, genRuleset, Rng } from './gen';

const SEEDS = Number(process.env['NFQW_COMPILE_SEEDS'] ?? 60);
const PACKETS = 300;

describe('chain index: random rulesets, indexed against walked', () => {
  for (const family of [4, 6] as const) {
    it(`IPv${family}: ${SEEDS} rulesets x ${PACKETS} packets decide identically`, function () {
      this.timeout(300_000);
      let indexedRules = 0;
      let keyedHits = 0;
      for (let seed = 1; seed <= SEEDS; seed++) {
        const text = genRuleset(seed * 7919 + family, family, `r${seed}`);
        const rng = new Rng(seed * 104729 + family);
        const packets: PacketInput[] = [];
        for (let k = 0; k < PACKETS; k++) packets.push(genPacket(rng, family));
        const walked = runSide(text, family, packets, false, { seed });
        const indexed = runSide(text, family, packets, true, { seed });
        assertSame(walked, indexed, packets, `seed ${seed}`);
        const st = compileRuleset(parseRuleset(text, 'random.rules', { family }), { minRules: 1 }).stats;
        indexedRules += st.rules - st.wild;
        for (const t of indexed.rules.tables.values())
          for (const c of t.chains.values())
            for (const r of c.rules) if (r.counters.packets > 0 && ruleKey(r).kind !== 'wild') keyedHits++;
      }
      assert.ok(indexedRules > SEEDS * 20, `only ${indexedRules} rules were keyed: the generator no longer exercises the index`);
      // Packets must reach keyed rules, or the index skipped only rules nothing would have matched.
      assert.ok(keyedHits > SEEDS * 5, `only ${keyedHits} keyed rules matched a packet`);
    });
  }
});
