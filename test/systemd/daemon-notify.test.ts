// What a real daemon tells the service manager, received on a NOTIFY_SOCKET of our own: READY only with the hooks
// in, WATCHDOG every WATCHDOG_USEC/2, RELOADING (with MONOTONIC_USEC) then READY around a reload, STOPPING at the end.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { cliPath, kernelRules, scratchDir, sleep } from '../lab/daemon';
import { useLab } from '../lab/lab';

// Binds a datagram socket and prints every message with CLOCK_MONOTONIC (µs) at receipt, one JSON line each.
const RECEIVER = `
import socket, sys, json, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"data": "bound", "mono": 0}), flush=True)
while True:
    d = s.recv(65536).decode()
    print(json.dumps({"data": d, "mono": time.monotonic_ns() // 1000}), flush=True)
`;

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp --dport 9 -j DROP
COMMIT
`;

interface Msg {
  data: string;
  mono: number;
  at: number;
}

describe('systemd: notifications from a running daemon (root)', function () {
  this.timeout(60_000);
  const env = useLab(() => ({ hosts: [{ name: 'fw' }], links: [] }));
  const scratch = scratchDir();
  const msgs: Msg[] = [];
  let receiver: ChildProcess | undefined;
  let daemon: ChildProcess | undefined;
  let output = '';

  after(() => {
    daemon?.kill('SIGKILL');
    receiver?.kill('SIGKILL');
    scratch.cleanup();
  });

  async function waitFor(pred: (m: Msg) => boolean, from: number, what: string, ms = 15_000): Promise<number> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = msgs.findIndex((m, k) => k >= from && pred(m));
      if (i >= 0) return i;
      if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms; got ${JSON.stringify(msgs.map((m) => m.data))}\n${output}`);
      await sleep(50);
    }
  }

  it('sends READY after the hooks, WATCHDOG while alive, RELOADING then READY on SIGHUP, STOPPING on SIGTERM', async () => {
    const fw = env.lab.host('fw');
    const sock = path.join(scratch.dir, 'notify.sock');
    receiver = spawn('python3', ['-c', RECEIVER, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    receiver.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) msgs.push({ ...(JSON.parse(l) as { data: string; mono: number }), at: Date.now() });
    });
    await waitFor((m) => m.data === 'bound', 0, 'receiver');

    const rules = scratch.write('rules.v4', RULES);
    daemon = fw.spawn(
      [process.execPath, cliPath(), 'run', '--rules', rules, '--control', path.join(scratch.dir, 'control.sock'), '--metrics', 'off'],
      { env: { ...process.env, NOTIFY_SOCKET: sock, WATCHDOG_USEC: '1000000' } },
    );
    daemon.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    daemon.stderr?.on('data', (d: Buffer) => (output += d.toString()));

    const ready = await waitFor((m) => m.data.split('\n')[0] === 'READY=1', 0, 'READY=1');
    assert.match(msgs[ready]!.data, /\nSTATUS=queue 0, late queue 1: 1 rules loaded/);
    assert.match(await kernelRules(fw), /-A INPUT -j NFQWALL-INPUT/, 'READY=1 before the hooks were in');

    // WATCHDOG_USEC=1 s: a ping every 0.5 s.
    await sleep(1_600);
    const pings = msgs.slice(ready).filter((m) => m.data === 'WATCHDOG=1');
    assert.ok(pings.length >= 2 && pings.length <= 5, `${pings.length} pings in 1.6 s`);

    const beforeHup = msgs.length;
    daemon.kill('SIGHUP');
    const reloading = await waitFor((m) => m.data.startsWith('RELOADING=1\n'), beforeHup, 'RELOADING=1');
    const usec = /\nMONOTONIC_USEC=(\d+)\n/.exec(msgs[reloading]!.data);
    assert.ok(usec, msgs[reloading]!.data);
    const skew = msgs[reloading]!.mono - Number(usec[1]);
    assert.ok(skew >= 0 && skew < 2_000_000, `MONOTONIC_USEC ${skew} µs off the receiver's clock`);
    const readyAgain = await waitFor((m) => m.data.startsWith('READY=1'), reloading, 'READY=1 after the reload');
    assert.ok(readyAgain > reloading);

    const beforeTerm = msgs.length;
    daemon.kill('SIGTERM');
    await waitFor((m) => m.data.startsWith('STOPPING=1'), beforeTerm, 'STOPPING=1');
    const code = await new Promise<number | null>((resolve) => {
      if (daemon!.exitCode !== null) resolve(daemon!.exitCode);
      const t = setTimeout(() => resolve(-1), 10_000);
      daemon!.once('exit', (c) => (clearTimeout(t), resolve(c)));
    });
    assert.equal(code, 0, output);
    assert.doesNotMatch(await kernelRules(fw), /NFQWALL/);
  });
});
