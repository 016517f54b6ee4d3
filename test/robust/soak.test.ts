// The soak's short mode (bench/soak.ts; `npm run soak` runs it for 10 minutes): 30 s of UDP, TCP and ICMP through
// DNAT and MASQUERADE with a reload of a changed ruleset and a metrics scrape every second. Its counters must add up
// exactly (accountingFailures): kernel queue ids against verdicts, JavaScript's tally against the queue, counting rules
// against the endpoints' kernels, NAT rules and the connection table against the connections opened. The first suite
// shows that each identity can fail; the second runs the soak (root).
import assert from 'node:assert/strict';
import { isRoot } from '../lab/lab';
import { accountingFailures, metricSum, parseSnmp, soak, SOAK_RULES, type SoakAccounting } from '../../bench/soak';

/** A run whose figures add up (the shape of a real 20 s run). */
function consistent(): SoakAccounting {
  const host = { udpArrived: 0, tcpInSegs: 0, tcpActiveOpens: 0, icmpInEchos: 0, icmpInEchoReps: 0, tcpOutRsts: 0 };
  return {
    q: {
      queue: 13, received: 49242, accepted: 49200, dropped: 42, kernelIdSequence: 49242, kernelQueueTotal: 0,
      kernelQueueDropped: 0, kernelUserDropped: 0, overload: 0, defaulted: 0,
    },
    js: { packets: 49242, accepted: 49190, dropped: 42, queued: 10 },
    ct: { entries: 820, created: 830, expired: 3, earlyDrop: 0, deleted: 1, killed: 4, discarded: 2, drop: 0 },
    ctCreatedBefore: 4,
    rules: {
      countUdpToServer: 3847, countUdpToClient: 3846, countTcpToServer: 4938, countTcpToClient: 3292, countEchoRequests: 195,
      countEchoReplies: 194, dnatUdp: 1, dnatTcp: 823, masquerade: 825, established: 15489, acceptUdp: 1,
    },
    client: { ...host, udpArrived: 3846, tcpInSegs: 3292, tcpActiveOpens: 823, icmpInEchoReps: 194 },
    server: { ...host, udpArrived: 3847, tcpInSegs: 4938, icmpInEchos: 195 },
    fw: { ...host, tcpActiveOpens: 1 },
    metrics: { verdicts: 49250, received: 49252, verdictsBefore: 49242, verdictsAfter: 49262 },
  };
}

describe('robust: soak accounting (each identity can fail)', () => {
  it('a run whose figures add up passes', () => {
    assert.deepEqual(accountingFailures(consistent()), []);
  });

  // One figure off by one (or the scrape outside its bracket) must be reported, naming the identity it breaks.
  const cases: [string, (a: SoakAccounting) => void, RegExp][] = [
    ['a lost verdict', (a) => (a.q.accepted -= 1), /^verdicts sent: /],
    ['a doubled verdict', (a) => (a.q.dropped += 1), /^verdicts sent: /],
    ['a packet the kernel numbered and nfqwall never judged', (a) => (a.q.kernelIdSequence += 1), /^kernel id_sequence: /],
    ['a packet left in the kernel queue', (a) => (a.q.kernelQueueTotal = 1), /^kernel queue_total: /],
    ['JavaScript deciding a packet twice', (a) => (a.js.accepted += 1), /^decided by JavaScript: /],
    ['a packet neither JavaScript nor the overload path decided', (a) => (a.q.received += 1, a.q.accepted += 1), /^packets received: /],
    ['/metrics behind the verdicts sent before it', (a) => (a.metrics.verdicts = a.metrics.verdictsBefore - 1), /^nfqwall_verdicts_total: /],
    ['/metrics ahead of the verdicts sent after it', (a) => (a.metrics.verdicts = a.metrics.verdictsAfter + 1), /^nfqwall_verdicts_total: /],
    ['/metrics receiving fewer than it decided', (a) => (a.metrics.received = a.metrics.verdicts - 1), /^nfqwall_queue_received_total /],
    ['a UDP datagram counted but never delivered', (a) => (a.server.udpArrived -= 1), /^rule "count udp to server"/],
    ['a UDP reply passed uncounted (a counter lost at a reload)', (a) => (a.rules.countUdpToClient -= 1), /^rule "count udp to client"/],
    ['a TCP segment to the server passed uncounted', (a) => (a.server.tcpInSegs += 1), /^rule "count tcp to server"/],
    ['a TCP segment to the client counted twice', (a) => (a.rules.countTcpToClient += 1), /^rule "count tcp to client"/],
    ['an echo request counted but lost', (a) => (a.server.icmpInEchos -= 1), /^rule "count echo requests"/],
    ['an echo reply uncounted', (a) => (a.client.icmpInEchoReps += 1), /^rule "count echo replies"/],
    ['a TCP connection that skipped DNAT', (a) => (a.rules.dnatTcp -= 1), /^rule "dnat tcp"/],
    ['the UDP flow NATed twice', (a) => (a.rules.dnatUdp = 2), /^rule "dnat udp"/],
    ['a connection that skipped MASQUERADE', (a) => (a.rules.masquerade -= 1), /^rule "masquerade"/],
    ['a connection tracked twice', (a) => (a.ct.created += 1), /^connection table: created/],
    ['a new connection refused by a full table', (a) => (a.ct.drop = 1), /^connection table: drop/],
    ['more entries gone than created', (a) => (a.ct.expired += 10), /^connection table: entries .* != created/],
    ['an entry removed without a counter', (a) => (a.ct.entries -= 1), /^connection table: entries .* != created/],
    ['packets counted by both JavaScript and the flow cache', (a) => (a.q.cached = 5), /^packets received: /],
    ['packets counted by both JavaScript and the rule matcher', (a) => (a.q.matched = 5), /^packets received: /],
  ];
  for (const [what, change, expect] of cases) {
    it(`reports ${what}`, () => {
      const a = consistent();
      change(a);
      const f = accountingFailures(a);
      assert.ok(f.some((l) => expect.test(l)), `expected ${expect} among:\n${f.join('\n')}`);
    });
  }

  it('packets the flow cache decided count toward the queue as JavaScript verdicts do', () => {
    const a = consistent();
    a.q.cached = 7;
    a.q.received += 7;
    a.q.accepted += 7;
    a.q.kernelIdSequence += 7;
    a.metrics.received += 7;
    a.metrics.verdicts += 7;
    a.metrics.verdictsBefore += 7;
    a.metrics.verdictsAfter += 7;
    assert.deepEqual(accountingFailures(a), []);
  });

  it('packets decided without the rules (overload) give the end-to-end identities that much slack, no more', () => {
    const a = consistent();
    // Two overload drops (fail-closed): received, verdicts and kernel ids all moved by two.
    a.q.overload = 2;
    a.q.received += 2;
    a.q.dropped += 2;
    a.q.kernelIdSequence += 2;
    a.rules.countTcpToServer += 2; // e.g. two segments counted at FORWARD, then dropped by overload at POSTROUTING
    assert.deepEqual(accountingFailures(a), []);
    a.rules.countTcpToServer += 1;
    assert.match(accountingFailures(a).join('\n'), /^rule "count tcp to server": .*off by more than the 2 packets/);
    // The queue's own identities get no slack.
    a.rules.countTcpToServer -= 1;
    a.q.accepted += 1;
    assert.match(accountingFailures(a).join('\n'), /^verdicts sent: /);
  });

  it('reads /proc/net/snmp and Prometheus text as the accounting needs', () => {
    const snmp = parseSnmp('Udp: InDatagrams NoPorts InErrors\nUdp: 7 2 1\nTcp: RtoAlgorithm InSegs\nTcp: 1 42\n');
    assert.deepEqual(snmp, { 'Udp.InDatagrams': 7, 'Udp.NoPorts': 2, 'Udp.InErrors': 1, 'Tcp.RtoAlgorithm': 1, 'Tcp.InSegs': 42 });
    assert.throws(() => parseSnmp('Udp: InDatagrams\nTcp: 7\n'), /snmp/);
    const text = '# HELP nfqwall_verdicts_total x\nnfqwall_verdicts_total{verdict="accept"} 10\nnfqwall_verdicts_total{verdict="drop"} 3\nnfqwall_verdicts_total_x 99\n';
    assert.equal(metricSum(text, 'nfqwall_verdicts_total'), 13);
    assert.throws(() => metricSum(text, 'nfqwall_queue_received_total'), /no nfqwall_queue_received_total/);
  });
});

describe('robust: soak, short mode (lab)', function () {
  it('30 s of mixed traffic through NAT with reloads and scrapes every second: every counter adds up', async function () {
    this.timeout(180_000);
    if (!isRoot()) {
      process.stderr.write('soak: skipping: network-namespace tests need root\n');
      this.skip();
    }
    const out: string[] = [];
    const r = await soak({ seconds: 30, interval: 10, rssGrowthMiB: 32, seed: 9, log: (l) => out.push(l) });
    const report = out.join('\n');
    assert.deepEqual(r.failures, [], report);
    // The run did what it says: it reloaded and scraped about once a second and carried traffic of each kind, so the
    // identities compared real counts, not zeros.
    assert.ok((r.summary['reloads'] ?? 0) >= 20, report);
    assert.ok((r.summary['scrapes'] ?? 0) >= 20, report);
    for (const k of ['udpReplies', 'tcpOk', 'pingReceived', 'queued', 'ctCreated', 'clientTcpActiveOpens']) {
      assert.ok((r.summary[k] ?? 0) > 0, `${k}:\n${report}`);
    }
    for (const k of Object.keys(SOAK_RULES)) assert.ok((r.summary[`rule_${k}`] ?? 0) > 0, `rule ${k} counted nothing:\n${report}`);
    assert.equal(r.summary['lostVerdicts'], 0, report);
  });
});
