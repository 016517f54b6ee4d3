// A short, bounded libFuzzer run of every native target (scripts/fuzz.sh: packet parser, NAT rewrite, connection
// table) with AddressSanitizer and UndefinedBehaviorSanitizer. It installs nothing: without clang and its fuzzer
// runtime (bootstrap installs them) it skips and says why. Longer runs: `scripts/fuzz.sh 600`.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../paths';

const SECONDS = Number(process.env['NFQW_FUZZ_SECONDS'] ?? 10);
const TARGETS = ['packet', 'nat', 'conntrack'];

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

describe('robust: libFuzzer targets (short run)', function () {
  this.timeout(SECONDS * TARGETS.length * 1000 + 240_000);

  it(`runs ${TARGETS.join(', ')} for ${SECONDS} s each without a finding`, async function () {
    const why = missingToolchain();
    if (why !== undefined) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    // A fixed directory keeps the built binaries (and the corpus grown so far) from one run to the next.
    const dir = path.join(os.tmpdir(), 'nfqwall-fuzz-test');
    const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const child = spawn('bash', [path.join(packageRoot(), 'scripts', 'fuzz.sh'), String(SECONDS), ...TARGETS], {
        cwd: packageRoot(),
        env: { ...process.env, FUZZ_DIR: dir, FUZZ_NO_INSTALL: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (text += d.toString()));
      child.on('close', (code) => resolve({ code, text }));
    });
    const tail = out.text.split('\n').filter((l) => !/^#\d+|Uses:/.test(l)).slice(-60).join('\n');
    assert.equal(out.code, 0, `scripts/fuzz.sh exited ${out.code}:\n${tail}`);
    // Each target must really have run: libFuzzer closes with "Done N runs".
    const runs = [...out.text.matchAll(/^Done (\d+) runs/gm)].map((m) => Number(m[1]));
    assert.equal(runs.length, TARGETS.length, tail);
    for (const [i, n] of runs.entries()) assert.ok(n > 1000, `${TARGETS[i]}: only ${n} runs`);
    console.log(`      ${TARGETS.map((t, i) => `${t} ${runs[i]} runs`).join(', ')}`);
  });
});
