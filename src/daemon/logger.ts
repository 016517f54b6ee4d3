// Daemon log lines: one line per event on stdout, prefixed with its journald priority (`<3>` err .. `<7>` debug, as
// sd-daemon(3) describes; journald strips the prefix and records the priority), the message, then `key=value` fields.
// LOG/NFLOG records come already in the kernel's format and pass through a token bucket, so a logging rule hit by a
// flood cannot flood the journal; what the bucket refuses is counted and reported in a periodic line.
import { LOG_PRIORITY, type LogLevel } from '../config/config';

export type LogFields = Record<string, string | number | boolean | undefined>;

/** A value as logfmt writes it: bare when it is one plain word, quoted otherwise. */
function fieldValue(v: string | number | boolean): string {
  const s = String(v);
  return /^[^\s"=\\]+$/.test(s) ? s : JSON.stringify(s);
}

export function formatLine(level: LogLevel, msg: string, fields?: LogFields): string {
  let line = `<${LOG_PRIORITY[level]}>${msg.replace(/\n/g, ' | ')}`;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${fieldValue(v)}`;
  }
  return line;
}

export interface LoggerOptions {
  level: LogLevel;
  write?: (line: string) => void;
}

export class Logger {
  private readonly max: number;
  private readonly write: (line: string) => void;

  constructor(opts: LoggerOptions) {
    this.max = LOG_PRIORITY[opts.level];
    this.write = opts.write ?? ((line) => process.stdout.write(line + '\n'));
  }

  enabled(level: LogLevel): boolean {
    return LOG_PRIORITY[level] <= this.max;
  }

  log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (this.enabled(level)) this.write(formatLine(level, msg, fields));
  }

  err(msg: string, fields?: LogFields): void {
    this.log('err', msg, fields);
  }
  warning(msg: string, fields?: LogFields): void {
    this.log('warning', msg, fields);
  }
  notice(msg: string, fields?: LogFields): void {
    this.log('notice', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }
  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }

  /** A raw line at a priority (kernel-format LOG records), subject to the level like any other line. */
  raw(priority: number, line: string): void {
    if (priority <= this.max) this.write(`<${priority}>${line}`);
  }
}

export interface RateLimiterOptions {
  /** Tokens added per second. */
  rate: number;
  /** Bucket size: lines allowed at once after a quiet spell. */
  burst: number;
  now?: () => number;
}

/** A token bucket counting what it refuses. */
export class RateLimiter {
  private tokens: number;
  private last: number;
  private readonly now: () => number;
  /** Refused since the last `takeSuppressed`. */
  private pending = 0;
  /** Refused in all. */
  suppressed = 0;
  passed = 0;

  constructor(private readonly opts: RateLimiterOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.tokens = opts.burst;
    this.last = this.now();
  }

  allow(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.opts.burst, this.tokens + ((t - this.last) / 1000) * this.opts.rate);
    this.last = t;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.passed++;
      return true;
    }
    this.suppressed++;
    this.pending++;
    return false;
  }

  /** How many were refused since the last call, and resets that count. */
  takeSuppressed(): number {
    const n = this.pending;
    this.pending = 0;
    return n;
  }
}

/** The kernel LOG target's default level (warning) when a record carries none. */
const DEFAULT_LOG_PRIORITY = 4;

/**
 * Writes LOG/NFLOG records through a RateLimiter, and every `reportMs` a `suppressed N LOG lines` line when the
 * bucket refused any.
 */
export class LogRecordSink {
  readonly limiter: RateLimiter;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    opts: RateLimiterOptions & { reportMs?: number },
  ) {
    this.limiter = new RateLimiter(opts);
    const reportMs = opts.reportMs ?? 10_000;
    if (reportMs > 0) {
      this.timer = setInterval(() => this.report(), reportMs);
      this.timer.unref();
    }
  }

  write(rec: { line: string; level?: number }): void {
    if (!this.limiter.allow()) return;
    const lvl = rec.level !== undefined && rec.level >= 0 && rec.level <= 7 ? rec.level : DEFAULT_LOG_PRIORITY;
    this.logger.raw(lvl, rec.line);
  }

  /** Writes the suppression line if anything was refused since the last report. */
  report(): void {
    const n = this.limiter.takeSuppressed();
    if (n > 0) this.logger.warning(`suppressed ${n} LOG lines`, { suppressed: n, total: this.limiter.suppressed });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.report();
  }
}
