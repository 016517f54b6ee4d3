// The surface of build/Release/nfqwall.node. src/native.ts loads it; nothing else touches the addon directly.

export interface QueueOptions {
  /** NFQUEUE number, 0..65535. */
  queue: number;
  /** Bytes of each packet copied to userspace (NFQNL_COPY_PACKET range). Default 0xffff. */
  copyRange?: number;
  /** Kernel queue length (NFQA_CFG_QUEUE_MAXLEN). Default 4096. */
  maxLen?: number;
  /** Netlink socket receive buffer in bytes (SO_RCVBUFFORCE). Default 8 MiB. */
  rcvbuf?: number;
  /** NFQA_CFG_F_FAIL_OPEN: the kernel accepts instead of dropping when the queue is full. Default false. */
  failOpen?: boolean;
  /** NFQA_CFG_F_GSO: take GSO packets whole. Default true. */
  gso?: boolean;
  /** NFQA_CFG_F_UID_GID: report the socket owner of local packets. Default true. */
  uidGid?: boolean;
  /** Batches that may wait for JavaScript before the overload verdict applies. Default 64. */
  maxPendingBatches?: number;
  /** Verdict for packets JavaScript cannot take in time (overload) or never answered (close). Default 'drop'. */
  overloadVerdict?: 'accept' | 'drop';
  /** Most packets handed to JavaScript in one batch. Default 256. */
  maxBatch?: number;
  /**
   * Track connections in this table (docs/conntrack-table.md): the receive thread classifies every packet before
   * JavaScript sees it (PacketBatch.ct* columns), verdict() commits each packet's outcome and applies NAT. The queue
   * keeps the table alive; share one table between all queues of a daemon. Without it nothing is tracked.
   */
  conntrack?: ConnTable;
  /**
   * Decide settled packets on the receive thread (docs/flow-cache.md). Needs `conntrack`. A packet whose connection
   * is ESTABLISHED and has a stored decision for this hook and direction, with the same key (ctStatus, input mark,
   * connection mark, zone, in/out/physin/physout interfaces) in the cache's current generation, and no packet of the
   * same connection and direction waiting in JavaScript, is verdicted natively (one that has such packets ahead of
   * it waits natively behind them and is looked up again once they are verdicted): committed and NAT-translated as
   * verdict() would, given the stored verdict and mark, its wire length added to the stored path's hits, and never
   * handed to JavaScript. Share one cache between all queues of a daemon.
   */
  flowCache?: FlowCache;
  /**
   * With `flowCache`: packets parked behind their flow's packets in JavaScript (docs/flow-cache.md, Parking) beyond
   * which the parked packets are looked up again without parking, so the ones the cache cannot decide join
   * JavaScript's queue (in order). 0 parks nothing for longer than one batch. Default 4096.
   */
  parkLimit?: number;
  /**
   * With `flowCache`: decide the tracked packets the cache cannot (a connection's first packets, mostly) with the
   * compiled rule programs in force (docs/matcher.md) on the receive thread, when the program can decide them and no
   * packet of the flow waits in JavaScript; committed as verdict() would commit JavaScript's decision. The rest go to
   * JavaScript. Share one matcher between all queues of a daemon.
   */
  matcher?: Matcher;
  /**
   * Bit 1 << NF_INET_* for every hook the daemon queues (to any queue): decides where a packet is tracked (its first
   * queued hook of PREROUTING/OUTPUT, else INPUT/FORWARD/POSTROUTING) and where it is confirmed (INPUT/POSTROUTING, or
   * the last queued hook). Only with `conntrack`. Default 0x1b: PREROUTING, INPUT, OUTPUT, POSTROUTING.
   */
  queuedHooks?: number;
  /**
   * No receive thread of its own: the queue that takes this one as `late` serves it from its thread. Its batches,
   * verdict(), stats() and close() are its own; closing it closes its driver too. Default false.
   */
  driven?: boolean;
  /**
   * A queue made with `driven: true` that no other queue serves yet, bound to the hooks a packet reaches after this queue's (INPUT, FORWARD,
   * POSTROUTING after PREROUTING; docs/flow-cache.md, Late queue). This queue's thread reads it empty before each of
   * its own batches, so under a flood this queue fills and the kernel drops new arrivals, not packets already through
   * a hook; and sends the flow cache's barriers on its socket. Closing this queue closes it too.
   */
  late?: Queue;
  /**
   * With `late`: another queue that serves a late queue, whose budget this pair shares. The receive thread reads its
   * own queue only while every late queue of the budget has room for what that read can send on (the kernel's
   * balance may send a packet on to any of them); a daemon's pairs share one.
   */
  lateShare?: Queue;
}

/**
 * Packets received in one wakeup of the receive thread. Column arrays, one entry per packet; payloads are
 * `data.subarray(offsets[i], offsets[i + 1])`. Valid until the batch is verdicted.
 */
export interface PacketBatch {
  readonly seq: number;
  readonly count: number;
  readonly ids: Uint32Array;
  /** NF_INET_* hook number: 0 PREROUTING, 1 INPUT, 2 FORWARD, 3 OUTPUT, 4 POSTROUTING. */
  readonly hooks: Uint8Array;
  /** Ethertype from the packet header: 0x0800 or 0x86dd. */
  readonly protos: Uint16Array;
  readonly marks: Uint32Array;
  /** Interface indexes; 0 = none. */
  readonly inIf: Uint32Array;
  readonly outIf: Uint32Array;
  readonly physInIf: Uint32Array;
  readonly physOutIf: Uint32Array;
  /** Socket owner of local packets; 0xffffffff = unknown. */
  readonly uids: Uint32Array;
  readonly gids: Uint32Array;
  /** Length of the packet on the wire (>= copied length when truncated). */
  readonly origLens: Uint32Array;
  /** PACKET_FLAG_* bits (src/native.ts): checksum not ready 1, GSO 2, truncated copy 4, checksum not verified 8. */
  readonly flags: Uint8Array;
  /** 6-byte source hardware address per packet when the kernel reported one (hwLens[i] = 6), else zeros. */
  readonly hwAddrs: Uint8Array;
  readonly hwLens: Uint8Array;
  readonly offsets: Uint32Array;
  readonly data: Uint8Array;
  // Present only when the queue was bound with `conntrack`: the packet's classification at this hook.
  /** ctstate: 0 INVALID, 1 NEW, 2 ESTABLISHED, 3 RELATED, 4 UNTRACKED (CtStateName in that order). */
  readonly ctState?: Uint8Array;
  /** 0 ORIGINAL, 1 REPLY. */
  readonly ctDir?: Uint8Array;
  /** IPS_* bits as in CtClassification.status, as they were when the packet was classified. */
  readonly ctStatus?: Uint32Array;
  /** The connection mark (CONNMARK); 0 without an entry. */
  readonly ctMark?: Uint32Array;
  readonly ctZone?: Uint16Array;
  /** Entry index + 1 (CtClassification.handle); 0 when the packet has no entry (INVALID, UNTRACKED). */
  readonly ctHandle?: Uint32Array;
  /** The entry's generation: with ctHandle, names it for ctEntry (a slot reused since reads as gone). */
  readonly ctGen?: Uint32Array;
  /**
   * The entry a packet's ctHandle/ctGen name, now: its real tuples (after NAT) for --ctorigsrc, --ctrepldst and the
   * like, and its remaining timeout for --ctexpire. Undefined when it is gone.
   */
  ctEntry?(handle: number, gen: number): CtEntry | undefined;
  /**
   * Bits: 1 this packet created its (unconfirmed) entry, 2 table full: the packet is dropped whatever JavaScript
   * answers (verdict() sends NF_DROP, counted in QueueStats.ctDropped and ConnTableStats.drop), 4 a non-first fragment
   * (not tracked), 8 TCP: the packet did not move the state machine.
   */
  readonly ctFlags?: Uint8Array;
}

export interface QueueStats {
  queue: number;
  /** The kernel queue length this queue was bound with (NFQA_CFG_QUEUE_MAXLEN, options.maxLen). */
  maxLen: number;
  received: number;
  /** Verdicts other than NF_DROP (NF_ACCEPT, NF_QUEUE, NF_REPEAT), on every path (JS, overload, defaulted). */
  accepted: number;
  dropped: number;
  /** Sum of the wire lengths (origLens) of received packets. */
  bytes: number;
  /**
   * Batches the receive thread formed of received packets (decided on that thread, handed to JavaScript, or both), and
   * parts of the parked lot handed to JavaScript.
   */
  batches: number;
  errors: number;
  enobufs: number;
  /** Packets given the overload verdict because JavaScript was behind. */
  overload: number;
  /** Packets given the default verdict at close or because JavaScript never answered. */
  defaulted: number;
  /** From /proc/net/netfilter/nfnetlink_queue (read at call time). */
  kernelQueueTotal: number;
  kernelQueueDropped: number;
  kernelUserDropped: number;
  kernelIdSequence: number;
  /** Batches handed to JavaScript and not verdicted yet. */
  pendingBatches: number;
  /** Milliseconds since the receive thread last woke up or timed out its poll (health, for the watchdog). 0 once closed. */
  threadIdleMs: number;
  /** close() has run (stats stay readable; the kernel columns read 0 once the queue is unbound). */
  closed?: boolean;
  /**
   * With `conntrack` only: packets the table turned into NF_DROP on any path: table full, an unresolvable clash at confirmation
   * (commit failed), or a truncated copy (copyRange) of a packet NAT had to rewrite.
   */
  ctDropped?: number;
  /** With `flowCache` only: packets this queue verdicted from the cache without JavaScript. */
  cached?: number;
  /**
   * With `flowCache` only: NFQNL_MSG_VERDICT_BATCH messages sent, each answering every packet the kernel held for this
   * queue (all of them decided on the receive thread with the same verdict and mark) in one message.
   */
  batchVerdicts?: number;
  /** With `matcher` only: packets this queue's receive thread decided with the rule matcher, without JavaScript. */
  matched?: number;
  /**
   * With `late` only: times the receive thread left this queue unread because the late queues had no room for
   * another batch (packets through PREROUTING not answered yet at a later hook): the packets waited, or the kernel
   * dropped them here as they entered.
   */
  lateWaits?: number;
}

export interface VerdictOptions {
  /** Per packet: NF_DROP 0, NF_ACCEPT 1, or (queue << 16) | 3 (NF_QUEUE) to pass it to another queue. */
  verdicts: Uint32Array;
  /** Per packet mark to set, applied where setMark[i] is 1 (to every packet when setMark is absent). */
  marks?: Uint32Array;
  setMark?: Uint8Array;
  /** Per packet replacement bytes (checksums already fixed by the caller), or undefined to keep the packet. */
  payloads?: (Uint8Array | undefined)[];
  /**
   * Connection-table updates of this trip, per packet (queues bound with `conntrack` only; TypeError otherwise).
   * Bits: 1 notrack (CT --notrack / NOTRACK in raw: UNTRACKED, creates nothing), 2 set the connection mark to
   * ctMarks[i] (CONNMARK), 4 the nat chains of the SRC manip type ran for this packet, 8 those of DST ran (a NEW
   * connection whose nat chains ran without binding gets the null binding), 16 the trip sent REJECT replies before
   * its verdict (CtUpdate.replied). Absent: all zero.
   *
   * verdict() then, per packet: commits the trip (accept = verdict is not NF_DROP; confirmation at INPUT/POSTROUTING
   * or the last queued hook), so a dropped first packet leaves no entry; sends NF_DROP when the table is full for it
   * or its confirmation clashes unresolvably; and for accepted packets applies the connection's NAT for this hook (on top of
   * payloads[i] when given, else on the queued bytes, the transport checksum completed when the kernel had left it
   * partial) and sends the rewritten bytes as the payload when they changed. The overload and close defaults commit
   * and translate the same way.
   */
  ctFlags?: Uint8Array;
  ctMarks?: Uint32Array;
  /**
   * Sparse: for a NEW packet whose nat chain bound (DNAT, SNAT, MASQUERADE, REDIRECT, NETMAP), the request(s) of
   * the rule that bound; a request implies its manip type ran (as ctFlags 4/8). Applied only to the connection's first
   * packet (commit binds, NF_NAT_DONE keeps later requests out).
   */
  ctNat?: (CtNatRequest | CtNatRequest[] | undefined)[];
  /**
   * Flow cache (QueueOptions.flowCache): per packet 0, or pathId + 1 to store this trip's decision (verdict, mark)
   * for the packet's connection, hook and direction. The caller sets it only when the decision depends on nothing
   * but the cache key, the packet was ESTABLISHED, and the trip has no payload, ctNat, REJECT replies or ctFlags.
   * Stored only when cacheGeneration equals the cache's generation (a reload or invalidate() in between makes it
   * stale).
   */
  cachePaths?: Uint32Array;
  cacheGeneration?: number;
}

export class Queue {
  /**
   * Binds the queue in the current network namespace and starts the receive thread. `onBatch` runs on the event loop;
   * it must call `verdict` for the batch, now or later. If it throws, or the queue closes first, the batch gets the
   * overload verdict and is counted in `defaulted`.
   */
  constructor(options: QueueOptions, onBatch: (batch: PacketBatch) => void);
  /** One verdict per packet of the batch, sent in one sendmsg. Throws if the batch was already verdicted. */
  verdict(batch: PacketBatch, v: VerdictOptions): void;
  stats(): QueueStats;
  /** Stops the thread, gives every outstanding packet the overload verdict, unbinds and closes the socket. */
  close(): void;
}

export interface FlowCacheOptions {
  /** Stored decisions (connection, hook, direction); the oldest are overwritten beyond it. Default 65536. */
  capacity?: number;
  /** Path ids per generation; a store with a larger id is ignored. Default 65536. */
  maxPaths?: number;
}

export interface FlowCacheStats {
  hits: number;
  /** ESTABLISHED packets looked up and handed to JavaScript: no decision applied, or the flow waited there unparked. */
  misses: number;
  stores: number;
  /**
   * Flows (per generation) for which JavaScript could not store a decision of an eligible packet (a path that is not
   * flow-stable): their packets that miss go to JavaScript at once instead of parking behind the flow's packet there.
   */
  uncacheable: number;
  /** Stored decisions overwritten for lack of room. */
  evictions: number;
  invalidations: number;
  generation: number;
  entries: number;
  enabled: boolean;
  /** Packets of tracked connections handed to JavaScript and not verdicted yet (all queues of the cache). */
  waiting: number;
  /**
   * Packets whose stored decision applied, or that had none yet (a new flow's first packets under a flood), while
   * their flow had packets waiting in JavaScript: the receive thread parked them (in order, behind those) instead of
   * handing them over, and looked them up again after the next verdict. Counted per parking, so a packet parked twice
   * counts twice.
   */
  parked: number;
  /** Later hooks (FORWARD, POSTROUTING) decided at a PREROUTING hit: queue trips packets did not make. */
  tripsSkipped: number;
  /** Barriers the kernel acknowledged (docs/flow-cache.md, Trips: a packet dropped between hooks). */
  barriers: number;
  /** Flows held back from skipping whose counts of packets between hooks a barrier showed were left by drops. */
  transitsDropped: number;
  /** Such counts that lapsed instead (50 ms without change): no barrier came back in time, or several queues. */
  transitsLapsed: number;
}

/** FlowCache.lookup/settle (tests): a packet's connection, hook and direction and the values its decision may use. */
export interface FlowCacheKey {
  /** ctHandle and ctGen; handle 0 never stores nor hits. */
  handle: number;
  gen: number;
  hook: number;
  dir: number;
  status?: number;
  mark?: number;
  connmark?: number;
  zone?: number;
  inIf?: number;
  outIf?: number;
  physInIf?: number;
  physOutIf?: number;
  /** Tests: at PREROUTING, nothing between there and FORWARD can drop the packet (the receive thread checks this). */
  skip?: boolean;
}

export interface FlowCacheDecision {
  verdict: number;
  mark: number;
  setMark: boolean;
  pathId: number;
  /**
   * lookup(): present when the hit also decided later hooks: bit 1 << 2 (FORWARD), 1 << 4 (POSTROUTING); `mark` then
   * carries their skip bits.
   */
  skipped?: number;
}

/** Hook skipping (docs/flow-cache.md, Trips). */
export interface FlowCacheSkip {
  /**
   * The two reserved packet mark bits the kernel's hook rules test: the lower lets a packet pass FORWARD, the higher
   * POSTROUTING (0: none installed). They are cleared from every verdict's mark but a skipping one, even while
   * `allowed` is false.
   */
  mark: number;
  /** Whether packets may skip now (no routing rule reads the mark). */
  allowed: boolean;
  /** The largest packet (bytes) no link or route MTU stops before FORWARD. */
  maxLen: number;
  /** Bit 1 << NF_INET_* for every hook the daemon queues. */
  queuedHooks: number;
}

/**
 * Decisions of settled connections, reused on the receive thread (docs/flow-cache.md). JavaScript owns what a path
 * id means (the rule counters a decision increments); the cache only counts hits per path.
 */
export class FlowCache {
  constructor(options?: FlowCacheOptions);
  /**
   * Makes every stored decision stale (reload commit, address, route or link change). Returns the new generation.
   * With `statusMask`, from then on a stored decision applies to packets whose connection status differs from the one
   * it was stored with only in bits outside the mask (bits no rule in force can read); without, the mask stays.
   */
  invalidate(statusMask?: number): number;
  generation(): number;
  /** Off: no lookups, no stores (someone traces). Turning it on again starts a new generation. */
  setEnabled(on: boolean): void;
  /**
   * Lets a PREROUTING hit decide the flow's later hooks too, when they are cached, and mark the packet so the kernel's
   * hook rules pass it there without a trip.
   */
  setSkip(config: FlowCacheSkip): void;
  /**
   * Hits since the last drain as [generation, pathId, packets, bytes] quadruples, and resets them. Hits of an older
   * generation are still reported once (the paths' counters must get them).
   */
  drain(): Float64Array;
  stats(): FlowCacheStats;
  /**
   * Tests: the receive thread's step for one ESTABLISHED packet of `wireLen` bytes. A hit returns the stored decision
   * and charges the packet to its path; a miss returns undefined and the packet counts as waiting in JavaScript (its
   * flow's later packets miss) until settle().
   */
  lookup(key: FlowCacheKey, wireLen: number): FlowCacheDecision | undefined;
  /**
   * Tests: verdict() for one packet lookup() missed: it stops waiting, and `decision` is stored when given, the
   * generation is current and the cache enabled (false otherwise, or when pathId >= maxPaths).
   */
  settle(key: FlowCacheKey, decision: FlowCacheDecision | undefined, generation: number): boolean;
  /**
   * Tests: the receive thread's barrier (docs/flow-cache.md, Trips), begun after its verdicts went out. Returns its
   * number, or 0 when no flow was held back from skipping since the last one (or several queues use the cache).
   */
  beginBarrier(): number;
  /** Tests: the barrier's acknowledgement came in, after the packets queued before it were looked up. */
  endBarrier(barrier: number): void;
}

// ---- the compiled rule matcher (native/matcher.cc, docs/matcher.md) ----

/** Matcher.setHost: what addrtype and -i/-o see natively. */
export interface MatcherHost {
  /** Interface names by ifindex (undefined: unknown; a rule that asks sends the packet to JavaScript). */
  names?: (string | undefined)[];
  /** The host's own addresses (addrtype LOCAL). */
  local4?: string[];
  local6?: string[];
  /** Other routes addrtype's LOCAL depends on ('127.0.0.0/8' local, a broadcast route inside one), longest first. */
  routes?: { dst: string; local: boolean }[];
  /**
   * Every interface's primary address by ifindex (HostView.primaryAddress), for MASQUERADE and REDIRECT; undefined:
   * the interface has none of that family (the target drops). Without both arrays those targets go to JavaScript.
   */
  primary4?: (string | undefined)[];
  primary6?: (string | undefined)[];
}

/** Matcher.run (tests): one packet at one hook, as the queue would give it. */
export interface MatcherInput {
  data: Uint8Array;
  family: 4 | 6;
  /** NF_INET_* */
  hook: number;
  mark?: number;
  inIf?: number;
  outIf?: number;
  /** The bridge ports (physdev), ifindexes. */
  physInIf?: number;
  physOutIf?: number;
  wireLen?: number;
  /** The connection as classified (state: ct::State 0 INVALID 1 NEW 2 ESTABLISHED 3 RELATED 4 UNTRACKED; dir 0|1); absent: untracked queue. */
  ct?: { state: number; dir: number; status: number; mark: number; zone?: number };
  /** The 31-bit numbers `-m statistic --mode random` draws, in order (cycling); absent: the thread's generator. */
  random?: number[];
  /** Input::takesNat (default true here): false sends a trip whose NAT target binds to JavaScript. */
  takesNat?: boolean;
}

export interface MatcherResult {
  /** NF_ACCEPT, NF_DROP or NF_QUEUE | queue << 16. */
  verdict: number;
  mark: number;
  setMark: boolean;
  /** Bits 1 << 0 (SRC) and 1 << 1 (DST): the nat chains ran and bound nothing. */
  natRan: number;
  /** Decision.flowStable: every packet of the connection with the same flow-cache key gets this decision. */
  flowStable: boolean;
  /** Counter ids, in order (Decision.counted). */
  path: number[];
  /** Decision.ct.nat as the connection table takes it (nativeNatRequest's form, masqIfindex = outIf); absent: none. */
  nat?: CtNatRequest[];
  /** How many numbers statistic drew. */
  draws: number;
}

export interface MatcherDrain {
  serials: Uint32Array;
  ids: Uint32Array;
  packets: Float64Array;
  bytes: Float64Array;
  /** Serials of replaced programs drained for the last time. */
  done: number[];
}

/** The programs in force (src/compile/program.ts), shared with the queues' receive threads. */
/** A program Matcher.build checked, not yet in force. */
export interface BuiltProgram {
  readonly __builtProgram: unique symbol;
}

export class Matcher {
  constructor();
  /**
   * Puts a program in force for `family`; throws Error with the loader's reason when the words are not a program.
   * Words in a block of programWords() are run in place and stay read-only while the program lives (a write to them
   * then faults); any others are copied. A BuiltProgram is put in force as build() checked it, once.
   */
  load(family: 4 | 6, words: Uint32Array | BuiltProgram, serial: number): void;
  /**
   * Checks words as load() does, on a thread of libuv's pool, for load() to put in force without more work; rejects
   * with the loader's reason. Words in a block of programWords() are read-only from the call on (while the program
   * lives: until it is replaced, or dropped unloaded and collected).
   */
  build(family: 4 | 6, words: Uint32Array): Promise<BuiltProgram>;
  clear(family: 4 | 6): void;
  /** The serial the program in force for `family` was loaded under; 0 when none is. */
  serial(family: 4 | 6): number;
  /**
   * At least `length` words, zero, in memory load() runs without a copy: the whole block `reuse` is a view of when no
   * program runs on it any more and it is long enough, else a new one. Throws when the memory cannot be had.
   */
  programWords(length: number, reuse?: Uint32Array): Uint32Array;
  setHost(host: MatcherHost): void;
  /**
   * Tests: the decision, or null when JavaScript must decide (slow). With `commit`, counts it as a receive thread
   * would after its verdict (the path's counters, and decided/slow in stats()); otherwise counts nothing.
   */
  run(input: MatcherInput, commit?: boolean): MatcherResult | null;
  drain(): MatcherDrain;
  /** Benchmarks: mean nanoseconds per run() of `input` over `iterations` runs in C++; -1 when it goes to JavaScript. */
  time(input: MatcherInput, iterations: number): number;
  setEnabled(on: boolean): void;
  stats(): { decided: number; slow: number };
}

/** sd_notify(3): sends `state` to $NOTIFY_SOCKET. False when NOTIFY_SOCKET is unset. Throws on a send error. */
export function notify(state: string): boolean;

/**
 * Sends a whole IPv4/IPv6 packet (header included, checksums correct) as a locally generated packet of the current
 * network namespace: it passes the OUTPUT hook and routing, as the kernel's own REJECT replies do. Throws on error.
 */
export function sendRaw(packet: Uint8Array): void;

// ---- capabilities (native/caps.cc, docs/robustness.md "Privilege") ----

/** Capability names without the CAP_ prefix, lower case (`net_admin`), as sets of the calling thread. */
export interface CapabilitySets {
  effective: string[];
  permitted: string[];
  inheritable: string[];
  bounding: string[];
  ambient: string[];
}

/** The calling thread's capability sets (capget, PR_CAPBSET_READ, PR_CAP_AMBIENT_IS_SET). Throws on error. */
export function capabilities(): CapabilitySets;

/**
 * Lowers the calling thread's effective, permitted, inheritable and ambient sets to `keep` (what of it is permitted),
 * and the bounding set to `keep` when CAP_SETPCAP is effective (else `boundingLeft` says what stayed). Other threads
 * keep theirs: re-execute (`reexec`) to make every thread start from the new sets. Throws naming the failing step.
 */
export function dropCapabilities(keep: string[]): { before: CapabilitySets; after: CapabilitySets; boundingLeft: string[] };

/**
 * Opens the IPPROTO_RAW sockets `sendRaw` uses, now (they need CAP_NET_RAW), in the current network namespace. The
 * descriptor of each, or -1 with the reason in `errors`.
 */
export function openRawSockets(): { ipv4: number; ipv6: number; errors: string[] };

/** Makes inherited descriptors (from `reexec`) the raw sockets of `sendRaw`; -1: none. Throws if one is not. */
export function adoptRawSockets(ipv4: number, ipv6: number): void;

/** execve(path, argv, env) keeping `keepFds` open across it. Returns only by throwing. */
export function reexec(path: string, argv: string[], env: string[], keepFds: number[]): never;

// ---- the JavaScript heap's budget (native/heapguard.*, docs/robustness.md: Heap) ----

export interface HeapGuardState {
  /** The budget in bytes (the old generation's limit the heap may grow to). */
  budget: number;
  /** V8's heap_size_limit now, and used_heap_size. */
  limit: number;
  used: number;
  /** Times the limit grew to the budget, and times a collection left the heap at the budget (an overrun). */
  raises: number;
  overruns: number;
  /** Whether an overrun's reserve is in use (heapSettle takes it back). */
  inReserve: boolean;
}

/**
 * Sets the main thread's heap budget: the limit grows to it when a collection leaves the heap near V8's own limit
 * (lowered to it when it is under that). Past the budget, one reserve of budget/16 (128 MiB..1 GiB) is given and the
 * overrun counted, so the caller can give up what it was building; a second overrun before heapSettle ends the process.
 */
export function heapBudget(bytes: number): HeapGuardState;
export function heapGuard(): HeapGuardState;
/** Takes an overrun's reserve back once what overran is let go. */
export function heapSettle(): HeapGuardState;
/** A full collection of the heap, now. */
export function heapCollect(): void;

// ---- connection table (native/conntrack.*, docs/conntrack-table.md) ----

export interface ConnTableOptions {
  /** nf_conntrack_max: entries beyond it evict a non-assured connection or drop the new one. Default 262144. */
  maxEntries?: number;
  /** Hash buckets (rounded up to a power of two). Default: maxEntries. */
  buckets?: number;
  /** Seeds hashing and NAT port choice (fix it in tests). */
  seed?: number;
  /** Time only moves with setNow() (tests). Default false: CLOCK_MONOTONIC_COARSE. */
  manualClock?: boolean;
  /** nf_conntrack_tcp_loose: a mid-stream ACK opens a connection. Default true. */
  tcpLoose?: boolean;
}

export type CtStateName = 'INVALID' | 'NEW' | 'ESTABLISHED' | 'RELATED' | 'UNTRACKED';

/** ICMP/ICMPv6 echo: sport is the identifier and dport is (type << 8) | code. Other protocols without ports: 0. */
export interface CtTuple {
  family: 4 | 6;
  src: string;
  dst: string;
  proto: number;
  sport: number;
  dport: number;
  zone: number;
}

export interface CtClassification {
  state: CtStateName;
  direction: 'ORIGINAL' | 'REPLY';
  /** IPS_* bits: EXPECTED 1, SEEN_REPLY 2, ASSURED 4, CONFIRMED 8, SRC_NAT 16, DST_NAT 32, SRC_NAT_DONE 128, DST_NAT_DONE 256, FIXED_TIMEOUT 1024, NAT_CLASH 4096. */
  status: number;
  mark: number;
  zone: number;
  /** TCP state name (SYN_SENT, ESTABLISHED, ...); '' without an entry. */
  tcpState: string;
  /** Entry index + 1; 0 when the packet has no entry (INVALID, UNTRACKED). */
  handle: number;
  /** This packet created the (still unconfirmed) entry. */
  created: boolean;
  /** The table is full and no entry could be evicted: the kernel drops the packet. */
  dropped: boolean;
  /** A non-first fragment: not tracked. */
  fragment: boolean;
  /** Opaque: pass the whole object back to commit() and translate(). */
  cookie: Uint8Array;
}

/** One NAT binding request (struct nf_nat_range2), with the addresses the engine resolved. */
export interface CtNatRequest {
  manip: 'SRC' | 'DST';
  /** NF_NAT_RANGE_MAP_IPS when given. With netmap, minAddr/maxAddr are the prefix's first and last address. */
  minAddr?: string;
  maxAddr?: string;
  /** NF_NAT_RANGE_PROTO_SPECIFIED when given (ports, or the ICMP id). */
  minPort?: number;
  maxPort?: number;
  /** NF_NAT_RANGE_PROTO_OFFSET (/baseport). */
  basePort?: number;
  random?: boolean;
  randomFully?: boolean;
  persistent?: boolean;
  netmap?: boolean;
  /** MASQUERADE: the outgoing interface, so flushInterface() forgets the binding. */
  masqIfindex?: number;
}

export interface CtUpdate {
  /** The trip's verdict lets the packet continue. A dropped first packet leaves no entry. */
  accept: boolean;
  /** The trip is the packet's confirmation point (the last queued hook of its path). */
  final?: boolean;
  /** CT --notrack matched in raw: the packet is UNTRACKED and creates nothing. */
  notrack?: boolean;
  /**
   * The trip sent REJECT replies (a TCP reset, an ICMP error) before its verdict. They belong to this packet's
   * connection (the kernel's nf_ct_attach): if this first packet is dropped, its connection stays for them until the
   * reply's last trip, without being found by anything else.
   */
  replied?: boolean;
  /** The trip is POSTROUTING out of the loopback device: the packet comes back through PREROUTING and INPUT. */
  looped?: boolean;
  /** CONNMARK: the new connection mark. */
  connmark?: number;
  /** The nat chains of these manip types ran for this new connection: each gets its request, else a null binding. */
  natRan?: ('SRC' | 'DST')[];
  nat?: CtNatRequest[];
}

export interface CtEntry {
  orig: CtTuple;
  reply: CtTuple;
  status: number;
  mark: number;
  zone: number;
  tcpState: string;
  expiresSeconds: number;
  packets: [number, number];
  bytes: [number, number];
  masqIfindex: number;
  /** As `conntrack -L` prints it. */
  line: string;
}

export interface ConnTableStats {
  entries: number;
  unconfirmed: number;
  found: number;
  created: number;
  invalid: number;
  ignore: number;
  untracked: number;
  related: number;
  drop: number;
  earlyDrop: number;
  expired: number;
  insertFailed: number;
  natFailed: number;
  /** Packets whose confirmation clashed with a connection of the same flow and were kept (nf_ct_resolve_clash). */
  clashResolve: number;
  deleted: number;
  /**
   * Removals `conntrack -S` has no counter for, so that created == entries + expired + earlyDrop + deleted + killed +
   * discarded. killed: connections the TCP tracker ended (an RST before any reply, a SYN reopening a TIME_WAIT or CLOSE
   * connection: nf_ct_kill). discarded: unconfirmed entries freed with their packet (dropped, NOTRACK, INVALID, or
   * attached to / dropped for another connection at confirmation).
   */
  killed: number;
  discarded: number;
  searched: number;
}

/**
 * The connection table, one call per packet (tests, `nfqwall conntrack -L`). The Queue's receive thread uses the same
 * table through its C++ API (ConnTable::classify/commit/translate) without crossing into JavaScript.
 */
export class ConnTable {
  constructor(options?: ConnTableOptions);
  /** hook: NF_INET_* number. ctPoint (default true): track the packet here, as nf_conntrack_in does. */
  /**
   * checksumUnverified: the kernel has not verified the transport checksum (NFQA_SKB_CSUM_NOTVERIFIED); at the
   * conntrack point of a received packet a bad one makes it INVALID, as nf_conntrack_checksum does.
   */
  classify(packet: Uint8Array, family: 4 | 6, hook: number, options?: { ctPoint?: boolean; zone?: number; checksumUnverified?: boolean }): CtClassification;
  /**
   * Records the trip's outcome. False when the confirmation clashed with another connection and the clash could not be
   * resolved (nf_ct_resolve_clash): the packet must be dropped.
   */
  commit(c: CtClassification, update: CtUpdate): boolean;
  /**
   * commit() then translate() in one step, as the queue's verdict path does: an entry the commit releases (a dropped
   * first packet's, one an RST killed) goes only after the packet is translated. `ok` as commit(); `packet` when the
   * translation changed bytes.
   */
  finish(c: CtClassification, update: CtUpdate, packet: Uint8Array, family: 4 | 6, hook: number): { ok: boolean; packet?: Uint8Array };
  /**
   * Installs only the NAT bindings of `update` now (the engine, when a later table of the same trip must see the
   * rewritten packet: nat OUTPUT before filter OUTPUT). commit() then skips those manip types. True: a
   * binding is always made here; a clash it causes is settled at confirmation (commit).
   */
  bind(c: CtClassification, update: Pick<CtUpdate, 'natRan' | 'nat'>): boolean;
  /** The packet with the connection's NAT applied for this hook (checksums fixed), or undefined when unchanged. */
  translate(c: CtClassification, packet: Uint8Array, family: 4 | 6, hook: number): Uint8Array | undefined;
  list(): CtEntry[];
  /** The entry a classification names (its tuples for --ctorig/--ctrepl, expiry), or undefined when it is gone. */
  entry(c: CtClassification): CtEntry | undefined;
  /** Forgets MASQUERADE bindings made on the interface / with the address. Returns how many entries went. */
  flushInterface(ifindex: number): number;
  flushAddress(address: string): number;
  flush(): number;
  /** Deletes expired entries among at most `budget` slots (default 1024). */
  sweep(budget?: number): number;
  /** Milliseconds on the table's clock (manualClock only). */
  setNow(ms: number): void;
  stats(): ConnTableStats;
}
