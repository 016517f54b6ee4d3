// Every corpus file with the kernel's own iptables-save rendering must print byte-identical to it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { checkEnforceable } from '../../src/rules/enforce';
import { RuleErrors } from '../../src/rules/errors';
import type { Family } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { saveRuleset } from '../../src/rules/save';

import { CORPUS } from '../paths';

export function corpusFamily(file: string): Family {
  return /-v6\.rules$/.test(file) ? 6 : 4;
}

/** Chains a NOFLUSH prereq creates (`iptables [-t T] -N C`), per table. */
export function prereqChains(prereq: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of prereq.split('\n')) {
    const m = /^ip6?tables\s+(?:-t\s+(\S+)\s+)?-N\s+(\S+)\s*$/.exec(line.trim());
    if (!m) continue;
    const t = m[1] ?? 'filter';
    out.set(t, [...(out.get(t) ?? []), m[2]]);
  }
  return out;
}

/** The file as the kernel saw it after a NOFLUSH prereq: the prereq's chains declared at the top of their table. */
function withPrereqChains(text: string, chains: Map<string, string[]>): string {
  return text
    .split('\n')
    .flatMap((l) => {
      const t = /^\*(\S+)/.exec(l)?.[1];
      const add = t ? chains.get(t) : undefined;
      return add ? [l, ...add.map((c) => `:${c} - [0:0]`)] : [l];
    })
    .join('\n');
}

function refusal(f: () => unknown): RuleErrors {
  try {
    f();
  } catch (e) {
    if (e instanceof RuleErrors) return e;
    throw e;
  }
  assert.fail('expected the file to be refused');
}

const files = fs.existsSync(CORPUS) ? fs.readdirSync(CORPUS).filter((f) => f.endsWith('.rules')).sort() : [];

describe('rules/corpus round trip', () => {
  it('finds the corpus', () => {
    assert.ok(files.length > 20, `corpus not found at ${CORPUS} (set NFQW_CORPUS)`);
  });
  for (const f of files) {
    const base = f.slice(0, -'.rules'.length);
    const kernel = path.join(CORPUS, `${base}.kernel-save`);
    const prereq = path.join(CORPUS, `${base}.prereq`);
    const text = fs.readFileSync(path.join(CORPUS, f), 'utf8');
    const family = corpusFamily(f);
    const chains = fs.existsSync(prereq) ? prereqChains(fs.readFileSync(prereq, 'utf8')) : new Map<string, string[]>();
    if (fs.existsSync(kernel)) {
      if (chains.size > 0) {
        it(`${f}: refuses jumps to chains only its prereq creates, with their location`, () => {
          const e = refusal(() => parseRuleset(text, f, { family }));
          const missing = new Set([...chains.values()].flat());
          for (const err of e.errors) {
            assert.match(err.message, new RegExp(`^${f.replace(/\./g, '\\.')}:\\d+:\\d+: unknown target or chain "`));
            assert.ok([...missing].some((c) => err.message.includes(`"${c}"`)), err.message);
          }
        });
      }
      it(`${f}: prints what the kernel's iptables-save printed`, () => {
        const src = chains.size > 0 ? withPrereqChains(text, chains) : text;
        const out = saveRuleset(parseRuleset(src, f, { family }));
        assert.equal(out, fs.readFileSync(kernel, 'utf8'));
      });
    } else {
      it(`${f}: the kernel refused it; nfqwall refuses to load or enforce it, naming where`, () => {
        let e: RuleErrors;
        try {
          checkEnforceable(parseRuleset(text, f, { family }));
          assert.fail('expected refusal');
        } catch (x) {
          if (!(x instanceof RuleErrors)) throw x;
          e = x;
        }
        for (const err of e.errors) assert.match(err.message, /^[^:]+:\d+:\d+: /);
        assert.ok(e.errors.length > 0);
      });
    }
  }
});
