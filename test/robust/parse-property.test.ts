// Property: whatever text a rule file holds, parseRuleset either returns a ruleset or throws RuleErrors whose every
// error carries this file's name and a line within the text; never another exception, never a hang. Inputs are
// the shared corpus's real rulesets, mutated (characters, tokens, lines), and files made from their tokens at random.
// The same for configuration files (parseConfig), from the examples' configurations.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parseRuleset } from '../../src/rules/parse';
import { RuleErrors } from '../../src/rules/errors';
import { saveRuleset } from '../../src/rules/save';
import { CONFIG_KEYS, ConfigError, ConfigErrors, parseConfig } from '../../src/config/config';
import { CORPUS, packageRoot } from '../paths';

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

// Configuration files: the same property for parseConfig (what `nfqwall run --config` reads): a configuration, or
// ConfigErrors whose every error names the file, a line of it and a column, never another exception.
const CONF = 'mutant.conf';

function parseConfigOnce(text: string, label: string): 'ok' | 'errors' {
  const lineCount = text.split('\n').length;
  const t0 = performance.now();
  let outcome: 'ok' | 'errors';
  try {
    const { config } = parseConfig(text, CONF);
    assert.equal(config.file, CONF, label);
    outcome = 'ok';
  } catch (err) {
    if (!(err instanceof ConfigErrors)) {
      const what = err instanceof Error ? (err.stack ?? err.message) : String(err);
      assert.fail(`${label}: not a ConfigErrors: ${what}\n--- input ---\n${text.slice(0, 4000)}`);
    }
    assert.ok(err.errors.length > 0, `${label}: ConfigErrors without errors`);
    for (const e of err.errors) {
      assert.ok(e instanceof ConfigError, label);
      assert.equal(e.file, CONF, `${label}: ${e.message}`);
      assert.ok(Number.isInteger(e.line) && e.line >= 1 && e.line <= lineCount, `${label}: line out of range: ${e.message}`);
      assert.ok(Number.isInteger(e.column) && e.column >= 1, `${label}: column out of range: ${e.message}`);
      assert.ok(e.message.startsWith(`${CONF}:${e.line}:${e.column}: `), `${label}: ${e.message}`);
    }
    outcome = 'errors';
  }
  const ms = performance.now() - t0;
  assert.ok(ms < SLOW_MS, `${label}: parsing took ${Math.round(ms)} ms`);
  return outcome;
}

describe('robust: parseConfig under random and mutated configuration files', function () {
  this.timeout(60_000);
  const dir = path.join(packageRoot(), 'examples');
  const confs = fs.readdirSync(dir).filter((f) => f.endsWith('.conf')).sort();
  const texts = confs.map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
  // Keys with the values the examples and the format allow, and values of every kind, for the mutator to mix.
  const values = ['yes', 'no', 'all', 'none', 'off', 'INPUT,FORWARD', 'PREROUTING,BOGUS', '0', '1', '65535', '65536', '-1', '0600',
    '0888', '1e3', '127.0.0.1:9469', '[::1]:9469', '[::1', ':9469', 'host:99999', 'debug', 'loud', 'stdout', 'syslog', 'root',
    'nosuchgroup-nfqw', '/etc/passwd', '../../x', '""', '=', '= =', '#', '\t'];
  const tokens = [...new Set([...texts.flatMap((t) => t.split(/\s+/)), ...CONFIG_KEYS, ...values].filter((w) => w !== ''))];

  it('finds the example configurations, and they parse', () => {
    assert.ok(texts.length >= 3, `expected *.conf in ${dir}`);
    for (const [i, t] of texts.entries()) assert.equal(parseConfigOnce(t, confs[i]!), 'ok', confs[i]);
  });

  it('2000 mutations of the examples: a configuration or located ConfigErrors, never anything else', () => {
    const r = rng(0xc0f1);
    const tally = { ok: 0, errors: 0 };
    for (let i = 0; i < 2000; i++) {
      const src = r() % texts.length;
      tally[parseConfigOnce(mutate(texts[src]!, tokens, r), `config #${i} (${confs[src]})`)]++;
    }
    console.log(`      ${tally.ok} parsed, ${tally.errors} refused with locations`);
    assert.ok(tally.ok > 0 && tally.errors > 0, JSON.stringify(tally));
  });

  it('1000 random `key = value` files: the same', () => {
    const r = rng(0xbeef);
    const tally = { ok: 0, errors: 0 };
    for (let i = 0; i < 1000; i++) {
      const n = r() % 12;
      const lines = Array.from({ length: n }, () => {
        const k = r() % 10;
        const key = CONFIG_KEYS[r() % CONFIG_KEYS.length]!;
        if (k === 0) return `${tokens[r() % tokens.length]}`;
        if (k === 1) return `# ${tokens[r() % tokens.length]}`;
        return `${k === 2 ? ' ' : ''}${key} = ${values[r() % values.length]}`;
      });
      tally[parseConfigOnce(lines.join(r() % 2 === 0 ? '\n' : '\r\n'), `random config #${i}`)]++;
    }
    assert.ok(tally.ok > 0 && tally.errors > 0, JSON.stringify(tally));
  });

  it('pathological shapes: a huge value, NULs, a BOM, no newline, every key twice', () => {
    const twice = CONFIG_KEYS.map((k) => `${k} = ${k === 'ipset' ? 'a.ipset' : 'yes'}`).join('\n');
    for (const [i, t] of [`rules = ${'a'.repeat(1_000_000)}`, 'queue = 1\0', '\ufeffqueue = 1', 'queue = 1', `${twice}\n${twice}`, '\0'.repeat(10_000)].entries()) {
      parseConfigOnce(t, `pathological config #${i}`);
    }
  });
});
