// What iptables-restore (and the kernel's table check behind it) refuses at COMMIT, for one table as it stands:
// jumps to chains that do not exist, loops among user chains (the kernel's mark_source_chains), and targets used
// from tables or hooks they are not allowed in. User chains inherit the hooks of every built-in chain that reaches
// them, as the kernel computes it.
import { RuleError, type TargetHookRule } from '../extensions/types';
import { HOOKS, type Chain, type Family, type Hook, type Rule, type Table } from './model';
import { runSync, type Steps } from '../steps';

/** The chains of a table as numbers, with the jump/goto edges resolved once (one name lookup per jump). */
interface Graph {
  chains: Chain[];
  /** For chain i: edges edgeStart[i] .. edgeStart[i+1]-1. */
  edgeStart: Int32Array;
  edgeDest: Int32Array;
  edgeRule: Rule[];
  /**
   * The rules whose matches or target the kernel restricts to some tables or hooks, with their chain's number, in
   * table order: the only ones the hook checks need to look at again (a large file has few kinds of them).
   */
  checkRules: Rule[];
  checkChain: number[];
}

/** Whether a rule uses a match or target that validation must check against tables and hooks. */
function needsHookCheck(r: Rule, builtin: boolean): boolean {
  const t = r.target;
  if (t !== undefined && t.kind === 'extension' && (t.ext.allowed !== undefined || (builtin && t.ext.allowedFor !== undefined)))
    return true;
  const ms = r.matches;
  for (let j = 0; j < ms.length; j++) if (ms[j].ext.allowedHooks !== undefined) return true;
  return false;
}

/** Chains or rules a step (src/steps.ts) of validating a large table handles. */
const STEP = 4096;

function* buildGraph(table: Table, errors: RuleError[] | undefined): Steps<Graph | undefined> {
  const chains = [...table.chains.values()];
  const index = new Map<string, number>();
  for (let i = 0; i < chains.length; i++) index.set(chains[i].name, i);
  const edgeStart = new Int32Array(chains.length + 1);
  const dest: number[] = [];
  const edgeRule: Rule[] = [];
  const checkRules: Rule[] = [];
  const checkChain: number[] = [];
  let ok = true;
  for (let i = 0; i < chains.length; i++) {
    if ((i & (STEP - 1)) === STEP - 1) yield;
    edgeStart[i] = dest.length;
    const builtin = chains[i].builtin;
    const rules = chains[i].rules;
    for (let k = 0; k < rules.length; k++) {
      const r = rules[k];
      if (needsHookCheck(r, builtin)) {
        checkRules.push(r);
        checkChain.push(i);
      }
      const t = r.target;
      if (t === undefined || t.kind !== 'chain') continue;
      const d = index.get(t.chain);
      if (d === undefined) {
        ok = false;
        errors?.push(new RuleError(`unknown target or chain "${t.chain}" (no such chain in table ${table.name})`, t.loc));
        continue;
      }
      if (chains[d].builtin) {
        ok = false;
        errors?.push(new RuleError(`cannot ${t.goto ? 'goto' : 'jump to'} built-in chain "${t.chain}"`, t.loc));
        continue;
      }
      // Share the declared name's string: later lookups by it hit the map's own key.
      if (t.chain !== chains[d].name) t.chain = chains[d].name;
      dest.push(d);
      edgeRule.push(r);
    }
  }
  edgeStart[chains.length] = dest.length;
  if (!ok) return undefined;
  return { chains, edgeStart, edgeDest: Int32Array.from(dest), edgeRule, checkRules, checkChain };
}

/** Per chain, a bit set of the hooks it is reachable from (bit i = HOOKS[i]), as the kernel's mark_source_chains. */
function hookBits(g: Graph): Uint8Array {
  const bits = new Uint8Array(g.chains.length);
  const stack: number[] = [];
  for (let i = 0; i < g.chains.length; i++) {
    const c = g.chains[i];
    if (!c.builtin) continue;
    const bit = 1 << HOOKS.indexOf(c.name as Hook);
    bits[i] |= bit;
    stack.push(i);
    while (stack.length > 0) {
      const n = stack.pop() as number;
      for (let e = g.edgeStart[n]; e < g.edgeStart[n + 1]; e++) {
        const d = g.edgeDest[e];
        if (bits[d] & bit) continue;
        bits[d] |= bit;
        stack.push(d);
      }
    }
  }
  return bits;
}

/** The hooks of a bit set, in HOOKS order; one array per set (validation only reads them). */
const HOOK_SETS: readonly (readonly Hook[])[] = Array.from({ length: 1 << HOOKS.length }, (_, b) => HOOKS.filter((__, i) => b & (1 << i)));

function hooksOf(b: number): readonly Hook[] {
  return HOOK_SETS[b];
}

/** The hooks from which each chain of the table is reachable (built-in chains: their own). */
export function reachingHooks(table: Table): Map<string, Set<Hook>> {
  const out = new Map<string, Set<Hook>>();
  const g = runSync(buildGraph(table, undefined));
  if (!g) return out;
  const bits = hookBits(g);
  for (let i = 0; i < g.chains.length; i++) out.set(g.chains[i].name, new Set(hooksOf(bits[i])));
  return out;
}

/** A loop among user chains: the rule that closes it and the path, or undefined. Iterative: chains can be deep. */
function findLoop(g: Graph): { rule: Rule; path: string[] } | undefined {
  const n = g.chains.length;
  const color = new Uint8Array(n); // 0 white, 1 on the stack, 2 done
  const stackNode: number[] = [];
  const stackEdge: number[] = [];
  for (let s = 0; s < n; s++) {
    if (color[s] !== 0) continue;
    color[s] = 1;
    stackNode.push(s);
    stackEdge.push(g.edgeStart[s]);
    while (stackNode.length > 0) {
      const top = stackNode.length - 1;
      const node = stackNode[top];
      const e = stackEdge[top];
      if (e >= g.edgeStart[node + 1]) {
        color[node] = 2;
        stackNode.pop();
        stackEdge.pop();
        continue;
      }
      stackEdge[top] = e + 1;
      const d = g.edgeDest[e];
      if (color[d] === 1) {
        const from = stackNode.indexOf(d);
        const path = stackNode.slice(from).map((i) => g.chains[i].name);
        return { rule: g.edgeRule[e], path: [...path, g.chains[d].name] };
      }
      if (color[d] === 0) {
        color[d] = 1;
        stackNode.push(d);
        stackEdge.push(g.edgeStart[d]);
      }
    }
  }
  return undefined;
}

/** Check one table; errors are appended to `errors`. */
export function validateTable(table: Table, family: Family, errors: RuleError[]): void {
  runSync(validateTableSteps(table, family, errors));
}

/** validateTable in steps (src/steps.ts): a 100,000-rule table takes about 0.1 s. */
export function* validateTableSteps(table: Table, family: Family, errors: RuleError[]): Steps<void> {
  void family;
  yield* validate(table, errors, false);
}

/**
 * The same check, and when the table passes, what the next version of it needs to be checked by its changes only
 * (validateChanges).
 */
export function validateTableMemo(table: Table, errors: RuleError[]): Steps<ValidatedTable | undefined> {
  return validate(table, errors, true);
}

function* validate(table: Table, errors: RuleError[], memo: boolean): Steps<ValidatedTable | undefined> {
  const before = errors.length;
  const g = yield* buildGraph(table, errors);
  if (!g) return undefined;
  yield;
  const loop = findLoop(g);
  if (loop) {
    errors.push(new RuleError(`loop among chains: ${loop.path.join(' -> ')}`, loop.rule.target?.loc ?? loop.rule.loc));
    return undefined;
  }
  // The hooks reaching each chain, computed when a check first needs them.
  yield;
  let bits: Uint8Array | undefined = memo ? hookBits(g) : undefined;
  for (let n = 0; n < g.checkRules.length; n++) {
    if ((n & (STEP - 1)) === STEP - 1) yield;
    const i = g.checkChain[n];
    checkRule(table, g.chains[i], g.checkRules[n], () => (bits ??= hookBits(g))[i], errors);
  }
  if (!memo || errors.length > before || bits === undefined) return undefined;
  yield;
  const names = g.chains.map((c) => c.name);
  const index = new Map<string, number>();
  for (let i = 0; i < names.length; i++) {
    if ((i & (STEP - 1)) === STEP - 1) yield;
    index.set(names[i], i);
  }
  return {
    base: { names, index, edgeStart: g.edgeStart, edgeDest: g.edgeDest, hooks: bits },
    addedNames: [],
    addedEdges: [],
    hooks: new Map(),
    generations: 0,
  };
}

/** The hook checks of one rule in chain `c`; `reached` gives the hook bits of `c`. */
function checkRule(table: Table, c: Chain, r: Rule, reached: () => number, errors: RuleError[]): void {
  const ms = r.matches;
  for (let j = 0; j < ms.length; j++) {
    const m = ms[j];
    const ok = m.ext.allowedHooks?.(m.opts);
    if (!ok) continue;
    const hooks = hooksOf(reached());
    if (hooks.every((h) => ok.includes(h))) continue;
    // The kernel's words (xt_check_match): every hook the rule is used from, then the ones allowed.
    errors.push(
      new RuleError(`${m.ext.name} match: used from hooks ${hooks.join('/')}, but only valid from ${ok.join('/')}${via(c, hooks)}`, m.loc),
    );
  }
  const t = r.target;
  if (t === undefined || t.kind !== 'extension') return;
  const allowed = t.ext.allowed;
  if (allowed?.tables && !allowed.tables.includes(table.name)) {
    errors.push(
      new RuleError(
        `target ${t.ext.name} is only valid in table${allowed.tables.length > 1 ? 's' : ''} ${allowed.tables.join(', ')}, not ${table.name}`,
        t.loc,
      ),
    );
    return;
  }
  // allowedFor is checkentry's business, which sees the hook of built-in chains only (see TargetExtension).
  const narrower = c.builtin ? t.ext.allowedFor?.(t.opts) : undefined;
  if (!allowed?.hooks && !narrower?.hooks) return;
  const hooks = hooksOf(reached());
  const bad = hooksOutside(hooks, allowed) ?? hooksOutside(hooks, narrower);
  if (bad)
    errors.push(
      new RuleError(
        `target ${t.ext.name} used from hook ${bad.hooks.join(', ')}, but only usable from ${bad.allowed.join(', ')}${via(c, hooks)}`,
        t.loc,
      ),
    );
}

/**
 * What a validated version of a table leaves for checking the next one by its changes (validateChanges): its jump
 * graph when it was last checked whole (`base`), the chains and jumps versions checked since added, and hook bits
 * per chain that contain every hook reaching it (more only after chains were left out, which only makes the checks
 * stricter, never laxer).
 */
export interface ValidatedTable {
  base: { names: string[]; index: Map<string, number>; edgeStart: Int32Array; edgeDest: Int32Array; hooks: Uint8Array };
  addedNames: string[];
  /** Pairs of chain names: from, to. */
  addedEdges: string[];
  /** Hook bits that replace the base's, and those of chains added since. */
  hooks: Map<string, number>;
  /** Versions checked by their changes since the base. */
  generations: number;
}

/** Versions checked by their changes before the next is checked whole, and the most chains such a check visits. */
const MAX_GENERATIONS = 32;
const MAX_VISITS = 20_000;

/**
 * Checks a version of a table whose every rule is a rule of the version `memo` describes (it passed) or one of
 * `fresh`, and updates `memo` to describe it. False, with `memo` unchanged, when that cannot show it passes: the
 * caller then checks the whole table with validateTableMemo, for the exact errors. Never false for a table that
 * passes while its changes are small.
 *  - A jump of an old rule finds its chain: the chain was there, or it is gone and no rule of the chains that jumped
 *    to it (a superset: the base's jumps and those added since) jumps to it any more.
 *  - A loop would use a new jump: from each new jump's destination, its source must not be reached.
 *  - Hooks only grow along new jumps: they are carried from each new jump's source downstream, and the rules of the
 *    chains that got new hooks are checked again, with the new rules.
 */
export function* validateChanges(table: Table, fresh: readonly Rule[], memo: ValidatedTable): Steps<boolean> {
  if (memo.generations >= MAX_GENERATIONS || memo.addedEdges.length > MAX_VISITS || fresh.length > MAX_VISITS) return false;
  const chains = table.chains;
  const base = memo.base;
  let visits = 0;
  // Chains that are gone (nothing may jump to them) and chains the base did not have, found by walking the chains
  // beside the base's names: most chains keep their order, so a name is looked up only where the two differ.
  let gone: Set<string> | undefined;
  const added: string[] = [];
  const names = base.names;
  let at = 0;
  let n = 0;
  const check = function* (to: number): Steps<void> {
    for (; at < to; at++) {
      if ((++n & (STEP - 1)) === 0) yield;
      if (!chains.has(names[at])) (gone ??= new Set()).add(names[at]);
    }
  };
  for (const name of chains.keys()) {
    if ((++n & (STEP - 1)) === 0) yield;
    if (at < names.length && names[at] === name) {
      at++;
      continue;
    }
    const j = base.index.get(name);
    if (j === undefined) {
      if (!memo.hooks.has(name)) added.push(name);
    } else if (j >= at) {
      // The base's names between were skipped: each is gone, or comes later among the chains.
      yield* check(j);
      at = j + 1;
    }
  }
  yield* check(names.length);
  for (const name of memo.addedNames) if (!chains.has(name)) (gone ??= new Set()).add(name);
  if (gone !== undefined) {
    const sources = new Set<string>();
    for (let i = 0; i < base.names.length; i++) {
      if ((i & (STEP - 1)) === STEP - 1) yield;
      for (let e = base.edgeStart[i]; e < base.edgeStart[i + 1]; e++)
        if (gone.has(base.names[base.edgeDest[e]])) sources.add(base.names[i]);
    }
    for (let k = 0; k < memo.addedEdges.length; k += 2) if (gone.has(memo.addedEdges[k + 1])) sources.add(memo.addedEdges[k]);
    for (const name of sources) {
      const c = chains.get(name);
      if (c === undefined) continue;
      visits += c.rules.length;
      if (visits > MAX_VISITS * 8) return false;
      for (const r of c.rules) if (r.target?.kind === 'chain' && gone.has(r.target.chain)) return false;
    }
  }
  const bitsOf = (name: string, grown: Map<string, number>): number => {
    const g = grown.get(name) ?? memo.hooks.get(name);
    if (g !== undefined) return g;
    const i = base.index.get(name);
    return i === undefined ? 0 : base.hooks[i];
  };
  // New jumps: to a user chain that exists, closing no loop.
  const newEdges: string[] = [];
  const seen = new Set<string>();
  const stack: string[] = [];
  for (const r of fresh) {
    const t = r.target;
    if (t?.kind !== 'chain') continue;
    const d = chains.get(t.chain);
    if (d === undefined || d.builtin) return false;
    newEdges.push(r.chain, d.name);
    seen.clear();
    stack.push(d.name);
    while (stack.length > 0) {
      const n = stack.pop() as string;
      if (n === r.chain) return false;
      if (seen.has(n)) continue;
      seen.add(n);
      const c = chains.get(n);
      if (c === undefined) continue;
      if (++visits > MAX_VISITS) return false;
      for (const x of c.rules) if (x.target?.kind === 'chain') stack.push(x.target.chain);
    }
  }
  // Hooks carried along the new jumps, downstream.
  const grown = new Map<string, number>();
  for (let k = 0; k < newEdges.length; k += 2) {
    stack.push(newEdges[k], newEdges[k + 1]);
    while (stack.length > 0) {
      const to = stack.pop() as string;
      const from = stack.pop() as string;
      const have = bitsOf(to, grown);
      const add = bitsOf(from, grown) & ~have;
      if (add === 0) continue;
      grown.set(to, have | add);
      const c = chains.get(to);
      if (c === undefined) continue;
      if (++visits > MAX_VISITS) return false;
      for (const x of c.rules) if (x.target?.kind === 'chain') stack.push(to, x.target.chain);
    }
  }
  const errors: RuleError[] = [];
  for (const r of fresh) {
    const c = chains.get(r.chain);
    if (c === undefined) return false;
    if (needsHookCheck(r, c.builtin)) checkRule(table, c, r, () => bitsOf(c.name, grown), errors);
  }
  for (const name of grown.keys()) {
    const c = chains.get(name);
    if (c === undefined) continue;
    visits += c.rules.length;
    if (visits > MAX_VISITS * 8) return false;
    for (const r of c.rules) if (needsHookCheck(r, c.builtin)) checkRule(table, c, r, () => bitsOf(name, grown), errors);
  }
  if (errors.length > 0) return false;
  for (const name of added) {
    memo.addedNames.push(name);
    memo.hooks.set(name, 0);
  }
  for (const [name, bits] of grown) memo.hooks.set(name, bits);
  for (const e of newEdges) memo.addedEdges.push(e);
  memo.generations++;
  return true;
}

function hooksOutside(reached: readonly Hook[], rule: TargetHookRule | undefined): { hooks: Hook[]; allowed: readonly Hook[] } | undefined {
  const allowed = rule?.hooks;
  if (!allowed) return undefined;
  // A loop, not filter(): this runs for every rule with a restricted target (every DNAT of a kube-proxy file).
  let hooks: Hook[] | undefined;
  for (const h of reached) if (!allowed.includes(h)) (hooks ??= []).push(h);
  return hooks !== undefined ? { hooks, allowed } : undefined;
}

function via(c: Chain, reached: readonly Hook[]): string {
  return c.builtin ? '' : ` (chain ${c.name} is reached from ${reached.join(', ')})`;
}
