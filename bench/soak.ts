// Soak (issue #9): nfqwall in the three-host lab for minutes under mixed traffic through NAT (UDP and TCP echo through
// DNAT and MASQUERADE, ICMP echo), with a reload of a randomly changed ruleset every second and a scrape of /metrics
// every second. Every interval it prints the daemon's resident size, V8 heap, open descriptors, verdict accounting and
// connection-table size; at the end it fails (exit 1) if resident memory grew past a bound after warm-up, descriptors
// grew, any verdict was lost, a reload failed, a carried rule counter went backwards, or the traffic did not get
// through.
//
// Run (root): `npm run soak` (10 minutes), `npm run soak -- --minutes 2`, or `npx tsx bench/soak.ts --seconds 30`.
// Options: --minutes N | --seconds N, --interval S (10), --rss-growth-mib M (32), --seed N.
import fs from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { controlRequest } from '../src/daemon/control';
import { Daemon, scratchDir, sleep } from '../test/lab/daemon';
import { isRoot, Lab, THREE_HOST as A, threeHostSpec, type Host } from '../test/lab/lab';

export interface SoakOptions {
  seconds: number;
  /** Seconds between printed samples. */
  interval: number;
  /**
   * Most resident-memory growth allowed after warm-up, in MiB: the lowest RSS of the run's last quarter against the
   * lowest of the quarter after warm-up. Lowest, because RSS swings with each garbage collection (tens of MiB here) and
   * its floor is what a leak raises.
   */
  rssGrowthMiB: number;
  seed: number;
  log: (line: string) => void;
}

export interface SoakSample {
  t: number;
  rssKiB: number;
  heapUsedBytes: number;
  fds: number;
  received: number;
  unverdicted: number;
  kernelQueue: number;
  conntrack: number;
  reloads: number;
  scrapes: number;
}

export interface SoakResult {
  ok: boolean;
  failures: string[];
  samples: SoakSample[];
  /** Figures for the record (issue #9 asks for them). */
  summary: Record<string, number>;
}

const QUEUE = 13;
const UDP_PORT = 5000;
const UDP_DNAT_PORT = 6000;
const TCP_PORT = 8080;
const TCP_DNAT_PORT = 6080;
/** The rules whose counters must only grow across reloads (their text never changes). */
const STABLE_RULES = ['-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT', `--dport ${UDP_PORT} -j ACCEPT`];

/** A small deterministic PRNG (mulberry32), so a run's rule changes can be replayed with --seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The ruleset of reload number `n`: NAT and the rules the traffic needs never change; around them, a random number of
 * random rules that match nothing in the lab (sources in 10/8), with random matches, comments and targets.
 */
export function soakRules(rand: () => number, fwToServer: string): string {
  const noise = (): string => {
    const src = `10.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${1 + Math.floor(rand() * 254)}`;
    const kinds = [
      `-s ${src}/32 -p tcp -m tcp --dport ${1 + Math.floor(rand() * 65535)} -j DROP`,
      `-s ${src}/32 -p udp -m multiport --dports ${1 + Math.floor(rand() * 1000)},${2000 + Math.floor(rand() * 1000)} -j REJECT`,
      `-s ${src}/32 -m comment --comment "soak ${Math.floor(rand() * 1e6)}" -j ACCEPT`,
      `-s ${src}/32 -m limit --limit ${1 + Math.floor(rand() * 100)}/second -j LOG --log-prefix "soak "`,
      `-s ${src}/32 -p icmp -m icmp --icmp-type ${Math.floor(rand() * 16)} -j DROP`,
    ];
    return kinds[Math.floor(rand() * kinds.length)] as string;
  };
  const before = Array.from({ length: Math.floor(rand() * 20) }, () => `-A FORWARD ${noise()}`);
  const after = Array.from({ length: Math.floor(rand() * 40) }, () => `-A FORWARD ${noise()}`);
  return [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    `-A PREROUTING -d ${A.server4}/32 -p udp -m udp --dport ${UDP_DNAT_PORT} -j DNAT --to-destination ${A.server4}:${UDP_PORT}`,
    `-A PREROUTING -d ${A.server4}/32 -p tcp -m tcp --dport ${TCP_DNAT_PORT} -j DNAT --to-destination ${A.server4}:${TCP_PORT}`,
    `-A POSTROUTING -o ${fwToServer} -j MASQUERADE`,
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD DROP [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    `-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    ...before,
    '-A FORWARD -m conntrack --ctstate INVALID -j DROP',
    `-A FORWARD -p udp -m udp --dport ${UDP_PORT} -j ACCEPT`,
    `-A FORWARD -p tcp -m tcp --dport ${TCP_PORT} --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT`,
    '-A FORWARD -p icmp -m icmp --icmp-type 8 -j ACCEPT',
    ...after,
    'COMMIT',
    '',
  ].join('\n');
}

// ---- traffic, each a script run in a lab host that stops by itself ----

// argv: udpPort tcpPort. UDP and TCP echo until stdin closes.
const ECHO = `
const [udpPort, tcpPort] = process.argv.slice(1).map(Number);
const u = require('node:dgram').createSocket('udp4');
u.on('message', (m, r) => u.send(m, r.port, r.address));
const t = require('node:net').createServer((s) => { s.on('error', () => {}); s.pipe(s); });
let up = 0;
const ready = () => { if (++up === 2) process.stdout.write('ready\\n'); };
u.bind(udpPort, ready);
t.listen(tcpPort, ready);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

// argv: addr port seconds intervalMs. One datagram every intervalMs; prints `udp <sent> <replies>` at the end.
const UDP_CLIENT = `
const [addr, port, seconds, every] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const s = require('node:dgram').createSocket('udp4');
const seen = new Set();
let sent = 0;
s.on('message', (m) => seen.add(m.toString()));
const t0 = Date.now();
const tick = setInterval(() => {
  if (Date.now() - t0 >= seconds * 1000) {
    clearInterval(tick);
    setTimeout(() => { process.stdout.write('udp ' + sent + ' ' + seen.size + '\\n'); process.exit(0); }, 1000);
    return;
  }
  s.send('soak-' + sent++, port, addr);
}, every);
`;

// argv: addr port seconds. Connection after connection (connect, 200 bytes echoed, close); prints `tcp <tried> <ok>`.
const TCP_CLIENT = `
const net = require('node:net');
const [addr, port, seconds] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const t0 = Date.now();
let tried = 0, ok = 0;
function one() {
  if (Date.now() - t0 >= seconds * 1000) { process.stdout.write('tcp ' + tried + ' ' + ok + '\\n'); process.exit(0); }
  tried++;
  const payload = Buffer.alloc(200, 0x73);
  let got = 0, done = false;
  const s = net.connect(port, addr);
  const finish = (good) => { if (done) return; done = true; clearTimeout(timer); if (good) ok++; s.destroy(); setTimeout(one, 20); };
  const timer = setTimeout(() => finish(false), 3000);
  s.on('connect', () => s.write(payload));
  s.on('data', (d) => { got += d.length; if (got >= payload.length) { s.end(); finish(true); } });
  s.on('error', () => finish(false));
}
one();
`;

// argv: port seconds. Scrapes http://127.0.0.1:port/metrics every second; one line per scrape:
// `scrape <status> <heap used bytes>` (status 0 when the request failed).
const SCRAPER = `
const http = require('node:http');
const [port, seconds] = process.argv.slice(1).map(Number);
const t0 = Date.now();
function one() {
  if (Date.now() - t0 >= seconds * 1000) return process.exit(0);
  const req = http.get({ host: '127.0.0.1', port, path: '/metrics', timeout: 5000 }, (res) => {
    let b = ''; res.setEncoding('utf8'); res.on('data', (d) => (b += d));
    res.on('end', () => {
      const m = /^nodejs_heap_size_used_bytes (\\S+)$/m.exec(b);
      process.stdout.write('scrape ' + res.statusCode + ' ' + (m ? m[1] : -1) + '\\n');
      setTimeout(one, 1000);
    });
  });
  req.on('error', () => { process.stdout.write('scrape 0 -1\\n'); setTimeout(one, 1000); });
  req.on('timeout', () => req.destroy());
}
one();
`;

/** Collects a child's stdout lines. */
function lines(child: ChildProcess): { all: string[]; exited: Promise<void> } {
  const all: string[] = [];
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    all.push(...parts);
  });
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  return { all, exited };
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

interface QueueCounts {
  queue: number;
  received: number;
  accepted: number;
  dropped: number;
  kernelIdSequence: number;
  kernelQueueTotal: number;
  kernelUserDropped: number;
  overload: number;
}

async function statusOf(control: string): Promise<{ q: QueueCounts; conntrack: number; reloads: { success: number; failure: number; lastError?: string } }> {
  const r = await controlRequest(control, { cmd: 'status' });
  if (!r.ok) throw new Error(`status: ${r.error}`);
  const q = (r['queues'] as QueueCounts[]).find((x) => x.queue === QUEUE);
  if (q === undefined) throw new Error('status shows no queue');
  const ct = r['conntrack'] as { entries: number } | undefined;
  return { q, conntrack: ct?.entries ?? 0, reloads: r['reloads'] as { success: number; failure: number; lastError?: string } };
}

/** Packet counters of the rules whose text contains each of `texts`, from nfqwall's live ruleset. */
async function stableCounters(control: string): Promise<number[]> {
  const r = await controlRequest(control, { cmd: 'save', counters: true });
  if (!r.ok) throw new Error(`save: ${r.error}`);
  const text = (r['rulesets'] as Record<string, string>)['ipv4'] ?? '';
  return STABLE_RULES.map((t) => {
    const line = text.split('\n').find((l) => l.includes(t));
    const m = line === undefined ? null : /^\[(\d+):/.exec(line);
    if (m === null) throw new Error(`no rule "${t}" in nfqwall's save`);
    return Number(m[1]);
  });
}

function writeAtomically(file: string, text: string): void {
  // Renamed into place: the file watcher must never read half a file (that would be a failed reload).
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

export async function soak(opts: SoakOptions): Promise<SoakResult> {
  const log = opts.log;
  const failures: string[] = [];
  const samples: SoakSample[] = [];
  const rand = prng(opts.seed);
  const lab = await Lab.create(threeHostSpec());
  const scratch = scratchDir();
  let daemon: Daemon | undefined;
  const children: ChildProcess[] = [];
  try {
    const fw = lab.host('fw');
    const client = lab.host('client');
    const server = lab.host('server');
    const rulesFile = scratch.write('rules.v4', soakRules(rand, fw.ifname('server')));
    const control = `${scratch.dir}/control.sock`;
    daemon = await Daemon.start(fw, control, { rules: rulesFile, queue: QUEUE });
    const pid = daemon.child.pid;
    if (pid === undefined) throw new Error('no daemon pid');

    const echo = server.spawn([process.execPath, '-e', ECHO, String(UDP_PORT), String(TCP_PORT)]);
    children.push(echo);
    const echoOut = lines(echo);
    for (let i = 0; i < 50 && !echoOut.all.includes('ready'); i++) await sleep(100);
    if (!echoOut.all.includes('ready')) throw new Error('the echo server did not start');

    const secs = String(opts.seconds);
    const spawnTraffic = (h: Host, argv: string[]): { all: string[]; exited: Promise<void> } => {
      const c = h.spawn(argv);
      children.push(c);
      return lines(c);
    };
    const udp = spawnTraffic(client, [process.execPath, '-e', UDP_CLIENT, A.server4, String(UDP_DNAT_PORT), secs, '5']);
    const tcp = spawnTraffic(client, [process.execPath, '-e', TCP_CLIENT, A.server4, String(TCP_DNAT_PORT), secs]);
    const ping = spawnTraffic(client, ['ping', '-n', '-q', '-i', '0.1', '-w', secs, A.server4]);
    const scraper = spawnTraffic(fw, [process.execPath, '-e', SCRAPER, '9469', secs]);

    const t0 = Date.now();
    let reloads = 0;
    let lastSample = 0;
    // Warm-up: the connection table fills for two minutes (TCP TIME_WAIT) and the allocator settles after it (RSS
    // climbs for about four minutes of a 10-minute run, then stays flat).
    const warmAt = Math.min(Math.max(10, opts.seconds * 0.4), opts.seconds / 2);
    let warm: SoakSample | undefined;
    /** RSS and V8 heap once a second, for the floors compared at the end. */
    const series: { t: number; rssKiB: number; heap: number }[] = [];
    let lastStable: number[] | undefined;
    log(`soak: ${opts.seconds} s, samples every ${opts.interval} s, reload every second, seed ${opts.seed}, daemon pid ${pid}`);
    log('   t(s)   rss(KiB)  heap(MiB)  fds   received  unverdicted  kqueue  conntrack  reloads  scrapes');
    while ((Date.now() - t0) / 1000 < opts.seconds) {
      const tick = Date.now();
      writeAtomically(rulesFile, soakRules(rand, fw.ifname('server')));
      const r = await controlRequest(control, { cmd: 'reload' }, 15_000);
      reloads++;
      if (!r.ok) failures.push(`reload ${reloads} failed: ${r.error}`);
      const stable = await stableCounters(control);
      if (lastStable !== undefined) {
        stable.forEach((v, i) => {
          if (v < (lastStable?.[i] ?? 0)) failures.push(`the counter of "${STABLE_RULES[i]}" went back from ${lastStable?.[i]} to ${v} at reload ${reloads}`);
        });
      }
      lastStable = stable;
      const t = (Date.now() - t0) / 1000;
      const heapNow = [...scraper.all].reverse().find((l) => l.startsWith('scrape 200 '));
      series.push({ t, rssKiB: rssKiB(pid), heap: heapNow ? Number(heapNow.split(' ')[2]) : -1 });
      if (t - lastSample >= opts.interval || samples.length === 0) {
        lastSample = t;
        const st = await statusOf(control);
        const heapLine = [...scraper.all].reverse().find((l) => l.startsWith('scrape 200 '));
        const s: SoakSample = {
          t: Math.round(t),
          rssKiB: rssKiB(pid),
          heapUsedBytes: heapLine ? Number(heapLine.split(' ')[2]) : -1,
          fds: fdCount(pid),
          received: st.q.received,
          unverdicted: st.q.received - st.q.accepted - st.q.dropped,
          kernelQueue: st.q.kernelQueueTotal,
          conntrack: st.conntrack,
          reloads,
          scrapes: scraper.all.filter((l) => l.startsWith('scrape 200 ')).length,
        };
        samples.push(s);
        if (warm === undefined && t >= warmAt) warm = s;
        log(
          `${String(s.t).padStart(7)} ${String(s.rssKiB).padStart(10)} ${(s.heapUsedBytes < 0 ? '-' : (s.heapUsedBytes / 1048576).toFixed(1)).padStart(10)} ${String(s.fds).padStart(4)} ` +
            `${String(s.received).padStart(10)} ${String(s.unverdicted).padStart(12)} ${String(s.kernelQueue).padStart(7)} ${String(s.conntrack).padStart(10)} ` +
            `${String(s.reloads).padStart(8)} ${String(s.scrapes).padStart(8)}`,
        );
      }
      await sleep(Math.max(0, 1000 - (Date.now() - tick)));
    }

    // Traffic stops by itself; then every queued packet must have had its verdict.
    await Promise.all([udp.exited, tcp.exited, ping.exited, scraper.exited]);
    let st = await statusOf(control);
    for (let i = 0; i < 50 && (st.q.received !== st.q.accepted + st.q.dropped || st.q.kernelQueueTotal !== 0); i++) {
      await sleep(200);
      st = await statusOf(control);
    }
    const q = st.q;
    const end: SoakSample = {
      t: Math.round((Date.now() - t0) / 1000), rssKiB: rssKiB(pid), heapUsedBytes: samples.at(-1)?.heapUsedBytes ?? -1,
      fds: fdCount(pid), received: q.received, unverdicted: q.received - q.accepted - q.dropped, kernelQueue: q.kernelQueueTotal,
      conntrack: st.conntrack, reloads, scrapes: scraper.all.filter((l) => l.startsWith('scrape 200 ')).length,
    };
    samples.push(end);
    warm ??= samples[0];
    if (q.received !== q.accepted + q.dropped) failures.push(`lost verdicts: received ${q.received}, accepted ${q.accepted} + dropped ${q.dropped}`);
    if (q.kernelIdSequence !== q.received + q.kernelUserDropped) {
      failures.push(`the kernel's id sequence ${q.kernelIdSequence} != received ${q.received} + undeliverable ${q.kernelUserDropped}`);
    }
    if (q.kernelQueueTotal !== 0) failures.push(`${q.kernelQueueTotal} packets left in the kernel queue`);
    if (st.reloads.failure > 0) failures.push(`${st.reloads.failure} reloads failed (last: ${st.reloads.lastError ?? ''})`);
    const quarter = (opts.seconds - warmAt) / 4;
    const floor = (from: number, to: number, key: 'rssKiB' | 'heap'): number => {
      const xs = series.filter((x) => x.t >= from && x.t <= to && x[key] >= 0).map((x) => x[key]);
      return xs.length === 0 ? NaN : Math.min(...xs);
    };
    const rssFloorWarm = floor(warmAt, warmAt + quarter, 'rssKiB');
    const rssFloorEnd = floor(opts.seconds - quarter, Infinity, 'rssKiB');
    const heapFloorWarm = floor(warmAt, warmAt + quarter, 'heap');
    const heapFloorEnd = floor(opts.seconds - quarter, Infinity, 'heap');
    const growthKiB = rssFloorEnd - rssFloorWarm;
    if (!Number.isFinite(growthKiB)) failures.push('too few samples to measure memory growth');
    else if (growthKiB > opts.rssGrowthMiB * 1024) {
      failures.push(`resident memory grew ${growthKiB} KiB after warm-up (lowest of the last quarter against the lowest after warm-up; bound ${opts.rssGrowthMiB} MiB)`);
    }
    const fdGrowth = end.fds - (warm?.fds ?? end.fds);
    if (fdGrowth > 4) failures.push(`open descriptors grew by ${fdGrowth} after warm-up`);
    if (!daemon.running) failures.push(`nfqwall exited:\n${daemon.output.slice(-3000)}`);

    const num = (all: string[], re: RegExp): number[] => {
      const m = all.map((l) => re.exec(l)).find((x) => x !== null);
      return m ? m.slice(1).map(Number) : [];
    };
    const [udpSent = 0, udpReplies = 0] = num(udp.all, /^udp (\d+) (\d+)$/);
    const [tcpTried = 0, tcpOk = 0] = num(tcp.all, /^tcp (\d+) (\d+)$/);
    const [pingSent = 0, pingReceived = 0] = num(ping.all, /(\d+) packets transmitted, (\d+) (?:packets )?received/);
    const ratio = (a: number, b: number): number => (b === 0 ? 0 : a / b);
    // The soak is about leaks and lost verdicts, not speed: a machine busy elsewhere may lose a little traffic.
    for (const [what, got, of] of [['UDP echoes', udpReplies, udpSent], ['TCP exchanges', tcpOk, tcpTried], ['pings', pingReceived, pingSent]] as const) {
      if (of === 0 || ratio(got, of) < 0.95) failures.push(`${what}: ${got} of ${of} got through`);
    }
    const summary: Record<string, number> = {
      seconds: opts.seconds, reloads, scrapes: end.scrapes, queued: q.received, overload: q.overload,
      udpSent, udpReplies, tcpTried, tcpOk, pingSent, pingReceived,
      rssFloorWarmKiB: rssFloorWarm, rssFloorEndKiB: rssFloorEnd, rssGrowthKiB: growthKiB, rssEndKiB: end.rssKiB,
      heapFloorWarmMiB: Math.round((heapFloorWarm / 1048576) * 10) / 10, heapFloorEndMiB: Math.round((heapFloorEnd / 1048576) * 10) / 10,
      fdsWarm: warm?.fds ?? 0, fdsEnd: end.fds, conntrackEnd: end.conntrack, lostVerdicts: q.received - q.accepted - q.dropped,
    };
    log(`soak: ${Object.entries(summary).map(([k, v]) => `${k}=${v}`).join(' ')}`);
    for (const f of failures) log(`soak: FAIL: ${f}`);
    if (failures.length === 0) log('soak: ok');
    return { ok: failures.length === 0, failures, samples, summary };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    if (daemon?.running === true) await daemon.stop();
    await lab.destroy();
    scratch.cleanup();
  }
}

function parseArgs(argv: string[]): Omit<SoakOptions, 'log'> {
  const o = { seconds: 600, interval: 10, rssGrowthMiB: 32, seed: Date.now() % 1_000_000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = Number(argv[i + 1]);
    const need = (): number => {
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      i++;
      return v;
    };
    if (a === '--minutes') o.seconds = need() * 60;
    else if (a === '--seconds') o.seconds = need();
    else if (a === '--interval') o.interval = need();
    else if (a === '--rss-growth-mib') o.rssGrowthMiB = need();
    else if (a === '--seed') o.seed = need();
    else throw new Error(`unknown option ${a} (--minutes N, --seconds N, --interval S, --rss-growth-mib M, --seed N)`);
  }
  return o;
}

if (require.main === module) {
  (async () => {
    if (!isRoot()) throw new Error('the soak needs root (network namespaces)');
    const r = await soak({ ...parseArgs(process.argv.slice(2)), log: (l) => process.stdout.write(l + '\n') });
    process.exit(r.ok ? 0 : 1);
  })().catch((err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  });
}
