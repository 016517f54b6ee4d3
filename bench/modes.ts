// The programs that take the queue at fw FORWARD, one per benchmark mode. Each starts pinned to CPU 1 and resolves
// once it is ready to take packets; stop() ends it and returns what it said about itself.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { kernelRules } from '../test/lab/daemon';
import type { Host, Lab } from '../test/lab/lab';

export const QUEUE_CPU = '1';
export const BENCH_QUEUE = 10;

export interface Running {
  /**
   * Ends the program (SIGTERM, then SIGKILL) and returns its output; a program that queues says `packets N` (the C
   * loop, the npm binding) or `queued N` (nfqwall, summed over its queues): the trips its queue(s) made.
   */
  stop(): Promise<string>;
  /** The queue program's process (seen from the host: a lab namespace shares its pid namespace); none for the kernel. */
  pid?: number;
}

/**
 * CPU seconds (user + system, all threads) the process has used so far, from /proc/PID/stat; undefined once it is
 * gone. The system time includes the kernel's work for each verdict: the reinjected packet runs on through the
 * stack in the verdict's sendmsg, up to the next queue or out of fw.
 */
export function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(rest[11]) + Number(rest[12]);
  return Number.isFinite(ticks) ? ticks / CLOCK_TICKS : undefined;
}

/** USER_HZ: 100 on every Linux architecture nfqwall runs on (sysconf(_SC_CLK_TCK) is not reachable from Node). */
export const CLOCK_TICKS = 100;

/** Packets the mode's queue program received, from what stop() returned; undefined when it did not say. */
export function queuedPackets(note: string): number | undefined {
  const m = /\b(?:packets|queued) (\d+)/.exec(note);
  return m === null ? undefined : Number(m[1]);
}

/**
 * Of those, the packets nfqwall's flow cache verdicted on the receive thread (`cached N`, summed over its queues);
 * undefined for a program without one, or an nfqwall whose status did not say.
 */
export function cachedPackets(note: string): number | undefined {
  const m = /\bcached (\d+)/.exec(note);
  return m === null ? undefined : Number(m[1]);
}

/** `matched N`: packets nfqwall's rule matcher decided on the receive thread (docs/matcher.md). */
export function matchedPackets(note: string): number | undefined {
  const m = /\bmatched (\d+)/.exec(note);
  return m === null ? undefined : Number(m[1]);
}

export interface Mode {
  name: string;
  /** Why this mode cannot run here, if it cannot. */
  unavailable?: string;
  start(fw: Host): Promise<Running>;
}

function collect(child: ChildProcess): { text(): string; exited: Promise<void> } {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return { text: () => out, exited };
}

async function waitFor(what: string, ms: number, probe: () => Promise<boolean> | boolean, output: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready within ${ms} ms:\n${output()}`);
}

async function stopChild(child: ChildProcess, c: { text(): string; exited: Promise<void> }): Promise<string> {
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await c.exited;
  clearTimeout(killer);
  return c.text().trim();
}

/** A queue program that prints `ready` once bound, with the NFQUEUE rule installed by the benchmark. */
async function startWithOwnRule(fw: Host, argv: string[]): Promise<Running> {
  await fw.exec(['iptables', '-A', 'FORWARD', '-j', 'NFQUEUE', '--queue-num', String(BENCH_QUEUE)]);
  const child = fw.spawn(['taskset', '-c', QUEUE_CPU, ...argv]);
  const c = collect(child);
  try {
    await waitFor(argv[0] ?? 'program', 15_000, () => /^ready$/m.test(c.text()), c.text);
  } catch (err) {
    child.kill('SIGKILL');
    await fw.exec(['iptables', '-F', 'FORWARD']);
    throw err;
  }
  return {
    ...(child.pid !== undefined ? { pid: child.pid } : {}),
    async stop(): Promise<string> {
      const text = await stopChild(child, c);
      await fw.exec(['iptables', '-F', 'FORWARD']);
      return text;
    },
  };
}

export function kernelMode(): Mode {
  return {
    name: 'kernel (no queue)',
    start: async () => ({ stop: async () => '' }),
  };
}

/** The kernel itself holding `rulesFile` in fw (iptables-restore), no queue: the rule-count figures' comparison. */
export function kernelRulesMode(rulesFile: string, label: string): Mode {
  return {
    name: `kernel iptables (${label})`,
    async start(fw) {
      await fw.exec(['iptables-restore', rulesFile], { timeoutMs: 900_000 });
      return {
        async stop(): Promise<string> {
          for (const table of ['raw', 'mangle', 'nat', 'filter']) {
            await fw.exec(['iptables', '-t', table, '-F'], { timeoutMs: 300_000 });
            await fw.exec(['iptables', '-t', table, '-X'], { timeoutMs: 300_000 });
          }
          return '';
        },
      };
    },
  };
}

export function cLoopMode(binary: string): Mode {
  return { name: 'C libnetfilter_queue loop', start: (fw) => startWithOwnRule(fw, [binary, String(BENCH_QUEUE)]) };
}

// argv: module-dir queue buffer. Accepts every packet one by one, as the binding's README does. A buffer of 0 is the
// binding's default socket buffer, 65535 bytes (nfqueue.js createQueueHandler).
const NFQUEUE_SCRIPT = `
const nfq = require(process.argv[1]);
let n = 0;
nfq.createQueueHandler(Number(process.argv[2]), Number(process.argv[3]), (p) => { n++; p.setVerdict(nfq.NF_ACCEPT); });
process.on('SIGTERM', () => { process.stdout.write('packets ' + n + '\\n'); process.exit(0); });
process.stdout.write('ready\\n');
`;

/** The C loop's socket buffer (bench/c/minimal-nfq.c), which the npm binding gets too unless told otherwise. */
const C_LOOP_BUFFER = 8 << 20;

export const NFQUEUE_NAME = 'npm nfqueue';
export const NFQUEUE_DEFAULT_NAME = 'npm nfqueue (its default buffer)';

/**
 * The npm binding accepting everything: with the C loop's 8 MiB socket buffer, or (`ownDefault`) with the binding's
 * default of 64 KiB, which its README raises only under "Performance and ENOBUFS".
 */
export function nfqueueMode(install: { dir: string } | { error: string }, ownDefault = false): Mode {
  const name = ownDefault ? NFQUEUE_DEFAULT_NAME : NFQUEUE_NAME;
  if ('error' in install) return { name, unavailable: install.error, start: () => Promise.reject(new Error(install.error)) };
  const buffer = ownDefault ? 0 : C_LOOP_BUFFER;
  return { name, start: (fw) => startWithOwnRule(fw, [process.execPath, '-e', NFQUEUE_SCRIPT, install.dir, String(BENCH_QUEUE), String(buffer)]) };
}

export const ACCEPT_ALL_RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -j ACCEPT
COMMIT
`;

export interface NfqwallVariant {
  /** --queues (default 1). */
  queues?: number;
  /** `--queue-cpu-fanout`: the queue chosen by the CPU that handles the packet, not by address hash. */
  cpuFanout?: boolean;
  /** false: `--no-flow-cache`, every packet decided in JavaScript (default: the cache on, as nfqwall defaults). */
  flowCache?: boolean;
  /** false: `--skip-mark off`, every hook keeps its queue trip (default: skipping on, as nfqwall defaults). */
  skip?: boolean;
  /** false: `--no-matcher`, what the cache cannot decide goes to JavaScript (default: the matcher on). */
  matcher?: boolean;
  /** false: `--late-queue off`, the later hooks' trips on the same queue as PREROUTING's (default: a late queue). */
  late?: boolean;
  /** Added to the name, in parentheses (the ruleset's size, say). */
  label?: string;
  /** How long the daemon may take to answer its first status (default 20 s; a 100,000-service ruleset takes longer). */
  readyMs?: number;
}

export function nfqwallName(v: NfqwallVariant = {}): string {
  const n = v.queues ?? 1;
  const base = n === 1 ? 'nfqwall' : `nfqwall --queues ${n}${v.cpuFanout === true ? ' cpu-fanout' : ''}`;
  const label = v.label === undefined ? '' : ` (${v.label})`;
  if (v.flowCache === false) return `${base} --no-flow-cache${label}`;
  if (v.matcher === false) return `${base} --no-matcher${label}`;
  if (v.late === false) return `${base} --late-queue off${label}`;
  return `${v.skip === false ? `${base} --skip-mark off` : base}${label}`;
}

/** nfqwall's own `run`, which installs and removes its hook rules itself. */
export function nfqwallMode(cli: string | undefined, rulesFile: string, controlPath: string, variant: NfqwallVariant = {}): Mode {
  const name = nfqwallName(variant);
  if (cli === undefined) {
    const why = 'dist/src/cli/main.js is missing (build nfqwall first)';
    return { name, unavailable: why, start: () => Promise.reject(new Error(why)) };
  }
  const queues = variant.queues ?? 1;
  return {
    name,
    async start(fw) {
      const argv = [process.execPath, cli, 'run', '--rules', rulesFile, '--queue', String(BENCH_QUEUE), '--control', controlPath];
      if (queues > 1) argv.push('--queues', String(queues));
      if (variant.cpuFanout === true) argv.push('--queue-cpu-fanout');
      if (variant.flowCache === false) argv.push('--no-flow-cache');
      if (variant.skip === false) argv.push('--skip-mark', 'off');
      if (variant.matcher === false) argv.push('--no-matcher');
      if (variant.late === false) argv.push('--late-queue', 'off');
      const child = fw.spawn(['taskset', '-c', QUEUE_CPU, ...argv]);
      const c = collect(child);
      const status = async (): Promise<boolean> => {
        if (child.exitCode !== null) throw new Error(`nfqwall run exited (${child.exitCode}):\n${c.text()}`);
        const r = await fw.exec([process.execPath, cli, 'status', '--control', controlPath], { check: false, timeoutMs: 5_000 });
        return r.code === 0;
      };
      try {
        await waitFor('nfqwall', variant.readyMs ?? 20_000, status, c.text);
      } catch (err) {
        child.kill('SIGKILL');
        throw err;
      }
      return {
        ...(child.pid !== undefined ? { pid: child.pid } : {}),
        async stop(): Promise<string> {
          const r = await fw.exec([process.execPath, cli, 'status', '--control', controlPath], { check: false, timeoutMs: 5_000 });
          const text = await stopChild(child, c);
          return `${summarizeStatus(r.stdout)}${text === '' ? '' : `\n${text}`}`.trim();
        },
      };
    },
  };
}

/**
 * `queued N` and, with the flow cache, `cached N` (all queues) and the cache's misses, stores, invalidations, hooks
 * skipped and parkings (why a packet made more than one trip or waited for JavaScript), then each queue's own counters.
 */
function summarizeStatus(json: string): string {
  try {
    const s = JSON.parse(json) as { queues?: Record<string, unknown>[]; flowCache?: Record<string, unknown> };
    const qs = s.queues ?? [];
    if (qs.length === 0) return '';
    const queued = qs.reduce((sum, q) => sum + Number(q['received'] ?? 0), 0);
    const sum = (k: string): string => (qs.some((q) => k in q) ? ` ${k} ${qs.reduce((n, q) => n + Number(q[k] ?? 0), 0)}` : '');
    const fc = s.flowCache;
    const cacheKeys = ['misses', 'stores', 'invalidations', 'tripsSkipped', 'parked', 'transitsDropped', 'transitsLapsed'];
    const cache = fc === undefined ? '' : cacheKeys.map((k) => ` ${k} ${String(fc[k] ?? '?')}`).join('');
    const total = `queued ${queued}${sum('cached')}${sum('matched')}${cache}`;
    const keys = ['received', 'cached', 'matched', 'accepted', 'dropped', 'batches', 'batchVerdicts', 'overload', 'enobufs', 'kernelQueueDropped', 'kernelUserDropped'];
    const each = qs.map((q) => `queue ${String(q['queue'])}: ${keys.filter((k) => k in q).map((k) => `${k} ${String(q[k])}`).join(' ')}`);
    return [total, ...each].join('; ');
  } catch {
    return '';
  }
}

/**
 * Waits (at most a minute) until the process has used under 5% of a CPU over half a second. Ready, nfqwall is still
 * collecting what loading its rules left behind: at 10,000 services a marking cycle of a heap of hundreds of MB, on
 * the one CPU it shares with its receive thread, and a run measured then measured that collection. The figures are a
 * node's steady state, whatever the rule count.
 */
async function settled(pid: number | undefined): Promise<void> {
  let last = cpuSeconds(pid);
  for (const t0 = Date.now(); last !== undefined && Date.now() - t0 < 60_000; ) {
    await new Promise((r) => setTimeout(r, 500));
    const now = cpuSeconds(pid);
    if (now === undefined || now - last < 0.025) return;
    last = now;
  }
}

/** Runs `work` while `mode` holds the queue; then checks fw is clean. Returns what work returned and the mode's note. */
export async function withMode<T>(lab: Lab, mode: Mode, work: (running: Running) => Promise<T>): Promise<{ result: T; note: string }> {
  const fw = lab.host('fw');
  const running = await mode.start(fw);
  let result: T | undefined;
  let failure: unknown;
  let ok = false;
  try {
    await settled(running.pid);
    result = await work(running);
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
