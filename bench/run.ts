// `npm run bench`: a bounded UDP flood client -> fw -> server through the three-host lab, with the queue at fw
// FORWARD taken in turn by nfqwall (one queue, two queues), a minimal C libnetfilter_queue loop (the floor) and the
// npm `nfqueue` binding, with the queue trips each made per delivered packet; then UDP ping-pong latency through fw
// (no queue, C loop, nfqwall) and the memory of a 10,000-service ruleset plus 1,000,000 connections.
// Absolute figures on a shared machine are noise; the ratios measured side by side in one run are the result.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { isRoot, Lab, THREE_HOST, threeHostSpec, type Host } from '../test/lab/lab';
import { buildC, installNfqueue, outDir } from './build';
import { cliPath, kernelRules } from '../test/lab/daemon';
import { packageRoot } from '../src/package-root';
import { ACCEPT_ALL_RULES, cLoopMode, kernelMode, nfqueueMode, nfqwallMode, nfqwallName, queuedPackets, type Mode } from './modes';
import type { MemoryResult } from './memory';

const SENDER_CPU = '0';
const PORT = 9000;
const ECHO_PORT = 9100;
/**
 * The flood comes from this many addresses of the client, one burst each in turn: several address pairs, so the
 * kernel's --queue-balance hash has flows to spread over two queues (one pair always lands on one queue).
 */
const FLOOD_SOURCES = Array.from({ length: 8 }, (_, i) => `198.18.0.${2 + i}`);

function envNumber(name: string, fallback: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || n > max) throw new Error(`${name}=${raw}: expected a number in (0, ${max}]`);
  return n;
}

const PACKETS = envNumber('NFQW_BENCH_PACKETS', 1_000_000, 10_000_000);
const SECONDS = envNumber('NFQW_BENCH_SECONDS', 2, 30);
const ROUNDS = Math.floor(envNumber('NFQW_BENCH_ROUNDS', 3, 10));
const SIZE = Math.floor(envNumber('NFQW_BENCH_SIZE', 64, 1400));
const PINGS = Math.floor(envNumber('NFQW_BENCH_PINGS', 5000, 1_000_000));
const PARTS = new Set((process.env['NFQW_BENCH_ONLY'] ?? 'flood,latency,memory').split(',').map((p) => p.trim()));
for (const p of PARTS) if (!['flood', 'latency', 'memory'].includes(p)) throw new Error(`NFQW_BENCH_ONLY: unknown part ${p}`);

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
  note: string;
}

async function flood(client: Host, server: Host, floodBin: string, packets: number, seconds: number): Promise<Omit<Sample, 'note' | 'trips'>> {
  const before = await rxPackets(server);
  const r = await client.exec(
    ['taskset', '-c', SENDER_CPU, floodBin, THREE_HOST.server4, String(PORT), String(packets), String(seconds), String(SIZE), FLOOD_SOURCES.join(',')],
    { timeoutMs: seconds * 1000 + 15_000 },
  );
  const m = /^sent (\d+) seconds ([\d.]+)$/m.exec(r.stdout);
  if (m === null) throw new Error(`udp-flood printed no result: ${r.stdout} ${r.stderr}`);
  // Let what is still queued drain before reading the counter.
  await new Promise((res) => setTimeout(res, 300));
  const delivered = (await rxPackets(server)) - before;
  const elapsed = Number(m[2]);
  return { sent: Number(m[1]), delivered, seconds: elapsed, pps: delivered / elapsed };
}

/** Runs `work` while `mode` holds the queue; then checks fw is clean. Returns what work returned and the mode's note. */
async function withMode<T>(lab: Lab, mode: Mode, work: () => Promise<T>): Promise<{ result: T; note: string }> {
  const fw = lab.host('fw');
  const running = await mode.start(fw);
  let result: T | undefined;
  let failure: unknown;
  let ok = false;
  try {
    result = await work();
    ok = true;
  } catch (err) {
    failure = err;
  }
  const note = await running.stop();
  // A mode that leaves queue rules behind would skew every later mode: clean fw and fail this one.
  const left = (await kernelRules(fw)).split('\n').filter((l) => /NFQUEUE|NFQWALL/.test(l));
  if (left.length > 0) {
    for (const tool of ['iptables', 'ip6tables']) {
      for (const table of ['raw', 'mangle', 'nat', 'filter']) {
        await fw.exec([tool, '-t', table, '-F'], { check: false });
        await fw.exec([tool, '-t', table, '-X'], { check: false });
      }
    }
    throw new Error(`${mode.name} left queue rules in fw after it stopped:\n${left.join('\n')}`);
  }
  if (!ok) throw failure instanceof Error ? failure : new Error(String(failure));
  return { result: result as T, note: note.replace(/\s+/g, ' ') };
}

async function measure(lab: Lab, mode: Mode, floodBin: string): Promise<Sample> {
  const client = lab.host('client');
  const server = lab.host('server');
  const { result, note } = await withMode(lab, mode, async () => {
    const warm = await flood(client, server, floodBin, Math.min(20_000, PACKETS), 0.5); // warm-up (JIT, caches), not measured
    return { warm, run: await flood(client, server, floodBin, PACKETS, SECONDS) };
  });
  const queued = mode.name === kernelMode().name ? 0 : queuedPackets(note);
  const delivered = result.warm.delivered + result.run.delivered;
  return { ...result.run, trips: queued === undefined ? undefined : queued / Math.max(1, delivered), note };
}

interface Latency {
  count: number;
  lost: number;
  minUs: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
}

/** Round trips client -> fw -> server echo -> fw -> client, one datagram in flight, while `mode` holds the queue. */
async function pingPong(lab: Lab, mode: Mode, pingBin: string): Promise<Latency> {
  const client = lab.host('client');
  const { result } = await withMode(lab, mode, async () => {
    const r = await client.exec(['taskset', '-c', SENDER_CPU, pingBin, 'ping', THREE_HOST.server4, String(ECHO_PORT), String(PINGS), '500'], {
      timeoutMs: PINGS * 250 + 30_000,
      check: false,
    });
    const m = /^count (\d+) lost (\d+) min_us ([\d.]+) p50_us ([\d.]+) p99_us ([\d.]+) p999_us ([\d.]+) max_us ([\d.]+)$/m.exec(r.stdout);
    if (m === null) throw new Error(`udp-pingpong printed no result: ${r.stdout} ${r.stderr}`);
    const n = m.slice(1).map(Number);
    return { count: n[0]!, lost: n[1]!, minUs: n[2]!, p50Us: n[3]!, p99Us: n[4]!, p999Us: n[5]!, maxUs: n[6]! };
  });
  return result;
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

async function floods(lab: Lab, modes: Mode[], floodBin: string): Promise<{ samples: Map<string, Sample[]>; failures: Map<string, string> }> {
  const samples = new Map<string, Sample[]>();
  const failures = new Map<string, string>();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of modes) {
      if (mode.unavailable !== undefined || failures.has(mode.name)) continue;
      try {
        const s = await measure(lab, mode, floodBin);
        samples.set(mode.name, [...(samples.get(mode.name) ?? []), s]);
        process.stderr.write(
          `bench: round ${round} ${mode.name}: ${fmt(s.pps)} pps (sent ${fmt(s.sent)}, delivered ${fmt(s.delivered)} in ${s.seconds.toFixed(2)} s)` +
            `${s.note === '' ? '' : ` [${s.note}]`}\n`,
        );
      } catch (err) {
        failures.set(mode.name, err instanceof Error ? err.message : String(err));
        process.stderr.write(`bench: ${mode.name} failed: ${failures.get(mode.name)}\n`);
      }
    }
  }
  return { samples, failures };
}

function printFloods(modes: Mode[], samples: Map<string, Sample[]>, failures: Map<string, string>, cName: string): void {
  process.stdout.write(
    `\nUDP flood ${SIZE}-byte datagrams from ${FLOOD_SOURCES.length} client addresses, ${fmt(PACKETS)} packets or ${SECONDS} s per run, ` +
      `${ROUNDS} round(s); sender on CPU ${SENDER_CPU}, queue program on CPU 1; medians. trips/packet: packets the queue ` +
      `program received / packets delivered to the server\n`,
  );
  const pps = new Map<string, number>();
  const rows: string[][] = [['mode', 'packets/s', 'delivered/sent', 'trips/packet']];
  for (const mode of modes) {
    const s = samples.get(mode.name);
    if (s === undefined || s.length === 0) {
      rows.push([mode.name, mode.unavailable !== undefined ? 'unavailable' : 'failed', '', '']);
      continue;
    }
    const p = median(s.map((x) => x.pps));
    pps.set(mode.name, p);
    const delivered = median(s.map((x) => x.delivered / Math.max(1, x.sent)));
    const trips = s.every((x) => x.trips !== undefined) ? median(s.map((x) => x.trips!)).toFixed(2) : 'n/a';
    // Near-complete delivery means the sender, not the queue program, set the pace: the rate is a lower bound.
    rows.push([mode.name, fmt(p), `${(delivered * 100).toFixed(1)}%${delivered >= 0.99 ? ' (sender-bound)' : ''}`, trips]);
  }
  table(rows);
  const nfqwall = pps.get('nfqwall');
  process.stdout.write(`nfqwall / C loop:           ${ratio(nfqwall, pps.get(cName))}\n`);
  process.stdout.write(`nfqwall / npm nfqueue:      ${ratio(nfqwall, pps.get('npm nfqueue'))}\n`);
  process.stdout.write(`nfqwall 2 queues / 1 queue: ${ratio(pps.get(nfqwallName({ queues: 2 })), nfqwall)}\n`);
  process.stdout.write(`  with --queue-cpu-fanout:  ${ratio(pps.get(nfqwallName({ queues: 2, cpuFanout: true })), nfqwall)}\n`);
  for (const [name, why] of failures) process.stdout.write(`${name} failed: ${why.split('\n')[0]}\n`);
  for (const m of modes) if (m.unavailable !== undefined) process.stdout.write(`${m.name} unavailable: ${m.unavailable.split('\n')[0]}\n`);
}

function printLatency(lat: Map<string, Latency>, failures: Map<string, string>, names: { kernel: string; c: string; nfqwall: string }): void {
  process.stdout.write(`\nUDP ping-pong client -> fw -> server echo and back, one datagram in flight, ${fmt(PINGS)} round trips after 500 unmeasured; microseconds\n`);
  const base = lat.get(names.kernel);
  const rows: string[][] = [['mode', 'p50', 'p99', 'p99.9', 'max', 'lost', 'added p50', 'added p99']];
  for (const name of [names.kernel, names.c, names.nfqwall]) {
    const l = lat.get(name);
    if (l === undefined) {
      rows.push([name, failures.has(name) ? 'failed' : 'n/a', '', '', '', '', '', '']);
      continue;
    }
    const added = (x: number, b: number | undefined): string => (b === undefined ? 'n/a' : (x - b).toFixed(1));
    rows.push([name, l.p50Us.toFixed(1), l.p99Us.toFixed(1), l.p999Us.toFixed(1), l.maxUs.toFixed(1), String(l.lost), added(l.p50Us, base?.p50Us), added(l.p99Us, base?.p99Us)]);
  }
  table(rows);
  const n = lat.get(names.nfqwall);
  const c = lat.get(names.c);
  process.stdout.write(`nfqwall / C loop round trip: p50 ${ratio(n?.p50Us, c?.p50Us)}, p99 ${ratio(n?.p99Us, c?.p99Us)}\n`);
  if (base !== undefined && n !== undefined && c !== undefined) {
    process.stdout.write(
      `nfqwall / C loop added latency: p50 ${ratio(n.p50Us - base.p50Us, c.p50Us - base.p50Us)}, p99 ${ratio(n.p99Us - base.p99Us, c.p99Us - base.p99Us)}\n`,
    );
  }
  for (const [name, why] of failures) process.stdout.write(`latency ${name} failed: ${why.split('\n')[0]}\n`);
}

function printMemory(m: MemoryResult): void {
  process.stdout.write(
    `\nMemory (one process, --expose-gc, RSS after a full collection): kube-proxy ruleset of ${fmt(m.services)} services ` +
      `(${fmt(m.rules)} rules) loaded in the engine, then ${fmt(m.connections)} connections in a ConnTable\n`,
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

async function main(): Promise<void> {
  if (!isRoot()) throw new Error('the benchmark builds network namespaces: run it as root');
  const root = packageRoot();
  const out = outDir(root);
  const nfqBin = buildC(root, 'minimal-nfq', ['-lnetfilter_queue', '-lmnl']);
  const floodBin = buildC(root, 'udp-flood', []);
  const pingBin = buildC(root, 'udp-pingpong', []);
  const rulesFile = path.join(out, 'accept-all.rules');
  fs.writeFileSync(rulesFile, ACCEPT_ALL_RULES);
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
  const modes: Mode[] = PARTS.has('flood')
    ? [
        kernel,
        cLoop,
        nfqueueMode(installNfqueue(root)),
        nfqwall,
        nfqwallMode(cli, rulesFile, control, { queues: 2 }),
        nfqwallMode(cli, rulesFile, control, { queues: 2, cpuFanout: true }),
      ]
    : [];
  for (const m of modes) if (m.unavailable !== undefined) process.stderr.write(`bench: ${m.name} unavailable: ${m.unavailable}\n`);

  const results: Record<string, unknown> = { packets: PACKETS, seconds: SECONDS, rounds: ROUNDS, size: SIZE, pings: PINGS };
  let flooded: { samples: Map<string, Sample[]>; failures: Map<string, string> } | undefined;
  const lat = new Map<string, Latency>();
  const latFailures = new Map<string, string>();
  if (PARTS.has('flood') || PARTS.has('latency')) {
    const lab = await Lab.create(threeHostSpec());
    try {
      const client = lab.host('client');
      for (const a of FLOOD_SOURCES.slice(1)) await client.exec(['ip', 'addr', 'add', `${a}/24`, 'dev', client.ifname('fw')]);
      // No ICMP port-unreachable storm back through fw: the server drops the flood before any socket lookup.
      await lab.host('server').exec(['iptables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', String(PORT), '-j', 'DROP']);
      if (PARTS.has('flood')) flooded = await floods(lab, modes, floodBin);
      if (PARTS.has('latency')) {
        const echo = lab.host('server').spawn(['taskset', '-c', SENDER_CPU, pingBin, 'echo', THREE_HOST.server4, String(ECHO_PORT)]);
        try {
          for (const mode of [kernel, cLoop, nfqwall]) {
            if (mode.unavailable !== undefined) continue;
            try {
              const l = await pingPong(lab, mode, pingBin);
              lat.set(mode.name, l);
              process.stderr.write(`bench: latency ${mode.name}: ${JSON.stringify(l)}\n`);
            } catch (err) {
              latFailures.set(mode.name, err instanceof Error ? err.message : String(err));
            }
          }
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
  if (flooded !== undefined) {
    printFloods(modes, flooded.samples, flooded.failures, cLoop.name);
    results['samples'] = Object.fromEntries(flooded.samples);
    results['failures'] = Object.fromEntries(flooded.failures);
  }
  if (PARTS.has('latency')) {
    printLatency(lat, latFailures, { kernel: kernel.name, c: cLoop.name, nfqwall: nfqwall.name });
    results['latency'] = Object.fromEntries(lat);
    results['latencyFailures'] = Object.fromEntries(latFailures);
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
