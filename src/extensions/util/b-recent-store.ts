// The xt_recent lists: global per name (like /proc/net/xt_recent/NAME), shared by every rule that names them.
// Sizes and eviction follow net/netfilter/xt_recent.c with its default module parameters.

/** ip_list_tot: entries per list; the least recently updated one is evicted when full. */
export const IP_LIST_TOT = 100;
/** ip_pkt_list_tot: timestamps remembered per entry by default (the ring is rounded up to a power of two). */
export const IP_PKT_LIST_TOT = 20;
/** XT_RECENT_MAX_NSTAMPS: --hitcount must stay below it. */
export const MAX_NSTAMPS = 65536;

/** The ring mask a rule needs (recent_mt_check): roundup_pow_of_two(max(hitcount, ip_pkt_list_tot)) - 1. */
export function nstampsMaskFor(hitcount: number): number {
  let n = 1;
  while (n < Math.max(hitcount, IP_PKT_LIST_TOT)) n *= 2;
  return n - 1;
}

export interface RecentEntry {
  key: string;
  addr: Uint8Array;
  family: 4 | 6;
  ttl: number;
  /** Ring of timestamps (monotonic ms); `index` is where the next one goes. */
  stamps: number[];
  index: number;
  nstamps: number;
}

export class RecentTable {
  /** Map iteration order is the kernel's lru_list order: first = least recently updated. */
  readonly entries = new Map<string, RecentEntry>();
  constructor(
    readonly name: string,
    /** The mask of the rule that created the list (the kernel keeps the first one). */
    readonly mask: Uint8Array,
    /** Timestamps per entry minus one (a power of two minus one). */
    public nstampsMask: number,
  ) {}

  static keyOf(addr: Uint8Array, family: 4 | 6): string {
    return `${family}:${Buffer.from(addr).toString('hex')}`;
  }

  /** recent_entry_lookup: ttl 0 means "any". */
  lookup(addr: Uint8Array, family: 4 | 6, ttl: number): RecentEntry | undefined {
    const e = this.entries.get(RecentTable.keyOf(addr, family));
    if (!e) return undefined;
    if (ttl !== 0 && e.ttl !== 0 && e.ttl !== ttl) return undefined;
    return e;
  }

  /** recent_entry_init: evicts the least recently updated entry when the list is full. */
  add(addr: Uint8Array, family: 4 | 6, ttl: number, now: number): RecentEntry {
    if (this.entries.size >= IP_LIST_TOT) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    const key = RecentTable.keyOf(addr, family);
    const e: RecentEntry = { key, addr: Uint8Array.from(addr), family, ttl, stamps: [now], index: 1, nstamps: 1 };
    this.entries.set(key, e);
    return e;
  }

  /** recent_entry_update: a new timestamp, and the entry becomes the most recently updated. */
  touch(e: RecentEntry, now: number): void {
    e.index &= this.nstampsMask;
    e.stamps[e.index++] = now;
    if (e.index > e.nstamps) e.nstamps = e.index;
    this.entries.delete(e.key);
    this.entries.set(e.key, e);
  }

  remove(e: RecentEntry): void {
    this.entries.delete(e.key);
  }

  /** recent_entry_reap: drops the least recently updated entry if its last stamp is before `time` (one at most). */
  reap(time: number, working: RecentEntry): void {
    const first = this.entries.values().next().value;
    if (!first || first === working) return;
    const last = first.stamps[first.index - 1]!;
    if (time > last) this.entries.delete(first.key);
  }
}

/**
 * All lists of one engine. The engine keeps one store across reloads (carry-over, as iptables-restore keeps lists
 * whose names are still in use) and calls `retain` with the names the new ruleset uses; `reset` empties everything.
 */
export class RecentStore {
  private readonly tables = new Map<string, RecentTable>();

  /**
   * The list `name`, created with this mask on first use. A rule needing a longer timestamp ring flushes and widens
   * an existing list, as recent_mt_check does when such a rule is loaded.
   */
  table(name: string, mask: Uint8Array, nstampsMask = nstampsMaskFor(0)): RecentTable {
    let t = this.tables.get(name);
    if (!t) {
      t = new RecentTable(name, Uint8Array.from(mask), nstampsMask);
      this.tables.set(name, t);
    } else if (nstampsMask > t.nstampsMask) {
      t.entries.clear();
      t.nstampsMask = nstampsMask;
    }
    return t;
  }

  get(name: string): RecentTable | undefined {
    return this.tables.get(name);
  }

  names(): string[] {
    return [...this.tables.keys()];
  }

  /** Drop lists no rule names any more (the kernel frees a list with its last rule). */
  retain(names: Iterable<string>): void {
    const keep = new Set(names);
    for (const n of [...this.tables.keys()]) if (!keep.has(n)) this.tables.delete(n);
  }

  reset(): void {
    this.tables.clear();
  }
}

/**
 * The process-wide store the recent match uses. A module-level singleton because MatchContext has no handle on
 * engine-owned stores yet; the engine resets or retains it on reload.
 */
export const recentStore = new RecentStore();
