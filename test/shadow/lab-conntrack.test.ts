// End to end, in network namespaces, with connection state and NAT: fw's kernel enforces a stateful ruleset with a
// DNAT port forward while `nfqwall shadow` watches fw's client-side interface with the same ruleset. The capture sees
// exactly the traffic the kernel judged (requests before its NAT, replies after it), so the shadow's counters, from
// its own connection table, must be the kernel's, nat table included.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { cliPath, scratchDir, sleep } from '../lab/daemon';
import { Lab, THREE_HOST, isRoot, threeHostSpec } from '../lab/lab';
import { packageRoot } from '../paths';
import type { ShadowReport } from '../../src/shadow/report';

function cli(): string[] {
  if (__filename.endsWith('.ts')) return [process.execPath, '--import', 'tsx', path.join(packageRoot(), 'src', 'cli', 'main.ts')];
  return [process.execPath, cliPath()];
}

// argv: addr port. Echoes every datagram back to its sender.
const ECHO = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(Number(process.argv[2]), process.argv[1], () => process.stdout.write('ready\\n'));
`;

// argv: json([[addr, port, count], ...]). One socket (one connection) per destination, so no two connections share
// a source port (two would make the DNAT's tuple clash with the direct one: the kernel then moves the source port in
// its POSTROUTING null binding, which the native table does not do, see the report of this session). Sends in order,
// 20 ms apart; prints the echoes received.
const CLIENT = `
const dgram = require('node:dgram');
const plan = JSON.parse(process.argv[1]);
let got = 0;
const socks = plan.map(() => dgram.createSocket('udp4'));
const todo = [];
plan.forEach(([a, p, n], i) => { for (let k = 0; k < n; k++) todo.push([socks[i], a, p]); });
let bound = 0;
for (const s of socks) {
  s.on('message', () => got++);
  s.bind(0, () => { if (++bound === socks.length) next(); });
}
function next() {
  const t = todo.shift();
  if (t === undefined) return setTimeout(() => { process.stdout.write(JSON.stringify({ got }) + '\\n'); process.exit(0); }, 500);
  t[0].send('nfqw-shadow-ct', t[2], t[1], () => setTimeout(next, 20));
}
`;

function rules(clientIf: string): string {
  return (
    '*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n' +
    `-A PREROUTING -d ${THREE_HOST.fwClient4}/32 -p udp -m udp --dport 7000 -j DNAT --to-destination ${THREE_HOST.server4}:5001\n` +
    'COMMIT\n' +
    '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n' +
    '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n' +
    `-A FORWARD -i ${clientIf} -p udp -m conntrack --ctstate NEW -m udp --dport 5001 -j ACCEPT\n` +
    '-A FORWARD -p udp -m udp --dport 5002 -j DROP\n' +
    'COMMIT\n'
  );
}

function output(child: ChildProcess): { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return { out: () => out, err: () => err };
}

async function until(what: string, ms: number, ok: () => boolean, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what}: the process exited first`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

function exited(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`process did not exit within ${ms} ms`)), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Rule and chain lines with their counters, per table, comments dropped. */
function saveLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function tableText(save: string, table: string): string {
  const start = save.indexOf(`*${table}\n`);
  assert.ok(start >= 0, `no *${table} in:\n${save}`);
  return save.slice(start, save.indexOf('COMMIT', start) + 'COMMIT'.length);
}

describe('shadow: connection state and NAT in a lab, against the kernel enforcing the same rules', function () {
  this.timeout(120_000);
  let lab: Lab | undefined;
  const scratch = scratchDir();

  before(function () {
    if (!isRoot()) {
      process.stderr.write('shadow lab (conntrack): skipping: network namespaces need root\n');
      this.skip();
    }
  });

  after(async function () {
    await lab?.destroy();
    scratch.cleanup();
  });

  it('counts filter and nat rules as the kernel does, replies and DNAT included', async () => {
    lab = await Lab.create(threeHostSpec());
    const fw = lab.host('fw');
    const clientIf = fw.ifname('client');
    const text = rules(clientIf);
    const file = scratch.write('stateful.rules', text);
    // Neighbours resolved before anything is counted.
    await lab.host('client').exec(['ping', '-n', '-q', '-c', '1', '-W', '2', THREE_HOST.server4], { timeoutMs: 10_000 });
    const echo = lab.host('server').spawn([process.execPath, '-e', ECHO, THREE_HOST.server4, '5001']);
    const eio = output(echo);
    await until('echo server', 10_000, () => eio.out().includes('ready'), echo);
    await fw.exec(['iptables-restore'], { input: text });

    const shadow = fw.spawn([...cli(), 'shadow', '--rules', file, '--iface', clientIf, '--duration', '60', '--json', '--no-progress']);
    const sio = output(shadow);
    await until('shadow capturing', 30_000, () => sio.err().includes('capturing on'), shadow);
    const plan = [
      [THREE_HOST.server4, 5001, 4],
      [THREE_HOST.fwClient4, 7000, 3],
      [THREE_HOST.server4, 5002, 2],
    ];
    const c = await lab.host('client').exec([process.execPath, '-e', CLIENT, JSON.stringify(plan)], { timeoutMs: 20_000 });
    // The kernel forwarded and answered the allowed ones (4 direct, 3 through the DNAT), dropped the two to 5002.
    assert.deepEqual(JSON.parse(c.stdout.trim()), { got: 7 });
    // Everything was answered or dropped: stop the capture as an operator would, with SIGINT.
    await sleep(300);
    shadow.kill('SIGINT');
    await exited(shadow, 30_000).catch((e: unknown) => {
      throw new Error(`${String(e)}; pid ${shadow.pid} stderr: ${sio.err()} stdout: ${sio.out().slice(0, 300)}`);
    });
    assert.equal(shadow.exitCode, 0, sio.err());
    const report = JSON.parse(sio.out()) as ShadowReport;
    const kernel = (await fw.exec(['iptables-save', '-c'])).stdout;
    echo.kill();

    const shadowSave = report.counters.v4 ?? '';
    for (const t of ['filter', 'nat']) {
      assert.deepEqual(saveLines(tableText(shadowSave, t)), saveLines(tableText(kernel, t)), `table ${t}`);
    }
    // The kernel did count what this test is about.
    // 7 requests forwarded, the first of each connection NEW, the other 5 and the 7 replies ESTABLISHED.
    assert.match(kernel, /\[12:\d+\] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT/);
    assert.match(kernel, /\[2:\d+\] -A FORWARD -i \S+ -p udp -m conntrack --ctstate NEW -m udp --dport 5001 -j ACCEPT/);
    // The two datagrams to 5002: each dropped first packet leaves no connection, so each walks nat PREROUTING.
    assert.match(kernel, /^:PREROUTING ACCEPT \[3:\d+\]$/m);
    assert.match(kernel, /\[1:\d+\] -A PREROUTING -d 198\.18\.0\.1\/32 -p udp -m udp --dport 7000 -j DNAT/);
    // 16 packets: 9 requests and 7 replies; the three replies through the DNAT left with fw's address.
    assert.equal(report.packets.evaluated, 16, JSON.stringify(report.packets));
    assert.equal(report.packets.unNatted, 3);
    assert.deepEqual(
      report.nat.map((n) => [n.dst, n.dport, n.toDst, n.toDport, n.connections]),
      [[THREE_HOST.fwClient4, 7000, THREE_HOST.server4, 5001, 1]],
    );
  });
});
