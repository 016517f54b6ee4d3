// Ruleset -> the program the native matcher runs (native/matcher.cc, docs/matcher.md). One program per family: for
// every hook the tables it passes through in HOOK_TABLES order, every chain with its rules, each rule's base fields,
// its matches as ops in order and its target. What the matcher cannot evaluate compiles to a SLOW op or target at
// the place it stands, so a packet goes to JavaScript only when its walk reaches it.
//
// Program format (32-bit words; ops/format.ts holds the constants):
//   header     MAGIC, VERSION, family (4|6), counter count, chain count, word count
//   hooks      for NF_INET hook 0..4: table count n, then n x [table id, built-in chain index, jump stack limit]
//   directory  chain count x word offset of the chain's record
//   chain      [table id, built-in 0|1, policy (0 ACCEPT, 1 DROP, 2 none), policy counter id or NONE, rule count r,
//               keyed 0|1, r x word offset of the rule's record, keyed: r x key (7 words: kind 0 wild | 1 dst,
//               protocol or NONE, destination port or NONE, 4 address words)]
//   rule       [length in words, counter id, base flags, -s (4 address + 4 mask words), -d (same), -i name (4 words,
//               NUL padded, '+' dropped), -o name, -p protocol, each present only when its flag is set; op count, ops
//               ([opcode, payload length, payload...]); target [kind, a, b] (T.NAT: then b = NAT_WORDS request words,
//               ops/nat.ts)]; an opcode or target kind with bit 16 (OP_UNSTABLE) set is not flow-stable where it stands
//               (engine.ts flowInfo)
// Counter id k is counters[k]: the engine's own Counters objects (rules' and built-in chains' policy), so hits the
// matcher counts can be added to them. Keys are keys.ts's ruleKey() for 'dst' keys; mark and interface keys count as
// wildcards (the matcher's lookup only narrows by destination, protocol and port).
import { keepsState } from '../rules/facts';
import { flowInfo, HOOK_TABLES } from '../engine/engine';
import type { Chain, Counters, MatchUse, Rule, RuleTarget, Ruleset, Table } from '../rules/model';
import { HOOKS, TABLES } from '../rules/model';
import type { NfqueueOpts } from '../extensions/NFQUEUE';
import type { MarkOpts } from '../extensions/MARK-target';
import { ruleKey } from './keys';
import * as F from './ops/format';
import { MATCH_OPS, NO_OP } from './ops/index';
import { natTarget } from './ops/nat';
import { op } from './ops/op';
import { runSync, type Steps } from '../steps';
import { ChainReuse, type ChainList, type PreviousProgram } from './program-reuse';

/** engine.ts flowInfo's bit for a target that is not flow-stable. */
const FLOW_TARGET_UNSTABLE = 0x10000;

export interface Program {
  words: Uint32Array;
  counters: Counters[];
  /** Chains copied from the previous program (program-reuse.ts) rather than compiled. */
  reusedChains: number;
}

/** Chains with fewer rules are walked (as the engine's index does, DEFAULT_MIN_RULES). */
export const KEYED_MIN_RULES = 8;

/** Rules compiled between two yields of compileProgramSteps. */
const RULES_PER_STEP = 4096;

const enc = new TextEncoder();

/** At least `length` words, zero (the daemon's: memory the matcher runs in place, src/daemon/matcher-programs.ts). */
export type WordAlloc = (length: number) => Uint32Array;

const newWords: WordAlloc = (length) => new Uint32Array(length);

/** A growing word buffer: a 400,000-rule ruleset is millions of words, written without intermediate arrays. */
export class Words {
  buf: Uint32Array;
  length = 0;

  /** `hint`: the words expected, so a large program is not copied over and over as it grows. */
  constructor(hint = 1 << 12, private readonly alloc = newWords) {
    this.buf = alloc(Math.max(1 << 12, hint));
  }

  private grow(need: number): void {
    let n = this.buf.length;
    while (n < this.length + need) n *= 2;
    const b = this.alloc(n);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
  }

  push(w: number): void {
    if (this.length === this.buf.length) this.grow(1);
    this.buf[this.length++] = w >>> 0;
  }

  pushAll(ws: readonly number[]): void {
    if (this.length + ws.length > this.buf.length) this.grow(ws.length);
    for (let i = 0; i < ws.length; i++) this.buf[this.length++] = ws[i] >>> 0;
  }

  /** Reserves `n` words (zero) and returns where they start. */
  reserve(n: number): number {
    if (this.length + n > this.buf.length) this.grow(n);
    const at = this.length;
    this.length += n;
    return at;
  }

  addr(a: Uint8Array): void {
    if (this.length + 4 > this.buf.length) this.grow(4);
    const b = this.buf;
    const at = this.length;
    b[at] = b[at + 1] = b[at + 2] = b[at + 3] = 0;
    for (let i = 0; i < a.length && i < 16; i++) b[at + (i >> 2)] = (b[at + (i >> 2)] | (a[i] << (24 - 8 * (i & 3)))) >>> 0;
    this.length += 4;
  }
}

function nameWords(name: string): number[] | undefined {
  const bytes = enc.encode(name);
  if (bytes.length > 15) return undefined;
  const w = [0, 0, 0, 0];
  bytes.forEach((c, i) => (w[i >> 2] = (w[i >> 2] | (c << (8 * (i & 3)))) >>> 0));
  return w;
}

const SLOW_OP = op(F.OP.SLOW, []);

function matchOp(m: MatchUse, family: 4 | 6): number[] | undefined {
  const e = m.ext;
  // A match that keeps state (statistic's nth mode, limit, ...) has it in JavaScript.
  if (e.match === undefined || keepsState(m) || e.unsupported !== undefined) return SLOW_OP;
  if (e.unsupportedFor?.(m.opts) !== undefined) return SLOW_OP;
  if (e.name === NO_OP) return undefined;
  const code = MATCH_OPS.get(e.name)?.(m, family);
  return code ?? SLOW_OP;
}

function target(out: Words, t: RuleTarget | undefined, table: Table, chainIndex: Map<Chain, number>): void {
  let kind: number = F.T.SLOW;
  let a = 0;
  let b = 0;
  if (t === undefined) kind = F.T.NONE;
  else if (t.kind === 'chain') {
    const c = table.chains.get(t.chain);
    if (c !== undefined) {
      kind = t.goto ? F.T.GOTO : F.T.JUMP;
      a = chainIndex.get(c)!;
    }
  } else if (t.ext.apply !== undefined) {
    switch (t.ext.name) {
      case 'ACCEPT':
        kind = F.T.ACCEPT;
        break;
      case 'DROP':
        kind = F.T.DROP;
        break;
      case 'RETURN':
        kind = F.T.RETURN;
        break;
      case 'MARK': {
        const o = t.opts as MarkOpts;
        kind = F.T.MARK;
        a = o.value;
        b = o.mask;
        break;
      }
      case 'NFQUEUE': {
        const o = t.opts as NfqueueOpts;
        if (o.total === 1) {
          kind = F.T.QUEUE;
          a = o.queue;
        }
        break;
      }
      default: {
        const nat = table.name === 'nat' ? natTarget(t.ext.name, t.opts) : undefined;
        if (nat !== undefined) {
          out.push(F.T.NAT);
          out.pushAll(nat);
          return;
        }
      }
    }
  }
  out.push(kind);
  out.push(a);
  out.push(b);
}

function rule(out: Words, r: Rule, counter: number, flow: number, family: 4 | 6, table: Table, chainIndex: Map<Chain, number>): void {
  const start = out.reserve(3);
  let flags = 0;
  if (r.src) {
    flags |= F.F_SRC | (r.src.negated ? F.F_SRC_NEG : 0);
    out.addr(r.src.value.addr);
    out.addr(r.src.value.mask);
  }
  if (r.dst) {
    flags |= F.F_DST | (r.dst.negated ? F.F_DST_NEG : 0);
    out.addr(r.dst.value.addr);
    out.addr(r.dst.value.mask);
  }
  if (r.inIface) flags |= iface(out, r.inIface.value, r.inIface.negated, F.F_IN, F.F_IN_NEG, F.F_IN_PLUS);
  if (r.outIface) flags |= iface(out, r.outIface.value, r.outIface.negated, F.F_OUT, F.F_OUT_NEG, F.F_OUT_PLUS);
  if (r.proto) {
    flags |= F.F_PROTO | (r.proto.negated ? F.F_PROTO_NEG : 0);
    out.push(r.proto.value);
  }
  if (r.fragment) flags |= F.F_FRAG | (r.fragment.negated ? F.F_FRAG_NEG : 0);
  const countAt = out.reserve(1);
  let ops = 0;
  // flowInfo (engine.ts): the leading flow-stable matches; an op past them marks the decision unstable when it runs.
  const stable = flow & 0xffff;
  for (let j = 0; j < r.matches.length; j++) {
    const o = matchOp(r.matches[j], family);
    if (o === undefined) continue;
    const at = out.length;
    out.pushAll(o);
    if (j >= stable) out.buf[at] |= F.OP_UNSTABLE;
    ops++;
  }
  out.buf[countAt] = ops;
  const t = out.length;
  target(out, r.target, table, chainIndex);
  if ((flow & FLOW_TARGET_UNSTABLE) !== 0) out.buf[t] |= F.OP_UNSTABLE;
  out.buf[start] = out.length - start;
  out.buf[start + 1] = counter;
  out.buf[start + 2] = flags;
}

function iface(out: Words, spec: string, negated: boolean, on: number, neg: number, plus: number): number {
  const isPlus = spec.endsWith('+');
  const w = nameWords(isPlus ? spec.slice(0, -1) : spec);
  out.pushAll(w ?? [0, 0, 0, 0]);
  return on | (negated ? neg : 0) | (isPlus ? plus : 0) | (w === undefined ? F.F_SLOW : 0);
}

function key(out: Words, r: Rule): void {
  const k = ruleKey(r);
  if (k.kind !== 'dst' || !r.dst) {
    out.pushAll([0, F.NONE, F.NONE, 0, 0, 0, 0]);
    return;
  }
  out.push(1);
  out.push(k.proto ?? F.NONE);
  out.push(k.port ?? F.NONE);
  out.addr(r.dst.value.addr);
}

export function compileProgram(rules: Ruleset, family: 4 | 6, prev?: PreviousProgram, alloc?: WordAlloc): Program {
  return runSync(compileProgramSteps(rules, family, prev, alloc));
}

/** Words enough for most programs of these chains: unused words of a block are never touched, so cost no memory. */
function firstSize(chains: ChainList): number {
  let n = 64;
  for (const { chain } of chains) n += 8 + 32 * chain.rules.length;
  return n;
}

/**
 * Every chain of the ruleset in the program's order: tables in TABLES order, chains in the table's. Kept with the
 * ruleset: the next reload's compile lists the ruleset in force again, 40,000 objects at 10,000 services. No one
 * adds or removes a chain of a parsed ruleset.
 */
function chainList(rules: Ruleset): ChainList {
  const known = chainLists.get(rules);
  if (known !== undefined) return known;
  const chains: { chain: Chain; table: Table }[] = [];
  for (const name of TABLES) {
    const t = rules.tables.get(name);
    if (t) for (const c of t.chains.values()) chains.push({ chain: c, table: t });
  }
  chainLists.set(rules, chains);
  return chains;
}

const chainLists = new WeakMap<Ruleset, ChainList>();

/**
 * compileProgram in steps (src/steps.ts): a 400,000-rule ruleset yields every few thousand rules. With `prev`, the
 * program in force and its ruleset, the chains that did not change are copied from it (program-reuse.ts). `alloc`
 * gives the memory the words are written into.
 */
export function* compileProgramSteps(rules: Ruleset, family: 4 | 6, prev?: PreviousProgram, alloc?: WordAlloc): Steps<Program> {
  const counters: Counters[] = [];
  const chains = chainList(rules);
  const chainIndex = new Map<Chain, number>();
  for (let k = 0; k < chains.length; k++) chainIndex.set(chains[k].chain, k);
  const reuse = prev !== undefined && prev.words[2] === family ? new ChainReuse(prev, chainList(prev.rules), chains) : undefined;
  const stackLimit = new Map<Table, number>();
  for (const { table } of chains) {
    if (stackLimit.has(table)) continue;
    let user = 0;
    for (const c of table.chains.values()) if (!c.builtin) user++;
    stackLimit.set(table, user + 1);
  }
  // A reload's program is about the size of the one in force; a first one, of its rules (a kube-proxy rule takes 25
  // words): grown by doubling instead, it would leave a trail of buffers to collect.
  const out = new Words(prev === undefined ? firstSize(chains) : prev.words.length + (prev.words.length >> 4), alloc);
  out.pushAll([F.MAGIC, F.VERSION, family, 0, chains.length, 0]);
  for (const hook of HOOKS) {
    const countAt = out.reserve(1);
    let n = 0;
    for (const tname of HOOK_TABLES[hook]) {
      const t = rules.tables.get(tname);
      const c = t?.chains.get(hook);
      if (!t || !c || !c.builtin) continue;
      out.pushAll([F.TABLE_ID[tname], chainIndex.get(c)!, stackLimit.get(t)!]);
      n++;
    }
    out.buf[countAt] = n;
  }
  const dirAt = out.reserve(chains.length);
  let work = 0;
  for (let k = 0; k < chains.length; ) {
    const copied = reuse?.copyRun(out, k, dirAt, counters.length, RULES_PER_STEP - work) ?? 0;
    if (copied > 0) {
      for (const end = k + copied; k < end; k++) {
        const chain = chains[k].chain;
        if (chain.builtin) counters.push(chain.counters);
        const rs = chain.rules;
        for (let i = 0; i < rs.length; i++) counters.push(rs[i].counters);
        work += rs.length;
      }
      if (work >= RULES_PER_STEP) {
        work = 0;
        yield;
      }
      continue;
    }
    const { chain, table } = chains[k];
    out.buf[dirAt + k] = out.length;
    k++;
    let policyCounter = F.NONE;
    if (chain.builtin) {
      policyCounter = counters.length;
      counters.push(chain.counters);
    }
    const rs = chain.rules;
    const n = rs.length;
    let keyed = false;
    if (n >= KEYED_MIN_RULES) for (let i = 0; i < n && !keyed; i++) keyed = ruleKey(rs[i]).kind === 'dst';
    out.pushAll([F.TABLE_ID[table.name], chain.builtin ? 1 : 0, chain.policy === undefined ? 2 : chain.policy === 'DROP' ? 1 : 0]);
    out.pushAll([policyCounter, n, keyed ? 1 : 0]);
    const flow = flowInfo(chain);
    const offAt = out.reserve(n);
    if (keyed) for (let i = 0; i < n; i++) key(out, rs[i]);
    for (let i = 0; i < n; i++) {
      out.buf[offAt + i] = out.length;
      const id = counters.length;
      counters.push(rs[i].counters);
      rule(out, rs[i], id, flow[i], family, table, chainIndex);
      if (++work >= RULES_PER_STEP) {
        work = 0;
        yield;
      }
    }
  }
  out.buf[3] = counters.length;
  out.buf[5] = out.length;
  // A view, not a copy (12 MB at 10,000 services).
  return { words: out.buf.subarray(0, out.length), counters, reusedChains: reuse?.copied ?? 0 };
}
