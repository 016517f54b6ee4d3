// What iptables-restore (and the kernel's table check behind it) refuses at COMMIT, for one table as it stands:
// jumps to chains that do not exist, loops among user chains (the kernel's mark_source_chains), and targets used
// from tables or hooks they are not allowed in. User chains inherit the hooks of every built-in chain that reaches
// them, as the kernel computes it.
import { RuleError, type TargetHookRule } from '../extensions/types';
import { HOOKS, type Chain, type Family, type Hook, type Rule, type Table } from './model';

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

function buildGraph(table: Table, errors: RuleError[] | undefined): Graph | undefined {
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
  const g = buildGraph(table, undefined);
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
  void family;
  const g = buildGraph(table, errors);
  if (!g) return;
  const loop = findLoop(g);
  if (loop) {
    errors.push(new RuleError(`loop among chains: ${loop.path.join(' -> ')}`, loop.rule.target?.loc ?? loop.rule.loc));
    return;
  }
  // The hooks reaching each chain, computed when a check first needs them.
  let bits: Uint8Array | undefined;
  for (let n = 0; n < g.checkRules.length; n++) {
    const i = g.checkChain[n];
    const c = g.chains[i];
    const r = g.checkRules[n];
    const ms = r.matches;
    for (let j = 0; j < ms.length; j++) {
      const m = ms[j];
      const ok = m.ext.allowedHooks?.(m.opts);
      if (!ok) continue;
      const hooks = hooksOf((bits ??= hookBits(g))[i]);
      if (hooks.every((h) => ok.includes(h))) continue;
      // The kernel's words (xt_check_match): every hook the rule is used from, then the ones allowed.
      errors.push(
        new RuleError(
          `${m.ext.name} match: used from hooks ${hooks.join('/')}, but only valid from ${ok.join('/')}${via(c, hooks)}`,
          m.loc,
        ),
      );
    }
    const t = r.target;
    if (t === undefined || t.kind !== 'extension') continue;
    const allowed = t.ext.allowed;
    if (allowed?.tables && !allowed.tables.includes(table.name)) {
      errors.push(
        new RuleError(
          `target ${t.ext.name} is only valid in table${allowed.tables.length > 1 ? 's' : ''} ${allowed.tables.join(', ')}, not ${table.name}`,
          t.loc,
        ),
      );
      continue;
    }
    // allowedFor is checkentry's business, which sees the hook of built-in chains only (see TargetExtension).
    const narrower = c.builtin ? t.ext.allowedFor?.(t.opts) : undefined;
    if (!allowed?.hooks && !narrower?.hooks) continue;
    const hooks = hooksOf((bits ??= hookBits(g))[i]);
    const bad = hooksOutside(hooks, allowed) ?? hooksOutside(hooks, narrower);
    if (bad)
      errors.push(
        new RuleError(
          `target ${t.ext.name} used from hook ${bad.hooks.join(', ')}, but only usable from ${bad.allowed.join(', ')}${via(c, hooks)}`,
          t.loc,
        ),
      );
  }
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
