// Drives the built nfqwall CLI (dist/src/cli/main.js) inside a lab host: start `run`, wait for `status`, read stats.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Host } from './lab';
import { packageRoot } from '../paths';
import { controlRequest } from '../../src/daemon/control';
import type { FlowCacheStats } from '../../src/native';

export { packageRoot };

/** dist/src/cli/main.js, or the script named by NFQW_LAB_CLI (to try a CLI entry point before the whole tree builds). */
export function cliPath(): string {
  const main = process.env['NFQW_LAB_CLI'] ?? path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: build first (npx tsc -p tsconfig.json)`);
  return main;
}

export interface QueueStatsJson {
  queue: number;
  received: number;
  accepted: number;
  dropped: number;
  kernelIdSequence: number;
  kernelQueueTotal: number;
  [key: string]: unknown;
}
export interface StatusJson {
  queues: QueueStatsJson[];
  [key: string]: unknown;
}

export interface DaemonOptions {
  /** Rule files (--rules, --rules6); optional when `config` names them. */
  rules?: string;
  rules6?: string;
  /** A configuration file (--config): queue_maxlen, hooks, metrics, conntrack_max and the rest. */
  config?: string;
  /**
   * Runs nfqwall under a wrapper: receives the `nfqwall run` argv and returns the command to spawn (it must exec
   * nfqwall in the end, so the child's pid stays nfqwall's).
   */
  wrap?: (argv: string[]) => string[];
  /** `ipset save` files for -m set (--ipset, repeatable). */
  ipset?: string[];
  queue?: number;
  failOpen?: boolean;
}

/** A scratch directory for rule files and the control socket; removed by `cleanup()`. */
export function scratchDir(): { dir: string; write(name: string, text: string): string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `nfqw-${process.pid}-`));
  return {
    dir,
    write(name: string, text: string): string {
      const file = path.join(dir, name);
      fs.writeFileSync(file, text);
      return file;
    },
    cleanup(): void {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// argv: port. Prints the body of http://127.0.0.1:PORT/metrics, fetched inside the host it runs in.
const SCRAPE = `
require('node:http').get({ host: '127.0.0.1', port: Number(process.argv[1]), path: '/metrics' }, (res) => {
  let b = ''; res.setEncoding('utf8'); res.on('data', (d) => (b += d)); res.on('end', () => process.stdout.write(b));
}).on('error', (e) => { process.stderr.write(e.message); process.exit(1); });
`;

export class Daemon {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly host: Host,
    readonly control: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Starts `nfqwall run` in `host` and resolves once it answers `status` on its control socket. */
  static async start(host: Host, control: string, opts: DaemonOptions, readyMs = 20_000): Promise<Daemon> {
    const argv = [process.execPath, cliPath(), 'run', '--control', control];
    if (opts.config !== undefined) argv.push('--config', opts.config);
    if (opts.rules !== undefined) argv.push('--rules', opts.rules);
    if (opts.rules6 !== undefined) argv.push('--rules6', opts.rules6);
    for (const f of opts.ipset ?? []) argv.push('--ipset', f);
    if (opts.queue !== undefined) argv.push('--queue', String(opts.queue));
    if (opts.failOpen === true) argv.push('--fail-open');
    const d = new Daemon(host, control, host.spawn(opts.wrap ? opts.wrap(argv) : argv));
    await d.waitReady(readyMs);
    return d;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  // Asks over the control socket itself: `nfqwall status` would start a Node process (some 0.6 s) for each look.
  private async waitReady(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    let last = '';
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`nfqwall run exited (${this.child.exitCode ?? this.child.signalCode}) before ready:\n${this.output}`);
      try {
        await controlRequest(this.control, { cmd: 'status' }, 5_000);
        return;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      await sleep(25);
    }
    throw new Error(`nfqwall status did not answer within ${ms} ms (last: ${last}); daemon output:\n${this.output}`);
  }

  async status(): Promise<StatusJson> {
    const r = await this.host.exec([process.execPath, cliPath(), 'status', '--control', this.control], { timeoutMs: 10_000 });
    try {
      return JSON.parse(r.stdout) as StatusJson;
    } catch {
      throw new Error(`nfqwall status printed no JSON:\n${r.stdout}`);
    }
  }

  /** The daemon's /metrics (`--metrics 127.0.0.1:PORT`), fetched inside its host. */
  async metrics(port: number): Promise<string> {
    return (await this.host.exec([process.execPath, '-e', SCRAPE, String(port)], { timeoutMs: 10_000 })).stdout;
  }

  /** The flow cache's counters from `status` (docs/flow-cache.md); an error when the daemon runs without the cache. */
  async flowCacheStats(): Promise<FlowCacheStats> {
    const s = await this.status();
    if (s['flowCache'] === undefined) throw new Error(`status has no flowCache: ${JSON.stringify(s)}`);
    return s['flowCache'] as FlowCacheStats;
  }

  /** A reload over the control socket: the answer, `error` holding the failure's lines. */
  async reload(ms = 120_000): Promise<{ ok: boolean; error?: string }> {
    return (await controlRequest(this.control, { cmd: 'reload' }, ms)) as { ok: boolean; error?: string };
  }

  async queueStats(queue: number): Promise<QueueStatsJson> {
    const s = await this.status();
    const q = s.queues.find((x) => x.queue === queue);
    if (q === undefined) throw new Error(`status has no queue ${queue}: ${JSON.stringify(s)}`);
    return q;
  }

  /**
   * Resolves once every packet the kernel queued has its verdict and none waits in the kernel queue, seen twice in a
   * row (a verdict can send the packet on to the next queued hook). The kernel decides a packet before the sender's
   * call returns; nfqwall decides it a little later, and a test that sends the next packet of a flow meanwhile
   * compares a race, not the rules. Throws when the queue does not settle within `ms`.
   *
   * The two looks are the kernel's own count, read through the daemon's /proc (its namespace's queues) in some
   * microseconds; nfqwall's counters (a status request, some milliseconds) then confirm it once. The differential
   * tests wait so after every packet.
   */
  async settled(ms = 2_000): Promise<QueueStatsJson[]> {
    const deadline = Date.now() + ms;
    let quiet = 0;
    let last = '';
    while (Date.now() < deadline) {
      const waiting = this.kernelWaiting();
      last = `${waiting} waiting in the kernel queue`;
      quiet = waiting === 0 ? quiet + 1 : 0;
      if (quiet < 2) {
        await sleep(1);
        continue;
      }
      const res = await controlRequest(this.control, { cmd: 'status' });
      const queues = ((res as { queues?: QueueStatsJson[] }).queues ?? []);
      if (queues.every((q) => q.received === q.accepted + q.dropped && q.kernelQueueTotal === 0)) return queues;
      last = JSON.stringify(queues.map((q) => ({ received: q.received, accepted: q.accepted, dropped: q.dropped, waiting: q.kernelQueueTotal })));
      quiet = 0;
      await sleep(1);
    }
    throw new Error(`nfqwall's queue did not settle within ${ms} ms: ${last}`);
  }

  /** Packets held in the kernel's queues of the daemon's namespace: the sum of queue_total over its lines. */
  private kernelWaiting(): number {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${this.child.pid}/net/netfilter/nfnetlink_queue`, 'utf8');
    } catch (err) {
      throw new Error(`cannot read nfqwall's queues (${String(err)}); daemon output:\n${this.output}`);
    }
    return kernelQueueLines(text).reduce((n, q) => n + q.total, 0);
  }

  /**
   * Every queue's counters (a queue and its late queue) as settled() last saw them, or as they are after 5 s. Not
   * read again after: a packet a lab host sends of its own accord (an IPv6 router solicitation, say) may be queued
   * in between, and would be counted by the kernel before nfqwall had read it.
   */
  async settledQueues(): Promise<QueueStatsJson[]> {
    // Not settled: the caller's assertions show the counters.
    return this.settled(5_000).catch(async () => (await this.status()).queues);
  }

  /** Sends `signal` and resolves with how the process ended (SIGKILL after `ms` if it has not). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', ms = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }> {
    if (this.running) {
      // A test may have frozen it (SIGSTOP, to let the kernel queue fill): a stopped process would not act on TERM.
      if (signal !== 'SIGKILL') this.child.kill('SIGCONT');
      this.child.kill(signal);
    }
    let timedOut = false;
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());
    if ((await Promise.race([this.exited, timer])) === 'timeout') {
      timedOut = true;
      this.child.kill('SIGKILL');
    }
    return { ...(await this.exited), timedOut };
  }
}

/**
 * The verdict accounting of each queue: something received, the kernel's id sequence == received == accepted +
 * dropped, nothing left queued.
 */
export function assertVerdictedOnce(qs: readonly QueueStatsJson[]): void {
  for (const q of qs) {
    const s = JSON.stringify(q);
    assert.ok(q.received > 0, `queue ${q.queue} received nothing: ${s}`);
    assert.equal(q.accepted + q.dropped, q.received, `accepted + dropped == received: ${s}`);
    assert.equal(q.kernelIdSequence, q.received, `kernel id sequence == received: ${s}`);
    assert.equal(q.kernelQueueTotal, 0, `nothing left in the kernel queue: ${s}`);
  }
}

/** The kernel's queues as /proc/net/netfilter/nfnetlink_queue lists them (one namespace's), one line each. */
export function kernelQueueLines(text: string): { queue: number; total: number }[] {
  // queue_number peer_portid queue_total copy_mode copy_range queue_dropped user_dropped id_sequence 1
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const f = l.trim().split(/\s+/).map(Number);
      return { queue: f[0]!, total: f[2]! };
    });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * nfqwall's jump into its FORWARD chain, as iptables-save prints it: with the flow cache's skip bits (the default) it
 * carries FORWARD's bit test (src/daemon/hooks.ts).
 */
export const FORWARD_HOOK = /^-A FORWARD (?:-m mark ! --mark (0x[0-9a-f]+)\/\1 )?-j NFQWALL-FORWARD$/m;

/** Every ruleset dump of a host that could hold nfqwall's hook rules: nft and legacy backends, v4 and v6. */
export async function kernelRules(host: Host): Promise<string> {
  let all = '';
  for (const tool of ['iptables-save', 'ip6tables-save', 'iptables-legacy-save', 'ip6tables-legacy-save']) {
    const r = await host.exec([tool], { check: false, timeoutMs: 10_000 });
    if (r.code === 0) all += `# ${tool}\n${r.stdout}`;
    else if (!/not found|No such file/i.test(r.stderr)) throw new Error(`${tool} in ${host.name}: ${r.stderr.trim()}`);
  }
  return all;
}
