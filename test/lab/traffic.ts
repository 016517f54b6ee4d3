// Traffic helpers that run inside lab hosts: small Node scripts started with `node -e` in the host's namespace.
// Scripts take their parameters from argv (never interpolated), print `ready` once bound, and exit by themselves.
import type { ChildProcess } from 'node:child_process';
import type { Host } from './lab';

const NODE = process.execPath;

/** Resolves with the first line of the child's stdout that matches, rejects on exit or timeout. */
function waitLine(child: ChildProcess, match: RegExp, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const timer = setTimeout(() => finish(new Error(`no ${match} within ${ms} ms: ${err.trim()}`)), ms);
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) if (match.test(line)) return finish(undefined, line);
    };
    const onErr = (chunk: Buffer): void => {
      err += chunk.toString();
    };
    const onExit = (code: number | null): void => finish(new Error(`exited (${code}) before ${match}: ${err.trim()}`));
    function finish(e: Error | undefined, line?: string): void {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
      if (e !== undefined) reject(e);
      else resolve(line ?? '');
    }
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}

function family(addr: string): 'udp4' | 'udp6' {
  return addr.includes(':') ? 'udp6' : 'udp4';
}

/** Sends `count` echo requests; resolves with how many replies came back. Needs iputils ping. */
export async function ping(host: Host, addr: string, count: number, opts: { intervalS?: number; waitS?: number } = {}): Promise<number> {
  const r = await host.exec(
    ['ping', '-n', '-q', '-c', String(count), '-i', String(opts.intervalS ?? 0.2), '-W', String(opts.waitS ?? 1), addr],
    { check: false, timeoutMs: 10_000 + count * 2_000 },
  );
  const m = /(\d+) (?:packets )?received/.exec(r.stdout);
  if (m === null) throw new Error(`ping ${addr} in ${host.name}: no summary (exit ${r.code}): ${r.stderr.trim()}`);
  return Number(m[1]);
}

// argv: family addr port. Echoes every datagram back to its sender.
const UDP_ECHO = `
const dgram = require('node:dgram');
const [fam, addr, port] = process.argv.slice(1);
const s = dgram.createSocket(fam);
s.on('message', (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
s.bind(Number(port), addr, () => process.stdout.write('ready\\n'));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

// argv: family addr port count waitMs. Sends count numbered datagrams, prints the number of distinct replies.
// The socket stays unconnected: on a connected one an ICMP error (REJECT) stops later sends as soon as it arrives, which
// makes how many datagrams leave depend on how fast the error came back.
const UDP_CLIENT = `
const dgram = require('node:dgram');
const [fam, addr, port, count, waitMs] = process.argv.slice(1);
const s = dgram.createSocket(fam);
const seen = new Set();
s.on('message', (msg, rinfo) => { if (rinfo.address !== addr) return; seen.add(msg.toString()); if (seen.size === Number(count)) done(); });
function done() { process.stdout.write('replies ' + seen.size + '\\n'); process.exit(0); }
s.bind(0, () => {
  for (let i = 0; i < Number(count); i++) s.send('nfqw-' + i, Number(port), addr);
  setTimeout(done, Number(waitMs));
});
`;

/** Echo server on `server` and client on `client`: resolves with how many of `count` datagrams came back. */
export async function udpExchange(
  client: Host,
  server: Host,
  addr: string,
  port: number,
  count: number,
  waitMs = 1_500,
): Promise<number> {
  const echo = server.spawn([NODE, '-e', UDP_ECHO, family(addr), addr, String(port)]);
  try {
    await waitLine(echo, /^ready$/, 10_000);
    const r = await client.exec([NODE, '-e', UDP_CLIENT, family(addr), addr, String(port), String(count), String(waitMs)], {
      timeoutMs: waitMs + 10_000,
    });
    const m = /^replies (\d+)$/m.exec(r.stdout);
    if (m === null) throw new Error(`udpExchange: no result: ${r.stderr.trim()}`);
    return Number(m[1]);
  } finally {
    echo.kill('SIGKILL');
  }
}

// argv: addr port. Accepts connections and echoes what it reads.
const TCP_ECHO = `
const net = require('node:net');
const [addr, port] = process.argv.slice(1);
const srv = net.createServer((c) => { c.on('error', () => {}); c.pipe(c); });
srv.listen(Number(port), addr, () => process.stdout.write('ready\\n'));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

// argv: addr port timeoutMs. Connects, sends a line, prints `ok` if it comes back, else `fail <why>`.
const TCP_CLIENT = `
const net = require('node:net');
const [addr, port, timeoutMs] = process.argv.slice(1);
const msg = 'nfqwall-tcp-probe';
const c = net.connect({ host: addr, port: Number(port) });
let got = '';
const t = setTimeout(() => { process.stdout.write('fail timeout\\n'); process.exit(0); }, Number(timeoutMs));
c.on('connect', () => c.write(msg));
c.on('data', (d) => { got += d; if (got === msg) { clearTimeout(t); process.stdout.write('ok\\n'); process.exit(0); } });
c.on('error', (e) => { process.stdout.write('fail ' + e.code + '\\n'); process.exit(0); });
`;

/** Resolves true when a TCP connection from `client` to a server on `server` carries data both ways. */
export async function tcpConnect(client: Host, server: Host, addr: string, port: number, timeoutMs = 3_000): Promise<boolean> {
  const srv = server.spawn([NODE, '-e', TCP_ECHO, addr, String(port)]);
  try {
    await waitLine(srv, /^ready$/, 10_000);
    const r = await client.exec([NODE, '-e', TCP_CLIENT, addr, String(port), String(timeoutMs)], { timeoutMs: timeoutMs + 10_000 });
    if (/^ok$/m.test(r.stdout)) return true;
    if (/^fail /m.test(r.stdout)) return false;
    throw new Error(`tcpConnect: no result: ${r.stderr.trim()}`);
  } finally {
    srv.kill('SIGKILL');
  }
}

// argv: family addr port. Counts datagrams; prints the count for every line read on stdin.
const UDP_SINK = `
const dgram = require('node:dgram');
const [fam, addr, port] = process.argv.slice(1);
const s = dgram.createSocket(fam);
let n = 0;
s.on('message', () => { n++; });
s.bind(Number(port), addr, () => process.stdout.write('ready\\n'));
process.stdin.on('data', () => process.stdout.write('count ' + n + '\\n'));
process.stdin.on('end', () => process.exit(0));
`;

// argv: family addr port count. Fires count datagrams without waiting for anything.
const UDP_SEND = `
const dgram = require('node:dgram');
const [fam, addr, port, count] = process.argv.slice(1);
const s = dgram.createSocket(fam);
let left = Number(count);
s.connect(Number(port), addr, () => {
  const next = () => { if (left-- <= 0) return s.close(); s.send('nfqw', next); };
  next();
});
`;

export interface UdpSink {
  /** Datagrams received so far. */
  count(): Promise<number>;
  stop(): void;
}

/** A UDP listener in `host` that counts the datagrams it receives. */
export async function udpSink(host: Host, addr: string, port: number): Promise<UdpSink> {
  const child = host.spawn([NODE, '-e', UDP_SINK, family(addr), addr, String(port)]);
  await waitLine(child, /^ready$/, 10_000);
  return {
    async count(): Promise<number> {
      const line = waitLine(child, /^count \d+$/, 5_000);
      child.stdin?.write('?\n');
      return Number((await line).split(' ')[1]);
    },
    stop(): void {
      child.kill('SIGKILL');
    },
  };
}

/** Sends `count` small datagrams from `host` to addr:port and resolves when they are sent. */
export async function udpSend(host: Host, addr: string, port: number, count: number): Promise<void> {
  await host.exec([NODE, '-e', UDP_SEND, family(addr), addr, String(port), String(count)], { timeoutMs: 10_000 + count });
}

/** Resolves with everything `child` printed on stdout from now until `re` matches it; rejects after `ms`. */
export function printedUntil(child: ChildProcess, re: RegExp, ms = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms: ${buf}`)), ms);
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      if (re.test(buf)) {
        clearTimeout(timer);
        resolve(buf);
      }
    });
  });
}
