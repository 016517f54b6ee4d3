import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileWatcher } from '../../src/daemon/watch';
import { inheritableSockets, IpMonitor } from '../../src/daemon/ipmonitor';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('daemon/watch: files watched through their directory', () => {
  let dir: string;
  let w: FileWatcher | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-watch-'));
  });
  afterEach(() => {
    w?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sees an atomic replace (write elsewhere, rename over) once, debounced, and ignores other files', async () => {
    const file = path.join(dir, 'rules.v4');
    fs.writeFileSync(file, 'one');
    const calls: string[][] = [];
    w = new FileWatcher([file], (changed) => calls.push(changed), { debounceMs: 100 });
    assert.equal(w.watching, 1);
    fs.writeFileSync(path.join(dir, 'other.txt'), 'x');
    await sleep(250);
    assert.deepEqual(calls, [], 'another file in the directory is not ours');
    // What editors and `mv` do: a new inode renamed over the old name, plus a few writes in a burst.
    fs.writeFileSync(path.join(dir, '.rules.v4.tmp'), 'two');
    fs.renameSync(path.join(dir, '.rules.v4.tmp'), file);
    fs.appendFileSync(file, 'more');
    await sleep(300);
    assert.deepEqual(calls, [[file]]);
    // Still watching after the replace (a watch on the file's inode would be dead now).
    fs.writeFileSync(file, 'three');
    await sleep(300);
    assert.equal(calls.length, 2);
  });

  it('watches several directories and nothing after close', async () => {
    const sub = path.join(dir, 'sub');
    fs.mkdirSync(sub);
    const a = path.join(dir, 'a');
    const b = path.join(sub, 'b');
    const calls: string[][] = [];
    w = new FileWatcher([a, b], (changed) => calls.push(changed.sort()), { debounceMs: 50 });
    assert.equal(w.watching, 2);
    fs.writeFileSync(a, '1');
    fs.writeFileSync(b, '1');
    await sleep(200);
    assert.deepEqual(calls, [[a, b].sort()]);
    w.close();
    fs.writeFileSync(a, '2');
    await sleep(200);
    assert.equal(calls.length, 1);
  });
});

describe('daemon/ipmonitor', () => {
  it('calls back once per burst of output lines, and stops its child at close', async () => {
    let calls = 0;
    const m = new IpMonitor(() => calls++, {
      debounceMs: 50,
      argv: ['sh', '-c', 'echo a; echo b; sleep 0.3; echo c; exec sleep 30'],
    });
    const pid = m.pid;
    assert.ok(pid !== undefined);
    await sleep(200);
    assert.equal(calls, 1);
    await sleep(400);
    assert.equal(calls, 2);
    assert.equal(m.events, 3);
    m.close();
    await sleep(100);
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the monitor process is gone');
  });

  it('restarts a monitor that dies and refreshes after the restart', async () => {
    let calls = 0;
    const errors: string[] = [];
    const m = new IpMonitor(() => calls++, {
      debounceMs: 10,
      restartMs: 50,
      argv: ['sh', '-c', 'exit 3'],
      onError: (e) => errors.push(e),
      leakingFds: () => [],
    });
    await sleep(300);
    m.close();
    assert.ok(errors.length >= 2, errors.join('; '));
    assert.match(errors[0]!, /ip monitor exited \(3\)/);
    assert.ok(calls >= 1);
  });

  it('does not restart while a descriptor would leak into the child (the queue socket)', async () => {
    const errors: string[] = [];
    const m = new IpMonitor(() => undefined, {
      restartMs: 20,
      argv: ['sh', '-c', 'exit 0'],
      onError: (e) => errors.push(e),
      leakingFds: () => [7],
    });
    await sleep(300);
    m.close();
    assert.equal(errors.length, 2, errors.join('; '));
    assert.match(errors[1]!, /ip monitor not restarted: it would inherit sockets 7/);
    assert.equal(m.pid, undefined);
  });

  it('inheritableSockets lists sockets without close-on-exec', async () => {
    assert.ok(inheritableSockets().every((fd) => Number.isInteger(fd) && fd > 2));
    // A child given an extra stdio socket holds it as fd 3 without close-on-exec (sh leaves it so), as the queue
    // socket is in the daemon.
    const child = spawn('sh', ['-c', 'exec sleep 5'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
    try {
      await sleep(200);
      assert.deepEqual(inheritableSockets(`/proc/${child.pid}`), [3]);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
