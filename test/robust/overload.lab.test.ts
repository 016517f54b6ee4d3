// Overload in the three-host lab (root; issue #9): the kernel queue at its limit, a flood of new connections beyond
// what the slow path takes, and nfqwall's connection table at its limit. In each, nfqwall must apply the overload
// policy of docs/robustness.md (fail-closed: nothing passes unjudged; fail-open: nothing is dropped unjudged), count
// it in `nfqwall status` and on /metrics by the right amounts, recover when the flood stops (a probe exchange gets
// through) and give every queued packet exactly one verdict (the kernel's id sequence against the addon's counts).
//
// Packets are counted where they cannot be lost or invented: arriving at fw (a counting rule in fw's raw PREROUTING,
// before nfqwall's queue) and arriving at the server (raw PREROUTING there, which also drops them so the server never
// answers). Every flood stops by itself after a packet count or a time, whichever comes first.
import assert from 'node:assert/strict';
import { cliPath, Daemon, kernelQueueLines, scratchDir, sleep, type QueueStatsJson } from '../lab/daemon';
import { THREE_HOST as A, threeHostSpec, useLab, type Host } from '../lab/lab';
import { udpExchange } from '../lab/traffic';
import { buildC } from '../../bench/build';
import { packageRoot } from '../paths';

const QUEUE = 11;
const METRICS_PORT = 9471;
/** The kernel queue length the daemon binds (`queue_maxlen`), not the default, so the test shows the key works. */
const KERNEL_QUEUE_MAXLEN = 3000;
const FLOOD_PORTS = '7000:7999';
const PROBE_PORT = 5000;

// argv: addr basePort ports count ms pauseEvery. Sends `count` datagrams (stopping early after `ms`) to basePort +
// (i % ports), so each port is a new connection; pauses 1 ms after every `pauseEvery` sends (0: never) so fw's
// backlog keeps up when the point is not speed. Prints `sent N` and exits.
const FLOOD = `
const s = require('node:dgram').createSocket('udp4');
const [addr, base, ports, count, ms, pauseEvery] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const payload = Buffer.alloc(64, 0x66);
const t0 = Date.now();
let sent = 0, ok = 0, inflight = 0, done = false;
function finish() { if (done) return; done = true; process.stdout.write('sent ' + ok + '\\n'); s.close(); }
function pump() {
  let burst = 0;
  while (inflight < 256 && sent < count && Date.now() - t0 < ms) {
    inflight++; sent++; burst++;
    s.send(payload, base + (sent % ports), addr, (e) => { inflight--; if (!e) ok++; if (inflight === 0 && (sent >= count || Date.now() - t0 >= ms)) finish(); });
    if (pauseEvery > 0 && burst >= pauseEvery) return setTimeout(pump, 1);
  }
  if (sent < count && Date.now() - t0 < ms) setImmediate(pump);
  else if (inflight === 0) finish();
}
pump();
`;

/** Runs a bounded flood from `host`; resolves with how many datagrams the sender's stack took. */
async function flood(host: Host, opts: { count: number; ms: number; ports?: number; pauseEvery?: number }): Promise<number> {
  const r = await host.exec(
    [process.execPath, '-e', FLOOD, A.server4, '7000', String(opts.ports ?? 1000), String(opts.count), String(opts.ms), String(opts.pauseEvery ?? 0)],
    { timeoutMs: opts.ms + 30_000 },
  );
  const m = /sent (\d+)/.exec(r.stdout);
  if (m === null) throw new Error(`flood printed no count: ${r.stdout} ${r.stderr}`);
  return Number(m[1]);
}

/** One sample of a scrape: `name{labels} value`, labels as written (e.g. `{queue="11"}`). */
function metric(text: string, name: string, labels = ''): number {
  for (const line of text.split('\n')) if (line.startsWith(`${name}${labels} `)) return Number(line.slice(name.length + labels.length + 1));
  throw new Error(`no ${name}${labels} in the scrape`);
}

/** The packet counter of the first rule in `table`'s `chain` whose text contains `match`, from `iptables-save -c`. */
async function ruleCounter(host: Host, table: string, chain: string, match: string): Promise<number> {
  const r = await host.exec(['iptables-save', '-c', '-t', table]);
  for (const line of r.stdout.split('\n')) {
    const m = /^\[(\d+):\d+\] -A (\S+) (.*)$/.exec(line);
    if (m && m[2] === chain && (m[3] as string).includes(match)) return Number(m[1]);
  }
  throw new Error(`no rule with "${match}" in ${table} ${chain} of ${host.name}:\n${r.stdout}`);
}

/** The queue's counters this test reads (QueueStats, native/index.d.ts, as `nfqwall status` prints them). */
type Queue = QueueStatsJson & { overload: number; kernelQueueDropped: number; kernelUserDropped: number; ctDropped?: number; lateWaits?: number };

/** The queue's counters in `nfqwall status`. */
async function queueOf(d: Daemon): Promise<Queue> {
  return (await d.queueStats(QUEUE)) as Queue;
}

/**
 * Waits for the queue to settle, then: received == accepted + dropped, the kernel's id sequence == received + what
 * the kernel could not deliver (user_dropped takes an id), nothing left in the kernel queue.
 */
async function assertAccounted(d: Daemon): Promise<Queue> {
  let q = await queueOf(d);
  for (let i = 0; i < 50 && (q.received !== q.accepted + q.dropped || q.kernelQueueTotal !== 0); i++) {
    await sleep(200);
    q = await queueOf(d);
  }
  const s = JSON.stringify(q);
  assert.equal(q.accepted + q.dropped, q.received, `every received packet got one verdict: ${s}`);
  assert.equal(q.kernelIdSequence, q.received + q.kernelUserDropped, `the kernel's id sequence is accounted for: ${s}`);
  assert.equal(q.kernelQueueTotal, 0, `nothing is left in the kernel queue: ${s}`);
  return q;
}

function rulesFile(slowRules: number): string {
  // Rules that never match (their source is nowhere in the lab) but cost the engine time on every packet.
  const slow = Array.from({ length: slowRules }, (_, i) => `-A FORWARD -s 10.${(i >> 8) & 255}.${i & 255}.1/32 -p udp -m udp --dport ${1 + (i % 60000)} -j DROP`);
  return [
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD DROP [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ...slow,
    `-A FORWARD -p udp -m udp --dport ${FLOOD_PORTS} -j ACCEPT`,
    `-A FORWARD -p udp -m udp --dport ${PROBE_PORT} -j ACCEPT`,
    `-A FORWARD -p udp -m udp --sport ${PROBE_PORT} -j ACCEPT`,
    '-A FORWARD -p tcp -j ACCEPT',
    'COMMIT',
    '',
  ].join('\n');
}

describe('robust: overload (lab)', function () {
  this.timeout(180_000);
  const env = useLab(threeHostSpec);
  let scratch: ReturnType<typeof scratchDir> | undefined;
  let daemon: Daemon | undefined;

  const fw = (): Host => env.lab.host('fw');
  const client = (): Host => env.lab.host('client');
  const server = (): Host => env.lab.host('server');

  before(async function () {
    // Counting rules: arrivals at fw (before nfqwall's queue) and at the server (which drops them unanswered).
    await fw().exec(['iptables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', FLOOD_PORTS]);
    await server().exec(['iptables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', FLOOD_PORTS, '-j', 'DROP']);
  });

  async function start(opts: {
    failOpen: boolean;
    slowRules?: number;
    conntrackMax?: number;
    matcher?: boolean;
    allHooks?: boolean;
    queueMaxlen?: number;
  }): Promise<Daemon> {
    scratch = scratchDir();
    const rules = scratch.write('rules.v4', rulesFile(opts.slowRules ?? 0));
    const control = `${scratch.dir}/control.sock`;
    const config = scratch.write(
      'nfqwall.conf',
      [
        `rules = ${rules}`,
        `queue = ${QUEUE}`,
        `fail_open = ${opts.failOpen ? 'yes' : 'no'}`,
        `queue_maxlen = ${opts.queueMaxlen ?? KERNEL_QUEUE_MAXLEN}`,
        // One trip through the queue per forwarded packet: the counts below are per packet. Or every hook, with the
        // late queue (QUEUE + 1) for FORWARD and POSTROUTING, every trip made: the flood's connections repeat (one
        // per port), and the flow cache would let their later packets skip the late queue.
        ...(opts.allHooks === true ? ['skip_mark = off'] : ['hooks = FORWARD']),
        `metrics = 127.0.0.1:${METRICS_PORT}`,
        ...(opts.conntrackMax !== undefined ? [`conntrack_max = ${opts.conntrackMax}`] : []),
        ...(opts.matcher === false ? ['matcher = off'] : []),
        '',
      ].join('\n'),
    );
    daemon = await Daemon.start(fw(), control, { config });
    return daemon;
  }

  /** Counters before a flood, to measure what it moved. */
  async function snapshot(d: Daemon): Promise<{ atFw: number; atServer: number; judged: number; q: Queue }> {
    return {
      atFw: await ruleCounter(fw(), 'raw', 'PREROUTING', `--dport ${FLOOD_PORTS}`),
      atServer: await ruleCounter(server(), 'raw', 'PREROUTING', `--dport ${FLOOD_PORTS}`),
      judged: await judged(d),
      q: await queueOf(d),
    };
  }

  /** Flood packets the rules accepted (the flood rule's counter in nfqwall). */
  async function judged(d: Daemon): Promise<number> {
    const r = await fw().exec([process.execPath, cliPath(), 'save', '-c', '-4', '--control', d.control]);
    const m = new RegExp(`^\\[(\\d+):\\d+\\] -A FORWARD -p udp -m udp --dport ${FLOOD_PORTS} -j ACCEPT$`, 'm').exec(r.stdout);
    if (m === null) throw new Error(`no flood rule in nfqwall's save:\n${r.stdout.slice(0, 2000)}`);
    return Number(m[1]);
  }

  /** A probe exchange gets through within `ms` (retried: the backlog may take a moment to drain). */
  async function assertRecovers(ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    let got = 0;
    while (Date.now() < deadline) {
      got = await udpExchange(client(), server(), A.server4, PROBE_PORT, 5, 1_000);
      if (got === 5) return;
    }
    assert.fail(`after the flood, only ${got}/5 probe datagrams came back within ${ms} ms:\n${daemon?.output.slice(-3000) ?? ''}`);
  }

  afterEach(async function () {
    this.timeout(30_000);
    if (daemon?.running === true) await daemon.stop('SIGTERM');
    daemon = undefined;
    scratch?.cleanup();
    scratch = undefined;
  });

  for (const failOpen of [false, true]) {
    const mode = failOpen ? 'fail-open' : 'fail-closed';
    it(`${mode}: the kernel queue at its limit (${KERNEL_QUEUE_MAXLEN}) while nfqwall is stopped: ${failOpen ? 'the excess passes' : 'the excess is dropped'}, counted; nfqwall resumes and judges what was queued`, async () => {
      const d = await start({ failOpen });
      const before = await snapshot(d);
      const scrape0 = await d.metrics(METRICS_PORT);
      const linkDrops0 = await txDropped(fw(), fw().ifname('server'));
      // Frozen (SIGSTOP): nothing reads the queue, so it fills to its length and the kernel's policy takes the rest.
      d.child.kill('SIGSTOP');
      const count = KERNEL_QUEUE_MAXLEN + 2000;
      try {
        await flood(client(), { count, ms: 20_000, pauseEvery: 50 });
        await sleep(300);
        const proc = (await fw().exec(['cat', '/proc/net/netfilter/nfnetlink_queue'])).stdout;
        const line = kernelQueueLines(proc).find((q) => q.queue === QUEUE);
        assert.ok(line, `queue ${QUEUE} is not bound:\n${proc}`);
        assert.equal(line.total, KERNEL_QUEUE_MAXLEN, `the kernel queue is full while nfqwall is stopped:\n${proc}`);
      } finally {
        d.child.kill('SIGCONT');
      }
      await sleep(500);
      const q = await assertAccounted(d);
      const arrived = (await ruleCounter(fw(), 'raw', 'PREROUTING', `--dport ${FLOOD_PORTS}`)) - before.atFw;
      const delivered = (await ruleCounter(server(), 'raw', 'PREROUTING', `--dport ${FLOOD_PORTS}`)) - before.atServer;
      const ruled = (await judged(d)) - before.judged;
      const excess = arrived - KERNEL_QUEUE_MAXLEN;
      assert.ok(excess > 0, `more arrived (${arrived}) than the queue holds`);
      assert.equal(q['maxLen'], KERNEL_QUEUE_MAXLEN, 'status shows the length the kernel held');
      assert.equal(q.received - before.q.received, KERNEL_QUEUE_MAXLEN, 'nfqwall received exactly what the queue held');
      assert.equal(ruled, KERNEL_QUEUE_MAXLEN, 'and its rules judged all of it');
      const kernelDropped = q.kernelQueueDropped - before.q.kernelQueueDropped;
      // fw's link to the server may drop a burst itself (veth backlog): counted, and nothing nfqwall decided.
      const linkDrops = (await txDropped(fw(), fw().ifname('server'))) - linkDrops0;
      if (failOpen) {
        assert.equal(kernelDropped, 0, 'fail-open: the kernel dropped nothing');
        assert.equal(delivered + linkDrops, arrived, 'fail-open: every packet went on to the server (the excess unjudged)');
      } else {
        assert.equal(kernelDropped, excess, 'fail-closed: the kernel dropped exactly the excess');
        assert.equal(delivered + linkDrops, ruled, 'fail-closed: only the judged packets went on to the server');
      }
      const scrape1 = await d.metrics(METRICS_PORT);
      const lbl = `{queue="${QUEUE}"}`;
      assert.equal(metric(scrape1, 'nfqwall_queue_kernel_dropped_total', lbl) - metric(scrape0, 'nfqwall_queue_kernel_dropped_total', lbl), kernelDropped);
      assert.equal(metric(scrape1, 'nfqwall_queue_received_total', lbl) - metric(scrape0, 'nfqwall_queue_received_total', lbl), KERNEL_QUEUE_MAXLEN);
      assert.equal(metric(scrape1, 'nfqwall_queue_length', lbl), 0);
      await assertRecovers();
    });

    it(`${mode}: a flood of new connections beyond what the slow path takes gets the overload verdict, counted, and nfqwall recovers`, async () => {
      // The rule matcher would decide these new connections natively, far faster than the flood; the point here is
      // JavaScript's backlog, so every packet goes there.
      const d = await start({ failOpen, slowRules: 3000, matcher: false });
      const before = await snapshot(d);
      const scrape0 = await d.metrics(METRICS_PORT);
      const linkDrops0 = await txDropped(fw(), fw().ifname('server'));
      const sent = await flood(client(), { count: 60_000, ms: 6_000 });
      await sleep(500);
      const q = await assertAccounted(d);
      const arrived = (await ruleCounter(fw(), 'raw', 'PREROUTING', `--dport ${FLOOD_PORTS}`)) - before.atFw;
      const delivered = (await ruleCounter(server(), 'raw', 'PREROUTING', `--dport ${FLOOD_PORTS}`)) - before.atServer;
      const ruled = (await judged(d)) - before.judged;
      const overload = q.overload - before.q.overload;
      const kernelDropped = q.kernelQueueDropped - before.q.kernelQueueDropped;
      const received = q.received - before.q.received;
      const facts = `sent ${sent}, arrived at fw ${arrived}, nfqwall received ${received}, judged ${ruled}, overload ${overload}, kernel queue dropped ${kernelDropped}, delivered ${delivered}`;
      if (process.env['NFQW_VERBOSE'] === '1') process.stderr.write(`overload ${mode}: ${facts}\n`);
      assert.ok(overload + kernelDropped > 0, `the flood did not overload nfqwall (make it heavier): ${facts}`);
      // Every packet nfqwall received was judged by the rules or got the overload verdict, nothing else.
      assert.equal(ruled + overload, received, `judged + overload == received: ${facts}`);
      if (failOpen) {
        assert.equal(kernelDropped, 0, `fail-open: the kernel dropped nothing: ${facts}`);
        // fw's link to the server may itself drop under the flood (veth backlog); nothing nfqwall decided.
        const linkDrops = (await txDropped(fw(), fw().ifname('server'))) - linkDrops0;
        assert.ok(delivered + linkDrops >= arrived, `fail-open: everything that arrived went on (delivered + link drops >= arrived): ${facts}, link drops ${linkDrops}`);
        assert.equal(q.dropped - before.q.dropped, 0, `fail-open: no drop verdict: ${facts}`);
      } else {
        assert.ok(delivered <= ruled, `fail-closed: nothing unjudged reached the server (delivered <= judged): ${facts}`);
        assert.equal(q.dropped - before.q.dropped, overload, `fail-closed: the drops are the overload verdicts: ${facts}`);
      }
      const scrape1 = await d.metrics(METRICS_PORT);
      const lbl = `{queue="${QUEUE}"}`;
      assert.equal(metric(scrape1, 'nfqwall_queue_overload_total', lbl) - metric(scrape0, 'nfqwall_queue_overload_total', lbl), overload, 'overload on /metrics');
      assert.equal(metric(scrape1, 'nfqwall_queue_received_total', lbl) - metric(scrape0, 'nfqwall_queue_received_total', lbl), received, 'received on /metrics');
      assert.equal(metric(scrape1, 'nfqwall_queue_kernel_dropped_total', lbl) - metric(scrape0, 'nfqwall_queue_kernel_dropped_total', lbl), kernelDropped, 'kernel drops on /metrics');
      // The journal says so too: one line a second at most, with the deltas (src/daemon/loss-report.ts).
      await sleep(1_200);
      const lines = d.output.split('\n').filter((l) => l.includes('packets decided without the rules'));
      assert.ok(lines.length >= 1, `a loss line was logged:\n${d.output.slice(-2000)}`);
      assert.ok(lines.length <= 15, `at most one loss line a second (the flood lasts 6 s): ${lines.length}`);
      const logged = lines.reduce((n, l) => n + Number(/ overload=(\d+)/.exec(l)?.[1] ?? 0), 0);
      assert.equal(logged, overload, `the logged overload deltas add up to the counter:\n${lines.join('\n')}`);
      assert.ok(lines.every((l) => l.includes(`policy=${failOpen ? 'fail-open' : 'fail-closed'}`)), lines.join('\n'));
      await assertRecovers();
    });
  }

  it('every hook queued, a flood of new connections beyond what one CPU takes: dropped where it enters, never after PREROUTING', async () => {
    // nfqwall on CPU 1 alone, the C flood from CPU 0 (1,000 connections, a port each, never answered: three trips a
    // datagram, decided by the rule matcher or the flow cache): far more than the receive thread can answer. Its
    // PREROUTING queue fills and the kernel drops there; FORWARD and POSTROUTING go to the late queue, which the same
    // thread reads empty before each PREROUTING batch.
    const LATE = QUEUE + 1;
    const d = await start({ failOpen: false, allHooks: true });
    await fw().exec(['taskset', '-a', '-p', '-c', '1', String(d.child.pid)]);
    const floodBin = buildC(packageRoot(), 'udp-flood', []);
    const before = await snapshot(d);
    const late0 = (await d.queueStats(LATE)) as Queue;
    const linkDrops0 = await txDropped(fw(), fw().ifname('server'));
    const r = await client().exec(['taskset', '-c', '0', floodBin, A.server4, '7000', '400000', '2', '64', A.client4, '0', '1000'], { timeoutMs: 20_000 });
    assert.match(r.stdout, /^sent \d+ seconds/m, r.stdout + r.stderr);
    await sleep(500);
    const q = await assertAccounted(d);
    const late = (await d.queueStats(LATE)) as Queue;
    const delivered = (await ruleCounter(server(), 'raw', 'PREROUTING', `--dport ${FLOOD_PORTS}`)) - before.atServer;
    const ruled = (await judged(d)) - before.judged;
    const linkDrops = (await txDropped(fw(), fw().ifname('server'))) - linkDrops0;
    const entered = q.accepted - before.q.accepted;
    const facts = `${r.stdout.trim()}; queue ${QUEUE}: received ${q.received - before.q.received}, accepted ${entered}, kernel dropped ${q.kernelQueueDropped - before.q.kernelQueueDropped}, left unread for the late queue ${(q.lateWaits ?? 0) - (before.q.lateWaits ?? 0)} times; late queue ${LATE}: received ${late.received - late0.received}, kernel dropped ${late.kernelQueueDropped - late0.kernelQueueDropped}, overload ${late.overload - late0.overload}; judged at FORWARD ${ruled}, delivered ${delivered}, link drops ${linkDrops}`;
    if (process.env['NFQW_VERBOSE'] === '1') process.stderr.write(`late queue: ${facts}\n`);
    assert.ok(q.kernelQueueDropped - before.q.kernelQueueDropped > 0, `the flood did not fill the queue (make it heavier): ${facts}`);
    assert.equal(late.kernelQueueDropped - late0.kernelQueueDropped, 0, `the late queue dropped nothing: ${facts}`);
    assert.equal(late.overload - late0.overload, 0, `nor gave an overload verdict: ${facts}`);
    assert.equal(late.accepted + late.dropped, late.received, `every late packet got one verdict: ${facts}`);
    assert.equal(late.kernelIdSequence, late.received + late.kernelUserDropped, `the kernel's id sequence of the late queue is accounted for: ${facts}`);
    // Every flood packet accepted at PREROUTING was judged at FORWARD and went on to the server.
    assert.equal(late.received - late0.received, 2 * entered, `each packet through PREROUTING made its FORWARD and POSTROUTING trips: ${facts}`);
    assert.equal(ruled, entered, `and the rules judged each at FORWARD: ${facts}`);
    assert.equal(delivered + linkDrops, ruled, `and each reached the server: ${facts}`);
    await assertRecovers();
  });

  it('a late queue holds at least 4,608 packets however short queue_maxlen is; status and /metrics show each length', async () => {
    // A late queue takes what its driver's verdicts send on (one batch, or every hit of its lot of parked packets: up
    // to 4,096) and its own POSTROUTING trips: a queue_maxlen of 100 would drop packets already judged at PREROUTING
    // there. The queue packets enter keeps 100.
    const d = await start({ failOpen: false, allHooks: true, queueMaxlen: 100 });
    assert.equal((await queueOf(d))['maxLen'], 100);
    assert.equal((await d.queueStats(QUEUE + 1))['maxLen'], 4608);
    const text = await d.metrics(METRICS_PORT);
    assert.equal(metric(text, 'nfqwall_queue_maxlen', `{queue="${QUEUE}"}`), 100);
    assert.equal(metric(text, 'nfqwall_queue_maxlen', `{queue="${QUEUE + 1}"}`), 4608);
  });

  it('the connection table at its limit: new connections beyond it are dropped and counted; the table recovers', async () => {
    const LIMIT = 64;
    const d = await start({ failOpen: false, conntrackMax: LIMIT });
    const before = await snapshot(d);
    // Unanswered UDP flows are never ASSURED, so each new one evicts an old one (early_drop) rather than being
    // dropped; the table never holds more than its limit.
    await flood(client(), { count: 3000, ms: 10_000, ports: 1000, pauseEvery: 20 });
    await sleep(300);
    const s = await d.status();
    const ct = s['conntrack'] as { entries: number; earlyDrop: number; drop: number };
    if (process.env['NFQW_VERBOSE'] === '1') process.stderr.write(`connection table: ${JSON.stringify(ct)}\n`);
    assert.ok(ct.entries <= LIMIT, `entries ${ct.entries} <= ${LIMIT}`);
    assert.ok(ct.earlyDrop > 0, `the limit was reached: early drops ${JSON.stringify(ct)}`);
    const text = await d.metrics(METRICS_PORT);
    assert.equal(metric(text, 'nfqwall_conntrack_entries_limit'), LIMIT);
    assert.ok(metric(text, 'nfqwall_conntrack_entries') <= LIMIT, 'entries gauge within the limit');
    assert.ok(metric(text, 'nfqwall_conntrack_events_total', '{event="early_drop"}') >= ct.earlyDrop, 'early drops on /metrics');
    const q = await assertAccounted(d);
    const delivered = (await ruleCounter(server(), 'raw', 'PREROUTING', `--dport ${FLOOD_PORTS}`)) - before.atServer;
    const ruled = (await judged(d)) - before.judged;
    const ctDropped = (q.ctDropped ?? 0) - (before.q.ctDropped ?? 0);
    // Packets the table refused were dropped whatever the rules said (counted in ctDropped and conntrack.drop).
    assert.equal(ctDropped, ct.drop, `queue ctDropped == table drops: ${JSON.stringify(q)} ${JSON.stringify(ct)}`);
    const received = q.received - before.q.received;
    assert.ok(delivered <= ruled, `delivered ${delivered} <= judged ${ruled}`);
    assert.ok(delivered <= received - ctDropped, `delivered ${delivered} <= received ${received} - table drops ${ctDropped}`);
    await assertRecovers();
  });
});

/** Packets a link dropped on transmit (veth: the peer's backlog was full). */
async function txDropped(host: Host, ifname: string): Promise<number> {
  return Number((await host.exec(['cat', `/sys/class/net/${ifname}/statistics/tx_dropped`])).stdout.trim());
}
