// Daemon log lines: one line per event on stdout, prefixed with its journald priority (`<3>` err .. `<7>` debug, as
// sd-daemon(3) describes; journald strips the prefix and records the priority), the message, then `key=value` fields.
// LOG/NFLOG records come already in the kernel's format and pass through a token bucket, so a logging rule hit by a
// flood cannot flood the journal; what the bucket refuses is counted and reported in a periodic line.
//
// Writing a line never throws: a full disk (ENOSPC), a broken or stalled log stream loses lines, counted
// (nfqwall_log_lines_dropped_total), and the first line written once there is room again says how many were lost.
// (process.stdout on a full disk emits an unhandled 'error', which would stop the daemon.)
import fs from 'node:fs';
import tty from 'node:tty';
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

/**
 * Where log lines go. `write` takes one line without its newline and calls `lost` (now, or later for a stream) if
 * the line could not be written, with the error code (`ENOSPC`).
 */
export interface LineSink {
  write(line: string, lost: (code: string) => void): void;
}

/** Bytes a stream may hold unwritten before lines are dropped instead (a stalled journal must not grow the heap). */
const MAX_STREAM_BACKLOG = 4 * 1024 * 1024;

function errorCode(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}

/**
 * Lines to a file descriptor. Files and character devices (a log file, /dev/null) are written synchronously with
 * write(2), as Node writes them anyway, so a full disk is seen line by line: a line cut short by ENOSPC is ended before
 * the next one. Pipes, sockets and terminals (the journal's stream) keep Node's asynchronous stream, whose errors are
 * counted instead of reaching the process's 'error' path, and whose backlog is bounded.
 */
export class FdLineSink implements LineSink {
  private readonly sync: boolean;
  /** A line was cut short: the next write starts with a newline. */
  private cut = false;

  constructor(
    private readonly fd: number,
    private readonly stream?: NodeJS.WritableStream & { writableLength?: number },
  ) {
    let sync = stream === undefined;
    try {
      const st = fs.fstatSync(fd);
      sync ||= (st.isFile() || st.isCharacterDevice()) && !tty.isatty(fd);
    } catch {
      // A closed descriptor: every write fails (the stream's, or write(2)) and is counted.
    }
    this.sync = sync;
    // Errors are counted per write (the callback); unhandled they would stop the daemon.
    if (!sync) stream?.on('error', () => undefined);
  }

  write(line: string, lost: (code: string) => void): void {
    const stream = this.stream;
    if (this.sync || stream === undefined) {
      this.writeSync(line, lost);
      return;
    }
    if ((stream.writableLength ?? 0) > MAX_STREAM_BACKLOG) {
      lost('EAGAIN');
      return;
    }
    stream.write(line + '\n', (err?: Error | null) => {
      if (err) lost(errorCode(err));
    });
  }

  private writeSync(line: string, lost: (code: string) => void): void {
    let buf = Buffer.from((this.cut ? '\n' : '') + line + '\n');
    let wrote = 0;
    try {
      while (buf.length > 0) {
        const n = fs.writeSync(this.fd, buf);
        wrote += n;
        buf = buf.subarray(n);
      }
      this.cut = false;
    } catch (err) {
      if (wrote > 0) this.cut = true;
      lost(errorCode(err));
    }
  }
}

export interface LoggerOptions {
  level: LogLevel;
  /** Where lines go (tests): takes a line without its newline; a throw counts as a lost line. */
  write?: (line: string) => void;
  /** Else a descriptor: 1 (stdout, the default) or 2. */
  fd?: 1 | 2;
}

export class Logger {
  private readonly max: number;
  private readonly sink: LineSink;
  private lost = 0;
  /** Lines lost since the last report of losses was written. */
  private unreported = 0;
  private lastError: string | undefined;
  private readonly countLost = (code: string): void => {
    this.lost++;
    this.unreported++;
    this.lastError = code;
  };

  constructor(opts: LoggerOptions) {
    this.max = LOG_PRIORITY[opts.level];
    const write = opts.write;
    if (write !== undefined) {
      this.sink = {
        write: (line, lost) => {
          try {
            write(line);
          } catch (err) {
            lost(errorCode(err));
          }
        },
      };
    } else {
      const fd = opts.fd ?? 1;
      this.sink = new FdLineSink(fd, fd === 2 ? process.stderr : process.stdout);
    }
  }

  /** Log lines that could not be written (disk full, log stream broken or stalled), since start. */
  get dropped(): number {
    return this.lost;
  }

  /** One line out, or counted as lost. After losses, the first line that can be written again is preceded by a count. */
  private write(line: string): void {
    if (this.unreported > 0) {
      const n = this.unreported;
      let failed = false;
      // Not counted when it cannot be written either: the line it would precede is tried (and counted) below.
      this.sink.write(formatLine('warning', `lost ${n} log lines`, { lost: n, error: this.lastError, total: this.lost }), () => {
        failed = true;
      });
      if (!failed) this.unreported -= n;
    }
    this.sink.write(line, this.countLost);
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
