// Prometheus metrics (REFERENCE.md 3.2). Everything is read from the daemon's state when a scrape arrives, in each
// metric's collect(): packet counters live on the rules, the queue and the batch processor, never in a JS call per
// packet. The only thing observed as it happens is one histogram sample per batch.
//
// Labels are bounded: family, table, chain, rule (comment or `#<position>-<id>`), policy, verdict, queue, result.
// No address or port ever becomes a label. See docs/systemd.md for the endpoint and the full list.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets } from 'prom-client';
import type { QueueStats } from '../native';
import { packageRoot } from '../package-root';
import { LATE_QUEUE_MIN_MAXLEN } from './hooks';
import type { Family, Rule, Ruleset } from '../rules/model';

/** The default endpoint: loopback only; 9469 is nfqwall's port (documented in docs/systemd.md). */
export const DEFAULT_METRICS_HOST = '127.0.0.1';
export const DEFAULT_METRICS_PORT = 9469;

export interface MetricsListen {
  host: string;
  port: number;
}

/** Counts of the batch processor (src/daemon/processor.ts ProcessorStats), as the metrics read them. */
export interface ProcessorCounts {
  packets: number;
  queued: number;
  errors: number;
  replies: number;
  replyErrors: number;
}

/** The reload bookkeeping the daemon keeps (successes and failures since start, and the last outcome). */
export interface ReloadState {
  successes: number;
  failures: number;
  lastSuccessful: boolean;
  /** Unix time in seconds of the last successful load (the start counts as one). */
  lastSuccessTimestampSeconds: number;
}

export interface ConntrackState {
  entries: number;
  limit: number;
  /** Cumulative table events by name (`conntrack -S` style), each a counter. */
  events: Readonly<Record<ConntrackEvent, number>>;
}

/** The connection-table events exported, as `conntrack -S` names them (drop: refused because the table was full). */
export const CONNTRACK_EVENTS = ['found', 'new', 'invalid', 'drop', 'early_drop', 'insert_failed', 'nat_failed', 'clash_resolve', 'expired', 'deleted', 'killed', 'discarded'] as const;
export type ConntrackEvent = (typeof CONNTRACK_EVENTS)[number];

/** The flow cache's counts (native FlowCacheStats), as the metrics read them. */
export interface FlowCacheCounts {
  hits: number;
  misses: number;
  stores: number;
  uncacheable: number;
  evictions: number;
  entries: number;
  tripsSkipped: number;
  transitsDropped: number;
  transitsLapsed: number;
}

/** What the daemon offers the metrics; every method is called at scrape time only. */
export interface MetricsSource {
  rulesets(): readonly Ruleset[];
  processor(): ProcessorCounts;
  queueStats(): readonly QueueStats[];
  failOpen(): boolean;
  /** Undefined until the daemon tracks reloads: then the start is reported as the one successful load. */
  reloads?(): ReloadState | undefined;
  /** Undefined before the daemon has bound its queue (and with it the connection table). */
  conntrack?(): ConntrackState | undefined;
  /** Milliseconds since the epoch when the daemon started. */
  startedAt: number;
  /** H2: log lines that could not be written (src/daemon/logger.ts). */
  logLinesDropped?(): number;
  /** Flow cache: adds the natively decided packets to the rule counters (called before they are read). */
  drainFlows?(): void;
  /** Undefined when the flow cache is off. */
  flowCache?(): FlowCacheCounts | undefined;
  /** Undefined when the rule matcher is off. */
  matcher?(): MatcherCounts | undefined;
}

/** The rule matcher's receive-thread counts (docs/matcher.md). */
export interface MatcherCounts {
  decided: number;
  slow: number;
}

/** What the metrics read from the daemon (src/daemon/daemon.ts Daemon), structurally, so this file needs no import of it. */
export interface DaemonView {
  readonly startedAt: number;
  readonly rules: { rules4?: Ruleset; rules6?: Ruleset };
  readonly processor: { readonly stats: ProcessorCounts };
  readonly reloads: { success: number; failure: number; lastSuccessful: boolean; lastSuccessTimestamp: number };
  readonly opts: { failOpen: boolean };
  queueStats(): QueueStats[];
  /** H16: the connection table's size and limit, once the daemon has one. */
  conntrackState?(): ConntrackState | undefined;
  /** H2: the daemon's logger, for the lines it lost. */
  readonly logger?: { readonly dropped: number };
  drainFlows?(): void;
  flowCacheStats?(): FlowCacheCounts | undefined;
  matcherStats?(): MatcherCounts | undefined;
}

export function daemonSource(d: DaemonView): MetricsSource {
  return {
    startedAt: d.startedAt,
    rulesets: () => [d.rules.rules4, d.rules.rules6].filter((r): r is Ruleset => r !== undefined),
    processor: () => d.processor.stats,
    queueStats: () => d.queueStats(),
    failOpen: () => d.opts.failOpen,
    conntrack: () => d.conntrackState?.(), // H16
    logLinesDropped: () => d.logger?.dropped ?? 0, // H2
    drainFlows: () => d.drainFlows?.(),
    flowCache: () => d.flowCacheStats?.(),
    matcher: () => d.matcherStats?.(),
    reloads: () => ({
      successes: d.reloads.success,
      failures: d.reloads.failure,
      lastSuccessful: d.reloads.lastSuccessful,
      lastSuccessTimestampSeconds: d.reloads.lastSuccessTimestamp,
    }),
  };
}

const familyLabel = (f: Family): string => (f === 4 ? 'ipv4' : 'ipv6');

/** The `rule` label: the rule's comment if it has one, else `#<position>-<id>` (position is 1-based). */
export function ruleLabel(rule: Rule, position: number): string {
  for (const m of rule.matches) {
    if (m.ext.name !== 'comment') continue;
    const c = (m.opts as { comment?: unknown }).comment;
    if (typeof c === 'string' && c !== '') return c;
  }
  return `#${position}-${rule.id}`;
}

/** package.json's version. */
export function packageVersion(): string {
  try {
    const v = (JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * The nfqwall registry. Counters computed at scrape time are rebuilt from scratch in collect() (reset, then set),
 * so a rule removed by a reload disappears from the output instead of being reported forever.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly batchSeconds: Histogram<string>;
  private readonly batchPackets: Histogram<string>;

  constructor(private readonly source: MetricsSource, version = packageVersion()) {
    const register = [this.registry];
    const src = source;
    collectDefaultMetrics({ register: this.registry });

    new Gauge({
      name: 'nfqwall_build_info',
      help: 'Always 1; the version label says which nfqwall is running.',
      labelNames: ['version'],
      registers: register,
      collect() {
        this.set({ version }, 1);
      },
    });

    const ruleLabels = ['family', 'table', 'chain', 'rule'] as const;
    const policyLabels = ['family', 'table', 'chain', 'policy'] as const;
    // One collect fills all four: they walk the same rules. The registry collects in registration order, each metric
    // synchronously up to its values, so this one must be registered before the three it fills.
    new Counter({
      name: 'nfqwall_rule_packets_total',
      help: 'Packets that matched the rule (its counter, as iptables-save -c prints it). rule is the rule comment, or #<position>-<id> without one; rules sharing a comment in one chain add up.',
      labelNames: ruleLabels,
      registers: register,
      collect() {
        // Packets the flow cache decided count on their rules from here on.
        src.drainFlows?.();
        this.reset();
        ruleBytes.reset();
        policyPackets.reset();
        policyBytes.reset();
        for (const rs of src.rulesets()) {
          const family = familyLabel(rs.family);
          for (const [table, t] of rs.tables) {
            for (const [chain, c] of t.chains) {
              if (c.builtin && c.policy !== undefined) {
                const l = { family, table, chain, policy: c.policy };
                policyPackets.inc(l, c.counters.packets);
                policyBytes.inc(l, c.counters.bytes);
              }
              c.rules.forEach((r, i) => {
                const l = { family, table, chain, rule: ruleLabel(r, i + 1) };
                this.inc(l, r.counters.packets);
                ruleBytes.inc(l, r.counters.bytes);
              });
            }
          }
        }
      },
    });
    const ruleBytes = new Counter({
      name: 'nfqwall_rule_bytes_total',
      help: 'Bytes (IP total length) of the packets that matched the rule; labelled as nfqwall_rule_packets_total.',
      labelNames: ruleLabels,
      registers: register,
    });
    const policyPackets = new Counter({
      name: 'nfqwall_chain_policy_packets_total',
      help: 'Packets that reached the end of a built-in chain and got its policy.',
      labelNames: policyLabels,
      registers: register,
    });
    const policyBytes = new Counter({
      name: 'nfqwall_chain_policy_bytes_total',
      help: 'Bytes (IP total length) of the packets that got a built-in chain policy.',
      labelNames: policyLabels,
      registers: register,
    });

    new Gauge({
      name: 'nfqwall_ruleset_rules',
      help: 'Rules loaded, per family and table.',
      labelNames: ['family', 'table'],
      registers: register,
      collect() {
        this.reset();
        for (const rs of src.rulesets()) {
          for (const [table, t] of rs.tables) {
            let n = 0;
            for (const c of t.chains.values()) n += c.rules.length;
            this.set({ family: familyLabel(rs.family), table }, n);
          }
        }
      },
    });

    new Counter({
      name: 'nfqwall_verdicts_total',
      help: 'Verdicts given to the kernel on every path (rules, errors, overload, shutdown). REJECT is a drop plus a reply (nfqwall_reject_replies_total); queue is an NFQUEUE target passing the packet on.',
      labelNames: ['verdict'],
      registers: register,
      collect() {
        this.reset();
        let accepted = 0;
        let dropped = 0;
        for (const q of src.queueStats()) {
          accepted += q.accepted;
          dropped += q.dropped;
        }
        // The addon counts NF_QUEUE among the non-drop verdicts; only the rules give it.
        const queued = src.processor().queued;
        this.inc({ verdict: 'accept' }, Math.max(0, accepted - queued));
        this.inc({ verdict: 'drop' }, dropped);
        this.inc({ verdict: 'queue' }, queued);
      },
    });

    new Counter({
      name: 'nfqwall_reject_replies_total',
      help: 'ICMP errors and TCP resets REJECT rules sent (result="sent") or could not send (result="failed").',
      labelNames: ['result'],
      registers: register,
      collect() {
        this.reset();
        const p = src.processor();
        this.inc({ result: 'sent' }, p.replies);
        this.inc({ result: 'failed' }, p.replyErrors);
      },
    });

    new Counter({
      name: 'nfqwall_slow_path_packets_total',
      help: 'Packets evaluated by the TypeScript engine (those the flow cache decided natively are not: nfqwall_flow_cache_hits_total).',
      registers: register,
      collect() {
        this.reset();
        this.inc(src.processor().packets);
      },
    });

    new Counter({
      name: 'nfqwall_evaluation_errors_total',
      help: 'Packets whose evaluation failed; they got the fail-open or fail-closed verdict.',
      registers: register,
      collect() {
        this.reset();
        this.inc(src.processor().errors);
      },
    });

    this.queueMetrics(register);

    const reloadState = (): ReloadState =>
      src.reloads?.() ?? {
        successes: 0,
        failures: 0,
        lastSuccessful: true,
        lastSuccessTimestampSeconds: src.startedAt / 1000,
      };
    new Counter({
      name: 'nfqwall_config_reloads_total',
      help: 'Reloads of the configuration and rule files since start, by result (success, failure).',
      labelNames: ['result'],
      registers: register,
      collect() {
        this.reset();
        const r = reloadState();
        this.inc({ result: 'success' }, r.successes);
        this.inc({ result: 'failure' }, r.failures);
      },
    });
    new Gauge({
      name: 'nfqwall_config_last_reload_successful',
      help: '1 when the last load of the rule files succeeded (the rules in force are the files on disk), else 0.',
      registers: register,
      collect() {
        this.set(reloadState().lastSuccessful ? 1 : 0);
      },
    });
    new Gauge({
      name: 'nfqwall_config_last_reload_success_timestamp_seconds',
      help: 'Unix time of the last successful load of the rule files (the start counts).',
      registers: register,
      collect() {
        this.set(reloadState().lastSuccessTimestampSeconds);
      },
    });

    new Gauge({
      name: 'nfqwall_conntrack_entries',
      help: 'Entries in the nfqwall connection table (the kernel does not track queued traffic: docs/conntrack.md).',
      registers: register,
      collect() {
        this.set(src.conntrack?.()?.entries ?? 0);
      },
    });
    new Gauge({
      name: 'nfqwall_conntrack_entries_limit',
      help: 'Size limit of the nfqwall connection table (conntrack_max); new connections beyond it are dropped and counted.',
      registers: register,
      collect() {
        this.set(src.conntrack?.()?.limit ?? 0);
      },
    });
    new Counter({
      name: 'nfqwall_conntrack_events_total',
      help: 'Connection-table events as conntrack -S names them: found, new, invalid, drop (new connection refused: table full, or a clash at confirmation that could not be resolved), early_drop, insert_failed, nat_failed (a NATed connection that lost its clash at confirmation), clash_resolve (a packet of a flow another packet confirmed first, kept as nf_ct_resolve_clash keeps it), expired, deleted; and two that conntrack -S has no name for: killed (ended by the TCP tracker: an RST, a SYN reopening a TIME_WAIT connection) and discarded (unconfirmed entries freed with their packet).',
      labelNames: ['event'],
      registers: register,
      collect() {
        this.reset();
        const ct = src.conntrack?.();
        if (ct === undefined) return;
        for (const e of CONNTRACK_EVENTS) this.inc({ event: e }, ct.events[e]);
      },
    });

    // H2: a full disk or a broken log stream costs log lines, never filtering.
    new Counter({
      name: 'nfqwall_log_lines_dropped_total',
      help: 'Log lines (daemon messages and LOG/NFLOG records) that could not be written: disk full, log stream broken or stalled. Filtering goes on; the first line written again says how many were lost.',
      registers: register,
      collect() {
        this.reset();
        this.inc(src.logLinesDropped?.() ?? 0);
      },
    });

    /** A counter read from one of the daemon's native parts at scrape time; none while that part is off. */
    const nativeCounter = <T>(part: () => T | undefined) => (name: string, help: string, value: (v: T) => number): void => {
      new Counter({
        name,
        help,
        registers: register,
        collect() {
          this.reset();
          const v = part();
          if (v !== undefined) this.inc(value(v));
        },
      });
    };
    const flowCounter = nativeCounter(() => src.flowCache?.());
    flowCounter(
      'nfqwall_flow_cache_hits_total',
      'Packets of settled connections decided natively from a cached decision (docs/flow-cache.md), without the TypeScript engine.',
      (f) => f.hits,
    );
    flowCounter(
      'nfqwall_flow_cache_misses_total',
      'ESTABLISHED (or confirmed NEW) packets the flow cache handed to the TypeScript engine: no current decision applied, or their flow had a packet there and they could not wait.',
      (f) => f.misses,
    );
    flowCounter('nfqwall_flow_cache_stores_total', 'Decisions stored in the flow cache.', (f) => f.stores);
    flowCounter(
      'nfqwall_flow_cache_uncacheable_total',
      'Flows (per cache generation) with an ESTABLISHED (or confirmed NEW) packet the TypeScript engine decided on a path the flow cache cannot store (not flow-stable: docs/flow-cache.md); their packets that miss go to the engine at once instead of waiting for a decision to be stored.',
      (f) => f.uncacheable,
    );
    flowCounter(
      'nfqwall_flow_cache_trips_skipped_total',
      'Queue trips settled packets did not make: their FORWARD and POSTROUTING decisions were made with their PREROUTING one, and the kernel passed them there (docs/flow-cache.md, Trips).',
      (f) => f.tripsSkipped,
    );
    flowCounter('nfqwall_flow_cache_evictions_total', 'Stored decisions the flow cache overwrote for lack of room.', (f) => f.evictions);
    flowCounter(
      'nfqwall_flow_cache_transits_dropped_total',
      'Flows held back from skipping hooks whose count of packets between hooks a barrier showed was left by packets the kernel dropped on the way (docs/flow-cache.md, Trips).',
      (f) => f.transitsDropped,
    );
    flowCounter(
      'nfqwall_flow_cache_transits_lapsed_total',
      'Such counts that lapsed after 50 ms instead: no barrier came back in time, or the daemon has several queues.',
      (f) => f.transitsLapsed,
    );
    const matcherCounter = nativeCounter(() => src.matcher?.());
    matcherCounter(
      'nfqwall_matcher_decided_total',
      'Packets the flow cache could not decide that the compiled rule program decided natively (docs/matcher.md), without the TypeScript engine.',
      (m) => m.decided,
    );
    matcherCounter(
      'nfqwall_matcher_slow_total',
      'Packets the rule matcher looked at and left to the TypeScript engine: an extension it does not run, an effect it does not repeat, or earlier packets of the flow still in JavaScript.',
      (m) => m.slow,
    );
    new Gauge({
      name: 'nfqwall_flow_cache_entries',
      help: 'Decisions stored in the flow cache (stale ones included until overwritten); 0 when flow_cache is off.',
      registers: register,
      collect() {
        this.set(src.flowCache?.()?.entries ?? 0);
      },
    });

    this.batchSeconds = new Histogram({
      name: 'nfqwall_batch_duration_seconds',
      help: 'Time JavaScript took to decide one batch from the queue (one sample per batch, not per packet).',
      // 5 µs to about 0.65 s.
      buckets: exponentialBuckets(5e-6, 2, 18),
      registers: register,
    });
    this.batchPackets = new Histogram({
      name: 'nfqwall_batch_packets',
      help: 'Packets per batch handed from the queue to JavaScript.',
      buckets: exponentialBuckets(1, 2, 10),
      registers: register,
    });
  }

  private queueMetrics(register: Registry[]): void {
    const src = this.source;
    const perQueue = (
      name: string,
      help: string,
      value: (q: QueueStats) => number,
      kind: 'counter' | 'gauge' = 'counter',
    ): void => {
      const collect = function (this: Counter<'queue'> | Gauge<'queue'>): void {
        this.reset();
        for (const q of src.queueStats()) {
          if (this instanceof Counter) this.inc({ queue: String(q.queue) }, Math.max(0, value(q)));
          else this.set({ queue: String(q.queue) }, value(q));
        }
      };
      if (kind === 'counter') new Counter({ name, help, labelNames: ['queue'], registers: register, collect });
      else new Gauge({ name, help, labelNames: ['queue'], registers: register, collect });
    };
    perQueue('nfqwall_queue_received_total', 'Packets received from the kernel queue.', (q) => q.received);
    perQueue('nfqwall_queue_received_bytes_total', 'Wire bytes of the packets received from the queue.', (q) => q.bytes);
    perQueue(
      'nfqwall_queue_batches_total',
      'Batches the receive thread formed of received packets (decided natively, handed to the TypeScript engine, or both), and parts of the parked lot handed to the engine.',
      (q) => q.batches,
    );
    perQueue(
      'nfqwall_queue_batch_verdicts_total',
      'Verdict messages that answered every packet the kernel held for the queue at once (NFQNL_MSG_VERDICT_BATCH): runs of flow-cache and matcher decisions with one verdict and mark.',
      (q) => q.batchVerdicts ?? 0,
    );
    perQueue(
      'nfqwall_queue_late_waits_total',
      'Times the receive thread left the queue unread because its late queues had no room for another batch of packets through PREROUTING: they waited in the queue, or the kernel dropped them there as they entered.',
      (q) => q.lateWaits ?? 0,
    );
    perQueue('nfqwall_queue_dropped_total', 'Packets nfqwall gave a drop verdict, on every path.', (q) => q.dropped);
    perQueue(
      'nfqwall_queue_kernel_dropped_total',
      'Packets the kernel dropped because the queue was full (queue_dropped in /proc/net/netfilter/nfnetlink_queue).',
      (q) => q.kernelQueueDropped,
    );
    perQueue(
      'nfqwall_queue_user_dropped_total',
      'Packets the kernel could not send to nfqwall, netlink buffer full (user_dropped in /proc/net/netfilter/nfnetlink_queue).',
      (q) => q.kernelUserDropped,
    );
    perQueue(
      'nfqwall_queue_overload_total',
      'Packets given the overload verdict because JavaScript was behind: accepted when fail-open, dropped when fail-closed.',
      (q) => q.overload,
    );
    perQueue(
      'nfqwall_queue_defaulted_total',
      'Packets given the default verdict because JavaScript never answered or the queue closed.',
      (q) => q.defaulted,
    );
    perQueue('nfqwall_queue_errors_total', 'Receive or verdict errors of the queue socket.', (q) => q.errors);
    perQueue('nfqwall_queue_enobufs_total', 'ENOBUFS from the queue socket (packets lost in netlink).', (q) => q.enobufs);
    perQueue('nfqwall_queue_length', 'Packets waiting in the kernel queue (queue_total).', (q) => q.kernelQueueTotal, 'gauge');
    perQueue(
      'nfqwall_queue_maxlen',
      `Packets the kernel holds for the queue at most (queue_maxlen; a late queue at least ${LATE_QUEUE_MIN_MAXLEN}).`,
      (q) => q.maxLen,
      'gauge',
    );
    perQueue('nfqwall_queue_pending_batches', 'Batches handed to JavaScript and not answered yet.', (q) => q.pendingBatches, 'gauge');
    perQueue(
      'nfqwall_queue_thread_idle_seconds',
      'Seconds since the receive thread last woke up (it wakes at least every 0.2 s while healthy).',
      (q) => q.threadIdleMs / 1000,
      'gauge',
    );
    new Gauge({
      name: 'nfqwall_queue_fail_open',
      help: '1 when the queue is fail-open (the kernel accepts what nfqwall cannot take), 0 when fail-closed.',
      labelNames: ['queue'],
      registers: register,
      collect() {
        this.reset();
        for (const q of src.queueStats()) this.set({ queue: String(q.queue) }, src.failOpen() ? 1 : 0);
      },
    });
  }

  /** One sample per batch: how long deciding it took and how many packets it held. */
  observeBatch(seconds: number, packets: number): void {
    this.batchSeconds.observe(seconds);
    this.batchPackets.observe(packets);
  }

  /** The exposition text (what GET /metrics returns). */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** Connections served at once; Node closes any beyond it as soon as they are accepted. */
const MAX_CONNECTIONS = 64;

/** The HTTP endpoint: GET /metrics, 405 for other methods there, 404 for any other path. */
export class MetricsServer {
  private constructor(
    private readonly server: http.Server,
    readonly address: MetricsListen,
  ) {}

  static async listen(listen: MetricsListen, metrics: Metrics): Promise<MetricsServer> {
    // Node checks headersTimeout only every connectionsCheckingInterval (30 s by default): check every second, so a
    // client dribbling its headers is dropped after headersTimeout, not up to 30 s later.
    const server = http.createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
      const url = req.url ?? '';
      const q = url.indexOf('?');
      const pathname = q < 0 ? url : url.slice(0, q);
      const reply = (status: number, body: string, headers: http.OutgoingHttpHeaders = {}): void => {
        res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
        res.end(body);
      };
      if (pathname !== '/metrics') {
        reply(404, 'not found: nfqwall serves only /metrics\n');
        return;
      }
      if (req.method !== 'GET') {
        reply(405, `method ${req.method ?? ''} not allowed: use GET\n`, { Allow: 'GET' });
        return;
      }
      metrics.text().then(
        (text) => reply(200, text, { 'Content-Type': metrics.registry.contentType }),
        (err: unknown) => reply(500, `collecting metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
      );
    });
    server.maxConnections = MAX_CONNECTIONS;
    server.headersTimeout = 5_000;
    server.requestTimeout = 10_000;
    server.keepAliveTimeout = 5_000;
    // Malformed requests and resets must not reach the daemon's uncaughtException handler.
    server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: Error) => {
        const where = listen.host.includes(':') ? `[${listen.host}]:${listen.port}` : `${listen.host}:${listen.port}`;
        reject(new Error(`metrics endpoint ${where}: ${err.message} (set metrics = ADDR:PORT or off)`));
      });
      server.listen({ host: listen.host, port: listen.port }, () => {
        server.removeAllListeners('error');
        resolve();
      });
    });
    server.on('error', () => undefined);
    const a = server.address() as AddressInfo;
    return new MetricsServer(server, { host: a.address, port: a.port });
  }

  /** Stops listening and ends open connections. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
