// The flow cache end to end (root only): a UDP flow and a TCP connection through a node with a kube-proxy-like
// ruleset (a service VIP DNATed and masqueraded, KUBE-FORWARD accepting ESTABLISHED, a mangle MARK every UDP packet
// carries), once with the cache and once with --no-flow-cache. Every rule counter must be what the packets the
// client and the server sent (counted by the kernel in their own namespaces) make it, in both runs; the UDP
// datagrams must reach the server in the order they were sent; and QueueStats.cached > 0 proves the cache served.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { parseSnmp } from '../../bench/soak';
import type { QueueStats } from '../../native/index';
import { controlRequest } from '../../src/daemon/control';
import { countersByComment } from '../lab/counters';
import { cliPath, scratchDir, sleep } from '../lab/daemon';
import { THREE_HOST, threeHostSpec, useLab, type Host } from '../lab/lab';

const VIP = '198.19.0.100';
const TCP_PORT = 8080;
const UDP_PORT = 5353;
const UDP_COUNT = 300;
const TCP_BYTES = 400_000;

const RULES = `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -s 198.18.0.0/15 -d 198.18.0.0/15 -p udp -m comment --comment pre-udp -j MARK --set-xmark 0x100/0x100
-A PREROUTING -s 198.18.0.0/15 -d 198.18.0.0/15 -p tcp -m comment --comment pre-tcp
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-FLOW - [0:0]
:KUBE-SEP-FLOW - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
-A PREROUTING -m comment --comment nat-pre -j KUBE-SERVICES
-A POSTROUTING -m comment --comment nat-post -j KUBE-POSTROUTING
-A KUBE-SERVICES -d ${VIP}/32 -p tcp -m comment --comment svc-vip -m tcp --dport 80 -j KUBE-SVC-FLOW
-A KUBE-SVC-FLOW -m comment --comment svc-masq -j KUBE-MARK-MASQ
-A KUBE-SVC-FLOW -m comment --comment svc-sep -j KUBE-SEP-FLOW
-A KUBE-SEP-FLOW -p tcp -m comment --comment sep-dnat -m tcp -j DNAT --to-destination ${THREE_HOST.server4}:${TCP_PORT}
-A KUBE-MARK-MASQ -m comment --comment mark-masq -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -m comment --comment post-return -j RETURN
-A KUBE-POSTROUTING -m comment --comment post-xor -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment post-masq -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-SERVICES - [0:0]
-A FORWARD -p udp -m mark --mark 0x100/0x100 -m comment --comment fwd-udp-marked
-A FORWARD -p tcp -m comment --comment fwd-tcp
-A FORWARD -m comment --comment fwd-kube -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment fwd-services -j KUBE-SERVICES
-A FORWARD -s 198.18.0.0/24 -d 198.19.0.0/24 -m comment --comment fwd-new -j ACCEPT
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m comment --comment kf-invalid -j DROP
-A KUBE-FORWARD -m mark --mark 0x4000/0x4000 -m comment --comment kf-mark -j ACCEPT
-A KUBE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment kf-established -j ACCEPT
-A KUBE-SERVICES -d 198.19.0.99/32 -p tcp -m tcp --dport 80 -m comment --comment no-endpoints -j REJECT --reject-with icmp-port-unreachable
COMMIT
`;

/** What the counters must be, from the packets the client and the server sent (U: UDP, T: TCP), one flow each. */
function expected(u: number, t: number): Record<string, number> {
  return {
    'pre-udp': u,
    'pre-tcp': t,
    // nat sees each connection's first packet only: the UDP flow's and the TCP SYN.
    'nat-pre': 2,
    'svc-vip': 1,
    'svc-masq': 1,
    'svc-sep': 1,
    'sep-dnat': 1,
    'mark-masq': 1,
    // POSTROUTING nat: the UDP flow's first packet returns, the SYN is masqueraded.
    'nat-post': 2,
    'post-return': 1,
    'post-xor': 1,
    'post-masq': 1,
    'fwd-udp-marked': u,
    'fwd-tcp': t,
    'fwd-kube': u + t,
    'fwd-services': 1,
    'fwd-new': 1,
    'kf-invalid': 0,
    'kf-mark': 1,
    'kf-established': u + t - 2,
    'no-endpoints': 0,
  };
}

// argv: addr port count. Sends datagram 0 and waits for its echo (so the flow is ESTABLISHED: a UDP packet is NEW
// until the reply direction is seen), then the rest numbered, in bursts of 10; prints `sent N`. Each burst waits for
// the last one's echoes (at most 2 s), so no more than 10 datagrams wait in the recorder's socket: a recorder
// starved of CPU on a busy machine overflowed its receive buffer when the bursts came 1 ms apart, whatever nfqwall
// did (seen as UDP RcvbufErrors in its namespace). A datagram nfqwall lost still shows: its echo never comes.
const UDP_SENDER = `
const dgram = require('node:dgram');
const [addr, port, count] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
let i = 1;
let echoes = 0;
let waiting = 0;
let timer;
const burst = () => {
  clearTimeout(timer);
  if (i >= Number(count)) return setTimeout(() => { process.stdout.write('sent ' + i + '\\n'); process.exit(0); }, 300);
  waiting = 0;
  for (let k = 0; k < 10 && i < Number(count); k++, i++, waiting++) s.send(String(i), Number(port), addr);
  timer = setTimeout(burst, 2000);
};
const noEcho = setTimeout(() => { process.stdout.write('no echo\\n'); process.exit(1); }, 10000);
s.on('message', () => {
  if (echoes++ === 0) {
    clearTimeout(noEcho);
    burst();
  } else if (--waiting === 0) burst();
});
s.bind(0, () => s.send('0', Number(port), addr));
`;

// argv: addr port. Echoes each datagram, and records the sequence numbers in arrival order; prints them on stdin end.
const UDP_RECORDER = `
const dgram = require('node:dgram');
const [addr, port] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
const seen = [];
s.on('message', (msg, r) => { seen.push(Number(msg.toString())); s.send(msg, r.port, r.address); });
s.bind(Number(port), addr, () => process.stdout.write('ready\\n'));
process.stdin.on('data', () => { process.stdout.write('seen ' + seen.join(',') + '\\n'); process.exit(0); });
`;

// argv: addr port. Accepts one connection and echoes everything.
const TCP_ECHO = `
const net = require('node:net');
const [addr, port] = process.argv.slice(1);
const srv = net.createServer((c) => { c.on('error', () => {}); c.pipe(c); });
srv.listen(Number(port), addr, () => process.stdout.write('ready\\n'));
process.stdin.resume();
`;

// argv: addr port bytes. Sends bytes, waits for all of them back, closes; prints `echoed N`.
const TCP_BULK = `
const net = require('node:net');
const [addr, port, bytes] = process.argv.slice(1);
const c = net.connect({ host: addr, port: Number(port) });
let got = 0;
const t = setTimeout(() => { process.stdout.write('echoed ' + got + '\\n'); process.exit(1); }, 20000);
c.on('connect', () => c.write(Buffer.alloc(Number(bytes), 120)));
c.on('data', (d) => { got += d.length; if (got >= Number(bytes)) { clearTimeout(t); c.end(); } });
c.on('close', () => { process.stdout.write('echoed ' + got + '\\n'); process.exit(0); });
c.on('error', (e) => { process.stdout.write('error ' + e.code + '\\n'); process.exit(1); });
`;

// argv: addr port. One UDP flow kept open: datagram 0 first (waits for its echo), then on every stdin line N, N more
// numbered datagrams 1 ms apart; prints `sent K` (the total) after each line.
const UDP_PEER = `
const dgram = require('node:dgram');
const [addr, port] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
let i = 1;
s.once('message', () => process.stdout.write('ready\\n'));
s.bind(0, () => s.send('0', Number(port), addr));
let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  const lines = buf.split('\\n');
  buf = lines.pop();
  for (const l of lines) {
    let n = Number(l);
    const next = () => { if (n-- <= 0) return process.stdout.write('sent ' + (i - 1) + '\\n'); s.send(String(i++), Number(port), addr); setTimeout(next, 1); };
    next();
  }
});
`;

function waitFor(child: ChildProcess, re: RegExp, ms = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms: ${buf}`)), ms);
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      const m = re.exec(buf);
      if (m !== null) resolve(m[0]);
      else reject(new Error(`exited (${code}) before ${re}: ${buf}`));
    });
  });
}

/** The kernel's own count of packets a lab host sends, per protocol, with an OUTPUT rule in its namespace. */
async function countOutput(host: Host): Promise<void> {
  await host.exec(['iptables', '-w', '-F', 'OUTPUT']);
  await host.exec(['iptables', '-w', '-A', 'OUTPUT', '-p', 'udp', '-m', 'comment', '--comment', 'out-udp']);
  await host.exec(['iptables', '-w', '-A', 'OUTPUT', '-p', 'tcp', '-m', 'comment', '--comment', 'out-tcp']);
}

async function readOutput(host: Host): Promise<{ udp: number; tcp: number }> {
  const r = await host.exec(['iptables-save', '-c', '-t', 'filter']);
  const c = countersByComment(r.stdout.replace(/--comment (out-\w+)/g, '--comment $1'));
  return { udp: c['out-udp'] ?? NaN, tcp: c['out-tcp'] ?? NaN };
}

interface RunResult {
  counters: Record<string, number>;
  bytes: Record<string, number>;
  udp: number;
  tcp: number;
  order: number[];
  received: number;
  cached: number;
  flowCache: Record<string, unknown> | undefined;
  /** Where lost datagrams went: the server's UDP receive errors and the daemon's queue counters. */
  losses: string;
}

/** The UDP receive-buffer errors in a host's namespace (/proc/net/snmp), to tell a busy receiver from a lost verdict. */
async function udpRcvbufErrors(host: Host): Promise<number> {
  return parseSnmp((await host.exec(['cat', '/proc/net/snmp'])).stdout)['Udp.RcvbufErrors'] ?? NaN;
}

async function runOnce(fw: Host, client: Host, server: Host, rulesFile: string, control: string, cache: boolean): Promise<RunResult> {
  await countOutput(client);
  await countOutput(server);
  const rcvbufBefore = await udpRcvbufErrors(server);
  const argv = [process.execPath, cliPath(), 'run', '--rules', rulesFile, '--control', control, '--metrics', 'off'];
  if (!cache) argv.push('--no-flow-cache');
  const daemon = fw.spawn(argv);
  let out = '';
  daemon.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  daemon.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await controlRequest(control, { cmd: 'status' });
        break;
      } catch (err) {
        if (Date.now() > deadline || daemon.exitCode !== null) throw new Error(`nfqwall did not start: ${String(err)}\n${out}`);
        await sleep(200);
      }
    }
    const recorder = server.spawn([process.execPath, '-e', UDP_RECORDER, THREE_HOST.server4, String(UDP_PORT)]);
    const echo = server.spawn([process.execPath, '-e', TCP_ECHO, THREE_HOST.server4, String(TCP_PORT)]);
    try {
      await waitFor(recorder, /ready/);
      await waitFor(echo, /ready/);
      const sent = await client.exec([process.execPath, '-e', UDP_SENDER, THREE_HOST.server4, String(UDP_PORT), String(UDP_COUNT)], { timeoutMs: 30_000 });
      assert.match(sent.stdout, new RegExp(`sent ${UDP_COUNT}`));
      const bulk = await client.exec([process.execPath, '-e', TCP_BULK, VIP, '80', String(TCP_BYTES)], { timeoutMs: 30_000, check: false });
      assert.match(bulk.stdout, new RegExp(`echoed ${TCP_BYTES}`), `TCP through the VIP: ${bulk.stdout}${bulk.stderr}`);
      const seenLine = waitFor(recorder, /seen [\d,]*\n/);
      recorder.stdin?.write('?\n');
      const order = (await seenLine).trim().slice(5).split(',').filter((x) => x !== '').map(Number);
      // Late FINs and ACKs: wait until the queue is idle twice in a row.
      let quiet = 0;
      for (let i = 0; i < 200 && quiet < 3; i++) {
        await sleep(50);
        const st = (await controlRequest(control, { cmd: 'status' })) as { queues?: { received: number; accepted: number; dropped: number; kernelQueueTotal: number }[] };
        const q = st.queues?.[0];
        quiet = q !== undefined && q.received === q.accepted + q.dropped && q.kernelQueueTotal === 0 ? quiet + 1 : 0;
      }
      await sleep(300);
      const saved = (await controlRequest(control, { cmd: "save", counters: true })) as unknown as { rulesets: { ipv4: string } };
      const status = (await controlRequest(control, { cmd: "status" })) as unknown as {
        queues: QueueStats[];
        flowCache?: Record<string, unknown>;
      };
      const q = status.queues[0];
      const losses = `server UDP receive-buffer errors ${(await udpRcvbufErrors(server)) - rcvbufBefore}; queue received ${q?.received} accepted ${q?.accepted} dropped ${q?.dropped} kernel queue-full ${q?.kernelQueueDropped} kernel user-dropped ${q?.kernelUserDropped} enobufs ${q?.enobufs}`;
      const c = await readOutput(client);
      const s = await readOutput(server);
      return {
        counters: countersByComment(saved.rulesets.ipv4),
        bytes: countersByComment(saved.rulesets.ipv4, 'bytes'),
        udp: c.udp + s.udp,
        tcp: c.tcp + s.tcp,
        order,
        received: q?.received ?? 0,
        cached: q?.cached ?? 0,
        flowCache: status.flowCache,
        losses,
      };
    } finally {
      recorder.kill('SIGKILL');
      echo.kill('SIGKILL');
    }
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => (daemon.exitCode !== null ? r(undefined) : daemon.once('exit', r)));
  }
}

describe('flow cache: a UDP flow and a TCP connection through a kube-proxy-like node', function () {
  this.timeout(180_000);
  const env = useLab(threeHostSpec);
  const scratch = scratchDir();
  after(() => scratch.cleanup());

  let withCache: RunResult;
  let without: RunResult;

  before(async function () {
    this.timeout(180_000);
    const { lab } = env;
    const fw = lab.host('fw');
    const client = lab.host('client');
    const server = lab.host('server');
    const rules = scratch.write('kube.rules', RULES);
    withCache = await runOnce(fw, client, server, rules, scratch.dir + '/c1.sock', true);
    without = await runOnce(fw, client, server, rules, scratch.dir + '/c2.sock', false);
  });

  it('with the cache, every counter is what the packets sent make it', () => {
    assert.ok(withCache.udp >= 2 * UDP_COUNT && withCache.tcp > 10, `traffic: ${withCache.udp} UDP, ${withCache.tcp} TCP; ${withCache.losses}`);
    assert.deepEqual(withCache.counters, expected(withCache.udp, withCache.tcp));
  });

  it('without the cache, the same', () => {
    assert.deepEqual(without.counters, expected(without.udp, without.tcp));
  });

  it('the UDP counters are equal in both runs (the same datagrams)', () => {
    for (const k of ['pre-udp', 'fwd-udp-marked'] as const) {
      assert.equal(withCache.counters[k], without.counters[k]);
      assert.equal(withCache.bytes[k], without.bytes[k], `${k} bytes`);
    }
  });

  it('the cache served most packets (QueueStats.cached), and none without it', () => {
    assert.ok(withCache.cached > 0, `cached ${withCache.cached} of ${withCache.received + withCache.cached}; flowCache ${JSON.stringify(withCache.flowCache)}`);
    assert.equal(without.cached, 0);
    process.stderr.write(`      flow cache: ${withCache.cached} of ${withCache.received} queued packets decided natively, ${JSON.stringify(withCache.flowCache)}\n`);
    assert.equal(without.flowCache, undefined);
  });

  it('the UDP datagrams reached the server in the order they were sent', () => {
    for (const r of [withCache, without]) {
      assert.equal(r.order.length, UDP_COUNT, r.losses);
      for (let i = 1; i < r.order.length; i++) assert.ok(r.order[i]! > r.order[i - 1]!, `datagram ${r.order[i]} after ${r.order[i - 1]}`);
    }
  });
});

describe('flow cache: a reload that drops a settled flow takes effect at once', function () {
  this.timeout(120_000);
  const env = useLab(threeHostSpec);
  const scratch = scratchDir();
  after(() => scratch.cleanup());

  const rules = (dropEstablished: boolean): string => `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
${dropEstablished ? '-A FORWARD -p udp -m udp --dport 5355 -m conntrack --ctstate ESTABLISHED -m comment --comment cut -j DROP\n' : ''}-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment established -j ACCEPT
-A FORWARD -s 198.18.0.0/24 -m comment --comment new -j ACCEPT
COMMIT
`;

  it('datagrams of the flow before the reload arrive, none after it; counters say so', async () => {
    const { lab } = env;
    const fw = lab.host('fw');
    const client = lab.host('client');
    const server = lab.host('server');
    const file = scratch.write('r.rules', rules(false));
    const control = scratch.dir + '/c.sock';
    const daemon = fw.spawn([process.execPath, cliPath(), 'run', '--rules', file, '--control', control, '--metrics', 'off']);
    let out = '';
    daemon.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    daemon.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const recorder = server.spawn([process.execPath, '-e', UDP_RECORDER, THREE_HOST.server4, '5355']);
    let peer: ChildProcess | undefined;
    try {
      const deadline = Date.now() + 20_000;
      for (;;) {
        try {
          await controlRequest(control, { cmd: 'status' });
          break;
        } catch (err) {
          if (Date.now() > deadline || daemon.exitCode !== null) throw new Error(`nfqwall did not start: ${String(err)}\n${out}`);
          await sleep(200);
        }
      }
      await waitFor(recorder, /ready/);
      peer = client.spawn([process.execPath, '-e', UDP_PEER, THREE_HOST.server4, '5355']);
      await waitFor(peer, /ready/);
      const sent1 = waitFor(peer, /sent 100\n/, 20_000);
      peer.stdin?.write('100\n');
      await sent1;
      await sleep(300);
      const before = (await controlRequest(control, { cmd: 'status' })) as unknown as { queues: { cached?: number }[] };
      assert.ok((before.queues[0]?.cached ?? 0) > 0, 'the flow was served from the cache before the reload');
      fs.writeFileSync(file, rules(true));
      const r = await controlRequest(control, { cmd: 'reload' });
      assert.equal(r.ok, true, JSON.stringify(r));
      const sent2 = waitFor(peer, /sent 200\n/, 20_000);
      peer.stdin?.write('100\n');
      await sent2;
      await sleep(300);
      const seenLine = waitFor(recorder, /seen [\d,]*\n/);
      recorder.stdin?.write('?\n');
      const seen = (await seenLine).trim().slice(5).split(',').map(Number);
      assert.deepEqual(seen, Array.from({ length: 101 }, (_, i) => i), 'exactly datagrams 0..100 arrived, in order');
      const saved = (await controlRequest(control, { cmd: 'save', counters: true })) as unknown as { rulesets: { ipv4: string } };
      const c = countersByComment(saved.rulesets.ipv4);
      assert.equal(c['cut'], 100, 'the new rule dropped the 100 datagrams after the reload');
      // Before the reload: 100 datagrams and the echo of datagram 0 and the 100 echoes; the first datagram was NEW.
      assert.equal(c['new'], 1);
      assert.equal(c['established'], 1 + 100 + 100);
    } finally {
      peer?.kill('SIGKILL');
      recorder.kill('SIGKILL');
      daemon.kill('SIGTERM');
      await new Promise((r) => (daemon.exitCode !== null ? r(undefined) : daemon.once('exit', r)));
    }
  });
});
