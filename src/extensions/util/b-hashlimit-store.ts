// xt_hashlimit tables: global per (family, name) like /proc/net/ipt_hashlimit/NAME; the first rule naming a table
// sets its configuration (htable_find_get). Buckets are token buckets counted in the kernel's units, see hashlimit.ts.

export interface HashlimitBucket {
  credit: number;
  /** Last refill, in jiffies. */
  prev: number;
  /** Expiry, in monotonic ms. */
  expires: number;
  /** rate-match mode: cost counted in the current window and the previous window's verdict. */
  currentRate: number;
  windowStart: number;
  prevWindowOver: boolean;
}

export interface HashlimitTableConfig {
  max: number;
  gcInterval: number; // ms
  expire: number; // ms
}

export class HashlimitTable {
  readonly buckets = new Map<string, HashlimitBucket>();
  private lastGc: number;
  constructor(
    readonly cfg: HashlimitTableConfig,
    now: number,
  ) {
    this.lastGc = now;
  }

  /** htable_gc: runs every gc interval and drops expired buckets. */
  gc(now: number): void {
    if (now - this.lastGc < this.cfg.gcInterval) return;
    this.lastGc = now;
    for (const [k, b] of this.buckets) if (b.expires <= now) this.buckets.delete(k);
  }
}

export class HashlimitStore {
  private readonly tables = new Map<string, HashlimitTable>();

  table(family: 4 | 6, name: string, cfg: HashlimitTableConfig, now: number): HashlimitTable {
    const key = `${family}:${name}`;
    let t = this.tables.get(key);
    if (!t) {
      t = new HashlimitTable(cfg, now);
      this.tables.set(key, t);
    }
    return t;
  }

  get(family: 4 | 6, name: string): HashlimitTable | undefined {
    return this.tables.get(`${family}:${name}`);
  }

  /** Keep only the tables the new ruleset names (keys `family:name`). */
  retain(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const k of [...this.tables.keys()]) if (!keep.has(k)) this.tables.delete(k);
  }

  reset(): void {
    this.tables.clear();
  }
}

/** Process-wide, like recentStore (MatchContext has no engine-owned store handle yet). */
export const hashlimitStore = new HashlimitStore();
