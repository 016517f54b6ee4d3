// The contract every match and target module implements (one module each, DESIGN.md "Rooms").
// A module parses its own options, validates them, prints them as iptables-save does, and says what they mean for a
// packet. The core parser owns the rest of the line (-s -d -i -o -p -f -m -j -g and `!`).
import type { Family, Hook, SourceLocation, TableName } from '../rules/model';

/** One option as written on a rule line, already split into its arguments. */
export interface OptionUse {
  name: string; // without the leading dashes, canonical (aliases resolved)
  args: string[]; // as many as OptionSpec.args says
  negated: boolean; // `! --opt x`
  loc: SourceLocation; // of the option word
  argLocs: SourceLocation[];
}

export interface OptionSpec {
  name: string; // 'dport'
  aliases?: string[]; // 'destination-port'
  args: 0 | 1 | 2;
  /** Whether `!` may precede it; the parser refuses `!` otherwise, as iptables does. */
  invertible?: boolean;
  /** May be given more than once on one rule (most may not). */
  repeatable?: boolean;
}

/** What a module knows about the rule it sits in while parsing and validating. */
export interface ParseContext {
  family: Family;
  table: TableName;
  chain: string;
  /** Protocol from -p (number, 0 = all), absent when -p was not given; and whether it was negated. */
  proto?: { value: number; negated: boolean };
  /** Where the `-m name` / `-j NAME` word stood. */
  loc: SourceLocation;
}

/** Thrown by parse/validate; the parser adds nothing but the file name it already put in `loc`. */
export class RuleError extends Error {
  constructor(
    message: string,
    readonly loc: SourceLocation,
  ) {
    super(`${loc.file}:${loc.line}:${loc.column}: ${message}`);
    this.name = 'RuleError';
  }
  /** The message without the location prefix. */
  get reason(): string {
    return this.message.slice(this.message.indexOf(': ') + 2);
  }
}

interface ExtensionBase<O> {
  name: string;
  /** Restrict to one family (hl, rt, icmp6, frag, ipv6header: 6; ttl, icmp: 4). Absent: both. */
  family?: Family;
  options: readonly OptionSpec[];
  /** Build the options object; throw RuleError (at the offending option's loc) for anything iptables refuses. */
  parse(opts: OptionUse[], ctx: ParseContext): O;
  /**
   * The canonical option text iptables-save prints after `-m name` / `-j NAME` (without that prefix), or '' when
   * nothing follows. Words are separated by single spaces; quoting is done with `quote()` from rules/quote.
   */
  format(opts: O, family: Family): string;
  /**
   * Why nfqwall cannot honour this extension from userspace (TPROXY, ipvs, ...). A ruleset using it parses and prints,
   * but loading it for enforcement fails with this reason. Absent when the engine implements it.
   */
  unsupported?: string;
  /**
   * Flow cache (docs/flow-cache.md): true when, with these options, for a fixed connection, hook, direction and cache
   * key (ctStatus, input mark, connection mark, zone, interfaces), every packet gets the same result and the module has
   * no effect but counters and the packet mark. Absent: not stable (a rule using it keeps the packets it sees out of
   * the cache). When unsure, leave it out: a miss costs speed, a wrong hit correctness.
   */
  flowStable?(opts: O): boolean;
}

export interface MatchExtension<O = unknown> extends ExtensionBase<O> {
  kind: 'match';
  /**
   * True for tcp/udp/icmp/icmp6/sctp/udplite: `-p NAME` followed by one of its options loads it implicitly, and the
   * rule requires `-p NAME` (not negated) to be given.
   */
  protocolMatch?: number;
  /**
   * The hooks the kernel lets this match run at (its xt_match .hooks), or undefined for anywhere. Validation checks it
   * for every hook a chain is reached from, user chains included, as nft_compat's validate does. Restrictions that the
   * kernel makes in checkentry from par->hook_mask (addrtype --limit-iface-*, policy --dir, devgroup, physdev --out)
   * only see built-in chains under iptables-nft (hook_mask is 0 in user chains): modules check those in parse().
   */
  allowedHooks?(opts: O): readonly Hook[] | undefined;
  /** Like `unsupported`, for forms that only some option values need (set --bytes-gt, bpf --object-pinned). */
  unsupportedFor?(opts: O): string | undefined;
  /** Per-rule state that lives as long as the rule (statistic nth counter, limit bucket, recent lists are global). */
  createState?(opts: O): unknown;
  /** Whether a use with these options keeps the state createState makes; absent: every use does. */
  keepsState?(opts: O): boolean;
  /** Whether the packet matches. Negation of individual options is the module's business. */
  match?(opts: O, ctx: MatchContext): boolean;
}

export type TargetHookRule = {
  tables?: readonly TableName[];
  /** Hooks whose built-in chains (and user chains reached only from them) may use the target. */
  hooks?: readonly Hook[];
};

export interface TargetExtension<O = unknown> extends ExtensionBase<O> {
  kind: 'target';
  /** Where the kernel allows it (checked by validation, as iptables-restore does). Absent: anywhere. */
  allowed?: TargetHookRule;
  /**
   * Where the kernel allows these particular options, when that is narrower than `allowed` (TCPMSS
   * --clamp-mss-to-pmtu: FORWARD, OUTPUT, POSTROUTING only). The kernel decides this in checkentry from
   * par->hook_mask, which iptables-nft sets for built-in chains only: validation checks it there, not in user chains.
   */
  allowedFor?(opts: O): TargetHookRule | undefined;
  /** Like `unsupported`, for forms that only some option values need (TCPMSS --clamp-mss-to-pmtu needs the route MTU). */
  unsupportedFor?(opts: O): string | undefined;
  /** Whether it ends the chain walk (ACCEPT, DROP, REJECT, DNAT...) or continues (MARK, LOG, ...). */
  terminal: boolean;
  apply?(opts: O, ctx: TargetContext): TargetResult;
}

// ---- evaluation contracts (used by src/engine; implemented by the modules' match/apply) ----

/** The headers of a packet as the engine parsed them. Offsets index `data`. Fields absent where not present. */
export interface ParsedPacket {
  family: Family;
  /** The L3 packet (IPv4 or IPv6 header first). Targets that rewrite use the helpers in engine/rewrite. */
  data: Uint8Array;
  /** Length on the wire (the IP total length; may exceed data.length when the queue truncated the copy). */
  length: number;
  src: Uint8Array;
  dst: Uint8Array;
  /** Upper-layer protocol: after IPv6 extension headers. */
  protocol: number;
  ttl: number; // TTL or hop limit
  tos: number; // IPv4 TOS byte or IPv6 traffic class
  ipId: number; // IPv4 identification; 0 for IPv6
  /** IPv4 fragment offset (in bytes) or that of the IPv6 fragment header; 0 when not a fragment. */
  fragOffset: number;
  moreFragments: boolean;
  dontFragment: boolean;
  /** IPv6 extension headers in order (next-header values), for ipv6header/rt/frag. */
  extHeaders: { type: number; offset: number; length: number }[];
  l3HeaderLength: number; // including IPv6 extension headers
  /** Offset of the transport header, or -1 (later fragment, or truncated). */
  l4Offset: number;
  sport: number; // -1 when not tcp/udp/sctp/udplite/dccp or no header
  dport: number;
  tcpFlags: number; // -1 when not TCP
  icmpType: number; // -1 when not ICMP / ICMPv6
  icmpCode: number;
  /** Set when the headers the kernel would read are cut short (the kernel's hotdrop cases). */
  truncated: boolean;
}

/** What the queue reported about the packet besides its bytes. */
export interface PacketMeta {
  hook: Hook;
  inIface?: string;
  outIface?: string;
  physIn?: string;
  physOut?: string;
  /** The skb mark; MARK writes it. */
  mark: number;
  uid?: number;
  gid?: number;
  srcMac?: Uint8Array;
  pktType: 'unicast' | 'broadcast' | 'multicast';
  /**
   * The queue said the transport checksum is not computed yet (NFQA_SKB_CSUMNOTREADY: offloaded, CHECKSUM_PARTIAL).
   * The bytes then carry a partial checksum that is not wrong; the kernel does not verify it, nor must we.
   */
  checksumNotReady?: boolean;
}

export type CtState = 'INVALID' | 'NEW' | 'ESTABLISHED' | 'RELATED' | 'UNTRACKED';

export interface ConnTuple {
  src: Uint8Array;
  dst: Uint8Array;
  protocol: number;
  sport: number;
  dport: number;
}

/** The connection the packet belongs to, as the connection table knows it. */
export interface ConnInfo {
  state: CtState;
  /** IPS_* status bits (SEEN_REPLY 2, ASSURED 4, CONFIRMED 8, EXPECTED 1, ...). */
  status: number;
  /** CONNMARK writes it. */
  mark: number;
  direction: 'ORIGINAL' | 'REPLY';
  orig: ConnTuple;
  reply: ConnTuple;
  expiresSeconds: number;
  zone: number;
}

/** The host's view the engine mirrors (addresses and routes of the namespace it runs in). */
export interface HostView {
  /** RTN_* type of an address as `ip route get type` would give (addrtype). iface limits to that device's table. */
  addressType(family: Family, addr: Uint8Array, iface?: string): AddrType;
  /**
   * The source address the host would give a packet it sends to `dst` (route lookup), for ICMP errors about packets
   * not addressed to the host, as the kernel's icmp_send picks it. Undefined when there is no route.
   */
  sourceFor?(family: Family, dst: Uint8Array): Uint8Array | undefined;
  /**
   * H16: the interface's primary address (the first one `ip addr` lists, as MASQUERADE's inet_select_addr and
   * REDIRECT's ifa_local pick), or undefined when it has none of that family.
   */
  primaryAddress?(family: Family, iface: string): Uint8Array | undefined;
}
export type AddrType =
  | 'UNSPEC'
  | 'UNICAST'
  | 'LOCAL'
  | 'BROADCAST'
  | 'ANYCAST'
  | 'MULTICAST'
  | 'BLACKHOLE'
  | 'UNREACHABLE'
  | 'PROHIBIT'
  | 'THROW'
  | 'NAT'
  | 'XRESOLVE';

/** Named sets loaded from `ipset save` files. */
export interface SetView {
  /** Undefined when the set does not exist. `dims` are 'src'|'dst' per dimension of the set. */
  test(name: string, pkt: ParsedPacket, meta: PacketMeta, dims: ('src' | 'dst')[]): boolean | undefined;
}

export interface MatchContext {
  pkt: ParsedPacket;
  meta: PacketMeta;
  table: TableName;
  chain: string;
  ct?: ConnInfo;
  host: HostView;
  sets: SetView;
  /** Monotonic milliseconds, for limit/hashlimit/recent. */
  now: number;
  /** Wall clock, for the time match. */
  wallclock: Date;
  /** The rule's own state, from createState. */
  state: unknown;
  /** 31 random bits, as prandom_u32() & 0x7fffffff; injectable so tests are reproducible. */
  random31(): number;
  /**
   * A match sets this (and returns false) where the kernel's sets par->hotdrop: the packet is dropped at once, the
   * rule is not counted (tcp/udp/icmp on a header cut short, tcp on a fragment at offset 8). The engine clears it.
   */
  hotdrop?: boolean;
}

export interface LogRecord {
  kind: 'LOG' | 'NFLOG';
  /** The kernel's log line format (REFERENCE.md 3.5), prefix first. */
  line: string;
  level?: number;
  group?: number;
}

export interface TargetContext extends MatchContext {
  /** Log lines produced by LOG/NFLOG. */
  logs: LogRecord[];
  /** Set by targets that changed `pkt.data` so the engine re-parses and fixes nothing twice. */
  rewritten: boolean;
  /** Packets to send back (REJECT's ICMP error or TCP reset), as L3 bytes. */
  replies: Uint8Array[];
  /**
   * H16: a NAT target's binding request for the connection's first packet (it then returns 'accept': the kernel's
   * NAT targets give NF_ACCEPT and the nat table stops). The connection table binds it after the verdict.
   */
  nat?: NatRequest;
  /** H16: CT --notrack / NOTRACK ran (raw): the packet is UNTRACKED from here on and creates no connection. */
  notrack?: boolean;
}

/** H16: struct nf_nat_range2 as a NAT target asks for it, addresses resolved (docs/conntrack-table.md). */
export interface NatRequest {
  manip: 'SRC' | 'DST';
  /** NF_NAT_RANGE_MAP_IPS when given; with netmap, the first and last address of the new prefix. */
  minAddr?: Uint8Array;
  maxAddr?: Uint8Array;
  minPort?: number;
  maxPort?: number;
  /** NF_NAT_RANGE_PROTO_OFFSET (/baseport). */
  basePort?: number;
  random?: boolean;
  randomFully?: boolean;
  persistent?: boolean;
  netmap?: boolean;
  /** MASQUERADE: the binding belongs to the outgoing interface (flushed when it goes down). */
  masquerade?: boolean;
}

export type TargetResult =
  | { verdict: 'continue' }
  | { verdict: 'accept' }
  | { verdict: 'drop' }
  | { verdict: 'return' }
  /** REJECT: the packet is dropped and `ctx.replies` holds what to send. */
  | { verdict: 'reject' }
  /** NFQUEUE to another queue. */
  | { verdict: 'queue'; queue: number; bypass: boolean };

export type Extension = MatchExtension | TargetExtension;
