// Engine.prepare + commit alone, as a reload runs them (issue #6): a kube-proxy-style file of N services parsed
// through the line cache as the daemon parses it (so unchanged lines share their objects with the running ruleset),
// counters carried, then prepare (run to the end, and sliced as the daemon slices it) and commit. Each timed run
// loads a version with 5 other services' endpoints replaced than the one in force. Median of 5 after a warm-up.
// Run: `node dist/bench/prepare.js [services...]` (default 10000 100000); no root needed.
import { performance } from 'node:perf_hooks';
import { carryCounters } from '../src/daemon/reload';
import { Engine } from '../src/engine/engine';
import { StaticHost } from '../src/engine/host';
import { EmptySets } from '../src/engine/sets';
import { ParseCache } from '../src/rules/line-cache';
import type { Ruleset } from '../src/rules/model';
import { parseRuleset } from '../src/rules/parse';
import { runSliced, runSync, type Steps } from '../src/steps';
import { kubeProxyRules } from './parse';

const RUNS = 5;
const ENDPOINTS = 3;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Counts the steps a generator takes, so the report can say how often it yields. */
function* counted<T>(steps: Steps<T>, out: { n: number }): Steps<T> {
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    out.n++;
    yield;
  }
}

interface Timing {
  wall: number[];
  cpu: number[];
  /** runSliced: wall time, and the longest time between two turns of the event loop. */
  sliced: number[];
  longestSlice: number[];
  steps: number;
}

async function measure(services: number): Promise<Timing> {
  const spread = (k: number) => new Set(Array.from({ length: 5 }, (_, i) => (Math.floor(((i + 0.5) * services) / 5) + k) % services));
  const cache = new ParseCache();
  const parse = (k: number): Ruleset => parseRuleset(kubeProxyRules(services, ENDPOINTS, { replaced: spread(k) }), 'bench.rules', { family: 4, cache });
  const engine = new Engine({ rules4: parse(0), host: new StaticHost(), sets: new EmptySets() });
  const t: Timing = { wall: [], cpu: [], sliced: [], longestSlice: [], steps: 0 };
  // Warm-up (k = 1), then the timed runs, alternately run to the end and sliced.
  for (let k = 1; k <= 2 * RUNS + 1; k++) {
    const next = parse(k);
    runSync(carryCounters(engine.rules(4), next));
    const count = { n: 0 };
    if (k % 2 === 1) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      engine.commit(runSync(counted(engine.prepare(next), count)));
      const wall = performance.now() - t0;
      const c1 = process.cpuUsage(c0);
      if (k > 1) {
        t.wall.push(wall);
        t.cpu.push((c1.user + c1.system) / 1000);
        t.steps = count.n;
      }
    } else {
      let longest = 0;
      let last = performance.now();
      const tick = setInterval(() => {
        const now = performance.now();
        longest = Math.max(longest, now - last);
        last = now;
      }, 0);
      const t0 = performance.now();
      engine.commit(await runSliced(engine.prepare(next)));
      t.sliced.push(performance.now() - t0);
      clearInterval(tick);
      t.longestSlice.push(Math.max(longest, performance.now() - last));
    }
  }
  return t;
}

const fmt = (xs: readonly number[]): string => `${median(xs).toFixed(1)} ms (${xs.map((x) => x.toFixed(0)).join(', ')})`;

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number);
  for (const n of sizes.length > 0 ? sizes : [10_000, 100_000]) {
    const t = await measure(n);
    process.stdout.write(
      `${n} services x ${ENDPOINTS} endpoints, 5 services replaced per reload: Engine.prepare+commit\n` +
        `  run to the end: ${fmt(t.wall)}, CPU ${fmt(t.cpu)}; ${t.steps} steps\n` +
        `  sliced (4 ms):  ${fmt(t.sliced)}; longest gap between event-loop turns ${fmt(t.longestSlice)}\n`,
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/prepare: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
