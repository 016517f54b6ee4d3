// Hostile control-socket clients: trickling (slowloris), idle, concurrent, binary garbage, and a uid without access.
// Oversized lines and malformed JSON one at a time are in test/daemon/control.test.ts; metrics floods, 404 and 405 in
// test/metrics/metrics.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ControlServer, controlRequest, MAX_CONNECTIONS, type Handlers } from '../../src/daemon/control';
import { skipUnlessRoot } from '../lab/lab';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Conn {
  sock: net.Socket;
  lines: string[];
  closed: Promise<number>;
}

/** A raw connection that collects answer lines; `closed` resolves with the ms from connect to close. */
function connect(p: string): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const sock = net.connect(p);
    const lines: string[] = [];
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    const closed = new Promise<number>((r) => sock.once('close', () => r(Date.now() - t0)));
    sock.once('error', reject);
    sock.once('connect', () => resolve({ sock, lines, closed }));
  });
}

describe('robust: hostile control-socket clients', function () {
  this.timeout(30_000);
  let dir: string;
  let sockPath: string;
  let server: ControlServer;
  let served = 0;
  const handlers: Handlers = {
    status: () => ({ served: ++served }),
    slow: async () => {
      await sleep(1500);
      return { slow: true };
    },
  };

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-robust-ctl-'));
    sockPath = path.join(dir, 'control.sock');
    server = await ControlServer.listen(sockPath, handlers, { requestTimeoutMs: 1000, idleTimeoutMs: 1200 });
  });
  afterEach(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a client trickling one byte at a time does not block others, and is cut off at the request deadline', async () => {
    const slow = await connect(sockPath);
    const request = '{"cmd":"status"}\n';
    let i = 0;
    const drip = setInterval(() => {
      if (i < request.length && !slow.sock.destroyed) slow.sock.write(request[i++]!);
    }, 150);
    try {
      // While it trickles, other clients are answered at once.
      for (let k = 0; k < 5; k++) {
        const t0 = Date.now();
        const r = await controlRequest(sockPath, { cmd: 'status' }, 2000);
        assert.equal(r.ok, true);
        assert.ok(Date.now() - t0 < 500, `answer took ${Date.now() - t0} ms`);
      }
      const ms = await slow.closed;
      assert.ok(ms >= 900 && ms < 4000, `slow client closed after ${ms} ms`);
      assert.ok(i < request.length, 'the deadline passed before the request was complete');
      assert.equal(slow.lines.length, 1);
      assert.match(slow.lines[0]!, /request not completed within 1000 ms/);
    } finally {
      clearInterval(drip);
      slow.sock.destroy();
    }
  });

  it('closes a connection that sends nothing after the idle time, but not one awaiting a slow answer', async () => {
    const idle = await connect(sockPath);
    const waiting = await connect(sockPath);
    waiting.sock.write('{"cmd":"slow"}\n');
    const idleMs = await idle.closed;
    assert.ok(idleMs >= 1100 && idleMs < 4000, `idle connection closed after ${idleMs} ms`);
    assert.deepEqual(idle.lines, []);
    await sleep(600); // the slow answer comes 1500 ms after the request, past the idle time
    assert.deepEqual(waiting.lines.map((l) => JSON.parse(l) as unknown), [{ ok: true, slow: true }]);
    waiting.sock.destroy();
  });

  it('answers 100 clients at once, each with its own answer', async () => {
    const before = served;
    const answers = await Promise.all(Array.from({ length: 100 }, () => controlRequest(sockPath, { cmd: 'status' }, 10_000)));
    assert.equal(answers.length, 100);
    for (const a of answers) assert.equal(a.ok, true);
    const seen = new Set(answers.map((a) => (a.ok ? a['served'] : undefined)));
    assert.equal(seen.size, 100);
    assert.equal(served - before, 100);
  });

  it(`holds at most ${MAX_CONNECTIONS} connections at once, closing the rest, and serves again once they go`, async () => {
    const socks = await Promise.all(Array.from({ length: MAX_CONNECTIONS + 44 }, () => connect(sockPath)));
    const states = socks.map(() => false);
    socks.forEach((c, i) => void c.closed.then(() => (states[i] = true)));
    const deadline = Date.now() + 5000;
    while (states.filter(Boolean).length < 44 && Date.now() < deadline) await sleep(20);
    assert.equal(states.filter(Boolean).length, 44, 'the connections past the limit are closed');
    for (const c of socks) c.sock.destroy();
    await sleep(100);
    assert.equal((await controlRequest(sockPath, { cmd: 'status' })).ok, true);
  });

  it('answers binary garbage and broken UTF-8 line by line with errors, and keeps serving', async () => {
    let seed = 12345;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const c = await connect(sockPath);
    let lines = 0;
    for (let k = 0; k < 50; k++) {
      const b = Buffer.alloc(1 + (rand() % 200), 0);
      for (let j = 0; j < b.length; j++) b[j] = rand() === 10 ? 0xc3 : rand();
      // No newline inside: one line, one answer.
      for (let j = 0; j < b.length; j++) if (b[j] === 10) b[j] = 0xff;
      c.sock.write(Buffer.concat([b, Buffer.from('\n')]));
      if (b.toString('utf8').trim() !== '') lines++;
    }
    c.sock.write('{"cmd":"status"}\n');
    const deadline = Date.now() + 5000;
    while (c.lines.length < lines + 1 && Date.now() < deadline) await sleep(20);
    assert.equal(c.lines.length, lines + 1);
    for (const l of c.lines.slice(0, -1)) assert.equal((JSON.parse(l) as { ok: boolean }).ok, false);
    assert.equal((JSON.parse(c.lines.at(-1)!) as { ok: boolean }).ok, true);
    c.sock.destroy();
    assert.equal((await controlRequest(sockPath, { cmd: 'status' })).ok, true);
  });

  it('refuses a uid other than the owner: EACCES on the 0600 socket (root)', function () {
    skipUnlessRoot(this, 'control socket: another uid');
    fs.chmodSync(dir, 0o755); // the directory lets anyone in: the socket's own mode is what refuses
    const probe = `const s=require('net').connect(${JSON.stringify(sockPath)});` +
      `s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(0)})`;
    const r = spawnSync(process.execPath, ['-e', probe], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'EACCES');
    // The same probe as root connects, so the refusal above is the mode's doing.
    const ok = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(ok.stdout.trim(), 'connected');
  });
});
