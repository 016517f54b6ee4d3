// Runs the same packets through two engines over the same rule text, one walking every rule and one using the chain
// index, and lists every difference: decisions (verdict, mark, rewrite, replies, logs, trace, connection update),
// per-rule and per-chain counters, per-rule match state and the recent lists.
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine';
import type { Decision, PacketInput } from '../../src/engine/decision';
import { StaticHost } from '../../src/engine/host';
import { EmptySets } from '../../src/engine/sets';
import type { HostView, SetView } from '../../src/extensions/types';
import { recentStore } from '../../src/extensions/util/b-recent-store';
import type { MatchUse, Ruleset } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';

export interface Side {
  engine: Engine;
  rules: Ruleset;
  /** A decision, or the error the engine threw (an extension it cannot evaluate): both sides must agree on it. */
  decisions: (Decision | { error: string })[];
  /** Match state, counters and recent lists after the run, as comparable text. */
  snapshot: string[];
}

function rng31(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) & 0x7fffffff;
  };
}

function jsonish(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    typeof x === 'bigint'
      ? `${x}n`
      : x instanceof Map
        ? [...(x as Map<unknown, unknown>).entries()]
        : x instanceof Uint8Array
          ? [...x]
          : x,
  );
}

/** The engine's per-match state (Loaded.state is private; the test reads it to compare the two runs). */
function matchState(engine: Engine, family: 4 | 6): Map<MatchUse, unknown> | undefined {
  const loaded = (engine as unknown as Record<'v4' | 'v6', { state: Map<MatchUse, unknown> } | undefined>)[
    family === 4 ? 'v4' : 'v6'
  ];
  return loaded?.state;
}

function snapshotOf(engine: Engine, rules: Ruleset): string[] {
  const out: string[] = [];
  const state = matchState(engine, rules.family);
  for (const t of rules.tables.values())
    for (const c of t.chains.values()) {
      out.push(`${t.name}/${c.name} policy ${c.counters.packets}:${c.counters.bytes}`);
      c.rules.forEach((r, i) => {
        const st = r.matches.map((m) => (state?.has(m) ? jsonish(state.get(m)) : '-')).join(' ');
        out.push(`${t.name}/${c.name}#${i + 1} ${r.counters.packets}:${r.counters.bytes} ${st}`);
      });
    }
  for (const name of recentStore.names().sort()) {
    const t = recentStore.get(name);
    out.push(`recent ${name} ${jsonish(t ? [...t.entries.values()] : [])}`);
  }
  return out;
}

export interface RunOptions {
  host?: HostView;
  sets?: SetView;
  seed?: number;
  /** Compile options for the indexed side (tests index every chain, however short). */
  minRules?: number;
}

/** One side's run: a fresh parse (its own counters), a fresh clock and random source, fresh recent lists. */
export function runSide(text: string, family: 4 | 6, packets: PacketInput[], indexed: boolean, o: RunOptions = {}): Side {
  recentStore.reset();
  const rules = parseRuleset(text, 'random.rules', { family });
  let clock = 1_000_000;
  const engine = new Engine({
    rules4: family === 4 ? rules : undefined,
    rules6: family === 6 ? rules : undefined,
    host: o.host ?? new StaticHost({ local: ['198.18.0.1', '2001:db8::1'] }),
    sets: o.sets ?? new EmptySets(),
    random31: rng31(o.seed ?? 1),
    now: () => (clock += 37),
    wallclock: () => new Date(Date.UTC(2026, 0, 1, 12, 0, 0)),
    index: indexed ? { minRules: o.minRules ?? 1 } : false,
  });
  const decisions = packets.map((p) => {
    try {
      // Each side its own copy: CONNMARK writes the connection's mark in place.
      return engine.decide(structuredClone(p), { trace: true });
    } catch (e) {
      return { error: e instanceof Error ? e.message : String(e) };
    }
  });
  const snapshot = snapshotOf(engine, rules);
  recentStore.reset();
  return { engine, rules, decisions, snapshot };
}

/** Asserts the two runs are identical; the message names the first packet or counter that differs. */
export function assertSame(walked: Side, indexed: Side, packets: PacketInput[], what: string): void {
  for (let k = 0; k < packets.length; k++) {
    try {
      assert.deepStrictEqual(indexed.decisions[k], walked.decisions[k]);
    } catch (e) {
      const p = packets[k];
      throw new Error(
        `${what}: packet ${k} (${p.meta.hook}, ${Buffer.from(p.data).toString('hex')}) decided differently:\n${(e as Error).message}`,
      );
    }
  }
  assert.deepStrictEqual(indexed.snapshot, walked.snapshot, `${what}: counters or match state differ`);
}
