// A short, bounded libFuzzer run of every native target (scripts/fuzz.sh: packet parser, NAT rewrite, connection
// table) with AddressSanitizer and UndefinedBehaviorSanitizer, and the script's canaries (fuzz/canary_fuzz.cc), which
// show that a UBSan or ASan finding stops the run. It installs nothing: without clang and its fuzzer runtime
// (bootstrap installs them) it skips and says why. Longer runs: `scripts/fuzz.sh 600`.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../paths';

const SECONDS = Number(process.env['NFQW_FUZZ_SECONDS'] ?? 5);
const TARGETS = ['packet', 'nat', 'conntrack', 'flowcache', 'matcher'];

/** Why libFuzzer binaries cannot be built here, or undefined when they can. */
function missingToolchain(): string | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-fuzzcheck-'));
  try {
    const src = path.join(dir, 't.cc');
    fs.writeFileSync(src, 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n');
    const r = spawnSync('clang++', ['-fsanitize=fuzzer,address,undefined', src, '-o', path.join(dir, 't')], { encoding: 'utf8' });
    if (r.error) return `clang++ is not installed (${r.error.message}); bootstrap installs clang and libclang-rt-dev`;
    if (r.status !== 0) return `clang++ cannot link a libFuzzer binary (libclang-rt-dev missing?): ${r.stderr.trim().split('\n')[0]}`;
    return undefined;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs scripts/fuzz.sh; a fixed FUZZ_DIR keeps the built binaries (and the corpus grown so far) between runs. */
function fuzzScript(seconds: number, targets: string[]): Promise<{ code: number | null; text: string }> {
  const dir = path.join(os.tmpdir(), 'nfqwall-fuzz-test');
  return new Promise((resolve) => {
    const child = spawn('bash', [path.join(packageRoot(), 'scripts', 'fuzz.sh'), String(seconds), ...targets], {
      cwd: packageRoot(),
      env: { ...process.env, FUZZ_DIR: dir, FUZZ_NO_INSTALL: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    child.on('close', (code) => resolve({ code, text }));
  });
}

const tailOf = (text: string): string => text.split('\n').filter((l) => !/^#\d+|Uses:/.test(l)).slice(-60).join('\n');

describe('robust: libFuzzer targets (short run)', function () {
  this.timeout(SECONDS * TARGETS.length * 1000 + 240_000);
  let why: string | undefined;
  before(() => {
    why = missingToolchain();
  });

  it('every target and the canaries are built with libFuzzer, ASan and UBSan, UBSan findings fatal', function () {
    const script = fs.readFileSync(path.join(packageRoot(), 'scripts', 'fuzz.sh'), 'utf8');
    const flags = /^flags=\((.*)\)$/m.exec(script)?.[1]?.split(/\s+/) ?? [];
    for (const f of ['-fsanitize=address,undefined', '-fno-sanitize-recover=undefined']) assert.ok(flags.includes(f), `fuzz.sh flags lack ${f}: ${flags.join(' ')}`);
    assert.match(script, /clang\+\+ "\$\{flags\[@\]\}" -fsanitize=fuzzer "\$src"/, 'targets link with -fsanitize=fuzzer and the flags');
    // The seeds are in the repository, a few per target.
    for (const t of [...TARGETS, 'canary-ub', 'canary-asan']) {
      const seeds = fs.readdirSync(path.join(packageRoot(), 'fuzz', 'corpus', t));
      assert.ok(seeds.length >= (t.startsWith('canary') ? 1 : 2), `fuzz/corpus/${t}: ${seeds.length} seeds`);
    }
  });

  for (const [canary, finding] of [
    ['canary-ub', /runtime error: signed integer overflow/],
    ['canary-asan', /AddressSanitizer: heap-buffer-overflow/],
  ] as const) {
    it(`${canary}: the known bug its seed triggers stops the run (exit 1) with the sanitizer's report`, async function () {
      if (why !== undefined) {
        console.log(`      skipped: ${why}`);
        this.skip();
      }
      const out = await fuzzScript(5, [canary]);
      assert.equal(out.code, 1, `scripts/fuzz.sh ${canary} exited ${out.code}:\n${tailOf(out.text)}`);
      assert.match(out.text, finding, tailOf(out.text));
      assert.match(out.text, new RegExp(`${canary} FOUND A PROBLEM`), tailOf(out.text));
    });
  }

  it(`runs ${TARGETS.join(', ')} for ${SECONDS} s each without a finding`, async function () {
    if (why !== undefined) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    const out = await fuzzScript(SECONDS, TARGETS);
    const tail = tailOf(out.text);
    assert.equal(out.code, 0, `scripts/fuzz.sh exited ${out.code}:\n${tail}`);
    // Each target must really have run: libFuzzer closes with "Done N runs".
    const runs = [...out.text.matchAll(/^Done (\d+) runs/gm)].map((m) => Number(m[1]));
    assert.equal(runs.length, TARGETS.length, tail);
    for (const [i, n] of runs.entries()) assert.ok(n > 1000, `${TARGETS[i]}: only ${n} runs`);
    console.log(`      ${TARGETS.map((t, i) => `${t} ${runs[i]} runs`).join(', ')}`);
  });
});
