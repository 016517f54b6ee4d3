// The daemon as a service, end to end in the three-host lab (nfqwall in fw): configuration file, hot reload under
// traffic (control command, file change, SIGHUP, `nfqwall reload`), counters carried over and zeroed, and the host
// view following `ip addr add` through `ip monitor`.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import { controlRequest, type ControlResponse } from '../../src/daemon/control';
import { scratchDir, sleep } from '../lab/daemon';
import { THREE_HOST as A, threeHostSpec, useLab, type Host } from '../lab/lab';
import { udpSink } from '../lab/traffic';
import { packageRoot } from '../paths';

const QUEUE = 7;
const PORT = 5001;

/** The CLI entry beside this test: src/cli/main.ts under tsx, dist/src/cli/main.js when compiled. */
function cliArgv(): string[] {
  const ts = __filename.endsWith('.ts');
  const main = path.join(__dirname, '..', '..', 'src', 'cli', ts ? 'main.ts' : 'main.js');
  return ts ? [process.execPath, '--import', 'tsx', main] : [process.execPath, main];
}

// Two rulesets whose halves only work together: mangle marks the flow (1 or 2), filter accepts only that mark and
// drops the rest by policy. A packet decided by mangle of one and filter of the other would be dropped, so a mixture
// shows up as loss. The first FORWARD filter rule is the same in both: its counter must carry over every reload.
function ruleset(mark: number): string {
  return `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A FORWARD -p udp -m udp --dport ${PORT} -j MARK --set-xmark 0x${mark}/0xffffffff
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m udp --dport ${PORT}
-A FORWARD -p udp -m udp --dport ${PORT} -m mark --mark 0x${mark} -j ACCEPT
-A OUTPUT -d 198.19.0.77/32 -p udp -m udp --dport 5003 -m addrtype --dst-type LOCAL -j ACCEPT
-A OUTPUT -d 198.19.0.77/32 -p udp -m udp --dport 5003 -j ACCEPT
-A OUTPUT -d 198.19.0.78/32 -p udp -m udp --dport 5004 -m set --match-set probe dst -j ACCEPT
COMMIT
`;
}

// An unknown target; everything else is as in ruleset(1). Errors must name its line.
const BROKEN = ruleset(1).replace('--mark 0x1 -j ACCEPT', '--mark 0x1 -j NOSUCHTARGET');
const BROKEN_LINE = BROKEN.split('\n').findIndex((l) => l.includes('NOSUCHTARGET')) + 1;
const BROKEN_AT = new RegExp(`rules\\.v4:${BROKEN_LINE}:\\d+: `);
const NODE = process.execPath;

// argv: addr port count perTick tickMs. Sends count datagrams paced as perTick every tickMs, then prints `sent N`.
const PACED_SEND = `
const dgram = require('node:dgram');
const [addr, port, count, perTick, tickMs] = process.argv.slice(1).map((v, i) => i === 0 ? v : Number(v));
const s = dgram.createSocket('udp4');
s.on('error', () => {}); // ICMP port unreachable from a host with no listener: not our concern
let sent = 0;
s.connect(port, addr, () => {
  const t = setInterval(() => {
    for (let i = 0; i < perTick && sent < count; i++) { s.send('nfqw'); sent++; }
    if (sent >= count) { clearInterval(t); setTimeout(() => { process.stdout.write('sent ' + sent + '\\n'); s.close(); }, 100); }
  }, tickMs);
});
`;

interface StatusReloads {
  success: number;
  failure: number;
  lastSuccessful: boolean;
  lastSuccessTimestamp: number;
  lastError?: string;
  unchanged: number;
}
interface Status {
  queues: { queue: number; received: number; accepted: number; dropped: number; kernelIdSequence: number; kernelQueueTotal: number }[];
  reloads: StatusReloads;
  logs: { written: number; suppressed: number };
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

async function request(sock: string, req: { cmd: string; [k: string]: boolean | string }, ms = 10_000): Promise<ControlResponse> {
  return controlRequest(sock, req, ms);
}

async function status(sock: string): Promise<Status> {
  const res = await request(sock, { cmd: 'status' });
  assert.ok(res.ok, JSON.stringify(res));
  return res as unknown as Status;
}

/** The `[packets:bytes]` of the first saved rule line that contains `needle`. */
async function ruleCount(sock: string, needle: string): Promise<number> {
  const res = await request(sock, { cmd: 'save', counters: true });
  assert.ok(res.ok, JSON.stringify(res));
  const text = (res as unknown as { rulesets: { ipv4: string } }).rulesets.ipv4;
  const line = text.split('\n').find((l) => l.endsWith(needle));
  const m = line === undefined ? null : /^\[(\d+):\d+\] /.exec(line);
  assert.ok(m, `no counted rule ending "${needle}" in:\n${text}`);
  return Number(m[1]);
}

/** Replaces a file the way editors and `mv` do: a new inode renamed over the name. */
function replaceFile(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

describe('daemon as a service in the three-host lab (root)', function () {
  this.timeout(120_000);
  const env = useLab(threeHostSpec);
  let scratch: ReturnType<typeof scratchDir>;
  let daemon: Running | undefined;
  let sock: string;
  let rules: string;
  const fw = (): Host => env.lab.host('fw');

  before(async function () {
    scratch = scratchDir();
    rules = scratch.write('rules.v4', ruleset(1));
    scratch.write('probe.ipset', 'create probe hash:ip family inet hashsize 1024 maxelem 65536\n');
    // The daemon reads everything from a configuration file with paths relative to it.
    const conf = scratch.write(
      'nfqwall.conf',
      `# lab configuration\nrules = rules.v4\nqueue = ${QUEUE}\nfail_open = no\nipset = probe.ipset\ncontrol = control.sock\nmetrics = off\nlog_level = debug\n`,
    );
    sock = path.join(scratch.dir, 'control.sock');
    daemon = new Running(fw().spawn([...cliArgv(), 'run', '--config', conf]));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (daemon.child.exitCode !== null) throw new Error(`nfqwall run exited ${daemon.child.exitCode}:\n${daemon.output}`);
      try {
        if ((await request(sock, { cmd: 'status' }, 2000)).ok) break;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`nfqwall did not answer:\n${daemon.output}`);
      await sleep(100);
    }
  });

  after(async function () {
    if (daemon && daemon.child.exitCode === null) {
      daemon.child.kill('SIGTERM');
      await Promise.race([daemon.exited, sleep(10_000)]);
      if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
    }
    scratch?.cleanup();
  });

  it('started from the configuration file (queue, relative paths, debug level)', async () => {
    const s = await status(sock);
    // The configured queue and, for INPUT, FORWARD and POSTROUTING, the late queue right after it.
    assert.deepEqual(s.queues.map((q) => q.queue), [QUEUE, QUEUE + 1]);
    assert.equal(s.reloads.success, 0);
    assert.equal(s.reloads.lastSuccessful, true);
    assert.match(daemon!.output, /^<6>serving queue 7, late queue 8 /m, daemon!.output);
  });

  it('reloads several times a second under a sustained flow, good and broken alternately: no loss, no mixture', async () => {
    const before = await status(sock);
    const countBefore = await ruleCount(sock, `-A FORWARD -p udp -m udp --dport ${PORT}`);
    const sink = await udpSink(env.lab.host('server'), A.server4, PORT);
    const TOTAL = 5000;
    try {
      const sender = env.lab.host('client').exec([NODE, '-e', PACED_SEND, A.server4, String(PORT), String(TOTAL), '5', '5'], {
        timeoutMs: 60_000,
      });
      let good = 0;
      let bad = 0;
      const t0 = Date.now();
      let i = 0;
      // About 5 s of traffic; a reload every ~120 ms: mark 1, broken, mark 2, broken, ...
      // Ends on a broken file, so the last reload is a failure.
      while (Date.now() - t0 < 4_000 || i % 2 === 1) {
        const phase = i % 4;
        replaceFile(rules, phase === 0 ? ruleset(2) : phase === 2 ? ruleset(1) : BROKEN);
        const res = await request(sock, { cmd: 'reload' }, 30_000);
        if (phase % 2 === 0) {
          assert.ok(res.ok, `good ruleset refused: ${JSON.stringify(res)}`);
          good++;
        } else {
          assert.equal(res.ok, false, 'a broken file must fail the reload');
          assert.match((res as { error: string }).error, BROKEN_AT);
          bad++;
        }
        i++;
        await sleep(120);
      }
      const out = (await sender).stdout;
      assert.match(out, new RegExp(`^sent ${TOTAL}$`, 'm'));
      assert.ok(good >= 10 && bad >= 10, `reloads done: ${good} good, ${bad} broken`);
      // Every packet accounted for: delivered == sent, every queued packet got exactly one verdict, none dropped.
      let s = await status(sock);
      const busy = (): boolean => s.queues.some((q) => q.received !== q.accepted + q.dropped || q.kernelQueueTotal !== 0);
      for (let k = 0; k < 25 && busy(); k++) {
        await sleep(200);
        s = await status(sock);
      }
      let delivered = await sink.count();
      for (let k = 0; k < 10 && delivered < TOTAL; k++) {
        await sleep(200);
        delivered = await sink.count();
      }
      assert.equal(delivered, TOTAL, `delivered ${delivered} of ${TOTAL}: ${JSON.stringify(s.queues)}`);
      for (const [i, q] of s.queues.entries()) {
        const b = before.queues[i]!;
        assert.equal(q.dropped - b.dropped, 0, 'no packet dropped: no decision mixed the two rulesets');
        assert.equal(q.kernelIdSequence, q.received, `kernel id sequence == verdicts: ${JSON.stringify(q)}`);
        assert.equal(q.accepted + q.dropped, q.received);
      }
      // Forwarded packets pass three queued hooks: PREROUTING on the queue, FORWARD and POSTROUTING on the late one.
      const trips = s.queues.map((q, i) => q.received - before.queues[i]!.received);
      assert.deepEqual(trips, [TOTAL, 2 * TOTAL], 'every datagram was queued once per hook');
      // The rule common to both rulesets kept counting across every reload.
      assert.equal((await ruleCount(sock, `-A FORWARD -p udp -m udp --dport ${PORT}`)) - countBefore, TOTAL);
      assert.ok(s.reloads.success - before.reloads.success >= good, JSON.stringify(s.reloads));
      assert.ok(s.reloads.failure - before.reloads.failure >= bad, JSON.stringify(s.reloads));
      assert.equal(s.reloads.lastSuccessful, false, 'the last reload was of the broken file');
      assert.match(s.reloads.lastError ?? '', BROKEN_AT);
      assert.match(daemon!.output, /^<3>reload failed, the running rules stay/m);
      assert.match(daemon!.output, new RegExp(`^<3>.*${BROKEN_AT.source}`, 'm'));
      assert.match(daemon!.output, /^<6>reloaded trigger=control/m);
    } finally {
      sink.stop();
    }
  });

  it('a file replaced on disk is reloaded without being asked', async () => {
    const s0 = await status(sock);
    replaceFile(rules, ruleset(2));
    let s = s0;
    for (let k = 0; k < 30 && s.reloads.success === s0.reloads.success; k++) {
      await sleep(100);
      s = await status(sock);
    }
    assert.equal(s.reloads.success, s0.reloads.success + 1, JSON.stringify(s.reloads));
    assert.equal(s.reloads.lastSuccessful, true);
    assert.match(daemon!.output, /^<6>reloaded trigger="file change \([^)]*rules\.v4\)"/m);
  });

  it('a file rewritten with the bytes it holds reloads nothing; a write then `nfqwall reload` reloads once', async () => {
    await sleep(400); // let the watcher of the previous test settle
    const s0 = await status(sock);
    replaceFile(rules, fs.readFileSync(rules, 'utf8'));
    let s = s0;
    for (let k = 0; k < 30 && s.reloads.unchanged === s0.reloads.unchanged; k++) {
      await sleep(100);
      s = await status(sock);
    }
    assert.equal(s.reloads.unchanged, s0.reloads.unchanged + 1, `the watcher saw the file and found it as loaded: ${JSON.stringify(s.reloads)}`);
    assert.equal(s.reloads.success, s0.reloads.success, 'no reload');

    // The way a sync writes and asks at once: the explicit reload reads the new bytes; the watcher's event for the
    // same write then finds them loaded.
    fs.writeFileSync(rules, ruleset(3));
    const r = await request(sock, { cmd: 'reload' }, 30_000);
    assert.ok(r.ok, JSON.stringify(r));
    await sleep(800); // the watcher's debounce (200 ms) and its digest
    s = await status(sock);
    assert.equal(s.reloads.success, s0.reloads.success + 1, `one reload for one write: ${JSON.stringify(s.reloads)}`);
    assert.equal(s.reloads.unchanged, s0.reloads.unchanged + 2, JSON.stringify(s.reloads));
    // Back to the previous test's rules, which the next tests expect.
    fs.writeFileSync(rules, ruleset(2));
    assert.ok((await request(sock, { cmd: 'reload' }, 30_000)).ok);
  });

  it('SIGHUP reloads; `nfqwall reload` waits, prints and fails with file:line:column', async () => {
    await sleep(400); // let the watcher of the previous test settle
    const s0 = await status(sock);
    daemon!.child.kill('SIGHUP');
    let s = s0;
    for (let k = 0; k < 30 && s.reloads.success === s0.reloads.success; k++) {
      await sleep(100);
      s = await status(sock);
    }
    assert.equal(s.reloads.success, s0.reloads.success + 1, 'SIGHUP made one reload');
    assert.ok(daemon!.child.exitCode === null, 'SIGHUP did not kill the daemon');
    assert.match(daemon!.output, /^<6>reloaded trigger=SIGHUP/m);

    const ok = await fw().exec([...cliArgv(), 'reload', '--control', sock], { check: false });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^reloaded in [\d.]+ ms$/m);

    fs.writeFileSync(path.join(scratch.dir, 'rules.v4.broken'), BROKEN);
    // Written in place this time (no rename): the watcher sees that too, and the CLI's request coalesces with it.
    fs.writeFileSync(rules, BROKEN);
    const bad = await fw().exec([...cliArgv(), 'reload', '--control', sock], { check: false });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /failed, the running rules stay/);
    assert.match(bad.stderr, BROKEN_AT);
    // The running rules (mark 2, from the SIGHUP) are still in force.
    const saved = await request(sock, { cmd: 'save' });
    assert.match(JSON.stringify(saved), /--mark 0x2 -j ACCEPT/);
    replaceFile(rules, ruleset(1));
    const again = await fw().exec([...cliArgv(), 'reload', '--control', sock], { check: false });
    assert.equal(again.code, 0, again.stderr);
  });

  it('counters --zero zeroes the rule counters; malformed requests are refused', async () => {
    const sink = await udpSink(env.lab.host('server'), A.server4, PORT);
    try {
      await env.lab.host('client').exec([NODE, '-e', PACED_SEND, A.server4, String(PORT), '20', '5', '5']);
      await sleep(300);
      assert.ok((await ruleCount(sock, `-A FORWARD -p udp -m udp --dport ${PORT}`)) > 0);
      const r = await fw().exec([...cliArgv(), 'counters', '--zero', '--control', sock], { check: false });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^zeroed \d+ counters$/m);
      assert.equal(await ruleCount(sock, `-A FORWARD -p udp -m udp --dport ${PORT}`), 0);
    } finally {
      sink.stop();
    }
    const bad = await request(sock, { cmd: 'counters' });
    assert.equal(bad.ok, false);
    const extra = await request(sock, { cmd: 'reload', now: true });
    assert.deepEqual(extra, { ok: false, error: 'malformed request: "reload" takes no field "now"' });
  });

  it('follows address changes through ip monitor: addrtype LOCAL tracks `ip addr add/del`', async () => {
    const LOCAL = '--dport 5003 -m addrtype --dst-type LOCAL -j ACCEPT';
    const OTHER = '-d 198.19.0.77/32 -p udp -m udp --dport 5003 -j ACCEPT';
    const send = async (): Promise<void> => {
      await fw().exec([NODE, '-e', PACED_SEND, '198.19.0.77', '5003', '1', '1', '1']);
      await sleep(200);
    };
    const counts = async (): Promise<[number, number]> => [await ruleCount(sock, LOCAL), await ruleCount(sock, OTHER)];
    const c0 = await counts();
    await send();
    const c1 = await counts();
    assert.deepEqual([c1[0] - c0[0], c1[1] - c0[1]], [0, 1], 'not local before the address is added');
    await fw().exec(['ip', 'addr', 'add', '198.19.0.77/32', 'dev', 'lo']);
    // The fallback refresh is a minute away: within a second only `ip monitor` can have told the daemon.
    await sleep(800);
    await send();
    const c2 = await counts();
    assert.deepEqual([c2[0] - c1[0], c2[1] - c1[1]], [1, 0], 'local once the address is there');
    await fw().exec(['ip', 'addr', 'del', '198.19.0.77/32', 'dev', 'lo']);
    await sleep(800);
    await send();
    const c3 = await counts();
    assert.deepEqual([c3[0] - c2[0], c3[1] - c2[1]], [0, 1], 'not local after it is removed');
  });

  it('reloads an ipset file that changes on disk: -m set follows its members', async () => {
    const SET_RULE = '--dport 5004 -m set --match-set probe dst -j ACCEPT';
    const send = async (): Promise<void> => {
      await fw().exec([NODE, '-e', PACED_SEND, '198.19.0.78', '5004', '1', '1', '1']);
      await sleep(200);
    };
    const c0 = await ruleCount(sock, SET_RULE);
    await send();
    assert.equal(await ruleCount(sock, SET_RULE), c0, 'not a member yet');
    const s0 = await status(sock);
    replaceFile(path.join(scratch.dir, 'probe.ipset'), 'create probe hash:ip family inet\nadd probe 198.19.0.78\n');
    let s = s0;
    for (let k = 0; k < 30 && s.reloads.success === s0.reloads.success; k++) {
      await sleep(100);
      s = await status(sock);
    }
    assert.equal(s.reloads.success, s0.reloads.success + 1, `no reload after the ipset file changed: ${JSON.stringify(s.reloads)}`);
    await send();
    assert.equal(await ruleCount(sock, SET_RULE), c0 + 1, 'a member after the reload');
    // A broken ipset file fails the reload at its line and keeps the loaded set.
    replaceFile(path.join(scratch.dir, 'probe.ipset'), 'create probe hash:ip family inet\nadd probe 198.19.0.999\n');
    const r = await request(sock, { cmd: 'reload' });
    assert.equal(r.ok, false);
    assert.match((r as { error: string }).error, /probe\.ipset:2:1: ipset: /);
    await send();
    assert.equal(await ruleCount(sock, SET_RULE), c0 + 2, 'the old set still decides');
  });

  it('stops on SIGTERM with exit 0 and takes its ip monitor with it', async () => {
    // Children of this daemon only: other tests' daemons may run their own monitors.
    const pids = (await fw().exec(['sh', '-c', `pgrep -P ${daemon!.child.pid} -f "^ip monitor" || true`])).stdout.trim();
    assert.notEqual(pids, '', 'an ip monitor runs in fw while the daemon does');
    daemon!.child.kill('SIGTERM');
    const code = await Promise.race([daemon!.exited, sleep(10_000).then(() => 'timeout' as const)]);
    assert.equal(code, 0, daemon!.output);
    await sleep(200);
    for (const pid of pids.split('\n')) {
      // Gone, or a zombie waiting for whoever inherited it to reap it: either way no longer running.
      let state = 'gone';
      try {
        state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] ?? 'gone';
      } catch {
        // Gone.
      }
      assert.ok(state === 'gone' || state === 'Z', `ip monitor ${pid} left running (state ${state})`);
    }
  });

  it('runs examples/nfqwall.conf as it is (control socket moved into the scratch directory)', async () => {
    const conf = path.join(packageRoot(), 'examples', 'nfqwall.conf');
    const ctl = path.join(scratch.dir, 'example.sock');
    // In the server host, whose traffic no later test needs: the example's INPUT policy is DROP.
    const ex = new Running(env.lab.host('server').spawn([...cliArgv(), 'run', '--config', conf, '--control', ctl]));
    try {
      let res: ControlResponse | undefined;
      for (let k = 0; k < 150 && ex.child.exitCode === null && res?.ok !== true; k++) {
        await sleep(100);
        res = await request(ctl, { cmd: 'status' }, 2000).catch(() => undefined);
      }
      assert.ok(res?.ok, `the example did not come up:\n${ex.output}`);
      const rs = (res as unknown as { rulesets: { ipv4?: { sources: string[] } }; queue: number }).rulesets;
      assert.deepEqual(rs.ipv4?.sources, [path.resolve(path.dirname(conf), 'host-firewall.rules')]);
    } finally {
      ex.child.kill('SIGTERM');
      assert.equal(await Promise.race([ex.exited, sleep(10_000).then(() => 'timeout')]), 0, ex.output);
    }
  });
});
