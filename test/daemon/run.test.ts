// The daemon's life cycle through the real CLI (`nfqwall run` / `status`), inside a throwaway network namespace:
// refusal of bad rule files before any change, hooks in while running, everything out after SIGTERM, stale cleanup.
// Traffic semantics are the lab's business (test/lab); this only checks the wiring end to end.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { controlRequest } from '../../src/daemon/control';
import { HookManager, commandRunner, parseOwned } from '../../src/daemon/hooks';
import { skipUnlessRoot } from '../lab/lab';

const NS = `nfqw-daemon-run-${process.pid}`;

/** The CLI entry beside this test: src/cli/main.ts under tsx, dist/src/cli/main.js when compiled. */
function cliArgv(): string[] {
  const ts = __filename.endsWith('.ts');
  const main = path.join(__dirname, '..', '..', 'src', 'cli', ts ? 'main.ts' : 'main.js');
  return ts ? [process.execPath, '--import', 'tsx', main] : [process.execPath, main];
}

function inNs(...argv: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('ip', ['netns', 'exec', NS, ...argv], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ourRules(): string[] {
  const lines: string[] = [];
  for (const tool of ['iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save']) {
    const r = inNs(tool);
    if (r.code === 0) lines.push(...r.stdout.split('\n').filter((l) => l.includes('NFQWALL')).map((l) => `${tool}: ${l}`));
  }
  return lines;
}

class Running {
  output = '';
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }
}

function startRun(args: string[]): Running {
  return new Running(spawn('ip', ['netns', 'exec', NS, ...cliArgv(), 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
}

async function waitReady(r: Running, control: string, ms = 30_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (r.child.exitCode !== null) throw new Error(`nfqwall run exited ${r.child.exitCode}:\n${r.output}`);
    try {
      const res = await controlRequest(control, { cmd: 'status' }, 2000);
      if (res.ok) return res;
    } catch {
      // Not listening yet.
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`nfqwall run not ready within ${ms} ms:\n${r.output}`);
}

async function stop(r: Running, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (r.child.exitCode === null) r.child.kill(signal);
  const timer = setTimeout(() => r.child.kill('SIGKILL'), 15_000);
  const code = await r.exited;
  clearTimeout(timer);
  return code;
}

const GOOD = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:COUNTED - [0:0]
-A INPUT -j COUNTED
COMMIT
`;

describe('daemon run/status CLI in a network namespace (root)', function () {
  let created = false;
  let dir = '';
  const running: Running[] = [];

  before(function () {
    skipUnlessRoot(this, 'daemon/run');
    const r = spawnSync('ip', ['netns', 'add', NS], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip netns add ${NS}: ${r.stderr}`);
    created = true;
    inNs('ip', 'link', 'set', 'lo', 'up');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-daemon-run-'));
  });

  afterEach(async () => {
    for (const r of running.splice(0)) await stop(r, 'SIGKILL');
    if (created) {
      const m = new HookManager({ run: commandRunner(['ip', 'netns', 'exec', NS]) });
      m.removeStale(4, true);
      m.removeStale(6, true);
    }
  });

  after(function () {
    if (created) spawnSync('ip', ['netns', 'del', NS]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a bad rule file with file:line:column lines, exit 1, and changes nothing', () => {
    const bad = path.join(dir, 'bad.rules');
    fs.writeFileSync(bad, '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 300.1.1.1 -j NOWHERE\nCOMMIT\n');
    const control = path.join(dir, 'bad.sock');
    const r = inNs(...cliArgv(), 'run', '--rules', bad, '--control', control);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.ok(lines.length >= 1);
    for (const l of lines) assert.match(l, new RegExp(`^${bad.replace(/[.]/g, '\\.')}:3:\\d+: `), r.stderr);
    assert.deepEqual(ourRules(), []);
    assert.equal(fs.existsSync(control), false);
  });

  it('needs at least one rule file', () => {
    const r = inNs(...cliArgv(), 'run', '--control', path.join(dir, 'none.sock'));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--rules/);
  });

  it('status exits 1 and says why when no daemon answers', () => {
    const r = spawnSync(cliArgv()[0]!, [...cliArgv().slice(1), 'status', '--control', path.join(dir, 'nobody.sock')], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot reach nfqwall/);
  });

  it('serves with its hooks in, answers status and save, and removes everything on SIGTERM', async () => {
    const rules = path.join(dir, 'good.rules');
    fs.writeFileSync(rules, GOOD);
    const control = path.join(dir, 'good.sock');
    const r = startRun(['--rules', rules, '--queue', '17', '--control', control]);
    running.push(r);
    const status = await waitReady(r, control);
    assert.equal(status['pid'], r.child.pid);
    assert.deepEqual(status['rulesets'], {
      ipv4: { sources: [rules], tables: ['filter'], chains: 4, rules: 1 },
    });
    // PREROUTING and OUTPUT's queue, and the late queue right after it for INPUT, FORWARD and POSTROUTING.
    const queues = status['queues'] as { queue: number }[];
    assert.deepEqual(queues.map((q) => q.queue), [17, 18]);
    assert.equal(fs.statSync(control).mode & 0o777, 0o600);

    // Hooks: the v4 chains only (no --rules6), fail-closed (no bypass).
    const v4 = inNs('iptables-nft-save').stdout;
    assert.deepEqual([...parseOwned(v4).keys()].sort(), ['mangle', 'raw']);
    assert.deepEqual(v4.match(/^-A NFQWALL-\w+ -j NFQUEUE --queue-num 1[78]$/gm), [
      '-A NFQWALL-FORWARD -j NFQUEUE --queue-num 18',
      '-A NFQWALL-INPUT -j NFQUEUE --queue-num 18',
      '-A NFQWALL-OUTPUT -j NFQUEUE --queue-num 17',
      '-A NFQWALL-POSTROUTING -j NFQUEUE --queue-num 18',
      '-A NFQWALL-PREROUTING -j NFQUEUE --queue-num 17',
    ]);
    // The owner: in a chain of each table that nothing jumps to, this daemon's pid.
    assert.equal(v4.match(new RegExp(`^-A NFQWALL-OWNER -m comment --comment "nfqwall pid ${r.child.pid}"$`, 'gm'))?.length, 2, v4);
    assert.doesNotMatch(v4, /NFQWALL-OWNER.*-j|-[jg] NFQWALL-OWNER/);
    assert.equal(parseOwned(inNs('ip6tables-nft-save').stdout).size, 0);

    // One ping crosses OUTPUT, POSTROUTING, PREROUTING and INPUT for the request and again for the reply.
    const ping = inNs('ping', '-c', '1', '-W', '2', '127.0.0.1');
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    const after = await controlRequest(control, { cmd: 'status' });
    assert.ok(after.ok);
    // Accepted by the queue: the rule matcher decides some of these trips natively, JavaScript the rest.
    const { packets, queues: qs } = after as unknown as { packets: { errors: number }; queues: { accepted: number }[] };
    assert.ok(qs[0]!.accepted >= 4 && qs[1]!.accepted >= 4, JSON.stringify(qs));
    assert.equal(packets.errors, 0);

    const saved = await controlRequest(control, { cmd: 'save', counters: false });
    assert.ok(saved.ok);
    assert.match((saved as unknown as { rulesets: { ipv4: string } }).rulesets.ipv4, /^-A INPUT -j COUNTED$/m);
    assert.deepEqual(await controlRequest(control, { cmd: 'save', counters: 'yes' }), {
      ok: false,
      error: '"counters" must be a boolean',
    });

    assert.equal(await stop(r), 0, r.output);
    assert.deepEqual(ourRules(), []);
    assert.equal(fs.existsSync(control), false);
  });

  it('removes a crashed run’s hooks before installing its own, and a second daemon on the same socket fails cleanly', async () => {
    // A crashed run: queue 3, both families, never removed.
    const crashed = new HookManager({ run: commandRunner(['ip', 'netns', 'exec', NS]) });
    for (const family of [4, 6] as const) {
      crashed.install({ family, hooks: ['INPUT', 'OUTPUT'], queue: 3, failOpen: true, notrack: true });
    }
    const rules = path.join(dir, 'good.rules');
    fs.writeFileSync(rules, GOOD);
    const control = path.join(dir, 'stale.sock');
    const r = startRun(['--rules', rules, '--queue', '4', '--fail-open', '--control', control]);
    running.push(r);
    await waitReady(r, control);
    const v4 = inNs('iptables-nft-save').stdout;
    assert.equal(v4.match(/--queue-num 3/g), null, v4);
    assert.equal(v4.match(/^-A INPUT -j NFQWALL-INPUT$/gm)?.length, 1, v4);
    assert.equal(v4.match(/^-A NFQWALL-(PREROUTING|OUTPUT) -j NFQUEUE --queue-num 4 --queue-bypass$/gm)?.length, 2, v4);
    assert.equal(v4.match(/^-A NFQWALL-(INPUT|FORWARD|POSTROUTING) -j NFQUEUE --queue-num 5 --queue-bypass$/gm)?.length, 3, v4);
    assert.equal(parseOwned(inNs('ip6tables-nft-save').stdout).size, 0, 'stale v6 hooks removed');

    // A second daemon with the same control socket refuses to start and leaves the first one's hooks alone.
    const second = inNs(...cliArgv(), 'run', '--rules', rules, '--queue', '5', '--control', control);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /another nfqwall is listening/);
    assert.equal(inNs('iptables-nft-save').stdout.match(/^-A NFQWALL-\w+ -j NFQUEUE --queue-num [45] --queue-bypass$/gm)?.length, 5);

    assert.equal(await stop(r, 'SIGINT'), 0, r.output);
    assert.deepEqual(ourRules(), []);
  });

  it('says which setting to change when its late queue is taken, and leaves nothing behind', async () => {
    // Another program holds queue 21 (the addon itself, bound in the namespace, waiting to be killed).
    const addon = path.join(__dirname, '..', '..', '..', 'build', 'Release', 'nfqwall.node');
    const holder = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', `new (require(${JSON.stringify(addon)}).Queue)({ queue: 21 }, () => {}); console.log('bound'); setInterval(() => {}, 1000)`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((res, rej) => {
        holder.stdout!.on('data', (d: Buffer) => (d.toString().includes('bound') ? res() : undefined));
        holder.on('exit', (code) => rej(new Error(`the holder exited ${code}`)));
      });
      const rules = path.join(dir, 'good.rules');
      fs.writeFileSync(rules, GOOD);
      const r = inNs(...cliArgv(), 'run', '--rules', rules, '--queue', '20', '--late-queue', '21', '--control', path.join(dir, 'late.sock'));
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^nfqwall: cannot bind NFQUEUE 21: .*\(another process holds it\?\); it is a late queue: set late_queue \(--late-queue\) to a free number, or off$/m);
      assert.deepEqual(ourRules(), []);
      assert.equal(fs.existsSync(path.join(dir, 'late.sock')), false);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('refuses to start while another live daemon in the namespace owns the hooks, without touching them', async () => {
    // Stand-in for a live daemon: a process in the namespace, named as the owner of existing hooks.
    const owner = spawn('ip', ['netns', 'exec', NS, 'sleep', '60'], { stdio: 'ignore' });
    try {
      await new Promise((res) => setTimeout(res, 200));
      const other = new HookManager({ run: commandRunner(['ip', 'netns', 'exec', NS]) });
      other.install({ family: 4, hooks: ['INPUT'], queue: 9, failOpen: false, notrack: true, ownerPid: owner.pid! });
      const before = ourRules();
      const rules = path.join(dir, 'good.rules');
      fs.writeFileSync(rules, GOOD);
      const control = path.join(dir, 'refused.sock');
      const r = inNs(...cliArgv(), 'run', '--rules', rules, '--queue', '10', '--control', control);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`another nfqwall \\(pid ${owner.pid}\\) owns the ipv4 hooks`));
      assert.deepEqual(ourRules(), before);
      assert.equal(fs.existsSync(control), false);
    } finally {
      owner.kill('SIGKILL');
      await new Promise((res) => owner.once('exit', res));
    }
    // With the owner gone the same hooks are stale and a new daemon takes over.
    const rules = path.join(dir, 'good.rules');
    const control = path.join(dir, 'takeover.sock');
    const r = startRun(['--rules', rules, '--queue', '10', '--control', control]);
    running.push(r);
    await waitReady(r, control);
    const v4 = inNs('iptables-nft-save').stdout;
    assert.equal(v4.match(/--queue-num 9/g), null, v4);
    assert.equal(await stop(r), 0, r.output);
    assert.deepEqual(ourRules(), []);
  });
});
