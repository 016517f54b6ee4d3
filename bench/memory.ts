// Memory benchmark (issue #6): the resident size of one process holding what a busy node's nfqwall holds, a kube-proxy
// ruleset of 10,000 services loaded in the engine (parsed, checked, chain index built) and in the native rule matcher
// (compiled and loaded, as the daemon holds it), and a connection table of
// 1,000,000 connections, made through the ConnTable API with synthetic UDP first packets. Goal: under 512 MiB.
// Run: `node --expose-gc dist/bench/memory.js [services] [connections]`; prints one JSON line (npm run bench runs it).
// No root needed: nothing binds a queue.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { kubeProxyRules } from '../scripts/gen-kube-proxy';
import { loadRulesets } from '../src/daemon/daemon';
import { craftPacket } from '../src/engine/craft';
import { Engine } from '../src/engine/engine';
import { StaticHost } from '../src/engine/host';
import { EmptySets } from '../src/engine/sets';
import { addon } from '../src/native';
import { compileProgram } from '../src/compile/program';

export interface MemoryResult {
  services: number;
  rules: number;
  connections: number;
  /** Resident set sizes in MiB, after a full collection when --expose-gc is given. */
  rssBaseMiB: number;
  rssRulesetMiB: number;
  /** After the table is created, before any connection: what it allocates up front for maxEntries. */
  rssEmptyTableMiB: number;
  rssConnectionsMiB: number;
  heapRulesetMiB: number;
  loadSeconds: number;
  connectSeconds: number;
  goalMiB: number;
}

const GOAL_MIB = 512;
const MIB = 1024 * 1024;

function rssMiB(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().rss / MIB;
}

function countRules(rs: { tables: Map<string, { chains: Map<string, { rules: readonly unknown[] }> }> }): number {
  let n = 0;
  for (const t of rs.tables.values()) for (const c of t.chains.values()) n += c.rules.length;
  return n;
}

export function measureMemory(services: number, connections: number): MemoryResult {
  const base = rssMiB();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-mem-'));
  let rules = 0;
  const t0 = performance.now();
  let engine: Engine;
  // As the daemon holds a program: its words in the block the matcher runs (no copy), and its counter list.
  const matcher = new addon.Matcher();
  let programCounters: unknown[] = [];
  try {
    const file = path.join(dir, 'kube.rules');
    fs.writeFileSync(file, kubeProxyRules(services, 3), { mode: 0o600 });
    // As the daemon loads it: parse, enforceability check, then the engine with its chain index.
    const loaded = loadRulesets({ rules4: file });
    if (loaded.rules4 === undefined) throw new Error('no ruleset loaded');
    rules = countRules(loaded.rules4);
    engine = new Engine({ rules4: loaded.rules4, host: new StaticHost({ local: ['198.18.255.1'] }), sets: new EmptySets() });
    const program = compileProgram(loaded.rules4, 4, undefined, (n) => matcher.programWords(n));
    matcher.load(4, program.words, 1);
    programCounters = program.counters;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // One decision, so whatever the engine builds on first use is built.
  const src = Uint8Array.of(10, 0, 0, 1);
  const dst = Uint8Array.of(198, 18, 0, 2);
  const t = { src, dst, protocol: 6, sport: 40000, dport: 80 };
  engine.decide({
    family: 4,
    data: craftPacket({ family: 4, src, dst, proto: 6, sport: 40000, dport: 80, tcpFlags: 0x02 }),
    meta: { hook: 'PREROUTING', inIface: 'eth0', mark: 0, pktType: 'unicast' },
    ct: { state: 'NEW', status: 0, mark: 0, direction: 'ORIGINAL', orig: t, reply: t, expiresSeconds: 120, zone: 0 },
  });
  const loadSeconds = (performance.now() - t0) / 1000;
  const heapRuleset = process.memoryUsage().heapUsed / MIB;
  const afterRules = rssMiB();

  // The clock stands still, so no connection expires while the table fills.
  const table = new addon.ConnTable({ maxEntries: Math.max(connections, 1 << 20), manualClock: true, seed: 1 });
  const emptyTable = rssMiB();
  const t1 = performance.now();
  // One UDP datagram per connection from 10.x.y.z:port to a server, each confirmed (accepted at its last hook).
  const packet = craftPacket({ family: 4, src, dst, proto: 17, sport: 1024, dport: 53, udpNoChecksum: true, payload: new Uint8Array(8) });
  for (let i = 0; i < connections; i++) {
    const host = i >>> 6;
    packet[13] = (host >>> 16) & 255;
    packet[14] = (host >>> 8) & 255;
    packet[15] = host & 255;
    const port = 1024 + (i & 63);
    packet[20] = port >>> 8;
    packet[21] = port & 255;
    const c = table.classify(packet, 4, 0);
    if (!table.commit(c, { accept: true, final: true })) throw new Error(`connection ${i} was not committed`);
  }
  const connectSeconds = (performance.now() - t1) / 1000;
  const entries = table.stats().entries;
  if (entries !== connections) throw new Error(`the table holds ${entries} connections, not ${connections}`);
  const afterConns = rssMiB();
  // Keeps everything alive until measured.
  if (engine.rules(4) === undefined || table.stats().entries === 0 || programCounters.length === 0 || matcher.stats().decided < 0) throw new Error('unreachable');
  const round = (x: number): number => Math.round(x * 10) / 10;
  return {
    services,
    rules,
    connections,
    rssBaseMiB: round(base),
    rssRulesetMiB: round(afterRules),
    rssEmptyTableMiB: round(emptyTable),
    rssConnectionsMiB: round(afterConns),
    heapRulesetMiB: round(heapRuleset),
    loadSeconds: round(loadSeconds),
    connectSeconds: round(connectSeconds),
    goalMiB: GOAL_MIB,
  };
}

if (require.main === module) {
  const [services = '10000', connections = '1000000'] = process.argv.slice(2);
  process.stdout.write(`${JSON.stringify(measureMemory(Number(services), Number(connections)))}\n`);
}
