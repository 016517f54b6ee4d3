// Reload under traffic (issue #6): nfqwall holding a kube-proxy-style ruleset of N services replaces it while a paced
// UDP stream crosses fw, against `iptables-restore` of the same files into a namespace of their own in the same run.
// Reloads as kube-proxy's syncs make them:
//   warm:   5 services' endpoints replaced (new pods), no line moves: the realistic sync, made SYNCS times in a row
//           (the file alternating between two versions), as a running kube-proxy makes them: the first two after
//           start-up run code the JIT has not optimized yet (in-process: about twice as long as the third on), and
//           the collector's major cycles land in about one in five;
//   moved:  one service near the top scaled up by one endpoint: four more lines, so nearly every line moves;
//   cold:   a file sharing almost no rule line with the running one (every chain renamed): nothing to reuse.
// Reports the time from trigger to swap (the control socket's `reload` answer), datagrams lost during each reload,
// nfqwall's CPU time for it beside the kernel's (the machine may be shared: CPU time says more than wall time then),
// and the daemon's resident size. Run (root): `node dist/bench/reload.js [services...]` (default 10000 100000);
// NFQW_KERNEL_TIMEOUT_S bounds each iptables-restore (default 300 s: at 100,000 services it takes minutes);
// NFQW_BENCH_SYNCS sets how many warm reloads are made (default 12: a running kube-proxy's syncs are mostly past the
// JIT's warm-up, so a few syncs' median says more of the start-up than of them). The kernel's replace is measured up to
// KERNEL_REPLACES times (the same two files alternating) while each takes under 30 s, and its median taken.
import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { controlRequest } from '../src/daemon/control';
import { Daemon, scratchDir, sleep } from '../test/lab/daemon';
import { isRoot, Lab, THREE_HOST, threeHostSpec, type Host } from '../test/lab/lab';
import { udpSink, type UdpSink } from '../test/lab/traffic';
import { kubeProxyRules } from './parse';

const PORT = 9100;
/** Paced, not a flood: every datagram a lossless reload passes must arrive, so the rate stays under capacity. */
const RATE_PPS = 2_000;
const ENDPOINTS = 3;
const KERNEL_TIMEOUT_MS = Number(process.env.NFQW_KERNEL_TIMEOUT_S ?? 300) * 1000;
const SYNCS = Number(process.env.NFQW_BENCH_SYNCS ?? 12);
/** Warm syncs after start-up that run code the JIT has not optimized yet: the summary shows them apart. */
const WARMING = 2;
const KERNEL_REPLACES = 3;

// argv: addr port rate. Sends `rate` datagrams a second until a line arrives on stdin, then prints how many it sent.
const PACED_SENDER = `
const dgram = require('node:dgram');
const [addr, port, rate] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const s = dgram.createSocket('udp4');
const t0 = Date.now();
let sent = 0;
let stop = false;
process.stdin.on('data', () => { stop = true; });
s.connect(port, addr, () => {
  process.stdout.write('ready\\n');
  const tick = () => {
    if (stop) { setTimeout(() => { process.stdout.write('sent ' + sent + '\\n'); process.exit(0); }, 300); return; }
    const due = Math.floor(((Date.now() - t0) / 1000) * rate);
    while (sent < due) { s.send('nfqw-reload'); sent++; }
    setTimeout(tick, 2);
  };
  tick();
});
`;

function waitLine(child: ChildProcess, re: RegExp, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms: ${buf}`)), ms);
    const onData = (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split('\n'))
        if (re.test(line)) {
          clearTimeout(timer);
          child.stdout?.off('data', onData);
          resolve(line);
          return;
        }
    };
    child.stdout?.on('data', onData);
  });
}

async function rssMiB(host: Host, pid: number): Promise<number> {
  const status = (await host.exec(['cat', `/proc/${pid}/status`])).stdout;
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (m === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/** Wall time and CPU time (user + system, ms) of one run, or the medians of `runs`; a string says why there is none. */
type KernelTime = { wallMs: number; cpuMs: number; runs?: number } | string;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** CPU time (user + system, ms) a process has used so far, from /proc/PID/stat. */
async function cpuMs(host: Host, pid: number): Promise<number> {
  const stat = (await host.exec(['cat', `/proc/${pid}/stat`])).stdout;
  // The fields after the command name, which is in parentheses and may hold spaces: utime and stime are 14 and 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / CLK_TCK;
}
const CLK_TCK = 100;

/**
 * iptables-restore of `first` into a namespace of its own (a cold load), then of `second` over it (replacing the nat
 * table as kube-proxy's sync does), each bounded by KERNEL_TIMEOUT_MS.
 */
function kernelRestores(first: string, second: string, ns: string): { cold: KernelTime; replace: KernelTime } {
  const add = spawnSync('ip', ['netns', 'add', ns]);
  if (add.status !== 0) {
    const why = `skipped (ip netns add: ${add.stderr.toString().trim()})`;
    return { cold: why, replace: why };
  }
  try {
    const once = (text: string): KernelTime => {
      const t0 = performance.now();
      // GNU time's user and system seconds on stderr's last line: the kernel's work for the restore is system time.
      // timeout(1) inside the namespace kills iptables-restore itself (killing `ip` would leave it running).
      const secs = String(Math.ceil(KERNEL_TIMEOUT_MS / 1000));
      const r = spawnSync('ip', ['netns', 'exec', ns, '/usr/bin/time', '-f', '%U %S', 'timeout', '-s', 'KILL', secs, 'iptables-restore'], {
        input: text,
        maxBuffer: 1 << 26,
        timeout: KERNEL_TIMEOUT_MS + 60_000,
        killSignal: 'SIGKILL',
      });
      const ms = performance.now() - t0;
      if (r.status === 137 || /status 137/.test(r.stderr.toString())) return `> ${secs} s (timed out)`;
      if (r.status !== 0) return `failed: ${r.stderr.toString().trim().slice(0, 200)}`;
      const m = /([\d.]+) ([\d.]+)\s*$/.exec(r.stderr.toString());
      if (m === null) return `no CPU times from /usr/bin/time: ${r.stderr.toString().trim().slice(0, 200)}`;
      return { wallMs: ms, cpuMs: (Number(m[1]) + Number(m[2])) * 1000 };
    };
    const cold = once(first);
    if (typeof cold === 'string') return { cold, replace: 'not run (the cold restore did not finish)' };
    const replaces: { wallMs: number; cpuMs: number }[] = [];
    for (let k = 0; k < KERNEL_REPLACES; k++) {
      const r = once(k % 2 === 0 ? second : first);
      if (typeof r === 'string') return { cold, replace: r };
      replaces.push(r);
      if (r.wallMs > 30_000) break;
    }
    return { cold, replace: { wallMs: median(replaces.map((r) => r.wallMs)), cpuMs: median(replaces.map((r) => r.cpuMs)), runs: replaces.length } };
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

interface ReloadRow {
  kind: string;
  reloadMs: number;
  /** nfqwall's CPU time from trigger to swap (the stream's packets included: a few percent of it). */
  cpuMs: number;
  sent: number;
  lost: number;
  rssMiB: number;
  /** The daemon's own account of the reload's stages (its `reloaded` log line), in ms. */
  stages: string;
}

/** One reload to `text` while the paced stream runs from a second before the trigger to the answer. */
async function reloadUnderTraffic(
  kind: string,
  text: string,
  write: (text: string) => void,
  daemon: Daemon,
  lab: Lab,
  sink: UdpSink,
  pid: number,
): Promise<ReloadRow> {
  const before = await sink.count();
  const loggedBefore = reloadLines(daemon).length;
  const sender = lab.host('client').spawn([process.execPath, '-e', PACED_SENDER, THREE_HOST.server4, String(PORT), String(RATE_PPS)]);
  try {
    await waitLine(sender, /^ready$/, 10_000);
    await sleep(1_000);
    write(text);
    const fw = lab.host('fw');
    const cpu0 = await cpuMs(fw, pid);
    const t0 = performance.now();
    const res = await controlRequest(daemon.control, { cmd: 'reload' }, 900_000).catch(async (err: unknown) => {
      // A control socket closed mid-reload means the daemon died: say how, and what it printed last.
      await Promise.race([daemon.exited, sleep(2_000)]);
      const how = daemon.running ? 'still running' : `exited (${daemon.child.exitCode ?? daemon.child.signalCode})`;
      throw new Error(`${kind} reload: ${err instanceof Error ? err.message : String(err)}; nfqwall ${how}; its last output:\n${daemon.output.slice(-2000)}`);
    });
    const reloadMs = performance.now() - t0;
    const cpu = (await cpuMs(fw, pid)) - cpu0;
    if (!res.ok) throw new Error(`${kind} reload failed: ${res.error}`);
    await sleep(300);
    const sentLine = waitLine(sender, /^sent \d+$/, 10_000);
    sender.stdin?.write('stop\n');
    const sent = Number((await sentLine).split(' ')[1]);
    await sleep(500);
    const received = (await sink.count()) - before;
    // The log line travels through a pipe of its own: it may come after the control socket's answer.
    for (let i = 0; i < 40 && reloadLines(daemon).length === loggedBefore; i++) await sleep(50);
    const logged = reloadLines(daemon)[loggedBefore] ?? 'not logged';
    return { kind, reloadMs, cpuMs: cpu, sent, lost: sent - received, rssMiB: await rssMiB(fw, pid), stages: logged };
  } finally {
    sender.kill('SIGKILL');
  }
}

/** The daemon's `reloaded` log lines so far, from `ms=` on. */
function reloadLines(daemon: Daemon): string[] {
  return [...daemon.output.matchAll(/reloaded .*? (ms=.*)$/gm)].map((m) => m[1]!);
}

interface Measured {
  services: number;
  rules: number;
  startMs: number;
  rssStartMiB: number;
  rows: ReloadRow[];
  kernel: { cold: KernelTime; replace: KernelTime };
}

/** Five services spread over the file, as a sync after a few pods were replaced. */
function spread(services: number, count: number): Set<number> {
  const out = new Set<number>();
  for (let k = 0; k < count; k++) out.add(Math.floor(((k + 0.5) * services) / count));
  return out;
}

async function measure(services: number): Promise<Measured> {
  const base = kubeProxyRules(services, ENDPOINTS);
  const warm = kubeProxyRules(services, ENDPOINTS, { replaced: spread(services, 5) });
  const moved = kubeProxyRules(services, ENDPOINTS, { replaced: spread(services, 5), scaledUp: new Set([1]) });
  const cold = kubeProxyRules(services, ENDPOINTS, { salt: 1 });
  const rules = base.split('\n').filter((l) => l.startsWith('-A ')).length;
  const kernel = kernelRestores(base, warm, `nfqw-${process.pid}-reload-kernel`);
  const lab = await Lab.create(threeHostSpec());
  const scratch = scratchDir();
  let daemon: Daemon | undefined;
  try {
    const fw = lab.host('fw');
    const file = scratch.write('rules', base);
    const t0 = performance.now();
    // The daemon's heap budget is its default (heap_limit = auto: half the memory), as a user's would be.
    daemon = await Daemon.start(fw, `${scratch.dir}/control.sock`, { rules: file }, 900_000);
    const startMs = performance.now() - t0;
    const pid = daemon.child.pid;
    if (pid === undefined) throw new Error('nfqwall has no pid');
    const rssStartMiB = await rssMiB(fw, pid);
    const sink = await udpSink(lab.host('server'), THREE_HOST.server4, PORT);
    const d = daemon;
    try {
      const rows: ReloadRow[] = [];
      const write = (text: string) => void scratch.write('rules', text);
      // The warm syncs: to the warm file and back to the base one, in turn (each a few services changed).
      for (let k = 0; k < SYNCS; k++) rows.push(await reloadUnderTraffic('warm', k % 2 === 0 ? warm : base, write, d, lab, sink, pid));
      rows.push(await reloadUnderTraffic('moved', moved, write, d, lab, sink, pid));
      rows.push(await reloadUnderTraffic('cold', cold, write, d, lab, sink, pid));
      return { services, rules, startMs, rssStartMiB, rows, kernel };
    } finally {
      sink.stop();
    }
  } finally {
    if (daemon) await daemon.stop();
    await lab.destroy();
    scratch.cleanup();
  }
}

const fmtKernel = (k: KernelTime): string =>
  typeof k === 'string' ? k : `${k.wallMs.toFixed(0)} ms (CPU ${k.cpuMs.toFixed(0)} ms)${k.runs !== undefined && k.runs > 1 ? `, the median of ${k.runs}` : ''}`;

function report(m: Measured): void {
  process.stdout.write(
    `\n${m.services} services x ${ENDPOINTS} endpoints: ${m.rules} rules; nfqwall start-up ${m.startMs.toFixed(0)} ms, ${m.rssStartMiB.toFixed(0)} MiB\n` +
      `kernel iptables-restore: cold (empty namespace) ${fmtKernel(m.kernel.cold)}, replace (warm file over the base) ${fmtKernel(m.kernel.replace)}\n` +
      '  reload   trigger->swap (CPU)   iptables-restore / nfqwall: wall  CPU     sent    lost   RSS after\n',
  );
  for (const r of m.rows) {
    const k = r.kind === 'cold' ? m.kernel.cold : m.kernel.replace;
    const ratio = typeof k === 'string' ? `${'n/a'.padStart(13)} ${'n/a'.padStart(6)}` : `${(k.wallMs / r.reloadMs).toFixed(1).padStart(12)}x ${(k.cpuMs / r.cpuMs).toFixed(1).padStart(5)}x`;
    process.stdout.write(
      `  ${r.kind.padEnd(6)} ${r.reloadMs.toFixed(0).padStart(8)} ms (${r.cpuMs.toFixed(0).padStart(5)} ms)   ${ratio.padStart(33)} ${String(r.sent).padStart(8)} ${String(r.lost).padStart(7)}   ${r.rssMiB.toFixed(0)} MiB\n` +
        `           stages (ms): ${r.stages}\n`,
    );
  }
  const warm = m.rows.filter((r) => r.kind === 'warm').map((r) => r.reloadMs);
  if (warm.length > 1) {
    const k = m.kernel.replace;
    const vs = (ms: number): string => (typeof k === 'string' ? '' : ` (${(k.wallMs / ms).toFixed(1)}x)`);
    const mid = median(warm);
    const after = warm.length > WARMING + 1 ? warm.slice(WARMING) : undefined;
    const steady = after === undefined ? '' : `, median of the ${after.length} after the first ${WARMING} ${median(after).toFixed(0)} ms${vs(median(after))}`;
    process.stdout.write(
      `  warm syncs: first ${warm.slice(0, WARMING).map((ms) => ms.toFixed(0)).join(' and ')} ms, median ${mid.toFixed(0)} ms${vs(mid)}${steady}, ` +
        `slowest ${Math.max(...warm).toFixed(0)} ms${vs(Math.max(...warm))} of ${warm.length}; lost ${m.rows.reduce((a, r) => a + r.lost, 0)} in all\n`,
    );
  }
}

async function main(): Promise<void> {
  if (!isRoot()) throw new Error('the reload benchmark builds network namespaces: run it as root');
  const sizes = process.argv.slice(2).map(Number);
  const list = sizes.length > 0 ? sizes : [10_000, 100_000];
  for (const n of list) if (!Number.isInteger(n) || n < 1 || n > 200_000) throw new Error(`services: expected 1..200000, got ${n}`);
  process.stdout.write(
    `reload under a paced UDP stream of ${RATE_PPS} datagrams/s through fw; kube-proxy style, ${ENDPOINTS} endpoints per service\n` +
      'warm: 5 services\' endpoints replaced; moved: the same and one service scaled up near the top (every later line moves);\n' +
      'cold: every chain renamed (nothing reusable). The kernel figure beside warm/moved is iptables-restore of the warm\n' +
      'file over the base one; beside cold, of the base file into an empty namespace.\n',
  );
  for (const n of list) {
    process.stdout.write(`load average before: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
    report(await measure(n));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/reload: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
