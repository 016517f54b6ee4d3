import assert from 'node:assert/strict';
import http from 'node:http';
import { Metrics, MetricsServer, ruleLabel, type ConntrackState, type MetricsSource, type ProcessorCounts, type ReloadState } from '../../src/daemon/metrics';
import type { QueueStats } from '../../src/native';
import { parseRuleset } from '../../src/rules/parse';
import type { Ruleset } from '../../src/rules/model';

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp --dport 9 -m comment --comment "discard port" -j DROP
-A FORWARD -p icmp -j ACCEPT
COMMIT
`;

function queue(q: Partial<QueueStats>): QueueStats {
  return {
    queue: 0, received: 0, accepted: 0, dropped: 0, bytes: 0, batches: 0, errors: 0, enobufs: 0, overload: 0,
    defaulted: 0, maxLen: 4096, kernelQueueTotal: 0, kernelQueueDropped: 0, kernelUserDropped: 0, kernelIdSequence: 0,
    pendingBatches: 0, threadIdleMs: 0, ...q,
  };
}

/** `name{labels} value` lines of one metric, as a map from the label text to the value. */
function series(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) out.set(m[2] ?? '', Number(m[3]));
  }
  return out;
}

class FakeSource implements MetricsSource {
  rules: Ruleset[];
  proc: ProcessorCounts = { packets: 0, queued: 0, errors: 0, replies: 0, replyErrors: 0 };
  queues: QueueStats[] = [queue({})];
  reload: ReloadState | undefined;
  startedAt = 1_700_000_000_000;
  constructor(text = RULES) {
    this.rules = [parseRuleset(text, 'test.rules')];
  }
  rulesets(): Ruleset[] {
    return this.rules;
  }
  processor(): ProcessorCounts {
    return this.proc;
  }
  queueStats(): QueueStats[] {
    return this.queues;
  }
  failOpen(): boolean {
    return false;
  }
  reloads(): ReloadState | undefined {
    return this.reload;
  }
  conntrack(): ConntrackState | undefined {
    return this.ct;
  }
  ct: ConntrackState | undefined;
}

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('metrics: values read at scrape time', () => {
  it('reports rule and policy counters as they are on the rules, labelled by comment or position-id', async () => {
    const src = new FakeSource();
    const m = new Metrics(src, '9.9.9');
    const fwd = src.rules[0]!.tables.get('filter')!.chains.get('FORWARD')!;
    fwd.rules[0]!.counters = { packets: 7, bytes: 700 };
    fwd.rules[1]!.counters = { packets: 3, bytes: 252 };
    fwd.counters = { packets: 2, bytes: 120 };
    const text = await m.text();
    const pk = series(text, 'nfqwall_rule_packets_total');
    assert.equal(pk.get('{family="ipv4",table="filter",chain="FORWARD",rule="discard port"}'), 7);
    const icmpLabel = `#2-${fwd.rules[1]!.id}`;
    assert.equal(ruleLabel(fwd.rules[1]!, 2), icmpLabel);
    assert.equal(pk.get(`{family="ipv4",table="filter",chain="FORWARD",rule="${icmpLabel}"}`), 3);
    assert.equal(series(text, 'nfqwall_rule_bytes_total').get('{family="ipv4",table="filter",chain="FORWARD",rule="discard port"}'), 700);
    const pol = series(text, 'nfqwall_chain_policy_packets_total');
    assert.equal(pol.get('{family="ipv4",table="filter",chain="FORWARD",policy="DROP"}'), 2);
    assert.equal(pol.get('{family="ipv4",table="filter",chain="INPUT",policy="ACCEPT"}'), 0);
    assert.equal(series(text, 'nfqwall_chain_policy_bytes_total').get('{family="ipv4",table="filter",chain="FORWARD",policy="DROP"}'), 120);
    assert.equal(series(text, 'nfqwall_build_info').get('{version="9.9.9"}'), 1);
    assert.equal(series(text, 'nfqwall_ruleset_rules').get('{family="ipv4",table="filter"}'), 2);
    // Default process metrics come with it.
    assert.ok(series(text, 'process_cpu_user_seconds_total').size === 1, 'process metrics missing');

    // Counters move between scrapes, and a rule removed by a reload disappears.
    fwd.rules[0]!.counters.packets = 9;
    src.rules = [parseRuleset(RULES.replace(/^-A FORWARD -p icmp.*\n/m, ''), 'test.rules')];
    src.rules[0]!.tables.get('filter')!.chains.get('FORWARD')!.rules[0]!.counters = { packets: 9, bytes: 900 };
    const text2 = await m.text();
    const pk2 = series(text2, 'nfqwall_rule_packets_total');
    assert.equal(pk2.get('{family="ipv4",table="filter",chain="FORWARD",rule="discard port"}'), 9);
    assert.equal(pk2.size, 1);
  });

  it('reports verdicts from the queue, with NF_QUEUE separated, and per-queue counters', async () => {
    const src = new FakeSource();
    src.queues = [queue({ queue: 3, received: 100, accepted: 60, dropped: 40, kernelQueueDropped: 5, kernelUserDropped: 6, overload: 7, threadIdleMs: 150, lateWaits: 8 })];
    src.proc = { packets: 98, queued: 10, errors: 1, replies: 4, replyErrors: 2 };
    const text = await new Metrics(src).text();
    const v = series(text, 'nfqwall_verdicts_total');
    assert.deepEqual([v.get('{verdict="accept"}'), v.get('{verdict="drop"}'), v.get('{verdict="queue"}')], [50, 40, 10]);
    assert.equal(series(text, 'nfqwall_queue_received_total').get('{queue="3"}'), 100);
    assert.equal(series(text, 'nfqwall_queue_kernel_dropped_total').get('{queue="3"}'), 5);
    assert.equal(series(text, 'nfqwall_queue_user_dropped_total').get('{queue="3"}'), 6);
    assert.equal(series(text, 'nfqwall_queue_overload_total').get('{queue="3"}'), 7);
    assert.equal(series(text, 'nfqwall_queue_late_waits_total').get('{queue="3"}'), 8);
    assert.equal(series(text, 'nfqwall_queue_thread_idle_seconds').get('{queue="3"}'), 0.15);
    assert.equal(series(text, 'nfqwall_queue_fail_open').get('{queue="3"}'), 0);
    assert.equal(series(text, 'nfqwall_slow_path_packets_total').get(''), 98);
    assert.equal(series(text, 'nfqwall_reject_replies_total').get('{result="sent"}'), 4);
    assert.equal(series(text, 'nfqwall_conntrack_entries').get(''), 0);
    assert.equal(series(text, 'nfqwall_conntrack_entries_limit').get(''), 0);
    assert.equal(series(text, 'nfqwall_conntrack_events_total').size, 0, 'no table, no events');
  });

  it('reports the connection table: entries, limit, and every event counter by name', async () => {
    const src = new FakeSource();
    const events = { found: 11, new: 7, invalid: 3, drop: 2, early_drop: 0, insert_failed: 1, nat_failed: 4, clash_resolve: 8, expired: 5, deleted: 6, killed: 9, discarded: 10 };
    src.ct = { entries: 9, limit: 16, events };
    const text = await new Metrics(src).text();
    assert.equal(series(text, 'nfqwall_conntrack_entries').get(''), 9);
    assert.equal(series(text, 'nfqwall_conntrack_entries_limit').get(''), 16);
    const ev = series(text, 'nfqwall_conntrack_events_total');
    for (const [name, n] of Object.entries(events)) assert.equal(ev.get(`{event="${name}"}`), n, name);
    assert.equal(ev.size, Object.keys(events).length);
  });

  it('reports reload state, with the start as the one successful load until the daemon tracks reloads', async () => {
    const src = new FakeSource();
    const m = new Metrics(src);
    let text = await m.text();
    assert.equal(series(text, 'nfqwall_config_last_reload_successful').get(''), 1);
    assert.equal(series(text, 'nfqwall_config_last_reload_success_timestamp_seconds').get(''), 1_700_000_000);
    src.reload = { successes: 2, failures: 1, lastSuccessful: false, lastSuccessTimestampSeconds: 1_700_000_100 };
    text = await m.text();
    const r = series(text, 'nfqwall_config_reloads_total');
    assert.deepEqual([r.get('{result="success"}'), r.get('{result="failure"}')], [2, 1]);
    assert.equal(series(text, 'nfqwall_config_last_reload_successful').get(''), 0);
    assert.equal(series(text, 'nfqwall_config_last_reload_success_timestamp_seconds').get(''), 1_700_000_100);
  });

  it('observes one histogram sample per batch', async () => {
    const m = new Metrics(new FakeSource());
    m.observeBatch(0.0001, 12);
    m.observeBatch(0.002, 256);
    const text = await m.text();
    assert.equal(series(text, 'nfqwall_batch_duration_seconds_count').get(''), 2);
    assert.ok(Math.abs(series(text, 'nfqwall_batch_duration_seconds_sum').get('')! - 0.0021) < 1e-12);
    assert.equal(series(text, 'nfqwall_batch_packets_sum').get(''), 268);
  });

  it('never puts an address or port in a label', async () => {
    const src = new FakeSource(RULES.replace('-p icmp', '-s 198.18.0.2/32 -p icmp'));
    const text = await new Metrics(src).text();
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) continue;
      assert.doesNotMatch(line, /198\.18\.0\.2/, line);
    }
  });
});

describe('metrics: HTTP endpoint', () => {
  let server: MetricsServer | undefined;
  let src: FakeSource;
  before(async () => {
    src = new FakeSource();
    server = await MetricsServer.listen({ host: '127.0.0.1', port: 0 }, new Metrics(src));
  });
  after(async () => {
    await server?.close();
  });

  it('serves GET /metrics in the Prometheus text format, 405 for other methods, 404 for other paths', async () => {
    const port = server!.address.port;
    const ok = await get(port, '/metrics');
    assert.equal(ok.status, 200);
    assert.match(String(ok.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(ok.body, /^# HELP nfqwall_rule_packets_total /m);
    assert.equal((await get(port, '/metrics?x=1')).status, 200);
    const post = await get(port, '/metrics', 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers['allow'], 'GET');
    assert.equal((await get(port, '/metrics', 'DELETE')).status, 405);
    assert.equal((await get(port, '/')).status, 404);
    assert.equal((await get(port, '/metrics/x')).status, 404);
    assert.equal((await get(port, '/../etc/passwd')).status, 404);
  });

  it('refuses a taken port with a message naming the endpoint', async () => {
    const port = server!.address.port;
    await assert.rejects(MetricsServer.listen({ host: '127.0.0.1', port }, new Metrics(src)), /^Error: metrics endpoint 127\.0\.0\.1:\d+: listen EADDRINUSE/);
  });

  it('survives a flood of concurrent scrapes and malformed requests, and still answers after', async function () {
    this.timeout(60_000);
    const port = server!.address.port;
    let ok = 0;
    let refused = 0;
    const started = Date.now();
    for (let round = 0; round < 10; round++) {
      const results = await Promise.allSettled(Array.from({ length: 200 }, () => get(port, '/metrics')));
      for (const r of results) {
        if (r.status === 'fulfilled' && r.value.status === 200) ok++;
        else refused++;
      }
    }
    // Garbage on the wire gets a 400 or a hang-up, never a crash.
    const net = await import('node:net');
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('\x00\x01 NOT HTTP\r\n\r\n'));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
      s.setTimeout(5_000, () => s.destroy());
    });
    assert.ok(ok >= 1000, `only ${ok} of 2000 scrapes answered (${refused} refused) in ${Date.now() - started} ms`);
    assert.equal((await get(port, '/metrics')).status, 200);
  });
});
