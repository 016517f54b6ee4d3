// The daemon: rule files -> engine -> queue -> kernel hooks, then serve batches and the control socket until a
// signal. Hooks go in last and come out first, so the kernel never queues to a queue nobody answers while we stop.
import { Engine, type PreparedRules } from '../engine/engine';
import { LinuxHost } from '../engine/host';
import type { IpsetStore } from '../engine/sets';
import type { QueueOptions, QueueStats, PacketBatch } from '../native';
import { checkEnforceable } from '../rules/enforce';
import { RuleErrors, type RuleError } from '../rules/errors';
import { zeroCounters } from '../rules/counters';
import { lastParseStats, loadRuleFileSteps } from '../rules/load';
import type { Family, Hook, Ruleset } from '../rules/model';
import type { ListenAddress } from '../config/config';
import { HOOKS } from '../rules/model';
import { saveRuleset } from '../rules/save';
import { formatIpAddr } from '../rules/addr'; // H16
import { ControlServer, checkFields, claimSocketPath, type Handlers } from './control';
import { HookManager, lateQueueMaxlen, queueLayoutText } from './hooks';
import { LateFirst } from './late-first';
import { InterfaceNames } from './interfaces';
import { IpMonitor, type IpEvent } from './ipmonitor';
import { Logger, LogRecordSink } from './logger';
import { BatchProcessor } from './processor';
import { flowStatusMask, FlowPaths } from './flow-paths';
import { MatcherPrograms, hostView, type PreparedProgram } from './matcher-programs';
import { HeapBudget, HeapBudgetExceeded, autoHeapBudget } from './heap';
import { readFiles } from './file-digest';
import { DEFAULT_SKIP_MARK, readSkipGuard } from './skip-guard';
import { TraceHub, traceHandler } from './trace'; // trace:
import {
  carryCounters,
  checkSetNames,
  loadIpsetFiles,
  ReloadCoalescer,
  retainStores,
  SwitchableSets,
  type ReloadOutcome,
  type ReloadStats,
} from './reload';
import { FileWatcher } from './watch';
import { LossReporter, lossCounters } from './loss-report';
import { runSliced, runSync, type Steps } from '../steps';
import { checkFileSafety } from './files'; // H18: StrictModes for rule and ipset files
// H12: metrics and systemd notifications.
import { Metrics, MetricsServer, daemonSource, type ConntrackState, type MatcherCounts } from './metrics';
import { ServiceNotifier, queueHealth, statusLine } from './systemd';
import type { Privilege } from './privilege'; // H8: issue #9, CAP_NET_ADMIN only

export interface DaemonOptions {
  rules4?: string;
  rules6?: string;
  queue: number;
  /** Consecutive queues from `queue` (default 1), one receive thread each, all sharing the connection table. */
  queues?: number;
  /** With several queues, the kernel picks one by CPU (--queue-cpu-fanout) instead of by address hash. */
  queueCpuFanout?: boolean;
  /**
   * The first of `queues` more queues for INPUT, FORWARD and POSTROUTING when PREROUTING is queued (docs/flow-cache.md,
   * Late queue): each served by the receive thread of the queue with the same offset, ahead of its own packets.
   * Undefined: every hook's traffic goes to the same queues.
   */
  lateQueue?: number;
  failOpen: boolean;
  controlPath: string;
  /** `ipset save` files for -m set; reloaded with the rule files. */
  ipsets?: string[];
  /** Hooks to install NFQUEUE jumps in (default all; empty: none). */
  hooks?: readonly Hook[];
  controlMode?: number;
  controlGroup?: string;
  /** Structured log output (default: info and above to stdout). */
  logger?: Logger;
  /** LOG/NFLOG lines per second and burst (default 50, 100). */
  logRate?: number;
  logBurst?: number;
  /** Reload when a rule or ipset file changes on disk (default true). */
  watchFiles?: boolean;
  /** Follow address/route changes with `ip monitor` (default true). */
  ipMonitor?: boolean;
  /** Prometheus endpoint from the configuration (`metrics`); undefined: off. */
  metrics?: ListenAddress;
  /** NFQA_CFG_QUEUE_MAXLEN (`queue_maxlen`); default the addon's (4096). */
  queueMaxlen?: number;
  /** H16: nf_conntrack_max of nfqwall's connection table (`conntrack_max`); default the table's. */
  conntrackMax?: number;
  /** H8: `nfqwall run`'s capabilities (src/daemon/privilege.ts): finished once bound, reported by status. */
  privilege?: Privilege;
  /** Flow cache (`flow_cache`, docs/flow-cache.md): settled connections decided natively. Default true. */
  flowCache?: boolean;
  /** The rule matcher (`matcher`, docs/matcher.md): needs the flow cache. Default true. */
  matcher?: boolean;
  /** The flow cache's two skip bits (`skip_mark`, docs/flow-cache.md, Trips); 0: off. Default DEFAULT_SKIP_MARK. */
  skipMark?: number;
  /** The JavaScript heap's budget in MiB (`heap_limit`, src/daemon/heap.ts); undefined: autoHeapBudget(). */
  heapLimitMiB?: number;
  log?: (msg: string) => void;
}

export interface LoadedRules {
  rules4?: Ruleset;
  rules6?: Ruleset;
  /** The sets of the --ipset files (undefined when none are given). */
  sets?: IpsetStore;
}

/** A reload's new rules, ready for the swap. */
interface StagedReload {
  next: LoadedRules;
  prepared: PreparedRules;
  program4: PreparedProgram | undefined;
  program6: PreparedProgram | undefined;
  carried: number;
  /**
   * Milliseconds of each stage, in order (wall time, the batches decided between slices included), for the log;
   * `prepare` includes waiting for the matcher's check of the programs (MatcherPrograms.check).
   */
  stages: { load: number; carry: number; program: number; prepare: number };
}

/**
 * Batches handed to JavaScript and not decided yet before the addon gives new ones the overload verdict. At a
 * moderate rate each wakeup of the receive thread carries one packet, so this is also the longest stall of the event
 * loop (a reload step, a major GC) survived without loss: 256 batches are about 128 ms at 2,000 packets/s. Under a
 * flood batches grow (up to 256 packets), so it bounds memory and latency too.
 */
const MAX_PENDING_BATCHES = 256;

/**
 * Reads, parses and checks the rule files. Throws RuleErrors (every problem of both files, with file:line:column) on
 * any fault in them; other errors (an unreadable file) as they are.
 */
export function loadRulesets(
  opts: { rules4?: string; rules6?: string; ipsets?: readonly string[]; texts?: ReadonlyMap<string, string> },
  check?: () => void,
): LoadedRules {
  return runSync(loadRulesetsSteps(opts), check);
}

/** loadRulesets in steps (src/steps.ts): a reload reads the files while batches are still decided. */
export function* loadRulesetsSteps(opts: {
  rules4?: string;
  rules6?: string;
  ipsets?: readonly string[];
  /** Unchanged chains take the rules of the files' last parse (ParseOptions.shareChains): a reload's. */
  shareChains?: boolean;
  /** The files' text, read already (FileSnapshot): parsed, not read again. */
  texts?: ReadonlyMap<string, string>;
}): Steps<LoadedRules> {
  // H18: at start and at every reload, before reading: files others could write are refused.
  checkFileSafety(ruleFiles(opts));
  const out: LoadedRules = {};
  const errors: RuleError[] = [];
  function* load(file: string, family: Family): Steps<Ruleset | undefined> {
    try {
      const rs = yield* loadRuleFileSteps(file, family, { shareChains: opts.shareChains, text: opts.texts?.get(file) });
      yield;
      checkEnforceable(rs);
      yield;
      return rs;
    } catch (err) {
      if (!(err instanceof RuleErrors)) throw err;
      errors.push(...err.errors);
      return undefined;
    }
  }
  if (opts.rules4 !== undefined) out.rules4 = yield* load(opts.rules4, 4);
  if (opts.rules6 !== undefined) out.rules6 = yield* load(opts.rules6, 6);
  if (opts.ipsets !== undefined && opts.ipsets.length > 0) {
    try {
      out.sets = loadIpsetFiles(opts.ipsets, opts.texts);
    } catch (err) {
      if (!(err instanceof RuleErrors)) throw err;
      errors.push(...err.errors);
    }
  }
  if (errors.length > 0) throw new RuleErrors(errors);
  checkSetNames([out.rules4, out.rules6], out.sets);
  return out;
}

export interface RulesetSummary {
  sources: string[];
  tables: string[];
  chains: number;
  rules: number;
}

export function summarize(rs: Ruleset): RulesetSummary {
  let chains = 0;
  let rules = 0;
  for (const t of rs.tables.values()) {
    for (const c of t.chains.values()) {
      chains++;
      rules += c.rules.length;
    }
  }
  return { sources: [...rs.sources], tables: [...rs.tables.keys()], chains, rules };
}

const MiB = 2 ** 20;

/** The rule and ipset files a daemon reads. */
function ruleFiles(o: { rules4?: string; rules6?: string; ipsets?: readonly string[] }): string[] {
  return [o.rules4, o.rules6, ...(o.ipsets ?? [])].filter((f): f is string => f !== undefined);
}

const familyKey = (f: Family): 'ipv4' | 'ipv6' => (f === 4 ? 'ipv4' : 'ipv6');

/** The addon, loaded only when a daemon starts, so commands that never bind a queue work without it. */
function loadAddon(): typeof import('../native') {
  return require('../native') as typeof import('../native');
}

type Queue = InstanceType<ReturnType<typeof loadAddon>['addon']['Queue']>;

/** The queue's number, when its stats can still be read. */
function queueNumberOf(q: Queue): number | undefined {
  try {
    return q.stats().queue;
  } catch {
    return undefined;
  }
}

/** How many queues a daemon serves (`queues`, default 1). */
export function queueCount(opts: Pick<DaemonOptions, 'queues'>): number {
  return opts.queues ?? 1;
}

// H16: ConnTableOptions.maxEntries' default (native/index.d.ts).
const DEFAULT_CONNTRACK_MAX = 262144;
type ConnTable = InstanceType<ReturnType<typeof loadAddon>['addon']['ConnTable']>;
type FlowCache = InstanceType<ReturnType<typeof loadAddon>['addon']['FlowCache']>;
type FlowCacheStats = ReturnType<FlowCache['stats']>;
type Matcher = InstanceType<ReturnType<typeof loadAddon>['addon']['Matcher']>;
/** `nfqwall status`'s matcher: the receive threads' counts, the programs whose counters are kept, what it does not run. */
type MatcherStatus = MatcherCounts & { programs: number[]; lastError?: string };

/** Flow cache hits reach the rule counters at least this often (and before anything reads them). */
const FLOW_DRAIN_MS = 100;

/** H16: QueueOptions.queuedHooks: bit 1 << NF_INET_* of every hook the daemon queues. */
export function queuedHookBits(hooks: readonly Hook[]): number {
  let bits = 0;
  for (const h of hooks) bits |= 1 << HOOKS.indexOf(h);
  return bits;
}

// A fallback: `ip monitor` normally refreshes within a tenth of a second of a change.
const HOST_REFRESH_MS = 60_000;
const ERROR_LOG_INTERVAL_MS = 1000;

export class Daemon {
  readonly startedAt = Date.now();
  /** One per queue number, `opts.queue` upwards, each followed by its late queue; empty before start and after stop. */
  private queues: Queue[] = [];
  /** With late queues, JavaScript decides their batches first (src/daemon/late-first.ts). */
  private readonly lateFirst = new LateFirst<[Queue, PacketBatch]>(([q, batch]) => this.onBatch(q, batch));
  /** H16: nfqwall's connection table, shared by the queue (tracking, NAT) and `nfqwall conntrack -L`. */
  conntrack: ConnTable | undefined;
  /** Flow cache (docs/flow-cache.md): the native cache and what its path ids mean; undefined when off. */
  flowCache: FlowCache | undefined;
  private flowPaths: FlowPaths | undefined;
  /** The rule matcher (docs/matcher.md) and its programs' counters; undefined when off. */
  matcher: Matcher | undefined;
  private programs: MatcherPrograms | undefined;
  private control: ControlServer | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private lastErrorLog = 0;
  private suppressedErrors = 0;
  readonly hooks: HookManager;
  readonly processor: BatchProcessor;
  readonly ifnames = new InterfaceNames();
  readonly logger: Logger;
  readonly logRecords: LogRecordSink;
  readonly reloads: ReloadStats;
  private readonly engine: Engine;
  /** trace: `nfqwall trace` subscribers; idle (one boolean per batch) while there are none. */
  readonly tracer: TraceHub;
  private readonly sets = new SwitchableSets();
  private readonly reloader = new ReloadCoalescer((trigger, onlyIfChanged) => this.notifiedReload(trigger, onlyIfChanged));
  /**
   * The digest of the rule and ipset files the rules in force were parsed from (FileSnapshot): a promise, as it is
   * taken after the reload that put them in force has answered.
   */
  private loadedDigest: Promise<string | undefined> | undefined;
  // H12: metrics and systemd.
  readonly metrics: Metrics = new Metrics(daemonSource(this));
  private metricsServer: MetricsServer | undefined;
  readonly service: ServiceNotifier;
  private watcher: FileWatcher | undefined;
  private ipmon: IpMonitor | undefined;

  private constructor(
    readonly opts: DaemonOptions,
    public rules: LoadedRules,
    private readonly host: LinuxHost,
    readonly heap: HeapBudget,
  ) {
    this.logger = opts.logger ?? new Logger({ level: 'info' });
    const log = opts.log ?? ((msg: string) => this.logger.info(msg));
    this.log = log;
    this.hooks = new HookManager({ log });
    this.service = new ServiceNotifier({ log }); // H12
    if (rules.sets) this.sets.current = rules.sets;
    this.engine = new Engine({ rules4: rules.rules4, rules6: rules.rules6, host, sets: this.sets });
    retainStores([rules.rules4, rules.rules6]);
    this.reloads = { success: 0, failure: 0, lastSuccessful: true, lastSuccessTimestamp: Math.floor(Date.now() / 1000), unchanged: 0 };
    this.logRecords = new LogRecordSink(this.logger, { rate: opts.logRate ?? 50, burst: opts.logBurst ?? 100 });
    this.processor = new BatchProcessor(this.engine, this.ifnames, {
      failOpen: opts.failOpen,
      onError: (err) => this.packetError(err),
      onLog: (rec) => this.logRecords.write(rec),
      sendReply: (packet) => loadAddon().addon.sendRaw(packet),
      tracer: (this.tracer = new TraceHub((family) => this.engine.rules(family))), // trace:
    });
  }

  private readonly log: (msg: string) => void;

  /**
   * Loads everything, binds the queue, installs the hooks. Any failure before serving undoes what was done and
   * rethrows; rule-file errors happen before anything touches the kernel.
   */
  static async start(given: DaemonOptions): Promise<Daemon> {
    if (given.rules4 === undefined && given.rules6 === undefined) throw new Error('no rule file given');
    // Late queues only behind PREROUTING: without it their hooks are where packets enter.
    const opts = (given.hooks ?? HOOKS).includes('PREROUTING') ? given : { ...given, lateQueue: undefined };
    // Before the rules are read: a ruleset larger than V8's own limit still loads when the budget allows it.
    const heap = HeapBudget.set(opts.heapLimitMiB !== undefined ? opts.heapLimitMiB * MiB : autoHeapBudget());
    const snapshot = await readFiles(ruleFiles(opts));
    const rules = loadRulesets({ ...opts, texts: snapshot?.texts }, heap.watch('loading the rules'));
    const host = await LinuxHost.load();
    const d = new Daemon(opts, rules, host, heap);
    d.loadedDigest = snapshot?.digest();
    try {
      await claimSocketPath(opts.controlPath);
      // Before the queue exists, so the child cannot inherit its socket (see ipmonitor.ts).
      d.startIpMonitor();
      const { addon } = loadAddon();
      // H16: the kernel does not track queued traffic (raw CT --notrack below); nfqwall's own table does.
      d.conntrack = new addon.ConnTable(opts.conntrackMax !== undefined ? { maxEntries: opts.conntrackMax } : {});
      if (opts.flowCache !== false) d.startFlowCache(new addon.FlowCache());
      if (d.flowCache !== undefined && opts.matcher !== false) d.startMatcher(new addon.Matcher());
      // The rules are loaded and compiled: what that left behind goes before the queue is bound.
      const collecting = performance.now();
      heap.collect();
      d.logger.debug('collected the start-up garbage', { ms: Math.round(performance.now() - collecting) });
      // Skipping starts from a PREROUTING decision; without the cache nothing would set the bits.
      const hooks = opts.hooks ?? HOOKS;
      d.skipMark = d.flowCache !== undefined && hooks.includes('PREROUTING') ? (opts.skipMark ?? DEFAULT_SKIP_MARK) : 0;
      // Every queue gets the same options but its number; the kernel's hash sends the two directions of a NATed
      // connection by different addresses, so only the shared table lets them meet.
      const conntrack = d.conntrack;
      const queueOptions = (queue: number, maxLen = opts.queueMaxlen): QueueOptions => ({
        queue,
        ...(maxLen !== undefined ? { maxLen } : {}),
        maxPendingBatches: MAX_PENDING_BATCHES,
        failOpen: opts.failOpen,
        overloadVerdict: opts.failOpen ? 'accept' : 'drop',
        conntrack,
        ...(d.flowCache !== undefined ? { flowCache: d.flowCache } : {}),
        ...(d.matcher !== undefined ? { matcher: d.matcher } : {}),
        queuedHooks: queuedHookBits(opts.hooks ?? HOOKS),
      });
      const lateQueue = opts.lateQueue;
      for (let i = 0; i < queueCount(opts); i++) {
        const late = lateQueue === undefined ? undefined : queueOptions(lateQueue + i, lateQueueMaxlen(opts.queueMaxlen));
        d.queues.push(...d.bindQueue(addon, queueOptions(opts.queue + i), late));
      }
      // The bits are cleared from the rules' marks from the first packet on; skipping waits for the guard.
      if (d.skipMark !== 0) d.flowCache?.setSkip({ mark: d.skipMark, allowed: false, maxLen: 0, queuedHooks: queuedHookBits(hooks) });
      // A crashed run's hooks go first in both families, even one this run does not filter: left in place they
      // would keep queueing (or, fail-closed, dropping) that family's traffic to a queue nobody serves.
      for (const family of [4, 6] as const) d.hooks.removeStale(family);
      for (const rs of [rules.rules4, rules.rules6]) {
        if (rs === undefined) continue;
        d.hooks.install({
          family: rs.family,
          hooks: opts.hooks ?? HOOKS,
          queue: opts.queue,
          queues: queueCount(opts),
          cpuFanout: opts.queueCpuFanout,
          failOpen: opts.failOpen,
          notrack: true,
          ownerPid: process.pid,
          skipMark: d.skipMark,
          ...(lateQueue !== undefined ? { lateQueue } : {}),
        });
      }
      await d.refreshSkip();
      // Last, so that a status answer means the hooks are in (the lab and service managers wait on it).
      d.control = await ControlServer.listen(opts.controlPath, d.handlers(), {
        mode: opts.controlMode,
        group: opts.controlGroup,
      });
      // H12: the metrics endpoint, inside the try so a taken port undoes the start.
      if (opts.metrics) d.metricsServer = await MetricsServer.listen(opts.metrics, d.metrics);
      // H8: the control socket's group and a port below 1024 were the last things needing more than CAP_NET_ADMIN.
      opts.privilege?.afterStart();
    } catch (err) {
      await d.stop();
      throw err;
    }
    d.timers.push(setInterval(() => d.refreshHost(), HOST_REFRESH_MS));
    d.timers.push(setInterval(() => d.tracer.tick(), 1000)); // trace: suppressed-event reports
    d.timers.push(setInterval(() => d.reportLoss(), 1000));
    if (d.flowPaths !== undefined) d.timers.push(setInterval(() => d.drainFlows(), FLOW_DRAIN_MS));
    for (const t of d.timers) t.unref();
    d.startWatching();
    // H12: READY once hooks, queue, ruleset (and control, metrics) are live; then the watchdog and STATUS lines.
    d.service.ready(statusLine(d));
    d.service.startWatchdog(() => queueHealth(d.queueStats()));
    d.service.startStatus(() => statusLine(d));
    d.log(`serving ${queueLayoutText(opts)} (${opts.failOpen ? 'fail-open' : 'fail-closed'}), control ${opts.controlPath}`);
    return d;
  }

  /**
   * Binds a queue and, given `late`, its late queue first, which the queue's receive thread serves: [queue, late].
   * Their batches reach JavaScript late ones first (LateFirst). Nothing stays bound when either fails.
   */
  private bindQueue(addon: ReturnType<typeof loadAddon>['addon'], options: QueueOptions, late: QueueOptions | undefined): Queue[] {
    if (late === undefined) {
      const q: Queue = new addon.Queue(options, (batch) => this.onBatch(q, batch));
      return [q];
    }
    let l: Queue;
    try {
      l = new addon.Queue({ ...late, driven: true }, (batch) => this.lateFirst.add([l, batch], true));
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}; it is a late queue: set late_queue (--late-queue) to a free number, or off`);
    }
    try {
      // The kernel's balance sends a packet on to any pair's late queue: the pairs read within one budget, the first
      // pair's (every pair has a late queue, or none has).
      const first = this.queues[0];
      const q: Queue = new addon.Queue({ ...options, late: l, ...(first !== undefined ? { lateShare: first } : {}) }, (batch) =>
        this.lateFirst.add([q, batch], false),
      );
      return [q, l];
    } catch (err) {
      l.close();
      throw err;
    }
  }

  private startFlowCache(cache: FlowCache): void {
    this.flowCache = cache;
    this.flowPaths = new FlowPaths(cache);
    this.flowPaths.invalidate(flowStatusMask(this.rules));
    this.processor.setFlow(this.flowPaths);
    // Tracing needs every packet in JavaScript, with its path: no lookups, no stores meanwhile.
    this.tracer.onActiveChange = (active) => {
      this.drainFlows();
      cache.setEnabled(!active);
      this.matcher?.setEnabled(!active);
    };
  }

  private startMatcher(matcher: Matcher): void {
    this.matcher = matcher;
    this.programs = new MatcherPrograms(matcher);
    this.pushHost();
    for (const rs of [this.rules.rules4, this.rules.rules6]) if (rs !== undefined) this.programs.commit(runSync(this.programs.prepare(rs)), rs.family);
    this.reportProgramError();
  }

  /** The interface names and routes the matcher's -i/-o and addrtype read, after every host refresh. */
  private pushHost(): void {
    this.matcher?.setHost(hostView(this.ifnames, this.host));
  }

  private programError: string | undefined;
  private reportProgramError(): void {
    const e = this.programs?.lastError;
    if (e !== undefined && e !== this.programError) this.logger.warning(`rule matcher off for a ruleset, JavaScript decides its packets: ${e}`);
    this.programError = e;
  }

  /** Adds the flow cache's hits to the rule counters; before anything reads them, at every batch and on a timer. */
  drainFlows(): void {
    const paths = this.flowPaths;
    if (paths === undefined) return;
    try {
      paths.drain();
      this.programs?.drain();
    } catch (err) {
      this.logger.err(`flow cache drain failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * Makes every cached decision stale: the rules (`rules`, about to be in force), the host's addresses or routes, or its
   * links changed.
   */
  private invalidateFlows(rules: LoadedRules = this.rules): void {
    if (this.flowPaths === undefined) return;
    this.drainFlows();
    this.flowPaths.invalidate(flowStatusMask(rules));
  }

  /** The skip bits in the hook rules; 0 when skipping is off for good (no cache, PREROUTING not queued, skip_mark 0). */
  private skipMark = 0;
  /** Why skipping is off for now (policy routing reads the mark, the guard could not be read); '' when on. */
  private skipOff: string | undefined;

  /**
   * Lets the flow cache skip later hooks while the host allows it (src/daemon/skip-guard.ts): at start and after
   * every host refresh. Off, with one line saying why, while a routing rule reads the bits or the guard is unreadable.
   */
  private async refreshSkip(): Promise<void> {
    const cache = this.flowCache;
    if (cache === undefined || this.skipMark === 0) return;
    const queuedHooks = queuedHookBits(this.opts.hooks ?? HOOKS);
    let why: string;
    let maxLen = 0;
    try {
      const g = await readSkipGuard(this.skipMark);
      maxLen = g.maxLen;
      why = g.markRules.length > 0 ? `routing rules read the packet mark (${g.markRules.join('; ')})` : '';
    } catch (err) {
      why = `cannot read links, routes and rules: ${err instanceof Error ? err.message : String(err)}`;
    }
    cache.setSkip({ mark: this.skipMark, allowed: why === '', maxLen, queuedHooks });
    if (why !== this.skipOff) {
      if (why === '') this.log(`hook skipping on (mark bits 0x${this.skipMark.toString(16)}, packets up to ${maxLen} bytes)`);
      else this.logger.warning(`hook skipping off: ${why}`);
    }
    this.skipOff = why;
  }

  /** For status and the nfqwall_matcher_* metrics; undefined when the matcher is off. */
  matcherStats(): MatcherStatus | undefined {
    if (this.matcher === undefined || this.programs === undefined) return undefined;
    const s = this.matcher.stats();
    const out: MatcherStatus = { decided: s.decided, slow: s.slow, programs: this.programs.serials() };
    const e = this.programs.lastError;
    if (e !== undefined) out.lastError = e;
    return out;
  }

  /** For status and the nfqwall_flow_cache_* metrics; undefined when the cache is off. */
  flowCacheStats(): FlowCacheStats | undefined {
    return this.flowCache?.stats();
  }

  private refreshHost(): void {
    this.ifnames.refresh();
    // Interface names may have changed under their indexes (the cache keys on indexes).
    this.invalidateFlows();
    // H16: MASQUERADE bindings to an address the host no longer has go (nf_nat_masquerade's inet event).
    const before = this.host.primaryAddresses();
    const gone = this.netGone;
    this.netGone = { ifindexes: new Set(), addresses: new Set() };
    Promise.resolve(this.host.refresh())
      .then(() => {
        // Decisions cached while the old addresses and routes were in force (addrtype) go.
        this.invalidateFlows();
        this.pushHost();
        this.forgetMasqueraded(before, gone);
        return this.refreshSkip();
      })
      .catch((err: unknown) => {
        // Kept for the next refresh, which the periodic timer guarantees.
        for (const i of gone.ifindexes) this.netGone.ifindexes.add(i);
        for (const a of gone.addresses) this.netGone.addresses.add(a);
        this.logger.warning('host refresh failed', { error: err instanceof Error ? err.message : String(err) });
      });
  }

  /**
   * Interfaces that went down (or away) and addresses removed since the last refresh, from `ip monitor`. Their
   * MASQUERADE bindings are forgotten after the refresh that follows, not at the event: a packet of such a connection
   * arriving in between would otherwise be masqueraded afresh with the stale host view (the old primary address).
   */
  private netGone: { ifindexes: Set<number>; addresses: Set<string> } = { ifindexes: new Set(), addresses: new Set() };

  /** nf_nat_masquerade's masq_device_event (NETDEV_DOWN) and masq_inet_event/masq_inet6_event (address removed). */
  private onNetEvent(e: IpEvent): void {
    if (e.kind === 'link' && !e.up) this.netGone.ifindexes.add(e.ifindex);
    else if (e.kind === 'address' && e.deleted) this.netGone.addresses.add(e.address);
  }

  private readonly loss = new LossReporter();

  /** At most one line a second, and only when packets were decided without the rules or refused for lack of room. */
  private reportLoss(): void {
    const moved = this.loss.next(lossCounters(this.queueStats()));
    if (moved === undefined) return;
    // overload and kernel-queue drops follow the fail-open/closed policy; ctDropped are always drops (table full).
    const policy = this.opts.failOpen ? 'fail-open' : 'fail-closed';
    this.logger.warning('packets decided without the rules or refused for lack of room in the last second', { ...moved, policy });
  }

  /**
   * H16: forgets connections masqueraded out of interfaces that went down and to addresses that are gone: those the
   * monitor reported, and any primary address the refresh no longer finds (a change the monitor missed while it was
   * restarting).
   */
  private forgetMasqueraded(before: Uint8Array[], gone: { ifindexes: Set<number>; addresses: Set<string> }): void {
    const table = this.conntrack;
    if (!table) return;
    const now = new Set(this.host.primaryAddresses().map((a) => formatIpAddr(a)));
    const addresses = new Set(gone.addresses);
    for (const a of before) {
      const text = formatIpAddr(a);
      if (!now.has(text)) addresses.add(text);
    }
    let entries = 0;
    for (const i of gone.ifindexes) entries += table.flushInterface(i);
    for (const a of addresses) {
      try {
        entries += table.flushAddress(a);
      } catch {
        // Not an address the table can parse (a link-local with a zone, say): nothing can be bound to it.
      }
    }
    if (entries > 0) {
      this.logger.info('forgot masqueraded connections', {
        entries,
        ifindexes: [...gone.ifindexes].join(',') || undefined,
        addresses: [...addresses].join(',') || undefined,
      });
    }
  }

  /** The files a reload rereads. */
  get watchedFiles(): string[] {
    return ruleFiles(this.opts);
  }

  private startWatching(): void {
    if (this.opts.watchFiles !== false) {
      this.watcher = new FileWatcher(
        this.watchedFiles,
        (changed) => void this.reloader.request(`file change (${changed.join(', ')})`, true),
        { onError: (err, dir) => this.logger.warning('cannot watch directory', { dir, error: err.message }) },
      );
    }
  }

  private startIpMonitor(): void {
    if (this.opts.ipMonitor !== false) {
      this.ipmon = new IpMonitor(() => this.refreshHost(), {
        onError: (msg) => this.logger.warning(msg),
        onEvent: (e) => this.onNetEvent(e),
      });
    }
  }

  /**
   * Rereads the rule and ipset files and puts them in force; one at a time, triggers during one share the next.
   * A failure keeps the running rules. Never rejects.
   */
  reload(trigger: string): Promise<ReloadOutcome> {
    return this.reloader.request(trigger);
  }

  private async reloadNow(trigger: string, texts?: ReadonlyMap<string, string>): Promise<ReloadOutcome> {
    const t0 = performance.now();
    // Let the batches already delivered run first; everything below up to the swap happens off to the side.
    await new Promise((r) => setImmediate(r));
    let staged: StagedReload;
    try {
      staged = await this.stageReload(texts);
    } catch (err) {
      // Whatever went wrong before the swap, the running rules stay in force.
      const errors = err instanceof RuleErrors ? err.errors.map((e) => e.message) : [err instanceof Error ? err.message : String(err)];
      // What overran the heap's budget is garbage now: take the reserve back for the next one.
      if (err instanceof HeapBudgetExceeded) this.heap.settle();
      const durationMs = performance.now() - t0;
      this.reloads.failure++;
      this.reloads.lastSuccessful = false;
      this.reloads.lastError = errors.join('\n');
      this.logger.err('reload failed, the running rules stay', { trigger, errors: errors.length });
      for (const e of errors) this.logger.err(e);
      return { ok: false, trigger, errors, durationMs };
    }
    if (this.stopping) return { ok: false, trigger, errors: ['nfqwall is stopping'], durationMs: 0 };
    const { next, prepared, program4, program6, carried, stages } = staged;
    const swap0 = performance.now();
    // One synchronous step: batches are processed synchronously too, so none sees a mixture. The receive threads
    // take the new programs at their next batch.
    this.engine.commit(prepared);
    const programs = this.programs;
    if (programs !== undefined) {
      if (next.rules4 !== undefined) programs.commit(program4, 4);
      if (next.rules6 !== undefined) programs.commit(program6, 6);
      this.reportProgramError();
    }
    this.invalidateFlows(next);
    this.sets.current = next.sets ?? this.sets.current;
    this.rules = next;
    retainStores([next.rules4, next.rules6]);
    const durationMs = performance.now() - t0;
    this.reloads.success++;
    this.reloads.lastSuccessful = true;
    this.reloads.lastSuccessTimestamp = Math.floor(Date.now() / 1000);
    this.reloads.lastError = undefined;
    const swap = Math.round(performance.now() - swap0);
    const chainsCopied = (program4?.reusedChains ?? 0) + (program6?.reusedChains ?? 0);
    // Chains whose lines did not change, which took the rules in force whole (ParseOptions.shareChains).
    let chainsShared = 0;
    for (const f of [this.opts.rules4, this.opts.rules6]) if (f !== undefined) chainsShared += lastParseStats(f)?.sharedChains ?? 0;
    this.logger.info('reloaded', { trigger, carried, ms: Math.round(durationMs * 10) / 10, ...stages, swap, chainsShared, chainsCopied });
    return { ok: true, trigger, errors: [], durationMs };
  }

  /**
   * Everything of a reload before the swap, in slices between which batches are still decided by the running rules
   * (src/steps.ts). The counters and match state carried over are shared objects, so what those batches count lands
   * in the new rules too. Throws RuleErrors for the files' faults, HeapBudgetExceeded when the new rules do not fit.
   */
  private async stageReload(texts: ReadonlyMap<string, string> | undefined): Promise<StagedReload> {
    const o = this.opts;
    const check = this.heap.watch('reload');
    let t = performance.now();
    const lap = (): number => {
      const now = performance.now();
      const ms = Math.round(now - t);
      t = now;
      return ms;
    };
    const next = await runSliced(loadRulesetsSteps({ rules4: o.rules4, rules6: o.rules6, ipsets: o.ipsets, shareChains: true, texts }), check);
    const load = lap();
    this.drainFlows();
    const carried4 = next.rules4 ? await runSliced(carryCounters(this.rules.rules4, next.rules4), check) : 0;
    const carried6 = next.rules6 ? await runSliced(carryCounters(this.rules.rules6, next.rules6), check) : 0;
    const carry = lap();
    const programs = this.programs;
    const program4 = programs !== undefined && next.rules4 !== undefined ? await runSliced(programs.prepare(next.rules4), check) : undefined;
    const program6 = programs !== undefined && next.rules6 !== undefined ? await runSliced(programs.prepare(next.rules6), check) : undefined;
    const program = lap();
    // The matcher checks the programs on another thread while the engine prepares.
    const checked = Promise.all([programs?.check(program4), programs?.check(program6)]);
    const prepared = await runSliced(this.engine.prepare(next.rules4, next.rules6), check);
    await checked;
    check();
    return { next, prepared, program4, program6, carried: carried4 + carried6, stages: { load, carry, program, prepare: lap() } };
  }

  /** H12: RELOADING=1 (with MONOTONIC_USEC) around every reload, then READY=1 whatever its outcome. */
  private async notifiedReload(trigger: string, onlyIfChanged: boolean): Promise<ReloadOutcome> {
    // The bytes the reload parses: a write after this read makes the next event's digest differ, so it is not missed.
    const snapshot = await readFiles(this.watchedFiles);
    // After a failed reload the files are read again whatever they hold: status must stop naming the error once fixed.
    // A reload asked for reloads whatever they hold, and takes their digest after the swap.
    const digest = onlyIfChanged && this.reloads.lastSuccessful ? await snapshot?.digest() : undefined;
    if (digest !== undefined && digest === (await this.loadedDigest)) {
      this.reloads.unchanged++;
      this.logger.debug('the files hold what was loaded: no reload', { trigger });
      return { ok: true, trigger, errors: [], durationMs: 0, unchanged: true };
    }
    this.service.reloading(`Reloading rules (${trigger})`);
    const r = await this.reloadNow(trigger, snapshot?.texts);
    // Hashed once the caller has its answer (15 MB at 10,000 services: about 20 ms); the next reload waits for it.
    if (r.ok) this.loadedDigest = snapshot === undefined ? undefined : new Promise((resolve) => setImmediate(() => resolve(snapshot.digest())));
    this.service.reloaded(r.ok ? statusLine(this) : `reload failed, old rules in force: ${r.errors[0] ?? ''}`);
    return r;
  }

  private onBatch(q: Queue, batch: PacketBatch): void {
    if (this.queues.length === 0) return;
    const t0 = performance.now(); // H12: one histogram sample per batch
    try {
      q.verdict(batch, this.processor.process(batch));
      this.metrics.observeBatch((performance.now() - t0) / 1000, batch.count);
      this.drainFlows();
    } catch (err) {
      // Processing catches per packet, so this is the verdict call itself; try once more with the fail verdict.
      this.logger.err(`batch ${batch.seq}: ${err instanceof Error ? err.message : String(err)}`);
      try {
        q.verdict(batch, this.processor.failAll(batch.count));
      } catch {
        // Already verdicted, or the queue closed: the addon defaults whatever is left.
      }
    }
  }

  /** Packet errors are logged at most once a second, with how many were not shown. */
  private packetError(err: unknown): void {
    const now = Date.now();
    if (now - this.lastErrorLog < ERROR_LOG_INTERVAL_MS) {
      this.suppressedErrors++;
      return;
    }
    const more = this.suppressedErrors > 0 ? ` (${this.suppressedErrors} more not shown)` : '';
    this.lastErrorLog = now;
    this.suppressedErrors = 0;
    const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
    this.logger.err(`packet evaluation failed, ${this.opts.failOpen ? 'accepted' : 'dropped'}${more}: ${msg}`);
  }

  queueStats(): QueueStats[] {
    return this.queues.map((q) => q.stats());
  }

  /** H16: for the nfqwall_conntrack_* metrics. */
  conntrackState(): ConntrackState | undefined {
    if (!this.conntrack) return undefined;
    const s = this.conntrack.stats();
    return {
      entries: s.entries,
      limit: this.opts.conntrackMax ?? DEFAULT_CONNTRACK_MAX,
      events: {
        found: s.found,
        new: s.created,
        invalid: s.invalid,
        drop: s.drop,
        early_drop: s.earlyDrop,
        insert_failed: s.insertFailed,
        nat_failed: s.natFailed,
        clash_resolve: s.clashResolve,
        killed: s.killed,
        discarded: s.discarded,
        expired: s.expired,
        deleted: s.deleted,
      },
    };
  }

  status(): Record<string, unknown> {
    this.drainFlows();
    const rulesets: Record<string, RulesetSummary> = {};
    for (const rs of [this.rules.rules4, this.rules.rules6]) if (rs) rulesets[familyKey(rs.family)] = summarize(rs);
    return {
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      queue: this.opts.queue,
      queueCount: queueCount(this.opts),
      lateQueue: this.opts.lateQueue ?? null,
      failOpen: this.opts.failOpen,
      rulesets,
      queues: this.queueStats(),
      packets: { ...this.processor.stats },
      reloads: { ...this.reloads },
      logs: { written: this.logRecords.limiter.passed, suppressed: this.logRecords.limiter.suppressed },
      conntrack: this.conntrack?.stats(), // H16
      flowCache: this.flowCacheStats(),
      matcher: this.matcherStats(),
      heap: this.heap.state(),
      trace: { ...this.tracer.stats }, // trace:
      capabilities: this.opts.privilege?.status(), // H8
      hooks: this.hooks.active.map((h) => ({
        family: familyKey(h.family),
        backend: h.backend.name,
        tables: Object.fromEntries([...h.owned].map(([t, o]) => [t, o.chains])),
      })),
    };
  }

  save(counters: boolean): Record<string, string> {
    if (counters) this.drainFlows();
    const out: Record<string, string> = {};
    for (const rs of [this.rules.rules4, this.rules.rules6]) {
      if (rs) out[familyKey(rs.family)] = saveRuleset(rs, { counters });
    }
    return out;
  }

  handlers(): Handlers {
    return {
      trace: traceHandler(this.tracer), // trace: streams until the client closes
      status: (req) => {
        checkFields(req, []);
        return this.status();
      },
      reload: async (req) => {
        checkFields(req, []);
        const r = await this.reload('control');
        if (!r.ok) throw new Error(r.errors.join('\n'));
        return { trigger: r.trigger, durationMs: Math.round(r.durationMs * 10) / 10 };
      },
      counters: (req) => {
        checkFields(req, ['zero']);
        if (req['zero'] !== true) throw new Error('malformed request: "counters" needs "zero": true');
        // Hits counted before the zeroing must not land after it.
        this.drainFlows();
        const zeroed = zeroCounters([this.rules.rules4, this.rules.rules6]);
        this.logger.notice('counters zeroed', { counters: zeroed });
        return { zeroed };
      },
      // H16: `nfqwall conntrack -L`.
      conntrack: (req) => {
        checkFields(req, []);
        if (!this.conntrack) throw new Error('no connection table');
        return { entries: this.conntrack.list(), stats: this.conntrack.stats() };
      },
      save: (req) => {
        checkFields(req, ['counters']);
        const c = req['counters'];
        if (c !== undefined && typeof c !== 'boolean') throw new Error('"counters" must be a boolean');
        return { rulesets: this.save(c === true) };
      },
    };
  }

  /** Hooks out first (the kernel stops queueing), then the queue, then the control socket. Returns error messages. */
  async stop(): Promise<string[]> {
    if (this.stopping) return [];
    this.stopping = true;
    this.service.stopping(); // H12
    this.service.close();
    for (const t of this.timers) clearInterval(t);
    this.watcher?.close();
    this.ipmon?.close();
    this.logRecords.close();
    const errors = this.hooks.remove();
    // Each queue defaults its own outstanding packets; one failing to close does not keep the others bound.
    for (const [i, q] of this.queues.entries()) {
      try {
        q.close();
      } catch (err) {
        errors.push(`closing queue ${queueNumberOf(q) ?? `#${i}`}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    this.queues = [];
    this.lateFirst.clear();
    // The last hits, now that no more can come: counters read after stop are exact.
    this.drainFlows();
    this.tracer.close(); // trace: streaming connections would hold the control socket's close forever
    await this.control?.close();
    this.control = undefined;
    await this.metricsServer?.close(); // H12
    this.metricsServer = undefined;
    for (const e of errors) this.logger.err(e);
    return errors;
  }
}

/**
 * Runs a daemon until SIGTERM/SIGINT (exit 0) or an unhandled error (exit 1), removing the hooks either way.
 * Resolves with the exit code; rejects only if starting failed (after undoing the start).
 */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  // Handlers go in before start, so a signal that arrives while hooks are being installed still removes them.
  let daemon: Daemon | undefined;
  let stopRequest: { code: number; why: string } | undefined;
  let resolveExit: (code: number) => void = () => undefined;
  const exit = new Promise<number>((resolve) => (resolveExit = resolve));
  let finishing = false;
  const finish = (code: number, why: string): void => {
    if (!daemon) {
      stopRequest ??= { code, why };
      return;
    }
    if (finishing) return;
    finishing = true;
    daemon.logger.notice(`stopping: ${why}`);
    daemon.stop().then(
      (errors) => resolveExit(errors.length > 0 && code === 0 ? 1 : code),
      () => resolveExit(1),
    );
  };
  const onTerm = (): void => finish(0, 'SIGTERM');
  const onInt = (): void => finish(0, 'SIGINT');
  // Installed before start so an early SIGHUP does not kill the process (its default action); ignored until then.
  const onHup = (): void => {
    if (daemon && !finishing) void daemon.reload('SIGHUP');
  };
  process.on('SIGHUP', onHup);
  const onError = (err: unknown): void =>
    finish(1, `unhandled error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  try {
    daemon = await Daemon.start(opts);
  } catch (err) {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
    throw err;
  }
  if (stopRequest) finish(stopRequest.code, stopRequest.why);
  return exit;
}
