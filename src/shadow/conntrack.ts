// The shadow's own connection table: a native ConnTable (docs/conntrack-table.md) instantiated standalone, one per
// evaluated ruleset, never the daemon's. Each captured packet makes the trips the daemon's queues would make with
// every hook queued: classify at PREROUTING/OUTPUT (the conntrack points), evaluate, commit the trip's outcome
// (confirmed at INPUT/POSTROUTING), translate the NAT binding for the next hook.
import type { CtClassification, CtEntry, CtTuple, CtUpdate } from '../../native/index';
import { nativeNatRequest } from '../daemon/conntrack';
import type { ConnUpdate } from '../engine/decision';
import { parsePacket } from '../engine/packet';
import type { ConnInfo, ConnTuple, CtState } from '../extensions/types';
import { addon } from '../native';
import { parseIpAddr } from '../rules/addr';
import type { Family, Hook } from '../rules/model';

export const HOOK_NUMBER: Record<Hook, number> = { PREROUTING: 0, INPUT: 1, FORWARD: 2, OUTPUT: 3, POSTROUTING: 4 };

/** IPS_SRC_NAT | IPS_DST_NAT: the connection's tuples were changed by a binding. */
const IPS_NAT_MASK = 16 | 32;

export interface ShadowConnOptions {
  /** nf_conntrack_max for the shadow table (default 65,536): the memory bound of a long shadow run. */
  maxEntries?: number;
  seed?: number;
}

function tuple(t: CtTuple): ConnTuple {
  const family: Family = t.family;
  const icmp = t.proto === 1 || t.proto === 58;
  return {
    src: parseIpAddr(t.src, family) ?? new Uint8Array(family === 4 ? 4 : 16),
    dst: parseIpAddr(t.dst, family) ?? new Uint8Array(family === 4 ? 4 : 16),
    protocol: t.proto,
    // The table keys ICMP on (id, type<<8|code); rules compare ports only for protocols that have them.
    sport: icmp ? 0 : t.sport,
    dport: icmp ? 0 : t.dport,
  };
}

/**
 * ConnInfo for the engine from a classification. The tuples come from the table's entry (so --ctorigdst sees the
 * address before DNAT), read only when a rule asks; without an entry they are the packet's own and its inverse.
 */
class ClassifiedConn implements ConnInfo {
  state: CtState;
  status: number;
  mark: number;
  direction: 'ORIGINAL' | 'REPLY';
  zone: number;
  private cached?: { orig: ConnTuple; reply: ConnTuple; expires: number };

  constructor(
    private readonly c: CtClassification,
    private readonly entryOf: (c: CtClassification) => CtEntry | undefined,
    private readonly data: Uint8Array,
    private readonly family: Family,
  ) {
    this.state = c.state;
    this.status = c.status;
    this.mark = c.mark;
    this.direction = c.direction;
    this.zone = c.zone;
  }

  private load(): { orig: ConnTuple; reply: ConnTuple; expires: number } {
    if (this.cached) return this.cached;
    const e = this.c.handle !== 0 ? this.entryOf(this.c) : undefined;
    if (e) {
      this.cached = { orig: tuple(e.orig), reply: tuple(e.reply), expires: e.expiresSeconds };
    } else {
      const p = parsePacket(this.data, this.family);
      const own: ConnTuple = { src: p.src, dst: p.dst, protocol: p.protocol, sport: Math.max(p.sport, 0), dport: Math.max(p.dport, 0) };
      const inv: ConnTuple = { src: p.dst, dst: p.src, protocol: p.protocol, sport: own.dport, dport: own.sport };
      this.cached = this.direction === 'ORIGINAL' ? { orig: own, reply: inv, expires: 0 } : { orig: inv, reply: own, expires: 0 };
    }
    return this.cached;
  }

  get orig(): ConnTuple {
    return this.load().orig;
  }
  get reply(): ConnTuple {
    return this.load().reply;
  }
  get expiresSeconds(): number {
    return this.load().expires;
  }
}

export interface TripStart {
  c: CtClassification;
  conn: ConnInfo;
}

export interface TripEnd {
  /** False when the table refuses the packet whatever the rules said: table full, or no unique NAT tuple. */
  ok: boolean;
  reason?: string;
  /** The packet as the next hook sees it (NAT of this hook applied), or undefined when unchanged. */
  translated?: Uint8Array;
}

/** What a NAT binding did to a connection: its original tuple and the one the wire carries after translation. */
export interface NatBinding {
  orig: CtTuple;
  /** The original direction as it leaves: the inverse of the reply tuple. */
  translated: CtTuple;
}

export class ShadowConnTable {
  private readonly table: InstanceType<typeof addon.ConnTable>;
  private clock = 0;

  constructor(opts: ShadowConnOptions = {}) {
    // Manual clock: a capture file replays at its own timestamps, so timeouts expire as they did when it was taken.
    this.table = new addon.ConnTable({ maxEntries: opts.maxEntries ?? 65_536, manualClock: true, seed: opts.seed ?? 1 });
    this.table.setNow(0);
  }

  /** Moves the table's clock (milliseconds); never backwards. */
  setNow(ms: number): void {
    const t = Math.floor(ms);
    if (t <= this.clock) return;
    this.clock = t;
    this.table.setNow(t);
  }

  /** Classification at `hook`, as the daemon's receive thread would make it with every hook queued. */
  start(data: Uint8Array, family: Family, hook: Hook): TripStart {
    const c = this.table.classify(data, family, HOOK_NUMBER[hook], { ctPoint: hook === 'PREROUTING' || hook === 'OUTPUT' });
    return { c, conn: new ClassifiedConn(c, (x) => this.table.entry(x), data, family) };
  }

  /**
   * Commits the trip (the verdict and the engine's update) and translates the packet for the next hook. `looped`: the
   * trip is POSTROUTING out of lo (the packet comes back through PREROUTING and INPUT).
   */
  finish(t: TripStart, hook: Hook, accept: boolean, update: ConnUpdate | undefined, data: Uint8Array, family: Family, looped = false): TripEnd {
    if (t.c.dropped) return { ok: false, reason: 'shadow connection table full (the daemon drops it)' };
    const u: CtUpdate = { accept, final: hook === 'INPUT' || hook === 'POSTROUTING' };
    if (update?.notrack === true) u.notrack = true;
    if (update?.connmark !== undefined) u.connmark = update.connmark >>> 0;
    if (update?.natRan !== undefined) u.natRan = [...update.natRan];
    if (update?.nat !== undefined && update.nat.length > 0) u.nat = update.nat.map((r) => nativeNatRequest(r, 0));
    if (looped) u.looped = true;
    const refused = 'no unique NAT tuple (the daemon drops it)';
    // finish() commits and translates in one step, as the queue's verdict path does: an entry the commit releases
    // (an RST's) still translates its packet. Builds of the addon without it commit, then translate.
    if (typeof this.table.finish === 'function') {
      const r = this.table.finish(t.c, u, data, family, HOOK_NUMBER[hook]);
      if (!r.ok) return { ok: false, reason: refused };
      return accept && r.packet !== undefined ? { ok: true, translated: r.packet } : { ok: true };
    }
    if (!this.table.commit(t.c, u)) return { ok: false, reason: refused };
    if (!accept || t.c.handle === 0) return { ok: true };
    const translated = this.table.translate(t.c, data, family, HOOK_NUMBER[hook]);
    return translated === undefined ? { ok: true } : { ok: true, translated };
  }

  /** The binding of the connection a trip belongs to, when NAT changed its tuples. */
  binding(t: TripStart): NatBinding | undefined {
    if (t.c.handle === 0) return undefined;
    const e = this.table.entry(t.c);
    if (!e || (e.status & IPS_NAT_MASK) === 0) return undefined;
    const r = e.reply;
    return { orig: e.orig, translated: { family: r.family, src: r.dst, dst: r.src, proto: r.proto, sport: r.dport, dport: r.sport, zone: r.zone } };
  }

  stats(): { entries: number; drop: number } {
    const s = this.table.stats();
    return { entries: s.entries, drop: s.drop };
  }
}
