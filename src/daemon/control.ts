// The control socket: a Unix stream socket speaking newline-delimited JSON. One request per line, one response line
// per request, in order. A bad request gets `{ok:false,error}`; nothing a client sends can crash the daemon.
//
//   {"cmd":"status"}                  -> {ok:true, pid, uptimeSeconds, queue, failOpen,
//                                          rulesets: {ipv4?: {sources, tables, chains, rules}, ipv6?: ...},
//                                          queues: [QueueStats], packets: {...}, hooks: [...]}
//   {"cmd":"save","counters":true}    -> {ok:true, rulesets: {ipv4?: "<iptables-save text>", ipv6?: "..."}}
//   {"cmd":"reload"}                  -> {ok:true, trigger, durationMs} once the new rules are in force, or
//                                        {ok:false, error: "<file:line:column: ...>\n..."} with the old ones kept
//   {"cmd":"counters","zero":true}    -> {ok:true, zeroed: N}  (rule and chain counters, as iptables -Z)
//   {"cmd":"conntrack"}               -> {ok:true, entries: [CtEntry], stats: ConnTableStats} (H16: nfqwall conntrack -L)
//   {"cmd":"trace","filter":{...}}    -> {ok:true, tracing:true}, then one line per event ({trace:TraceEvent} or
//                                        {suppressed:N}) until the client closes (trace: src/daemon/trace.ts)
//
// Unknown fields are refused, so a typo is an error rather than a silently different request.
//
// A request line longer than MAX_REQUEST_BYTES gets an error and the connection is closed.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const DEFAULT_CONTROL_PATH = '/run/nfqwall/control.sock';
export const MAX_REQUEST_BYTES = 64 * 1024;
// H18: a started request line must be complete within this long (a client trickling bytes cannot hold a connection
// open forever), and a connection with nothing started and nothing pending is closed after the idle time.
export const REQUEST_TIMEOUT_MS = 10_000;
export const IDLE_TIMEOUT_MS = 60_000;
// H18: connections beyond this many at once are closed as they arrive, so a flood of clients cannot exhaust memory.
export const MAX_CONNECTIONS = 256;

export interface ConnectionLimits {
  requestTimeoutMs?: number;
  idleTimeoutMs?: number;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type ControlRequest = { cmd: string } & { [key: string]: JsonValue };
export type ControlResponse = { ok: true; [key: string]: unknown } | { ok: false; error: string };

/** A command handler returns the fields of its `{ok:true,...}` answer, or throws to answer `{ok:false,error}`. */
export type Handler = (
  req: ControlRequest,
  conn?: ControlConnection, // trace:
) => Record<string, unknown> | Promise<Record<string, unknown>>;

// trace: a streaming command (`trace`) sets `streaming`: after its answer the connection carries only the lines the
// command writes to `socket`, no deadline closes it and further requests are ignored, until the client closes it.
export interface ControlConnection {
  socket: net.Socket;
  streaming: boolean;
}
export type Handlers = Readonly<Record<string, Handler>>;

/** Answers one request line. Never throws. */
export async function handleLine(line: string, handlers: Handlers, conn?: ControlConnection): Promise<ControlResponse> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch (err) {
    return { ok: false, error: `malformed request: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) {
    return { ok: false, error: 'malformed request: expected a JSON object' };
  }
  const cmd = (req as { cmd?: unknown }).cmd;
  if (typeof cmd !== 'string') return { ok: false, error: 'malformed request: "cmd" must be a string' };
  const handler = Object.prototype.hasOwnProperty.call(handlers, cmd) ? handlers[cmd] : undefined;
  if (!handler) {
    return { ok: false, error: `unknown command "${cmd}" (known: ${Object.keys(handlers).sort().join(', ')})` };
  }
  try {
    const fields = await handler(req as ControlRequest, conn); // trace: conn
    // `ok` first for readers, and last so a handler cannot override it.
    return Object.assign({ ok: true as const }, fields, { ok: true as const });
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

/** Serves one connection: splits lines, bounds their size, answers in order. */
export function serveConnection(sock: net.Socket, handlers: Handlers, limits: ConnectionLimits = {}): void {
  let buf = '';
  let chain = Promise.resolve();
  let closed = false;
  const conn: ControlConnection = { socket: sock, streaming: false }; // trace:
  // H18: per-connection deadlines (see REQUEST_TIMEOUT_MS); answers still pending keep the connection open.
  let pending = 0;
  let deadline: NodeJS.Timeout | undefined;
  const requestMs = limits.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const idleMs = limits.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  const arm = (): void => {
    if (deadline !== undefined) clearTimeout(deadline);
    deadline = undefined;
    if (closed || pending > 0 || conn.streaming) return; // trace: streaming
    const partial = buf !== '';
    deadline = setTimeout(() => {
      if (partial) send({ ok: false, error: `request not completed within ${requestMs} ms` });
      closed = true;
      sock.end();
      // A client that does not read either would keep the half-closed socket: drop it a second later.
      setTimeout(() => sock.destroy(), 1000).unref();
    }, partial ? requestMs : idleMs);
    deadline.unref();
  };
  const send = (res: ControlResponse): void => {
    if (!closed && !sock.destroyed) sock.write(JSON.stringify(res) + '\n');
  };
  sock.setEncoding('utf8');
  sock.on('error', () => {
    closed = true;
  });
  sock.on('close', () => {
    closed = true;
    if (deadline !== undefined) clearTimeout(deadline);
  });
  arm();
  sock.on('data', (chunk: string) => {
    if (closed || conn.streaming) return; // trace: streaming
    const wasEmpty = buf === '';
    buf += chunk;
    let nl: number;
    let completed = false;
    while ((nl = buf.indexOf('\n')) >= 0) {
      completed = true;
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (Buffer.byteLength(line) > MAX_REQUEST_BYTES) {
        tooLarge();
        return;
      }
      if (line.trim() === '') continue;
      pending++;
      chain = chain.then(async () => {
        if (conn.streaming) return; // trace:
        send(await handleLine(line, handlers, conn)); // trace: conn
        pending--;
        arm();
      });
    }
    if (Buffer.byteLength(buf) > MAX_REQUEST_BYTES) {
      tooLarge();
      return;
    }
    // The request deadline runs from a line's first byte, not its latest one.
    if (wasEmpty || completed) arm();
  });
  // The rest of an oversized line cannot be resynchronised; answer and hang up after pending answers.
  function tooLarge(): void {
    buf = '';
    chain = chain.then(() => {
      send({ ok: false, error: `request larger than ${MAX_REQUEST_BYTES} bytes` });
      closed = true;
      sock.end();
    });
  }
}

/** True when something answers on the socket path (another daemon owns it). */
function socketAlive(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(p);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/**
 * Makes `socketPath` ready to listen on: creates its directory (0700) if needed and removes a stale socket file left by
 * a dead daemon. Throws when another daemon answers there or the path is not a socket. The daemon calls it before
 * touching the kernel, so a second instance fails before it changes anything.
 */
export async function claimSocketPath(socketPath: string): Promise<void> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    st = undefined;
  }
  if (!st) return;
  if (!st.isSocket()) throw new Error(`${socketPath}: exists and is not a socket`);
  if (await socketAlive(socketPath)) throw new Error(`${socketPath}: another nfqwall is listening there`);
  fs.unlinkSync(socketPath);
}

/** Refuses fields a command does not know. */
export function checkFields(req: ControlRequest, allowed: readonly string[]): void {
  for (const k of Object.keys(req)) {
    if (k !== 'cmd' && !allowed.includes(k)) {
      const known = allowed.length > 0 ? ` (known: ${allowed.join(', ')})` : '';
      throw new Error(`malformed request: "${req.cmd}" takes no field "${k}"${known}`);
    }
  }
}

/**
 * Lets a group reach a socket in a directory nfqwall created (0700, ours): group-owned and 0710. A directory someone
 * else prepared (RuntimeDirectory=, /tmp) is left as it is.
 */
function openDirToGroup(dir: string, gid: number): void {
  const st = fs.statSync(dir);
  if (st.uid !== process.getuid?.() || (st.mode & 0o777) !== 0o700) return;
  fs.chownSync(dir, -1, gid);
  fs.chmodSync(dir, 0o710);
}

/** A group name (from /etc/group) or number, as a gid. Throws when the name is unknown. */
export function resolveGroup(group: string, groupFile = '/etc/group'): number {
  if (/^\d+$/.test(group)) return Number(group);
  let text = '';
  try {
    text = fs.readFileSync(groupFile, 'utf8');
  } catch {
    // No group database: only numbers work.
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`control_group: no group "${group}" in ${groupFile}`);
}

export interface ListenOptions extends ConnectionLimits {
  /** Socket file mode (default 0600). */
  mode?: number;
  /** Group owning the socket file, so its members may connect (with a mode granting the group rw). */
  group?: string;
}

export class ControlServer {
  private constructor(
    readonly path: string,
    private readonly server: net.Server,
  ) {}

  /** Listens on `socketPath` with mode 0600 (or `opts.mode`, `opts.group`), after claimSocketPath. */
  static async listen(socketPath: string, handlers: Handlers, opts: ListenOptions = {}): Promise<ControlServer> {
    const mode = opts.mode ?? 0o600;
    const gid = opts.group === undefined ? undefined : resolveGroup(opts.group);
    await claimSocketPath(socketPath);
    const server = net.createServer((sock) => serveConnection(sock, handlers, opts));
    server.maxConnections = MAX_CONNECTIONS; // H18
    // The umask makes the socket 0600 from birth, so there is no window in which others could connect; the group
    // and any wider mode are applied once the file exists.
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    server.on('error', () => undefined);
    try {
      if (gid !== undefined) {
        fs.chownSync(socketPath, -1, gid);
        openDirToGroup(path.dirname(socketPath), gid);
      }
      if (mode !== 0o600) fs.chmodSync(socketPath, mode);
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw err;
    }
    return new ControlServer(socketPath, server);
  }

  /** Stops listening and removes the socket file. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      fs.unlinkSync(this.path);
    } catch {
      // Already gone.
    }
  }
}

/** Sends one request and waits for its answer. Rejects when the daemon cannot be reached or does not answer. */
export function controlRequest(
  socketPath: string,
  req: ControlRequest,
  timeoutMs = 5000,
): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${socketPath}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.destroy();
      try {
        const res = JSON.parse(buf.slice(0, nl)) as unknown;
        if (typeof res !== 'object' || res === null || typeof (res as { ok?: unknown }).ok !== 'boolean') {
          reject(new Error(`${socketPath}: answer is not a control response`));
          return;
        }
        resolve(res as ControlResponse);
      } catch (err) {
        reject(new Error(`${socketPath}: unreadable answer: ${err instanceof Error ? err.message : String(err)}`));
      }
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot reach nfqwall at ${socketPath}: ${err.message}`));
    });
    sock.once('end', () => {
      clearTimeout(timer);
      reject(new Error(`${socketPath}: connection closed without an answer`));
    });
  });
}
