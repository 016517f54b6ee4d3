import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ServiceNotifier, queueHealth, watchdogUsec } from '../../src/daemon/systemd';

function recorder(env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/test.sock' }): { sent: string[]; n: ServiceNotifier; logs: string[] } {
  const sent: string[] = [];
  const logs: string[] = [];
  const n = new ServiceNotifier({ send: (s) => (sent.push(s), true), env, pid: 1234, log: (m) => logs.push(m) });
  return { sent, n, logs };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('systemd: notifications', () => {
  it('sends READY, RELOADING with MONOTONIC_USEC, STOPPING and one-line STATUS', () => {
    const { sent, n } = recorder();
    n.ready('serving 3 rules');
    n.reloading();
    n.reloaded('reload failed:\nfile:1:1: bad');
    n.stopping();
    assert.equal(sent[0], 'READY=1\nSTATUS=serving 3 rules');
    const lines = sent[1]!.split('\n');
    assert.equal(lines[0], 'RELOADING=1');
    const usec = /^MONOTONIC_USEC=(\d+)$/.exec(lines[1]!);
    assert.ok(usec, lines[1]);
    const now = process.hrtime.bigint() / 1000n;
    assert.ok(BigInt(usec[1]!) <= now && now - BigInt(usec[1]!) < 1_000_000n);
    assert.equal(sent[2], 'READY=1\nSTATUS=reload failed: file:1:1: bad');
    assert.match(sent[3]!, /^STOPPING=1\nSTATUS=/);
  });

  it('does nothing without NOTIFY_SOCKET, and never throws when the send fails', () => {
    const { sent, n } = recorder({});
    n.ready();
    assert.equal(n.startWatchdog(() => undefined), undefined);
    assert.deepEqual(sent, []);
    const logs: string[] = [];
    const failing = new ServiceNotifier({
      send: () => {
        throw new Error('ECONNREFUSED');
      },
      env: { NOTIFY_SOCKET: '/x' },
      log: (m) => logs.push(m),
    });
    failing.ready();
    failing.stopping();
    assert.equal(logs.length, 1);
    assert.match(logs[0]!, /ECONNREFUSED/);
  });

  it('reads WATCHDOG_USEC and honours WATCHDOG_PID', () => {
    assert.equal(watchdogUsec({ WATCHDOG_USEC: '10000000' }, 5), 10_000_000);
    assert.equal(watchdogUsec({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: '5' }, 5), 10_000_000);
    assert.equal(watchdogUsec({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: '6' }, 5), undefined);
    assert.equal(watchdogUsec({ WATCHDOG_USEC: '0' }, 5), undefined);
    assert.equal(watchdogUsec({ WATCHDOG_USEC: 'x' }, 5), undefined);
    assert.equal(watchdogUsec({}, 5), undefined);
  });

  it('pets the watchdog every WATCHDOG_USEC/2 only while healthy', async () => {
    const { sent, n, logs } = recorder({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '100000' });
    let problem: string | undefined;
    const interval = n.startWatchdog(() => problem);
    assert.equal(interval, 50);
    await sleep(280);
    const healthyPings = sent.filter((s) => s === 'WATCHDOG=1').length;
    assert.ok(healthyPings >= 4 && healthyPings <= 7, `${healthyPings} pings in 280 ms`);
    problem = 'queue 0 receive thread idle for 5000 ms';
    await sleep(20);
    const at = sent.length;
    await sleep(200);
    n.close();
    assert.equal(sent.length, at, 'pinged while unhealthy');
    assert.ok(logs.some((l) => l.includes('idle for 5000 ms')));
    assert.equal(logs.filter((l) => l.includes('idle for 5000 ms')).length, 1, 'logged once per problem');
  });

  it('judges queue threads by how long they have been idle', () => {
    assert.equal(queueHealth([{ queue: 0, threadIdleMs: 150 }]), undefined);
    assert.match(queueHealth([{ queue: 0, threadIdleMs: 150 }, { queue: 1, threadIdleMs: 2500 }])!, /queue 1/);
    assert.match(queueHealth([{ queue: 0, threadIdleMs: 0, closed: true }])!, /closed/);
  });
});

describe('systemd: the addon sends to a real NOTIFY_SOCKET', () => {
  const python = spawnSync('python3', ['-c', 'print(1)']).status === 0;
  let addonOk = true;
  try {
    require('../../src/native');
  } catch {
    addonOk = false;
  }

  it('delivers READY and RELOADING datagrams whose MONOTONIC_USEC is CLOCK_MONOTONIC', async function () {
    if (!python) throw new Error('python3 is needed for this test (scripts/bootstrap.sh installs it)');
    if (!addonOk) throw new Error('the native addon is not built (npm run build:native)');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-notify-'));
    const sock = path.join(dir, 'notify.sock');
    // Prints each datagram with CLOCK_MONOTONIC at receipt, as one JSON line.
    const script = `
import socket, sys, json, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
for _ in range(2):
    d = s.recv(4096).decode()
    print(json.dumps({"data": d, "mono": time.monotonic_ns() // 1000}), flush=True)
`;
    const child = spawn('python3', ['-c', script, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: string[] = [];
    let buf = '';
    const got = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`receiver saw: ${JSON.stringify(lines)}`)), 10_000);
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const parts = buf.split('\n');
        buf = parts.pop() ?? '';
        lines.push(...parts);
        if (lines.length >= 3) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const saved = process.env['NOTIFY_SOCKET'];
    try {
      const deadline = Date.now() + 10_000;
      while (!lines.includes('ready') && Date.now() < deadline) await sleep(20);
      process.env['NOTIFY_SOCKET'] = sock;
      const n = new ServiceNotifier();
      n.ready('up');
      n.reloading();
      await got;
    } finally {
      if (saved === undefined) delete process.env['NOTIFY_SOCKET'];
      else process.env['NOTIFY_SOCKET'] = saved;
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const msgs = lines.slice(1).map((l) => JSON.parse(l) as { data: string; mono: number });
    assert.equal(msgs[0]!.data, 'READY=1\nSTATUS=up');
    const m = /MONOTONIC_USEC=(\d+)/.exec(msgs[1]!.data);
    assert.ok(m, msgs[1]!.data);
    const skew = msgs[1]!.mono - Number(m[1]);
    assert.ok(skew >= 0 && skew < 2_000_000, `MONOTONIC_USEC is ${skew} µs from the receiver's CLOCK_MONOTONIC`);
  });
});
