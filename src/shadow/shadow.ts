// The shadow evaluator: each captured packet is run through a candidate ruleset (and optionally a second one) at every
// hook of the path it takes on this host. The engines' own rule counters are the shadow counters; nothing here ever
// gives a verdict to the kernel. Flows are kept in bounded tables; what does not fit is counted, not dropped silently.
import type { HostView, PacketMeta, SetView } from '../extensions/types';
import type { TraceStep } from '../engine/decision';
import { Engine } from '../engine/engine';
import { parsePacket } from '../engine/packet';
import { formatIpAddr } from '../rules/addr';
import { formatRuleSpec } from '../rules/format';
import type { Family, Hook, Ruleset } from '../rules/model';
import { protocolName } from '../rules/services';
import { decodeFrame, type Frame } from './frame';
import { planHooks, type HookStep, type RouteOracle } from './hookpath';

export interface Rulesets {
  v4?: Ruleset;
  v6?: Ruleset;
}

export type Verdict = 'accept' | 'drop' | 'reject' | 'queue';

/** The rule (or chain policy) that decided a packet's fate. */
export interface RuleRef {
  family: Family;
  table: string;
  chain: string;
  /** 1-based; 0 for the chain's policy. */
  rule: number;
  /** `-A CHAIN spec` as iptables-save prints it, or `:CHAIN POLICY` for a policy; empty when no rule was involved. */
  text: string;
}

export interface Fate {
  verdict: Verdict;
  hook?: Hook;
  /** Undefined when no chain of the ruleset saw the packet (accepted by default). */
  by?: RuleRef;
}

export interface FlowKey {
  family: Family;
  proto: string;
  src: string;
  dst: string;
  /** -1 when the protocol has no ports. */
  dport: number;
}

export interface FlowEntry extends FlowKey {
  packets: number;
  bytes: number;
  fate: Fate;
  /** With --against: the other ruleset's fate for the same packets. */
  other?: Fate;
}

export interface CapturedFrame {
  iface: string;
  linktype: number;
  data: Uint8Array;
  origLength: number;
  /** Direction recorded by the capture itself (pcapng flags), when there is one. */
  direction?: 'in' | 'out';
}

export interface ShadowOptions {
  candidate: Rulesets;
  against?: Rulesets;
  host: HostView;
  sets: SetView;
  routes: RouteOracle;
  /** MAC address of each captured interface: a frame whose source is the interface's own MAC was sent by this host. */
  ifaceMacs?: ReadonlyMap<string, Uint8Array>;
  /** Distinct flows kept per table (default 10,000). */
  maxFlows?: number;
  now?: () => number;
}

export interface ShadowStats {
  frames: number;
  evaluated: number;
  bytes: number;
  truncated: number;
  skipped: Map<string, number>;
  paths: Map<string, number>;
  verdicts: Record<Verdict, number>;
  /** Packets whose fate differs between the rulesets (--against). */
  differing: number;
  flowOverflow: number;
  diffOverflow: number;
}

function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function bump(m: Map<string, number>, k: string): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

function ruleRef(rs: Ruleset, step: TraceStep): RuleRef {
  const chain = rs.tables.get(step.table)?.chains.get(step.chain);
  let text = '';
  if (step.rule === 0) {
    text = `:${step.chain} ${chain?.policy ?? 'ACCEPT'}`;
  } else {
    const rule = chain?.rules[step.rule - 1];
    if (rule) text = `-A ${step.chain} ${formatRuleSpec(rule, rs.family)}`.trimEnd();
  }
  return { family: rs.family, table: step.table, chain: step.chain, rule: step.rule, text };
}

const TERMINAL = new Set<TraceStep['result']>(['accept', 'drop', 'reject', 'queue', 'policy']);

export function refText(r: RuleRef | undefined): string {
  if (!r) return '(no chain saw it: accepted)';
  const where = r.rule === 0 ? `${r.table}/${r.chain} policy` : `${r.table}/${r.chain}#${r.rule}`;
  return `${where}: ${r.text}`;
}

export function fateText(f: Fate): string {
  return `${f.verdict.toUpperCase()}${f.hook ? ` at ${f.hook}` : ''} by ${refText(f.by)}`;
}

function sameFate(a: Fate, b: Fate): boolean {
  return a.verdict === b.verdict;
}

/** One ruleset and the engine that evaluates it. */
class Evaluator {
  readonly engine: Engine;
  constructor(
    readonly rules: Rulesets,
    opts: ShadowOptions,
  ) {
    this.engine = new Engine({ rules4: rules.v4, rules6: rules.v6, host: opts.host, sets: opts.sets, now: opts.now });
  }

  has(family: Family): boolean {
    return (family === 4 ? this.rules.v4 : this.rules.v6) !== undefined;
  }

  /** Runs the packet through every hook of its path; stops where it would die. */
  fate(f: Frame, steps: HookStep[]): Fate {
    const rs = f.family === 4 ? this.rules.v4 : this.rules.v6;
    if (!rs) return { verdict: 'accept' };
    let data = f.l3;
    let mark = 0;
    let decidedAccept: Fate | undefined;
    for (const step of steps) {
      const incoming = step.hook === 'PREROUTING' || step.hook === 'INPUT' || step.hook === 'FORWARD';
      const meta: PacketMeta = { hook: step.hook, mark, pktType: f.pktType };
      if (step.inIface !== undefined) meta.inIface = step.inIface;
      if (step.outIface !== undefined) meta.outIface = step.outIface;
      if (incoming && f.srcMac) meta.srcMac = f.srcMac;
      // No connection table here: ct stays undefined, so state/conntrack matches see UNTRACKED and nat is skipped.
      const d = this.engine.decide({ family: f.family, data, length: f.l3Length, meta }, { trace: true });
      mark = d.mark;
      if (d.payload) data = d.payload;
      let last: TraceStep | undefined;
      for (const s of d.path ?? []) if (TERMINAL.has(s.result)) last = s;
      if (d.verdict !== 'accept') {
        const verdict: Verdict = d.verdict === 'queue' ? 'queue' : last?.result === 'reject' ? 'reject' : 'drop';
        return { verdict, hook: step.hook, by: last ? ruleRef(rs, last) : undefined };
      }
      // The accepting decision worth naming is the filtering hook's (filter table), else the last one seen.
      if (last && (decidedAccept === undefined || last.table === 'filter')) {
        decidedAccept = { verdict: 'accept', hook: step.hook, by: ruleRef(rs, last) };
      }
    }
    return decidedAccept ?? { verdict: 'accept' };
  }
}

export class Shadow {
  readonly stats: ShadowStats = {
    frames: 0,
    evaluated: 0,
    bytes: 0,
    truncated: 0,
    skipped: new Map(),
    paths: new Map(),
    verdicts: { accept: 0, drop: 0, reject: 0, queue: 0 },
    differing: 0,
    flowOverflow: 0,
    diffOverflow: 0,
  };
  /** Flows the candidate would drop, reject or queue elsewhere. */
  readonly flows = new Map<string, FlowEntry>();
  /** Flows whose fate differs between candidate and --against. */
  readonly diff = new Map<string, FlowEntry>();
  readonly candidate: Evaluator;
  readonly against?: Evaluator;
  private readonly captured = new Set<string>();
  private readonly maxFlows: number;

  constructor(private readonly opts: ShadowOptions) {
    this.candidate = new Evaluator(opts.candidate, opts);
    if (opts.against) this.against = new Evaluator(opts.against, opts);
    this.maxFlows = opts.maxFlows ?? 10_000;
  }

  /** Declares an interface as captured (a forwarded packet is then evaluated where it enters, not where it leaves). */
  capture(iface: string): void {
    this.captured.add(iface);
  }

  process(c: CapturedFrame): void {
    this.stats.frames++;
    const r = decodeFrame(c.linktype, c.data, c.origLength);
    if ('skip' in r) {
      bump(this.stats.skipped, r.skip);
      return;
    }
    this.evaluate(r, c);
  }

  private evaluate(f: Frame, c: CapturedFrame): void {
    if (f.otherHost) {
      bump(this.stats.skipped, 'addressed to another host (never reaches IP)');
      return;
    }
    if (!this.candidate.has(f.family)) {
      bump(this.stats.skipped, `IPv${f.family}: no ruleset for this family`);
      return;
    }
    let direction = c.direction ?? f.direction;
    const mac = this.opts.ifaceMacs?.get(c.iface);
    if (direction === undefined && mac && f.srcMac) direction = sameMac(f.srcMac, mac) ? 'out' : 'in';
    if (direction === 'in' && mac && f.dstMac && f.pktType === 'unicast' && !sameMac(f.dstMac, mac)) {
      bump(this.stats.skipped, 'addressed to another host (never reaches IP)');
      return;
    }
    const pkt = parsePacket(f.l3, f.family, f.l3Length);
    const plan = planHooks({ family: f.family, src: pkt.src, dst: pkt.dst }, { iface: c.iface, direction, captured: this.captured }, this.opts.host, this.opts.routes);
    if (plan.kind === 'skip') {
      bump(this.stats.skipped, plan.reason);
      return;
    }
    this.stats.evaluated++;
    this.stats.bytes += pkt.length;
    if (f.l3.length < f.l3Length) this.stats.truncated++;
    bump(this.stats.paths, plan.kind);
    const fate = this.candidate.fate(f, plan.steps);
    this.stats.verdicts[fate.verdict]++;
    const key: FlowKey = {
      family: f.family,
      proto: protocolName(pkt.protocol),
      src: formatIpAddr(pkt.src),
      dst: formatIpAddr(pkt.dst),
      dport: pkt.dport >= 0 ? pkt.dport : -1,
    };
    if (fate.verdict !== 'accept') this.record(this.flows, key, pkt.length, fate, undefined, 'flowOverflow');
    // A family the --against side has no ruleset for is not compared (it would differ everywhere, meaning nothing).
    if (this.against?.has(f.family)) {
      const other = this.against.fate(f, plan.steps);
      if (!sameFate(fate, other)) {
        this.stats.differing++;
        this.record(this.diff, key, pkt.length, fate, other, 'diffOverflow');
      }
    }
  }

  private record(
    table: Map<string, FlowEntry>,
    k: FlowKey,
    bytes: number,
    fate: Fate,
    other: Fate | undefined,
    overflow: 'flowOverflow' | 'diffOverflow',
  ): void {
    const id = [k.family, k.proto, k.src, k.dst, k.dport, fate.verdict, refText(fate.by), other ? `${other.verdict} ${refText(other.by)}` : ''].join('|');
    const e = table.get(id);
    if (e) {
      e.packets++;
      e.bytes += bytes;
      return;
    }
    if (table.size >= this.maxFlows) {
      this.stats[overflow]++;
      return;
    }
    const entry: FlowEntry = { ...k, packets: 1, bytes, fate };
    if (other) entry.other = other;
    table.set(id, entry);
  }
}
