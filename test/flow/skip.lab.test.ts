// Hook skipping end to end (root only; docs/flow-cache.md, Trips): settled UDP flows through a node, forwarded plain,
// forwarded to a DNATed VIP, forwarded with a rule that sets the skip bit itself, and to the node itself. The counters
// of every rule must be what the packets make them, with datagrams whose TTL runs out at the node (the kernel drops
// them before FORWARD: FORWARD must not count them) mixed into a settled flow; the datagrams must arrive in order; the
// plain flow must cost close to one queue trip per packet instead of three; and while a routing rule reads the packet
// mark, nothing may skip.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { controlRequest } from '../../src/daemon/control';
import { countersByComment } from '../lab/counters';
import { Daemon, scratchDir, sleep } from '../lab/daemon';
import { THREE_HOST, threeHostSpec, useLab, type Host } from '../lab/lab';
import { printedUntil } from '../lab/traffic';

const VIP = '198.19.0.100';
const PLAIN_PORT = 6000;
const BIT_PORT = 6001;
const VIP_PORT = 53;
const SERVER_VIP_PORT = 5353;
const LOCAL_PORT = 7000;
// The default skip bits: FORWARD the lower, POSTROUTING the higher.
const FORWARD_BIT = '0x10000000';
const POST_BIT = '0x20000000';
const SKIP_MARK = '0x30000000';

const RULES = `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m comment --comment pre-udp
-A FORWARD -p udp -m udp --dport ${BIT_PORT} -m comment --comment fwd-sets-bit -j MARK --set-xmark ${POST_BIT}/${POST_BIT}
-A POSTROUTING -p udp -m comment --comment post-udp
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d ${VIP}/32 -p udp -m udp --dport ${VIP_PORT} -m comment --comment vip-dnat -j DNAT --to-destination ${THREE_HOST.server4}:${SERVER_VIP_PORT}
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport ${LOCAL_PORT} -m comment --comment in-local -j ACCEPT
-A FORWARD -s 198.18.0.0/24 -p udp -m udp --dport ${PLAIN_PORT} -m comment --comment fwd-plain-out -j ACCEPT
-A FORWARD -d 198.18.0.0/24 -p udp -m udp --sport ${PLAIN_PORT} -m comment --comment fwd-plain-back -j ACCEPT
-A FORWARD -s 198.18.0.0/24 -p udp -m udp --dport ${BIT_PORT} -m comment --comment fwd-bit-out -j ACCEPT
-A FORWARD -d 198.18.0.0/24 -p udp -m udp --sport ${BIT_PORT} -m comment --comment fwd-bit-back -j ACCEPT
-A FORWARD -s 198.18.0.0/24 -p udp -m udp --dport ${SERVER_VIP_PORT} -m comment --comment fwd-vip-out -j ACCEPT
-A FORWARD -d 198.18.0.0/24 -p udp -m udp --sport ${SERVER_VIP_PORT} -m comment --comment fwd-vip-back -j ACCEPT
COMMIT
`;

// argv: addr port count ttl1 trailing. Datagram 0 first, waiting for its echo (the flow is then ESTABLISHED), then
// `count` numbered datagrams 1 ms apart, `ttl1` with a TTL of 1 (the node drops them, ICMP time exceeded), then
// `trailing` more with the TTL back; prints `sent N echoed M` once the echoes stop coming.
const SENDER = `
const dgram = require('node:dgram');
const [addr, port, count, ttl1, trailing] = process.argv.slice(1).map((x, i) => (i === 0 ? x : Number(x)));
const s = dgram.createSocket('udp4');
let i = 1, echoed = 0, sent = 0;
const send = (ttl) => { s.setTTL(ttl); s.send(String(i++), port, addr); sent++; };
const plan = [...Array(count).fill(64), ...Array(ttl1).fill(1), ...Array(trailing).fill(64)];
s.on('message', () => { echoed++; if (echoed === 1) step(); });
const step = () => {
  const ttl = plan.shift();
  if (ttl === undefined) return setTimeout(() => { process.stdout.write('sent ' + (sent + 1) + ' echoed ' + echoed + '\\n'); process.exit(0); }, 500);
  send(ttl);
  setTimeout(step, 1);
};
s.bind(0, () => { s.send('0', port, addr); });
setTimeout(() => { process.stdout.write('timeout echoed ' + echoed + '\\n'); process.exit(1); }, 20000);
`;

// argv: addr port... Echoes every datagram on each port, recording the numbers per port in arrival order; prints
// `seen PORT n,n,...` per port for each stdin line, and goes on echoing.
const ECHO = `
const dgram = require('node:dgram');
const [addr, ...ports] = process.argv.slice(1);
const seen = {};
let ready = 0;
for (const p of ports) {
  seen[p] = [];
  const s = dgram.createSocket('udp4');
  s.on('message', (msg, r) => { seen[p].push(Number(msg.toString())); s.send(msg, r.port, r.address); });
  s.bind(Number(p), addr, () => { if (++ready === ports.length) process.stdout.write('ready\\n'); });
}
process.stdin.on('data', () => { for (const p of ports) process.stdout.write('seen ' + p + ' ' + seen[p].join(',') + '\\n'); });
`;



interface Sent {
  sent: number;
  echoed: number;
}

async function send(client: Host, addr: string, port: number, count: number, ttl1: number, trailing: number): Promise<Sent> {
  const r = await client.exec([process.execPath, '-e', SENDER, addr, String(port), String(count), String(ttl1), String(trailing)], {
    timeoutMs: 30_000,
  });
  const m = /sent (\d+) echoed (\d+)/.exec(r.stdout);
  assert.ok(m, `sender: ${r.stdout}${r.stderr}`);
  return { sent: Number(m[1]), echoed: Number(m[2]) };
}

// Once with one queue, once with two: with two, the kernel's balance hash sends a connection's hooks to different
// queues (before and after DNAT, request and reply), whose receive threads share the cache's order counts.
for (const queues of [1, 2]) {
  describe(`flow cache: hook skipping (settled packets pass later hooks without a queue trip), ${queues} queue(s)`, function () {
    this.timeout(180_000);
    const env = useLab(threeHostSpec);
    const scratch = scratchDir();
    after(() => scratch.cleanup());

    let daemon: Daemon | undefined;
    let echoServer: ChildProcess | undefined;
    let echoLocal: ChildProcess | undefined;
    const skipped = async (): Promise<number> => (await daemon!.flowCacheStats()).tripsSkipped;
    const received = async (): Promise<number> => (await daemon!.status()).queues.reduce((n, q) => n + q.received, 0);
    const saved = async (): Promise<Record<string, number>> => {
      const s = (await controlRequest(daemon!.control, { cmd: 'save', counters: true })) as unknown as { rulesets: { ipv4: string } };
      return countersByComment(s.rulesets.ipv4);
    };

    before(async function () {
      const fw = env.lab.host('fw');
      const server = env.lab.host('server');
      const rules = scratch.write('skip.rules', RULES);
      const config = scratch.write('nfqwall.conf', `queues = ${queues}\nmetrics = off\n`);
      daemon = await Daemon.start(fw, scratch.dir + '/control.sock', { rules, config });
      echoServer = server.spawn([process.execPath, '-e', ECHO, THREE_HOST.server4, String(PLAIN_PORT), String(BIT_PORT), String(SERVER_VIP_PORT)]);
      echoLocal = fw.spawn([process.execPath, '-e', ECHO, THREE_HOST.fwClient4, String(LOCAL_PORT)]);
      await printedUntil(echoServer, /ready/);
      await printedUntil(echoLocal, /ready/);
    });

    after(async () => {
      echoServer?.kill('SIGKILL');
      echoLocal?.kill('SIGKILL');
      await daemon?.stop();
    });

    const COUNT = 400;
    const TTL1 = 20;
    const TRAILING = 100;
    let plain: Sent;
    let vip: Sent;
    let bit: Sent;
    let local: Sent;
    let tripsPlain = 0;
    let receivedPlain = 0;

    it('installs the skip rules in the kernel', async () => {
      const save = await env.lab.host('fw').exec(['iptables-save', '-t', 'mangle']);
      assert.match(save.stdout, new RegExp(`^-A FORWARD -m mark ! --mark ${FORWARD_BIT}/${FORWARD_BIT} -j NFQWALL-FORWARD$`, 'm'));
      assert.match(save.stdout, new RegExp(`^-A POSTROUTING -m mark ! --mark ${POST_BIT}/${POST_BIT} -j NFQWALL-POSTROUTING\n-A POSTROUTING -m mark --mark ${POST_BIT}/${POST_BIT} -j NFQWALL-SKIPPED$`, 'm'));
      assert.match(save.stdout, new RegExp(`-A NFQWALL-SKIPPED .*-j MARK --set-xmark 0x0/${SKIP_MARK}`));
    });

    it('a plain forwarded flow makes about one queue trip per packet, and its TTL-1 datagrams are not counted at FORWARD', async () => {
      const client = env.lab.host('client');
      const before = { skipped: await skipped(), received: await received(), dropped: (await daemon!.flowCacheStats()).transitsDropped };
      plain = await send(client, THREE_HOST.server4, PLAIN_PORT, COUNT, TTL1, TRAILING);
      await daemon!.settled(5_000);
      tripsPlain = (await skipped()) - before.skipped;
      receivedPlain = (await received()) - before.received;
      // Through fw: every datagram the client sent at PREROUTING, and every echo; FORWARD and POSTROUTING see only
      // what was forwarded. Without skipping a forwarded packet makes 3 trips.
      const packets = plain.sent + plain.echoed;
      assert.equal(plain.echoed, plain.sent - TTL1, `echoes: ${JSON.stringify(plain)}`);
      assert.ok(receivedPlain < 1.5 * packets, `${receivedPlain} queue trips for ${packets} packets (${tripsPlain} skipped)`);
      assert.ok(tripsPlain > packets, `${tripsPlain} trips skipped for ${packets} packets`);
      // The TTL-1 datagrams' counts toward FORWARD held the next datagram back from skipping: with one queue a
      // barrier told the receive thread they were dropped (docs/flow-cache.md, Trips); with two, an acknowledgement
      // on one socket says nothing of the other's packets, so the counts lapse.
      const dropped = (await daemon!.flowCacheStats()).transitsDropped - before.dropped;
      if (queues === 1) assert.ok(dropped >= 1, `${dropped} flows' counts cleared by a barrier`);
      else assert.equal(dropped, 0, 'no barriers with two queues');
      process.stderr.write(`      plain flow: ${packets} packets, ${receivedPlain} queue trips, ${tripsPlain} skipped, ${dropped} counts cleared by barriers\n`);
    });

    it('a flow to a DNATed VIP skips both hooks on the way out; its replies, whose source is rewritten at POSTROUTING, skip FORWARD', async () => {
      const client = env.lab.host('client');
      const before = { skipped: await skipped(), received: await received() };
      vip = await send(client, VIP, VIP_PORT, COUNT, 0, 0);
      await daemon!.settled(5_000);
      const trips = (await skipped()) - before.skipped;
      const queued = (await received()) - before.received;
      assert.equal(vip.echoed, vip.sent);
      // Two later hooks per request at most (FORWARD, POSTROUTING), one per reply (FORWARD).
      assert.ok(trips > 2.5 * vip.sent && trips <= 3 * vip.sent, `${trips} trips skipped for ${vip.sent} requests and their replies`);
      // One trip per request, two per reply: 1.5 a packet, not 3.
      assert.ok(queued < 1.7 * (vip.sent + vip.echoed), `${queued} queue trips for ${vip.sent + vip.echoed} packets`);
    });

    it('a flow whose FORWARD rule sets the skip bit itself: the bit never leaves with the verdict', async () => {
      const client = env.lab.host('client');
      const before = (await saved())['post-udp'] ?? 0;
      bit = await send(client, THREE_HOST.server4, BIT_PORT, COUNT, 0, 0);
      await daemon!.settled(5_000);
      assert.equal(bit.echoed, bit.sent);
      // nfqwall clears the POSTROUTING bit from the mark the rule sets, so the mark is unchanged and the flow may skip
      // as any other; but a FORWARD verdict that kept the bit would make the kernel pass POSTROUTING without a trip,
      // and its rules would miss those packets.
      assert.equal(((await saved())['post-udp'] ?? 0) - before, bit.sent + bit.echoed);
    });

    it('a flow to the node itself skips nothing: INPUT always keeps its trip', async () => {
      const client = env.lab.host('client');
      const before = await skipped();
      local = await send(client, THREE_HOST.fwClient4, LOCAL_PORT, COUNT, 0, 0);
      await daemon!.settled(5_000);
      assert.equal(local.echoed, local.sent);
      assert.equal((await skipped()) - before, 0);
    });

    it('every counter is what the packets make it', async () => {
      const c = await saved();
      assert.deepEqual(c, {
        // Every datagram and echo through or to fw, the TTL-1 ones included (PREROUTING is before the TTL check).
        'pre-udp': plain.sent + plain.echoed + vip.sent + vip.echoed + bit.sent + bit.echoed + local.sent,
        'fwd-sets-bit': bit.sent,
        // Forwarded ones and the local echoes (OUTPUT then POSTROUTING).
        'post-udp': plain.sent - TTL1 + plain.echoed + vip.sent + vip.echoed + bit.sent + bit.echoed + local.echoed,
        'vip-dnat': 1,
        'in-local': local.sent,
        'fwd-plain-out': plain.sent - TTL1,
        'fwd-plain-back': plain.echoed,
        'fwd-bit-out': bit.sent,
        'fwd-bit-back': bit.echoed,
        'fwd-vip-out': vip.sent,
        'fwd-vip-back': vip.echoed,
      });
    });

    it('the datagrams reached the server in the order they were sent', async () => {
      const seen = printedUntil(echoServer!, new RegExp(`seen ${SERVER_VIP_PORT} [\\d,]*\\n`));
      echoServer!.stdin?.write('?\n');
      const text = await seen;
      for (const port of [PLAIN_PORT, SERVER_VIP_PORT]) {
        const m = new RegExp(`seen ${port} ([\\d,]*)`).exec(text);
        assert.ok(m, text);
        const order = m[1]!.split(',').filter((x) => x !== '').map(Number);
        const want = port === PLAIN_PORT ? plain.sent - TTL1 : vip.sent;
        assert.equal(order.length, want, `port ${port}`);
        for (let i = 1; i < order.length; i++) assert.ok(order[i]! > order[i - 1]!, `port ${port}: datagram ${order[i]} after ${order[i - 1]}`);
      }
    });

    it('nothing skips while a routing rule reads the packet mark, and skipping resumes once it is gone', async () => {
      const fw = env.lab.host('fw');
      const client = env.lab.host('client');
      await fw.exec(['ip', 'rule', 'add', 'fwmark', '0x1', 'lookup', 'main', 'priority', '100']);
      try {
        // ip monitor reports the rule; the refresh that follows turns skipping off.
        const deadline = Date.now() + 10_000;
        while (!daemon!.output.includes('hook skipping off') && Date.now() < deadline) await sleep(100);
        assert.match(daemon!.output, /hook skipping off: routing rules read the packet mark \(ipv4 rule 100: fwmark 0x1\)/);
        const before = await skipped();
        const r = await send(client, THREE_HOST.server4, PLAIN_PORT, 200, 0, 0);
        await daemon!.settled(5_000);
        assert.equal(r.echoed, r.sent);
        assert.equal((await skipped()) - before, 0);
      } finally {
        await fw.exec(['ip', 'rule', 'del', 'priority', '100']);
      }
      const deadline = Date.now() + 10_000;
      while (!/hook skipping off[^]*hook skipping on/.test(daemon!.output) && Date.now() < deadline) await sleep(100);
      const before = await skipped();
      const r = await send(client, THREE_HOST.server4, PLAIN_PORT, 200, 0, 0);
      await daemon!.settled(5_000);
      assert.equal(r.echoed, r.sent);
      assert.ok((await skipped()) - before > r.sent, daemon!.output);
    });
  });
}
