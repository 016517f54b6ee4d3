// A reload compiles again only the chains that changed. kube-proxy rewrites its whole table on every sync, but the line
// cache (src/rules/line-cache.ts) gives every line it has seen the same objects as before: its addresses, interfaces,
// matches' extensions and options, target. No one ever changes those objects, and a rule's record (program.ts) is
// made of them, the family and the table, and of two things that move with any reload: the rule's counter id and the
// index of the chain it jumps to. So a chain whose rules are all made of the very objects the program in force was
// compiled from gets that program's words copied, with the counter ids and jumps written again; a chain with one new
// object anywhere is compiled as at start. The test: test/compile/program-reuse.test.ts compares the words both ways.
import type { Chain, MatchUse, Rule, RuleTarget, Ruleset, Table } from '../rules/model';
import * as F from './ops/format';
import type { Words } from './program';

/** The program in force for a family and the ruleset it was compiled from. */
export interface PreviousProgram {
  rules: Ruleset;
  words: Uint32Array;
}

/** Chains a new program lists, in its order: program.ts's chainList(). */
export type ChainList = readonly { chain: Chain; table: Table }[];

/** Places past the last chain matched where the next one is looked for before the name map (as carryCounters). */
const LOOK_AHEAD = 4;

export class ChainReuse {
  private readonly w: Uint32Array;
  private readonly dirAt: number;
  /** For each new chain, the old chain of the same table and name (-1: none); and the other way. */
  private readonly oldOf: Int32Array;
  private readonly newOf: Int32Array;
  /** Chains copied so far. */
  copied = 0;

  constructor(
    prev: PreviousProgram,
    private readonly oldChains: ChainList,
    private readonly chains: ChainList,
  ) {
    this.w = prev.words;
    this.dirAt = directoryAt(prev.words);
    this.oldOf = new Int32Array(chains.length).fill(-1);
    this.newOf = new Int32Array(oldChains.length).fill(-1);
    if (prev.words[4] !== oldChains.length || prev.words[5] !== prev.words.length) return; // not that ruleset's program
    let byName: Map<string, number> | undefined;
    let at = 0;
    for (let k = 0; k < chains.length; k++) {
      const { chain, table } = chains[k];
      let j = -1;
      for (let g = at; g < oldChains.length && g < at + LOOK_AHEAD; g++)
        if (oldChains[g].chain.name === chain.name && oldChains[g].table.name === table.name) {
          j = g;
          break;
        }
      // A chain the old ruleset does not have (an endpoint's new chain) needs no map of the old ones' places.
      if (j < 0 && prev.rules.tables.get(table.name)?.chains.get(chain.name) === undefined) continue;
      if (j < 0) {
        if (byName === undefined) {
          byName = new Map();
          for (let g = 0; g < oldChains.length; g++) byName.set(`${oldChains[g].table.name} ${oldChains[g].chain.name}`, g);
        }
        j = byName.get(`${table.name} ${chain.name}`) ?? -1;
      }
      if (j < 0) continue;
      at = j + 1;
      this.oldOf[k] = j;
      this.newOf[j] = k;
    }
  }

  /**
   * Copies the run of chains from new chain `k` on whose rules are made of the same objects as their old chains and
   * that follow one another in both programs, in one copy of words, then writes what moved: the directory entries
   * (from `dirAt`), the rules' offsets, the counter ids from `counterBase` (each built-in chain's policy first, then
   * its rules) and the jumps. The run ends after the chain that brings it to `maxRules` rules (a step's work). Returns
   * how many chains it copied: 0, having written nothing, when chain `k` must be compiled.
   */
  copyRun(out: Words, k: number, dirAt: number, counterBase: number, maxRules: number): number {
    const w = this.w;
    const j0 = this.oldOf[k];
    if (j0 < 0) return 0;
    let count = 0;
    let rules = 0;
    while (rules < maxRules && k + count < this.chains.length && this.oldOf[k + count] === j0 + count && this.copyable(k + count, j0 + count))
      rules += this.chains[k + count++].chain.rules.length;
    if (count === 0) return 0;
    const from = this.start(j0);
    const to = this.start(j0 + count);
    const at = out.reserve(to - from);
    const buf = out.buf;
    // One view per run, not per chain: a view is an object for the collector, and a loop of word stores in code the
    // JIT has not optimized yet (a daemon's first reloads) costs more than the copy.
    buf.set(w.subarray(from, to), at);
    const delta = at - from;
    let id = counterBase;
    for (let c = 0; c < count; c++) {
      const chain = this.chains[k + c].chain;
      const p = this.start(j0 + c) + delta;
      buf[dirAt + k + c] = p;
      buf[p + 2] = chain.policy === undefined ? 2 : chain.policy === 'DROP' ? 1 : 0;
      buf[p + 3] = chain.builtin ? id++ : F.NONE;
      // The words say which rules jump (copyable checked them), so the rules themselves are not read again: a cache
      // miss or two per rule, 110,000 of them at 10,000 services.
      const n = buf[p + 4];
      for (let i = 0; i < n; i++) {
        const r = (buf[p + 6 + i] += delta);
        buf[r + 1] = id++;
        const t = targetAt(buf, r);
        if (isJump(buf[t])) buf[t + 1] = this.newOf[buf[t + 1]];
      }
    }
    this.copied += count;
    return count;
  }

  /** Where old chain `j`'s record starts (the end of the last one's for j = the old chain count). */
  private start(j: number): number {
    return j < this.oldChains.length ? this.w[this.dirAt + j] : this.w[5];
  }

  /** Whether new chain `k` can be copied from old chain `j`: the same rules, and every jump to a chain still there. */
  private copyable(k: number, j: number): boolean {
    const chain = this.chains[k].chain;
    const old = this.oldChains[j].chain;
    if (old.builtin !== chain.builtin || !sameRules(old.rules, chain.rules)) return false;
    const w = this.w;
    const from = this.start(j);
    if (w[from + 4] !== chain.rules.length) return false;
    // Read from the words: the same rules compile to the same targets, and a rule of a validated ruleset that jumps
    // always compiles to a jump (its chain exists). A jump to a chain gone: compile the chain instead.
    for (let i = 0; i < chain.rules.length; i++) {
      const t = targetAt(w, w[from + 6 + i]);
      if (isJump(w[t]) && this.newOf[w[t + 1]] < 0) return false;
    }
    return true;
  }
}

/** Where the chain directory starts: after the header and the hooks' table lists. */
function directoryAt(w: Uint32Array): number {
  let p = 6;
  for (let h = 0; h < 5; h++) p += 1 + 3 * w[p];
  return p;
}

/** Whether a target's kind word is a jump or goto (its next word the chain's index). */
function isJump(kind: number): boolean {
  const k = kind & ~F.OP_UNSTABLE;
  return k === F.T.JUMP || k === F.T.GOTO;
}

/** Where the target's kind word is in the rule record at `r`. */
function targetAt(w: Uint32Array, r: number): number {
  const flags = w[r + 2];
  let p = r + 3;
  if ((flags & F.F_SRC) !== 0) p += 8;
  if ((flags & F.F_DST) !== 0) p += 8;
  if ((flags & F.F_IN) !== 0) p += 4;
  if ((flags & F.F_OUT) !== 0) p += 4;
  if ((flags & F.F_PROTO) !== 0) p += 1;
  const ops = w[p++];
  for (let o = 0; o < ops; o++) p += 2 + w[p + 1];
  return p;
}

function sameRules(a: readonly Rule[], b: readonly Rule[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !sameRule(a[i], b[i])) return false;
  return true;
}

/** Whether two rules are made of the same objects (a line the line cache moved has new matches and target). */
function sameRule(a: Rule, b: Rule): boolean {
  return (
    a.src === b.src &&
    a.dst === b.dst &&
    a.inIface === b.inIface &&
    a.outIface === b.outIface &&
    a.proto === b.proto &&
    a.fragment === b.fragment &&
    a.table === b.table &&
    sameMatches(a.matches, b.matches) &&
    sameTarget(a.target, b.target)
  );
}

function sameMatches(a: readonly MatchUse[], b: readonly MatchUse[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i].ext !== b[i].ext || a[i].opts !== b[i].opts) return false;
  return true;
}

function sameTarget(a: RuleTarget | undefined, b: RuleTarget | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  if (a.kind === 'chain') return b.kind === 'chain' && a.chain === b.chain && a.goto === b.goto;
  return b.kind === 'extension' && a.ext === b.ext && a.opts === b.opts;
}
