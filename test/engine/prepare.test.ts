// Engine.prepare carries match state over by rule id: against a model of "the state the old rule with this id had at
// this match position, else a new one" over random edits, and on parsed files reread through the parser's line cache
// (unchanged lines share their match objects with the running ruleset, moved lines get copies, changed lines are new).
import assert from 'node:assert/strict';
import { craftPacket } from '../../src/engine/craft';
import type { PacketInput } from '../../src/engine/decision';
import { Engine } from '../../src/engine/engine';
import { StaticHost } from '../../src/engine/host';
import { EmptySets } from '../../src/engine/sets';
import { ParseCache } from '../../src/rules/line-cache';
import type { Hook, Ruleset } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { runSync } from '../../src/steps';
import { kubeProxyRules } from '../../bench/parse';
import { matchFn, ruleset, v4, type RuleSpec } from './build';

function packet(hook: Hook): PacketInput {
  return {
    family: 4,
    data: craftPacket({ family: 4, src: v4('198.18.0.1'), dst: v4('198.18.1.1'), proto: 6, sport: 40000, dport: 80 }),
    meta: { hook, mark: 0, pktType: 'unicast' },
  };
}

/** The ruleset with tables the parser did not make: Engine.prepare then walks every rule for state. */
function unlisted(rs: Ruleset): Ruleset {
  return { ...rs, tables: new Map([...rs.tables].map(([n, t]) => [n, { ...t }])) };
}

function prng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

describe('engine: prepare carries match state by rule id', () => {
  /** States handed out, in order; each evaluation of the stateful match logs the state it was given. */
  let nextTag = 0;
  let log: { tag: number }[] = [];
  const stateful = matchFn<{ tag: number }>(
    'stateful',
    (ctx) => {
      log.push(ctx.state as { tag: number });
      return true;
    },
    () => ({ tag: nextTag++ }),
  );
  const pure = matchFn('pure', () => true);

  /** A rule: its id and which of its matches keep state. */
  interface Spec {
    id: string;
    layout: boolean[];
  }
  const CHAINS = ['INPUT', 'FORWARD'] as const;
  type Chains = Record<(typeof CHAINS)[number], Spec[]>;

  const build = (chains: Chains): Ruleset =>
    ruleset(4, {
      filter: Object.fromEntries(
        CHAINS.map((c) => [c, { rules: chains[c].map((r): RuleSpec => ({ id: r.id, matches: r.layout.map((s) => (s ? stateful : pure)) })) }]),
      ),
    });

  /** Every rule of every chain runs (all matches true, no targets): the states each stateful match got, by id#i. */
  const observe = (e: Engine, chains: Chains): Map<string, { tag: number }> => {
    const out = new Map<string, { tag: number }>();
    for (const c of CHAINS) {
      log = [];
      e.decide(packet(c));
      const want = chains[c].flatMap((r) => r.layout.flatMap((s, i) => (s ? [`${r.id}#${i}`] : [])));
      assert.equal(log.length, want.length, `${c}: every stateful match ran once`);
      want.forEach((k, j) => out.set(k, log[j]!));
    }
    return out;
  };

  it('matches a model over random insertions, removals, moves and layout changes, in short and long chains', () => {
    const rnd = prng(0x5eed);
    for (let round = 0; round < 40; round++) {
      let fresh = 0;
      const newId = (c: string) => `${c}:${round}:${fresh++}`;
      const layout = (): boolean[] => Array.from({ length: 1 + rnd(3) }, () => rnd(2) === 0);
      // FORWARD short (the linear search); INPUT long (the map) in about half the rounds.
      const size = { INPUT: rnd(2) === 0 ? 4 + rnd(8) : 20 + rnd(30), FORWARD: 1 + rnd(12) };
      const first = (c: (typeof CHAINS)[number]): Spec[] => Array.from({ length: size[c] }, () => ({ id: newId(c), layout: layout() }));
      let chains: Chains = { INPUT: first('INPUT'), FORWARD: first('FORWARD') };
      const e = new Engine({ rules4: build(chains), host: new StaticHost(), sets: new EmptySets() });
      let before = observe(e, chains);
      for (let swap = 0; swap < 3; swap++) {
        const next: Chains = { INPUT: [], FORWARD: [] };
        for (const c of CHAINS) {
          const rules = chains[c].filter(() => rnd(5) !== 0).map((r) => (rnd(8) === 0 ? { id: r.id, layout: layout() } : r));
          for (let k = rnd(4); k > 0; k--) rules.splice(rnd(rules.length + 1), 0, { id: newId(c), layout: layout() });
          for (let k = rnd(3); k > 0 && rules.length > 1; k--) {
            const [moved] = rules.splice(rnd(rules.length), 1);
            rules.splice(rnd(rules.length + 1), 0, moved!);
          }
          next[c] = rules;
        }
        const tagsBefore = nextTag;
        e.swap(build(next));
        const after = observe(e, next);
        const seen = new Set<number>();
        for (const [k, s] of after) {
          const old = before.get(k);
          if (old !== undefined) assert.equal(s, old, `round ${round} swap ${swap}: ${k} keeps its state`);
          else assert.ok(s.tag >= tagsBefore && !seen.has(s.tag), `round ${round} swap ${swap}: ${k} gets a new state of its own`);
          seen.add(s.tag);
        }
        before = after;
        chains = next;
      }
    }
  });

  it('carries state through reparses with the line cache: same place, moved, changed, another chain', () => {
    const nth = '-m statistic --mode nth --every 3 --packet 0';
    const filler = Array.from({ length: 20 }, (_, k) => `-A A -s 198.18.9.${k}/32`);
    const file = (top: string[], two: string, bTail: string[]) =>
      [
        '*filter',
        ':INPUT ACCEPT [0:0]',
        ':FORWARD ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':A - [0:0]',
        ':B - [0:0]',
        '-A INPUT -j A',
        '-A INPUT -j B',
        ...top,
        `-A A ${nth} -m comment --comment one`,
        ...filler,
        `-A A ${nth} -m comment --comment ${two}`,
        `-A A ${nth} -m comment --comment three`,
        `-A A ${nth} -m comment --comment three`,
        '-A B -s 198.18.8.1/32',
        ...bTail,
        'COMMIT',
        '',
      ].join('\n');
    const cache = new ParseCache();
    const parse = (text: string) => parseRuleset(text, 'carry.rules', { family: 4, cache });
    /** Which of A's and B's nth rules the next packet matches, by comment (B's under "B:"). */
    const send = (e: Engine, rs: Ruleset): string[] => {
      const counts = new Map<object, number>();
      const nthRules = ['A', 'B'].flatMap((c) =>
        (rs.tables.get('filter')?.chains.get(c)?.rules ?? []).filter((r) => r.matches.some((m) => m.ext.name === 'statistic')).map((r) => ({ c, r })),
      );
      for (const { r } of nthRules) counts.set(r, r.counters.packets);
      e.decide(packet('INPUT'));
      return nthRules
        .filter(({ r }) => r.counters.packets > counts.get(r)!)
        .map(({ c, r }) => {
          const comment = r.matches.find((m) => m.ext.name === 'comment')?.opts as { comment: string };
          return `${c === 'B' ? 'B:' : ''}${comment.comment}`;
        });
    };
    const v1 = parse(file([], 'two', []));
    const e = new Engine({ rules4: v1, host: new StaticHost(), sets: new EmptySets() });
    // A new state matches the first packet (count starts at every-1-packet), then every third.
    assert.deepEqual(send(e, v1), ['one', 'two', 'three', 'three']);
    // Every line of A moves down one; "two" changes text (a new id: a new state); B gets "one"'s text (another chain).
    const v2 = parse(file(['-A A -s 198.18.7.1/32'], 'deux', [`-A B ${nth} -m comment --comment one`]));
    assert.ok(cache.stats.moved > 0, 'the reparse moved lines');
    e.swap(v2);
    assert.deepEqual(send(e, v2), ['deux', 'B:one']);
    // The same file again: every line at its place, so the rules share their match objects with the running ones.
    const v3 = parse(file(['-A A -s 198.18.7.1/32'], 'deux', [`-A B ${nth} -m comment --comment one`]));
    const a2 = v2.tables.get('filter')?.chains.get('A')?.rules[1];
    const a3 = v3.tables.get('filter')?.chains.get('A')?.rules[1];
    assert.ok(a2 !== undefined && a3 !== undefined && a2.matches === a3.matches, 'an unchanged line shares its matches');
    e.swap(v3);
    assert.deepEqual(send(e, v3), []);
    assert.deepEqual(send(e, v3), ['one', 'three', 'three']);
    assert.deepEqual(send(e, v3), ['deux', 'B:one']);
  });

  it('gives the event loop turns while preparing a large ruleset, and swaps nothing until commit', () => {
    const cache = new ParseCache();
    const a = parseRuleset(kubeProxyRules(2000, 2), 'kube.rules', { family: 4, cache });
    const b = parseRuleset(kubeProxyRules(2000, 2, { replaced: new Set([7, 1500]) }), 'kube.rules', { family: 4, cache });
    // As parsed (the parser lists the rules with state), and as a ruleset the parser did not make (every rule looked at).
    for (const [next, least] of [
      [b, 2],
      [unlisted(b), 4],
    ] as const) {
      const e = new Engine({ rules4: a, host: new StaticHost(), sets: new EmptySets() });
      const steps = e.prepare(next);
      let n = 0;
      for (let r = steps.next(); r.done !== true; r = steps.next()) {
        n++;
        assert.equal(e.rules(4), a, 'the running ruleset stays until commit');
      }
      // 2000 services x (1 + 1 + 2 x 3) rules: several steps, far fewer than one per chain (6,000 chains).
      assert.ok(n >= least && n < 200, `${n} steps`);
      e.commit(runSync(e.prepare(next)));
      assert.equal(e.rules(4), next);
    }
  });

  it('carries the same state from listed rules, and from rules in force taken whole, as from a walk of every rule, through -I, -R, -D, -E', () => {
    const nth = (n: number, tag: string) => `-m statistic --mode nth --every ${n} --packet 0 -m comment --comment ${tag}`;
    // Chains A (long: found by a map) and B (short) filled in turns, so the listed rules alternate between them.
    const base: string[] = [];
    for (let k = 0; k < 24; k++) base.push(`-A A ${nth(2 + (k % 5), `a${k}`)}`, `-A B ${k % 3 === 0 ? nth(3, `b${k}`) : `-s 198.18.5.${k}/32`}`);
    const head = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':A - [0:0]', ':B - [0:0]', '-A INPUT -j A', '-A INPUT -j B'];
    // Lines before the rules (moving them all) and commands after them.
    // A's first line written as its fourth (another text, the same rule): the fourth, unmoved, is a repeat now.
    const repeat = (b: string[]): string[] => [b[6]!.replace(' -m', '  -m'), ...b.slice(1)];
    const versions: [string[], string[], ((b: string[]) => string[])?][] = [
      [[], []],
      [[], []],
      [[], [`-I A 3 ${nth(4, 'ins')}`]],
      [[], [`-I A 3 ${nth(4, 'ins')}`, `-R B 1 ${nth(5, 'rep')}`, '-D A 7']],
      [['# moved'], [`-I A 3 ${nth(4, 'ins')}`, '-D A 7', '-E B BB']],
      [[], ['-D A 1', '-D A 1']],
      [[], []],
      [[], [], repeat],
      [[], []],
    ];
    const text = (k: number) => [...head, ...versions[k][0], ...(versions[k][2]?.(base) ?? base), ...versions[k][1], 'COMMIT', ''].join('\n');
    const cache = new ParseCache();
    const listed = new Engine({ rules4: parseRuleset(text(0), 'l.rules', { family: 4, cache }), host: new StaticHost(), sets: new EmptySets() });
    // As the daemon parses (src/daemon/daemon.ts): rules of unchanged lines are the rules in force themselves.
    const takenCache = new ParseCache();
    const takeOpts = { family: 4 as const, cache: takenCache, zeroCounters: true, shareChains: true };
    const taken = new Engine({ rules4: parseRuleset(text(0), 't.rules', takeOpts), host: new StaticHost(), sets: new EmptySets() });
    let takenRules = 0;
    const walked = new Engine({ rules4: unlisted(parseRuleset(text(0), 'w.rules', { family: 4 })), host: new StaticHost(), sets: new EmptySets() });
    /** Per packet, the places (chain:index) of the rules it counted. */
    const run = (e: Engine, packets: number): string[] => {
      const rs = e.rules(4)!;
      const chains = [...rs.tables.get('filter')!.chains.values()];
      const out: string[] = [];
      for (let p = 0; p < packets; p++) {
        const before = chains.map((c) => c.rules.map((r) => r.counters.packets));
        e.decide(packet('INPUT'));
        out.push(chains.flatMap((c, i) => c.rules.flatMap((r, j) => (r.counters.packets > before[i][j] ? [`${c.name}:${j}`] : []))).join(' '));
      }
      return out;
    };
    let matched = 0;
    for (let k = 0; k < versions.length; k++) {
      if (k > 0) {
        listed.swap(parseRuleset(text(k), 'l.rules', { family: 4, cache }));
        walked.swap(unlisted(parseRuleset(text(k), 'w.rules', { family: 4 })));
        const inForce = new Set([...taken.rules(4)!.tables.get('filter')!.chains.values()].flatMap((c) => c.rules));
        const next = parseRuleset(text(k), 't.rules', takeOpts);
        takenRules += [...next.tables.get('filter')!.chains.values()].flatMap((c) => c.rules).filter((r) => inForce.has(r)).length;
        taken.swap(next);
      }
      const a = run(listed, 7);
      assert.deepEqual(a, run(walked, 7), `version ${k}`);
      assert.deepEqual(run(taken, 7), a, `version ${k}, rules taken`);
      matched += a.join(' ').split(' ').filter((x) => x !== '').length;
    }
    assert.ok(matched > 100, `${matched} rule counts compared`);
    assert.ok(takenRules > 100, `${takenRules} rules in force taken by a reparse`);
  });
});
