// One-way flows end to end (root only; docs/flow-cache.md): a UDP stream that sees no reply stays NEW in the
// kernel's eyes (syslog, statsd, a video feed), and its later packets are as settled as an ESTABLISHED flow's. Its
// decisions must be cached and skip the later hooks like an ESTABLISHED flow's, with every counter what the kernel's
// would be: NEW rules count the packets before the first reply, ESTABLISHED rules the ones after it, and the
// datagrams arrive in order.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { controlRequest } from '../../src/daemon/control';
import { countersByComment } from '../lab/counters';
import type { FlowCacheStats } from '../../src/native';
import { Daemon, scratchDir } from '../lab/daemon';
import { THREE_HOST, threeHostSpec, useLab } from '../lab/lab';
import { printedUntil } from '../lab/traffic';

const PORT = 6100;

const RULES = `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m conntrack --ctstate NEW -m comment --comment pre-new
-A PREROUTING -p udp -m conntrack --ctstate ESTABLISHED -m comment --comment pre-est
-A POSTROUTING -p udp -m conntrack --ctstate NEW -m comment --comment post-new
-A POSTROUTING -p udp -m conntrack --ctstate ESTABLISHED -m comment --comment post-est
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -s 198.18.0.0/24 -p udp -m udp --dport ${PORT} -m conntrack --ctstate NEW -m comment --comment fwd-new -j ACCEPT
-A FORWARD -s 198.18.0.0/24 -p udp -m udp --dport ${PORT} -m conntrack --ctstate ESTABLISHED -m comment --comment fwd-est -j ACCEPT
-A FORWARD -d 198.18.0.0/24 -p udp -m udp --sport ${PORT} -m conntrack --ctstate ESTABLISHED -m comment --comment fwd-back -j ACCEPT
COMMIT
`;

// argv: addr port burst before after. `burst` numbered datagrams at once from one socket, then, after a pause, `before`
// more 1 ms apart, none answered; then "e", which the sink answers; once the answer is back, `after` more. Prints
// `sent N answered A`. The pause lets the burst's first datagram make all its trips (its entry confirmed), so the
// burst alone meets the entry unconfirmed, however slowly the daemon decides: without it, the 1 ms datagrams that
// came while JavaScript (matcher off, freshly started, a slow machine) still worked through the burst met it too.
const SENDER = `
const dgram = require('node:dgram');
const [addr, port, burst, before, after] = process.argv.slice(1).map((x, i) => (i === 0 ? x : Number(x)));
const s = dgram.createSocket('udp4');
let i = 1, sent = 0, answered = 0;
const run = (n, then) => {
  if (n === 0) return then();
  s.send(String(i++), port, addr);
  sent++;
  setTimeout(() => run(n - 1, then), 1);
};
const blast = (n, then) => {
  let done = 0;
  for (let k = 0; k < n; k++, sent++) s.send(String(i++), port, addr, () => { if (++done === n) then(); });
};
s.on('message', () => {
  answered++;
  run(after, () => setTimeout(() => { process.stdout.write('sent ' + sent + ' answered ' + answered + '\\n'); process.exit(0); }, 300));
});
s.bind(0, () => blast(burst, () => setTimeout(() => run(before, () => { s.send('e', port, addr); sent++; }), 500)));
setTimeout(() => { process.stdout.write('timeout answered ' + answered + '\\n'); process.exit(1); }, 20000);
`;

// argv: addr port. Records the numbered datagrams in arrival order and answers only "e"; prints `seen n,n,...` for
// each stdin line.
const SINK = `
const dgram = require('node:dgram');
const [addr, port] = process.argv.slice(1);
const seen = [];
const s = dgram.createSocket('udp4');
s.on('message', (msg, r) => {
  const t = msg.toString();
  if (t === 'e') s.send(msg, r.port, r.address);
  else seen.push(Number(t));
});
s.bind(Number(port), addr, () => process.stdout.write('ready\\n'));
process.stdin.on('data', () => process.stdout.write('seen ' + seen.join(',') + '\\n'));
`;


// With the rule matcher (the default) and without it: the packets that meet the entry unconfirmed are decided
// natively, or each in JavaScript.
for (const matcher of [true, false]) {
  describe(`flow cache: a one-way flow (NEW until its first reply) is cached and skips hooks, matcher ${matcher ? 'on' : 'off'}`, function () {
    this.timeout(120_000);
    const env = useLab(threeHostSpec);
    const scratch = scratchDir();
    after(() => scratch.cleanup());

    let daemon: Daemon | undefined;
    let sink: ChildProcess | undefined;

    before(async function () {
      const rules = scratch.write('oneway.rules', RULES);
      const config = scratch.write('nfqwall.conf', `metrics = off\nmatcher = ${matcher ? 'on' : 'off'}\n`);
      daemon = await Daemon.start(env.lab.host('fw'), scratch.dir + '/control.sock', { rules, config });
      sink = env.lab.host('server').spawn([process.execPath, '-e', SINK, THREE_HOST.server4, String(PORT)]);
      await printedUntil(sink, /ready/);
    });

    after(async () => {
      sink?.kill('SIGKILL');
      await daemon?.stop();
    });

    // The burst's later datagrams reach fw while the first one's entry is not yet confirmed (its trips not all made).
    const BURST = 100;
    const BEFORE = 400;
    const AFTER = 200;

    it('counts NEW and ESTABLISHED as the kernel would, keeps order, and makes about one queue trip per packet', async () => {
      const received = async (): Promise<number> => (await daemon!.status()).queues.reduce((n, q) => n + q.received, 0);
      const flow = (): Promise<FlowCacheStats> => daemon!.flowCacheStats();
      const queued0 = await received();
      const flow0 = await flow();
      const argv = [process.execPath, '-e', SENDER, THREE_HOST.server4, String(PORT), String(BURST), String(BEFORE - BURST), String(AFTER)];
      const r = await env.lab.host('client').exec(argv, { timeoutMs: 30_000 });
      assert.match(r.stdout, new RegExp(`sent ${BEFORE + 1 + AFTER} answered 1`), r.stdout + r.stderr);
      await daemon!.settled(5_000);

      const seen = printedUntil(sink!, /seen [\d,]*\n/);
      sink!.stdin?.write('?\n');
      const order = /seen ([\d,]*)/.exec(await seen)![1]!.split(',').filter((x) => x !== '').map(Number);
      assert.deepEqual(order, Array.from({ length: BEFORE + AFTER }, (_, k) => k + 1), 'every datagram, in the order sent');

      const s = (await controlRequest(daemon!.control, { cmd: 'save', counters: true })) as unknown as { rulesets: { ipv4: string } };
      assert.deepEqual(countersByComment(s.rulesets.ipv4), {
        // Before the answer every datagram is NEW, "e" too; the answer and what follows it are ESTABLISHED.
        'pre-new': BEFORE + 1,
        'pre-est': 1 + AFTER,
        'post-new': BEFORE + 1,
        'post-est': 1 + AFTER,
        'fwd-new': BEFORE + 1,
        'fwd-est': AFTER,
        'fwd-back': 1,
      });

      // Three trips a packet without the cache's skipping (PREROUTING, FORWARD, POSTROUTING): the burst's, which met
      // the entry unconfirmed, and each key's first few; one for every other.
      const packets = BEFORE + 1 + AFTER + 1;
      const queued = (await received()) - queued0;
      const f = await flow();
      assert.ok(queued <= packets + 2 * BURST + 20, `${queued} queue trips for ${packets} packets, ${BURST} of them a burst`);
      assert.ok(f.hits - flow0.hits > BEFORE - 10, `${f.hits - flow0.hits} cache hits; ${BEFORE} NEW datagrams`);
      assert.ok(f.tripsSkipped - flow0.tripsSkipped > BEFORE, `${f.tripsSkipped - flow0.tripsSkipped} trips skipped`);
      // One decision per hook for each key: NEW, the answer (REPLY), ESTABLISHED; none for the burst's packets that met
      // the entry unconfirmed (they may still bind NAT, as its first did). Caching those stored thousands of decisions
      // for a flood of 8 flows, and let one of this burst's datagrams pass an earlier one.
      assert.ok(f.stores - flow0.stores <= 9, `${f.stores - flow0.stores} decisions stored`);
      process.stderr.write(`      ${packets} packets, ${queued} queue trips, ${f.stores - flow0.stores} stores\n`);
    });
  });
}
