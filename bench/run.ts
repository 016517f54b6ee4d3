// `npm run bench`: a bounded UDP flood client -> fw -> server through the three-host lab, with the queue at fw
// FORWARD taken in turn by nfqwall, a minimal C libnetfilter_queue loop (the floor) and the npm `nfqueue` binding.
// Absolute rates on a shared machine are noise; the ratios measured side by side in one run are the result.
import fs from 'node:fs';
import path from 'node:path';
import { isRoot, Lab, THREE_HOST, threeHostSpec, type Host } from '../test/lab/lab';
import { buildC, installNfqueue, outDir } from './build';
import { cliPath, kernelRules } from '../test/lab/daemon';
import { packageRoot } from '../src/package-root';
import { ACCEPT_ALL_RULES, cLoopMode, kernelMode, nfqueueMode, nfqwallMode, type Mode } from './modes';

const SENDER_CPU = '0';
const PORT = 9000;

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

async function rxPackets(server: Host): Promise<number> {
  const r = await server.exec(['cat', `/sys/class/net/${server.ifname('fw')}/statistics/rx_packets`]);
  return Number(r.stdout.trim());
}

interface Sample {
  sent: number;
  delivered: number;
  seconds: number;
  pps: number;
  note: string;
}

async function flood(client: Host, server: Host, floodBin: string, packets: number, seconds: number): Promise<Omit<Sample, 'note'>> {
  const before = await rxPackets(server);
  const r = await client.exec(
    ['taskset', '-c', SENDER_CPU, floodBin, THREE_HOST.server4, String(PORT), String(packets), String(seconds), String(SIZE)],
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

async function measure(lab: Lab, mode: Mode, floodBin: string): Promise<Sample> {
  const fw = lab.host('fw');
  const client = lab.host('client');
  const server = lab.host('server');
  const running = await mode.start(fw);
  let result: Omit<Sample, 'note'> | undefined;
  let failure: unknown;
  try {
    await flood(client, server, floodBin, Math.min(20_000, PACKETS), 0.5); // warm-up (JIT, caches), not measured
    result = await flood(client, server, floodBin, PACKETS, SECONDS);
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
  if (result === undefined) throw failure instanceof Error ? failure : new Error(String(failure));
  return { ...result, note: note.replace(/\s+/g, ' ') };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

async function main(): Promise<void> {
  if (!isRoot()) throw new Error('the benchmark builds network namespaces: run it as root');
  const root = packageRoot();
  const out = outDir(root);
  const nfqBin = buildC(root, 'minimal-nfq', ['-lnetfilter_queue', '-lmnl']);
  const floodBin = buildC(root, 'udp-flood', []);
  const rulesFile = path.join(out, 'accept-all.rules');
  fs.writeFileSync(rulesFile, ACCEPT_ALL_RULES);
  const control = path.join(out, `nfqwall-bench-${process.pid}.sock`);
  let cli: string | undefined;
  try {
    cli = cliPath();
  } catch {
    cli = undefined;
  }

  const modes: Mode[] = [kernelMode(), cLoopMode(nfqBin), nfqueueMode(installNfqueue(root)), nfqwallMode(cli, rulesFile, control)];
  for (const m of modes) if (m.unavailable !== undefined) process.stderr.write(`bench: ${m.name} unavailable: ${m.unavailable}\n`);

  process.stdout.write(
    `UDP flood ${SIZE}-byte datagrams, ${fmt(PACKETS)} packets or ${SECONDS} s per run, ${ROUNDS} round(s); ` +
      `sender on CPU ${SENDER_CPU}, queue program on CPU 1; median packets/s delivered to the server\n`,
  );
  const lab = await Lab.create(threeHostSpec());
  const samples = new Map<string, Sample[]>();
  const failures = new Map<string, string>();
  try {
    // No ICMP port-unreachable storm back through fw: the server drops the flood before any socket lookup.
    await lab.host('server').exec(['iptables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', String(PORT), '-j', 'DROP']);
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
  } finally {
    await lab.destroy();
    fs.rmSync(control, { force: true });
  }

  const pps = new Map<string, number>();
  const rows: string[][] = [['mode', 'packets/s', 'delivered/sent']];
  for (const mode of modes) {
    const s = samples.get(mode.name);
    if (s === undefined || s.length === 0) {
      rows.push([mode.name, mode.unavailable !== undefined ? 'unavailable' : 'failed', '']);
      continue;
    }
    const p = median(s.map((x) => x.pps));
    pps.set(mode.name, p);
    const ratio = median(s.map((x) => x.delivered / Math.max(1, x.sent)));
    // Near-complete delivery means the sender, not the queue program, set the pace: the rate is a lower bound.
    rows.push([mode.name, fmt(p), `${(ratio * 100).toFixed(1)}%${ratio >= 0.99 ? ' (sender-bound)' : ''}`]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}\n`);

  const nfqwall = pps.get('nfqwall');
  const floor = pps.get(cLoopMode(nfqBin).name);
  const binding = pps.get('npm nfqueue');
  const ratio = (a: number | undefined, b: number | undefined): string => (a !== undefined && b !== undefined && b > 0 ? (a / b).toFixed(3) : 'n/a');
  process.stdout.write(`nfqwall / C loop:      ${ratio(nfqwall, floor)}\n`);
  process.stdout.write(`nfqwall / npm nfqueue: ${ratio(nfqwall, binding)}\n`);
  for (const [name, why] of failures) process.stdout.write(`${name} failed: ${why.split('\n')[0]}\n`);
  for (const m of modes) if (m.unavailable !== undefined) process.stdout.write(`${m.name} unavailable: ${m.unavailable.split('\n')[0]}\n`);

  const results = { packets: PACKETS, seconds: SECONDS, rounds: ROUNDS, size: SIZE, samples: Object.fromEntries(samples), failures: Object.fromEntries(failures) };
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
