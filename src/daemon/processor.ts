// One batch from the queue in, one verdict per packet out. Every packet gets a verdict even when the engine throws
// for it (the fail-open/fail-closed verdict, counted). The verdict arrays are reused across batches.
import type { Decision, PacketInput } from '../engine/decision';
import type { LogRecord, PacketMeta } from '../extensions/types';
import { IPS_CONFIRMED } from '../extensions/util/ctstate';
import type { PacketBatch, VerdictOptions } from '../native';
import { HOOKS, type Counters } from '../rules/model';
import type { CtNatRequest } from '../../native/index';
import { finalPayload } from './payload';
import { connFromBatch, CT_REPLIED, nativeNatRequest, tableFull, updateFlags } from './conntrack';

export interface Decider {
  // trace: opts.trace; flow cache: opts.flow (Decision.flowStable, Decision.counted)
  decide(input: PacketInput, opts?: { trace?: boolean; flow?: boolean }): Decision;
}

/** Flow cache: what the processor needs of src/daemon/flow-paths.ts's FlowPaths. */
export interface FlowPathTable {
  begin(): number;
  intern(counted: readonly Counters[]): number | undefined;
}

// trace: what the processor needs of src/daemon/trace.ts's TraceHub.
export interface Tracer {
  readonly active: boolean;
  wants(input: PacketInput): boolean;
  publish(input: PacketInput, d: Decision): void;
}
const TRACE_OPTS = { trace: true }; // trace:

export interface NameLookup {
  name(index: number): string | undefined;
}

export interface ProcessorStats {
  batches: number;
  packets: number;
  accepted: number;
  dropped: number;
  queued: number;
  marked: number;
  rewritten: number;
  /** Packets whose evaluation threw; they got the fail verdict. */
  errors: number;
  /** REJECT replies (ICMP errors, TCP resets) sent, and those the send refused. */
  replies: number;
  replyErrors: number;
  logs: number;
  /** Rewritten packets dropped because only part of them was copied to nfqwall (see payload.ts). */
  rewriteTruncated?: number;
  /** H16: packets the connection table drops (table full) without evaluation. */
  ctTableFull?: number;
  /** Flow cache: decisions handed to the cache to store (VerdictOptions.cachePaths). */
  cacheStores?: number;
}

export interface ProcessorOptions {
  failOpen: boolean;
  onError?: (err: unknown, packetIndex: number) => void;
  onLog?: (rec: LogRecord) => void;
  /** Sends a REJECT reply as a locally generated packet (the addon's sendRaw); it passes OUTPUT like the kernel's. */
  sendReply?: (packet: Uint8Array) => void;
  /** trace: `nfqwall trace`'s hub; consulted per packet only while someone traces (src/daemon/trace.ts). */
  tracer?: Tracer;
  /** Flow cache (docs/flow-cache.md): the path table; absent, nothing is stored. */
  flow?: FlowPathTable;
}

// The values of src/native.ts, which cannot be imported here without loading the addon (tests run without it).
// HOOKS is in the kernel's NF_INET_* order, as HOOK_BY_NUMBER is.
const NF_DROP = 0;
const NF_ACCEPT = 1;
const NF_QUEUE = 3;
const PACKET_FLAG_CSUM_NOT_READY = 1;
const PACKET_FLAG_TRUNCATED = 4;
const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const UID_UNKNOWN = 0xffffffff;
// Flow cache: PacketBatch.ctState ESTABLISHED, or NEW with IPS_CONFIRMED in ctStatus (queue.cc flowSettled);
// PacketBatch.ctFlags created, table full, fragment.
const CT_NEW = 1;
const CT_ESTABLISHED = 2;
const CT_BATCH_NOT_CACHEABLE = 1 | 2 | 4;
const FLOW_OPTS = { flow: true };

export class BatchProcessor {
  readonly stats: ProcessorStats = {
    batches: 0,
    packets: 0,
    accepted: 0,
    dropped: 0,
    queued: 0,
    marked: 0,
    rewritten: 0,
    errors: 0,
    replies: 0,
    replyErrors: 0,
    logs: 0,
  };
  private verdicts = new Uint32Array(256);
  private marks = new Uint32Array(256);
  private setMark = new Uint8Array(256);
  private readonly payloads: (Uint8Array | undefined)[] = [];
  // H16: connection-table updates, for queues bound with a table.
  private ctFlags = new Uint8Array(256);
  private ctMarks = new Uint32Array(256);
  private readonly ctNat: (CtNatRequest[] | undefined)[] = [];
  private cachePaths = new Uint32Array(256);
  private readonly failVerdict: number;

  constructor(
    private engine: Decider,
    private readonly ifnames: NameLookup,
    private readonly opts: ProcessorOptions,
  ) {
    this.failVerdict = opts.failOpen ? NF_ACCEPT : NF_DROP;
  }

  /** Flow cache: the path table the daemon made once it had a cache. */
  setFlow(flow: FlowPathTable | undefined): void {
    this.opts.flow = flow;
  }

  /** Swaps the engine between batches (reload). */
  setEngine(engine: Decider): void {
    this.engine = engine;
  }

  private ensure(count: number): void {
    if (this.verdicts.length >= count) return;
    let n = this.verdicts.length;
    while (n < count) n *= 2;
    this.verdicts = new Uint32Array(n);
    this.marks = new Uint32Array(n);
    this.setMark = new Uint8Array(n);
    this.ctFlags = new Uint8Array(n);
    this.ctMarks = new Uint32Array(n);
    this.cachePaths = new Uint32Array(n);
  }

  /** The input the engine sees for packet i of the batch. Throws on a packet the queue should never hand over. */
  packetInput(batch: PacketBatch, i: number): PacketInput {
    const proto = batch.protos[i];
    const family = proto === ETH_P_IP ? 4 : proto === ETH_P_IPV6 ? 6 : 0;
    if (family === 0) throw new Error(`packet ${batch.ids[i]}: ethertype 0x${(proto ?? 0).toString(16)} is not IP`);
    const hook = HOOKS[batch.hooks[i]!];
    if (hook === undefined) throw new Error(`packet ${batch.ids[i]}: unknown hook ${batch.hooks[i]}`);
    const meta: PacketMeta = { hook, mark: batch.marks[i]!, pktType: 'unicast' };
    const inIf = batch.inIf[i]!;
    if (inIf !== 0) meta.inIface = this.ifnames.name(inIf);
    const outIf = batch.outIf[i]!;
    if (outIf !== 0) meta.outIface = this.ifnames.name(outIf);
    const physIn = batch.physInIf[i]!;
    if (physIn !== 0) meta.physIn = this.ifnames.name(physIn);
    const physOut = batch.physOutIf[i]!;
    if (physOut !== 0) meta.physOut = this.ifnames.name(physOut);
    const uid = batch.uids[i]!;
    if (uid !== UID_UNKNOWN) meta.uid = uid;
    const gid = batch.gids[i]!;
    if (gid !== UID_UNKNOWN) meta.gid = gid;
    if ((batch.flags[i]! & PACKET_FLAG_CSUM_NOT_READY) !== 0) meta.checksumNotReady = true;
    if (batch.hwLens[i] === 6) meta.srcMac = batch.hwAddrs.subarray(i * 6, i * 6 + 6);
    const input: PacketInput = {
      family,
      data: batch.data.subarray(batch.offsets[i], batch.offsets[i + 1]),
      meta,
    };
    if ((batch.flags[i]! & PACKET_FLAG_TRUNCATED) !== 0) input.length = batch.origLens[i]!;
    // H16: the engine hides it from raw itself (raw runs before conntrack).
    const ct = connFromBatch(batch, i, input.data, family);
    if (ct !== undefined) input.ct = ct;
    return input;
  }

  /** Decides every packet of the batch. The returned arrays are valid until the next call. */
  process(batch: PacketBatch): VerdictOptions {
    const count = batch.count;
    this.ensure(count);
    const verdicts = this.verdicts;
    const marks = this.marks;
    const setMark = this.setMark;
    const payloads = this.payloads;
    payloads.length = count;
    let anyMark = false;
    let anyPayload = false;
    const s = this.stats;
    s.batches++;
    s.packets += count;
    // H16
    const tracked = batch.ctState !== undefined;
    const ctFlags = this.ctFlags;
    const ctMarks = this.ctMarks;
    const ctNat = this.ctNat;
    ctNat.length = count;
    let anyCt = false;
    let anyNat = false;
    const tracer = this.opts.tracer?.active === true ? this.opts.tracer : undefined; // trace: once per batch
    // Flow cache: while someone traces the daemon turns the cache off, and every packet must come with its path.
    const flow = tracked && tracer === undefined ? this.opts.flow : undefined;
    const cacheGeneration = flow?.begin() ?? 0;
    const cachePaths = this.cachePaths;
    let anyCache = false;
    for (let i = 0; i < count; i++) {
      cachePaths[i] = 0;
      setMark[i] = 0;
      payloads[i] = undefined;
      ctFlags[i] = 0;
      ctNat[i] = undefined;
      if (tracked && tableFull(batch, i)) {
        verdicts[i] = NF_DROP;
        s.dropped++;
        s.ctTableFull = (s.ctTableFull ?? 0) + 1;
        continue;
      }
      try {
        // trace: with nobody tracing, `tracer` is undefined and this test is the only cost.
        const input = this.packetInput(batch, i);
        const cacheable =
          flow !== undefined &&
          (batch.ctState![i] === CT_ESTABLISHED || (batch.ctState![i] === CT_NEW && (batch.ctStatus![i]! & IPS_CONFIRMED) !== 0)) &&
          batch.ctHandle![i] !== 0 &&
          (batch.ctFlags![i]! & CT_BATCH_NOT_CACHEABLE) === 0;
        const d =
          tracer !== undefined
            ? this.traced(tracer, input)
            : cacheable
              ? this.engine.decide(input, FLOW_OPTS)
              : this.engine.decide(input);
        // Only a decision every later packet of the flow would get, with no effect the cache cannot repeat (a rewrite,
        // a reply, a log line, a connection-table update): the cache replays the verdict and the mark only.
        const counted = cacheable && d.flowStable === true ? d.counted : undefined;
        if (counted !== undefined && d.payload === undefined && d.ct === undefined && d.replies.length + d.logs.length === 0) {
          const id = flow?.intern(counted);
          if (id !== undefined) {
            cachePaths[i] = id + 1;
            anyCache = true;
          }
        }
        if (tracked && d.ct !== undefined) {
          const f = updateFlags(d.ct);
          ctFlags[i] = f;
          if (f !== 0) anyCt = true;
          if (d.ct.connmark !== undefined) ctMarks[i] = d.ct.connmark >>> 0;
          if (d.ct.nat !== undefined && d.ct.nat.length > 0) {
            ctNat[i] = d.ct.nat.map((r) => nativeNatRequest(r, batch.outIf[i]!));
            anyNat = true;
          }
        }
        if (d.verdict === 'accept') {
          verdicts[i] = NF_ACCEPT;
          s.accepted++;
        } else if (d.verdict === 'drop') {
          verdicts[i] = NF_DROP;
          s.dropped++;
        } else {
          verdicts[i] = (((d.queue ?? 0) << 16) | NF_QUEUE) >>> 0;
          s.queued++;
        }
        if (d.markChanged) {
          marks[i] = d.mark >>> 0;
          setMark[i] = 1;
          anyMark = true;
          s.marked++;
        }
        if (d.payload !== undefined && d.verdict !== 'drop') {
          const flags = batch.flags[i]!;
          const payload = finalPayload(d.payload, input.family, {
            truncated: (flags & PACKET_FLAG_TRUNCATED) !== 0,
            checksumNotReady: (flags & PACKET_FLAG_CSUM_NOT_READY) !== 0,
          });
          if (payload === undefined) {
            // Cut short it would reach the peer corrupted, and unrewritten it would skip what the rules did to it.
            if (verdicts[i] === NF_ACCEPT) s.accepted--;
            else s.queued--;
            verdicts[i] = NF_DROP;
            s.dropped++;
            s.rewriteTruncated = (s.rewriteTruncated ?? 0) + 1;
          } else {
            payloads[i] = payload;
            anyPayload = true;
            s.rewritten++;
          }
        }
        if (d.replies.length > 0) {
          this.sendReplies(d.replies);
          // A dropped first packet's connection must outlive it for the replies (native/conntrack.cc doom()).
          if (tracked) {
            ctFlags[i] |= CT_REPLIED;
            anyCt = true;
          }
        }
        if (d.logs.length > 0) {
          s.logs += d.logs.length;
          if (this.opts.onLog) for (const rec of d.logs) this.opts.onLog(rec);
        }
      } catch (err) {
        verdicts[i] = this.failVerdict;
        cachePaths[i] = 0;
        setMark[i] = 0;
        payloads[i] = undefined;
        ctFlags[i] = 0;
        ctNat[i] = undefined;
        s.errors++;
        if (this.opts.failOpen) s.accepted++;
        else s.dropped++;
        this.opts.onError?.(err, i);
      }
    }
    const v: VerdictOptions = { verdicts: verdicts.subarray(0, count) };
    if (anyMark) {
      v.marks = marks.subarray(0, count);
      v.setMark = setMark.subarray(0, count);
    }
    if (anyPayload) v.payloads = payloads;
    if (anyCt) {
      v.ctFlags = ctFlags.subarray(0, count);
      v.ctMarks = ctMarks.subarray(0, count);
    }
    if (anyNat) v.ctNat = ctNat;
    if (anyCache) {
      // A packet whose rewrite was refused (rewriteTruncated) had a payload, so it never asked for a store.
      v.cachePaths = cachePaths.subarray(0, count);
      v.cacheGeneration = cacheGeneration;
      let n = 0;
      for (let i = 0; i < count; i++) if (cachePaths[i] !== 0) n++;
      s.cacheStores = (s.cacheStores ?? 0) + n;
    }
    return v;
  }

  // trace: a packet's decision while someone traces; the path goes to the hub.
  private traced(tracer: Tracer, input: PacketInput): Decision {
    if (!tracer.wants(input)) return this.engine.decide(input);
    const d = this.engine.decide(input, TRACE_OPTS);
    tracer.publish(input, d);
    return d;
  }

    private sendReplies(replies: Uint8Array[]): void {
    const s = this.stats;
    for (const r of replies) {
      if (this.opts.sendReply === undefined) {
        s.replyErrors++;
        continue;
      }
      try {
        this.opts.sendReply(r);
        s.replies++;
      } catch (err) {
        // The original packet's verdict stands (the kernel drops it even when its reply cannot be sent).
        s.replyErrors++;
        this.opts.onError?.(err, -1);
      }
    }
  }

  /** The fail verdict for every packet, for when processing a batch as a whole went wrong. */
  failAll(count: number): VerdictOptions {
    this.ensure(count);
    this.verdicts.fill(this.failVerdict, 0, count);
    return { verdicts: this.verdicts.subarray(0, count) };
  }
}
