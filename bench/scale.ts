// Rule-count benchmark (issue #6): what one engine decision costs with a kube-proxy ruleset of 10 to 100,000
// services, walking every rule (the reference) and with the chain index (src/compile), for a new connection to the
// last service and for a packet aimed at no service; beside it, as root, the kernel's forwarding rate with the same
// KUBE-SERVICES rules walked for every packet, in a lab namespace.
// Run: `npx tsx bench/scale.ts [sizes...]` (default 10 1000 10000 100000). NFQW_SCALE_KERNEL=0 skips the kernel half.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { compileRuleset } from '../src/compile/compile';
import { craftPacket } from '../src/engine/craft';
import type { PacketInput } from '../src/engine/decision';
import { Engine } from '../src/engine/engine';
import { StaticHost } from '../src/engine/host';
import { EmptySets } from '../src/engine/sets';
import { parseRuleset } from '../src/rules/parse';
import { packageRoot } from '../src/package-root';
import { isRoot, Lab, THREE_HOST, threeHostSpec } from '../test/lab/lab';
import { buildC, outDir } from './build';
import { kubeProxyRules } from './parse';

const SIZES = process.argv.slice(2).filter((a) => /^\d+$/.test(a)).map(Number);
const ENDPOINTS = 3;
/**
 * Rounds per measurement, and how long each lasts. The best round is reported: on a shared machine the others
 * measure the neighbours (and the collector's pauses, which depend on the heap size more than on the engine).
 */
const ROUNDS = 9;
const ROUND_MS = 150;
const FLOOD_PORT = 9000;
const FLOOD_SECONDS = 2;

interface EngineRow {
  services: number;
  rules: number;
  parseMs: number;
  compileMs: number;
  /** ns per decide(): [walked last, indexed last, walked none, indexed none] */
  ns: [number, number, number, number];
}

function vipOf(s: number): string {
  return `172.30.${(s >> 8) & 255}.${s & 255}`;
}

function v4(a: string): Uint8Array {
  return Uint8Array.from(a.split('.').map(Number));
}

/** A first packet of a TCP connection at PREROUTING, so the nat chains run for it. */
function synTo(dst: string): PacketInput {
  const src = v4('198.18.0.2');
  const d = v4(dst);
  const t = { src, dst: d, protocol: 6, sport: 40000, dport: 80 };
  return {
    family: 4,
    data: craftPacket({ family: 4, src, dst: d, proto: 6, sport: 40000, dport: 80, tcpFlags: 0x02 }),
    meta: { hook: 'PREROUTING', inIface: 'eth0', mark: 0, pktType: 'unicast' },
    ct: { state: 'NEW', status: 0, mark: 0, direction: 'ORIGINAL', orig: t, reply: t, expiresSeconds: 120, zone: 0 },
  };
}

/** Nanoseconds per decide(): the best of ROUNDS rounds of at least ROUND_MS each, after a warm-up. */
function perDecide(engine: Engine, p: PacketInput, expect: 'dnat' | 'none'): number {
  const d = engine.decide(p);
  const bound = d.ct?.nat !== undefined && d.ct.nat.length > 0;
  if (bound !== (expect === 'dnat')) throw new Error(`decide(${expect}) gave ${JSON.stringify(d.ct)}`);
  for (let k = 0; k < 50; k++) engine.decide(p);
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < ROUND_MS || n < 4) {
      for (let k = 0; k < 4; k++) engine.decide(p);
      n += 4;
      t = performance.now();
    }
    rounds.push(((t - t0) * 1e6) / n);
  }
  return Math.min(...rounds);
}

function engineRow(services: number): EngineRow {
  const text = kubeProxyRules(services, ENDPOINTS);
  const t0 = performance.now();
  const rules = parseRuleset(text, 'kube.rules', { family: 4 });
  const parseMs = performance.now() - t0;
  let count = 0;
  for (const t of rules.tables.values()) for (const c of t.chains.values()) count += c.rules.length;
  const host = new StaticHost();
  const sets = new EmptySets();
  const t1 = performance.now();
  compileRuleset(rules);
  const compileMs = performance.now() - t1;
  const walked = new Engine({ rules4: rules, host, sets, index: false });
  const indexed = new Engine({ rules4: rules, host, sets });
  const last = synTo(vipOf(services - 1));
  const none = synTo('198.18.9.9');
  return {
    services,
    rules: count,
    parseMs,
    compileMs,
    ns: [perDecide(walked, last, 'dnat'), perDecide(indexed, last, 'dnat'), perDecide(walked, none, 'none'), perDecide(indexed, none, 'none')],
  };
}

/** Each size in its own node with room for a 100,000-service ruleset (about 1.1 million rules). */
function engineRowInChild(services: number): EngineRow | string {
  const r = spawnSync(process.execPath, [...process.execArgv, '--max-old-space-size=12288', process.argv[1] ?? '', String(services)], {
    env: { ...process.env, NFQW_SCALE_CHILD: '1' },
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) return `failed: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' ')}`;
  return JSON.parse(r.stdout) as EngineRow;
}

/** The filter-table KUBE-SERVICES of the same shape: one rule per service, walked by every forwarded packet. */
function kernelServicesRules(services: number): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':KUBE-SERVICES - [0:0]'];
  lines.push('-A FORWARD -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
  for (let s = 0; s < services; s++) {
    lines.push(`-A KUBE-SERVICES -m comment --comment "ns${s % 97}/svc${s}:p80 cluster IP" -m tcp -p tcp -d ${vipOf(s)} --dport 80 -j ACCEPT`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

interface KernelRow {
  services: number;
  restoreMs: number;
  pps: number;
  sent: number;
}

async function kernelRows(sizes: number[]): Promise<KernelRow[] | string> {
  if (process.env.NFQW_SCALE_KERNEL === '0') return 'skipped (NFQW_SCALE_KERNEL=0)';
  if (!isRoot()) return 'skipped (needs root for the lab namespaces)';
  const flood = buildC(packageRoot(), 'udp-flood', []);
  const lab = await Lab.create(threeHostSpec());
  const rows: KernelRow[] = [];
  try {
    const fw = lab.host('fw');
    const client = lab.host('client');
    const server = lab.host('server');
    await server.exec(['iptables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', String(FLOOD_PORT), '-j', 'DROP']);
    const rx = async (): Promise<number> =>
      Number((await server.exec(['cat', `/sys/class/net/${server.ifname('fw')}/statistics/rx_packets`])).stdout.trim());
    const file = path.join(outDir(packageRoot()), `scale-${process.pid}.rules`);
    for (const services of sizes) {
      fs.writeFileSync(file, kernelServicesRules(services));
      const t0 = performance.now();
      await fw.exec(['iptables-restore', file], { timeoutMs: 600_000 });
      const restoreMs = performance.now() - t0;
      await client.exec([flood, THREE_HOST.server4, String(FLOOD_PORT), '20000', '0.5', '64'], { timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 300));
      const before = await rx();
      const out = await client.exec([flood, THREE_HOST.server4, String(FLOOD_PORT), '100000000', String(FLOOD_SECONDS), '64'], {
        timeoutMs: FLOOD_SECONDS * 1000 + 30_000,
      });
      await new Promise((r) => setTimeout(r, 300));
      const m = /^sent (\d+) seconds ([\d.]+)$/m.exec(out.stdout);
      if (m === null) throw new Error(`udp-flood printed no result: ${out.stdout} ${out.stderr}`);
      rows.push({ services, restoreMs, pps: ((await rx()) - before) / Number(m[2]), sent: Number(m[1]) });
      process.stderr.write(`scale: kernel ${services} services: ${Math.round(rows[rows.length - 1]?.pps ?? 0)} pps\n`);
      await fw.exec(['iptables', '-F'], { check: false });
      await fw.exec(['iptables', '-X'], { check: false });
    }
    fs.rmSync(file, { force: true });
  } finally {
    await lab.destroy();
  }
  return rows;
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')).join('\n');
}

async function main(): Promise<void> {
  if (process.env.NFQW_SCALE_CHILD === '1') {
    process.stdout.write(JSON.stringify(engineRow(SIZES[0] ?? 10)));
    return;
  }
  const sizes = SIZES.length > 0 ? SIZES : [10, 1000, 10000, 100000];
  const rows: string[][] = [
    ['services', 'rules', 'parse ms', 'index ms', 'last: walk ns', 'last: index ns', 'none: walk ns', 'none: index ns', 'none walk/index'],
  ];
  const engine: EngineRow[] = [];
  for (const s of sizes) {
    const r = engineRowInChild(s);
    if (typeof r === 'string') {
      rows.push([String(s), r]);
      continue;
    }
    engine.push(r);
    process.stderr.write(`scale: engine ${s} services done\n`);
    rows.push([
      fmt(s),
      fmt(r.rules),
      fmt(r.parseMs),
      fmt(r.compileMs),
      ...r.ns.map((n) => fmt(n)),
      `${fmt(r.ns[2] / r.ns[3], 1)}x`,
    ]);
  }
  process.stdout.write(
    `engine decide() per packet (ns, best of ${ROUNDS} rounds of ${ROUND_MS} ms), kube-proxy nat ruleset (${ENDPOINTS} endpoints per service), ` +
      'PREROUTING, first packet of a TCP connection to the last service or to none\n',
  );
  process.stdout.write(`${table(rows)}\n`);
  const first = engine[0];
  const lastRow = engine[engine.length - 1];
  if (first && lastRow && lastRow !== first) {
    process.stdout.write(
      `indexed, ${fmt(lastRow.services)} vs ${fmt(first.services)} services: last service ${fmt(lastRow.ns[1] / first.ns[1], 2)}x, no service ${fmt(lastRow.ns[3] / first.ns[3], 2)}x\n`,
    );
  }
  const kernel = await kernelRows(sizes);
  if (typeof kernel === 'string') {
    process.stdout.write(`kernel: ${kernel}\n`);
    return;
  }
  process.stdout.write(`kernel iptables (${'filter FORWARD -> KUBE-SERVICES'}), UDP flood of ${FLOOD_SECONDS} s through the lab's fw, no rule matches\n`);
  process.stdout.write(
    `${table([
      ['services', 'restore ms', 'packets/s', 'vs 10-service rate'],
      ...kernel.map((k) => [fmt(k.services), fmt(k.restoreMs), fmt(k.pps), `${fmt(k.pps / (kernel[0]?.pps ?? 1), 3)}`]),
    ])}\n`,
  );
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`scale: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
