// Builds what the benchmark runs besides nfqwall: the C programs (with cc) and the npm `nfqueue` binding, all into
// bench/out. The binding is a benchmark-only dependency, so it never enters package.json.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const NFQUEUE_PACKAGE = 'nfqueue@0.3.2';

export function benchDir(root: string): string {
  return path.join(root, 'bench');
}

export function outDir(root: string): string {
  const out = path.join(benchDir(root), 'out');
  fs.mkdirSync(out, { recursive: true });
  return out;
}

/** Compiles bench/c/NAME.c to bench/out/NAME when the source is newer; returns the binary's path. */
export function buildC(root: string, name: string, libs: string[]): string {
  const src = path.join(benchDir(root), 'c', `${name}.c`);
  const bin = path.join(outDir(root), name);
  if (!fs.existsSync(bin) || fs.statSync(bin).mtimeMs < fs.statSync(src).mtimeMs) {
    execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-o', bin, src, ...libs], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return bin;
}

/** Installs the npm `nfqueue` binding into bench/out; returns its module directory, or the reason it is unusable. */
export function installNfqueue(root: string): { dir: string } | { error: string } {
  const out = outDir(root);
  const dir = path.join(out, 'node_modules', 'nfqueue');
  const addon = path.join(dir, 'build', 'Release', 'nfqueue.node');
  try {
    if (!fs.existsSync(addon)) {
      execFileSync('npm', ['install', '--prefix', out, '--no-save', '--no-audit', '--no-fund', '--loglevel=error', NFQUEUE_PACKAGE], {
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 300_000,
      });
    }
    // npm may skip install scripts under an allow-list policy; build the addon ourselves then.
    if (!fs.existsSync(addon)) {
      execFileSync('npm', ['rebuild', '--prefix', out, '--ignore-scripts=false', 'nfqueue'], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
    }
    if (!fs.existsSync(addon)) return { error: `${NFQUEUE_PACKAGE} installed but ${addon} was not built` };
    return { dir };
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    const detail = e.stderr !== undefined ? e.stderr.toString().trim().split('\n').slice(-15).join('\n') : e.message;
    return { error: `${NFQUEUE_PACKAGE} failed to install or build:\n${detail}` };
  }
}
