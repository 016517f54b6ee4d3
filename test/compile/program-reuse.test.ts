// A reload's program with the unchanged chains copied from the program in force (src/compile/program-reuse.ts)
// must be, word for word and counter for counter, the program compiled from nothing. Rulesets are parsed through the
// line cache as the daemon parses them, so unchanged lines keep their objects; edits change, move, add, drop lines.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { kubeProxyRules } from '../../bench/parse';
import { compileProgram, type Program } from '../../src/compile/program';
import { ParseCache } from '../../src/rules/line-cache';
import type { Ruleset } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { CORPUS } from '../paths';
import { Rng } from '../rng';

/** Compiles `next` both ways, requires the same program, and returns the one made with reuse. */
function bothWays(prevRules: Ruleset, prev: Program, next: Ruleset, what: string): Program {
  const family = next.family;
  const fresh = compileProgram(next, family);
  const reused = compileProgram(next, family, { rules: prevRules, words: prev.words });
  assert.equal(reused.words.length, fresh.words.length, `${what}: word count`);
  const at = reused.words.findIndex((w, i) => w !== fresh.words[i]);
  assert.equal(at, -1, `${what}: first different word at ${at}`);
  assert.equal(reused.counters.length, fresh.counters.length, `${what}: counter count`);
  for (let i = 0; i < fresh.counters.length; i++) assert.ok(reused.counters[i] === fresh.counters[i], `${what}: counter ${i} is another object`);
  return reused;
}

function chainCount(rs: Ruleset): number {
  let n = 0;
  for (const t of rs.tables.values()) n += t.chains.size;
  return n;
}

/** A series of versions of one file, each parsed through one line cache and compiled with the last one's program. */
function series(texts: string[], family: 4 | 6, what: string): number[] {
  const cache = new ParseCache();
  let rules = parseRuleset(texts[0]!, 'series.rules', { family, cache });
  let program = compileProgram(rules, family);
  const reused: number[] = [];
  for (let k = 1; k < texts.length; k++) {
    const next = parseRuleset(texts[k]!, 'series.rules', { family, cache });
    program = bothWays(rules, program, next, `${what} version ${k}`);
    reused.push(program.reusedChains / chainCount(next));
    rules = next;
  }
  return reused;
}

describe('compile/reuse: the unchanged chains copied from the program in force', () => {
  it('kube-proxy syncs: unchanged, endpoints replaced, a service scaled up (every later line moves), every chain renamed', () => {
    const n = 300;
    const replaced = new Set([3, 150, 299]);
    const [same, warm, moved, back, cold] = series(
      [
        kubeProxyRules(n, 3),
        kubeProxyRules(n, 3),
        kubeProxyRules(n, 3, { replaced }),
        kubeProxyRules(n, 3, { replaced, scaledUp: new Set([1]) }),
        kubeProxyRules(n, 3),
        kubeProxyRules(n, 3, { salt: 1 }),
      ],
      4,
      'kube-proxy',
    );
    assert.equal(same, 1, 'an unchanged file: every chain copied');
    assert.ok(warm! > 0.95 && warm! < 1, `endpoints replaced: nearly every chain copied (${warm})`);
    assert.ok(moved! > 0.95 && moved! < 1, `moved lines keep their objects' meaning: nearly every chain copied (${moved})`);
    assert.ok(back! > 0.95, `back to the first file (${back})`);
    assert.ok(cold! < 0.05, `every chain renamed: nearly nothing copied (${cold})`);
  });

  const files = fs.existsSync(CORPUS) ? fs.readdirSync(CORPUS).filter((f) => f.endsWith('.rules')).sort() : [];
  it('corpus rulesets, each through random edits: lines dropped, swapped, duplicated, policies changed', () => {
    assert.ok(files.length > 0, `no *.rules in ${CORPUS} (set NFQW_CORPUS)`);
    let versions = 0;
    const unchanged: number[] = [];
    for (const file of files) {
      const family = file.endsWith('-v6.rules') ? 6 : 4;
      const base = fs.readFileSync(path.join(CORPUS, file), 'utf8');
      try {
        parseRuleset(base, file, { family });
      } catch {
        continue; // files nfqwall refuses (their own tests say why) have no program
      }
      const rng = new Rng(file.length * 7919);
      const texts = [base, base];
      for (let k = 0; k < 12; k++) {
        const edited = edit(texts[texts.length - 1]!, rng);
        try {
          parseRuleset(edited, file, { family });
          texts.push(edited);
        } catch {
          // An edit that breaks the file (a chain left without its last jump into a hook's rules): skip it.
        }
      }
      unchanged.push(series(texts, family, file)[0]!);
      versions += texts.length;
    }
    assert.ok(versions > 50, `the corpus gave ${versions} versions`);
    // Lines the line cache parses again (-I insertions, for one) have new objects, so their chains are compiled.
    const mean = unchanged.reduce((a, b) => a + b, 0) / unchanged.length;
    assert.ok(mean > 0.9, `an unchanged file: ${(100 * mean).toFixed(1)}% of the chains copied, on average`);
  });

  it('a previous program from another ruleset or family is not copied from', () => {
    const a = parseRuleset(kubeProxyRules(20, 2), 'a.rules', { family: 4 });
    const b = parseRuleset(kubeProxyRules(20, 2), 'b.rules', { family: 4 });
    const pa = compileProgram(a, 4);
    const empty = [...b.tables.values()].reduce((n, t) => n + [...t.chains.values()].filter((c) => c.rules.length === 0).length, 0);
    assert.equal(bothWays(a, pa, b, 'another parse of the same text').reusedChains, empty, 'only the chains without rules');
    const truncated = { rules: a, words: pa.words.slice(0, 6 + 5) };
    assert.doesNotThrow(() => compileProgram(b, 4, truncated));
    assert.equal(compileProgram(b, 4, truncated).reusedChains, 0);
  });
});

/** One random edit of an iptables-save text's rule and policy lines. */
function edit(text: string, rng: Rng): string {
  const lines = text.split('\n');
  const rules = lines.flatMap((l, i) => (l.startsWith('-A ') ? [i] : []));
  const policies = lines.flatMap((l, i) => (/^:(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) (ACCEPT|DROP) /.test(l) ? [i] : []));
  const what = rng.int(0, 3);
  if (rules.length > 1 && what === 0) lines.splice(rng.pick(rules), 1);
  else if (rules.length > 1 && what === 1) {
    const i = rng.pick(rules);
    if (lines[i + 1]?.startsWith('-A ')) [lines[i], lines[i + 1]] = [lines[i + 1]!, lines[i]!];
  } else if (rules.length > 0 && what === 2) {
    const i = rng.pick(rules);
    lines.splice(rng.int(rules[0]!, i + 1), 0, lines[i]!.replace(/ -j /, ' -m comment --comment nfqw-edit -j '));
  } else if (policies.length > 0) {
    const i = rng.pick(policies);
    lines[i] = lines[i]!.includes(' ACCEPT ') ? lines[i]!.replace(' ACCEPT ', ' DROP ') : lines[i]!.replace(' DROP ', ' ACCEPT ');
  }
  return lines.join('\n');
}
