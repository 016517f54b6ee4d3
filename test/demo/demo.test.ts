// `npm run demo`, run as a user would, without a terminal: it must finish on its own, clean up, exit 0, and end with
// a summary line whose every field says the ruleset did what it says.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
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
        'kube-proxy ok \\(backend1 (\\d+), backend2 (\\d+), backend3 (\\d+)\\), masquerade ok, nodeport ok, ' +
        'no-endpoints refused, scale-to-4 ok \\(backend4 (\\d+), failed 0\\), list ok, metrics ok$',
    );
    const m = summary.exec(last);
    assert.ok(m, `last line: ${last}\n${all}`);
    const spread = [m[1], m[2], m[3]].map(Number);
    assert.equal(spread.reduce((a, b) => a + b, 0), 30, `kube-proxy spread ${spread.join('/')}`);
    for (const n of spread) assert.ok(n > 0, `a backend got no request: ${spread.join('/')}`);
    assert.ok(Number(m[4]) > 0, 'backend4 got no request after the scale-up');
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
    // `nfqwall list -v`, an excerpt: the chains that matter, with counters that moved.
    assert.match(r.stdout, /^ +Chain FORWARD \(policy DROP \d+ packets, \d+ bytes\)$/m, all);
    assert.match(r.stdout, /^ +[1-9]\d* +\d+ REJECT +tcp .* tcp dpt:8443 reject-with tcp-reset\s*$/m, 'REJECT counted in list -v');
    assert.match(r.stdout, /^ +Chain KUBE-SVC-DEMO \(\d+ references\)$/m, all);
    for (const n of [1, 2, 3])
      assert.match(r.stdout, new RegExp(`^ +[1-9]\\d* +\\d+ KUBE-SEP-BACKEND${n} `, 'm'), `KUBE-SEP-BACKEND${n} counted in list -v`);
    assert.match(r.stdout, /^ +1 +\d+ REJECT .*demo\/empty:http has no endpoints/m, 'the no-endpoints REJECT counted once');
    assert.doesNotMatch(r.stdout, /^ +Chain (INPUT|OUTPUT|KUBE-MARK-MASQ) /m, 'the excerpt shows only the chains that matter');
    // /metrics, an excerpt: verdicts, the per-endpoint rule counters (four after the scale-up), the reload.
    assert.match(r.stdout, /^ +nfqwall_verdicts_total\{verdict="accept"\} [1-9]\d*$/m, all);
    assert.match(r.stdout, /^ +nfqwall_config_reloads_total\{result="success"\} [1-9]\d*$/m, all);
    const endpointSeries = r.stdout.match(/^ +nfqwall_rule_packets_total\{.*chain="KUBE-SVC-DEMO",rule="demo\/web:http -> 198\.19\.\d\.2:80"\} [1-9]\d*$/gm) ?? [];
    assert.equal(endpointSeries.length, 4, `per-endpoint series:\n${endpointSeries.join('\n')}`);
    // The NodePort answered through the node, the empty service was refused at once, the reload lost nothing.
    assert.match(r.stdout, /NodePort 198\.18\.0\.1:30080 .*: ok: 12\/12 answered by a backend, which saw the node's address/, all);
    const empty = /198\.19\.100\.11:80 .*: ok: refused after ([\d.]+) ms/.exec(r.stdout);
    assert.ok(empty, all);
    assert.ok(Number(empty[1]) < 1_000, `the no-endpoints REJECT took ${empty[1]} ms`);
    assert.match(r.stdout, /reload during 100 requests: ok: 100\/100 answered, 0 failed; before the reload: .*backend4 0; after it: /, all);
    assert.deepEqual(namespacesOf(r.pid), [], 'namespaces left behind');
    const tmp = fs.readdirSync('/tmp').filter((n) => n.startsWith(`nfqw-${r.pid}-`));
    assert.deepEqual(tmp, [], 'scratch directories left behind');
  });

  it('--keep leaves the lab up, prints commands that work in it, and removes it on Ctrl-C', async () => {
    const child = spawn(process.execPath, [...demoCommand(), '--quick', '--keep'], {
      cwd: packageRoot(),
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const pid = child.pid ?? -1;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`--keep never said the lab is up:\n${out}\n--- stderr\n${err}`)), 75_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (/Press Ctrl-C here to remove the lab/.test(out)) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`the demo exited (${code}) with --keep:\n${out}\n--- stderr\n${err}`)));
      });
      assert.ok(namespacesOf(pid).length >= 6, `the lab should still be up: ${namespacesOf(pid).join(' ')}`);
      const printed = out.split('\n').filter((l) => /^ {2}ip netns exec nfqw-/.test(l));
      const find = (what: RegExp): string => {
        const line = printed.find((l) => what.test(l));
        assert.ok(line, `no printed command matching ${what.source}:\n${printed.join('\n')}`);
        return line;
      };
      // Run them as printed, through sh, as a user pasting them would.
      const sh = (line: string): { code: number | null; out: string } => {
        const r = spawnSync('sh', ['-c', line], { cwd: packageRoot(), encoding: 'utf8', timeout: 15_000 });
        return { code: r.status, out: `${r.stdout}${r.stderr}` };
      };
      const vip = sh(find(/198\.19\.100\.10\/ .*# a backend/));
      assert.match(vip.out.trim(), /^backend[1-4]$/m, vip.out);
      const nodePort = sh(find(/:30080\/ .*# the NodePort/));
      assert.match(nodePort.out.trim(), /^backend[1-4]$/m, nodePort.out);
      assert.match(sh(find(/198\.19\.100\.11\/ .*# no endpoints/)).out, /refused|ECONNREFUSED|curl: \(7\) Failed to connect/i);
      const status = sh(find(/ status --control /));
      assert.equal(status.code, 0, status.out);
      assert.ok(Array.isArray((JSON.parse(status.out) as { queues?: unknown }).queues), status.out);
      assert.match(sh(find(/ list -v -t nat --control /)).out, /^Chain KUBE-SVC-DEMO /m);
      assert.match(sh(find(/9469\/metrics/)).out, /^nfqwall_verdicts_total\{verdict="accept"\} [1-9]/m);
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0, out);
    assert.match(out, /Ctrl-C: removing the lab/);
    assert.deepEqual(namespacesOf(pid), [], 'namespaces left behind after Ctrl-C in --keep');
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
