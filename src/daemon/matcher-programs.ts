// The rule programs the native matcher runs (docs/matcher.md), from the daemon's side: compiled with each ruleset
// put in force, loaded under a serial, and the hits the receive threads counted added to the very counter objects the
// engine increments. Counter objects are shared across reloads by rule identity (reload.ts carryCounters), so a hit
// counted by a replaced program still lands on the right rule; a program's counter list is kept until the native
// side says it drained that program for the last time.
import { compileProgramSteps, type WordAlloc } from '../compile/program';
import type { PreviousProgram } from '../compile/program-reuse';
import type { HostRoute } from '../engine/host';
import type { BuiltProgram, MatcherHost } from '../native';
import { formatIpAddr } from '../rules/addr';
import type { Counters, Family, Ruleset } from '../rules/model';
import type { Steps } from '../steps';

/** What MatcherPrograms needs of the addon's Matcher (native/index.d.ts); tests give a fake. */
export interface MatcherLike {
  load(family: Family, words: Uint32Array | BuiltProgram, serial: number): void;
  /** Checks words as load() would, off the main thread; absent, load() checks them. */
  build?(family: Family, words: Uint32Array): Promise<BuiltProgram>;
  clear(family: Family): void;
  /** The serial of the program in force for `family`; 0 when none is. */
  serial(family: Family): number;
  /** Memory load() runs in place, `reuse`'s when it is free; absent, the words are plain arrays that load() copies. */
  programWords?(length: number, reuse?: Uint32Array): Uint32Array;
  drain(): { serials: Uint32Array; ids: Uint32Array; packets: Float64Array; bytes: Float64Array; done: number[] };
}

/** A ruleset compiled and not yet in force. */
export interface PreparedProgram {
  family: Family;
  words: Uint32Array;
  counters: readonly Counters[];
  /** The ruleset it was compiled from, which the next reload's compile copies unchanged chains against. */
  rules: Ruleset;
  /** Chains copied from the program in force (src/compile/program-reuse.ts). */
  reusedChains: number;
  /** What check() gave: the words checked by the matcher, or why it refused them. */
  built?: BuiltProgram;
  refused?: string;
}

export interface MatcherProgramStats {
  /** Hits added to counters by drain(), in packets. */
  drainedPackets: number;
  /** Hits for a serial or counter id this table does not know (never expected: they are lost). */
  unknownHits: number;
}

export class MatcherPrograms {
  private readonly bySerial = new Map<number, readonly Counters[]>();
  private nextSerial = 1;
  /** Why a family has no program in force: the compiler or the loader refused its ruleset. */
  private readonly errors = new Map<Family, string>();
  /**
   * The serial, ruleset and words of the program in force per family. The next reload copies its unchanged chains
   * from these words: the very memory the matcher runs (programWords), not a copy of it.
   */
  private readonly inForce = new Map<Family, { serial: number; rules: Ruleset; words: Uint32Array }>();
  /**
   * Per family, the words of the program in force before, which the next compile writes into once the matcher no
   * longer runs it: two blocks in turn, so a reload allocates no program memory and leaves the heap none to collect.
   */
  private readonly spare = new Map<Family, Uint32Array>();
  readonly stats: MatcherProgramStats = { drainedPackets: 0, unknownHits: 0 };

  /** The families whose ruleset the matcher does not run, and why; undefined when it runs every one. */
  get lastError(): string | undefined {
    return this.errors.size === 0 ? undefined : [...this.errors].map(([f, e]) => `IPv${f}: ${e}`).join('; ');
  }

  constructor(private readonly matcher: MatcherLike) {}

  /**
   * Compiles a ruleset, in steps (src/steps.ts) so a reload keeps deciding packets meanwhile; undefined (and
   * lastError) when the compiler cannot, so JavaScript decides that family.
   */
  *prepare(rules: Ruleset): Steps<PreparedProgram | undefined> {
    try {
      const p = yield* compileProgramSteps(rules, rules.family, this.previous(rules.family), this.wordsFor(rules.family));
      return { family: rules.family, words: p.words, counters: p.counters, rules, reusedChains: p.reusedChains };
    } catch (err) {
      this.errors.set(rules.family, err instanceof Error ? err.message : String(err));
      return undefined;
    }
  }

  /**
   * Has the matcher check a compiled program off the main thread (MatcherLike.build), so that commit() only stores
   * it: checking 110,000 rules takes about 20 ms, which the swap took while no batch was decided. The caller prepares
   * the rest of a reload meanwhile. Never rejects: a program refused is committed as none, with the reason.
   */
  async check(p: PreparedProgram | undefined): Promise<void> {
    if (p === undefined || this.matcher.build === undefined) return;
    try {
      p.built = await this.matcher.build(p.family, p.words);
    } catch (err) {
      p.refused = err instanceof Error ? err.message : String(err);
    }
  }

  /**
   * Puts a prepared program in force for its family, or none (`family` given alone): one atomic store natively; the
   * batches running meanwhile finish on the program they took.
   */
  commit(p: PreparedProgram | undefined, family: Family): void {
    const before = this.inForce.get(family);
    if (before !== undefined) this.spare.set(family, before.words);
    this.inForce.delete(family);
    if (p === undefined) {
      this.matcher.clear(family);
      return;
    }
    const serial = this.nextSerial++;
    this.bySerial.set(serial, p.counters);
    try {
      if (p.refused !== undefined) throw new Error(p.refused);
      this.matcher.load(family, p.built ?? p.words, serial);
      this.errors.delete(family);
      this.inForce.set(family, { serial, rules: p.rules, words: p.words });
    } catch (err) {
      this.bySerial.delete(serial);
      this.errors.set(family, err instanceof Error ? err.message : String(err));
      this.matcher.clear(family);
    }
  }

  /** The program in force and its ruleset, when the native side still holds the one this table put in force. */
  private previous(family: Family): PreviousProgram | undefined {
    const f = this.inForce.get(family);
    return f !== undefined && this.matcher.serial(family) === f.serial ? { rules: f.rules, words: f.words } : undefined;
  }

  /** Where a compile for `family` writes its words: the spare block first (the addon gives a new one if it is busy). */
  private wordsFor(family: Family): WordAlloc | undefined {
    const m = this.matcher;
    if (m.programWords === undefined) return undefined;
    return (length) => {
      const reuse = this.spare.get(family);
      this.spare.delete(family);
      return m.programWords!(length, reuse);
    };
  }

  /** Adds the receive threads' hits since the last drain to the rule counters. Returns the packets added. */
  drain(): number {
    const d = this.matcher.drain();
    let packets = 0;
    for (let i = 0; i < d.ids.length; i++) {
      const n = d.packets[i]!;
      const c = this.bySerial.get(d.serials[i]!)?.[d.ids[i]!];
      if (c === undefined) {
        this.stats.unknownHits += n;
        continue;
      }
      c.packets += n;
      c.bytes += d.bytes[i]!;
      packets += n;
    }
    for (const s of d.done) this.bySerial.delete(s);
    this.stats.drainedPackets += packets;
    return packets;
  }

  /** Serials whose counters are kept (tests, status). */
  serials(): number[] {
    return [...this.bySerial.keys()];
  }
}

/** What hostView reads of the engine's host (src/engine/host.ts RouteHost). */
export interface HostSource {
  routeList(): readonly HostRoute[];
  primaryAddress(family: Family, iface: string): Uint8Array | undefined;
}

/**
 * The host as the matcher reads it: interface names by index; addrtype's LOCAL as src/engine/host.ts decides it (the
 * longest route covering the address): the host's own addresses (LOCAL routes of a whole address), and every other
 * route, longest first, saying whether it makes an address LOCAL; and each interface's primary address per family,
 * which MASQUERADE and REDIRECT bind to.
 */
export function hostView(names: { entries(): [number, string][] }, host: HostSource): MatcherHost {
  const byIndex: (string | undefined)[] = [];
  for (const [i, n] of names.entries()) byIndex[i] = n;
  const primary = (family: Family): (string | undefined)[] =>
    byIndex.map((n) => {
      const a = n === undefined ? undefined : host.primaryAddress(family, n);
      return a === undefined ? undefined : formatIpAddr(a);
    });
  const local4: string[] = [];
  const local6: string[] = [];
  const others: HostRoute[] = [];
  for (const r of host.routeList()) {
    const whole = r.prefix === r.addr.length * 8;
    if (whole && r.type === 'LOCAL') (r.family === 4 ? local4 : local6).push(formatIpAddr(r.addr));
    else others.push(r);
  }
  others.sort((a, b) => b.prefix - a.prefix);
  const routes = others.map((r) => ({ dst: `${formatIpAddr(r.addr)}/${r.prefix}`, local: r.type === 'LOCAL' }));
  return { names: byIndex, local4, local6, routes, primary4: primary(4), primary6: primary(6) };
}
