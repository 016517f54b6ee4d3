import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  ControlServer,
  MAX_REQUEST_BYTES,
  controlRequest,
  handleLine,
  type Handlers,
} from '../../src/daemon/control';

const handlers: Handlers = {
  status: () => ({ pid: 42, queues: [] }),
  echo: (req) => ({ got: req['value'] ?? null }),
  fail: () => {
    throw new Error('it broke');
  },
  slow: async () => {
    await new Promise((r) => setTimeout(r, 30));
    return { slow: true };
  },
};

describe('daemon/control request handling', () => {
  it('answers a known command with ok:true and its fields', async () => {
    assert.deepEqual(await handleLine('{"cmd":"status"}', handlers), { ok: true, pid: 42, queues: [] });
    assert.deepEqual(await handleLine('{"cmd":"echo","value":[1,"a"]}', handlers), { ok: true, got: [1, 'a'] });
  });

  it('answers malformed JSON with an error', async () => {
    const res = await handleLine('{"cmd":', handlers);
    assert.equal(res.ok, false);
    assert.match((res as { error: string }).error, /^malformed request: /);
  });

  it('answers a JSON value that is not a request with an error', async () => {
    for (const line of ['[1,2]', '"status"', 'null', '{"cmd":3}', '{}']) {
      const res = await handleLine(line, handlers);
      assert.equal(res.ok, false, line);
      assert.match((res as { error: string }).error, /malformed request/, line);
    }
  });

  it('answers an unknown command, including inherited property names, with an error listing the known ones', async () => {
    for (const cmd of ['reboot', 'toString', '__proto__', 'constructor']) {
      const res = await handleLine(JSON.stringify({ cmd }), handlers);
      assert.deepEqual(res, { ok: false, error: `unknown command "${cmd}" (known: echo, fail, slow, status)` });
    }
  });

  it('turns a handler exception into ok:false', async () => {
    assert.deepEqual(await handleLine('{"cmd":"fail"}', handlers), { ok: false, error: 'it broke' });
  });

  it('does not let a handler override ok', async () => {
    const res = await handleLine('{"cmd":"x"}', { x: () => ({ ok: false, note: 1 }) });
    assert.deepEqual(res, { ok: true, note: 1 });
  });
});

/** Sends raw bytes, collects answer lines until the server closes or `want` lines arrived. */
function rawExchange(sockPath: string, data: string | Buffer, want: number): Promise<{ lines: string[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sockPath);
    let buf = '';
    let closed = false;
    const timer = setTimeout(() => finish(), 3000);
    const finish = (): void => {
      clearTimeout(timer);
      c.destroy();
      resolve({ lines: buf.split('\n').filter((l) => l !== ''), closed });
    };
    c.setEncoding('utf8');
    c.on('connect', () => c.write(data));
    c.on('data', (d: string) => {
      buf += d;
      if (buf.split('\n').filter((l) => l !== '').length >= want && want > 0) finish();
    });
    c.on('end', () => {
      closed = true;
      finish();
    });
    c.on('error', reject);
  });
}

describe('daemon/control socket', () => {
  let dir: string;
  let sockPath: string;
  let server: ControlServer | undefined;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-control-'));
    sockPath = path.join(dir, 'sub', 'control.sock');
    server = await ControlServer.listen(sockPath, handlers);
  });

  afterEach(async () => {
    await server?.close();
    server = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates the socket with mode 0600 and answers the client helper', async () => {
    assert.equal(fs.statSync(sockPath).mode & 0o777, 0o600);
    assert.deepEqual(await controlRequest(sockPath, { cmd: 'status' }), { ok: true, pid: 42, queues: [] });
  });

  it('answers several requests on one connection in order, errors included, and keeps serving', async () => {
    const { lines } = await rawExchange(sockPath, '{"cmd":"slow"}\nnot json\n\n{"cmd":"nope"}\n{"cmd":"status"}\n', 4);
    const res = lines.map((l) => JSON.parse(l) as { ok: boolean; error?: string });
    assert.equal(res.length, 4);
    assert.deepEqual(res[0], { ok: true, slow: true });
    assert.equal(res[1]!.ok, false);
    assert.match(res[1]!.error!, /malformed/);
    assert.equal(res[2]!.ok, false);
    assert.match(res[2]!.error!, /unknown command "nope"/);
    assert.deepEqual(res[3], { ok: true, pid: 42, queues: [] });
  });

  it('answers an oversized request with an error and closes that connection, and still serves others', async () => {
    const big = Buffer.alloc(MAX_REQUEST_BYTES + 10, 'a'); // no newline: the server must not wait for one forever
    const { lines, closed } = await rawExchange(sockPath, big, 0);
    assert.equal(closed, true);
    assert.equal(lines.length, 1);
    assert.deepEqual(JSON.parse(lines[0]!), { ok: false, error: `request larger than ${MAX_REQUEST_BYTES} bytes` });
    assert.equal((await controlRequest(sockPath, { cmd: 'status' })).ok, true);
  });

  it('answers an oversized line that does end in a newline the same way', async () => {
    const line = `{"cmd":"echo","value":"${'b'.repeat(MAX_REQUEST_BYTES)}"}\n`;
    const { lines, closed } = await rawExchange(sockPath, line, 0);
    assert.equal(closed, true);
    assert.match(lines[0]!, /request larger than/);
  });

  it('replaces a stale socket file but refuses a live one or a non-socket', async () => {
    await assert.rejects(ControlServer.listen(sockPath, handlers), /another nfqwall is listening/);
    await server!.close();
    // A stale socket: bound by a process killed before it could unlink it.
    const script = `require('net').createServer().listen(${JSON.stringify(sockPath)}, () => process.kill(process.pid, 'SIGKILL'))`;
    spawnSync(process.execPath, ['-e', script], { timeout: 10_000 });
    assert.ok(fs.lstatSync(sockPath).isSocket());
    server = await ControlServer.listen(sockPath, handlers);
    assert.equal((await controlRequest(sockPath, { cmd: 'status' })).ok, true);
    await server.close();
    server = undefined;
    assert.equal(fs.existsSync(sockPath), false);
    fs.writeFileSync(sockPath, 'not a socket');
    await assert.rejects(ControlServer.listen(sockPath, handlers), /not a socket/);
  });

  it('the client reports an unreachable daemon', async () => {
    await assert.rejects(controlRequest(path.join(dir, 'missing.sock'), { cmd: 'status' }), /cannot reach nfqwall/);
  });
});
