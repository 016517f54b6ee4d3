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
//               ([opcode, payload length, payload...]); target [kind, a, b]]
// Counter id k is counters[k]: the engine's own Counters objects (rules' and built-in chains' policy), so hits the
// matcher counts can be added to them. Keys are keys.ts's ruleKey() for 'dst' keys; mark and interface keys count as
// wildcards (the matcher's lookup only narrows by destination, protocol and port).
import { HOOK_TABLES } from '../engine/engine';
import type { Chain, Counters, MatchUse, Rule, RuleTarget, Ruleset, Table } from '../rules/model';
import { HOOKS, TABLES } from '../rules/model';
import type { NfqueueOpts } from '../extensions/NFQUEUE';
import type { MarkOpts } from '../extensions/MARK-target';
import { ruleKey } from './keys';
import * as F from './ops/format';
import { MATCH_OPS, NO_OP } from './ops/index';
import { op } from './ops/op';

export interface Program {
  words: Uint32Array;
  counters: Counters[];
}

/** Chains with fewer rules are walked (as the engine's index does, DEFAULT_MIN_RULES). */
export const KEYED_MIN_RULES = 8;

const enc = new TextEncoder();

function nameWords(name: string): number[] | undefined {
  const bytes = enc.encode(name);
  if (bytes.length > 15) return undefined;
  const w = [0, 0, 0, 0];
  bytes.forEach((c, i) => (w[i >> 2] = (w[i >> 2] | (c << (8 * (i & 3)))) >>> 0));
  return w;
}

function matchOp(m: MatchUse, family: 4 | 6): number[] | undefined {
  const e = m.ext;
  if (e.match === undefined || e.createState !== undefined || e.unsupported !== undefined) return op(F.OP.SLOW, []);
  if (e.unsupportedFor?.(m.opts) !== undefined) return op(F.OP.SLOW, []);
  if (e.name === NO_OP) return undefined;
  const code = MATCH_OPS.get(e.name)?.(m, family);
  return code ?? op(F.OP.SLOW, []);
}

function targetWords(t: RuleTarget | undefined, table: Table, chainIndex: Map<Chain, number>): number[] {
  if (t === undefined) return [F.T.NONE, 0, 0];
  if (t.kind === 'chain') {
    const c = table.chains.get(t.chain);
    if (c === undefined) return [F.T.SLOW, 0, 0];
    return [t.goto ? F.T.GOTO : F.T.JUMP, chainIndex.get(c)!, 0];
  }
  if (t.ext.apply === undefined) return [F.T.SLOW, 0, 0];
  switch (t.ext.name) {
    case 'ACCEPT':
      return [F.T.ACCEPT, 0, 0];
    case 'DROP':
      return [F.T.DROP, 0, 0];
    case 'RETURN':
      return [F.T.RETURN, 0, 0];
    case 'MARK': {
      const o = t.opts as MarkOpts;
      return [F.T.MARK, o.value >>> 0, o.mask >>> 0];
    }
    case 'NFQUEUE': {
      const o = t.opts as NfqueueOpts;
      return o.total === 1 ? [F.T.QUEUE, o.queue, 0] : [F.T.SLOW, 0, 0];
    }
    default:
      return [F.T.SLOW, 0, 0];
  }
}

function ruleWords(r: Rule, counter: number, family: 4 | 6, table: Table, chainIndex: Map<Chain, number>): number[] {
  let flags = 0;
  const base: number[] = [];
  if (r.src) {
    flags |= F.F_SRC | (r.src.negated ? F.F_SRC_NEG : 0);
    base.push(...F.addrWords(r.src.value.addr), ...F.addrWords(r.src.value.mask));
  }
  if (r.dst) {
    flags |= F.F_DST | (r.dst.negated ? F.F_DST_NEG : 0);
    base.push(...F.addrWords(r.dst.value.addr), ...F.addrWords(r.dst.value.mask));
  }
  for (const [spec, on, neg, plus] of [
    [r.inIface, F.F_IN, F.F_IN_NEG, F.F_IN_PLUS],
    [r.outIface, F.F_OUT, F.F_OUT_NEG, F.F_OUT_PLUS],
  ] as const) {
    if (!spec) continue;
    const isPlus = spec.value.endsWith('+');
    const w = nameWords(isPlus ? spec.value.slice(0, -1) : spec.value);
    flags |= on | (spec.negated ? neg : 0) | (isPlus ? plus : 0);
    if (w === undefined) flags |= F.F_SLOW;
    base.push(...(w ?? [0, 0, 0, 0]));
  }
  if (r.proto) {
    flags |= F.F_PROTO | (r.proto.negated ? F.F_PROTO_NEG : 0);
    base.push(r.proto.value >>> 0);
  }
  if (r.fragment) flags |= F.F_FRAG | (r.fragment.negated ? F.F_FRAG_NEG : 0);
  const ops: number[][] = [];
  for (const m of r.matches) {
    const o = matchOp(m, family);
    if (o !== undefined) ops.push(o);
  }
  const body = [counter, flags, ...base, ops.length, ...ops.flat(), ...targetWords(r.target, table, chainIndex)];
  return [body.length + 1, ...body];
}

function keyWords(r: Rule): number[] {
  const k = ruleKey(r);
  if (k.kind !== 'dst' || !r.dst) return [0, F.NONE, F.NONE, 0, 0, 0, 0];
  return [1, k.proto ?? F.NONE, k.port ?? F.NONE, ...F.addrWords(r.dst.value.addr)];
}

export function compileProgram(rules: Ruleset, family: 4 | 6): Program {
  const counters: Counters[] = [];
  const chains: { chain: Chain; table: Table }[] = [];
  const chainIndex = new Map<Chain, number>();
  for (const name of TABLES) {
    const t = rules.tables.get(name);
    if (!t) continue;
    for (const c of t.chains.values()) {
      chainIndex.set(c, chains.length);
      chains.push({ chain: c, table: t });
    }
  }
  const stackLimit = new Map<Table, number>();
  for (const { table } of chains) {
    if (stackLimit.has(table)) continue;
    let user = 0;
    for (const c of table.chains.values()) if (!c.builtin) user++;
    stackLimit.set(table, user + 1);
  }
  const hooks: number[] = [];
  for (const hook of HOOKS) {
    const entries: number[] = [];
    for (const tname of HOOK_TABLES[hook]) {
      const t = rules.tables.get(tname);
      const c = t?.chains.get(hook);
      if (!t || !c || !c.builtin) continue;
      entries.push(F.TABLE_ID[tname], chainIndex.get(c)!, stackLimit.get(t)!);
    }
    hooks.push(entries.length / 3, ...entries);
  }
  const header = [F.MAGIC, F.VERSION, family, 0, chains.length, 0];
  const out: number[] = [...header, ...hooks];
  const dirAt = out.length;
  for (let k = 0; k < chains.length; k++) out.push(0);
  for (let k = 0; k < chains.length; k++) {
    const { chain, table } = chains[k];
    out[dirAt + k] = out.length;
    let policyCounter = F.NONE;
    if (chain.builtin) {
      policyCounter = counters.length;
      counters.push(chain.counters);
    }
    const n = chain.rules.length;
    const keys = n >= KEYED_MIN_RULES ? chain.rules.map(keyWords) : undefined;
    const keyed = keys !== undefined && keys.some((w) => w[0] === 1);
    out.push(F.TABLE_ID[table.name], chain.builtin ? 1 : 0, chain.policy === undefined ? 2 : chain.policy === 'DROP' ? 1 : 0);
    out.push(policyCounter, n, keyed ? 1 : 0);
    const offAt = out.length;
    for (let i = 0; i < n; i++) out.push(0);
    if (keyed) for (const w of keys!) out.push(...w);
    for (let i = 0; i < n; i++) {
      out[offAt + i] = out.length;
      const r = chain.rules[i];
      const id = counters.length;
      counters.push(r.counters);
      for (const w of ruleWords(r, id, family, table, chainIndex)) out.push(w);
    }
  }
  out[3] = counters.length;
  out[5] = out.length;
  return { words: Uint32Array.from(out, (x) => x >>> 0), counters };
}
