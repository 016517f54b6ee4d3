// The parts of the addon that need no network namespace: argument checking and sd_notify.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { addon } from '../../src/native';

/** A python3 child that binds an AF_UNIX datagram socket at `address` ('@name' = abstract) and prints what arrives. */
function listen(address: string): Promise<{ child: ChildProcessWithoutNullStreams; next: () => Promise<string> }> {
  const script = [
    'import socket, sys',
    'a = sys.argv[1]',
    "a = '\\0' + a[1:] if a.startswith('@') else a",
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(a)',
    "print('ready', flush=True)",
    'while True:',
    "    print(s.recv(4096).decode().replace('\\n', '|'), flush=True)",
  ].join('\n');
  const child = spawn('python3', ['-c', script, address]);
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  const next = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const l = lines.shift();
      if (l !== undefined) return resolve(l);
      const t = setTimeout(() => reject(new Error(`no datagram at ${address}`)), 5000);
      waiters.push((x) => {
        clearTimeout(t);
        resolve(x);
      });
    });
  return next().then((first) => {
    assert.equal(first, 'ready');
    return { child, next };
  });
}

describe('native addon: notify and argument checks', () => {
  const saved = process.env.NOTIFY_SOCKET;
  afterEach(() => {
    if (saved === undefined) delete process.env.NOTIFY_SOCKET;
    else process.env.NOTIFY_SOCKET = saved;
  });

  it('notify() returns false without NOTIFY_SOCKET', () => {
    delete process.env.NOTIFY_SOCKET;
    assert.equal(addon.notify('READY=1'), false);
  });

  it('notify() sends one datagram to a path socket and to an abstract socket', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-notify-'));
    for (const address of [path.join(dir, 'notify.sock'), `@nfqw-notify-${process.pid}`]) {
      const { child, next } = await listen(address);
      try {
        process.env.NOTIFY_SOCKET = address;
        assert.equal(addon.notify('READY=1\nSTATUS=up'), true);
        assert.equal(await next(), 'READY=1|STATUS=up');
        assert.equal(addon.notify('WATCHDOG=1'), true);
        assert.equal(await next(), 'WATCHDOG=1');
      } finally {
        child.kill();
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('notify() throws when the socket does not exist', () => {
    process.env.NOTIFY_SOCKET = path.join(os.tmpdir(), `nfqw-missing-${process.pid}.sock`);
    assert.throws(() => addon.notify('READY=1'), /notify: cannot send to NOTIFY_SOCKET: No such file or directory/);
  });

  it('Queue rejects bad options before touching the kernel', () => {
    const noop = (): void => {};
    const Q = addon.Queue as unknown as new (o: unknown, f: unknown) => unknown;
    assert.throws(() => new Q({}, noop), { name: 'TypeError', message: /options.queue is required/ });
    assert.throws(() => new Q({ queue: 70000 }, noop), { name: 'RangeError', message: /queue must be an integer/ });
    assert.throws(() => new Q({ queue: 1.5 }, noop), { name: 'RangeError' });
    assert.throws(() => new Q({ queue: 1, overloadVerdict: 'maybe' }, noop), { name: 'TypeError' });
    assert.throws(() => new Q({ queue: 1, failOpen: 'yes' }, noop), { name: 'TypeError' });
    assert.throws(() => new Q({ queue: 1, maxBatch: 0 }, noop), { name: 'RangeError' });
    assert.throws(() => new Q({ queue: 1 }, 'not a function'), { name: 'TypeError' });
  });
});

describe('native addon: the heap', () => {
  it('heapCollect() collects what nothing refers to, now', () => {
    let garbage: unknown[] | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `x${i}` }));
    const held = v8.getHeapStatistics().used_heap_size;
    assert.equal((garbage as unknown[]).length, 200_000);
    garbage = undefined;
    addon.heapCollect();
    const after = v8.getHeapStatistics().used_heap_size;
    assert.ok(after < held - (8 << 20), `the heap held ${held} bytes with the garbage and ${after} after`);
  });
});
