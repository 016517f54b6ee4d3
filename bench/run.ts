// `npm run bench`: a bounded UDP flood client -> fw -> server through the three-host lab, with the queue at fw
// FORWARD taken in turn by nfqwall (one queue, two queues, its flow cache on and off), a minimal C libnetfilter_queue
// loop (the floor) and the npm `nfqueue` binding, with the queue trips each made per delivered packet and the share
// nfqwall's flow cache decided; the flood's flows are ESTABLISHED (each opened by one exchange), and a second,
// shorter table floods new flows that never see a reply (NEW throughout). Then UDP ping-pong latency through fw
// (no queue, C loop, nfqwall with the cache on and off) and the memory of a 10,000-service ruleset plus 1,000,000
// connections.
// Absolute figures on a shared machine are noise; the ratios measured side by side in one run are the result.
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { isRoot, Lab, THREE_HOST, threeHostSpec, type Host } from '../test/lab/lab';
import { buildC, installNfqueue, outDir } from './build';
import { cliPath } from '../test/lab/daemon';
import { packageRoot } from '../src/package-root';
import { kubeProxyRules } from '../scripts/gen-kube-proxy';
import { kubeProxyRules as kubeProxyNatRules } from './parse';
import {
  ACCEPT_ALL_RULES,
  cachedPackets,
  matchedPackets,
  cLoopMode,
  cpuSeconds,
  CLOCK_TICKS,
  kernelMode,
  kernelRulesMode,
  nfqueueMode,
  NFQUEUE_NAME,
  NFQUEUE_DEFAULT_NAME,
  nfqwallMode,
  nfqwallName,
  QUEUE_CPU,
  queuedPackets,
  type Mode,
  withMode,
} from './modes';
import { bulk, BULK_PORT, type BulkSample } from './bulk';
import type { MemoryResult } from './memory';

const SENDER_CPU = '0';
const PORT = 9000;
const ECHO_PORT = 9100;
/**
 * The flood comes from this many addresses of the client, one burst each in turn: several address pairs, so the
 * kernel's --queue-balance hash has flows to spread over two queues (one pair always lands on one queue).
 */
const FLOOD_SOURCES = Array.from({ length: 8 }, (_, i) => `198.18.0.${2 + i}`);
/**
 * The source port of the established flood: fixed, so every run's flows are the ones its handshake opened (the
 * server answers only 1-byte datagrams, see main()).
 */
const FLOOD_SPORT = 40000;
const HANDSHAKE_LENGTH = 20 + 8 + 1;

/**
 * established: flows opened by one exchange first (the cache can take them); new: flows that never see a reply;
 * connections: every datagram a new connection (the next of CONNECTION_PORTS destination ports), as a flood of
 * connection attempts is: what the rule count costs.
 */
type FloodKind = 'established' | 'new' | 'connections';
const CONNECTION_PORTS = 20_000;
/**
 * A connection flood sends at most this many datagrams, each a connection of its own (udp-flood gives every source
 * a whole round of the ports): more would repeat connections, which stay NEW unanswered and which the flow cache
 * then takes instead of the rules. With the warm-up's, it also stays below the kernel's connection table limit
 * (nf_conntrack_max, 262,144 here), which the rule-count rounds empty before each flood.
 */
const CONNECTION_FLOOD_MAX = 100_000;
/** The connection flood's first destination port: its range stays clear of PORT and ECHO_PORT. */
const CONNECTION_PORT = 10_000;
/** The rule-count part: kube-proxy rulesets of these many services (NFQW_BENCH_SERVICES, a comma list). */
const SERVICES = (process.env['NFQW_BENCH_SERVICES'] ?? '10,1000,10000,100000').split(',').map((s) => Number(s.trim()));
for (const s of SERVICES) if (!Number.isInteger(s) || s < 1 || s > 200_000) throw new Error(`NFQW_BENCH_SERVICES: ${s} is not 1..200000`);

function envNumber(name: string, fallback: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || n > max) throw new Error(`${name}=${raw}: expected a number in (0, ${max}]`);
  return n;
}

const PACKETS = envNumber('NFQW_BENCH_PACKETS', 1_000_000, 10_000_000);
const SECONDS = envNumber('NFQW_BENCH_SECONDS', 2, 30);
// Five by default: a mode's rounds move by up to a fifth on the shared machine, and a median of three crossed a goal
// by chance (bench/README.md).
const ROUNDS = Math.floor(envNumber('NFQW_BENCH_ROUNDS', 5, 10));
const SIZE = Math.floor(envNumber('NFQW_BENCH_SIZE', 64, 1400));
if (SIZE < 2) throw new Error('NFQW_BENCH_SIZE: at least 2 (1-byte datagrams are the handshake the server answers)');
const PINGS = Math.floor(envNumber('NFQW_BENCH_PINGS', 5000, 1_000_000));
// `scale` (the rule-count curve: a kernel restore of 100,000 services takes minutes) runs only when asked for.
const PARTS = new Set((process.env['NFQW_BENCH_ONLY'] ?? 'flood,new,tcp,latency,memory').split(',').map((p) => p.trim()));
for (const p of PARTS) if (!['flood', 'new', 'tcp', 'latency', 'memory', 'scale'].includes(p)) throw new Error(`NFQW_BENCH_ONLY: unknown part ${p}`);
// The flood modes to run (a regular expression on their names, as printed), for a quick look at one change: the
// ratios need the C loop beside nfqwall.
const MODES = new RegExp(process.env['NFQW_BENCH_MODES'] ?? '');

async function rxPackets(server: Host): Promise<number> {
  const r = await server.exec(['cat', `/sys/class/net/${server.ifname('fw')}/statistics/rx_packets`]);
  return Number(r.stdout.trim());
}

interface Sample {
  sent: number;
  delivered: number;
  seconds: number;
  pps: number;
  /** Packets the queue program received per packet delivered (warm-up included on both sides); 0 without a queue. */
  trips: number | undefined;
  /** Of the packets nfqwall received, the share its flow cache verdicted natively; undefined without a cache. */
  cachedShare: number | undefined;
  /** CPU microseconds the queue program's CPU was busy during the measured run per packet delivered in it. */
  cpuUs: number | undefined;
  /**
   * During the measured run, the share of the queue program's CPU that was busy, the share the queue program itself
   * used and the share in interrupts and softirqs: busy far above the other two, something else on the shared machine
   * took the CPU (noise, not the program's cost).
   */
  load: { cpuBusy: number; program: number; softirq: number } | undefined;
  note: string;
}

type FloodResult = Omit<Sample, 'note' | 'trips' | 'cachedShare' | 'cpuUs' | 'load'>;

/**
 * Busy, interrupt and total jiffies of one CPU so far, from /proc/stat (busy: all but idle and iowait; softirq: irq
 * and softirq time, which the kernel accounts to no process).
 */
function cpuJiffies(cpu: string): { busy: number; softirq: number; total: number } | undefined {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${cpu} `));
  if (line === undefined) return undefined;
  const n = line.trim().split(/\s+/).slice(1).map(Number);
  const total = n.reduce((a, b) => a + b, 0);
  return { busy: total - (n[3] ?? 0) - (n[4] ?? 0), softirq: (n[5] ?? 0) + (n[6] ?? 0), total };
}

async function flood(client: Host, server: Host, floodBin: string, kind: FloodKind, packets: number, seconds: number): Promise<FloodResult> {
  const before = await rxPackets(server);
  const port = kind === 'connections' ? CONNECTION_PORT : PORT;
  const count = kind === 'connections' ? Math.min(packets, CONNECTION_FLOOD_MAX, CONNECTION_PORTS * FLOOD_SOURCES.length) : packets;
  const argv = [floodBin, THREE_HOST.server4, String(port), String(count), String(seconds), String(SIZE), FLOOD_SOURCES.join(',')];
  if (kind === 'established') argv.push(String(FLOOD_SPORT));
  if (kind === 'connections') argv.push('0', String(CONNECTION_PORTS));
  const r = await client.exec(['taskset', '-c', SENDER_CPU, ...argv], { timeoutMs: seconds * 1000 + 15_000 });
  const m = /^sent (\d+) seconds ([\d.]+)$/m.exec(r.stdout);
  if (m === null) throw new Error(`udp-flood printed no result: ${r.stdout} ${r.stderr}`);
  // Let what is still queued drain before reading the counter.
  await new Promise((res) => setTimeout(res, 300));
  const delivered = (await rxPackets(server)) - before;
  const elapsed = Number(m[2]);
  return { sent: Number(m[1]), delivered, seconds: elapsed, pps: delivered / elapsed };
}

async function measure(lab: Lab, mode: Mode, floodBin: string, kind: FloodKind): Promise<Sample> {
  return (await measureRounds(lab, mode, floodBin, kind, 1))[0]!;
}

/**
 * One warm-up flood, then `rounds` measured floods while `mode` holds the queue (started once), each after
 * `beforeRound` if given. Trips and the cached share come from the mode's counters over all of them.
 */
async function measureRounds(
  lab: Lab,
  mode: Mode,
  floodBin: string,
  kind: FloodKind,
  rounds: number,
  beforeRound?: () => Promise<void>,
): Promise<Sample[]> {
  const client = lab.host('client');
  const server = lab.host('server');
  const { result, note } = await withMode(lab, mode, async (running) => {
    // Warm-up (JIT, caches; for an established flood also the handshakes that open the flows), not measured.
    const warm = await flood(client, server, floodBin, kind, Math.min(20_000, PACKETS), 0.5);
    const runs: Omit<Sample, 'note' | 'trips' | 'cachedShare'>[] = [];
    for (let i = 0; i < rounds; i++) {
      if (beforeRound !== undefined) await beforeRound();
      const cpu0 = cpuSeconds(running.pid);
      const j0 = cpuJiffies(QUEUE_CPU);
      const run = await flood(client, server, floodBin, kind, PACKETS, SECONDS);
      const cpu1 = cpuSeconds(running.pid);
      const j1 = cpuJiffies(QUEUE_CPU);
      // Jiffies are USER_HZ ticks, as /proc/PID/stat's; the window includes the 300 ms drain after the flood. The
      // whole CPU's busy time, not the program's own: the forwarding a verdict sets off runs partly in softirqs and
      // kernel workers that the kernel accounts to no process or to another one, and per-process times are sampled at
      // ticks (a worker woken at each tick is charged whole ticks: one was charged some 20% of the CPU of which perf's
      // samples gave it 2%). The CPU is the queue program's alone (taskset).
      const ticks = j0 !== undefined && j1 !== undefined ? { busy: j1.busy - j0.busy, softirq: j1.softirq - j0.softirq, span: j1.total - j0.total } : undefined;
      const cpuUs =
        running.pid !== undefined && ticks !== undefined ? ((ticks.busy / CLOCK_TICKS) * 1e6) / Math.max(1, run.delivered) : undefined;
      const load =
        ticks !== undefined && ticks.span > 0 && cpu0 !== undefined && cpu1 !== undefined
          ? { cpuBusy: ticks.busy / ticks.span, program: ((cpu1 - cpu0) * 100) / ticks.span, softirq: ticks.softirq / ticks.span }
          : undefined;
      runs.push({ ...run, cpuUs, load });
    }
    return { warm, runs };
  });
  const queued = mode.name === kernelMode().name ? 0 : queuedPackets(note);
  const cached = nativePackets(note);
  const delivered = result.warm.delivered + result.runs.reduce((n, r) => n + r.delivered, 0);
  return result.runs.map((run) => ({
    ...run,
    trips: queued === undefined ? undefined : queued / Math.max(1, delivered),
    cachedShare: cached === undefined || queued === undefined ? undefined : cached / Math.max(1, queued),
    note,
  }));
}

/** Packets nfqwall decided without JavaScript: from its flow cache and by its rule matcher. */
function nativePackets(note: string): number | undefined {
  const cached = cachedPackets(note);
  return cached === undefined ? undefined : cached + (matchedPackets(note) ?? 0);
}

interface Latency {
  count: number;
  lost: number;
  minUs: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  /** nfqwall with its flow cache: the share of queued packets (warm-up included) it verdicted natively. */
  cachedShare?: number;
}

/** Round trips client -> fw -> server echo -> fw -> client, one datagram in flight, while `mode` holds the queue. */
async function pingPong(lab: Lab, mode: Mode, pingBin: string): Promise<Latency> {
  const client = lab.host('client');
  const { result, note } = await withMode(lab, mode, async () => {
    const r = await client.exec(['taskset', '-c', SENDER_CPU, pingBin, 'ping', THREE_HOST.server4, String(ECHO_PORT), String(PINGS), '500'], {
      timeoutMs: PINGS * 250 + 30_000,
      check: false,
    });
    const m = /^count (\d+) lost (\d+) min_us ([\d.]+) p50_us ([\d.]+) p99_us ([\d.]+) p999_us ([\d.]+) max_us ([\d.]+)$/m.exec(r.stdout);
    if (m === null) throw new Error(`udp-pingpong printed no result: ${r.stdout} ${r.stderr}`);
    const n = m.slice(1).map(Number);
    return { count: n[0]!, lost: n[1]!, minUs: n[2]!, p50Us: n[3]!, p99Us: n[4]!, p999Us: n[5]!, maxUs: n[6]! };
  });
  const queued = queuedPackets(note);
  const cached = nativePackets(note);
  return { ...result, ...(cached !== undefined && queued !== undefined ? { cachedShare: cached / Math.max(1, queued) } : {}) };
}

/** Each figure the median of the rounds' (the lost ones summed): a round's p99 moves with what the machine did then. */
function medianLatency(ls: Latency[]): Latency {
  const m = (f: (l: Latency) => number): number => median(ls.map(f));
  const shares = ls.flatMap((l) => (l.cachedShare === undefined ? [] : [l.cachedShare]));
  return {
    count: ls.reduce((a, l) => a + l.count, 0),
    lost: ls.reduce((a, l) => a + l.lost, 0),
    minUs: Math.min(...ls.map((l) => l.minUs)),
    p50Us: m((l) => l.p50Us),
    p99Us: m((l) => l.p99Us),
    p999Us: m((l) => l.p999Us),
    maxUs: Math.max(...ls.map((l) => l.maxUs)),
    ...(shares.length > 0 ? { cachedShare: median(shares) } : {}),
  };
}

/** bench/memory in a child of its own, so its resident size is only what it holds. */
function memory(): MemoryResult {
  const ts = __filename.endsWith('.ts');
  const script = path.join(__dirname, ts ? 'memory.ts' : 'memory.js');
  const argv = [...(ts ? ['--import', 'tsx'] : []), '--expose-gc', script, '10000', '1000000'];
  const out = execFileSync(process.execPath, argv, { encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').pop() ?? '') as MemoryResult;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function table(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}\n`);
}

const ratio = (a: number | undefined, b: number | undefined): string => (a !== undefined && b !== undefined && b > 0 ? (a / b).toFixed(3) : 'n/a');

/**
 * The spread of a ratio over the rounds, each round's figure of `a` over the same round's of `b` (a mode measured in
 * fewer rounds, having failed, pairs only its own): a ratio of medians can sit near a goal while the rounds it came
 * from straddle it, and the reader should see that. Empty with fewer than two pairs.
 */
function roundSpread(a: number[] | undefined, b: number[] | undefined): string {
  const n = Math.min(a?.length ?? 0, b?.length ?? 0);
  const rs: number[] = [];
  for (let i = 0; i < n; i++) if (b![i]! > 0) rs.push(a![i]! / b![i]!);
  return rs.length < 2 ? '' : ` (rounds ${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)})`;
}

interface FloodTable {
  kind: FloodKind;
  modes: Mode[];
}

/** A part's samples by mode, in the order of the rounds, and the modes that failed (with why). */
interface Sampled<S = Sample> {
  samples: Map<string, S[]>;
  failures: Map<string, string>;
}

/** One table's modes, measured in rounds by `interleaved`: each mode's samples, or why it failed. */
interface Part<S> {
  label: string;
  modes: Mode[];
  measure(mode: Mode): Promise<S>;
  /** What the round's stderr line says of a sample. */
  describe(s: S): string;
  into: Sampled<S>;
}

/**
 * Rounds interleave every mode of every part, so drift on the shared machine hits them all alike; even rounds take
 * each part's modes in reverse order, so no mode always follows the same neighbour (the one before can leave the
 * machine busy, or its kernel queue state behind). A mode that fails once is not measured again.
 */
async function interleaved(parts: Part<unknown>[]): Promise<void> {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const { label, modes, measure: run, describe, into } of parts) {
      for (const mode of round % 2 === 0 ? [...modes].reverse() : modes) {
        if (mode.unavailable !== undefined || into.failures.has(mode.name) || !MODES.test(mode.name)) continue;
        try {
          const s = await run(mode);
          into.samples.set(mode.name, [...(into.samples.get(mode.name) ?? []), s]);
          process.stderr.write(`bench: round ${round} ${label} ${mode.name}: ${describe(s)}\n`);
        } catch (err) {
          into.failures.set(mode.name, err instanceof Error ? err.message : String(err));
          process.stderr.write(`bench: ${label} ${mode.name} failed: ${into.failures.get(mode.name)}\n`);
        }
      }
    }
  }
}

const part = <S>(p: Part<S>): Part<unknown> => p as Part<unknown>;

async function floods(lab: Lab, tables: FloodTable[], floodBin: string): Promise<Map<FloodKind, Sampled>> {
  const out = new Map<FloodKind, Sampled>(tables.map((t) => [t.kind, { samples: new Map(), failures: new Map() }]));
  await interleaved(
    tables.map(({ kind, modes }) =>
      part<Sample>({
        label: kind,
        modes,
        measure: (mode) => measure(lab, mode, floodBin, kind),
        describe: (s) =>
          `${fmt(s.pps)} pps (sent ${fmt(s.sent)}, delivered ${fmt(s.delivered)} in ${s.seconds.toFixed(2)} s` +
          `${s.load === undefined ? '' : `; CPU ${QUEUE_CPU} busy ${pct(s.load.cpuBusy)}, ${pct(s.load.program)} by the queue program, ${pct(s.load.softirq)} in softirqs`})` +
          `${s.note === '' ? '' : ` [${s.note}]`}`,
        into: out.get(kind)!,
      }),
    ),
  );
  return out;
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

function printFloods(table_: FloodTable, flooded: Sampled, names: { c: string; nfqwall: string; noCache: string }): void {
  const { kind, modes } = table_;
  const { samples, failures } = flooded;
  const flows =
    kind === 'established'
      ? `${FLOOD_SOURCES.length} ESTABLISHED flows (one per client address, source port ${FLOOD_SPORT}, each opened by one exchange with the server first)`
      : `${FLOOD_SOURCES.length} new flows per run (one per client address, fresh source ports) that never see a reply`;
  process.stdout.write(
    `\nUDP flood, ${flows}: ${SIZE}-byte datagrams, ${fmt(PACKETS)} packets or ${SECONDS} s per run, ` +
      `${ROUNDS} round(s); sender on CPU ${SENDER_CPU}, queue program on CPU 1; medians. trips/packet: packets the queue ` +
      `program received / packets delivered to the server; native: of the packets nfqwall received, the share its flow ` +
      `cache or rule matcher verdicted on the receive thread without JavaScript; CPU µs/packet: the busy time of CPU ${QUEUE_CPU}, which ` +
      `only the queue program is given, during the measured run / packets delivered in it: it counts the kernel's forwarding work ` +
      `after each verdict too, and is the inverse of the delivered rate once the queue program saturates that CPU\n`,
  );
  const pps = new Map<string, number>();
  const rows: string[][] = [['mode', 'packets/s', 'delivered/sent', 'trips/packet', 'native', 'CPU µs/packet']];
  const cpu = new Map<string, number>();
  for (const mode of modes) {
    const s = samples.get(mode.name);
    if (s === undefined || s.length === 0) {
      const why = mode.unavailable !== undefined ? 'unavailable' : failures.has(mode.name) ? 'failed' : 'not run (NFQW_BENCH_MODES)';
      rows.push([mode.name, why, '', '', '', '']);
      continue;
    }
    const p = median(s.map((x) => x.pps));
    pps.set(mode.name, p);
    const delivered = median(s.map((x) => x.delivered / Math.max(1, x.sent)));
    const trips = s.every((x) => x.trips !== undefined) ? median(s.map((x) => x.trips!)).toFixed(2) : 'n/a';
    const cached = s.every((x) => x.cachedShare !== undefined) ? pct(median(s.map((x) => x.cachedShare!))) : '';
    // Near-complete delivery means the sender, not the queue program, set the pace: the rate is a lower bound.
    const cpuUs = s.every((x) => x.cpuUs !== undefined) ? median(s.map((x) => x.cpuUs!)) : undefined;
    if (cpuUs !== undefined) cpu.set(mode.name, cpuUs);
    rows.push([mode.name, fmt(p), `${pct(delivered)}${delivered >= 0.99 ? ' (sender-bound)' : ''}`, trips, cached, cpuUs === undefined ? '' : cpuUs.toFixed(2)]);
  }
  table(rows);
  const present = new Set(modes.map((m) => m.name));
  const lines: [string, string, string][] = [
    ['nfqwall / C loop', names.nfqwall, names.c],
    ['nfqwall --no-flow-cache / C loop', names.noCache, names.c],
    ['nfqwall / npm nfqueue', names.nfqwall, NFQUEUE_NAME],
    ['nfqwall / npm nfqueue, its default buffer', names.nfqwall, NFQUEUE_DEFAULT_NAME],
    // The floor against the binding: what one queue trip per packet allows against it in this run.
    ['C loop / npm nfqueue', names.c, NFQUEUE_NAME],
    ['flow cache on / off (nfqwall / --no-flow-cache)', names.nfqwall, names.noCache],
    ['rule matcher on / off (nfqwall / --no-matcher)', names.nfqwall, nfqwallName({ matcher: false })],
    ['late queue on / off (nfqwall / --late-queue off)', names.nfqwall, nfqwallName({ late: false })],
    ['nfqwall 2 queues / 1 queue', nfqwallName({ queues: 2 }), names.nfqwall],
    ['  with --queue-cpu-fanout', nfqwallName({ queues: 2, cpuFanout: true }), names.nfqwall],
  ];
  const width = Math.max(...lines.map((l) => l[0].length)) + 1;
  // Each round's CPU per packet; none when a round has no figure (no /proc/stat line), rather than a ratio of 0.
  const cpuRoundsOf = (name: string): number[] | undefined => {
    const us = samples.get(name)?.map((x) => x.cpuUs);
    return us !== undefined && us.every((u): u is number => u !== undefined) ? us : undefined;
  };
  for (const [label, a, b] of lines) {
    if (present.has(a) && present.has(b)) {
      const rounds = roundSpread(samples.get(a)?.map((x) => x.pps), samples.get(b)?.map((x) => x.pps));
      const cpuRounds = roundSpread(cpuRoundsOf(a), cpuRoundsOf(b));
      process.stdout.write(
        `${`${label}:`.padEnd(width)} ${ratio(pps.get(a), pps.get(b))} packets/s${rounds}, ${ratio(cpu.get(a), cpu.get(b))} CPU per packet${cpuRounds}\n`,
      );
    }
  }
  for (const [name, why] of failures) process.stdout.write(`${name} failed: ${why.split('\n')[0]}\n`);
  for (const m of modes) if (m.unavailable !== undefined) process.stdout.write(`${m.name} unavailable: ${m.unavailable.split('\n')[0]}\n`);
}

const gbits = (s: BulkSample): number => (s.bytes * 8) / s.seconds / 1e9;

function printBulk(modes: Mode[], bulked: Sampled<BulkSample>, names: { kernel: string; c: string; npm: string; nfqwall: string }): void {
  process.stdout.write(
    `\nTCP bulk transfer, one connection client -> fw -> server (TSO and GSO on, veth's default; the sender and the sink on CPU ${SENDER_CPU}, ` +
      `the queue program on CPU ${QUEUE_CPU}), ${SECONDS} s per run after a 0.3 s warm-up connection, ${ROUNDS} round(s); medians. ` +
      `segments: wire segments, the bytes over the connection's MSS (what would cross a link without offloads); trips/segment: ` +
      `packets the queue program received (data and ACKs, warm-up included) / those segments (warm-up included). The C loop and nfqwall bind with NFQA_CFG_F_GSO and ` +
      `get each offloaded packet whole; the npm binding does not, so the kernel segments those packets before queueing them\n`,
  );
  const rate = new Map<string, number>();
  const rows = [['mode', 'Gbit/s', 'segments/s', 'trips/segment']];
  for (const mode of modes) {
    const ss = bulked.samples.get(mode.name);
    const failed = bulked.failures.get(mode.name);
    if (ss === undefined || ss.length === 0) {
      rows.push([mode.name, failed === undefined ? (mode.unavailable === undefined ? 'not run (NFQW_BENCH_MODES)' : `unavailable: ${mode.unavailable}`) : `failed: ${failed.split('\n')[0]!}`, '', '']);
      continue;
    }
    const g = median(ss.map(gbits));
    rate.set(mode.name, g);
    const trips = mode.name === names.kernel ? 0 : median(ss.map((s) => s.trips ?? NaN));
    rows.push([mode.name, g.toFixed(2), fmt(median(ss.map((s) => s.segments / s.seconds))), Number.isNaN(trips) ? '' : trips.toFixed(3)]);
  }
  table(rows);
  const line = (label: string, a: string, b: string): void => {
    process.stdout.write(`${label.padEnd(30)}${ratio(rate.get(a), rate.get(b))}${roundSpread(bulked.samples.get(a)?.map(gbits), bulked.samples.get(b)?.map(gbits))}\n`);
  };
  line('nfqwall / C loop:', names.nfqwall, names.c);
  line('nfqwall / npm nfqueue:', names.nfqwall, names.npm);
  line('C loop / npm nfqueue:', names.c, names.npm);
  line('nfqwall / kernel (no queue):', names.nfqwall, names.kernel);
}

function printLatency(
  lat: Map<string, Latency>,
  { samples: rounds, failures }: Sampled<Latency>,
  names: { kernel: string; c: string; nfqwall: string; noCache: string },
): void {
  process.stdout.write(
    `\nUDP ping-pong client -> fw -> server echo and back, one datagram in flight (one flow, ESTABLISHED after its first ` +
      `exchange), ${fmt(PINGS)} round trips after 500 unmeasured per round, ${ROUNDS} round(s) interleaved as the floods'; ` +
      `microseconds, each percentile the median of the rounds', lost summed, max the largest; cached as above\n`,
  );
  const base = lat.get(names.kernel);
  const rows: string[][] = [['mode', 'p50', 'p99', 'p99.9', 'max', 'lost', 'added p50', 'added p99', 'native']];
  for (const name of [names.kernel, names.c, names.nfqwall, names.noCache]) {
    const l = lat.get(name);
    if (l === undefined) {
      rows.push([name, failures.has(name) ? 'failed' : MODES.test(name) ? 'n/a' : 'not run (NFQW_BENCH_MODES)', '', '', '', '', '', '', '']);
      continue;
    }
    const added = (x: number, b: number | undefined): string => (b === undefined ? 'n/a' : (x - b).toFixed(1));
    rows.push([
      name,
      l.p50Us.toFixed(1),
      l.p99Us.toFixed(1),
      l.p999Us.toFixed(1),
      l.maxUs.toFixed(1),
      String(l.lost),
      added(l.p50Us, base?.p50Us),
      added(l.p99Us, base?.p99Us),
      l.cachedShare === undefined ? '' : pct(l.cachedShare),
    ]);
  }
  table(rows);
  const c = lat.get(names.c);
  for (const name of [names.nfqwall, names.noCache]) {
    const n = lat.get(name);
    const spread = (f: (l: Latency) => number): string => roundSpread(rounds.get(name)?.map(f), rounds.get(names.c)?.map(f));
    process.stdout.write(
      `${name} / C loop round trip: p50 ${ratio(n?.p50Us, c?.p50Us)}${spread((l) => l.p50Us)}, p99 ${ratio(n?.p99Us, c?.p99Us)}${spread((l) => l.p99Us)}`,
    );
    if (base !== undefined && n !== undefined && c !== undefined) {
      process.stdout.write(
        `; added latency: p50 ${ratio(n.p50Us - base.p50Us, c.p50Us - base.p50Us)}, p99 ${ratio(n.p99Us - base.p99Us, c.p99Us - base.p99Us)}`,
      );
    }
    process.stdout.write('\n');
  }
  const on = lat.get(names.nfqwall);
  const off = lat.get(names.noCache);
  process.stdout.write(`flow cache on / off round trip: p50 ${ratio(on?.p50Us, off?.p50Us)}, p99 ${ratio(on?.p99Us, off?.p99Us)}\n`);
  for (const [name, why] of failures) process.stdout.write(`latency ${name} failed: ${why.split('\n')[0]}\n`);
}

interface ScaleRow {
  services: number;
  rules: number;
  /** Each mode's connection floods (ROUNDS of them, one mode start), or why they failed. */
  kernel: Sample[] | string;
  nfqwall: Sample[] | string;
  kernelStartS: number;
  nfqwallStartS: number;
}

/**
 * The rule-count curve (issue #6): for each size, a kube-proxy ruleset of that many services held by the kernel
 * itself (iptables-restore in fw, no queue) and by nfqwall, each taking a flood in which every datagram is a new
 * connection to no service, so every one walks (kernel) or looks up (nfqwall) KUBE-SERVICES.
 */
async function scaleRows(lab: Lab, floodBin: string, cli: string | undefined, out: string, control: string): Promise<ScaleRow[]> {
  const rows: ScaleRow[] = [];
  const fw = lab.host('fw');
  // Every round starts from an empty kernel connection table in fw: the kernel's own rounds would otherwise fill it
  // (nf_conntrack_max) with the earlier rounds' unanswered entries, which live 30 s. nfqwall's traffic is untracked.
  const emptyConntrack = async (): Promise<void> => {
    await fw.exec(['conntrack', '-F'], { timeoutMs: 60_000 });
  };
  for (const services of SERVICES) {
    // The nat table's shape at any size (the full generator's NodePorts stop at 2,768 services), as bench/scale.ts
    // and bench/reload.ts use.
    const text = kubeProxyNatRules(services, 3);
    // Not kube-proxy-10000.rules: that is the other parts' ruleset, which this one would replace and delete.
    const file = path.join(out, `kube-proxy-nat-${services}.rules`);
    fs.writeFileSync(file, text);
    const rules = text.split('\n').filter((l) => l.startsWith('-A ')).length;
    const label = `${fmt(services)} services`;
    const row: ScaleRow = { services, rules, kernel: 'not run', nfqwall: 'not run', kernelStartS: NaN, nfqwallStartS: NaN };
    const timed = (mode: Mode, set: (s: number) => void): Mode => ({
      ...mode,
      async start(fw) {
        const t0 = performance.now();
        const r = await mode.start(fw);
        set((performance.now() - t0) / 1000);
        return r;
      },
    });
    const kernel = timed(kernelRulesMode(file, label), (s) => (row.kernelStartS = s));
    const nfqwall = timed(nfqwallMode(cli, file, control, { label, readyMs: 600_000 }), (s) => (row.nfqwallStartS = s));
    for (const [mode, key] of [[kernel, 'kernel'], [nfqwall, 'nfqwall']] as const) {
      try {
        const rounds = await measureRounds(lab, mode, floodBin, 'connections', ROUNDS, emptyConntrack);
        row[key] = rounds;
        process.stderr.write(`bench: scale ${mode.name}: ${rounds.map((s) => fmt(s.pps)).join(', ')} connections/s [${rounds[0]!.note}]\n`);
      } catch (err) {
        row[key] = err instanceof Error ? err.message.split('\n')[0]! : String(err);
        process.stderr.write(`bench: scale ${mode.name} failed: ${row[key] as string}\n`);
      }
    }
    fs.rmSync(file, { force: true });
    rows.push(row);
  }
  return rows;
}

function printScale(rows: ScaleRow[]): void {
  process.stdout.write(
    `\nRule count: kube-proxy nat rulesets (3 endpoints per service), a UDP flood from ${FLOOD_SOURCES.length} addresses in which ` +
      `every ${SIZE}-byte datagram is a new connection (the next of ${fmt(CONNECTION_PORTS)} destination ports) to no service, ` +
      `the nat table's KUBE-SERVICES (bench/parse.ts's generator) walked or looked up for each; ` +
      `${fmt(CONNECTION_FLOOD_MAX)} datagrams or ${SECONDS} s a round, ${ROUNDS} round(s) per size after one start and a warm-up, each from an empty kernel ` +
      `connection table; medians, rounds: the lowest and highest round; the kernel holds the same file itself (iptables-restore in fw, no queue). ` +
      `start: iptables-restore, or nfqwall run until its first status answer\n`,
  );
  const first = rows[0];
  const ppsOf = (s: Sample[] | string): number | undefined => (typeof s === 'string' ? undefined : median(s.map((x) => x.pps)));
  const cell = (s: Sample[] | string): string => (typeof s === 'string' ? 'failed' : fmt(ppsOf(s)!));
  const range = (s: Sample[] | string): string =>
    typeof s === 'string' ? '' : `${fmt(Math.min(...s.map((x) => x.pps)))}–${fmt(Math.max(...s.map((x) => x.pps)))}`;
  const vs = (s: Sample[] | string, base: Sample[] | string | undefined): string => {
    const a = ppsOf(s);
    const b = base === undefined ? undefined : ppsOf(base);
    return a === undefined || b === undefined ? '' : (a / b).toFixed(3);
  };
  const cpuUs = (s: Sample[] | string): string =>
    typeof s === 'string' || s.some((x) => x.cpuUs === undefined) ? '' : median(s.map((x) => x.cpuUs!)).toFixed(1);
  table([
    ['services', 'rules', 'kernel start s', 'kernel conn/s', 'rounds', 'vs first', 'nfqwall start s', 'nfqwall conn/s', 'rounds', 'vs first', 'µs CPU/conn', 'nfqwall / kernel'],
    ...rows.map((r) => [
      fmt(r.services),
      fmt(r.rules),
      r.kernelStartS.toFixed(1),
      cell(r.kernel),
      range(r.kernel),
      vs(r.kernel, first?.kernel),
      r.nfqwallStartS.toFixed(1),
      cell(r.nfqwall),
      range(r.nfqwall),
      vs(r.nfqwall, first?.nfqwall),
      cpuUs(r.nfqwall),
      ratio(ppsOf(r.nfqwall), ppsOf(r.kernel)),
    ]),
  ]);
  for (const r of rows) {
    if (typeof r.kernel === 'string') process.stdout.write(`kernel, ${fmt(r.services)} services: ${r.kernel}\n`);
    if (typeof r.nfqwall === 'string') process.stdout.write(`nfqwall, ${fmt(r.services)} services: ${r.nfqwall}\n`);
  }
}

function printMemory(m: MemoryResult): void {
  process.stdout.write(
    `\nMemory (one process, --expose-gc, RSS after a full collection): kube-proxy ruleset of ${fmt(m.services)} services ` +
      `(${fmt(m.rules)} rules) loaded in the engine and compiled into the native matcher, then ${fmt(m.connections)} connections in a ConnTable\n`,
  );
  table([
    ['stage', 'RSS MiB'],
    ['empty process', m.rssBaseMiB.toFixed(1)],
    [`after the ruleset (${m.loadSeconds} s)`, m.rssRulesetMiB.toFixed(1)],
    [`after ${fmt(m.connections)} connections (${m.connectSeconds} s)`, m.rssConnectionsMiB.toFixed(1)],
  ]);
  const perConn = ((m.rssConnectionsMiB - m.rssEmptyTableMiB) * 1024 * 1024) / Math.max(1, m.connections);
  process.stdout.write(
    `about ${Math.round(perConn)} bytes per connection; goal ${m.goalMiB} MiB: ${m.rssConnectionsMiB <= m.goalMiB ? 'met' : 'NOT met'}\n`,
  );
}

/** Resolves once a spawned udp-pingpong echo says it is bound. */
function echoReady(child: ChildProcess, what = 'udp-pingpong echo'): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what} not ready within 5 s: ${out}`)), 5_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (/^ready$/m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${String(code)}): ${out}`));
    });
  });
}

async function main(): Promise<void> {
  if (!isRoot()) throw new Error('the benchmark builds network namespaces: run it as root');
  // The driver and what it runs (status queries, ip netns exec, the echo servers) go with the traffic: left to the
  // scheduler they ran on the queue program's CPU, and a short flood measured them too.
  execFileSync('taskset', ['-a', '-cp', SENDER_CPU, String(process.pid)], { stdio: 'ignore' });
  const root = packageRoot();
  const out = outDir(root);
  const nfqBin = buildC(root, 'minimal-nfq', ['-lnetfilter_queue', '-lmnl']);
  const floodBin = buildC(root, 'udp-flood', []);
  const pingBin = buildC(root, 'udp-pingpong', []);
  const bulkBin = buildC(root, 'tcp-bulk', []);
  // The issue's scenario by default: nfqwall holds kube-proxy's rules for 10,000 services (the flood's addresses are
  // no service's, so its packets walk KUBE-SERVICES and KUBE-FORWARD as a node's other traffic does).
  let rulesFile = process.env['NFQW_BENCH_RULES'];
  if (rulesFile === undefined || rulesFile === '') {
    rulesFile = path.join(out, 'kube-proxy-10000.rules');
    fs.writeFileSync(rulesFile, kubeProxyRules(10_000, 3));
  } else if (rulesFile === 'accept-all') {
    rulesFile = path.join(out, 'accept-all.rules');
    fs.writeFileSync(rulesFile, ACCEPT_ALL_RULES);
  } else if (!fs.existsSync(rulesFile)) {
    throw new Error(`NFQW_BENCH_RULES=${rulesFile}: no such file`);
  }
  const control = path.join(out, `nfqwall-bench-${process.pid}.sock`);
  let cli: string | undefined;
  try {
    cli = cliPath();
  } catch {
    cli = undefined;
  }

  const kernel = kernelMode();
  const cLoop = cLoopMode(nfqBin);
  const nfqwall = nfqwallMode(cli, rulesFile, control);
  const noCache = nfqwallMode(cli, rulesFile, control, { flowCache: false });
  const tables: FloodTable[] = [];
  const npmInstall = PARTS.has('flood') || PARTS.has('tcp') ? installNfqueue(root) : undefined;
  const npm = npmInstall === undefined ? undefined : nfqueueMode(npmInstall);
  if (npmInstall !== undefined && npm !== undefined && PARTS.has('flood')) {
    tables.push({
      kind: 'established',
      modes: [
        kernel,
        cLoop,
        npm,
        nfqueueMode(npmInstall, true),
        nfqwall,
        nfqwallMode(cli, rulesFile, control, { skip: false }),
        nfqwallMode(cli, rulesFile, control, { late: false }),
        noCache,
        nfqwallMode(cli, rulesFile, control, { queues: 2 }),
        nfqwallMode(cli, rulesFile, control, { queues: 2, cpuFanout: true }),
      ],
    });
  }
  // One-way flows, NEW throughout: each flow's first packets the rule matcher decides, the rest the cache once the
  // flow's entry is confirmed (docs/flow-cache.md).
  if (PARTS.has('new')) {
    const modes = [cLoop, nfqwall, nfqwallMode(cli, rulesFile, control, { late: false }), nfqwallMode(cli, rulesFile, control, { matcher: false }), noCache];
    tables.push({ kind: 'new', modes });
  }
  const seen = new Set<string>();
  for (const m of tables.flatMap((t) => t.modes)) {
    if (m.unavailable !== undefined && !seen.has(m.name)) process.stderr.write(`bench: ${m.name} unavailable: ${m.unavailable}\n`);
    seen.add(m.name);
  }

  const results: Record<string, unknown> = { packets: PACKETS, seconds: SECONDS, rounds: ROUNDS, size: SIZE, pings: PINGS, rules: rulesFile };
  let flooded: Map<FloodKind, Sampled> | undefined;
  const lat = new Map<string, Latency>();
  const latRounds: Sampled<Latency> = { samples: new Map(), failures: new Map() };
  let scaled: ScaleRow[] | undefined;
  const bulkModes = npm === undefined ? [] : [kernel, cLoop, npm, nfqwall];
  const bulked: Sampled<BulkSample> = { samples: new Map(), failures: new Map() };
  if (tables.length > 0 || PARTS.has('tcp') || PARTS.has('latency') || PARTS.has('scale')) {
    const lab = await Lab.create(threeHostSpec());
    try {
      const client = lab.host('client');
      const server = lab.host('server');
      for (const a of FLOOD_SOURCES.slice(1)) await client.exec(['ip', 'addr', 'add', `${a}/24`, 'dev', client.ifname('fw')]);
      // No ICMP port-unreachable storm back through fw: the server drops the flood before any socket lookup. Only
      // the established flood's 1-byte handshakes reach the echo on the flood's port, which answers them.
      await server.exec(['iptables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', String(PORT), '-m', 'length', '!', '--length', String(HANDSHAKE_LENGTH), '-j', 'DROP']);
      await server.exec(['iptables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', `${CONNECTION_PORT}:${CONNECTION_PORT + CONNECTION_PORTS - 1}`, '-j', 'DROP']);
      if (tables.length > 0) {
        const opener = server.spawn(['taskset', '-c', SENDER_CPU, pingBin, 'echo', THREE_HOST.server4, String(PORT)]);
        try {
          await echoReady(opener);
          flooded = await floods(lab, tables, floodBin);
        } finally {
          opener.kill('SIGKILL');
        }
      }
      if (PARTS.has('tcp')) {
        const sink = server.spawn(['taskset', '-c', SENDER_CPU, bulkBin, 'sink', THREE_HOST.server4, String(BULK_PORT)]);
        try {
          await echoReady(sink, 'tcp-bulk sink');
          await interleaved([
            part<BulkSample>({
              label: 'tcp',
              modes: bulkModes,
              measure: (mode) => bulk(lab, mode, bulkBin, SENDER_CPU, SECONDS),
              describe: (s) =>
                `${gbits(s).toFixed(2)} Gbit/s (${fmt(s.bytes)} bytes, ${fmt(s.segments)} segments in ${s.seconds.toFixed(2)} s)` +
                `${s.note === '' ? '' : ` [${s.note}]`}`,
              into: bulked,
            }),
          ]);
        } finally {
          sink.kill('SIGKILL');
        }
      }
      if (PARTS.has('scale')) scaled = await scaleRows(lab, floodBin, cli, out, control);
      if (PARTS.has('latency')) {
        const echo = server.spawn(['taskset', '-c', SENDER_CPU, pingBin, 'echo', THREE_HOST.server4, String(ECHO_PORT)]);
        try {
          await echoReady(echo);
          await interleaved([
            part<Latency>({
              label: 'latency',
              modes: [kernel, cLoop, nfqwall, noCache],
              measure: (mode) => pingPong(lab, mode, pingBin),
              describe: (l) => JSON.stringify(l),
              into: latRounds,
            }),
          ]);
          for (const [name, ls] of latRounds.samples) if (!latRounds.failures.has(name)) lat.set(name, medianLatency(ls));
        } finally {
          echo.kill('SIGKILL');
        }
      }
    } finally {
      await lab.destroy();
      fs.rmSync(control, { force: true });
    }
  }
  process.stdout.write('Figures from a shared two-core machine: absolute values are noisy; compare within one run.\n');
  process.stdout.write(`nfqwall's ruleset: ${rulesFile}\n`);
  for (const t of tables) {
    const f = flooded?.get(t.kind);
    if (f === undefined) continue;
    printFloods(t, f, { c: cLoop.name, nfqwall: nfqwall.name, noCache: noCache.name });
    results[t.kind] = { samples: Object.fromEntries(f.samples), failures: Object.fromEntries(f.failures) };
  }
  if (PARTS.has('tcp')) {
    printBulk(bulkModes, bulked, { kernel: kernel.name, c: cLoop.name, npm: NFQUEUE_NAME, nfqwall: nfqwall.name });
    results['tcp'] = { samples: Object.fromEntries(bulked.samples), failures: Object.fromEntries(bulked.failures) };
  }
  if (PARTS.has('latency')) {
    printLatency(lat, latRounds, { kernel: kernel.name, c: cLoop.name, nfqwall: nfqwall.name, noCache: noCache.name });
    results['latency'] = Object.fromEntries(lat);
    results['latencyRounds'] = Object.fromEntries(latRounds.samples);
    results['latencyFailures'] = Object.fromEntries(latRounds.failures);
  }
  if (scaled !== undefined) {
    printScale(scaled);
    results['scale'] = scaled;
  }
  if (PARTS.has('memory')) {
    try {
      const m = memory();
      printMemory(m);
      results['memory'] = m;
    } catch (err) {
      process.stdout.write(`memory failed: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
  fs.writeFileSync(path.join(out, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
}

// Bounded in time whatever happens; the lab's exit hook deletes its namespaces.
setTimeout(() => {
  process.stderr.write('bench: time cap (15 min) reached\n');
  process.exit(2);
}, 15 * 60_000).unref();
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
