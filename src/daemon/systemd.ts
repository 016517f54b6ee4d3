// The service manager side (REFERENCE.md 3.1): READY/RELOADING/STOPPING/STATUS notifications and the watchdog,
// sent from the main process through the addon's notify() so NotifyAccess=main holds.
//
// The watchdog is a JS interval: if the event loop stalls, WATCHDOG=1 stops and systemd restarts us. Each tick also
// asks `health()`, which checks that every queue's receive thread has woken recently; a stuck thread stops the pings
// as well. Without NOTIFY_SOCKET every call is a no-op.
import { queueLayoutText } from './hooks';

export type NotifySend = (state: string) => boolean;

export interface ServiceNotifierOptions {
  /** Sends one notification; default the addon's notify (loaded on first use). */
  send?: NotifySend;
  env?: NodeJS.ProcessEnv;
  pid?: number;
  log?: (msg: string) => void;
}

/** The sd_notify MONOTONIC_USEC value: CLOCK_MONOTONIC in microseconds (libuv's hrtime reads that clock). */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/**
 * sd_watchdog_enabled(3): WATCHDOG_USEC in microseconds when the watchdog is meant for this process (WATCHDOG_PID
 * unset or equal to `pid`), else undefined.
 */
export function watchdogUsec(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usecText = env['WATCHDOG_USEC'];
  if (usecText === undefined || !/^\d+$/.test(usecText)) return undefined;
  const usec = Number(usecText);
  if (usec <= 0) return undefined;
  const pidText = env['WATCHDOG_PID'];
  if (pidText !== undefined && pidText !== '' && Number(pidText) !== pid) return undefined;
  return usec;
}

/** STATUS= text is one line; systemd shows it in `systemctl status`. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').trim();
}

function defaultSend(state: string): boolean {
  const native = require('../native') as typeof import('../native');
  return native.addon.notify(state);
}

/** Unhealthy when a receive thread has not woken for this long (it polls every 200 ms); see docs/systemd.md. */
export const THREAD_IDLE_LIMIT_MS = 2_000;

export class ServiceNotifier {
  private readonly send: NotifySend;
  private readonly log: (msg: string) => void;
  private readonly env: NodeJS.ProcessEnv;
  private readonly pid: number;
  private timers: NodeJS.Timeout[] = [];
  private sendFailed = false;
  private lastUnhealthy = '';
  /** WATCHDOG=1 sent so far (for tests and status). */
  watchdogPings = 0;

  constructor(opts: ServiceNotifierOptions = {}) {
    this.send = opts.send ?? defaultSend;
    this.log = opts.log ?? (() => undefined);
    this.env = opts.env ?? process.env;
    this.pid = opts.pid ?? process.pid;
  }

  /** True when a service manager listens (NOTIFY_SOCKET is set). */
  get managed(): boolean {
    return (this.env['NOTIFY_SOCKET'] ?? '') !== '';
  }

  /** Sends `lines` as one datagram; a failure is logged once and never thrown (the manager may be gone). */
  notify(lines: string[]): boolean {
    if (!this.managed) return false;
    try {
      return this.send(lines.join('\n'));
    } catch (err) {
      if (!this.sendFailed) this.log(`cannot notify the service manager: ${err instanceof Error ? err.message : String(err)}`);
      this.sendFailed = true;
      return false;
    }
  }

  ready(status?: string): void {
    this.notify(status === undefined ? ['READY=1'] : ['READY=1', `STATUS=${oneLine(status)}`]);
  }

  /** Before a reload: systemd ≥ 253 needs MONOTONIC_USEC to match the reload to its request. */
  reloading(status = 'Reloading rules'): void {
    this.notify(['RELOADING=1', `MONOTONIC_USEC=${monotonicUsec()}`, `STATUS=${oneLine(status)}`]);
  }

  /** After a reload, whatever its outcome: the daemon serves (old or new rules) and is ready again. */
  reloaded(status: string): void {
    this.ready(status);
  }

  stopping(status = 'Stopping: removing hooks'): void {
    this.notify(['STOPPING=1', `STATUS=${oneLine(status)}`]);
  }

  status(text: string): void {
    this.notify([`STATUS=${oneLine(text)}`]);
  }

  /** Sends STATUS=`text()` every `intervalMs` while running. */
  startStatus(text: () => string, intervalMs = 10_000): void {
    if (!this.managed) return;
    const t = setInterval(() => {
      try {
        this.status(text());
      } catch (err) {
        this.log(`status text failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }, intervalMs);
    t.unref();
    this.timers.push(t);
  }

  /**
   * Pets the watchdog every WATCHDOG_USEC/2 while `health()` returns undefined; a string names what is wrong, and
   * that tick sends nothing. Returns the interval in ms, or undefined when no watchdog is asked for.
   */
  startWatchdog(health: () => string | undefined): number | undefined {
    const usec = this.managed ? watchdogUsec(this.env, this.pid) : undefined;
    if (usec === undefined) return undefined;
    const intervalMs = Math.max(1, Math.floor(usec / 2000));
    const tick = (): void => {
      let problem: string | undefined;
      try {
        problem = health();
      } catch (err) {
        problem = `health check failed: ${err instanceof Error ? err.message : String(err)}`;
      }
      if (problem !== undefined) {
        if (problem !== this.lastUnhealthy) this.log(`not petting the watchdog: ${problem}`);
        this.lastUnhealthy = problem;
        return;
      }
      if (this.lastUnhealthy !== '') this.log('healthy again, petting the watchdog');
      this.lastUnhealthy = '';
      if (this.notify(['WATCHDOG=1'])) this.watchdogPings++;
    };
    tick();
    const t = setInterval(tick, intervalMs);
    t.unref();
    this.timers.push(t);
    return intervalMs;
  }

  /** Stops the periodic status and watchdog timers. */
  close(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }
}

/** The watchdog health of a set of queues: undefined when every receive thread woke within `limitMs`. */
export function queueHealth(
  stats: readonly { queue: number; threadIdleMs: number; closed?: boolean }[],
  limitMs = THREAD_IDLE_LIMIT_MS,
): string | undefined {
  for (const q of stats) {
    if (q.closed === true) return `queue ${q.queue} is closed`;
    if (q.threadIdleMs > limitMs) return `queue ${q.queue} receive thread idle for ${q.threadIdleMs} ms`;
  }
  return undefined;
}

/** The one-line STATUS= the daemon reports: what is loaded and how much it has seen. */
export function statusLine(d: {
  readonly rules: { rules4?: RulesetLike; rules6?: RulesetLike };
  /** Every queue's counts: they include the packets the flow cache decided without JavaScript. */
  queueStats(): readonly { received: number; accepted: number; dropped: number }[];
  readonly opts: { queue: number; queues?: number; lateQueue?: number };
}): string {
  let rules = 0;
  for (const rs of [d.rules.rules4, d.rules.rules6]) {
    if (rs === undefined) continue;
    for (const t of rs.tables.values()) for (const c of t.chains.values()) rules += c.rules.length;
  }
  const qs = d.queueStats();
  let seen = 0;
  let accepted = 0;
  let dropped = 0;
  for (const q of qs) {
    seen += q.received;
    accepted += q.accepted;
    dropped += q.dropped;
  }
  const queues = queueLayoutText(d.opts);
  return `${queues}: ${rules} rules loaded; ${seen} packets seen, ${accepted} accepted, ${dropped} dropped`;
}

interface RulesetLike {
  tables: Map<string, { chains: Map<string, { rules: readonly unknown[] }> }>;
}
