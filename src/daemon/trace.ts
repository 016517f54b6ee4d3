// `nfqwall trace`: the daemon side. A TraceHub holds the subscribers of the control socket's streaming `trace` command;
// the processor asks it (only while `active`, one boolean per packet otherwise) whether a packet is to be decided with
// `{ trace: true }`, then hands it the Decision.path, which the hub renders in the style of `nft monitor trace`
// (REFERENCE.md 3.4) and sends to every subscriber that wants it, each rate-limited on its own.
//
// Which packets are traced: those matching a subscriber's filter, and those a `-j TRACE` rule marked (a subscriber
// without a filter sees only these, as `nft monitor trace` shows only packets with nftrace set). The kernel sets
// nf_trace on the skb when TRACE runs and traces from that point on, through later hooks too. Evaluation here is per
// hook and a packet has no identity across hooks, so the honest approximation is: a packet whose Decision shows that a
// TRACE rule matched is reported with its whole path at that hook (the steps before the TRACE rule included), and its
// later hooks are not traced unless a filter selects them. To see whether TRACE matched, every packet of a family whose
// ruleset has a TRACE rule is decided with a path while someone traces; nobody tracing costs nothing.
import type { Decision, PacketInput, TraceStep } from '../engine/decision';
import { checkFields, type ControlConnection, type Handler } from './control';
import type { Family, IpNet, Rule, Ruleset } from '../rules/model';
import { formatIpAddr, inNet, parseIpNet } from '../rules/addr';
import { formatRuleSpec } from '../rules/format';
import { protocolName } from '../rules/services';

export interface TraceFilter {
  family?: Family;
  proto?: number;
  src?: IpNet;
  dst?: IpNet;
  sport?: number;
  dport?: number;
  /** Matches the input or the output interface. */
  iface?: string;
}

/** The filter as sent over the control socket (strings and numbers, validated by parseTraceFilter). */
export interface TraceFilterJson {
  family?: number;
  proto?: string | number;
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
  iface?: string;
}

export const TRACE_FILTER_FIELDS = ['family', 'proto', 'src', 'dst', 'sport', 'dport', 'iface'] as const;

const PROTOS: Readonly<Record<string, number>> = {
  icmp: 1, igmp: 2, tcp: 6, udp: 17, dccp: 33, gre: 47, esp: 50, ah: 51, icmpv6: 58, 'ipv6-icmp': 58, sctp: 132,
  udplite: 136,
};

function port(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) {
    throw new Error(`trace filter: "${name}" must be a port number 0-65535`);
  }
  return v;
}

/** Validates a filter from a request; throws with a message naming the bad field. */
export function parseTraceFilter(obj: Readonly<Record<string, unknown>>): TraceFilter {
  const f: TraceFilter = {};
  for (const k of Object.keys(obj)) {
    if (!(TRACE_FILTER_FIELDS as readonly string[]).includes(k)) {
      throw new Error(`trace filter: unknown field "${k}" (known: ${TRACE_FILTER_FIELDS.join(', ')})`);
    }
  }
  const fam = obj['family'];
  if (fam !== undefined) {
    if (fam !== 4 && fam !== 6) throw new Error('trace filter: "family" must be 4 or 6');
    f.family = fam;
  }
  const proto = obj['proto'];
  if (proto !== undefined) {
    if (typeof proto === 'number' && Number.isInteger(proto) && proto >= 0 && proto <= 255) f.proto = proto;
    else if (typeof proto === 'string' && /^\d+$/.test(proto) && Number(proto) <= 255) f.proto = Number(proto);
    else if (typeof proto === 'string' && PROTOS[proto.toLowerCase()] !== undefined) f.proto = PROTOS[proto.toLowerCase()];
    else throw new Error(`trace filter: unknown protocol ${JSON.stringify(proto)}`);
  }
  for (const k of ['src', 'dst'] as const) {
    const v = obj[k];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw new Error(`trace filter: "${k}" must be an address or network`);
    const fam6 = v.includes(':');
    const family: Family = fam6 ? 6 : 4;
    if (f.family !== undefined && f.family !== family) {
      throw new Error(`trace filter: "${k}" ${v} is not an IPv${f.family} address`);
    }
    try {
      f[k] = parseIpNet(v, family);
    } catch (err) {
      throw new Error(`trace filter: "${k}": ${err instanceof Error ? err.message : String(err)}`);
    }
    f.family = family;
  }
  if (obj['sport'] !== undefined) f.sport = port(obj['sport'], 'sport');
  if (obj['dport'] !== undefined) f.dport = port(obj['dport'], 'dport');
  const iface = obj['iface'];
  if (iface !== undefined) {
    if (typeof iface !== 'string' || iface === '' || iface.length > 15 || /[\s/]/.test(iface)) {
      throw new Error('trace filter: "iface" must be an interface name');
    }
    f.iface = iface;
  }
  return f;
}

export function filterIsEmpty(f: TraceFilter): boolean {
  return Object.keys(f).length === 0;
}

/** The L3/L4 header fields a filter and the packet line need, read without copying. */
export interface PacketSummary {
  family: Family;
  proto: number;
  src: Uint8Array;
  dst: Uint8Array;
  /** Present for TCP, UDP, UDP-Lite, SCTP and DCCP when the header is there (and not a later fragment). */
  sport?: number;
  dport?: number;
  /** ICMP / ICMPv6 type and code. */
  icmpType?: number;
  icmpCode?: number;
  length: number;
}

const PORT_PROTOS = new Set([6, 17, 33, 132, 136]);
// IPv6 extension headers ipv6_skip_exthdr walks.
const V6_EXT = new Set([0, 43, 60]);

export function summarize(data: Uint8Array, family: Family): PacketSummary | undefined {
  let proto: number;
  let l4: number;
  let src: Uint8Array;
  let dst: Uint8Array;
  let later = false;
  if (family === 4) {
    if (data.length < 20) return undefined;
    const ihl = (data[0]! & 0x0f) * 4;
    proto = data[9]!;
    src = data.subarray(12, 16);
    dst = data.subarray(16, 20);
    l4 = ihl;
    later = (((data[6]! & 0x1f) << 8) | data[7]!) !== 0;
  } else {
    if (data.length < 40) return undefined;
    proto = data[6]!;
    src = data.subarray(8, 24);
    dst = data.subarray(24, 40);
    l4 = 40;
    for (let hops = 0; hops < 8; hops++) {
      if (V6_EXT.has(proto)) {
        if (data.length < l4 + 2) break;
        const next = data[l4]!;
        l4 += (data[l4 + 1]! + 1) * 8;
        proto = next;
      } else if (proto === 44) {
        if (data.length < l4 + 8) break;
        later = (((data[l4 + 2]! << 8) | data[l4 + 3]!) & 0xfff8) !== 0;
        proto = data[l4]!;
        l4 += 8;
      } else break;
    }
  }
  const s: PacketSummary = { family, proto, src, dst, length: data.length };
  if (!later && PORT_PROTOS.has(proto) && data.length >= l4 + 4) {
    s.sport = (data[l4]! << 8) | data[l4 + 1]!;
    s.dport = (data[l4 + 2]! << 8) | data[l4 + 3]!;
  } else if (!later && (proto === 1 || proto === 58) && data.length >= l4 + 2) {
    s.icmpType = data[l4]!;
    s.icmpCode = data[l4 + 1]!;
  }
  return s;
}

export function filterMatches(f: TraceFilter, input: PacketInput): boolean {
  if (f.family !== undefined && f.family !== input.family) return false;
  if (f.iface !== undefined && input.meta.inIface !== f.iface && input.meta.outIface !== f.iface) return false;
  if (f.proto === undefined && f.src === undefined && f.dst === undefined && f.sport === undefined && f.dport === undefined) {
    return true;
  }
  const s = summarize(input.data, input.family);
  if (s === undefined) return false;
  if (f.proto !== undefined && s.proto !== f.proto) return false;
  if (f.src !== undefined && !inNet(s.src, f.src)) return false;
  if (f.dst !== undefined && !inNet(s.dst, f.dst)) return false;
  if (f.sport !== undefined && s.sport !== f.sport) return false;
  if (f.dport !== undefined && s.dport !== f.dport) return false;
  return true;
}

/** nft's packet description: `iif "eth0" oif "eth1" ip saddr A ip daddr B udp sport 1 dport 2`. */
export function formatPacket(input: PacketInput): string {
  const parts: string[] = [];
  if (input.meta.inIface !== undefined) parts.push(`iif "${input.meta.inIface}"`);
  if (input.meta.outIface !== undefined) parts.push(`oif "${input.meta.outIface}"`);
  if (input.meta.mark !== 0) parts.push(`meta mark 0x${(input.meta.mark >>> 0).toString(16).padStart(8, '0')}`);
  const s = summarize(input.data, input.family);
  if (s === undefined) {
    parts.push(`truncated ${input.data.length} bytes`);
    return parts.join(' ');
  }
  const ip = s.family === 4 ? 'ip' : 'ip6';
  parts.push(`${ip} saddr ${formatIpAddr(s.src)} ${ip} daddr ${formatIpAddr(s.dst)}`);
  const name = protocolName(s.proto);
  if (s.sport !== undefined && s.dport !== undefined) parts.push(`${name} sport ${s.sport} dport ${s.dport}`);
  else if (s.icmpType !== undefined) parts.push(`${s.proto === 58 ? 'icmpv6' : 'icmp'} type ${s.icmpType} code ${s.icmpCode ?? 0}`);
  else parts.push(`${ip} ${s.family === 4 ? 'protocol' : 'nexthdr'} ${name}`);
  return parts.join(' ');
}

function ruleAt(rules: Ruleset | undefined, step: TraceStep): Rule | undefined {
  if (step.rule <= 0) return undefined;
  return rules?.tables.get(step.table)?.chains.get(step.chain)?.rules[step.rule - 1];
}

/** What `(verdict ...)` says for a rule step. */
function verdictText(step: TraceStep, rule: Rule | undefined): string {
  switch (step.result) {
    case 'match':
    case 'continue':
      return 'continue';
    case 'jump':
    case 'goto':
      return rule?.target?.kind === 'chain' ? `${step.result} ${rule.target.chain}` : step.result;
    default:
      return step.result;
  }
}

/**
 * The lines of one traced packet at one hook: a `packet:` line as each table is entered, then one line per step.
 * `rules` must be the ruleset the Decision came from (the hub renders right after the decision, before any reload).
 */
export function formatTrace(id: string, input: PacketInput, path: readonly TraceStep[], rules: Ruleset | undefined): string[] {
  const fam = input.family === 4 ? 'ip' : 'ip6';
  const lines: string[] = [];
  let table: string | undefined;
  const packet = formatPacket(input);
  for (const step of path) {
    const head = `trace id ${id} ${fam} ${step.table} ${step.chain}`;
    if (step.table !== table) {
      table = step.table;
      lines.push(`${head} packet: ${packet}`);
    }
    if (step.result === 'policy') {
      const policy = rules?.tables.get(step.table)?.chains.get(step.chain)?.policy ?? 'ACCEPT';
      lines.push(`${head} policy ${policy.toLowerCase()}`);
    } else if (step.rule === 0) {
      lines.push(`${head} ${step.result === 'return' ? 'return' : `verdict ${step.result}`}`);
    } else {
      const rule = ruleAt(rules, step);
      const text = rule ? `-A ${step.chain} ${formatRuleSpec(rule, input.family)}`.trimEnd() : `#${step.rule}`;
      lines.push(`${head} rule ${text} (verdict ${verdictText(step, rule)})`);
    }
  }
  return lines;
}

/** One event on the wire: a traced packet at one hook. */
export interface TraceEvent {
  id: string;
  family: Family;
  hook: string;
  verdict: string;
  /** True when a TRACE rule marked the packet (otherwise a filter selected it). */
  marked: boolean;
  lines: string[];
}

export interface TraceSink {
  /** Writes one line (with its newline); returns false when the client is not keeping up. */
  write(line: string): boolean;
  /** Ends the stream from the daemon's side (it is stopping). */
  close?(): void;
}

export const DEFAULT_TRACE_RATE = 1000;

interface Subscriber {
  filter: TraceFilter;
  all: boolean;
  sink: TraceSink;
  windowStart: number;
  inWindow: number;
  suppressed: number;
  rate: number;
}

export interface TraceStats {
  subscribers: number;
  /** Packets decided with a path because someone traced. */
  traced: number;
  /** Events sent, and events the per-subscriber rate or a slow client cost. */
  events: number;
  suppressed: number;
}

function isTraceRule(r: Rule): boolean {
  return r.target?.kind === 'extension' && r.target.ext.name === 'TRACE';
}

export class TraceHub {
  /** The processor's per-batch check: false whenever nobody traces. */
  active = false;
  /** Flow cache: told when tracing starts and stops (the daemon turns the cache off meanwhile). */
  onActiveChange: ((active: boolean) => void) | undefined;

  private setActive(active: boolean): void {
    if (active === this.active) return;
    this.active = active;
    this.onActiveChange?.(active);
  }
  private readonly subs = new Set<Subscriber>();
  private readonly traceRules = new WeakMap<Ruleset, Set<string>>();
  private seq = 0;
  private readonly salt = (Math.random() * 0x100000000) >>> 0;
  readonly stats: TraceStats = { subscribers: 0, traced: 0, events: 0, suppressed: 0 };

  /** `rules(family)` is the ruleset in force (the engine's). */
  constructor(
    private readonly rules: (family: Family) => Ruleset | undefined,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Adds a subscriber; returns the function that removes it. */
  subscribe(filter: TraceFilter, sink: TraceSink, rate = DEFAULT_TRACE_RATE): () => void {
    const sub: Subscriber = { filter, all: filterIsEmpty(filter), sink, windowStart: this.now(), inWindow: 0, suppressed: 0, rate };
    this.subs.add(sub);
    this.stats.subscribers = this.subs.size;
    this.setActive(true);
    return () => {
      this.subs.delete(sub);
      this.stats.subscribers = this.subs.size;
      this.setActive(this.subs.size > 0);
    };
  }

  private traceRuleIds(rules: Ruleset | undefined): Set<string> | undefined {
    if (rules === undefined) return undefined;
    let ids = this.traceRules.get(rules);
    if (ids === undefined) {
      ids = new Set();
      for (const [, t] of rules.tables) for (const [, c] of t.chains) for (const r of c.rules) if (isTraceRule(r)) ids.add(r.id);
      this.traceRules.set(rules, ids);
    }
    return ids;
  }

  /** Whether this packet is to be decided with a path. Call only while `active`. */
  wants(input: PacketInput): boolean {
    const ids = this.traceRuleIds(this.rules(input.family));
    if (ids !== undefined && ids.size > 0) return true;
    for (const s of this.subs) if (!s.all && filterMatches(s.filter, input)) return true;
    return false;
  }

  /** Sends a decided packet to the subscribers that want it. Never throws (the packet's verdict must not suffer). */
  publish(input: PacketInput, d: Decision): void {
    try {
      const path = d.path;
      if (path === undefined) return;
      this.stats.traced++;
      const rules = this.rules(input.family);
      const ids = this.traceRuleIds(rules);
      const marked = ids !== undefined && ids.size > 0 && path.some((s) => s.ruleId !== undefined && ids.has(s.ruleId));
      let event: string | undefined;
      for (const s of this.subs) {
        if (!(marked && s.all) && (s.all || !filterMatches(s.filter, input))) continue;
        if (event === undefined) {
          const id = ((this.salt + Math.imul(++this.seq, 0x9e3779b1)) >>> 0).toString(16).padStart(8, '0');
          const ev: TraceEvent = {
            id,
            family: input.family,
            hook: d.hook,
            verdict: d.verdict,
            marked,
            lines: formatTrace(id, input, path, rules),
          };
          event = JSON.stringify({ trace: ev }) + '\n';
        }
        this.deliver(s, event);
      }
    } catch {
      // A rendering fault loses one trace event, never a packet.
    }
  }

  private deliver(s: Subscriber, line: string): void {
    const t = this.now();
    if (t - s.windowStart >= 1000) this.flushWindow(s, t);
    if (s.inWindow >= s.rate) {
      s.suppressed++;
      this.stats.suppressed++;
      return;
    }
    s.inWindow++;
    if (s.sink.write(line)) this.stats.events++;
    else {
      s.suppressed++;
      this.stats.suppressed++;
    }
  }

  /** Starts a new rate window; reports what the last one suppressed. */
  private flushWindow(s: Subscriber, t: number): void {
    if (s.suppressed > 0) s.sink.write(JSON.stringify({ suppressed: s.suppressed }) + '\n');
    s.suppressed = 0;
    s.inWindow = 0;
    s.windowStart = t;
  }

  /** Ends every stream (the daemon is stopping); the subscribers go as their sockets close. */
  close(): void {
    for (const s of [...this.subs]) {
      try {
        s.sink.close?.();
      } catch {
        // Already gone.
      }
    }
  }

  /** Reports suppressed counts of windows that ended with no later event (the daemon calls it once a second). */
  tick(): void {
    const t = this.now();
    for (const s of this.subs) if (s.suppressed > 0 && t - s.windowStart >= 1000) this.flushWindow(s, t);
  }
}

/** A client that has this much unread is not keeping up: its events are counted as suppressed instead. */
export const MAX_TRACE_BACKLOG = 1 << 20;

/**
 * The control command `{"cmd":"trace","filter":{...},"rate":N}`: validates the filter, answers `{tracing:true}`, and
 * from then on streams events on the connection until the client closes it (the subscriber goes with the socket).
 */
export function traceHandler(hub: TraceHub): Handler {
  return (req, conn?: ControlConnection) => {
    checkFields(req, ['filter', 'rate']);
    if (conn === undefined) throw new Error('"trace" needs a connection to stream on');
    const raw = req['filter'] ?? {};
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('"filter" must be an object');
    const filter = parseTraceFilter(raw);
    const rateRaw = req['rate'];
    if (rateRaw !== undefined && (typeof rateRaw !== 'number' || !Number.isInteger(rateRaw) || rateRaw < 1 || rateRaw > 100_000)) {
      throw new Error('"rate" must be an integer 1-100000 (events per second)');
    }
    const sock = conn.socket;
    conn.streaming = true;
    const unsubscribe = hub.subscribe(
      filter,
      {
        write: (line) => {
          if (sock.destroyed || !sock.writable || sock.writableLength > MAX_TRACE_BACKLOG) return false;
          sock.write(line);
          return true;
        },
        close: () => {
          sock.end();
          // A client that stopped reading would keep the half-closed socket: drop it a second later.
          setTimeout(() => sock.destroy(), 1000).unref();
        },
      },
      rateRaw ?? DEFAULT_TRACE_RATE,
    );
    sock.once('close', unsubscribe);
    // The client's half-close is its Ctrl-C too.
    sock.once('end', () => sock.end());
    if (sock.destroyed) unsubscribe();
    return { tracing: true, filter: raw };
  };
}
