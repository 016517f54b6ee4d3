// The native matcher against the reference engine (docs/matcher.md, "How it is tested"): seeded random rulesets and
// packets through Engine.decide(input, {flow: true}) and Matcher.run. Whenever the matcher decides, verdict, mark,
// setMark, natRan and the counters path must be the engine's; and on rulesets drawn from the subset it implements it
// must decide nearly every packet (coverage is asserted and printed).
import assert from 'node:assert/strict';
import { parseRuleset } from '../../src/rules/parse';
import { Rng } from '../rng';
import { newTally, Pair, rate, type Tally } from './matcher-harness';
import { genMatcherPacket, genMatcherRuleset, IFACES } from './matcher-gen';

const SEEDS = Number(process.env['NFQW_MATCHER_SEEDS'] ?? 40);
const PACKETS = 400;

function runSeeds(family: 4 | 6, slow: number, odd: number, salt: number): Tally {
  const t = newTally();
  for (let seed = 1; seed <= SEEDS; seed++) {
    const text = genMatcherRuleset(seed * 7919 + family + salt, family, slow);
    const rules = parseRuleset(text, `random-${seed}.rules`, { family });
    const pair = new Pair(rules, IFACES);
    const rng = new Rng(seed * 104729 + family + salt);
    for (let k = 0; k < PACKETS; k++) {
      pair.check(genMatcherPacket(rng, family, odd), t, `seed ${seed} packet ${k}`);
      if (t.diffs.length > 0) assert.fail(`${t.diffs[0]}\n--- ruleset ---\n${text}`);
    }
  }
  return t;
}

describe('matcher: random rulesets, native against the engine', function () {
  this.timeout(600_000);
  for (const family of [4, 6] as const) {
    it(`IPv${family}: the supported subset, ${SEEDS} rulesets x ${PACKETS} packets: identical, and >= 95% decided natively`, () => {
      const t = runSeeds(family, 0, 0, 0);
      console.log(`      IPv${family} subset: ${rate(t)}`);
      assert.equal(t.diffs.length, 0);
      assert.ok(t.decided >= 0.95 * t.packets, `coverage ${rate(t)}`);
    });
    it(`IPv${family}: slow extensions, short, fragmented, extension-header and untracked packets mixed in: identical`, () => {
      const t = runSeeds(family, 0.15, 0.2, 1000);
      console.log(`      IPv${family} mixed: ${rate(t)}`);
      assert.equal(t.diffs.length, 0);
      // The slow paths are exercised, and the rest is still decided natively.
      assert.ok(t.slow > 0.05 * t.packets, `only ${t.slow} packets went slow: the generator no longer mixes in slow cases`);
      assert.ok(t.decided > 0.4 * t.packets, `coverage ${rate(t)}`);
    });
  }
});
