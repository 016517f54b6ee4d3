// `nfqwall trace [filter]`: streams, from a running daemon, each table, chain and rule that matching packets traverse
// and their verdict, in the style of `nft monitor trace`. Without a filter only packets a `-j TRACE` rule marked are
// shown. Ctrl-C (or the daemon going away) ends it; the daemon drops the subscriber when the socket closes.
import net from 'node:net';
import type { Command } from 'commander';
import { DEFAULT_CONTROL_PATH } from '../daemon/control';
import { parseTraceFilter, type TraceFilterJson } from '../daemon/trace';

export interface TraceCliOptions {
  control: string;
  proto?: string;
  src?: string;
  dst?: string;
  sport?: string;
  dport?: string;
  iface?: string;
  ipv4?: boolean;
  ipv6?: boolean;
  rate?: string;
  json?: boolean;
}

function portOption(v: string, name: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 65535) throw new Error(`--${name}: "${v}" is not a port number 0-65535`);
  return Number(v);
}

/** The request's filter from the command line; validated here as the daemon will, so mistakes fail before connecting. */
export function cliFilter(opts: TraceCliOptions): TraceFilterJson {
  if (opts.ipv4 === true && opts.ipv6 === true) throw new Error('give -4 or -6, not both');
  const f: TraceFilterJson = {};
  if (opts.ipv4 === true) f.family = 4;
  if (opts.ipv6 === true) f.family = 6;
  if (opts.proto !== undefined) f.proto = /^\d+$/.test(opts.proto) ? Number(opts.proto) : opts.proto;
  if (opts.src !== undefined) f.src = opts.src;
  if (opts.dst !== undefined) f.dst = opts.dst;
  if (opts.sport !== undefined) f.sport = portOption(opts.sport, 'sport');
  if (opts.dport !== undefined) f.dport = portOption(opts.dport, 'dport');
  if (opts.iface !== undefined) f.iface = opts.iface;
  parseTraceFilter(f as Record<string, unknown>);
  return f;
}

/** What one line from the daemon prints: trace lines on stdout, suppression reports on stderr. */
export function renderStreamLine(line: string, json: boolean): { out: string; err: string } {
  const msg = JSON.parse(line) as { trace?: { lines?: unknown }; suppressed?: unknown };
  if (msg.trace !== undefined) {
    if (json) return { out: JSON.stringify(msg.trace) + '\n', err: '' };
    const lines = Array.isArray(msg.trace.lines) ? msg.trace.lines.filter((l): l is string => typeof l === 'string') : [];
    return { out: lines.map((l) => l + '\n').join(''), err: '' };
  }
  if (typeof msg.suppressed === 'number') return { out: '', err: `trace: ${msg.suppressed} events suppressed\n` };
  return { out: '', err: '' };
}

/** Runs the stream until the socket closes or SIGINT/SIGTERM; resolves with the exit code. */
export function streamTrace(socketPath: string, filter: TraceFilterJson, rate: number | undefined, json: boolean): Promise<number> {
  return new Promise((resolve) => {
    const sock = net.connect(socketPath);
    let buf = '';
    let answered = false;
    let code = 0;
    let interrupted = false;
    const stop = (): void => {
      interrupted = true;
      sock.destroy();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    sock.setEncoding('utf8');
    sock.once('connect', () => {
      const req: Record<string, unknown> = { cmd: 'trace', filter };
      if (rate !== undefined) req['rate'] = rate;
      sock.write(JSON.stringify(req) + '\n');
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() === '') continue;
        try {
          if (!answered) {
            answered = true;
            const res = JSON.parse(line) as { ok?: unknown; error?: unknown };
            if (res.ok !== true) {
              process.stderr.write(`nfqwall trace: ${typeof res.error === 'string' ? res.error : 'refused'}\n`);
              code = 1;
              sock.destroy();
              return;
            }
            process.stderr.write('trace: tracing (Ctrl-C to stop)\n');
            continue;
          }
          const r = renderStreamLine(line, json);
          if (r.out) process.stdout.write(r.out);
          if (r.err) process.stderr.write(r.err);
        } catch (err) {
          process.stderr.write(`nfqwall trace: unreadable line from the daemon: ${err instanceof Error ? err.message : String(err)}\n`);
        }
      }
    });
    sock.once('error', (err) => {
      process.stderr.write(`nfqwall trace: cannot reach nfqwall at ${socketPath}: ${err.message}\n`);
      code = 1;
    });
    sock.once('close', () => {
      if (answered && code === 0 && !interrupted) process.stderr.write('trace: the daemon ended the trace\n');
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(code);
    });
  });
}

export function registerTrace(program: Command): void {
  program
    .command('trace')
    .description('stream the tables, chains and rules that packets traverse, and their verdicts (nft monitor trace)')
    .option('--control <path>', 'control socket path', DEFAULT_CONTROL_PATH)
    .option('-p, --proto <proto>', 'only packets of this protocol (name or number)')
    .option('-s, --src <addr[/len]>', 'only packets from this address or network')
    .option('-d, --dst <addr[/len]>', 'only packets to this address or network')
    .option('--sport <port>', 'only packets from this source port')
    .option('--dport <port>', 'only packets to this destination port')
    .option('-i, --iface <name>', 'only packets coming in or going out on this interface')
    .option('-4, --ipv4', 'only IPv4 packets')
    .option('-6, --ipv6', 'only IPv6 packets')
    .option('--rate <n>', 'at most this many events per second (the rest are counted as suppressed)', '1000')
    .option('--json', 'print each event as a JSON line')
    .action(async (opts: TraceCliOptions) => {
      let filter: TraceFilterJson;
      let rate: number | undefined;
      try {
        filter = cliFilter(opts);
        if (opts.rate !== undefined) {
          if (!/^\d+$/.test(opts.rate) || Number(opts.rate) < 1 || Number(opts.rate) > 100_000) {
            throw new Error(`--rate: "${opts.rate}" is not a number 1-100000`);
          }
          rate = Number(opts.rate);
        }
      } catch (err) {
        process.stderr.write(`nfqwall trace: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
        return;
      }
      process.exitCode = await streamTrace(opts.control, filter, rate, opts.json === true);
    });
}
