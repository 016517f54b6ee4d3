// `npm run demo`, run as a user would, without a terminal: it must finish on its own, clean up, exit 0, and end with
// a summary line whose every field says the ruleset did what it says.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { isRoot } from '../lab/lab';
import { packageRoot } from '../paths';

/** The demo entry: the compiled one beside the compiled test, the TypeScript one under tsx. */
function demoCommand(): string[] {
  const root = packageRoot();
  if (__filename.endsWith('.ts')) return ['--import', 'tsx', path.join(root, 'examples', 'demo', 'demo.ts')];
  return [path.join(root, 'dist', 'examples', 'demo', 'demo.js')];
}

function namespacesOf(pid: number): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.startsWith(`nfqw-${pid}-`));
}

/** Whether this build's CLI has a subcommand (the demo uses `reload` when there is one). */
function cliHas(cmd: string): boolean {
  const help = execFileSync(process.execPath, [path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js'), '--help'], {
    encoding: 'utf8',
  });
  return new RegExp(`^  ${cmd}\\b`, 'm').test(help);
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  pid: number;
  ms: number;
}

function runDemo(args: string[], timeoutMs: number): Promise<Run> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [...demoCommand(), ...args], {
    cwd: packageRoot(),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, pid: child.pid ?? -1, ms: Date.now() - t0 });
    });
  });
}

describe('npm run demo', function () {
  this.timeout(90_000);

  before(function () {
    if (!isRoot()) {
      process.stderr.write('demo: skipping: the demo builds network namespaces and needs root\n');
      this.skip();
    }
  });

  it('runs to the end without a terminal, says what happened, cleans up and exits 0', async () => {
    const r = await runDemo(['--quick'], 75_000);
    const all = `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
    assert.equal(r.code, 0, all);
    const lines = r.stdout.trimEnd().split('\n');
    const last = lines[lines.length - 1] ?? '';
    const how = cliHas('reload') ? 'reload' : 'restart';
    // The kube-proxy scenario: every request to the ClusterIP answered, by every backend (30 requests split at
    // random: a backend left out happens about once in 60 000 runs), and MASQUERADE seen by the backends.
    const summary = new RegExp(
      `^demo: backends 3/3 answered, ping 3/3, blocked dropped, rejected refused, counters ok, ${how} ok, ` +
        'kube-proxy ok \\(backend1 (\\d+), backend2 (\\d+), backend3 (\\d+)\\), masquerade ok$',
    );
    const m = summary.exec(last);
    assert.ok(m, `last line: ${last}\n${all}`);
    const spread = [m[1], m[2], m[3]].map(Number);
    assert.equal(spread.reduce((a, b) => a + b, 0), 30, `kube-proxy spread ${spread.join('/')}`);
    for (const n of spread) assert.ok(n > 0, `a backend got no request: ${spread.join('/')}`);
    assert.match(r.stdout, /requests from 198\.19\.200\.2 .*: ok: 12\/12 arrived from the node's address/, all);
    assert.match(r.stdout, /src=198\.19\.200\.2 dst=198\.19\.100\.10 .* src=198\.19\.\d\.2 dst=198\.19\.\d\.1 /, 'a MASQUERADEd conntrack entry');
    // Plain output when stdout is not a terminal: no escape sequences, no spinner.
    assert.doesNotMatch(r.stdout, /\x1b\[/, 'colour codes in non-TTY output');
    // The refusal is immediate and measured; the drop made the client give up.
    const refused = /port 8443.*refused after ([\d.]+) ms/.exec(r.stdout);
    assert.ok(refused, all);
    assert.ok(Number(refused[1]) < 1_000, `REJECT took ${refused[1]} ms`);
    assert.match(r.stdout, /port 8080 \(blocked.*no answer, gave up after/);
    assert.match(r.stdout, /demo-blocked: IN=\S+ OUT=\S+ .*DPT=8080 /, 'a LOG line from the daemon');
    assert.match(r.stdout, /\[\d+:\d+\] -A FORWARD .*--dport 8443 -j REJECT --reject-with tcp-reset/, 'counters printed');
    assert.deepEqual(namespacesOf(r.pid), [], 'namespaces left behind');
    const tmp = fs.readdirSync('/tmp').filter((n) => n.startsWith(`nfqw-${r.pid}-`));
    assert.deepEqual(tmp, [], 'scratch directories left behind');
  });

  it('removes the lab when interrupted (SIGINT) in the middle', async function () {
    // Interrupt while the client waits on the dropped port: the lab and nfqwall are up then.
    const child = spawn(process.execPath, [...demoCommand(), '--quick'], { cwd: packageRoot(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const pid = child.pid ?? -1;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the demo never reached port 8080:\n${out}\n--- stderr\n${err}`)), 45_000);
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (/port 8080 \(blocked/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    assert.ok(namespacesOf(pid).length > 0, 'the lab should be up at this point');
    child.kill('SIGINT');
    const code = await exited;
    assert.equal(code, 130, out);
    assert.match(out, /Ctrl-C: removing the lab/);
    assert.deepEqual(namespacesOf(pid), [], 'namespaces left behind after SIGINT');
  });
});
