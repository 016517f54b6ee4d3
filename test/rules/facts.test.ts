// The parser's facts (src/rules/facts.ts) let reload passes skip rulesets that surely have no rule of a kind: they
// must never claim "none" for a ruleset that has one, parsed from scratch or reusing an earlier parse.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { kubeProxyRules } from '../../bench/parse';
import { HAS_STATE, MAY_BE_UNENFORCEABLE, ruleFacts, statefulRulesOf, surelyNone, USES_SET, USES_STORES } from '../../src/rules/facts';
import { RuleErrors } from '../../src/rules/errors';
import { ParseCache } from '../../src/rules/line-cache';
import type { Family, Ruleset } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { CORPUS } from '../paths';

const BITS = [USES_SET, USES_STORES, MAY_BE_UNENFORCEABLE];

/** The facts of every rule, by walking them. */
function walked(rs: Ruleset): number {
  let bits = 0;
  for (const t of rs.tables.values()) for (const c of t.chains.values()) for (const r of c.rules) bits |= ruleFacts(r);
  return bits;
}

function tryParse(text: string, file: string, family: Family, cache?: ParseCache): Ruleset | undefined {
  try {
    return parseRuleset(text, file, cache ? { family, cache } : { family });
  } catch (e) {
    if (e instanceof RuleErrors) return undefined;
    throw e;
  }
}

/** Asserts the parser listed every rule with HAS_STATE of each table; returns how many there are. */
function assertStatefulListed(rs: Ruleset, what: string): number {
  let n = 0;
  for (const t of rs.tables.values()) {
    const listed = new Set(statefulRulesOf(t));
    for (const c of t.chains.values())
      for (const r of c.rules)
        if (ruleFacts(r) & HAS_STATE) {
          n++;
          assert.ok(listed.has(r), `${what}: ${t.name} ${c.name} rule ${r.id} is listed`);
        }
  }
  return n;
}

describe('rules/facts', () => {
  it('never says none of a kind a corpus ruleset has, parsed from scratch or reusing a parse', () => {
    const files = fs.readdirSync(CORPUS).filter((f) => f.endsWith('.rules'));
    assert.ok(files.length > 20, `corpus not found at ${CORPUS}`);
    let seen = 0;
    for (const f of files) {
      const text = fs.readFileSync(path.join(CORPUS, f), 'utf8');
      const family: Family = /-v6\.rules$/.test(f) ? 6 : 4;
      const cache = new ParseCache();
      for (const version of [text, `\n${text}`]) {
        const rs = tryParse(version, f, family, cache);
        if (rs === undefined) continue;
        const have = walked(rs);
        seen |= have;
        for (const bit of BITS) if (have & bit) assert.equal(surelyNone(rs, bit), false, `${f}: bit ${bit}`);
        assertStatefulListed(rs, f);
      }
    }
    // The corpus has rules of every kind, so each claim was put to the test.
    assert.equal(seen, USES_SET | USES_STORES | MAY_BE_UNENFORCEABLE | HAS_STATE);
  });

  it('lists every rule with state of a table through -I, -R, -D, -E, -F, -X, a redeclared chain and reparses', () => {
    const nth = (n: number) => `-m statistic --mode nth --every ${n} --packet 0`;
    const base = [
      '*filter',
      ':INPUT ACCEPT [0:0]',
      ':FORWARD ACCEPT [0:0]',
      ':OUTPUT ACCEPT [0:0]',
      ':a - [0:0]',
      ':b - [0:0]',
      ':c - [0:0]',
      `-A INPUT ${nth(2)} -j a`,
      '-A INPUT -m limit --limit 5/sec -j b',
      `-A a ${nth(3)}`,
      '-A a -s 198.18.0.1,198.18.0.2 -m quota --quota 1000',
      '-A b -m comment --comment none',
      `-A c ${nth(4)}`,
    ];
    const edits = [
      [],
      [`-I INPUT 1 ${nth(5)}`],
      [`-R a 1 ${nth(6)}`, '-D INPUT 2'],
      ['-E a aa', `-A aa ${nth(7)}`],
      ['-F c', '-X c', `-I b ${nth(8)}`],
      [':b - [0:0]', `-A b ${nth(9)}`],
    ];
    const cache = new ParseCache();
    let checked = 0;
    for (let round = 0; round < 2; round++)
      for (const edit of edits) {
        const text = [...base, ...edit, 'COMMIT', ''].join('\n');
        for (const rs of [parseRuleset(text, 's.rules', { family: 4, cache }), parseRuleset(text, 's.rules', { family: 4 })]) {
          checked += assertStatefulListed(rs, edit.join('; '));
        }
      }
    assert.ok(checked > 50, `${checked} rules with state checked`);
  });

  it('statistic keeps state in nth mode only', () => {
    const rs = parseRuleset(
      '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m statistic --mode random --probability 0.5\n-A INPUT -m statistic --mode nth --every 2 --packet 1\nCOMMIT\n',
      'st.rules',
      { family: 4 },
    );
    const [random, nth] = rs.tables.get('filter')!.chains.get('INPUT')!.rules;
    assert.equal(ruleFacts(random!) & HAS_STATE, 0);
    assert.equal(ruleFacts(nth!) & HAS_STATE, HAS_STATE);
    assert.deepEqual(statefulRulesOf(rs.tables.get('filter')!), [nth]);
  });

  it('says none for a kube-proxy ruleset, and says nothing of a ruleset it did not parse', () => {
    const cache = new ParseCache();
    for (const text of [kubeProxyRules(20, 2), kubeProxyRules(20, 2, { replaced: new Set([3]) })]) {
      const rs = parseRuleset(text, 'k.rules', { family: 4, cache });
      for (const bit of BITS) assert.equal(surelyNone(rs, bit), true);
      // Its statistic matches are all --mode random, which keeps no state: the engine carries nothing over a reload.
      assert.equal(surelyNone(rs, HAS_STATE), true);
      assert.deepEqual(statefulRulesOf(rs.tables.get('nat')!), []);
      assert.equal(surelyNone({ ...rs }, USES_SET), false);
    }
    const rs = parseRuleset('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m recent --set\nCOMMIT\n', 'r.rules', { family: 4 });
    assert.equal(surelyNone(rs, USES_STORES), false);
    assert.equal(surelyNone(rs, USES_SET), true);
  });
});
