// A reload rereads a file of which only a few lines changed: kube-proxy rewrites all 110,000 rules of a 10,000-service
// table on every sync. What a `-A` line turns into depends only on its text, the table, the family and the extension
// modules, so the rules a previous parse made of the same text are copied instead of parsed again. Only the
// location differs when the line moved: the copies then get locations of their own line, so every error and every
// `list -v` still names the right line. What the whole table means (jumps, loops, hooks) is still checked at COMMIT.
import type { RuleError } from '../extensions/types';
import type { Chain, Counters, Family, MatchUse, Rule, Table, TableName } from './model';
import { validateChanges, validateTableMemo, type ValidatedTable } from './validate';
import type { Steps } from '../steps';
import { HAS_STATE, ruleFacts } from './facts';

/** The rules one `-A` line made, as templates: never put in a ruleset themselves, so nothing ever changes them. */
export interface CachedLine {
  /** Its text (the key it is filed under) and table. */
  text: string;
  table: TableName;
  /** The parse that last used it. */
  gen: number;
  /** The line the templates' locations name. */
  line: number;
  /** The chain the line appends to. */
  chain: string;
  /** Whether the line has -i / -o: a built-in chain may refuse them (iptables' generic_opt_check). */
  inIface: boolean;
  outIface: boolean;
  /**
   * Rules the line made, as templates: one, or one per source and destination pair (`-s a,b`); those of the parse
   * that last moved it (or first made them), with locations of its line `line`.
   * Only what a parse never changes afterwards is read from them: their ids and counters are in `ids` and `counters`
   * (numbering, traffic and reloads change the rules' own), and a table with a renamed chain keeps no lines.
   */
  rules: Rule[];
  /** The rules' ids as the line alone gives them (without `#n`). */
  ids: string[];
  /** rules.length, rules[0] and ids[0], read without reaching the arrays (a cache miss each, per line). */
  count: number;
  first: Rule | undefined;
  firstId: string;
  /** The counters the line gives, when any is not zero. */
  counters: Counters[] | undefined;
  /** Its rules' facts (src/rules/facts.ts). */
  facts: number;
  /** A `:chain - [p:b]` line that declared a new user chain (`chain`), not a rule line: it has no rules. */
  decl: boolean;
  /** Where the chain the line declares or appends to is found in the parse under way, without a name lookup. */
  slot: ChainSlot | undefined;
}

/**
 * A user chain of a table, by name, across parses: the Chain object the parse under way declared for it and the
 * table build (TableBuild.serial) it belongs to. The lines of the chain share it, so a reused line finds its chain
 * without looking its name up among tens of thousands of chains (a cache miss or two each).
 */
export interface ChainSlot {
  chain: Chain | undefined;
  /** While a parse is under way: the chain the parse before it declared, when it did (ParseOptions.shareChains). */
  last: Chain | undefined;
  serial: number;
  /** The parse that last declared it. */
  gen: number;
}

export interface ParseCacheStats {
  /** `-A` lines whose rules were copied from a previous parse, at the same line and moved. */
  reused: number;
  moved: number;
  /** `-A` lines parsed, and remembered for the next parse. */
  parsed: number;
  /** Chains that took the rules the last parse made of their lines (ParseOptions.shareChains); the lines count as reused. */
  sharedChains: number;
  /** Tables validated by their changes since the last validated version (validateChanges), not whole. */
  validatedByChanges: number;
  /** User chain declarations copied from a previous parse. */
  declsReused: number;
}

/**
 * The `-A` lines of the previous parses of one file, by table and exact text (a trailing CR excluded). Bound to one
 * file name, family, extension registry and ParseOptions.zeroCounters: a parse with another forgets everything first.
 */
export class ParseCache {
  private file: string | undefined;
  private family: Family | undefined;
  private lookup: unknown;
  private zeroing = false;
  private readonly tables = new Map<TableName, Map<string, CachedLine>>();
  private readonly slots = new Map<TableName, Map<string, ChainSlot>>();
  /** The slot slotFor found last, and its table and name: a file's rule lines come in runs of one chain. */
  private lastSlot: ChainSlot | undefined;
  private lastSlotTable: TableName | undefined;
  private lastSlotName = '';
  /** Per table, the last version that passed validation: the parse that made it, and what validateChanges needs. */
  private readonly validated = new Map<TableName, { gen: number; memo: ValidatedTable }>();
  /** Tables this parse has begun: a table written twice in one file is never recorded as validated. */
  private readonly begun = new Set<TableName>();
  private readonly twice = new Set<TableName>();
  private size = 0;
  /** Declarations this parse copied or remembered. */
  private decls = 0;
  /**
   * The lines of the last parse and of this one, by line number: a file changed in a few places is read mostly in
   * step with the last one, so a line is first compared with the line the last parse had there (allowing for the
   * lines added or removed above it, `shift`), which spares hashing it.
   */
  private lastByLine: (CachedLine | undefined)[] = [];
  private byLine: (CachedLine | undefined)[] = [];
  private shift = 0;
  /** Lookups by text that found nothing since the last that found a line. */
  private misses = 0;
  /**
   * The text of the last parse and of this one, and where each of their lines starts (`starts[line]`, filled by the
   * parser): a run of lines is compared with the last parse's in one string comparison (a memcmp), so most lines of
   * a file changed in a few places are never compared one by one. Holds one version of the file, the last.
   */
  private lastText: string | undefined;
  private lastStarts: number[] = [];
  private text: string | undefined;
  starts: number[] = [];
  /** Lines [blockStart, blockEnd) of this parse are the last parse's lines from blockStart + blockShift on. */
  private blockStart = 0;
  private blockEnd = 0;
  private blockShift = 0;
  /** Lines the next run compared tries; no run is tried before line noBlockUntil (one just failed). */
  private blockLines = MIN_BLOCK;
  private noBlockUntil = 0;
  lastKey: string | undefined;
  gen = 0;
  stats: ParseCacheStats = { reused: 0, moved: 0, parsed: 0, sharedChains: 0, validatedByChanges: 0, declsReused: 0 };

  /** Starts a parse of `text`, the contents of `file`. */
  begin(file: string, family: Family, lookup: unknown, zeroCounters: boolean, text: string): void {
    if (file !== this.file || family !== this.family || lookup !== this.lookup || zeroCounters !== this.zeroing) {
      this.tables.clear();
      this.slots.clear();
      this.byLine = [];
      this.text = undefined;
      this.validated.clear();
      this.size = 0;
      this.file = file;
      this.family = family;
      this.lookup = lookup;
      this.zeroing = zeroCounters;
    }
    this.gen++;
    this.lastByLine = this.byLine;
    this.byLine = [];
    this.shift = 0;
    this.misses = 0;
    this.lastText = this.text;
    this.lastStarts = this.starts;
    this.text = text;
    this.starts = [0];
    this.blockStart = this.blockEnd = this.blockShift = this.noBlockUntil = 0;
    this.blockLines = MIN_BLOCK;
    this.lastSlot = undefined;
    this.decls = 0;
    this.begun.clear();
    this.twice.clear();
    this.stats = { reused: 0, moved: 0, parsed: 0, sharedChains: 0, validatedByChanges: 0, declsReused: 0 };
  }

  /**
   * The parse whose version of `table` last passed validation, against which this one can be validated by its
   * changes: undefined for a table this parse has begun before.
   */
  beginTable(table: TableName): number | undefined {
    if (this.begun.has(table)) {
      this.twice.add(table);
      this.validated.delete(table);
      return undefined;
    }
    this.begun.add(table);
    return this.validated.get(table)?.gen;
  }

  /**
   * Validates `table` as validateTable does, by its changes when it can (validateChanges): when `fresh` holds every
   * rule of it that was not in the version validated by parse `vouchGen`, and only -A lines and first declarations
   * built it. Remembers the version when it passes.
   */
  *validate(table: Table, fresh: readonly Rule[] | undefined, vouchGen: number | undefined, onlyAppends: boolean, errors: RuleError[]): Steps<void> {
    const before = errors.length;
    const v = this.validated.get(table.name);
    let memo: ValidatedTable | undefined;
    if (onlyAppends && fresh !== undefined && v !== undefined && v.gen === vouchGen && (yield* validateChanges(table, fresh, v.memo))) {
      memo = v.memo;
      this.stats.validatedByChanges++;
    } else {
      memo = yield* validateTableMemo(table, errors);
    }
    if (errors.length > before || !onlyAppends || memo === undefined || this.twice.has(table.name)) this.validated.delete(table.name);
    else this.validated.set(table.name, { gen: this.gen, memo });
  }

  /**
   * The cached line whose text is `text[from, to)`, in `table`. When it had to look the text up, `lastKey` holds it
   * as ownCopy gives it (hashed once: the parser lexes it and files it under it when it is new).
   */
  find(table: TableName, text: string, from: number, to: number, line: number): CachedLine | undefined {
    this.lastKey = undefined;
    if (line >= this.blockEnd || line < this.blockStart) this.compareRun(text, from, line);
    if (line < this.blockEnd && line >= this.blockStart) {
      const same = this.lastByLine[line + this.blockShift];
      if (same !== undefined && same.table === table) return same;
    } else {
      // Outside a run that compared equal, lines mostly differ: startsWith stops at the first difference.
      const near = this.lastByLine[line + this.shift];
      if (near !== undefined && near.table === table && near.text.length === to - from && text.startsWith(near.text, from)) return near;
    }
    const key = ownCopy(text, from, to);
    this.lastKey = key;
    // A file sharing few lines with the last (every chain renamed) misses on every line: after a long run of
    // misses, only every eighth line is looked up, enough to find where lines are shared again.
    if (this.misses >= MISSES_BEFORE_SKIPPING && (line & 7) !== 0) return undefined;
    const e = this.tables.get(table)?.get(key);
    if (e !== undefined) {
      this.shift = e.line - line;
      this.misses = 0;
    } else this.misses++;
    return e;
  }

  /**
   * Compares the run of lines from `line` (at `from` in `text`) with the lines of the last parse it would be, given
   * the lines added or removed above it (`shift`); when they are the same, the run is this parse's block. Runs grow
   * while they match; after one that did not, lines are compared one by one for a while.
   */
  private compareRun(text: string, from: number, line: number): void {
    const last = this.lastText;
    if (last === undefined || line < this.noBlockUntil) return;
    const starts = this.lastStarts;
    const ol = line + this.shift;
    // The run ends at the start of a line of the last text, so it covers whole lines, the last one's newline included.
    const oe = Math.min(ol + this.blockLines, starts.length - 1);
    if (ol < 1 || oe <= ol) return;
    const a = starts[ol];
    const len = starts[oe] - a;
    if (from + len <= text.length && text.slice(from, from + len) === last.slice(a, a + len)) {
      this.blockStart = line;
      this.blockEnd = line + (oe - ol);
      this.blockShift = this.shift;
      this.blockLines = Math.min(this.blockLines * 2, MAX_BLOCK);
    } else {
      this.blockLines = MIN_BLOCK;
      this.noBlockUntil = line + MIN_BLOCK;
    }
  }

  /**
   * How many lines from `line` on make exactly the rules `old` (the last parse's rules of chain `chain` of `table`) as
   * copyLine would make them again: lines of a run that compared equal and did not move, each appending to the chain,
   * all in the version of the table validated by parse `vouchGen`; 0 when they do not. Such a chain can take `old`
   * itself (src/rules/parse.ts): the copies would differ from it in their counters only, which a reload carries over.
   */
  sharedRun(table: TableName, chain: string, old: readonly Rule[], line: number, from: number, text: string, vouchGen: number | undefined): number {
    if (this.blockShift !== 0 || line < this.blockStart || line >= this.blockEnd) return 0;
    const last = this.lastStarts;
    let pos = 0;
    let l = line;
    while (pos < old.length) {
      if (l >= this.blockEnd) {
        // A long chain (KUBE-SERVICES) goes on past the run compared: the next run is compared now.
        this.compareRun(text, from + last[l] - last[line], l);
        if (this.blockShift !== 0 || l < this.blockStart || l >= this.blockEnd) return 0;
      }
      const e = this.lastByLine[l];
      if (e === undefined || e.decl || e.table !== table || e.chain !== chain || e.line !== l || e.gen !== vouchGen) return 0;
      if (!madeOf(e, old, pos)) return 0;
      pos += e.count;
      l++;
    }
    return l - line;
  }

  /**
   * The `n` lines from `line` (at `from` in the text) that sharedRun found, as used by this parse; their rules with
   * HAS_STATE (in `old`, the rules they make) are added to `stateful`. Returns their facts; `starts` gets where each
   * of them starts, and the line after them.
   */
  useShared(line: number, n: number, from: number, old: readonly Rule[], stateful: Rule[]): number {
    const last = this.lastStarts;
    const base = from - last[line];
    let facts = 0;
    let pos = 0;
    for (let l = line; l < line + n; l++) {
      const e = this.lastByLine[l]!;
      this.starts[l] = last[l] + base;
      e.gen = this.gen;
      this.byLine[l] = e;
      facts |= e.facts;
      if ((e.facts & HAS_STATE) !== 0) for (let k = 0; k < e.count; k++) stateful.push(old[pos + k]);
      pos += e.count;
    }
    this.starts[line + n] = last[line + n] + base;
    this.stats.reused += n;
    this.stats.sharedChains++;
    return facts;
  }

  /** The line this parse used at `line` (byLine): a cached line, or one parsed and remembered. */
  lineAt(line: number): CachedLine | undefined {
    return this.byLine[line];
  }

  /** A cached line was used at `line` of this parse. */
  used(e: CachedLine, line: number): void {
    e.gen = this.gen;
    this.byLine[line] = e;
  }

  /** The slot of user chain `name` of `table`. */
  slotFor(table: TableName, name: string): ChainSlot {
    const l = this.lastSlot;
    if (l !== undefined && this.lastSlotName === name && this.lastSlotTable === table) return l;
    let m = this.slots.get(table);
    if (m === undefined) {
      m = new Map();
      this.slots.set(table, m);
    }
    let slot = m.get(name);
    if (slot === undefined) {
      slot = { chain: undefined, last: undefined, serial: 0, gen: 0 };
      m.set(name, slot);
    }
    this.lastSlot = slot;
    this.lastSlotTable = table;
    this.lastSlotName = name;
    return slot;
  }

  /** User chain `chain` was declared, in the table build `serial`. */
  declared(slot: ChainSlot, chain: Chain, serial: number): void {
    if (slot.gen !== this.gen) slot.last = slot.gen === this.gen - 1 ? slot.chain : undefined;
    slot.chain = chain;
    slot.serial = serial;
    slot.gen = this.gen;
    this.decls++;
  }

  /** A `:name - [p:b]` line at `line` declared the new user chain `chain` (by its text, the key). */
  setDecl(table: TableName, text: string, line: number, chain: Chain, serial: number): void {
    const m = this.linesOf(table);
    const slot = this.slotFor(table, chain.name);
    this.declared(slot, chain, serial);
    if (!m.has(text)) this.size++;
    const e: CachedLine = {
      text,
      table,
      gen: this.gen,
      line,
      chain: chain.name,
      inIface: false,
      outIface: false,
      rules: [],
      ids: [],
      count: 0,
      first: undefined,
      firstId: '',
      counters: undefined,
      facts: 0,
      decl: true,
      slot,
    };
    m.set(text, e);
    this.byLine[line] = e;
  }

  private linesOf(table: TableName): Map<string, CachedLine> {
    let m = this.tables.get(table);
    if (m === undefined) {
      m = new Map();
      this.tables.set(table, m);
    }
    return m;
  }

  set(table: TableName, text: string, line: number, chain: string, inIface: boolean, outIface: boolean, rules: readonly Rule[]): void {
    const m = this.linesOf(table);
    const ids = new Array<string>(rules.length);
    let counters: Counters[] | undefined;
    for (let k = 0; k < rules.length; k++) {
      ids[k] = rules[k].id;
      const c = rules[k].counters;
      if (c.packets !== 0 || c.bytes !== 0) (counters ??= rules.map(() => ({ packets: 0, bytes: 0 })))[k] = { packets: c.packets, bytes: c.bytes };
    }
    if (!m.has(text)) this.size++;
    const e: CachedLine = {
      text,
      table,
      gen: this.gen,
      line,
      chain,
      inIface,
      outIface,
      rules: [...rules],
      ids,
      count: rules.length,
      first: rules[0],
      firstId: ids[0],
      counters,
      facts: ruleFacts(rules[0]),
      decl: false,
      slot: this.slotFor(table, chain),
    };
    m.set(text, e);
    this.byLine[line] = e;
    this.stats.parsed++;
  }

  /**
   * Ends a parse: lines no parse used since the last one are forgotten once they are a third of what is kept, so a
   * file that keeps changing does not grow the cache without bound.
   */
  *end(): Steps<void> {
    let n = 0;
    // The last parse's chains are not kept past this one (its rules with them).
    for (const m of this.slots.values())
      for (const slot of m.values()) {
        if ((++n & 16383) === 0) yield;
        slot.last = undefined;
      }
    // Slots of chains this parse did not declare go once there are 1,024 of them: each holds the chain an earlier
    // parse declared, and through it that parse's rules of the chain (a file with every chain renamed: all of them).
    let slots = 0;
    for (const m of this.slots.values()) slots += m.size;
    if (slots > this.decls + 1024)
      for (const m of this.slots.values())
        for (const [k, slot] of m) {
          if ((++n & 16383) === 0) yield;
          if (slot.gen === this.gen) continue;
          slot.chain = undefined;
          m.delete(k);
        }
    const used = this.stats.reused + this.stats.parsed + this.decls;
    if (this.size <= used + (used >> 1) + 1024) return;
    for (const m of this.tables.values())
      for (const [k, e] of m) {
        if ((++n & 16383) === 0) yield;
        if (e.gen !== this.gen) {
          m.delete(k);
          this.size--;
        }
      }
  }


  /** Forgets the lines of `table` (a chain of it was renamed, which changes its rules). */
  forget(table: TableName): void {
    const m = this.tables.get(table);
    if (m === undefined) return;
    this.size -= m.size;
    m.clear();
    this.slots.delete(table);
    this.lastSlot = undefined;
    // Nor are the lines of the last parse found by their place any more: the rename may have changed their rules.
    this.byLine = [];
    this.lastByLine = [];
    this.lastText = undefined;
    this.blockEnd = 0;
  }

  /** How many lines it holds. */
  get lines(): number {
    return this.size;
  }
}

/**
 * Whether `old` from `pos` on holds the rules copyLine would make of the unmoved line `e`, but for their counters; with
 * `exact`, with the very ids it gives them too (not numbered as repeats). A location object is made for one line of
 * one parse, and only the line's templates and copies of them (copyLine's, the parser's copyRule) ever hold it: a rule
 * with the templates' location is made of them. What changes a rule after its parse, a rename, makes the cache forget
 * the table's lines.
 */
export function madeOf(e: CachedLine, old: readonly Rule[], pos: number, exact = false): boolean {
  const n = e.count;
  const first = e.first;
  if (first === undefined || pos + n > old.length) return false;
  const loc = first.loc;
  for (let k = 0; k < n; k++) {
    const o = old[pos + k];
    const id = k === 0 ? e.firstId : e.ids[k];
    if (o.loc !== loc || !(exact ? o.id === id : numbered(o.id, id))) return false;
  }
  return true;
}

/**
 * Whether rule `r` is made of the objects a copy of template `t` is, `first` being the first template of its line
 * (copyLine): the line's location, matches and target, the template's addresses, interfaces, protocol and fragment,
 * the same table and chain. Ids and counters aside.
 */
export function madeOfObjects(r: Rule, t: Rule, first: Rule): boolean {
  return (
    r.loc === first.loc &&
    r.matches === first.matches &&
    r.target === first.target &&
    r.src === t.src &&
    r.dst === t.dst &&
    r.inIface === t.inIface &&
    r.outIface === t.outIface &&
    r.proto === t.proto &&
    r.fragment === t.fragment &&
    r.table === t.table &&
    r.chain === t.chain
  );
}

/** Whether `id` is `base`, or `base` numbered as a repeat (`base#n`, src/rules/parse.ts numberChain). */
function numbered(id: string, base: string): boolean {
  return id === base || (id.length > base.length + 1 && id.charCodeAt(base.length) === 35 /* # */ && id.startsWith(base));
}

/** Lookups by text that find nothing, in a row, after which most lines are not looked up. */
const MISSES_BEFORE_SKIPPING = 64;

/** Lines in the first run compared after a difference, and the most in one run. */
const MIN_BLOCK = 16;
const MAX_BLOCK = 4096;

/**
 * `text[from, to)` as a string that does not keep `text` alive (a slice of a long string refers to it). Concatenated
 * with a character and sliced again, V8 flattens the line into a string of its own first.
 */
export function ownCopy(text: string, from: number, to: number): string {
  return ` ${text.slice(from, to)}`.slice(1);
}

/**
 * The rules of a cached line for this parse, appended to `out`: Rule objects and counters of their own (both change
 * while the ruleset is in force), the rest shared with the line's rules of the last parse, nothing of which changes
 * once parsed. When the line moved, new location objects for the rules, their matches and their target, shared by the
 * line's rules as the parser shares them (one matches array and one target per line). Every field, in makeRule's
 * order, so the rules have the one object shape parsed ones have. The rules of a moved line become its templates. `out` appends a rule to
 * `chain`, and the rules are listed in `stateful` too when it is given (a function and arguments, not a closure: one
 * closure per line was 5 MB of garbage per reload at 110,000 rules).
 */
export function copyLine(
  e: CachedLine,
  file: string,
  line: number,
  zeroCounters: boolean,
  chain: Chain,
  out: (chain: Chain, r: Rule) => void,
  stateful: Rule[] | undefined,
): void {
  const first = e.first!;
  let matches = first.matches;
  let loc = first.loc;
  let target = first.target;
  // The cache is bound to one file name (ParseCache.begin): the templates' locations name `file`.
  const moved = e.line !== line;
  if (moved) {
    loc = { file, line, column: loc.column };
    const ms = matches;
    if (ms.length > 0) {
      matches = new Array<MatchUse>(ms.length);
      for (let k = 0; k < ms.length; k++) {
        const m = ms[k];
        matches[k] = { ext: m.ext, opts: m.opts, loc: { file, line, column: m.loc.column } };
      }
    }
    const t = target;
    if (t !== undefined)
      target =
        t.kind === 'chain'
          ? { kind: 'chain', chain: t.chain, goto: t.goto, loc: { file, line, column: t.loc.column } }
          : { kind: 'extension', ext: t.ext, opts: t.opts, loc: { file, line, column: t.loc.column } };
    e.line = line;
  }
  const n = e.count;
  for (let k = 0; k < n; k++) {
    const t = k === 0 ? first : e.rules[k];
    const c = zeroCounters ? undefined : e.counters?.[k];
    const r: Rule = {
      id: k === 0 ? e.firstId : e.ids[k],
      table: e.table,
      chain: e.chain,
      src: t.src,
      dst: t.dst,
      inIface: t.inIface,
      outIface: t.outIface,
      proto: t.proto,
      fragment: t.fragment,
      matches,
      target,
      counters: c === undefined ? { packets: 0, bytes: 0 } : { packets: c.packets, bytes: c.bytes },
      loc,
    };
    // A moved line's rules become its templates (they hold its new locations); an unmoved line keeps its templates,
    // which spares 110,000 stores of new objects into old ones (each remembered for the next scavenge).
    if (moved) {
      e.rules[k] = r;
      if (k === 0) e.first = r;
    }
    out(chain, r);
    if (stateful !== undefined) stateful.push(r);
  }
}
