// Property: whatever text a rule file holds, parseRuleset either returns a ruleset or throws RuleErrors whose every
// error carries this file's name and a line within the text; never another exception, never a hang. Inputs are
// the shared corpus's real rulesets, mutated (characters, tokens, lines), and files made from their tokens at random.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parseRuleset } from '../../src/rules/parse';
import { RuleErrors } from '../../src/rules/errors';
import { saveRuleset } from '../../src/rules/save';
import { CORPUS } from '../paths';

const MUTATIONS = Number(process.env['NFQW_PARSE_MUTATIONS'] ?? 2000);
const BUDGET_MS = 20_000;
const SLOW_MS = 2_000;
const FILE = 'mutant.rules';

/** xorshift32: a fixed seed makes a failure reproducible (printed with it). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

const NASTY = ['"', "'", '\\', '!', '-', '--', ' ', '\t', '\0', '\r', '#', '*', ':', '[', ']', '/', '.', ',',
  '0', '4294967296', '-1', '65536', '0x', '999999999999999999999', '\u00e9', '\u{1f525}', '\ud800', '$(id)', '`id`',
  ';', '|', 'COMMIT', '*filter', ':X - [0:0]', '-A', '-N', '-j', '-g', '-m', '-p', '--dport', '!!', '""'];

function mutate(text: string, tokens: readonly string[], r: () => number): string {
  const pick = <T>(a: readonly T[]): T => a[r() % a.length]!;
  let lines = text.split('\n');
  const steps = 1 + (r() % 4);
  for (let s = 0; s < steps; s++) {
    const li = r() % Math.max(lines.length, 1);
    const line = lines[li] ?? '';
    const words = line.split(' ');
    switch (r() % 10) {
      case 0: { // a character removed
        const i = r() % (line.length + 1);
        lines[li] = line.slice(0, i) + line.slice(i + 1);
        break;
      }
      case 1: { // something nasty inserted
        const i = r() % (line.length + 1);
        lines[li] = line.slice(0, i) + pick(NASTY) + line.slice(i);
        break;
      }
      case 2: // a word replaced with one from anywhere in the corpus
        words[r() % words.length] = pick(tokens);
        lines[li] = words.join(' ');
        break;
      case 3: // a word dropped
        words.splice(r() % words.length, 1);
        lines[li] = words.join(' ');
        break;
      case 4: // a word duplicated
        words.splice(r() % words.length, 0, pick(words));
        lines[li] = words.join(' ');
        break;
      case 5: // a line removed (COMMIT, a table header, a chain declaration...)
        lines.splice(li, 1);
        break;
      case 6: // a line duplicated elsewhere
        lines.splice(r() % (lines.length + 1), 0, line);
        break;
      case 7: // truncated
        lines = lines.slice(0, li);
        lines.push(line.slice(0, r() % (line.length + 1)));
        break;
      case 8: { // a number changed to an edge value
        const edges = ['0', '1', '255', '256', '65535', '65536', '4294967295', '4294967296', '-0', '00', '1e3'];
        lines[li] = line.replace(/\d+/, pick(edges));
        break;
      }
      default: // two words swapped
        if (words.length > 1) {
          const a = r() % words.length;
          const b = r() % words.length;
          [words[a], words[b]] = [words[b]!, words[a]!];
          lines[li] = words.join(' ');
        }
    }
  }
  return lines.join('\n');
}

/** A file of random lines made of corpus tokens, with table headers and COMMIT often enough to reach rule parsing. */
function randomFile(tokens: readonly string[], r: () => number): string {
  const out: string[] = [];
  const n = 1 + (r() % 30);
  for (let i = 0; i < n; i++) {
    const k = r() % 8;
    if (k === 0) out.push(`*${['filter', 'nat', 'mangle', 'raw', 'security', 'bogus'][r() % 6]}`);
    else if (k === 1) out.push('COMMIT');
    else if (k === 2) out.push(`:${['INPUT', 'FORWARD', 'OUTPUT', 'X', 'PREROUTING'][r() % 5]} ${['ACCEPT', 'DROP', '-'][r() % 3]} [0:0]`);
    else out.push(['-A', ...Array.from({ length: r() % 12 }, () => tokens[r() % tokens.length]!)].join(' '));
  }
  return out.join('\n') + '\n';
}

/** Checks one outcome; returns 'ok' or 'errors'. Any other exception fails with the input to reproduce it. */
function parseOnce(text: string, label: string): 'ok' | 'errors' {
  const lineCount = text.split('\n').length;
  const t0 = performance.now();
  let outcome: 'ok' | 'errors';
  try {
    const rs = parseRuleset(text, FILE);
    saveRuleset(rs, { counters: true }); // what a parsed ruleset must also survive: `nfqwall save`
    outcome = 'ok';
  } catch (err) {
    if (!(err instanceof RuleErrors)) {
      const what = err instanceof Error ? (err.stack ?? err.message) : String(err);
      assert.fail(`${label}: not a RuleErrors: ${what}\n--- input ---\n${text.slice(0, 4000)}`);
    }
    assert.ok(err.errors.length > 0, `${label}: RuleErrors without errors`);
    for (const e of err.errors) {
      assert.equal(e.loc.file, FILE, `${label}: ${e.message}`);
      assert.ok(Number.isInteger(e.loc.line) && e.loc.line >= 0 && e.loc.line <= lineCount, `${label}: line out of range: ${e.message}`);
      assert.ok(Number.isInteger(e.loc.column) && e.loc.column >= 0, `${label}: column out of range: ${e.message}`);
      assert.ok(e.message.startsWith(`${FILE}:${e.loc.line}:${e.loc.column}: `), `${label}: ${e.message}`);
    }
    outcome = 'errors';
  }
  const ms = performance.now() - t0;
  assert.ok(ms < SLOW_MS, `${label}: parsing took ${Math.round(ms)} ms\n--- input ---\n${text.slice(0, 4000)}`);
  return outcome;
}

describe('robust: parseRuleset under random and mutated rule files', function () {
  this.timeout(BUDGET_MS + 30_000);
  const files = fs.existsSync(CORPUS) ? fs.readdirSync(CORPUS).filter((f) => f.endsWith('.rules')).sort() : [];
  const texts = files.map((f) => fs.readFileSync(path.join(CORPUS, f), 'utf8'));
  const tokens = [...new Set(texts.flatMap((t) => t.split(/\s+/)).filter((w) => w !== ''))];

  it('finds the corpus', () => {
    assert.ok(texts.length >= 5, `expected rule files in ${CORPUS}`);
  });

  it(`${MUTATIONS} mutations of corpus files: a ruleset or located RuleErrors, never anything else`, () => {
    const seed = Number(process.env['NFQW_PARSE_SEED'] ?? 0x5eed);
    const r = rng(seed);
    const t0 = Date.now();
    const tally = { ok: 0, errors: 0 };
    let i = 0;
    for (; i < MUTATIONS && Date.now() - t0 < BUDGET_MS; i++) {
      const src = r() % texts.length;
      tally[parseOnce(mutate(texts[src]!, tokens, r), `seed ${seed} #${i} (${files[src]})`)]++;
    }
    console.log(`      ${i} mutants in ${Date.now() - t0} ms: ${tally.ok} parsed, ${tally.errors} refused with locations`);
    // Both outcomes must occur, or the mutator is not exercising the parser.
    assert.ok(tally.ok > 0 && tally.errors > 0, JSON.stringify(tally));
    assert.ok(i >= Math.min(MUTATIONS, 200), `only ${i} mutants within the time budget`);
  });

  it('500 random files of corpus tokens: the same', () => {
    const r = rng(0xf00d);
    const tally = { ok: 0, errors: 0 };
    for (let i = 0; i < 500; i++) tally[parseOnce(randomFile(tokens, r), `random #${i}`)]++;
    assert.ok(tally.errors > 0, JSON.stringify(tally));
  });

  it('pathological shapes: huge lines, deep quoting, many chains, NULs, no newline', () => {
    const big = [
      '*filter\n' + ':INPUT ACCEPT [0:0]\n' + '-A INPUT ' + '-s 1.2.3.4 '.repeat(20_000) + '-j ACCEPT\nCOMMIT\n',
      '*filter\n' + '-A INPUT -m comment --comment "' + '\\"'.repeat(50_000) + '" -j ACCEPT\nCOMMIT\n',
      '*filter\n' + Array.from({ length: 5000 }, (_, i) => `:C${i} - [0:0]`).join('\n') + '\n' +
        Array.from({ length: 4999 }, (_, i) => `-A C${i} -j C${i + 1}`).join('\n') + '\nCOMMIT\n',
      '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\0\nCOMMIT',
      '\0'.repeat(10_000),
      '*filter',
      '',
    ];
    for (const [i, t] of big.entries()) parseOnce(t, `pathological #${i}`);
  });
});
