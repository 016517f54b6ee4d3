// The flow cache's paths (docs/flow-cache.md): what a path id the native cache counts hits for means in JavaScript,
// i.e. the list of rule and policy counter objects one cached decision increments. Ids are interned per generation of
// the cache (the same list gives the same id), and drain() adds the native hits to those counters. Counter objects
// are shared across reloads by rule identity (reload.ts carryCounters), so hits of an old generation still land on the
// right rules; a generation's table is kept until a drain made after a newer generation began returns nothing for it.
import { IPS_ASSURED } from '../extensions/util/ctstate';
import { READS_CTSTATUS, surelyNone } from '../rules/facts';
import type { Counters, Ruleset } from '../rules/model';

/** What FlowPaths needs of the addon's FlowCache (native/index.d.ts); tests give a fake. */
export interface FlowCacheLike {
  generation(): number;
  invalidate(statusMask?: number): number;
  /** [generation, pathId, packets, bytes] quadruples since the last drain. */
  drain(): Float64Array;
}

/**
 * The connection status bits a cached decision may depend on with these rulesets in force (FlowCache.invalidate):
 * all but ASSURED, which only `-m conntrack --ctstatus` reads. A UDP flow turns ASSURED about two seconds in, and with
 * the bit in its key every packet of the flow went to JavaScript until a decision for the new status was stored.
 * A ruleset the parser did not make (its facts unknown) keeps every bit.
 */
export function flowStatusMask(rules: { rules4?: Ruleset; rules6?: Ruleset }): number {
  const read = [rules.rules4, rules.rules6].some((rs) => rs !== undefined && !surelyNone(rs, READS_CTSTATUS));
  return (read ? ~0 : ~IPS_ASSURED) >>> 0;
}

/** FlowCacheOptions.maxPaths' default: a store with a larger id is ignored, so interning stops there. */
export const DEFAULT_MAX_PATHS = 65536;

interface Generation {
  readonly generation: number;
  readonly ids: Map<string, number>;
  readonly paths: (readonly Counters[])[];
}

export interface FlowPathStats {
  /** Hits added to counters by drain(), in packets. */
  drainedPackets: number;
  /** Hits for a generation or path id this table does not know (never expected: they are lost). */
  unknownHits: number;
  /** Lists not interned because the generation already had maxPaths paths. */
  full: number;
}

export class FlowPaths {
  private readonly gens = new Map<number, Generation>();
  private current: Generation | undefined;
  /** A number per counter object, for the interning key. */
  private readonly counterIds = new WeakMap<Counters, number>();
  private nextCounterId = 1;
  readonly stats: FlowPathStats = { drainedPackets: 0, unknownHits: 0, full: 0 };

  constructor(
    private readonly cache: FlowCacheLike,
    private readonly maxPaths = DEFAULT_MAX_PATHS,
  ) {}

  /**
   * The cache's generation now: a batch interns under it and passes it to verdict() as cacheGeneration (a store for
   * any other generation is ignored natively, so a reload between decide and verdict cannot store a stale path).
   */
  begin(): number {
    const g = this.cache.generation();
    if (this.current?.generation !== g) this.current = this.table(g);
    return g;
  }

  private table(g: number): Generation {
    let t = this.gens.get(g);
    if (t === undefined) this.gens.set(g, (t = { generation: g, ids: new Map(), paths: [] }));
    return t;
  }

  /**
   * The path id, in the generation begin() returned, of a decision that increments these counters (copied: the
   * engine reuses its array); undefined when the generation has no room left.
   */
  intern(counted: readonly Counters[]): number | undefined {
    const t = this.current ?? this.table(this.begin());
    let key = '';
    for (const c of counted) {
      let id = this.counterIds.get(c);
      if (id === undefined) this.counterIds.set(c, (id = this.nextCounterId++));
      key += `${id},`;
    }
    const known = t.ids.get(key);
    if (known !== undefined) return known;
    if (t.paths.length >= this.maxPaths) {
      this.stats.full++;
      return undefined;
    }
    const id = t.paths.length;
    t.paths.push(counted.slice());
    t.ids.set(key, id);
    return id;
  }

  /**
   * Makes every stored decision stale (reload commit, address/route/link change). Returns the new generation. With
   * `statusMask`, the status bits stored decisions depend on from then on (FlowCache.invalidate).
   */
  invalidate(statusMask?: number): number {
    const g = this.cache.invalidate(statusMask);
    this.current = this.table(g);
    return g;
  }

  /** Adds the cache's hits since the last drain to the paths' counters. Returns the packets added. */
  drain(): number {
    // Before the drain: a generation older than this gets no hits after it (the cache stopped using it).
    const now = this.cache.generation();
    const hits = this.cache.drain();
    const hit = new Set<number>();
    let packets = 0;
    for (let i = 0; i + 3 < hits.length; i += 4) {
      const g = hits[i]!;
      const n = hits[i + 2]!;
      const bytes = hits[i + 3]!;
      const path = this.gens.get(g)?.paths[hits[i + 1]!];
      if (path === undefined) {
        this.stats.unknownHits += n;
        continue;
      }
      hit.add(g);
      for (const c of path) {
        c.packets += n;
        c.bytes += bytes;
      }
      packets += n;
    }
    for (const g of this.gens.keys()) if (g !== now && !hit.has(g) && g !== this.current?.generation) this.gens.delete(g);
    this.stats.drainedPackets += packets;
    return packets;
  }

  /** Generations whose paths are kept (tests, status). */
  generations(): number[] {
    return [...this.gens.keys()];
  }

  /** Paths interned in a generation. */
  size(generation: number): number {
    return this.gens.get(generation)?.paths.length ?? 0;
  }
}
