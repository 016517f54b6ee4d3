// What the engine returns for one packet at one hook (DESIGN.md, Contracts: Decisions).
import type { ConnInfo, LogRecord, NatRequest, PacketMeta } from '../extensions/types';
import type { Counters, Family, Hook, TableName } from '../rules/model';

/** One step of the path a packet took: a rule that matched, or a policy, or a chain entered/left. */
export interface TraceStep {
  table: TableName;
  chain: string;
  /** 1-based rule number in the chain; 0 for the chain's policy or its end. */
  rule: number;
  ruleId?: string;
  /** 'match' (a rule matched and its target ran), 'jump', 'goto', 'return', 'policy', or the verdict it gave. */
  result: 'match' | 'jump' | 'goto' | 'return' | 'policy' | 'accept' | 'drop' | 'reject' | 'queue' | 'continue';
}

export interface PacketInput {
  family: Family;
  /** The L3 packet as queued. The engine copies before rewriting. */
  data: Uint8Array;
  /** Length on the wire, when the copy was truncated. */
  length?: number;
  meta: PacketMeta;
  /** The connection the packet belongs to, when the connection table knows it (conntrack/connmark/state matches). */
  ct?: ConnInfo;
}

export interface Decision {
  hook: Hook;
  verdict: 'accept' | 'drop' | 'queue';
  /** For 'queue' (NFQUEUE target in the ruleset). */
  queue?: number;
  /** The mark the packet leaves with, and whether it differs from the one it came with. */
  mark: number;
  markChanged: boolean;
  /** Rewritten L3 bytes with IP and transport checksums correct, when a target changed the packet. */
  payload?: Uint8Array;
  /** Packets to send (REJECT's ICMP errors and TCP resets), as L3 bytes. */
  replies: Uint8Array[];
  logs: LogRecord[];
  /** Filled only when tracing was asked for (explain, trace), so the fast path pays nothing. */
  path?: TraceStep[];
  /** H16: what this trip changes in the packet's connection (only when something does). */
  ct?: ConnUpdate;
  /**
   * Flow cache (docs/flow-cache.md), only when decide() was asked with `flow`: whether everything evaluated on the
   * path (every match and target, whether it matched or not) is flow-stable, so that every packet of the connection
   * with the same cache key would get this decision.
   */
  flowStable?: boolean;
  /**
   * With `flow`: every counter object the trip incremented, in order (a rule counted twice appears twice), the
   * built-in chains' policy counters included. The engine reuses the array: valid until its next decide().
   */
  counted?: readonly Counters[];
}

/** H16: the trip's connection-table update (native VerdictOptions ctFlags/ctMarks/ctNat, docs/conntrack-table.md). */
export interface ConnUpdate {
  /** CT --notrack / NOTRACK ran in raw. */
  notrack?: boolean;
  /** CONNMARK changed the connection mark to this. */
  connmark?: number;
  /** The nat chains of these manip types ran for the connection's first packet (a null binding unless `nat` binds). */
  natRan?: ('SRC' | 'DST')[];
  /** The binding requests of the nat rules that bound. */
  nat?: NatRequest[];
}
