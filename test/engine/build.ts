// Hand-built Rulesets and tiny inline extensions, so the engine can be tested without the parser and the modules.
import type { MatchContext, MatchExtension, TargetContext, TargetExtension, TargetResult } from '../../src/extensions/types';
import { parseIpNet } from '../../src/rules/addr';
import type { Chain, Family, MatchUse, Negatable, Rule, RuleTarget, Ruleset, TableName } from '../../src/rules/model';

const LOC = { file: 'test.rules', line: 1, column: 1 };

export function target(name: string, verdict: TargetResult['verdict'], effect?: (ctx: TargetContext) => void): TargetExtension<null> {
  return {
    kind: 'target',
    name,
    options: [],
    terminal: verdict !== 'continue',
    parse: () => null,
    format: () => '',
    apply(_o, ctx) {
      effect?.(ctx);
      if (verdict === 'queue') return { verdict: 'queue', queue: 3, bypass: false };
      return { verdict } as TargetResult;
    },
  };
}

export const ACCEPT = target('ACCEPT', 'accept');
export const DROP = target('DROP', 'drop');
export const RETURN = target('RETURN', 'return');
export const REJECT = target('REJECT', 'reject', (ctx) => ctx.replies.push(Uint8Array.of(1, 2, 3)));
export const NFQUEUE = target('NFQUEUE', 'queue');
export function MARK(v: number): TargetExtension<null> {
  return target('MARK', 'continue', (ctx) => {
    ctx.meta.mark = v;
  });
}

/** A match whose answer comes from a function; it records the state it was given. */
export function matchFn<S = unknown>(
  name: string,
  fn: (ctx: MatchContext) => boolean,
  createState?: () => S,
): MatchExtension<null> {
  const m: MatchExtension<null> = {
    kind: 'match',
    name,
    options: [],
    parse: () => null,
    format: () => '',
    match: (_o, ctx) => fn(ctx),
  };
  if (createState) m.createState = () => createState();
  return m;
}

export type TargetSpec = TargetExtension<null> | { jump: string } | { goto: string } | undefined;

export interface RuleSpec {
  src?: string;
  dst?: string;
  notSrc?: boolean;
  notDst?: boolean;
  in?: string;
  out?: string;
  notIn?: boolean;
  notOut?: boolean;
  proto?: number;
  notProto?: boolean;
  fragment?: boolean;
  notFragment?: boolean;
  matches?: MatchExtension<null>[];
  t?: TargetSpec;
  /** Stable id override (defaults to table/chain/index). */
  id?: string;
}

export interface ChainSpec {
  policy?: 'ACCEPT' | 'DROP';
  rules: RuleSpec[];
}

function neg<T>(value: T, negated: boolean | undefined): Negatable<T> {
  return { value, negated: negated === true };
}

function toTarget(t: TargetSpec): RuleTarget | undefined {
  if (!t) return undefined;
  if ('jump' in t) return { kind: 'chain', chain: t.jump, goto: false, loc: LOC };
  if ('goto' in t) return { kind: 'chain', chain: t.goto, goto: true, loc: LOC };
  return { kind: 'extension', ext: t as TargetExtension, opts: null, loc: LOC };
}

/** Builds a Ruleset; built-in chains are those named like hooks (policy default ACCEPT). */
export function ruleset(family: Family, tables: Partial<Record<TableName, Record<string, ChainSpec>>>): Ruleset {
  const rs: Ruleset = { family, tables: new Map(), sources: ['test.rules'] };
  for (const [tname, chains] of Object.entries(tables) as [TableName, Record<string, ChainSpec>][]) {
    const cmap = new Map<string, Chain>();
    for (const [cname, spec] of Object.entries(chains)) {
      const builtin = /^(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING)$/.test(cname);
      const chain: Chain = {
        name: cname,
        builtin,
        counters: { packets: 0, bytes: 0 },
        rules: [],
        loc: LOC,
      };
      if (builtin) chain.policy = spec.policy ?? 'ACCEPT';
      spec.rules.forEach((r, i) => {
        const rule: Rule = {
          id: r.id ?? `${tname}/${cname}/${i}`,
          table: tname,
          chain: cname,
          matches: (r.matches ?? []).map((ext): MatchUse => ({ ext: ext as MatchUse['ext'], opts: null, loc: LOC })),
          counters: { packets: 0, bytes: 0 },
          loc: LOC,
        };
        if (r.src) rule.src = neg(parseIpNet(r.src, family), r.notSrc);
        if (r.dst) rule.dst = neg(parseIpNet(r.dst, family), r.notDst);
        if (r.in) rule.inIface = neg(r.in, r.notIn);
        if (r.out) rule.outIface = neg(r.out, r.notOut);
        if (r.proto !== undefined) rule.proto = neg(r.proto, r.notProto);
        if (r.fragment) rule.fragment = { value: true, negated: r.notFragment === true };
        const t = toTarget(r.t);
        if (t) rule.target = t;
        chain.rules.push(rule);
      });
      cmap.set(cname, chain);
    }
    rs.tables.set(tname, { name: tname, chains: cmap });
  }
  return rs;
}

export function chainOf(rs: Ruleset, table: TableName, chain: string): Chain {
  const c = rs.tables.get(table)?.chains.get(chain);
  if (!c) throw new Error(`no chain ${table}/${chain}`);
  return c;
}

export function v4(s: string): Uint8Array {
  return Uint8Array.from(s.split('.').map(Number));
}
