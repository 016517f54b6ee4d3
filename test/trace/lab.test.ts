// `nfqwall trace` against a running daemon in the fw host of the three-host lab (root only: network namespaces).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { cliPath, Daemon, scratchDir, sleep } from '../lab/daemon';
import { THREE_HOST as A, threeHostSpec, useLab } from '../lab/lab';
import { udpSend, udpSink, type UdpSink } from '../lab/traffic';

const RULES = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 5002 -j TRACE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m udp --dport 5001 -j DROP
COMMIT
`;

const RULES6 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
`;

const DROP_LINE = / ip filter FORWARD rule -A FORWARD -p udp -m udp --dport 5001 -j DROP \(verdict drop\)$/;

interface TraceStats {
  subscribers: number;
  traced: number;
  events: number;
  suppressed: number;
}

/** A running `nfqwall trace`, its output collected. */
class Tracer {
  out = '';
  err = '';
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }
  lines(): string[] {
    return this.out.split('\n').filter((l) => l !== '');
  }
  async until(cond: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`nfqwall trace: timed out waiting for ${what}\nstdout:\n${this.out}\nstderr:\n${this.err}`);
      if (this.child.exitCode !== null) throw new Error(`nfqwall trace exited ${this.child.exitCode}:\n${this.err}`);
      await sleep(50);
    }
  }
  /** Ctrl-C, as a user ends it; resolves with the exit code (SIGKILL after 5 s). */
  async interrupt(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGINT');
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5_000).unref());
    if ((await Promise.race([this.exited, timer])) === 'timeout') {
      this.child.kill('SIGKILL');
      return -1;
    }
    return this.exited;
  }
}

/** The trace ids of the events whose packet line shows `dport N`. */
function idsFor(lines: string[], dport: number): Set<string> {
  const ids = new Set<string>();
  for (const l of lines) {
    const m = /^trace id ([0-9a-f]{8}) .* packet: .* dport (\d+)$/.exec(l);
    if (m && Number(m[2]) === dport) ids.add(m[1]!);
  }
  return ids;
}

describe('nfqwall trace in the lab', function () {
  this.timeout(120_000);
  const env = useLab(threeHostSpec);
  let daemon: Daemon | undefined;
  let scratch: ReturnType<typeof scratchDir> | undefined;
  let sink5000: UdpSink | undefined;
  const tracers: Tracer[] = [];

  before(async function () {
    this.timeout(60_000);
    scratch = scratchDir();
    daemon = await Daemon.start(env.lab.host('fw'), `${scratch.dir}/control.sock`, {
      rules: scratch.write('rules.v4', RULES),
      rules6: scratch.write('rules.v6', RULES6),
      queue: 9,
    });
    sink5000 = await udpSink(env.lab.host('server'), A.server4, 5000);
  });
  after(async function () {
    this.timeout(30_000);
    for (const t of tracers) await t.interrupt();
    sink5000?.stop();
    if (daemon?.running === true) await daemon.stop('SIGTERM');
    scratch?.cleanup();
  });

  function startTrace(args: string[]): Tracer {
    const t = new Tracer(env.lab.host('fw').spawn([process.execPath, cliPath(), 'trace', '--control', daemon!.control, ...args]));
    tracers.push(t);
    return t;
  }

  async function traceStats(): Promise<TraceStats> {
    const s = await daemon!.status();
    const t = s['trace'] as TraceStats | undefined;
    assert.ok(t !== undefined, `status has no trace figures: ${JSON.stringify(s)}`);
    return t;
  }

  it('with nobody tracing, packets flow and none is traced', async () => {
    const client = env.lab.host('client');
    await udpSend(client, A.server4, 5000, 3);
    await udpSend(client, A.server4, 5001, 3);
    await udpSend(client, A.server4, 5002, 3);
    const deadline = Date.now() + 5_000;
    while ((await sink5000!.count()) < 3 && Date.now() < deadline) await sleep(100);
    assert.equal(await sink5000!.count(), 3);
    const t = await traceStats();
    assert.deepEqual(t, { subscribers: 0, traced: 0, events: 0, suppressed: 0 });
    // What the queue received: JavaScript's own count misses what the rule matcher decided natively, which depends
    // on timing (a flow's next datagram goes to JavaScript too while its first is still there, not once it is back).
    const status = await daemon!.status();
    const received = status.queues.reduce((n, q) => n + q.received, 0);
    assert.ok(received >= 9, `the daemon saw the traffic: ${JSON.stringify(status.queues)}`);
  });

  it('--dport 5001 lists exactly the 5001 packets with the DROP rule and its verdict', async () => {
    const t = startTrace(['--dport', '5001']);
    await t.until(() => /tracing/.test(t.err), 10_000, 'the daemon to accept the trace');
    assert.equal((await traceStats()).subscribers, 1);
    const client = env.lab.host('client');
    await udpSend(client, A.server4, 5000, 4);
    await udpSend(client, A.server4, 5001, 3);
    await t.until(() => t.lines().filter((l) => DROP_LINE.test(l)).length >= 3, 10_000, 'three DROP lines');
    await sleep(300); // anything else would have arrived by now
    assert.equal(await t.interrupt(), 0, t.err);
    const lines = t.lines();
    for (const l of lines) assert.match(l, /^trace id [0-9a-f]{8} ip (filter|raw) \S+ /, l);
    assert.equal(idsFor(lines, 5000).size, 0, `no 5000 packet:\n${t.out}`);
    const forward = lines.filter((l) => / ip filter FORWARD packet: /.test(l));
    assert.equal(forward.length, 3, t.out);
    for (const l of forward) {
      assert.match(l, new RegExp(`iif "\\S+" oif "\\S+" ip saddr ${A.client4} ip daddr ${A.server4} udp sport \\d+ dport 5001$`));
    }
    // Each FORWARD event ends in the DROP rule.
    for (const id of new Set(forward.map((l) => l.split(' ')[2]!))) {
      const own = lines.filter((l) => l.startsWith(`trace id ${id} ip filter FORWARD `));
      assert.match(own.at(-1)!, DROP_LINE, own.join('\n'));
    }
    // The daemon drops the subscriber once the client is gone.
    const deadline = Date.now() + 5_000;
    while ((await traceStats()).subscribers !== 0 && Date.now() < deadline) await sleep(100);
    assert.equal((await traceStats()).subscribers, 0);
  });

  it('without a filter, packets a TRACE rule in raw PREROUTING marked appear, and no others', async () => {
    const t = startTrace([]);
    await t.until(() => /tracing/.test(t.err), 10_000, 'the daemon to accept the trace');
    const client = env.lab.host('client');
    await udpSend(client, A.server4, 5000, 2);
    await udpSend(client, A.server4, 5002, 2);
    await t.until(() => idsFor(t.lines(), 5002).size >= 2, 10_000, 'two traced 5002 packets');
    await sleep(300);
    assert.equal(await t.interrupt(), 0, t.err);
    const lines = t.lines();
    assert.equal(idsFor(lines, 5002).size, 2, t.out);
    assert.equal(idsFor(lines, 5000).size, 0, t.out);
    assert.equal(lines.filter((l) => / ip raw PREROUTING rule -A PREROUTING -p udp -m udp --dport 5002 -j TRACE \(verdict continue\)$/.test(l)).length, 2, t.out);
    assert.equal(lines.filter((l) => / ip raw PREROUTING policy accept$/.test(l)).length, 2, t.out);
  });

  it('once the tracers are gone, the daemon traces nothing again', async () => {
    const deadline = Date.now() + 5_000;
    while ((await traceStats()).subscribers !== 0 && Date.now() < deadline) await sleep(100);
    const before = await traceStats();
    assert.equal(before.subscribers, 0);
    assert.ok(before.traced > 0);
    await udpSend(env.lab.host('client'), A.server4, 5002, 3);
    await udpSend(env.lab.host('client'), A.server4, 5001, 3);
    await sleep(500);
    assert.equal((await traceStats()).traced, before.traced);
  });

  it('a daemon stopping with a tracer attached stops promptly and ends the trace', async () => {
    const t = startTrace(['--dport', '5001']);
    await t.until(() => /tracing/.test(t.err), 10_000, 'the daemon to accept the trace');
    const r = await daemon!.stop('SIGTERM', 10_000);
    assert.equal(r.timedOut, false, daemon!.output);
    assert.equal(r.code, 0, daemon!.output);
    const timer = new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 5_000).unref());
    assert.equal(await Promise.race([t.exited, timer]), 0, t.err);
    assert.match(t.err, /the daemon ended the trace/);
  });
});
