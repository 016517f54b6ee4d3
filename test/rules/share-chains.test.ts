// ParseOptions.shareChains (src/rules/parse.ts, ParseCache.sharedRun): a reparse gives a chain whose lines did not
// change or move the very rules the last parse made of them. The result must still be what a parse from nothing gives
// (counters aside, which shared rules keep), and nothing the last parse made may change, whatever the new file does
// to a shared chain after its lines (appends more, inserts, zeroes, renames, flushes).
import assert from 'node:assert/strict';
import { kubeProxyRules } from '../../bench/parse';
import { RuleErrors } from '../../src/rules/errors';
import { ParseCache } from '../../src/rules/line-cache';
import type { Chain, Rule, Ruleset } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { Rng } from '../rng';

const FILE = 'share.rules';

function shared(text: string, cache: ParseCache): Ruleset | undefined {
  try {
    return parseRuleset(text, FILE, { family: 4, cache, zeroCounters: true, shareChains: true });
  } catch (e) {
    if (e instanceof RuleErrors) return undefined;
    throw e;
  }
}

function cold(text: string): Ruleset | string[] {
  try {
    return parseRuleset(text, FILE, { family: 4, zeroCounters: true });
  } catch (e) {
    if (e instanceof RuleErrors) return e.errors.map((x) => x.message);
    throw e;
  }
}

/** Everything of a rule but its counters, by identity where the parser shares objects. */
const FIELDS = ['id', 'table', 'chain', 'src', 'dst', 'inIface', 'outIface', 'proto', 'fragment', 'matches', 'target', 'loc'] as const;

/** Every chain's rules array and each rule's fields and counters, as they are now. */
function snapshot(rs: Ruleset): { chain: Chain; rules: readonly Rule[]; values: unknown[][] }[] {
  const out = [];
  for (const t of rs.tables.values())
    for (const c of t.chains.values())
      out.push({ chain: c, rules: c.rules, values: c.rules.map((r) => [r, r.counters, r.counters.packets, ...FIELDS.map((f) => r[f])]) });
  return out;
}

function assertUnchanged(before: ReturnType<typeof snapshot>): void {
  for (const s of before) {
    assert.equal(s.chain.rules, s.rules, `chain ${s.chain.name} got another rules array`);
    assert.equal(s.rules.length, s.values.length, `chain ${s.chain.name} changed length`);
    s.rules.forEach((r, k) =>
      [r, r.counters, r.counters.packets, ...FIELDS.map((f) => r[f])].forEach((v, i) =>
        assert.equal(v, s.values[k]![i], `chain ${s.chain.name} rule ${k}: field ${i} changed`),
      ),
    );
  }
}

/** The rules as a parse from nothing gives them: counters left out (shared rules keep the last parse's). */
function withoutCounters(rs: Ruleset): unknown {
  return [...rs.tables].map(([name, t]) => [
    name,
    [...t.chains].map(([cname, c]) => [cname, c.builtin, c.policy, c.loc, c.rules.map((r) => FIELDS.map((f) => r[f]))]),
  ]);
}

/** The rules of `next` that are rule objects of `prev` (shared chains' and those taken line by line). */
function rulesOf(prev: Ruleset, next: Ruleset): Set<Rule> {
  const old = new Set<Rule>();
  for (const t of prev.tables.values()) for (const c of t.chains.values()) for (const r of c.rules) old.add(r);
  const out = new Set<Rule>();
  for (const t of next.tables.values()) for (const c of t.chains.values()) for (const r of c.rules) if (old.has(r)) out.add(r);
  return out;
}

/** The chains of `next` that hold `prev`'s rules array of the same table and name. */
function sharedChains(prev: Ruleset, next: Ruleset): string[] {
  const out: string[] = [];
  for (const [name, t] of next.tables)
    for (const c of t.chains.values()) if (c.rules.length > 0 && prev.tables.get(name)?.chains.get(c.name)?.rules === c.rules) out.push(c.name);
  return out;
}

describe('rules/share-chains: a reparse shares the rules of unchanged chains with the last parse', () => {
  it('a kube-proxy sync: the endpoint chains not replaced take the last rules; the rest are new, as a cold parse', () => {
    const cache = new ParseCache();
    const base = kubeProxyRules(50, 3);
    const first = shared(base, cache)!;
    // Traffic the last rules counted: shared rules keep it (a reload carries it over anyway).
    for (const t of first.tables.values()) for (const c of t.chains.values()) for (const r of c.rules) r.counters.packets = 7;
    const before = snapshot(first);
    const text = kubeProxyRules(50, 3, { replaced: new Set([10, 30]) });
    const next = shared(text, cache)!;
    assertUnchanged(before);
    assert.deepStrictEqual(withoutCounters(next), withoutCounters(cold(text) as Ruleset));
    const names = sharedChains(first, next);
    assert.equal(cache.stats.sharedChains, names.length);
    // Endpoint chains whose lines are in runs compared equal (the lines right after a change are compared one by one):
    // most of the 144 not replaced; none of the chains whose lines are spread over the file.
    const seps = names.filter((n) => n.startsWith('KUBE-SEP-')).length;
    assert.ok(seps > 100 && seps <= 144, `${seps} endpoint chains shared`);
    assert.ok(!names.includes('KUBE-SERVICES'));
    // A chain whose lines are spread over the file takes the rules of its unmoved lines one line at a time: all of
    // KUBE-SERVICES's, and of a service's chain those but the jumps to its replaced endpoints.
    const taken = rulesOf(first, next);
    const nat = next.tables.get('nat')!.chains;
    const services = nat.get('KUBE-SERVICES')!.rules;
    assert.equal(services.filter((r) => taken.has(r)).length, services.length);
    const svc = (k: number): Rule[] => {
      const t = services[k]!.target;
      return nat.get(t?.kind === 'chain' ? t.chain : '')!.rules;
    };
    assert.deepEqual([svc(9), svc(10)].map((rs) => rs.filter((r) => taken.has(r)).length), [4, 1]);
    // What the last rules counted stays with the rules themselves; every other rule is new.
    for (const t of next.tables.values())
      for (const c of t.chains.values()) for (const r of c.rules) assert.equal(r.counters.packets, taken.has(r) ? 7 : 0, `${c.name} ${r.id}`);
  });

  it('takes the rules of unmoved lines of a chain spread over the file, and copies before anything changes them', () => {
    // Two chains whose lines alternate: neither can share the last array, each takes its unmoved lines' rules.
    const spread = [
      '-A spread -s 198.18.0.1 -j ACCEPT',
      '-A spread -s 198.18.0.2 -m statistic --mode nth --every 2 --packet 0 -j ACCEPT',
      '-A spread -s 198.18.0.3 -j ACCEPT',
      '-A spread -s 198.18.0.4 -j ACCEPT',
    ];
    const other = ['-A other -s 198.18.1.1 -j ACCEPT', '-A other -s 198.18.1.2 -j ACCEPT', '-A other -j DROP', '-A other -j RETURN'];
    const body = spread.flatMap((l, k) => [l, other[k]!]).join('\n');
    const base = `*filter\n:INPUT ACCEPT [0:0]\n:spread - [0:0]\n:other - [0:0]\n-A INPUT -j spread\n-A INPUT -j other\n${body}\n${'# padding\n'.repeat(40)}COMMIT\n`;
    // The rules of `spread` still the last parse's after each edit: none once a command other than -A, -N, -X or -P
    // ran; a line that repeats an earlier one gets a copy numbered as a repeat.
    const edits: [string, number, (t: string) => string][] = [
      ['nothing', 4, (t) => t],
      ['appended after its lines', 4, (t) => t.replace('COMMIT', '-A spread -j RETURN\nCOMMIT')],
      ['a chain made and deleted, a policy set', 4, (t) => t.replace('COMMIT', '-N SPARE\n-X SPARE\n-P INPUT ACCEPT\nCOMMIT')],
      // Written otherwise (another text, the same rule): the unmoved line's rule is a repeat now, numbered in a copy.
      ['its first line now repeats its last', 2, (t) => t.replace(spread[0]!, spread[3]!.replace(' -s', '  -s'))],
      ['its first line now repeats its stateful one', 2, (t) => t.replace(spread[0]!, spread[1]!.replace(' -s', '  -s'))],
      ['inserted into', 0, (t) => t.replace('COMMIT', '-I spread 1 -j RETURN\nCOMMIT')],
      ['a rule deleted', 0, (t) => t.replace('COMMIT', '-D spread 1\nCOMMIT')],
      ['a rule replaced', 0, (t) => t.replace('COMMIT', '-R spread 2 -j RETURN\nCOMMIT')],
      ['flushed', 0, (t) => t.replace('COMMIT', '-F spread\nCOMMIT')],
      ['zeroed', 0, (t) => t.replace('COMMIT', '-Z spread\nCOMMIT')],
      ['renamed', 0, (t) => t.replace('COMMIT', '-E spread renamed\nCOMMIT')],
      ['another chain flushed', 0, (t) => t.replace('COMMIT', '-F other\nCOMMIT')],
    ];
    for (const [what, kept, edit] of edits) {
      const cache = new ParseCache();
      const first = shared(base, cache)!;
      for (const t of first.tables.values()) for (const c of t.chains.values()) for (const r of c.rules) r.counters.packets = 3;
      const before = snapshot(first);
      const text = edit(base);
      const next = shared(text, cache)!;
      assertUnchanged(before);
      assert.ok(next !== undefined, what);
      assert.deepStrictEqual(withoutCounters(next), withoutCounters(cold(text) as Ruleset), what);
      assert.deepEqual(sharedChains(first, next), [], `${what}: no chain shares the last array`);
      const taken = rulesOf(first, next);
      const rules = [...next.tables.get('filter')!.chains.values()].find((c) => c.name === 'spread' || c.name === 'renamed')!.rules;
      assert.equal(rules.filter((r) => taken.has(r)).length, kept, what);
    }
  });

  it('shares nothing without shareChains or zeroCounters, or with lines moved', () => {
    const base = kubeProxyRules(20, 2);
    for (const opts of [{}, { shareChains: true }, { zeroCounters: true }]) {
      const cache = new ParseCache();
      const first = parseRuleset(base, FILE, { family: 4, cache, ...opts });
      const next = parseRuleset(base, FILE, { family: 4, cache, ...opts });
      assert.deepEqual(sharedChains(first, next), [], JSON.stringify(opts));
    }
    const cache = new ParseCache();
    const first = shared(base, cache)!;
    assert.deepEqual(sharedChains(first, shared(`# one line more\n${base}`, cache)!), []);
  });

  it('gives a shared chain copies before anything changes it, leaving the last parse as it was', () => {
    const chain = 'long';
    const longLines = Array.from({ length: 6 }, (_, k) => `-A long -s 198.18.0.${k} -j ACCEPT`);
    const sep = longLines[2]!;
    // Padding after the rules: the edits at the end leave the chains' lines in the runs compared equal.
    const base =
      '*filter\n:INPUT ACCEPT [0:0]\n:long - [0:0]\n:other - [0:0]\n-A INPUT -j long\n-A INPUT -j other\n' +
      `${longLines.join('\n')}\n-A other -s 198.18.1.0 -j ACCEPT\n-A other -j DROP\n${'# padding\n'.repeat(40)}COMMIT\n`;
    {
      const cache = new ParseCache();
      const first = shared(base, cache)!;
      assert.deepEqual(sharedChains(first, shared(base, cache)!).sort(), ['long', 'other'], 'both chains shared when nothing changed');
    }
    // The chains still sharing after each edit: an append or a declaration gives copies to its chain only, -N, -X and
    // -P change no rule, and every other command gives copies to every chain.
    const edits: [string, string[], (t: string) => string][] = [
      ['appended after its lines', ['other'], (t) => t.replace('COMMIT', `-A ${chain} -j RETURN\nCOMMIT`)],
      ['appended by a line seen before', ['other'], (t) => t.replace('COMMIT', `${sep}\nCOMMIT`)],
      ['declared again (flushed)', ['other'], (t) => t.replace('COMMIT', `:${chain} - [0:0]\n-A ${chain} -j RETURN\nCOMMIT`)],
      ['a chain made and deleted, a policy set', ['long', 'other'], (t) => t.replace('COMMIT', '-N SPARE\n-X SPARE\n-P INPUT ACCEPT\nCOMMIT')],
      ['inserted into', [], (t) => t.replace('COMMIT', `-I ${chain} 1 -j RETURN\nCOMMIT`)],
      ['a rule deleted', [], (t) => t.replace('COMMIT', `-D ${chain} 1\nCOMMIT`)],
      ['a rule replaced', [], (t) => t.replace('COMMIT', `-R ${chain} 1 -j RETURN\nCOMMIT`)],
      ['flushed', [], (t) => t.replace('COMMIT', `-F ${chain}\nCOMMIT`)],
      ['every chain flushed', [], (t) => t.replace('COMMIT', '-F\nCOMMIT')],
      ['zeroed', [], (t) => t.replace('COMMIT', `-Z ${chain}\nCOMMIT`)],
      ['every chain zeroed', [], (t) => t.replace('COMMIT', '-Z\nCOMMIT')],
      ['renamed', [], (t) => t.replace('COMMIT', `-E ${chain} renamed\nCOMMIT`)],
    ];
    for (const [what, still, edit] of edits) {
      // The other way first: the last parse's chain was changed by the edit, the lines that made it are the same.
      const back = new ParseCache();
      const edited = shared(edit(base), back);
      if (edited !== undefined) {
        const kept = snapshot(edited);
        const next = shared(base, back)!;
        assertUnchanged(kept);
        assert.deepStrictEqual(withoutCounters(next), withoutCounters(cold(base) as Ruleset), `${what}, undone`);
        assert.ok(!sharedChains(edited, next).includes(chain) || still.includes(chain), `${what}, undone: shares the edited chain`);
      }
      const cache = new ParseCache();
      const first = shared(base, cache)!;
      for (const t of first.tables.values()) for (const c of t.chains.values()) for (const r of c.rules) r.counters.packets = 3;
      const before = snapshot(first);
      const text = edit(base);
      const next = shared(text, cache);
      assertUnchanged(before);
      const expected = cold(text);
      if (Array.isArray(expected)) {
        assert.equal(next, undefined, `${what}: refused as from nothing`);
        continue;
      }
      assert.ok(next !== undefined, `${what}: parses as from nothing`);
      assert.deepStrictEqual(withoutCounters(next), withoutCounters(expected), what);
      assert.deepEqual(sharedChains(first, next).sort(), still, what);
    }
  });

  it('a chain of many rules appended to by a line seen before gets copies, not the last array grown', () => {
    const lines = ['-A INPUT -j long', ...Array.from({ length: 6 }, (_, k) => `-A long -s 198.18.0.${k} -j ACCEPT`)];
    const base = `*filter\n:INPUT ACCEPT [0:0]\n:long - [0:0]\n${lines.join('\n')}\n${'# padding\n'.repeat(40)}COMMIT\n`;
    const cache = new ParseCache();
    const first = shared(base, cache)!;
    const before = snapshot(first);
    const text = base.replace('COMMIT', `${lines[2]}\nCOMMIT`);
    const next = shared(text, cache)!;
    assertUnchanged(before);
    assert.deepStrictEqual(withoutCounters(next), withoutCounters(cold(text) as Ruleset));
    assert.equal(cache.stats.sharedChains, 1, 'the chain took the last rules before the line came');
    assert.deepEqual(sharedChains(first, next), []);
  });

  it('through 300 random edits: as a cold parse, counters aside, and the last parse never changed', () => {
    const rng = new Rng(17);
    const base = kubeProxyRules(15, 2).split('\n');
    const cache = new ParseCache();
    let lines = [...base];
    let last: Ruleset | undefined;
    let lastOk = false;
    let sharedTotal = 0;
    let unshared = 0;
    let taken = 0;
    for (let round = 0; round < 300; round++) {
      const k = rng.int(0, lines.length - 1);
      const j = rng.int(0, lines.length - 1);
      switch (rng.int(0, 5)) {
        case 0:
          lines.splice(k, 1);
          break;
        case 1:
          // A line again elsewhere: appends to a chain after its lines (unshare), or duplicates a rule.
          lines.splice(j, 0, lines[k] ?? '');
          break;
        case 2:
          lines[k] = (lines[k] ?? '').replace(/\d+/, String(rng.int(0, 99)));
          break;
        case 3: {
          const t = lines[k];
          lines[k] = lines[j];
          lines[j] = t;
          break;
        }
        case 4:
          if (rng.chance(0.5)) lines = [...base];
          break;
        default:
          // Lines change in place, none moves: most chains can be shared.
          break;
      }
      const text = lines.join('\n');
      const before = last === undefined ? undefined : snapshot(last);
      const next = shared(text, cache);
      if (before !== undefined) assertUnchanged(before);
      const expected = cold(text);
      if (Array.isArray(expected)) {
        assert.equal(next, undefined, `round ${round}: refused from nothing, not with sharing`);
        lastOk = false;
      } else {
        assert.ok(next !== undefined, `round ${round}: refused with sharing only`);
        assert.deepStrictEqual(withoutCounters(next), withoutCounters(expected), `round ${round}`);
        // After a refused parse, chains share that parse's rules, not those of `last`.
        if (last !== undefined && lastOk) {
          const n = sharedChains(last, next).length;
          sharedTotal += n;
          const arrays = new Set(sharedChains(last, next));
          for (const r of rulesOf(last, next)) if (!arrays.has(r.chain)) taken++;
          if (n < cache.stats.sharedChains) unshared++;
        }
        last = next;
        lastOk = true;
      }
    }
    assert.ok(sharedTotal > 1000, `${sharedTotal} chains shared`);
    assert.ok(taken > 1000, `${taken} rules taken one line at a time from the last parse`);
    assert.ok(unshared > 0, 'no shared chain was ever given copies');
  });
});
