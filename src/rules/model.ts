// The Ruleset model: what a rule file means, independent of how it was written.
// The parser builds it, the printer renders it as iptables-save does, the engine evaluates it, the compiler lowers it.
import type { MatchExtension, TargetExtension } from '../extensions/types';

export type Family = 4 | 6;

export const TABLES = ['raw', 'mangle', 'nat', 'filter', 'security'] as const;
export type TableName = (typeof TABLES)[number];

export const HOOKS = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'] as const;
export type Hook = (typeof HOOKS)[number];

/** The built-in chains of each table (iptables(8)). */
export const BUILTIN_CHAINS: Readonly<Record<TableName, readonly Hook[]>> = {
  raw: ['PREROUTING', 'OUTPUT'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

/** Where something was written: every error a user sees names this. */
export interface SourceLocation {
  file: string;
  line: number; // 1-based
  column: number; // 1-based, of the word at fault
}

export interface Counters {
  packets: number;
  bytes: number;
}

/** An address with its mask, as -s/-d hold it. `addr` is already masked, as the kernel stores it. */
export interface IpNet {
  family: Family;
  addr: Uint8Array; // 4 or 16 bytes
  mask: Uint8Array; // same length
}

export interface Negatable<T> {
  value: T;
  negated: boolean;
}

/** One `-m name ...` (or an implicit protocol match) with its parsed, validated options. */
export interface MatchUse<O = unknown> {
  ext: MatchExtension<O>;
  opts: O;
  loc: SourceLocation;
}

/** `-j NAME ...` for an extension target (ACCEPT, DROP, DNAT, MARK, ...). */
export interface ExtensionTarget<O = unknown> {
  kind: 'extension';
  ext: TargetExtension<O>;
  opts: O;
  loc: SourceLocation;
}

/** `-j CHAIN` or `-g CHAIN` to a user chain. */
export interface ChainTarget {
  kind: 'chain';
  chain: string;
  goto: boolean;
  loc: SourceLocation;
}

export type RuleTarget = ExtensionTarget | ChainTarget;

export interface Rule {
  /**
   * Stable identity: a hash of the table, chain and canonical rule text, with an occurrence index for identical
   * rules in one chain. Unchanged rules keep their id across reloads, so counters and metrics carry over.
   */
  id: string;
  table: TableName;
  chain: string;
  src?: Negatable<IpNet>;
  dst?: Negatable<IpNet>;
  inIface?: Negatable<string>; // may end in '+' (prefix wildcard)
  outIface?: Negatable<string>;
  /** Protocol number; 0 means all. Absent means no -p. */
  proto?: Negatable<number>;
  /** -f / ! -f (IPv4 only). */
  fragment?: Negatable<true>;
  matches: MatchUse[];
  target?: RuleTarget;
  counters: Counters;
  loc: SourceLocation;
}

export interface Chain {
  name: string;
  builtin: boolean;
  /** Built-in chains only. */
  policy?: 'ACCEPT' | 'DROP';
  counters: Counters;
  rules: Rule[];
  loc: SourceLocation;
}

export interface Table {
  name: TableName;
  /** In declaration order; built-in chains first as iptables-save prints them. */
  chains: Map<string, Chain>;
}

export interface Ruleset {
  family: Family;
  /** Only the tables the file mentions. */
  tables: Map<TableName, Table>;
  /** The files it came from, for messages. */
  sources: string[];
}
