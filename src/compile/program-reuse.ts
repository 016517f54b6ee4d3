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
    chains: ChainList,
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
   * Writes new chain `k`'s record by copying the old one when its rules are made of the same objects, giving it
   * counter ids from `counterBase` (the chain's policy first when built-in, then its rules). Returns false, having
   * written nothing, when the chain must be compiled.
   */
  copy(out: Words, k: number, chain: Chain, counterBase: number): boolean {
    const j = this.oldOf[k];
    if (j < 0) return false;
    const old = this.oldChains[j].chain;
    if (old.builtin !== chain.builtin || !sameRules(old.rules, chain.rules)) return false;
    const w = this.w;
    const from = w[this.dirAt + j];
    const to = j + 1 < this.oldChains.length ? w[this.dirAt + j + 1] : w[5];
    const n = chain.rules.length;
    if (w[from + 4] !== n) return false;
    const at = out.reserve(to - from);
    const buf = out.buf;
    // A loop, not set(subarray()): a view per chain is 40,000 objects for the collector at 10,000 services.
    for (let i = 0; i < to - from; i++) buf[at + i] = w[from + i];
    const delta = at - from;
    buf[at + 2] = chain.policy === undefined ? 2 : chain.policy === 'DROP' ? 1 : 0;
    let id = counterBase;
    buf[at + 3] = chain.builtin ? id++ : F.NONE;
    for (let i = 0; i < n; i++) {
      const r = (buf[at + 6 + i] += delta);
      buf[r + 1] = id++;
      if (chain.rules[i].target?.kind !== 'chain') continue;
      const t = targetAt(buf, r);
      const kind = buf[t] & ~F.OP_UNSTABLE;
      const target = kind === F.T.JUMP || kind === F.T.GOTO ? this.newOf[buf[t + 1]] : -1;
      if (target < 0) {
        out.length = at; // a jump the old program could not make (or to a chain gone): compile it instead
        return false;
      }
      buf[t + 1] = target;
    }
    this.copied++;
    return true;
  }
}

/** Where the chain directory starts: after the header and the hooks' table lists. */
function directoryAt(w: Uint32Array): number {
  let p = 6;
  for (let h = 0; h < 5; h++) p += 1 + 3 * w[p];
  return p;
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
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameRule(a[i], b[i])) return false;
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
