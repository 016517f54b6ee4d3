// HTTP servers and clients that run inside lab hosts: small Node scripts started with `node -e`, parameters in argv.
import type { ChildProcess } from 'node:child_process';
import type { Host } from '../../test/lab/lab';

const NODE = process.execPath;

// argv: name addr port... Answers every request with its own name, and the address the request came from in an
// x-peer header (so the demo can show what source address MASQUERADE left); prints `ready` once every port is bound.
const SERVER = `
const http = require('node:http');
const [name, addr, ...ports] = process.argv.slice(1);
let left = ports.length;
for (const port of ports) {
  const srv = http.createServer((req, res) => { res.setHeader('connection', 'close'); res.setHeader('x-peer', String(req.socket.remoteAddress)); res.end(name + '\\n'); });
  srv.listen(Number(port), addr, () => { if (--left === 0) process.stdout.write('ready\\n'); });
}
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

// argv: addr port count timeoutMs [localAddress] [pauseMs]. One request at a time, each on a new connection, pauseMs
// apart; one JSON line per request:
// {"ok":true,"body":"backend1","peer":"198.18.0.2","ms":3} or {"ok":false,"error":"ECONNREFUSED"|"timeout"|...,"ms":2001}.
const CLIENT = `
const http = require('node:http');
const [addr, port, count, timeoutMs, localAddress, pauseMs] = process.argv.slice(1);
function one() {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
    let settled = false;
    const done = (r) => { if (settled) return; settled = true; clearTimeout(timer); resolve({ ...r, ms: Math.round(ms() * 10) / 10 }); };
    const req = http.get({ host: addr, port: Number(port), path: '/', agent: false, localAddress: localAddress || undefined }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => done({ ok: true, status: res.statusCode, body: body.trim(), peer: res.headers['x-peer'] }));
      res.on('error', (e) => done({ ok: false, error: e.code || e.message }));
    });
    const timer = setTimeout(() => { done({ ok: false, error: 'timeout' }); req.destroy(); }, Number(timeoutMs));
    req.on('error', (e) => done({ ok: false, error: e.code || e.message }));
  });
}
(async () => {
  for (let i = 0; i < Number(count); i++) {
    if (i > 0 && Number(pauseMs) > 0) await new Promise((r) => setTimeout(r, Number(pauseMs)));
    process.stdout.write(JSON.stringify(await one()) + '\\n');
  }
  process.exit(0);
})();
`;

export interface HttpResult {
  ok: boolean;
  body?: string;
  status?: number;
  /** The source address the server saw (after any SNAT/MASQUERADE on the way). */
  peer?: string;
  error?: string;
  ms: number;
}

function firstLine(child: ChildProcess, match: RegExp, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no "${match.source}" within ${ms} ms: ${err.trim()}`)), ms);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (match.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}) before ready: ${err.trim()}`));
    });
  });
}

/** Starts an HTTP server in `host` answering `name` on every port; resolves once it listens. Killed with the lab. */
export async function startServer(host: Host, name: string, addr: string, ports: number[]): Promise<ChildProcess> {
  const child = host.spawn([NODE, '-e', SERVER, name, addr, ...ports.map(String)]);
  await firstLine(child, /^ready$/m, 10_000);
  return child;
}

/**
 * `count` GET requests from `host`, one after the other; `onResult` sees each as it completes (for progress).
 * `localAddress` picks the source address when the host has several; `pauseMs` spaces the requests (a stream that
 * lasts while something else happens). Resolves with all of them.
 */
export function httpRequests(
  host: Host,
  addr: string,
  port: number,
  count: number,
  timeoutMs: number,
  onResult: (r: HttpResult, i: number) => void = () => undefined,
  localAddress?: string,
  pauseMs = 0,
): Promise<HttpResult[]> {
  const args = [NODE, '-e', CLIENT, addr, String(port), String(count), String(timeoutMs), localAddress ?? '', String(pauseMs)];
  const child = host.spawn(args);
  const results: HttpResult[] = [];
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        const r = JSON.parse(line) as HttpResult;
        results.push(r);
        onResult(r, results.length - 1);
      }
    });
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => {
      if (results.length === count) resolve(results);
      else reject(new Error(`HTTP client exited (${code}) after ${results.length}/${count} requests: ${err.trim()}`));
    });
  });
}
