// The parser's facts (src/rules/facts.ts) let reload passes skip rulesets that surely have no rule of a kind: they
// must never claim "none" for a ruleset that has one, parsed from scratch or reusing an earlier parse.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { kubeProxyRules } from '../../bench/parse';
import { MAY_BE_UNENFORCEABLE, ruleFacts, surelyNone, USES_SET, USES_STORES } from '../../src/rules/facts';
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
      }
    }
    // The corpus has rules of every kind, so each claim was put to the test.
    assert.equal(seen, USES_SET | USES_STORES | MAY_BE_UNENFORCEABLE);
  });

  it('says none for a kube-proxy ruleset, and says nothing of a ruleset it did not parse', () => {
    const cache = new ParseCache();
    for (const text of [kubeProxyRules(20, 2), kubeProxyRules(20, 2, { replaced: new Set([3]) })]) {
      const rs = parseRuleset(text, 'k.rules', { family: 4, cache });
      for (const bit of BITS) assert.equal(surelyNone(rs, bit), true);
      assert.equal(surelyNone({ ...rs }, USES_SET), false);
    }
    const rs = parseRuleset('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m recent --set\nCOMMIT\n', 'r.rules', { family: 4 });
    assert.equal(surelyNone(rs, USES_STORES), false);
    assert.equal(surelyNone(rs, USES_SET), true);
  });
});
