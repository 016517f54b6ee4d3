// Pieces of a hot reload that do not need the kernel: loading ipset files, carrying counters over to unchanged rules,
// trimming the global match stores, and running one reload at a time with triggers coalesced.
import fs from 'node:fs';
import { RuleError, type PacketMeta, type ParsedPacket, type SetView } from '../extensions/types';
import { hashlimitStore } from '../extensions/util/b-hashlimit-store';
import { recentStore } from '../extensions/util/b-recent-store';
import { EmptySets, IpsetError, IpsetStore } from '../engine/sets';
import { RuleErrors } from '../rules/errors';
import { surelyNone, USES_SET, USES_STORES } from '../rules/facts';
import { madeOfObjects } from '../rules/line-cache';
import type { Chain, Counters, MatchUse, Rule, Ruleset } from '../rules/model';
import type { Steps } from '../steps';

/**
 * Loads `ipset save` files into one store (from `texts` when read already). Throws RuleErrors naming file:line:1 for
 * every file that fails.
 */
export function loadIpsetFiles(files: readonly string[], texts?: ReadonlyMap<string, string>): IpsetStore {
  const store = new IpsetStore();
  const errors: RuleError[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = texts?.get(file) ?? fs.readFileSync(file, 'utf8');
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      errors.push(new RuleError(`cannot read ipset file: ${why}`, { file, line: 0, column: 0 }));
      continue;
    }
    try {
      store.load(text);
    } catch (err) {
      if (err instanceof IpsetError) {
        const reason = err.message.replace(/^line \d+: /, '');
        errors.push(new RuleError(`ipset: ${reason}`, { file, line: err.line, column: 1 }));
      } else {
        throw err;
      }
    }
  }
  if (errors.length > 0) throw new RuleErrors(errors);
  return store;
}

/** Every `-m set --match-set NAME` must name a loaded set: the kernel refuses such a rule (xt_set checkentry). */
export function checkSetNames(rulesets: readonly (Ruleset | undefined)[], sets: IpsetStore | undefined): void {
  if (rulesets.every((rs) => rs === undefined || surelyNone(rs, USES_SET))) return;
  const known = new Set(sets?.names() ?? []);
  const errors: RuleError[] = [];
  forEachMatch(rulesets, (m) => {
    if (m.ext.name !== 'set') return;
    const name = (m.opts as { name?: unknown }).name;
    if (typeof name === 'string' && !known.has(name)) {
      const hint = sets === undefined ? ' (no --ipset file is loaded)' : '';
      errors.push(new RuleError(`set: set "${name}" does not exist in the loaded ipset files${hint}`, m.loc));
    }
  });
  if (errors.length > 0) throw new RuleErrors(errors);
}

function forEachMatch(rulesets: readonly (Ruleset | undefined)[], f: (m: MatchUse, family: 4 | 6) => void): void {
  for (const rs of rulesets) {
    if (!rs) continue;
    for (const t of rs.tables.values())
      for (const c of t.chains.values()) for (const r of c.rules) for (const m of r.matches) f(m, rs.family);
  }
}

/**
 * Gives rules of the new ruleset with the same id in the same table and chain the old rule's counter object itself,
 * and built-in chains of the same name the old policy counters. Shared, not copied: packets the old rules count
 * until the swap land in the objects the new rules own, so this can run in steps (src/steps.ts) before the swap
 * while traffic is decided. Returns how many rules carried over.
 */
export function* carryCounters(from: Ruleset | undefined, to: Ruleset): Steps<number> {
  if (!from) return 0;
  let carried = 0;
  let chains = 0;
  for (const [tname, t] of to.tables) {
    const oldTable = from.tables.get(tname);
    if (!oldTable) continue;
    // Most chains keep their place among the chains: the old chain is looked for at the next place first, and a few
    // places on (chains dropped), before the map (a name lookup in a table of 40,000 chains costs a cache miss or two).
    const olds = [...oldTable.chains.values()];
    let at = 0;
    for (const c of t.chains.values()) {
      let oldChain: Chain | undefined;
      for (let j = at; j < olds.length && j < at + LOOK_AHEAD; j++)
        if (olds[j].name === c.name) {
          oldChain = olds[j];
          at = j + 1;
          break;
        }
      oldChain ??= oldTable.chains.get(c.name);
      if (++chains % 1024 === 0) yield;
      if (!oldChain) continue;
      if (c.builtin && oldChain.builtin) c.counters = oldChain.counters;
      if (sameRules(oldChain.rules, c.rules)) {
        // Nothing tells the two apart but the counters, which carry over: the chain takes the rules in force, and
        // what reads both rulesets after (the index compiler, the program's reuse) sees one array and skips it.
        c.rules = oldChain.rules;
        carried += c.rules.length;
      } else carried += carryChain(oldChain.rules, c.rules);
    }
    yield;
  }
  return carried;
}

/**
 * Whether two chains' rules are made of the very same objects, with the same ids, in the same order: rules the parser
 * copied from lines that did not change or move (src/rules/line-cache.ts).
 */
function sameRules(a: readonly Rule[], b: readonly Rule[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k] && (a[k].id !== b[k].id || !madeOfObjects(a[k], b[k], b[k]))) return false;
  return true;
}

/** Places past the last chain found that carryCounters looks at before it looks a chain up by name. */
const LOOK_AHEAD = 4;

/**
 * Carries counters between two versions of one chain; ids are unique within a chain. Most rules keep their place, so
 * the rule at the same position is tried first, and a map is built only for a long chain whose rules moved.
 */
function carryChain(old: readonly Rule[], rules: readonly Rule[]): number {
  let carried = 0;
  let byId: Map<string, Counters> | undefined;
  for (let k = 0; k < rules.length; k++) {
    const r = rules[k];
    let o: Counters | undefined;
    if (k < old.length && old[k].id === r.id) o = old[k].counters;
    else if (old.length <= 16) {
      for (let j = 0; j < old.length; j++)
        if (old[j].id === r.id) {
          o = old[j].counters;
          break;
        }
    } else {
      if (byId === undefined) {
        byId = new Map();
        for (let j = 0; j < old.length; j++) byId.set(old[j].id, old[j].counters);
      }
      o = byId.get(r.id);
    }
    if (o === undefined) continue;
    r.counters = o;
    carried++;
  }
  return carried;
}

/** The recent list names and hashlimit table keys (`family:name`) the rulesets use. */
export function storeNames(rulesets: readonly (Ruleset | undefined)[]): { recent: Set<string>; hashlimit: Set<string> } {
  const recent = new Set<string>();
  const hashlimit = new Set<string>();
  if (rulesets.every((rs) => rs === undefined || surelyNone(rs, USES_STORES))) return { recent, hashlimit };
  forEachMatch(rulesets, (m, family) => {
    const name = (m.opts as { name?: unknown }).name;
    if (typeof name !== 'string') return;
    if (m.ext.name === 'recent') recent.add(name);
    else if (m.ext.name === 'hashlimit') hashlimit.add(`${family}:${name}`);
  });
  return { recent, hashlimit };
}

/**
 * Drops recent lists and hashlimit tables no rule uses any more, keeping the rest with their contents, as the kernel
 * frees a list with its last rule. nfacct objects are not tied to rules (nfacct(8) owns them) and stay.
 */
export function retainStores(rulesets: readonly (Ruleset | undefined)[]): void {
  const { recent, hashlimit } = storeNames(rulesets);
  recentStore.retain(recent);
  hashlimitStore.retain(hashlimit);
}

/** The engine's set view, whose backing store a reload replaces in one assignment. */
export class SwitchableSets implements SetView {
  current: SetView = new EmptySets();
  test(name: string, pkt: ParsedPacket, meta: PacketMeta, dims: ('src' | 'dst')[]): boolean | undefined {
    return this.current.test(name, pkt, meta, dims);
  }
}

export interface ReloadOutcome {
  ok: boolean;
  trigger: string;
  /** The error lines (file:line:column: ...) of a failed reload. */
  errors: string[];
  durationMs: number;
  /** Nothing was done: only file changes asked, and the files hold what was loaded last. */
  unchanged?: boolean;
}

export interface ReloadStats {
  success: number;
  failure: number;
  /** Whether the last reload attempt succeeded (true before any). */
  lastSuccessful: boolean;
  /** Unix seconds of the last successful load (the start counts). */
  lastSuccessTimestamp: number;
  lastError?: string;
  /** File changes that left the files as they were loaded (rewritten with the same bytes): no reload. */
  unchanged: number;
}

interface PendingRun {
  promise: Promise<ReloadOutcome>;
  triggers: string[];
  onlyIfChanged: boolean;
}

/**
 * Runs reloads one at a time. A trigger arriving while one runs does not start another at once: all such triggers
 * share one more run after the current one, and get its outcome. A trigger may ask for a reload only if the files
 * changed (a file watcher's); a run is such only when every trigger it serves is.
 */
export class ReloadCoalescer {
  private running: Promise<ReloadOutcome> | undefined;
  private next: PendingRun | undefined;
  runs = 0;

  constructor(private readonly job: (trigger: string, onlyIfChanged: boolean) => Promise<ReloadOutcome>) {}

  request(trigger: string, onlyIfChanged = false): Promise<ReloadOutcome> {
    if (this.next) {
      this.next.triggers.push(trigger);
      this.next.onlyIfChanged &&= onlyIfChanged;
      return this.next.promise;
    }
    if (!this.running) return this.start(trigger, onlyIfChanged);
    const after = this.running.then(
      () => undefined,
      () => undefined,
    );
    // This run's triggers are the ones gathered in this.next until it starts.
    const run = (): Promise<ReloadOutcome> => {
      const { triggers, onlyIfChanged: only } = this.next!;
      this.next = undefined;
      return this.start(triggers.join('+'), only);
    };
    this.next = { triggers: [trigger], onlyIfChanged, promise: after.then(run) };
    return this.next.promise;
  }

  private start(trigger: string, onlyIfChanged: boolean): Promise<ReloadOutcome> {
    this.runs++;
    const p = this.job(trigger, onlyIfChanged).finally(() => {
      if (this.running === p) this.running = undefined;
    });
    this.running = p;
    return p;
  }

  /** Resolves when no reload is running or pending. */
  async idle(): Promise<void> {
    while (this.running || this.next) {
      await (this.next?.promise ?? this.running)?.catch(() => undefined);
    }
  }
}
