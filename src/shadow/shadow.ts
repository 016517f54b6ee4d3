// The shadow evaluator: each captured packet is run through a candidate ruleset (and optionally a second one) at every
// hook of the path it takes on this host. The engines' own rule counters are the shadow counters; nothing here ever
// gives a verdict to the kernel. Flows are kept in bounded tables; what does not fit is counted, not dropped silently.
import type { HostView, PacketMeta, SetView } from '../extensions/types';
import type { TraceStep } from '../engine/decision';
import { Engine } from '../engine/engine';
import { parsePacket } from '../engine/packet';
import { setAddress, setPort } from '../engine/rewrite';
import type { CtTuple } from '../../native/index';
import { formatIpAddr, parseIpAddr } from '../rules/addr';
import { formatRuleSpec } from '../rules/format';
import type { Family, Hook, Ruleset } from '../rules/model';
import { protocolName } from '../rules/services';
import { ShadowConnTable, type NatBinding } from './conntrack';
import { decodeFrame, type Frame } from './frame';
import { planHooks, type CaptureSide, type HookStep, type PathKind, type RouteOracle } from './hookpath';

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
  /** Undefined when no chain of the ruleset saw the packet (accepted by default), or when `note` decided. */
  by?: RuleRef;
  /** Why the packet dies when no rule decided it (the shadow connection table refused it). */
  note?: string;
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
  /** Capture time in seconds (file records); live frames take the shadow's clock. */
  time?: number;
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
  /** Entries of each shadow connection table (default 65,536). */
  maxConnections?: number;
  /** Milliseconds, for frames without a capture time (live capture). Default performance.now(). */
  now?: () => number;
}

/** NAT bindings grouped by what they did: the connections' original and translated endpoints and the rules. */
export interface NatEntry {
  family: Family;
  proto: string;
  src: string;
  dst: string;
  /** -1 when the protocol has no ports. */
  dport: number;
  toSrc: string;
  toDst: string;
  toDport: number;
  /** Connections bound so (first packets). */
  connections: number;
  by: RuleRef[];
  /** The first packet's fate under the same ruleset. */
  verdict: Verdict;
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
  natOverflow: number;
  /** Packets captured leaving after this host's NAT, evaluated in the form they arrived in (see Shadow.unNat). */
  unNatted: number;
  /** ctstate of each evaluated packet at its conntrack point, under the candidate. */
  states: Map<string, number>;
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

/** Protocols whose conntrack tuple has ports (the others key on ICMP id/type or on addresses only). */
const PORT_PROTOCOLS = new Set([6, 17, 33, 132, 136]);

const TERMINAL = new Set<TraceStep['result']>(['accept', 'drop', 'reject', 'queue', 'policy']);

export function refText(r: RuleRef | undefined, note?: string): string {
  if (!r) return note ?? '(no chain saw it: accepted)';
  const where = r.rule === 0 ? `${r.table}/${r.chain} policy` : `${r.table}/${r.chain}#${r.rule}`;
  return `${where}: ${r.text}`;
}

export function fateText(f: Fate): string {
  return `${f.verdict.toUpperCase()}${f.hook ? ` at ${f.hook}` : ''} by ${refText(f.by, f.note)}`;
}

function sameFate(a: Fate, b: Fate): boolean {
  return a.verdict === b.verdict;
}

/** What the nat table did to a connection's first packet, and the rule(s) that bound. */
export interface NatSeen {
  binding: NatBinding;
  by: RuleRef[];
}

/** One packet's outcome under one ruleset. */
export interface Outcome {
  fate: Fate;
  /** The connection's first packet got a NAT binding (it is reported with the packet's fate). */
  nat?: NatSeen;
  /** The ctstate the packet had at its conntrack point. */
  state: string;
  /** The path after PREROUTING when its NAT changed the destination (and so the route). */
  rerouted?: PathKind;
}

/** Recomputes the hooks after PREROUTING for a received packet whose destination NAT changed: routing sees the new one. */
export type Replan = (l3: Uint8Array) => { kind: PathKind; steps: HookStep[] } | undefined;

/** One ruleset, the engine that evaluates it and the connection table only it writes. */
class Evaluator {
  readonly engine: Engine;
  readonly conntrack: ShadowConnTable;
  constructor(
    readonly rules: Rulesets,
    opts: ShadowOptions,
    now: () => number,
  ) {
    this.engine = new Engine({ rules4: rules.v4, rules6: rules.v6, host: opts.host, sets: opts.sets, now });
    this.conntrack = new ShadowConnTable({ maxEntries: opts.maxConnections });
  }

  has(family: Family): boolean {
    return (family === 4 ? this.rules.v4 : this.rules.v6) !== undefined;
  }

  /** Runs the packet through every hook of its path, a trip through the shadow connection table at each; stops where it would die. */
  fate(f: Frame, planned: HookStep[], replan?: Replan): Outcome {
    const rs = f.family === 4 ? this.rules.v4 : this.rules.v6;
    if (!rs) return { fate: { verdict: 'accept' }, state: 'UNTRACKED' };
    let data = f.l3;
    let mark = 0;
    let decidedAccept: Fate | undefined;
    let steps = planned;
    let state: string | undefined;
    let nat: NatSeen | undefined;
    let rerouted: PathKind | undefined;
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i]!;
      const incoming = step.hook === 'PREROUTING' || step.hook === 'INPUT' || step.hook === 'FORWARD';
      const meta: PacketMeta = { hook: step.hook, mark, pktType: f.pktType };
      if (step.inIface !== undefined) meta.inIface = step.inIface;
      if (step.outIface !== undefined) meta.outIface = step.outIface;
      if (incoming && f.srcMac) meta.srcMac = f.srcMac;
      const trip = this.conntrack.start(data, f.family, step.hook);
      state ??= trip.c.state;
      if (trip.c.dropped) {
        this.conntrack.finish(trip, step.hook, false, undefined, data, f.family);
        return { fate: { verdict: 'drop', hook: step.hook, note: 'shadow connection table full (the daemon drops it)' }, state };
      }
      const d = this.engine.decide({ family: f.family, data, length: f.l3Length, meta, ct: trip.conn }, { trace: true });
      mark = d.mark;
      const out = d.payload ?? data;
      let last: TraceStep | undefined;
      let natRule: TraceStep | undefined;
      for (const s of d.path ?? []) {
        if (TERMINAL.has(s.result)) last = s;
        if (s.table === 'nat' && s.result === 'accept') natRule = s;
      }
      const looped = step.hook === 'POSTROUTING' && step.outIface === 'lo';
      const end = this.conntrack.finish(trip, step.hook, d.verdict !== 'drop', d.ct, out, f.family, looped);
      if (d.verdict !== 'accept') {
        const verdict: Verdict = d.verdict === 'queue' ? 'queue' : last?.result === 'reject' ? 'reject' : 'drop';
        const fate: Fate = { verdict, hook: step.hook };
        if (last) fate.by = ruleRef(rs, last);
        return withExtras({ fate, state }, nat, rerouted);
      }
      if (!end.ok) {
        const fate: Fate = { verdict: 'drop', hook: step.hook, note: end.reason ?? 'refused by the connection table' };
        return withExtras({ fate, state }, nat, rerouted);
      }
      if (d.ct?.nat !== undefined && d.ct.nat.length > 0) {
        const binding = this.conntrack.binding(trip);
        if (binding) nat = { binding, by: [...(nat?.by ?? []), ...(natRule ? [ruleRef(rs, natRule)] : [])] };
      }
      const next = end.translated ?? out;
      // Routing follows PREROUTING: a new destination (DNAT, or a reply of a SNATed connection) may take another path.
      if (step.hook === 'PREROUTING' && replan && i === 0 && end.translated !== undefined && !sameDst(data, next, f.family)) {
        const rest = replan(next);
        if (rest) {
          steps = [step, ...rest.steps];
          rerouted = rest.kind;
        }
      }
      data = next;
      // The accepting decision worth naming is the filtering hook's (filter table), else the last one seen.
      if (last && (decidedAccept === undefined || last.table === 'filter')) {
        decidedAccept = { verdict: 'accept', hook: step.hook, by: ruleRef(rs, last) };
      }
    }
    return withExtras({ fate: decidedAccept ?? { verdict: 'accept' }, state: state ?? 'UNTRACKED' }, nat, rerouted);
  }
}

function withExtras(o: Outcome, nat: NatSeen | undefined, rerouted: PathKind | undefined): Outcome {
  if (nat) o.nat = nat;
  if (rerouted) o.rerouted = rerouted;
  return o;
}

function invert(t: CtTuple): CtTuple {
  return { family: t.family, src: t.dst, dst: t.src, proto: t.proto, sport: t.dport, dport: t.sport, zone: t.zone };
}

function tupleKey(t: CtTuple): string {
  return [t.family, t.proto, formatIpAddr(parseIpAddr(t.src, t.family) ?? new Uint8Array(0)), t.sport, formatIpAddr(parseIpAddr(t.dst, t.family) ?? new Uint8Array(0)), t.dport].join('|');
}

function sameDst(a: Uint8Array, b: Uint8Array, family: Family): boolean {
  const [off, len] = family === 4 ? [16, 4] : [24, 16];
  for (let i = off; i < off + len; i++) if (a[i] !== b[i]) return false;
  return true;
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
    natOverflow: 0,
    unNatted: 0,
    states: new Map(),
  };
  /** Flows the candidate would drop, reject or queue elsewhere. */
  readonly flows = new Map<string, FlowEntry>();
  /** Flows whose fate differs between candidate and --against. */
  readonly diff = new Map<string, FlowEntry>();
  /** NAT the candidate would apply to new connections. */
  readonly nat = new Map<string, NatEntry>();
  /**
   * A captured copy leaving the host is already translated by the host's NAT, but the hooks saw it as it arrived.
   * Each NAT binding the shadow makes registers both directions' wire forms (after translation) with the form they
   * had before it, so such a copy is evaluated as the packet that came in. Bounded: cleared when full.
   */
  private readonly natWire = new Map<string, CtTuple>();
  private readonly natWireLimit: number;
  readonly candidate: Evaluator;
  readonly against?: Evaluator;
  private readonly captured = new Set<string>();
  private readonly maxFlows: number;
  /** The shadow clock (ms): capture timestamps when frames carry them, else opts.now. */
  private clock = 0;
  private firstTime?: number;
  private readonly liveNow: () => number;

  constructor(private readonly opts: ShadowOptions) {
    const now = (): number => this.clock;
    this.candidate = new Evaluator(opts.candidate, opts, now);
    if (opts.against) this.against = new Evaluator(opts.against, opts, now);
    this.maxFlows = opts.maxFlows ?? 10_000;
    this.liveNow = opts.now ?? (() => performance.now());
    this.natWireLimit = 2 * (opts.maxConnections ?? 65_536);
  }

  private learnNat(n: NatSeen | undefined): void {
    if (!n || !PORT_PROTOCOLS.has(n.binding.orig.proto)) return;
    const { orig, translated } = n.binding;
    const reply = invert(translated);
    if (this.natWire.size + 2 > this.natWireLimit) this.natWire.clear();
    // The original direction leaves as `translated`; the reply leaves as the inverse of the original tuple.
    this.natWire.set(tupleKey(translated), orig);
    this.natWire.set(tupleKey(invert(orig)), reply);
  }

  /** The packet as it arrived, when `l3` is a copy leaving after a NAT binding the shadow knows; else undefined. */
  private unNat(f: Frame): Frame | undefined {
    const p = parsePacket(f.l3, f.family, f.l3Length);
    if (!PORT_PROTOCOLS.has(p.protocol) || p.sport < 0) return undefined;
    const key = [f.family, p.protocol, formatIpAddr(p.src), p.sport, formatIpAddr(p.dst), p.dport].join('|');
    const before = this.natWire.get(key);
    if (!before) return undefined;
    const src = parseIpAddr(before.src, f.family);
    const dst = parseIpAddr(before.dst, f.family);
    if (!src || !dst) return undefined;
    const q = parsePacket(f.l3.slice(), f.family, f.l3Length);
    setAddress(q, 'src', src);
    setAddress(q, 'dst', dst);
    setPort(q, 'src', before.sport);
    setPort(q, 'dst', before.dport);
    return { ...f, l3: q.data };
  }

  private tick(time: number | undefined): void {
    let t: number;
    if (time !== undefined) {
      this.firstTime ??= time;
      t = (time - this.firstTime) * 1000;
    } else {
      t = this.liveNow();
    }
    // Timers only move forward: a capture file's records may be slightly out of order across interfaces.
    if (t > this.clock) this.clock = t;
    this.candidate.conntrack.setNow(this.clock);
    this.against?.conntrack.setNow(this.clock);
  }

  /** Declares an interface as captured (a forwarded packet is then evaluated where it enters, not where it leaves). */
  capture(iface: string): void {
    this.captured.add(iface);
  }

  process(c: CapturedFrame): void {
    this.stats.frames++;
    this.tick(c.time);
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
    if (direction === 'out' && this.natWire.size > 0) {
      const arrived = this.unNat(f);
      if (arrived) {
        f = arrived;
        this.stats.unNatted++;
      }
    }
    const pkt = parsePacket(f.l3, f.family, f.l3Length);
    const side: CaptureSide = { iface: c.iface, direction, captured: this.captured };
    const plan = planHooks({ family: f.family, src: pkt.src, dst: pkt.dst }, side, this.opts.host, this.opts.routes);
    if (plan.kind === 'skip') {
      bump(this.stats.skipped, plan.reason);
      return;
    }
    this.stats.evaluated++;
    this.stats.bytes += pkt.length;
    if (f.l3.length < f.l3Length) this.stats.truncated++;

    // A received packet is re-planned after PREROUTING when its destination was translated (routing sees the new one).
    const replan: Replan | undefined =
      plan.kind === 'local-in' || plan.kind === 'forward' || plan.kind === 'unroutable'
        ? (l3: Uint8Array) => {
            const q = parsePacket(l3, f.family);
            const p2 = planHooks({ family: f.family, src: q.src, dst: q.dst }, { ...side, direction: 'in' }, this.opts.host, this.opts.routes);
            return p2.kind === 'skip' ? undefined : { kind: p2.kind, steps: p2.steps.slice(1) };
          }
        : undefined;
    const outcome = this.candidate.fate(f, plan.steps, replan);
    const fate = outcome.fate;
    // The path the candidate's NAT gave it: a DNATed packet for a local address is forwarded, not delivered.
    bump(this.stats.paths, outcome.rerouted ? `${outcome.rerouted} (rerouted by NAT)` : plan.kind);
    this.stats.verdicts[fate.verdict]++;
    bump(this.stats.states, outcome.state);
    const key: FlowKey = {
      family: f.family,
      proto: protocolName(pkt.protocol),
      src: formatIpAddr(pkt.src),
      dst: formatIpAddr(pkt.dst),
      dport: pkt.dport >= 0 ? pkt.dport : -1,
    };
    if (fate.verdict !== 'accept') this.record(this.flows, key, pkt.length, fate, undefined, 'flowOverflow');
    if (outcome.nat) this.recordNat(f.family, outcome.nat, fate.verdict);
    this.learnNat(outcome.nat);
    // A family the --against side has no ruleset for is not compared (it would differ everywhere, meaning nothing).
    if (this.against?.has(f.family)) {
      const againstOutcome = this.against.fate(f, plan.steps, replan);
      const other = againstOutcome.fate;
      if (!outcome.nat) this.learnNat(againstOutcome.nat);
      if (!sameFate(fate, other)) {
        this.stats.differing++;
        this.record(this.diff, key, pkt.length, fate, other, 'diffOverflow');
      }
    }
  }

  private recordNat(family: Family, n: NatSeen, verdict: Verdict): void {
    const o = n.binding.orig;
    const t = n.binding.translated;
    const ports = PORT_PROTOCOLS.has(o.proto);
    const e: Omit<NatEntry, 'connections'> = {
      family,
      proto: protocolName(o.proto),
      src: o.src,
      dst: o.dst,
      dport: ports ? o.dport : -1,
      toSrc: t.src,
      toDst: t.dst,
      toDport: ports ? t.dport : -1,
      by: n.by,
      verdict,
    };
    // The source port is left out of the key: a client's connections differ only there and belong together.
    const id = [e.family, e.proto, e.src, e.dst, e.dport, e.toSrc, e.toDst, e.toDport, verdict, ...e.by.map((r) => refText(r))].join('|');
    const have = this.nat.get(id);
    if (have) {
      have.connections++;
      return;
    }
    if (this.nat.size >= this.maxFlows) {
      this.stats.natOverflow++;
      return;
    }
    this.nat.set(id, { ...e, connections: 1 });
  }

  private record(
    table: Map<string, FlowEntry>,
    k: FlowKey,
    bytes: number,
    fate: Fate,
    other: Fate | undefined,
    overflow: 'flowOverflow' | 'diffOverflow',
  ): void {
    const id = [k.family, k.proto, k.src, k.dst, k.dport, fate.verdict, refText(fate.by, fate.note), other ? `${other.verdict} ${refText(other.by, other.note)}` : ''].join('|');
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
