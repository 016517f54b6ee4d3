// The reference evaluator: for a packet at a hook, the tables in the kernel's priority order, each table's built-in
// chain walked as ipt_do_table() / ip6t_do_table() walk it (REFERENCE.md 1.1, 1.3).
import type {
  ConnInfo,
  HostView,
  LogRecord,
  NatRequest,
  ParsedPacket,
  SetView,
  TargetContext,
} from '../extensions/types';
import { HOOKS, type Chain, type Counters, type Family, type Hook, type IpNet, type MatchUse, type Negatable, type Rule, type Ruleset, type Table, type TableName } from '../rules/model';
import { keepsState, statefulRulesOf } from '../rules/facts';
import type { ConnUpdate, Decision, PacketInput, TraceStep } from './decision';
import { ipv6HeaderChainBroken, parsePacket } from './packet';
import type { Candidates } from '../compile/chain-index';
import { compileRulesetSteps, type CompileOptions, type CompiledRuleset } from '../compile/compile';
import { setAddress, setPort } from './rewrite';
import { runSync, type Steps } from '../steps';

// H16: IPS_* bits (native/conntrack.h) the nat decision reads.
const IPS_SRC_NAT_DONE = 128;
const IPS_DST_NAT_DONE = 256;

/** The manip type a hook's nat chains bind (nf_nat_inet_fn's HOOK2MANIP). */
export function hookManip(hook: Hook): 'SRC' | 'DST' | undefined {
  if (hook === 'PREROUTING' || hook === 'OUTPUT') return 'DST';
  if (hook === 'INPUT' || hook === 'POSTROUTING') return 'SRC';
  return undefined;
}

/** What raw sees when the packet is tracked: no connection yet (nf_ct_get gives none, so ctstate is INVALID). */
function beforeConntrack(ct: ConnInfo): ConnInfo {
  return without(ct, 'INVALID');
}

/** After CT --notrack: the untracked template (ctstate UNTRACKED, no connection). */
function untracked(ct: ConnInfo): ConnInfo {
  return without(ct, 'UNTRACKED');
}

/**
 * A connection-less view of `ct`. Built on `ct` as prototype so nothing reads its tuples (the daemon's ConnInfo parses
 * them from the packet only when a rule asks), and CONNMARK's writes to the view never reach the real connection.
 */
function without(ct: ConnInfo, state: 'INVALID' | 'UNTRACKED'): ConnInfo {
  const v = Object.create(ct) as ConnInfo;
  v.state = state;
  v.status = 0;
  v.mark = 0;
  return v;
}

/** The tables each hook passes through, in priority order (raw −300, mangle −150, nat DNAT −100, filter 0, security 50, nat SNAT 100). */
export const HOOK_TABLES: Readonly<Record<Hook, readonly TableName[]>> = {
  PREROUTING: ['raw', 'mangle', 'nat'],
  INPUT: ['mangle', 'filter', 'security', 'nat'],
  FORWARD: ['mangle', 'filter', 'security'],
  OUTPUT: ['raw', 'mangle', 'nat', 'filter', 'security'],
  POSTROUTING: ['mangle', 'nat'],
};

/**
 * Steps one table walk may take before it is declared a loop and the packet dropped. The kernel refuses loops at load
 * time (mark_source_chains → ELOOP), so this only guards hand-built or unvalidated rulesets, chiefly goto cycles that
 * never touch the jump stack.
 */
const MAX_STEPS = 1_000_000;

export interface EngineOptions {
  rules4?: Ruleset;
  rules6?: Ruleset;
  host: HostView;
  sets: SetView;
  random31?: () => number;
  now?: () => number;
  wallclock?: () => Date;
  /**
   * Hashed dispatch over each chain's rules (src/compile), compiled on every load: on unless false. The walk without
   * it is the reference the index is tested against.
   */
  index?: boolean | CompileOptions;
}

type TableVerdict =
  | { kind: 'accept' }
  | { kind: 'drop' }
  | { kind: 'queue'; queue: number; bypass: boolean };

interface Frame {
  chain: Chain;
  next: number;
}

/** What the engine precomputes per loaded ruleset. */
/** Rulesets loaded for the engine and not yet in force (Engine.prepare). */
export interface PreparedRules {
  v4?: Loaded;
  v6?: Loaded;
}

interface Loaded {
  rules: Ruleset;
  /** Per-match state from createState, keyed by the MatchUse object of this ruleset. */
  state: Map<MatchUse, unknown>;
  /**
   * The kernel's jump stack size: translate_table() counts one slot per XT_ERROR_TARGET entry, i.e. per user chain
   * plus the table's terminating entry. (iptables-nft's limit is NFT_JUMP_STACK_SIZE, enforced at load time; the
   * kernel refuses loops either way, so only an unvalidated ruleset can overflow.)
   */
  stackLimit: Map<TableName, number>;
  /** The chain indexes, when the engine uses them. */
  compiled?: CompiledRuleset;
  /** Flow cache: per chain, per rule, what flowInfo() says; built on the first decide() that asks. */
  flow?: Map<Chain, Int32Array>;
}

/** flowInfo: the target is not flow-stable. */
const FLOW_TARGET_UNSTABLE = 0x10000;

function flowStableExt(ext: { flowStable?(opts: unknown): boolean }, opts: unknown): boolean {
  return ext.flowStable?.(opts) === true;
}

/**
 * Per rule of a chain: the number of its leading flow-stable matches (the rule is stable when evaluation stopped
 * before the first unstable one), or'ed with FLOW_TARGET_UNSTABLE. The rule base (-s -d -i -o -p -f) and jumps to
 * chains are always stable.
 */
export function flowInfo(chain: Chain): Int32Array {
  const out = new Int32Array(chain.rules.length);
  chain.rules.forEach((r, i) => {
    let n = 0;
    while (n < r.matches.length && flowStableExt(r.matches[n]!.ext, r.matches[n]!.opts)) n++;
    const t = r.target;
    const targetStable = t === undefined || t.kind === 'chain' || flowStableExt(t.ext, t.opts);
    out[i] = n | (targetStable ? 0 : FLOW_TARGET_UNSTABLE);
  });
  return out;
}

function flowTable(loaded: Loaded, chain: Chain): Int32Array {
  loaded.flow ??= new Map();
  let f = loaded.flow.get(chain);
  if (f === undefined) loaded.flow.set(chain, (f = flowInfo(chain)));
  return f;
}

function defaultRandom31(): number {
  return Math.floor(Math.random() * 0x80000000);
}

function netMatches(net: Negatable<IpNet>, addr: Uint8Array): boolean {
  const n = net.value;
  let eq = n.addr.length === addr.length;
  for (let i = 0; eq && i < addr.length; i++) if ((addr[i] & n.mask[i]) !== n.addr[i]) eq = false;
  return eq !== net.negated;
}

/** -i/-o as the kernel compares interface names: exact, or a prefix when the name ends in '+'. */
export function ifaceMatches(spec: Negatable<string>, iface: string | undefined): boolean {
  const name = iface ?? '';
  const s = spec.value;
  const eq = s.endsWith('+') ? name.startsWith(s.slice(0, -1)) : name === s;
  return eq !== spec.negated;
}

/** Rules loaded, keyed between two yields of Engine.prepare. */
const RULES_PER_STEP = 2048;
/** Rules with state the parser listed, between two yields: each costs a few lookups in the old ruleset. */
const LISTED_PER_STEP = 512;

/**
 * The rules of one chain of the ruleset in force, found by id as carryChain (src/daemon/reload.ts) finds them: most
 * keep their place, so the rule at the same position is tried first, and a map is built only for a long chain whose
 * rules moved.
 */
class OldRules {
  private byId: Map<string, Rule> | undefined;
  constructor(private readonly rules: readonly Rule[]) {}

  /** `k`: where the rule is in its chain now, or -1 when that is not known. */
  find(id: string, k: number): Rule | undefined {
    const old = this.rules;
    if (k >= 0 && k < old.length && old[k].id === id) return old[k];
    if (old.length <= 16) {
      for (let j = 0; j < old.length; j++) if (old[j].id === id) return old[j];
      return undefined;
    }
    if (this.byId === undefined) {
      this.byId = new Map();
      for (let j = 0; j < old.length; j++) this.byId.set(old[j].id, old[j]);
    }
    return this.byId.get(id);
  }
}

export class Engine {
  private readonly host: HostView;
  private readonly sets: SetView;
  private readonly random31: () => number;
  private readonly now: () => number;
  private readonly wallclock: () => Date;
  private readonly index: CompileOptions | undefined;
  private v4?: Loaded;
  private v6?: Loaded;
  /** Flow cache: the counters of the decide() in progress when it asked for them (`flow`), else undefined. */
  private counted: Counters[] | undefined;
  private readonly countedBuf: Counters[] = [];
  /** Flow cache: something evaluated in the decide() in progress was not flow-stable. */
  private unstable = false;

  constructor(opts: EngineOptions) {
    this.host = opts.host;
    this.sets = opts.sets;
    this.random31 = opts.random31 ?? defaultRandom31;
    this.now = opts.now ?? (() => performance.now());
    this.wallclock = opts.wallclock ?? (() => new Date());
    this.index = opts.index === false ? undefined : opts.index === true || opts.index === undefined ? {} : opts.index;
    this.swap(opts.rules4, opts.rules6);
  }

  /**
   * Replaces the rulesets (undefined leaves that family's as it is). Match state carries over for rules whose id
   * (table, chain, canonical text) is unchanged, as counters do.
   */
  swap(rules4?: Ruleset, rules6?: Ruleset): void {
    this.commit(runSync(this.prepare(rules4, rules6)));
  }

  /**
   * Everything a swap needs except the swap itself, in steps (src/steps.ts) so a daemon can keep deciding packets
   * meanwhile: the state objects carried over are the very objects the running rules update, so nothing changes
   * between prepare and commit. Reloads must not overlap (the daemon runs one at a time).
   */
  *prepare(rules4?: Ruleset, rules6?: Ruleset): Steps<PreparedRules> {
    const v4 = rules4 ? yield* this.load(rules4, this.v4) : undefined;
    const v6 = rules6 ? yield* this.load(rules6, this.v6) : undefined;
    return { v4, v6 };
  }

  /** Puts prepared rulesets in force, in one synchronous step. */
  commit(p: PreparedRules): void {
    if (p.v4) this.v4 = p.v4;
    if (p.v6) this.v6 = p.v6;
  }

  /** The ruleset in force for a family. */
  rules(family: Family): Ruleset | undefined {
    return (family === 4 ? this.v4 : this.v6)?.rules;
  }

  /**
   * Match state carries over by rule id as counters do (carryCounters): an id is a hash of the table, chain and
   * canonical text (model.ts), so the rule that held a state before is looked for in the chain of the same name of
   * the same table only, at the same place first. Nothing of the old ruleset is read when it holds no state.
   */
  private *load(rules: Ruleset, prev: Loaded | undefined): Steps<Loaded> {
    const carry = prev !== undefined && prev.state.size > 0 ? prev : undefined;
    const state = new Map<MatchUse, unknown>();
    const stackLimit = new Map<TableName, number>();
    let work = 0;
    for (const [name, t] of rules.tables) {
      const oldTable = carry?.rules.tables.get(name);
      const listed = statefulRulesOf(t);
      if (listed !== undefined) {
        // The parser listed the rules with state (src/rules/facts.ts): the others have nothing to carry or create.
        yield* this.loadListed(listed, oldTable, carry, state);
        let builtins = 0;
        for (const hook of HOOKS) if (t.chains.get(hook)?.builtin === true) builtins++;
        stackLimit.set(name, t.chains.size - builtins + 1);
        continue;
      }
      let userChains = 0;
      for (const c of t.chains.values()) {
        if (!c.builtin) userChains++;
        const rs = c.rules;
        /** The chain's rules before, looked up at its first stateful match; null: not yet. */
        let old: OldRules | undefined | null = null;
        for (let k = 0; k < rs.length; k++) {
          const r = rs[k];
          const ms = r.matches;
          for (let i = 0; i < ms.length; i++) {
            const m = ms[i];
            if (!keepsState(m)) continue;
            const ext = m.ext;
            if (old === null) {
              const before = oldTable?.chains.get(c.name)?.rules;
              old = before === undefined ? undefined : new OldRules(before);
            }
            const om = old?.find(r.id, k)?.matches[i];
            let s: unknown;
            if (om !== undefined && ((s = carry!.state.get(om)) !== undefined || carry!.state.has(om))) state.set(m, s);
            else state.set(m, ext.createState!(m.opts));
          }
        }
        work += rs.length + 1;
        if (work >= RULES_PER_STEP) {
          work = 0;
          yield;
        }
      }
      stackLimit.set(name, userChains + 1);
    }
    yield;
    const compiled = this.index
      ? yield* compileRulesetSteps(rules, this.index, prev?.compiled ? { rules: prev.rules, compiled: prev.compiled } : undefined)
      : undefined;
    yield;
    return { rules, state, stackLimit, compiled };
  }

  /**
   * load's state for the rules with state of one table, as the parser listed them (a superset: a rule it took out
   * again gets state no rule uses, which the next reload drops). Their place in the chain is not known: the old
   * rule is found by id alone.
   */
  private *loadListed(listed: readonly Rule[], oldTable: Table | undefined, carry: Loaded | undefined, state: Map<MatchUse, unknown>): Steps<void> {
    const olds = new Map<string, OldRules>();
    let chain: string | undefined;
    let old: OldRules | undefined;
    // Rules in force taken by the new table themselves (src/rules/parse.ts, shared chains and lines taken whole): the
    // rule found by id would be the rule itself, so its matches keep their state without a look at its old chain.
    const listedBefore = carry !== undefined && oldTable !== undefined ? statefulRulesOf(oldTable) : undefined;
    const inForce = listedBefore === undefined ? undefined : new Set(listedBefore);
    for (let k = 0; k < listed.length; k++) {
      if ((k & (LISTED_PER_STEP - 1)) === LISTED_PER_STEP - 1) yield;
      const r = listed[k];
      const ms = r.matches;
      const same = inForce?.has(r) === true;
      for (let i = 0; i < ms.length; i++) {
        const m = ms[i];
        if (!keepsState(m)) continue;
        const ext = m.ext;
        if (!same && carry !== undefined && chain !== r.chain) {
          // The listed rules come chain by chain, mostly: a long chain met again keeps its map of ids.
          chain = r.chain;
          old = olds.get(chain);
          if (old === undefined) {
            const before = oldTable?.chains.get(chain)?.rules;
            old = before === undefined ? undefined : new OldRules(before);
            if (before !== undefined && before.length > 16) olds.set(chain, old!);
          }
        }
        const om = same ? m : old?.find(r.id, -1)?.matches[i];
        let s: unknown;
        if (om !== undefined && ((s = carry!.state.get(om)) !== undefined || carry!.state.has(om))) state.set(m, s);
        else state.set(m, ext.createState!(m.opts));
      }
    }
  }

  /**
   * trace: record the path (Decision.path). flow: say whether the decision is flow-stable and which counters it
   * incremented (Decision.flowStable, Decision.counted); without it the walk pays one test per counted rule.
   */
  decide(input: PacketInput, opts?: { trace?: boolean; flow?: boolean }): Decision {
    if (opts?.flow === true) {
      this.countedBuf.length = 0;
      this.counted = this.countedBuf;
      this.unstable = false;
    } else {
      this.counted = undefined;
    }
    const meta = { ...input.meta };
    const markIn = meta.mark;
    const loaded = input.family === 4 ? this.v4 : this.v6;
    // The engine owns its copy: targets rewrite in place.
    let pkt = parsePacket(input.data.slice(), input.family, input.length);
    const path: TraceStep[] | undefined = opts?.trace ? [] : undefined;
    const logs: LogRecord[] = [];
    const replies: Uint8Array[] = [];
    const ctx: TargetContext = {
      pkt,
      meta,
      table: 'filter',
      chain: '',
      ct: input.ct,
      host: this.host,
      sets: this.sets,
      now: this.now(),
      wallclock: this.wallclock(),
      state: undefined,
      random31: this.random31,
      hotdrop: false,
      logs,
      rewritten: false,
      replies,
    };
    let verdict: TableVerdict = { kind: 'accept' };
    let rewritten = false;
    // H16: the connection as each table sees it, and what the trip changes in it.
    let conn = input.ct;
    const connMarkIn = conn?.mark;
    let update: ConnUpdate | undefined;
    if (loaded) {
      for (const tname of HOOK_TABLES[meta.hook]) {
        const table = loaded.rules.tables.get(tname);
        if (!table) continue;
        const manip = tname === 'nat' ? this.natManip(conn, meta.hook, ctx.pkt) : undefined;
        if (tname === 'nat' && manip === undefined) continue;
        // A connection's first packet: nothing after it repeats this.
        if (manip !== undefined) this.unstable = true;
        const chain = table.chains.get(meta.hook);
        if (!chain || !chain.builtin) continue;
        // Raw runs before conntrack (priority −300 < −200): a tracked packet has no connection there yet.
        ctx.ct = tname === 'raw' && conn !== undefined ? beforeConntrack(conn) : conn;
        ctx.nat = undefined;
        const res = this.walk(loaded, table, chain, ctx, path);
        if (ctx.pkt !== pkt || res.rewritten) {
          rewritten = true;
          pkt = ctx.pkt;
        }
        if (tname === 'raw' && ctx.notrack === true && conn !== undefined) {
          update = { ...update, notrack: true };
          conn = untracked(conn);
        }
        if (manip !== undefined) {
          update = { ...update, natRan: [manip] };
          const req: NatRequest | undefined = ctx.nat;
          ctx.nat = undefined;
          if (req !== undefined && res.verdict.kind === 'accept') {
            update.nat = [req];
            if (meta.hook === 'OUTPUT') pkt = ctx.pkt = natView(ctx.pkt, req);
          }
        }
        if (res.verdict.kind !== 'accept') {
          verdict = res.verdict;
          break;
        }
      }
    }
    ctx.ct = conn;
    if (conn !== undefined && connMarkIn !== undefined && conn.mark >>> 0 !== connMarkIn >>> 0 && conn.state !== 'UNTRACKED') {
      update = { ...update, connmark: conn.mark >>> 0 };
    }
    const d: Decision = {
      hook: meta.hook,
      verdict: verdict.kind,
      mark: meta.mark >>> 0,
      markChanged: meta.mark >>> 0 !== markIn >>> 0,
      replies,
      logs,
    };
    if (verdict.kind === 'queue') d.queue = verdict.queue;
    if (rewritten) d.payload = pkt.data;
    if (path) d.path = path;
    if (update) d.ct = update;
    if (this.counted !== undefined) {
      d.flowStable = !this.unstable && !rewritten && update === undefined && replies.length === 0 && logs.length === 0;
      d.counted = this.counted;
      this.counted = undefined;
    }
    return d;
  }

  /**
   * The kernel consults nat only for a tracked connection's first packet (nf_nat_inet_fn: no conntrack entry, no nat;
   * IP_CT_NEW or non-ICMP RELATED without this manip type's binding runs the nat chains; later packets just get the binding,
   * REFERENCE.md 1.2). Untracked and INVALID packets never see nat. Returns the manip type the chains would bind.
   */
  private natManip(ct: ConnInfo | undefined, hook: Hook, pkt: ParsedPacket): 'SRC' | 'DST' | undefined {
    if (ct === undefined) return undefined;
    const manip = hookManip(hook);
    if (manip === undefined) return undefined;
    // nf_nat_ipv4_fn / nf_nat_ipv6_fn: a RELATED ICMP/ICMPv6 error only gets nf_nat_icmp_reply_translation, never the
    // chains (the table translates it natively); other RELATED packets (helpers' expectations) would run them.
    const icmp = pkt.protocol === (pkt.family === 4 ? 1 : 58);
    const first = (ct.state === 'NEW' && ct.direction === 'ORIGINAL') || (ct.state === 'RELATED' && !icmp);
    if (!first) return undefined;
    // nf_nat_initialized(): this manip type was bound (or null-bound) at an earlier hook of the connection.
    const done = manip === 'SRC' ? IPS_SRC_NAT_DONE : IPS_DST_NAT_DONE;
    return (ct.status & done) !== 0 ? undefined : manip;
  }

  private baseMatches(rule: Rule, pkt: ParsedPacket, ctx: TargetContext): boolean | 'hotdrop' {
    if (rule.src && !netMatches(rule.src, pkt.src)) return false;
    if (rule.dst && !netMatches(rule.dst, pkt.dst)) return false;
    if (rule.inIface && !ifaceMatches(rule.inIface, ctx.meta.inIface)) return false;
    if (rule.outIface && !ifaceMatches(rule.outIface, ctx.meta.outIface)) return false;
    if (rule.proto) {
      const want = rule.proto.value;
      if (pkt.family === 4) {
        // ip_packet_match: `-p 0` (all) checks nothing, negated or not.
        if (want !== 0 && (pkt.protocol !== want) !== rule.proto.negated) return false;
      } else {
        // ip6_packet_match: the protocol is the one ipv6_find_hdr finds; failing to find it hotdrops unless this is
        // a later fragment.
        if (ipv6HeaderChainBroken(pkt)) return 'hotdrop';
        if (pkt.protocol === want) {
          if (rule.proto.negated) return false;
        } else if (want !== 0 && !rule.proto.negated) return false;
      }
    }
    if (rule.fragment && pkt.family === 4) {
      if ((pkt.fragOffset !== 0) === rule.fragment.negated) return false;
    }
    return true;
  }

  private walk(
    loaded: Loaded,
    table: Table,
    base: Chain,
    ctx: TargetContext,
    path: TraceStep[] | undefined,
  ): { verdict: TableVerdict; rewritten: boolean } {
    const tname = table.name;
    const limit = loaded.stackLimit.get(tname) ?? 0;
    const stack: Frame[] = [];
    const indexes = loaded.compiled?.chains;
    let chain = base;
    let i = 0;
    /** The step of the rule being evaluated; -1 before the first. */
    let steps = -1;
    /** The rules of `chain` that can match the packet as it was when last looked up; undefined: every rule. */
    let cand: Candidates | undefined;
    let rewritten = false;
    const counted = this.counted;
    /** With `counted`: the chain's flowInfo(). */
    let flow: Int32Array | undefined;
    const policy = (): { verdict: TableVerdict; rewritten: boolean } => {
      base.counters.packets++;
      base.counters.bytes += ctx.pkt.length;
      if (counted !== undefined) counted.push(base.counters);
      path?.push({ table: tname, chain: base.name, rule: 0, result: 'policy' });
      return { verdict: { kind: base.policy === 'DROP' ? 'drop' : 'accept' }, rewritten };
    };
    /**
     * Moves to the first rule at or after position `from` that can match. The rules skipped count as steps, as if
     * walked, so the loop guard stops at the same rule (with the same counters) as the walk without the index.
     */
    const advance = (from: number): void => {
      if (!cand) {
        i = from;
        return;
      }
      const n = cand.next();
      const to = n < 0 ? chain.rules.length : n;
      if (to - from >= MAX_STEPS - steps) {
        i = from + Math.max(0, MAX_STEPS - steps);
        steps = MAX_STEPS;
        return;
      }
      steps += to - from;
      i = to;
    };
    /** Looks `chain` up for the packet as it is now (a target or a called chain may have changed its mark or bytes). */
    const enter = (from: number): void => {
      if (counted !== undefined) flow = flowTable(loaded, chain);
      cand = indexes?.get(chain)?.lookup(ctx.pkt, ctx.meta);
      cand?.seek(from);
      advance(from);
    };
    /** RETURN: resume in the caller, or the policy when the stack is empty (ipt_do_table's underflow). */
    const doReturn = (): boolean => {
      const f = stack.pop();
      if (!f) return false;
      chain = f.chain;
      enter(f.next);
      return true;
    };
    enter(0);
    for (;;) {
      steps++;
      if (steps > MAX_STEPS) {
        path?.push({ table: tname, chain: chain.name, rule: i + 1, result: 'drop' });
        return { verdict: { kind: 'drop' }, rewritten };
      }
      if (i >= chain.rules.length) {
        if (chain.builtin) return policy();
        // Falling off a user chain is RETURN; after a goto from the built-in chain that is its policy.
        path?.push({ table: tname, chain: chain.name, rule: 0, result: 'return' });
        if (!doReturn()) return policy();
        continue;
      }
      const rule = chain.rules[i];
      const pkt = ctx.pkt;
      const base = this.baseMatches(rule, pkt, ctx);
      if (base === 'hotdrop') {
        this.unstable = true;
        path?.push({ table: tname, chain: chain.name, rule: i + 1, ruleId: rule.id, result: 'drop' });
        return { verdict: { kind: 'drop' }, rewritten };
      }
      if (!base) {
        advance(i + 1);
        continue;
      }
      ctx.table = tname;
      ctx.chain = chain.name;
      let ok = true;
      const matches = rule.matches;
      let evaluated = 0;
      while (evaluated < matches.length) {
        const m = matches[evaluated++]!;
        if (!m.ext.match) throw new Error(`${locText(m.loc)}: match "${m.ext.name}" cannot be evaluated by the engine`);
        ctx.state = loaded.state.get(m);
        if (!m.ext.match(m.opts, ctx)) {
          ok = false;
          break;
        }
      }
      // Flow cache: an unstable match that ran decides for this packet only, whether it matched or not.
      if (flow !== undefined && evaluated > (flow[i]! & 0xffff)) this.unstable = true;
      if (ctx.hotdrop) {
        this.unstable = true;
        // par->hotdrop: ipt_do_table stops with NF_DROP before the rule is counted.
        ctx.hotdrop = false;
        path?.push({ table: tname, chain: chain.name, rule: i + 1, ruleId: rule.id, result: 'drop' });
        return { verdict: { kind: 'drop' }, rewritten };
      }
      if (!ok) {
        advance(i + 1);
        continue;
      }
      rule.counters.packets++;
      rule.counters.bytes += pkt.length;
      if (counted !== undefined) {
        counted.push(rule.counters);
        if ((flow![i]! & FLOW_TARGET_UNSTABLE) !== 0) this.unstable = true;
      }
      const t = rule.target;
      const step = (result: TraceStep['result']): void => {
        path?.push({ table: tname, chain: chain.name, rule: i + 1, ruleId: rule.id, result });
      };
      if (!t) {
        step('match');
        advance(i + 1);
        continue;
      }
      if (t.kind === 'chain') {
        const target = table.chains.get(t.chain);
        if (!target) throw new Error(`${locText(t.loc)}: chain "${t.chain}" does not exist in table ${tname}`);
        if (t.goto) {
          step('goto');
        } else {
          if (stack.length >= limit) {
            // ipt_do_table: stackidx >= stacksize → NF_DROP.
            step('drop');
            return { verdict: { kind: 'drop' }, rewritten };
          }
          step('jump');
          stack.push({ chain, next: i + 1 });
        }
        chain = target;
        enter(0);
        continue;
      }
      if (!t.ext.apply) throw new Error(`${locText(t.loc)}: target "${t.ext.name}" cannot be evaluated by the engine`);
      ctx.state = undefined;
      ctx.rewritten = false;
      const res = t.ext.apply(t.opts, ctx);
      if (ctx.rewritten) {
        // The target changed the bytes: parse again so later rules see the new headers.
        ctx.pkt = parsePacket(ctx.pkt.data, pkt.family, ctx.pkt.length);
        ctx.rewritten = false;
        rewritten = true;
      }
      switch (res.verdict) {
        case 'continue':
          step('continue');
          enter(i + 1);
          continue;
        case 'return':
          step('return');
          if (!doReturn()) return policy();
          continue;
        case 'accept':
          step('accept');
          return { verdict: { kind: 'accept' }, rewritten };
        case 'drop':
          step('drop');
          return { verdict: { kind: 'drop' }, rewritten };
        case 'reject':
          step('reject');
          return { verdict: { kind: 'drop' }, rewritten };
        case 'queue':
          step('queue');
          return { verdict: { kind: 'queue', queue: res.queue, bypass: res.bypass }, rewritten };
      }
    }
  }
}

/**
 * OUTPUT: filter and security run after nat in the same trip and see the DNATed packet in the kernel. The binding is
 * made by the connection table after the verdict, so the later tables here see the packet as the request rewrites it
 * when that is certain (one address, one port or none: what DNAT/REDIRECT to one endpoint does). A range leaves the
 * packet as it is: which address the table picks is not known until it binds.
 */
function natView(pkt: ParsedPacket, req: NatRequest): ParsedPacket {
  if (req.manip !== 'DST' || req.netmap === true) return pkt;
  const addrFixed = req.minAddr !== undefined && req.maxAddr !== undefined && sameBytes(req.minAddr, req.maxAddr);
  const portFixed = req.minPort !== undefined && req.minPort === req.maxPort && req.basePort === undefined;
  if (!(addrFixed || req.minAddr === undefined) || !(portFixed || req.minPort === undefined)) return pkt;
  if (req.minAddr === undefined && req.minPort === undefined) return pkt;
  const view = parsePacket(pkt.data.slice(), pkt.family, pkt.length);
  if (req.minAddr !== undefined) setAddress(view, 'dst', req.minAddr);
  if (req.minPort !== undefined && view.dport >= 0) setPort(view, 'dst', req.minPort);
  return parsePacket(view.data, view.family, view.length);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function locText(loc: { file: string; line: number; column: number }): string {
  return `${loc.file}:${loc.line}:${loc.column}`;
}
