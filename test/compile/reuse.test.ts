// A reload compiles against the ruleset it replaces (compileRulesetSteps with prev): indexes of chains whose keys did
// not change are reused, the others rebuilt, and either way the result equals a compile from nothing.
import assert from 'node:assert/strict';
import { compileRuleset, compileRulesetSteps, type CompiledRuleset } from '../../src/compile/compile';
import { ParseCache } from '../../src/rules/line-cache';
import type { Chain, Ruleset } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { runSync } from '../../src/steps';
import { kubeProxyRules } from '../../bench/parse';

function chain(rs: Ruleset, table: string, name: string): Chain {
  const c = [...rs.tables.values()].find((t) => t.name === table)?.chains.get(name);
  if (!c) throw new Error(`no chain ${table}/${name}`);
  return c;
}

/** The compile of `rs` as comparable data: per chain name, its index (keys, lists, stats); and the totals. */
function shape(rs: Ruleset, c: CompiledRuleset): unknown {
  const out: [string, unknown][] = [];
  for (const t of rs.tables.values()) for (const ch of t.chains.values()) {
    const idx = c.chains.get(ch);
    if (idx) out.push([`${t.name}/${ch.name}`, idx]);
  }
  return { chains: out, stats: c.stats };
}

describe('compile: reuse across a reload', () => {
  const cache = new ParseCache();
  const parse = (text: string) => parseRuleset(text, 'kube.rules', { family: 4, cache });
  const base = parse(kubeProxyRules(300, 2));
  const before = compileRuleset(base);

  it('keeps the KUBE-SERVICES index when only endpoints changed, and equals a fresh compile', () => {
    const warm = parse(kubeProxyRules(300, 2, { replaced: new Set([3, 200]) }));
    const c = runSync(compileRulesetSteps(warm, {}, { rules: base, compiled: before }));
    assert.equal(c.chains.get(chain(warm, 'nat', 'KUBE-SERVICES')), before.chains.get(chain(base, 'nat', 'KUBE-SERVICES')));
    assert.deepStrictEqual(shape(warm, c), shape(warm, compileRuleset(warm)));
  });

  it('rebuilds it when services move or change, and equals a fresh compile', () => {
    // Every line moves (a service near the top gains an endpoint); another file renames every chain.
    for (const variant of [{ scaledUp: new Set([1]) }, { salt: 1 }]) {
      const next = parse(kubeProxyRules(300, 2, variant));
      const c = runSync(compileRulesetSteps(next, {}, { rules: base, compiled: before }));
      assert.deepStrictEqual(shape(next, c), shape(next, compileRuleset(next)));
    }
    // A service's address changes: its KUBE-SERVICES key differs, so that index cannot be reused.
    const text = kubeProxyRules(300, 2).replace('-d 172.30.0.5 ', '-d 172.30.9.9 ');
    const changed = parse(text);
    const c = runSync(compileRulesetSteps(changed, {}, { rules: base, compiled: before }));
    assert.notEqual(c.chains.get(chain(changed, 'nat', 'KUBE-SERVICES')), before.chains.get(chain(base, 'nat', 'KUBE-SERVICES')));
    assert.deepStrictEqual(shape(changed, c), shape(changed, compileRuleset(changed)));
  });

  it('rebuilds an index whose rules have no matches when a destination changes', () => {
    const file = (last: string) =>
      `*filter\n:INPUT ACCEPT [0:0]\n${Array.from({ length: 9 }, (_, k) => `-A INPUT -d ${k === 8 ? last : `198.18.0.${k}`}/32 -j ACCEPT`).join('\n')}\nCOMMIT\n`;
    const c0 = new ParseCache();
    const a = parseRuleset(file('198.18.0.8'), 'd.rules', { family: 4, cache: c0 });
    const b = parseRuleset(file('198.18.0.99'), 'd.rules', { family: 4, cache: c0 });
    const ca = compileRuleset(a);
    const cb = runSync(compileRulesetSteps(b, {}, { rules: a, compiled: ca }));
    assert.ok(ca.chains.get(chain(a, 'filter', 'INPUT')), 'indexed');
    assert.deepStrictEqual(shape(b, cb), shape(b, compileRuleset(b)));
  });

  it('reuses an index for equal keys even when a rule was reparsed (only its comment changed)', () => {
    const text = kubeProxyRules(300, 2).replace('ns5/svc5:p80 cluster IP" -m tcp', 'ns5/svc5:p80 renamed" -m tcp');
    assert.notEqual(text, kubeProxyRules(300, 2));
    const next = parse(text);
    const c = runSync(compileRulesetSteps(next, {}, { rules: base, compiled: before }));
    assert.equal(c.chains.get(chain(next, 'nat', 'KUBE-SERVICES')), before.chains.get(chain(base, 'nat', 'KUBE-SERVICES')));
    assert.deepStrictEqual(shape(next, c), shape(next, compileRuleset(next)));
  });

  it('keys a long chain in several steps', () => {
    const big = parseRuleset(kubeProxyRules(10_000, 1), 'big.rules', { family: 4 });
    const steps = compileRulesetSteps(big);
    let n = 0;
    while (steps.next().done !== true) n++;
    assert.ok(n >= 2, `${n} steps`);
  });
});
