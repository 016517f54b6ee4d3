// The rule matcher end to end (root only; docs/matcher.md): new UDP connections forwarded through a node whose rules
// the compiled program can decide (a hashed service chain in nat, marks set in mangle and tested in filter, an
// accepted and a dropped port, a service VIP load-balanced by statistic to two DNAT endpoints and masqueraded on the
// way out, as kube-proxy does) and one port whose FORWARD rule the program cannot run (limit: JavaScript decides that
// hook). Each connection sends two datagrams and never hears back, so both are NEW: the first binds nothing in nat
// (the null binding the matcher must record, or nat would run again for the second), a dropped first packet leaves
// no connection (the second is a first packet again). The same traffic runs once with the matcher and once with
// `--no-matcher`: every rule counter must be equal, each connection's datagrams must arrive in order, and the matcher
// must have decided the trips of every connection's first datagram.
import assert from 'node:assert/strict';
import { controlRequest } from '../../src/daemon/control';
import { Daemon, scratchDir } from '../lab/daemon';
import { THREE_HOST, threeHostSpec, useLab, type Host } from '../lab/lab';
import { printedUntil } from '../lab/traffic';

const ACCEPT_PORT = 6100;
const DROP_PORT = 6101;
const LIMIT_PORT = 6102;
const VIP = '198.19.0.100';
const VIP_PORT = 6103;
const ENDPOINT_PORTS = [6104, 6105] as const;
const SERVICES = 200;

/** A KUBE-SERVICES-like chain of exact destinations (none of them the server), long enough to be hashed. */
function serviceRules(): string {
  const out: string[] = [];
  for (let i = 0; i < SERVICES; i++) {
    out.push(`-A SVC -d 198.19.${1 + (i >> 8)}.${i & 255}/32 -p udp -m comment --comment svc-${i} -m udp --dport ${1000 + i} -j RETURN`);
  }
  return out.join('\n');
}

const RULES = `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport ${ACCEPT_PORT} -m comment --comment mark-accept -j MARK --set-xmark 0x1/0xff
-A POSTROUTING -p udp -m comment --comment post-udp
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SVC - [0:0]
-A PREROUTING -m comment --comment nat-pre -j SVC
${serviceRules()}
-A SVC -d ${VIP}/32 -p udp -m udp --dport ${VIP_PORT} -m comment --comment vip-a -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination ${THREE_HOST.server4}:${ENDPOINT_PORTS[0]}
-A SVC -d ${VIP}/32 -p udp -m udp --dport ${VIP_PORT} -m comment --comment vip-b -j DNAT --to-destination ${THREE_HOST.server4}:${ENDPOINT_PORTS[1]}
-A POSTROUTING -p udp -m comment --comment nat-post
-A POSTROUTING -d ${THREE_HOST.server4}/32 -p udp -m multiport --dports ${ENDPOINT_PORTS.join(',')} -m comment --comment vip-masq -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -m comment --comment fwd-invalid -j DROP
-A FORWARD -m mark --mark 0x1/0xff -m conntrack --ctstate NEW -m comment --comment fwd-marked -j ACCEPT
-A FORWARD -p udp -m udp --dport ${DROP_PORT} -m comment --comment fwd-drop -j DROP
-A FORWARD -p udp -m udp --dport ${LIMIT_PORT} -m limit --limit 10000/sec --limit-burst 10000 -m comment --comment fwd-limit -j ACCEPT
-A FORWARD -p udp -m multiport --dports ${ENDPOINT_PORTS.join(',')} -m conntrack --ctstate DNAT -m comment --comment fwd-vip -j ACCEPT
COMMIT
`;

// argv: addr port connections sport first. Connection k: a socket bound to source port sport + k (never one a
// connection still in the table had: that would not be a new connection) sends datagrams numbered `first + 2k` and,
// GAP_MS later, `first + 2k + 1`, then closes. The first must be through by then: a second packet that meets its
// connection unconfirmed makes a connection of its own and runs the nat chains again, in the kernel as in nfqwall.
// 30 ms was not always enough for JavaScript alone on a loaded machine (one extra nat count in a CI run).
const GAP_MS = 100;
const SENDER = `
const dgram = require('node:dgram');
const [addr, port, n, sport, first] = process.argv.slice(1).map((x, i) => (i === 0 ? x : Number(x)));
let k = 0;
const next = () => {
  if (k === n) return setTimeout(() => process.stdout.write('sent ' + 2 * n + '\\n'), 200);
  const s = dgram.createSocket('udp4');
  const a = String(first + 2 * k), b = String(first + 2 * k + 1);
  s.bind(sport + k++, () => s.send(a, port, addr, () => setTimeout(() => s.send(b, port, addr, () => { s.close(); next(); }), ${GAP_MS})));
};
next();
`;

// argv: addr port... Records the numbers per port in arrival order, and the source addresses, answers nothing; prints
// `seen PORT n,n,... from A,B` per port for each stdin line.
const SINK = `
const dgram = require('node:dgram');
const [addr, ...ports] = process.argv.slice(1);
const seen = {};
const from = {};
let ready = 0;
for (const p of ports) {
  seen[p] = [];
  from[p] = new Set();
  const s = dgram.createSocket('udp4');
  s.on('message', (msg, r) => { seen[p].push(Number(msg.toString())); from[p].add(r.address); });
  s.bind(Number(p), addr, () => { if (++ready === ports.length) process.stdout.write('ready\\n'); });
}
process.stdin.on('data', () => { for (const p of ports) process.stdout.write('seen ' + p + ' ' + seen[p].join(',') + ' from ' + [...from[p]].join(',') + '\\n'); });
`;


/** `nfqwall save -c` -> packets per rule comment, and per built-in chain policy. */
function counters(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  let table = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    const policy = /^:([A-Z]+) (?:ACCEPT|DROP) \[(\d+):\d+\]/.exec(line);
    if (policy) out[`${table}:${policy[1]}`] = Number(policy[2]);
    const rule = /^\[(\d+):\d+\] -A .*--comment "?([a-z0-9-]+)"?/.exec(line);
    if (rule) out[rule[2]!] = Number(rule[1]);
  }
  return out;
}

const CONNECTIONS = 100;

interface Run {
  counters: Record<string, number>;
  decided: number;
  slow: number;
  queued: number;
  /** Per server port, the measured datagrams' numbers in arrival order, and the sources they came from. */
  order: Map<number, number[]>;
  from: Map<number, string[]>;
}

/** The measured datagrams are numbered from here; the warm-up's from 0. */
const MEASURED = 100_000;

describe('rule matcher: new connections decided by the compiled program, counters equal to the engine alone', function () {
  this.timeout(240_000);
  const env = useLab(threeHostSpec);
  const scratch = scratchDir();
  after(() => scratch.cleanup());
  const runs = new Map<string, Run>();

  async function run(matcher: boolean): Promise<Run> {
    const fw = env.lab.host('fw');
    const client: Host = env.lab.host('client');
    const server = env.lab.host('server');
    const rules = scratch.write('matcher.rules', RULES);
    const config = scratch.write('nfqwall.conf', `matcher = ${matcher ? 'on' : 'off'}\nmetrics = off\n`);
    const serverPorts = [ACCEPT_PORT, DROP_PORT, LIMIT_PORT, ...ENDPOINT_PORTS];
    const sink = server.spawn([process.execPath, '-e', SINK, THREE_HOST.server4, ...serverPorts.map(String)]);
    let daemon: Daemon | undefined;
    try {
      await printedUntil(sink, /ready/);
      daemon = await Daemon.start(fw, `${scratch.dir}/control-${matcher ? 'on' : 'off'}.sock`, { rules, config });
      const flows: [string, number][] = [
        [THREE_HOST.server4, ACCEPT_PORT],
        [THREE_HOST.server4, DROP_PORT],
        [THREE_HOST.server4, LIMIT_PORT],
        [VIP, VIP_PORT],
      ];
      const save = async (): Promise<Record<string, number>> => {
        const saved = (await controlRequest(daemon!.control, { cmd: 'save', counters: true })) as unknown as { rulesets: { ipv4: string } };
        return counters(saved.rulesets.ipv4);
      };
      const send = async (connections: number, sport: number, first: number): Promise<void> => {
        // The flows side by side: their ports and source ports differ, and the gap makes each one slow alone.
        await Promise.all(
          [...flows.entries()].map(([i, [addr, port]]) => {
            const args = [addr, String(port), String(connections), String(sport + 1000 * i), String(first)];
            return client.exec([process.execPath, '-e', SENDER, ...args], { timeoutMs: 60_000 });
          }),
        );
        await daemon!.settled(5_000);
      };
      // Warm-up, so that JavaScript's first (unoptimised) decisions are not slow enough for a second datagram to meet
      // its connection unconfirmed; only what the measured traffic adds counts.
      await send(20, 20_000, 0);
      const before = await save();
      const queuedBefore = (await daemon.status()).queues.reduce((n, q) => n + q.received, 0);
      const stBefore = ((await daemon.status()) as unknown as { matcher?: { decided: number; slow: number } }).matcher;
      await send(CONNECTIONS, 30_000, MEASURED);
      const seen = printedUntil(sink, new RegExp(`seen ${ENDPOINT_PORTS[1]} .*\\n`));
      sink.stdin?.write('?\n');
      const text = await seen;
      const order = new Map<number, number[]>();
      const from = new Map<number, string[]>();
      for (const port of serverPorts) {
        const m = new RegExp(`seen ${port} ([\\d,]*) from (\\S*)`).exec(text);
        assert.ok(m, text);
        order.set(port, m[1]!.split(',').filter((x) => x !== '').map(Number).filter((x) => x >= MEASURED));
        from.set(port, m[2]!.split(',').filter((x) => x !== ''));
      }
      const after = await save();
      const delta: Record<string, number> = {};
      for (const [k, v] of Object.entries(after)) delta[k] = v - (before[k] ?? 0);
      const status = (await daemon.status()) as unknown as { matcher?: { decided: number; slow: number }; queues: { received: number }[] };
      return {
        counters: delta,
        decided: (status.matcher?.decided ?? 0) - (stBefore?.decided ?? 0),
        slow: (status.matcher?.slow ?? 0) - (stBefore?.slow ?? 0),
        queued: status.queues.reduce((n, q) => n + q.received, 0) - queuedBefore,
        order,
        from,
      };
    } finally {
      sink.kill('SIGKILL');
      await daemon?.stop();
    }
  }

  before(async () => {
    runs.set('on', await run(true));
    runs.set('off', await run(false));
  });

  it('every rule and policy counter is the same with the matcher as without it, and what the packets make it', () => {
    const n = CONNECTIONS;
    // The VIP's endpoints are drawn at random: each run splits its connections its own way.
    const { 'vip-a': onA, 'vip-b': onB, ...on } = runs.get('on')!.counters;
    const { 'vip-a': offA, 'vip-b': offB, ...off } = runs.get('off')!.counters;
    assert.deepEqual(on, off);
    assert.equal(onA! + onB!, n);
    assert.equal(offA! + offB!, n);
    assert.ok(onA! > 0 && onB! > 0, `endpoints drawn ${onA} and ${onB} times`);
    // Two datagrams per connection at PREROUTING; nat runs once per connection that lives past its first packet,
    // twice per connection whose first packet FORWARD dropped (it left no connection behind).
    assert.equal(on['nat-pre'], n + 2 * n + n + n);
    assert.equal(on['mark-accept'], 2 * n);
    assert.equal(on['fwd-marked'], 2 * n);
    assert.equal(on['fwd-drop'], 2 * n);
    assert.equal(on['fwd-limit'], 2 * n);
    assert.equal(on['fwd-vip'], 2 * n);
    assert.equal(on['post-udp'], 6 * n);
    assert.equal(on['nat-post'], 3 * n);
    assert.equal(on['vip-masq'], n);
    assert.equal(on['svc-0'], 0);
  });

  it('the matcher decided the trips it can run, and left the limit rule to JavaScript', () => {
    const on = runs.get('on')!;
    const off = runs.get('off')!;
    assert.equal(off.decided, 0);
    // Trips: accepted, limited and VIP datagrams 3 each (PREROUTING, FORWARD, POSTROUTING), dropped ones 2. A first
    // datagram's trips are the matcher's (the limited port's FORWARD trip is JavaScript's), and so are the dropped
    // port's second ones (their first left no connection). The other second datagrams meet their connection
    // confirmed and still NEW, so the flow cache can keep their decisions: their trips go to JavaScript, whose
    // decisions it stores (docs/flow-cache.md), without the matcher looking.
    const n = CONNECTIONS;
    const trips = 3 * 2 * n + 2 * 2 * n + 3 * 2 * n + 3 * 2 * n;
    const firsts = 3 * n + 2 * n + 2 * n + 3 * n + 2 * n;
    assert.equal(on.queued, trips);
    assert.ok(on.decided <= firsts, `${on.decided} decided of ${trips} trips`);
    assert.ok(on.decided >= 0.95 * firsts, `${on.decided} decided of ${firsts} the program can decide (slow ${on.slow})`);
    // The matcher looks at every trip but the cacheable second datagrams', and decides it or leaves it to JavaScript.
    assert.equal(on.decided + on.slow, trips - 9 * n);
    process.stderr.write(`      matcher: ${on.decided} of ${trips} trips decided natively, ${on.slow} left to JavaScript\n`);
  });

  it('the datagrams of every connection arrived in order, none lost but the dropped port', () => {
    for (const r of runs.values()) {
      assert.deepEqual(r.order.get(DROP_PORT), []);
      // A connection's second datagram after its first. nfqwall keeps each connection's order, not the order between
      // connections: one's second datagram in JavaScript may be passed by the next one's first, decided natively.
      let pairs = 0;
      for (const port of [ACCEPT_PORT, LIMIT_PORT, ...ENDPOINT_PORTS]) {
        const at = new Map(r.order.get(port)!.map((x, i) => [x, i]));
        for (let k = 0; k < CONNECTIONS; k++) {
          const a = at.get(MEASURED + 2 * k);
          const b = at.get(MEASURED + 2 * k + 1);
          if (a === undefined || b === undefined) continue;
          assert.ok(a < b, `port ${port}: connection ${k}'s second datagram before its first`);
          pairs++;
        }
      }
      // Every connection of the accepted, limited and VIP ports had both its datagrams compared (a VIP connection's
      // on the one endpoint that took both).
      assert.equal(pairs, 3 * CONNECTIONS, 'connections whose two datagrams arrived at one port');
      assert.equal(r.order.get(ACCEPT_PORT)!.length, 2 * CONNECTIONS);
      assert.equal(r.order.get(LIMIT_PORT)!.length, 2 * CONNECTIONS);
    }
  });

  it('the VIP\'s connections reached one endpoint each, both datagrams the same, masqueraded to the node', () => {
    for (const r of runs.values()) {
      const [a, b] = ENDPOINT_PORTS.map((p) => r.order.get(p)!);
      assert.equal(a!.length + b!.length, 2 * CONNECTIONS);
      // Datagrams 2k and 2k + 1 (from MEASURED) are one connection: its binding sends both to one endpoint.
      const at = new Map<number, number>();
      for (const [port, nums] of [[ENDPOINT_PORTS[0], a!], [ENDPOINT_PORTS[1], b!]] as const) for (const x of nums) at.set(x, port);
      for (let k = 0; k < CONNECTIONS; k++) {
        const first = MEASURED + 2 * k;
        assert.equal(at.get(first + 1), at.get(first), `connection ${k}: datagrams on ports ${at.get(first)} and ${at.get(first + 1)}`);
      }
      for (const p of ENDPOINT_PORTS) assert.deepEqual(r.from.get(p), [THREE_HOST.fwServer4], `port ${p}: sources`);
      assert.deepEqual(r.from.get(ACCEPT_PORT), [THREE_HOST.client4]);
    }
  });
});
