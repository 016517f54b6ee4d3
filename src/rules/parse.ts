// The grammar of iptables-restore (iptables/xtables-restore.c and xshared.c do_parse, v1.8.9): `*table` blocks closed
// by COMMIT, `:CHAIN POLICY [p:b]` declarations, and command lines (-A -I -N -P -F -X -D -R -E) whose options are
// read in order as getopt_long reads them, extension options going to the most recently loaded module that defines
// them. Errors are collected per line so a user sees all of them at once.
import { findMatch as registryMatch, findTarget as registryTarget } from '../extensions';
import type { MatchExtension, OptionSpec, OptionUse, ParseContext, TargetExtension } from '../extensions/types';
import { RuleError } from '../extensions/types';
import { AddrError, guessFamily, parseIpNet } from './addr';
import { RuleErrors } from './errors';
import { formatRuleSpec, writeRuleSpec, type TextSink } from './format';
import { LexBuf, LexError, lexInto, lexLine, type Word } from './lexer';
import {
  BUILTIN_CHAINS,
  TABLES,
  type Chain,
  type Counters,
  type Family,
  type IpNet,
  type MatchUse,
  type Negatable,
  type Rule,
  type RuleTarget,
  type Ruleset,
  type SourceLocation,
  type Table,
  type TableName,
} from './model';
import { NameError, parseProtocol, protocolName } from './services';
import { validateTableSteps } from './validate';
import { HAS_STATE, recordFacts, recordStatefulRules, ruleFacts } from './facts';
import { copyLine, madeOf, ownCopy, type CachedLine, type ParseCache } from './line-cache';
import { runSync, type Steps } from '../steps';

/** Where extension modules are looked up; the registry unless a test brings its own. */
export interface ExtensionLookup {
  findMatch(name: string): MatchExtension | undefined;
  findTarget(name: string): TargetExtension | undefined;
}

export interface ParseOptions {
  family?: Family;
  extensions?: ExtensionLookup;
  /**
   * The previous parses of this file (src/rules/line-cache.ts): `-A` lines it has seen are copied, not parsed again.
   * The result is the same as without it, locations included.
   */
  cache?: ParseCache;
  /**
   * Every counter starts at zero, as plain iptables-restore (without --counters) starts them: the ones the file gives
   * are read and checked, not kept.
   */
  zeroCounters?: boolean;
  /**
   * With `cache` and zeroCounters: a user chain whose lines are all unchanged and unmoved since the last parse takes
   * the rules that parse made of them themselves, not copies (ParseCache.sharedRun). They differ from the copies in
   * their counters only, so the result shares counter objects with the last: for a reload, which carries them over
   * anyway (src/daemon/reload.ts carryCounters). What reads both (the reload's counters, the compilers) sees one
   * array and skips it. Nothing the last parse made is changed.
   */
  shareChains?: boolean;
}

const REGISTRY: ExtensionLookup = { findMatch: registryMatch, findTarget: registryTarget };
let lookup: ExtensionLookup = REGISTRY;
/** ParseOptions.zeroCounters of the parse under way. */
let zeroing = false;
/** The facts (src/rules/facts.ts) of the rule lines of the parse under way. */
let factBits = 0;
/** libxtables xtables_find_match: "icmpv6" and "ipv6-icmp" are names of the icmp6 match. */
const findMatch = (name: string) =>
  lookup.findMatch(name === 'icmpv6' || name === 'ipv6-icmp' ? 'icmp6' : name);
const findTarget = (name: string) => lookup.findTarget(name);

/** XT_EXTENSION_MAXNAMELEN - 1. */
export const MAX_CHAIN_NAME = 28;
/** IFNAMSIZ - 1. */
const MAX_IFACE = 15;

const STANDARD_VERDICTS = new Set(['ACCEPT', 'DROP', 'RETURN', 'QUEUE']);

// ---- option table of the core (iptables' original_opts) ----

type CoreOpt =
  | 'append'
  | 'insert'
  | 'delete'
  | 'replace'
  | 'new-chain'
  | 'delete-chain'
  | 'flush'
  | 'policy'
  | 'rename-chain'
  | 'zero'
  | 'source'
  | 'destination'
  | 'in-interface'
  | 'out-interface'
  | 'protocol'
  | 'fragment'
  | 'match'
  | 'jump'
  | 'goto'
  | 'set-counters'
  | 'table'
  | 'ipv4'
  | 'ipv6'
  | 'numeric'
  | 'verbose'
  | 'exact'
  | 'wait';

const SHORT: Record<string, CoreOpt> = {
  A: 'append',
  I: 'insert',
  D: 'delete',
  R: 'replace',
  N: 'new-chain',
  X: 'delete-chain',
  F: 'flush',
  P: 'policy',
  E: 'rename-chain',
  Z: 'zero',
  s: 'source',
  d: 'destination',
  i: 'in-interface',
  o: 'out-interface',
  p: 'protocol',
  f: 'fragment',
  m: 'match',
  j: 'jump',
  g: 'goto',
  c: 'set-counters',
  t: 'table',
  '4': 'ipv4',
  '6': 'ipv6',
  n: 'numeric',
  v: 'verbose',
  x: 'exact',
  w: 'wait',
};

const LONG: Record<string, CoreOpt> = {
  append: 'append',
  insert: 'insert',
  delete: 'delete',
  replace: 'replace',
  'new-chain': 'new-chain',
  'delete-chain': 'delete-chain',
  flush: 'flush',
  policy: 'policy',
  'rename-chain': 'rename-chain',
  zero: 'zero',
  source: 'source',
  src: 'source',
  destination: 'destination',
  dst: 'destination',
  'in-interface': 'in-interface',
  'out-interface': 'out-interface',
  protocol: 'protocol',
  fragment: 'fragment',
  match: 'match',
  jump: 'jump',
  goto: 'goto',
  'set-counters': 'set-counters',
  table: 'table',
  ipv4: 'ipv4',
  ipv6: 'ipv6',
  numeric: 'numeric',
  verbose: 'verbose',
  exact: 'exact',
  wait: 'wait',
};
const LONG_NAMES = Object.keys(LONG);

const COMMANDS = new Set<CoreOpt>([
  'append',
  'insert',
  'delete',
  'replace',
  'new-chain',
  'delete-chain',
  'flush',
  'policy',
  'rename-chain',
  'zero',
]);

// ---- parse state ----

interface TableBuild {
  table: Table;
  loc: SourceLocation;
  /** Whether anything created the table in the kernel (a bare `*t` + COMMIT does not, in the nft backend). */
  touched: boolean;
  /** The chain the previous command line named. */
  last?: Chain;
  /** A chain was renamed (-E): the ids rules got when they were added name the old chain, so all are recomputed. */
  renamed?: boolean;
  /**
   * With a ParseCache: the parse whose validated version of this table this one can be validated against by its
   * changes (ParseCache.validate), the rules not in that version, and whether only -A lines and first declarations
   * built it.
   */
  vouchGen?: number;
  fresh?: Rule[];
  onlyAppends?: boolean;
  /** Every rule with HAS_STATE put in the table (src/rules/facts.ts). */
  stateful: Rule[];
  /** This build among all (ChainSlot.serial in src/rules/line-cache.ts). */
  serial: number;
  /**
   * A command other than -A ran: chains may have been made (-N), renamed or deleted other than by declaration lines,
   * so the line cache's chain slots are no longer trusted for this build.
   */
  slotsOff?: boolean;
  /**
   * A command other than -A, -N, -X, -P or -Z ran: rules were inserted, deleted, replaced or flushed, so the ids
   * are numbered chain by chain at COMMIT. Else only the chains in `toNumber` are (appendRule puts them there).
   */
  rulesEdited?: boolean;
  toNumber?: Set<Chain>;
  /** ParseOptions.shareChains holds for this table. */
  sharing?: boolean;
  /**
   * The chains that took the rules of the last parse (ParseOptions.shareChains), and the line their lines start at:
   * before a line changes one (or a command others), it gets copies of them (unshare), so nothing the last parse
   * made is ever changed.
   */
  shared?: Map<Chain, number>;
  /**
   * The chains holding rules the last parse made, taken line by line (appendCached: unmoved lines of a chain whose
   * lines are spread over the file, as kube-proxy's KUBE-SERVICES and KUBE-SVC-*), and the last one added. Before a
   * command changes rules, or COMMIT numbers one as a repeat, such a rule is replaced by a copy, as shared chains are.
   */
  reused?: Set<Chain>;
  lastReused?: Chain;
}

/** The table build appendRule appends to. */
let appending: TableBuild | undefined;

/** Table builds so far (TableBuild.serial). */
let builds = 0;

class LineError extends Error {
  constructor(
    message: string,
    readonly col: number,
  ) {
    super(message);
  }
}

function emptyCounters(): Counters {
  return { packets: 0, bytes: 0 };
}

/** `[p:b]` as iptables-restore reads it; undefined when malformed. */
export function parseCounterWord(w: string): Counters | undefined {
  const m = /^\[(\d+):(\d+)\]$/.exec(w);
  if (!m) return undefined;
  return { packets: Number(m[1]), bytes: Number(m[2]) };
}

function newTable(name: TableName, loc: SourceLocation): TableBuild {
  const chains = new Map<string, Chain>();
  for (const hook of BUILTIN_CHAINS[name]) {
    const c: Chain = { name: hook, builtin: true, policy: 'ACCEPT', counters: emptyCounters(), rules: [], loc };
    chains.set(hook, c);
  }
  return { table: { name, chains }, loc, touched: false, stateful: [], serial: ++builds };
}

// ---- family inference ----

const V6_ONLY_PROTOS = new Set(['icmpv6', 'ipv6-icmp', 'ipv6-mh', 'mh', '58', '135']);

/** What the file says about its family, from addresses and family-only modules; 4 when nothing tells. */
export function inferFamily(lines: readonly string[]): Family {
  for (const line of lines) {
    if (line.length === 0 || line[0] !== '-' && line[0] !== '[') continue;
    let words: Word[];
    try {
      words = lexLine(line);
    } catch {
      continue;
    }
    for (let i = 0; i + 1 < words.length; i++) {
      const w = words[i].text;
      const next = words[i + 1].text;
      if (w === '-s' || w === '-d' || w === '--source' || w === '--destination' || w === '--src' || w === '--dst') {
        const f = guessFamily(next.split(',')[0]);
        if (f) return f;
      } else if (w === '-m' || w === '--match') {
        const m = findMatch(next);
        if (m?.family) return m.family;
      } else if (w === '-p' || w === '--protocol') {
        if (V6_ONLY_PROTOS.has(next.toLowerCase())) return 6;
      }
    }
  }
  return 4;
}

// ---- the rule line ----

interface LoadedExt {
  ext: MatchExtension | TargetExtension;
  uses: OptionUse[];
  loc: SourceLocation;
  isTarget: boolean;
  /** ext's options by the word that names them. */
  opts: Map<string, OptionSpec>;
}

interface Command {
  op: CoreOpt;
  loc: SourceLocation;
  args: Word[];
}

interface RuleSpec {
  src?: Negatable<IpNet[]>;
  dst?: Negatable<IpNet[]>;
  inIface?: Negatable<string> & { col: number };
  outIface?: Negatable<string> & { col: number };
  proto?: Negatable<number>;
  fragment?: Negatable<true>;
  matches: MatchUse[];
  target?: RuleTarget;
  counters?: Counters;
  hasSpec: boolean;
}

interface LineResult {
  cmd?: Command;
  spec: RuleSpec;
  /** A `-4` line in an IPv6 file or `-6` in an IPv4 file: iptables-restore skips it. */
  skip: boolean;
}

/**
 * iptables-nft (1.8.9) turns tcp and udp options into native payload expressions and, reading the rule back, gathers
 * all of them into one match at the place of the first one that had options (a later --dport wins over an earlier
 * one). Matches without options stay where they are. Do the same so the rule prints as the kernel's.
 */
function mergeNativeMatches(loaded: LoadedExt[]): void {
  for (const name of NATIVE_MERGED) {
    let first: LoadedExt | undefined;
    for (let k = 0; k < loaded.length; k++) {
      const le = loaded[k];
      if (le.ext.name !== name || le.isTarget || le.uses.length === 0) continue;
      if (!first) {
        first = le;
        continue;
      }
      for (const u of le.uses) {
        // The value of the last one, the inversion of any (nft ORs the invert flags as it reads the compares back).
        const slot = SAME_SLOT[u.name] ?? u.name;
        const before = first.uses.filter((x) => (SAME_SLOT[x.name] ?? x.name) === slot);
        first.uses = first.uses.filter((x) => (SAME_SLOT[x.name] ?? x.name) !== slot);
        first.uses.push(before.some((x) => x.negated) && !u.negated ? { ...u, negated: true } : u);
      }
      loaded.splice(k--, 1);
    }
  }
}

const NATIVE_MERGED = ['tcp', 'udp'];
/** Options that set the same field of the merged match (--syn is --tcp-flags SYN,RST,ACK,FIN SYN). */
const SAME_SLOT: Record<string, string> = { syn: 'tcp-flags' };

/** The options of a module by the word that names them (`--dport`, aliases too); the first spec in order wins. */
const optionMaps = new WeakMap<MatchExtension | TargetExtension, Map<string, OptionSpec>>();

function optionsByWord(ext: MatchExtension | TargetExtension): Map<string, OptionSpec> {
  let m = optionMaps.get(ext);
  if (m === undefined) {
    m = new Map();
    for (const s of ext.options) {
      if (!m.has(`--${s.name}`)) m.set(`--${s.name}`, s);
      for (const a of s.aliases ?? []) if (!m.has(`--${a}`)) m.set(`--${a}`, s);
    }
    optionMaps.set(ext, m);
  }
  return m;
}

const LONG_BY_WORD = new Map<string, CoreOpt>(Object.entries(LONG).map(([k, v]) => [`--${k}`, v]));
/**
 * `--constructor` and the like: LONG is a plain object, so these have always found Object.prototype's members and
 * been refused as "unexpected option"; kept so the messages stay what they were.
 */
const INHERITED_WORDS = new Set(Object.getOwnPropertyNames(Object.prototype).map((n) => `--${n}`));

// Bits of the options that may appear once per rule.
const ONCE_SRC = 1;
const ONCE_DST = 2;
const ONCE_IN = 4;
const ONCE_OUT = 8;
const ONCE_PROTO = 16;
const ONCE_FRAG = 32;

export class Parser {
  readonly errors: RuleError[] = [];
  private lineNo = 0;
  // The words of the line being read (a LexBuf's arrays), and the next one to read.
  private tx: string[] = [];
  private cl: number[] = [];
  private end = 0;
  private pos = 0;
  /** What takeArg read last: the argument's text and column. */
  private argText = '';
  private argCol = 0;
  /** What findExtOption found besides the module. */
  private foundSpec: OptionSpec | undefined;

  constructor(
    readonly file: string,
    readonly family: Family,
  ) {}

  loc(col: number): SourceLocation {
    return { file: this.file, line: this.lineNo, column: col };
  }

  /**
   * The same, for locations the Ruleset keeps (of matches, targets and jumps). A literal of its own: V8 decides per
   * allocation site whether to allocate straight into the old generation, and these all live as long as the ruleset
   * while loc()'s (of option words) die with the line; mixed in one site, neither would be.
   */
  private keptLoc(col: number): SourceLocation {
    return { file: this.file, line: this.lineNo, column: col };
  }

  /** An option's argument: attached (`-sX`, `--opt=X`) or the next word. */
  private takeArg(optCol: number, label: string, inline: string | undefined): void {
    if (inline !== undefined) {
      this.argText = inline;
      this.argCol = optCol;
      return;
    }
    if (this.pos >= this.end) throw new LineError(`option "${label}" requires an argument`, optCol);
    this.argText = this.tx[this.pos];
    this.argCol = this.cl[this.pos];
    this.pos++;
  }

  private argWord(): Word {
    return { text: this.argText, col: this.argCol };
  }

  /** The next word when it is not an option (-I's rule number, -F's chain). */
  private optionalPositional(): Word | undefined {
    if (this.pos < this.end) {
      const t = this.tx[this.pos];
      if (t[0] !== '-' && t[0] !== '!') return { text: t, col: this.cl[this.pos++] };
    }
    return undefined;
  }

  private loadExt(ext: MatchExtension | TargetExtension, col: number, isTarget: boolean): LoadedExt {
    return { ext, uses: [], loc: this.keptLoc(col), isTarget, opts: optionsByWord(ext) };
  }

  /** What a module is told while it builds its options (iptables' final_check). */
  private context(table: TableName, cmd: Command | undefined, spec: RuleSpec, loc: SourceLocation): ParseContext {
    return {
      family: this.family,
      table,
      chain: cmd?.args[0]?.text ?? '',
      proto: spec.proto ? { value: spec.proto.value, negated: spec.proto.negated } : undefined,
      loc,
    };
  }

  /**
   * Parse the words `first ..` of `buf` (one command line) into its command and rule spec. Throws LineError or
   * RuleError for the first thing iptables would refuse.
   */
  parseCommandLine(buf: LexBuf, first: number, lineNo: number, table: TableName, counterPrefix?: Counters): LineResult {
    this.lineNo = lineNo;
    const tx = buf.texts;
    const cl = buf.cols;
    const end = buf.n;
    this.tx = tx;
    this.cl = cl;
    this.end = end;
    this.pos = first;
    const family = this.family;
    const spec: RuleSpec = { matches: [], hasSpec: false, counters: counterPrefix };
    let cmd: Command | undefined;
    let skip = false;
    const loaded: LoadedExt[] = [];
    let target: LoadedExt | undefined;
    let chainJump: { name: string; goto: boolean; loc: SourceLocation } | undefined;
    let invert = false;
    let invertCol = 0;
    let protoUsed = false;
    let protoWord = '';
    let seen = 0;

    while (this.pos < end) {
      const t = tx[this.pos];
      const col = cl[this.pos];
      this.pos++;
      if (t === '!') {
        if (invert) throw new LineError('multiple consecutive ! not allowed', col);
        invert = true;
        invertCol = col;
        continue;
      }
      if (t.length < 2 || t[0] !== '-') throw new LineError(`bad argument "${t}"`, col);

      // Which option is it: core short, core long, or an extension's long option.
      let core: CoreOpt | undefined;
      let extLe: LoadedExt | undefined;
      let extSpec: OptionSpec | undefined;
      let inline: string | undefined;
      let label = t;
      if (t[1] !== '-') {
        core = SHORT[t[1]];
        if (!core) throw new LineError(`unknown option "${t}"`, col);
        if (t.length > 2) inline = t.slice(2);
      } else {
        const eq = t.indexOf('=', 2);
        if (eq >= 0) {
          inline = t.slice(eq + 1);
          label = t.slice(0, eq);
        }
        core = LONG_BY_WORD.get(label);
        if (core === undefined && INHERITED_WORDS.has(label)) core = LONG[label.slice(2)];
        if (!core) {
          extLe = this.findExtOption(label, loaded, target);
          extSpec = this.foundSpec;
        }
        if (!core && !extSpec) {
          // getopt_long accepts an unambiguous prefix of a long option.
          const name = label.slice(2);
          const cands: { core?: CoreOpt; ext?: { le: LoadedExt; spec: OptionSpec } }[] = [];
          for (const ln of LONG_NAMES) if (ln.startsWith(name)) cands.push({ core: LONG[ln] });
          for (const le of [...(target ? [target] : []), ...loaded].reverse())
            for (const s of le.ext.options) {
              if (s.name.startsWith(name) || s.aliases?.some((a) => a.startsWith(name))) cands.push({ ext: { le, spec: s } });
            }
          const distinct = new Set(cands.map((c) => c.core ?? c.ext?.spec));
          if (distinct.size === 1 && name.length > 0) {
            core = cands[0].core;
            extLe = cands[0].ext?.le;
            extSpec = cands[0].ext?.spec;
          } else if (distinct.size > 1) throw new LineError(`option "${label}" is ambiguous`, col);
        }
        if (!core && !extSpec && spec.proto && !protoUsed) {
          // iptables command_default: an unknown option after -p loads the protocol's match implicitly, by the name
          // written (lowercased), or by the protocol's name when a number was written (find_proto).
          const m = findMatch(/^[0-9]/.test(protoWord) ? protocolName(spec.proto.value) : protoWord);
          // Family-only modules exist only in their family's iptables (ip6tables has mh, iptables does not).
          const inFamily = m !== undefined && (m.family === undefined || m.family === family);
          if (m && inFamily && m.protocolMatch !== undefined && !loaded.some((le) => le.ext === m)) {
            protoUsed = true;
            loaded.push(this.loadExt(m, col, false));
            extLe = this.findExtOption(label, loaded, target);
            extSpec = this.foundSpec;
          }
        }
        if (!core && !extSpec) throw new LineError(`unknown option "${label}"`, col);
      }

      if (extSpec !== undefined) {
        const le = extLe as LoadedExt;
        const os = extSpec;
        if (invert && !os.invertible) throw new LineError(`cannot have ! before --${os.name}`, invertCol);
        if (!os.repeatable)
          for (const u of le.uses) if (u.name === os.name) throw new LineError(`multiple --${os.name} options not allowed`, col);
        let args: string[];
        let argLocs: SourceLocation[];
        const nargs: number = os.args;
        if (nargs === 1) {
          this.takeArg(col, label, inline);
          args = [this.argText];
          argLocs = [this.loc(this.argCol)];
        } else {
          args = [];
          argLocs = [];
          for (let k = 0; k < nargs; k++) {
            this.takeArg(col, label, k === 0 ? inline : undefined);
            args.push(this.argText);
            argLocs.push(this.loc(this.argCol));
          }
        }
        if (nargs === 0 && inline !== undefined) throw new LineError(`option "${label}" doesn't allow an argument`, col);
        le.uses.push({ name: os.name, args, negated: invert, loc: this.loc(col), argLocs });
        invert = false;
        continue;
      }

      const op = core as CoreOpt;
      if (COMMANDS.has(op)) {
        if (invert) throw new LineError(`cannot have ! before ${label}`, invertCol);
        if (cmd) throw new LineError(`cannot use ${label} with another command`, col);
        const args: Word[] = [];
        switch (op) {
          case 'append':
          case 'new-chain':
            this.takeArg(col, label, inline);
            args.push(this.argWord());
            break;
          case 'insert':
          case 'delete': {
            this.takeArg(col, label, inline);
            args.push(this.argWord());
            const n = this.optionalPositional();
            if (n) args.push(n);
            break;
          }
          case 'replace':
          case 'policy':
          case 'rename-chain': {
            this.takeArg(col, label, inline);
            args.push(this.argWord());
            const n = this.optionalPositional();
            if (!n) throw new LineError(`${label} requires a ${op === 'replace' ? 'rule number' : op === 'policy' ? 'policy' : 'new chain name'}`, col);
            args.push(n);
            break;
          }
          default: {
            if (inline !== undefined) args.push({ text: inline, col });
            else {
              const n = this.optionalPositional();
              if (n) args.push(n);
            }
          }
        }
        cmd = { op, loc: this.loc(col), args };
        continue;
      }

      switch (op) {
        case 'source':
        case 'destination': {
          const bit = op === 'source' ? ONCE_SRC : ONCE_DST;
          if (seen & bit) throw new LineError(`multiple ${op === 'source' ? '-s' : '-d'} flags not allowed`, col);
          seen |= bit;
          this.takeArg(col, label, inline);
          const text = this.argText;
          const argCol = this.argCol;
          let nets: IpNet[];
          try {
            if (text.indexOf(',') < 0) nets = [parseIpNet(text, family)];
            else {
              nets = [];
              for (const part of text.split(',')) nets.push(parseIpNet(part, family));
            }
          } catch (e) {
            if (e instanceof AddrError) throw new LineError(e.message, argCol);
            throw e;
          }
          spec[op === 'source' ? 'src' : 'dst'] = { value: nets, negated: invert };
          if (invert && nets.length > 1) throw new LineError(`! not allowed with multiple source or destination IP addresses`, invertCol);
          // iptables-nft turns `! -s x/0` into a zero-length comparison, which the kernel refuses (EINVAL).
          if (invert && nets.some(isAny))
            throw new LineError(`"! ${label} ${text}" can never match (the kernel refuses an inverted /0)`, invertCol);
          spec.hasSpec = true;
          break;
        }
        case 'in-interface':
        case 'out-interface': {
          const bit = op === 'in-interface' ? ONCE_IN : ONCE_OUT;
          if (seen & bit) throw new LineError(`multiple ${op === 'in-interface' ? '-i' : '-o'} flags not allowed`, col);
          seen |= bit;
          this.takeArg(col, label, inline);
          const text = this.argText;
          if (text.length > MAX_IFACE)
            throw new LineError(`interface name "${text}" must be shorter than 16 characters`, this.argCol);
          if (text.length === 0) throw new LineError('empty interface name', this.argCol);
          spec[op === 'in-interface' ? 'inIface' : 'outIface'] = { value: text, negated: invert, col };
          spec.hasSpec = true;
          break;
        }
        case 'protocol': {
          if (seen & ONCE_PROTO) throw new LineError('multiple -p flags not allowed', col);
          seen |= ONCE_PROTO;
          this.takeArg(col, label, inline);
          const text = this.argText;
          let p: number;
          try {
            p = parseProtocol(text);
          } catch (e) {
            if (e instanceof NameError) throw new LineError(e.message, this.argCol);
            throw e;
          }
          // Any protocol number is accepted in either family (iptables takes `-p icmpv6` in IPv4); the family-only
          // matches (icmp, icmp6) are what refuse the wrong one.
          if (invert && p === 0) throw new LineError('rule would never match protocol', invertCol);
          spec.proto = { value: p, negated: invert };
          protoWord = text.toLowerCase();
          spec.hasSpec = true;
          break;
        }
        case 'fragment':
          if (family === 6) throw new LineError('-f is not supported by ip6tables (use -m frag)', col);
          if (seen & ONCE_FRAG) throw new LineError('multiple -f flags not allowed', col);
          seen |= ONCE_FRAG;
          spec.fragment = { value: true, negated: invert };
          spec.hasSpec = true;
          break;
        case 'match': {
          if (invert) throw new LineError(`cannot have ! before ${label}`, invertCol);
          this.takeArg(col, label, inline);
          const text = this.argText;
          const m = findMatch(text);
          if (!m) throw new LineError(`unknown match "${text}"`, this.argCol);
          if (m.family && m.family !== family)
            throw new LineError(`match "${text}" is IPv${m.family}-only, in an IPv${family} rule`, this.argCol);
          if (m.protocolMatch !== undefined && spec.proto && spec.proto.value === m.protocolMatch) protoUsed = true;
          loaded.push(this.loadExt(m, this.argCol, false));
          spec.hasSpec = true;
          break;
        }
        case 'jump':
        case 'goto': {
          if (invert) throw new LineError(`cannot have ! before ${label}`, invertCol);
          if (target || chainJump) throw new LineError('multiple -j/-g flags not allowed', col);
          this.takeArg(col, label, inline);
          const text = this.argText;
          const argCol = this.argCol;
          if (text.length === 0) throw new LineError('empty target name', argCol);
          const tx = op === 'jump' ? findTarget(text) : undefined;
          if (op === 'goto' && (STANDARD_VERDICTS.has(text) || findTarget(text)))
            throw new LineError(`goto target "${text}" must be a user chain`, argCol);
          if (tx) {
            if (tx.family && tx.family !== family)
              throw new LineError(`target "${text}" is IPv${tx.family}-only, in an IPv${family} rule`, argCol);
            target = this.loadExt(tx, argCol, true);
          } else if (op === 'jump' && STANDARD_VERDICTS.has(text)) {
            throw new LineError(`unknown target "${text}"`, argCol);
          } else {
            if (text.length > MAX_CHAIN_NAME) throw new LineError(`unknown target "${text}"`, argCol);
            chainJump = { name: text, goto: op === 'goto', loc: this.keptLoc(argCol) };
          }
          spec.hasSpec = true;
          break;
        }
        case 'set-counters': {
          if (invert) throw new LineError(`cannot have ! before ${label}`, invertCol);
          this.takeArg(col, label, inline);
          const p = this.argWord();
          this.takeArg(col, label, undefined);
          const b = this.argWord();
          if (!/^\d+$/.test(p.text)) throw new LineError(`packet counter "${p.text}" is not a number`, p.col);
          if (!/^\d+$/.test(b.text)) throw new LineError(`byte counter "${b.text}" is not a number`, b.col);
          spec.counters = { packets: Number(p.text), bytes: Number(b.text) };
          break;
        }
        case 'table':
          throw new LineError('the -t option cannot be used in iptables-restore', col);
        case 'ipv4':
          if (family === 6) skip = true;
          break;
        case 'ipv6':
          if (family === 4) skip = true;
          break;
        case 'wait':
          // -w takes an optional argument only when attached; both are harmless in a file.
          break;
        case 'numeric':
        case 'verbose':
        case 'exact':
          break;
        default:
          throw new LineError(`unexpected option "${label}"`, col);
      }
      invert = false;
    }
    if (invert) throw new LineError('! at the end of the line applies to nothing', invertCol);
    if (((spec.src?.value.length ?? 0) > 1 || (spec.dst?.value.length ?? 0) > 1) && (spec.src?.negated || spec.dst?.negated))
      throw new LineError('! not allowed with multiple source or destination IP addresses', 1);

    // Let each module build its options (iptables' final_check), in load order.
    // Each tcp/udp match is checked on its own first, as iptables parses it, before the nft merge.
    let tcpWithOptions = 0;
    let udpWithOptions = 0;
    for (let k = 0; k < loaded.length; k++) {
      const le = loaded[k];
      if (le.uses.length === 0) continue;
      if (le.ext.name === 'tcp') tcpWithOptions++;
      else if (le.ext.name === 'udp') udpWithOptions++;
    }
    if (tcpWithOptions > 1 || udpWithOptions > 1) {
      for (const name of NATIVE_MERGED) {
        if ((name === 'tcp' ? tcpWithOptions : udpWithOptions) < 2) continue;
        for (const le of loaded)
          if (le.ext.name === name && le.uses.length > 0) (le.ext as MatchExtension).parse(le.uses, this.context(table, cmd, spec, le.loc));
      }
      mergeNativeMatches(loaded);
    }
    // Sized up front: an array grown by push from [] keeps 17 slots, and a ruleset keeps 100,000 of these.
    if (loaded.length > 0) spec.matches = new Array<MatchUse>(loaded.length);
    for (let k = 0; k < loaded.length; k++) {
      const le = loaded[k];
      const m = le.ext as MatchExtension;
      if (m.protocolMatch !== undefined) {
        // The kernel's xt_tcpudp/icmp/sctp checkentry wants -p NAME, not negated. iptables-nft translates tcp/udp
        // options to native expressions instead, and only asks that -p name the protocol (negated or not).
        const native = (m.name === 'tcp' || m.name === 'udp') && le.uses.length > 0;
        if (!spec.proto || spec.proto.value !== m.protocolMatch || (spec.proto.negated && !native))
          throw new RuleError(`match "${m.name}" needs "-p ${m.name}"${native ? '' : ' (not negated)'} on the rule`, le.loc);
      }
      spec.matches[k] = { ext: m, opts: m.parse(le.uses, this.context(table, cmd, spec, le.loc)), loc: le.loc };
    }
    if (target) {
      const tx = target.ext as TargetExtension;
      spec.target = { kind: 'extension', ext: tx, opts: tx.parse(target.uses, this.context(table, cmd, spec, target.loc)), loc: target.loc };
    } else if (chainJump) {
      spec.target = { kind: 'chain', chain: chainJump.name, goto: chainJump.goto, loc: chainJump.loc };
    }
    return { cmd, spec, skip };
  }

  /**
   * The module whose option `word` (`--dport`) is, with the option in foundSpec. Newest first:
   * xtables_merge_options puts the newest module's options before the older ones; the target, merged when -j is
   * read, is looked at before the matches.
   */
  private findExtOption(word: string, loaded: LoadedExt[], target: LoadedExt | undefined): LoadedExt | undefined {
    if (target !== undefined) {
      const s = target.opts.get(word);
      if (s !== undefined) {
        this.foundSpec = s;
        return target;
      }
    }
    for (let k = loaded.length - 1; k >= 0; k--) {
      const s = loaded[k].opts.get(word);
      if (s !== undefined) {
        this.foundSpec = s;
        return loaded[k];
      }
    }
    this.foundSpec = undefined;
    return undefined;
  }
}

// ---- rules from a spec ----

function isAny(n: IpNet): boolean {
  for (let i = 0; i < n.mask.length; i++) if (n.mask[i] !== 0) return false;
  return true;
}

function makeRule(
  spec: RuleSpec,
  s: IpNet | undefined,
  d: IpNet | undefined,
  table: TableName,
  chain: string,
  loc: SourceLocation,
): Rule {
  // Every field present, undefined when the line has none, in this order (copyRule, line-cache.ts copyLine too): one
  // object shape for every rule, so the code that walks 110,000 of them per reload (carryCounters, the compiler, the
  // engine) reads them through monomorphic property loads. Fields added one by one made a shape per combination.
  const r: Rule = {
    id: '',
    table,
    chain,
    src: undefined,
    dst: undefined,
    inIface: undefined,
    outIface: undefined,
    proto: undefined,
    fragment: undefined,
    matches: spec.matches,
    target: undefined,
    counters: spec.counters && !zeroing ? { packets: spec.counters.packets, bytes: spec.counters.bytes } : emptyCounters(),
    loc,
  };
  // An address with a /0 mask matches everything: iptables-nft stores nothing for it and prints nothing.
  if (s && spec.src && !isAny(s)) r.src = { value: s, negated: spec.src.negated };
  if (d && spec.dst && !isAny(d)) r.dst = { value: d, negated: spec.dst.negated };
  if (spec.inIface) r.inIface = { value: spec.inIface.value, negated: spec.inIface.negated };
  if (spec.outIface) r.outIface = { value: spec.outIface.value, negated: spec.outIface.negated };
  if (spec.proto) r.proto = spec.proto;
  if (spec.fragment) r.fragment = spec.fragment;
  if (spec.target) r.target = spec.target;
  return r;
}

/** The rules of a spec: one per source and destination pair (`-s a,b` makes two). */
function expandRules(spec: RuleSpec, table: TableName, chain: string, loc: SourceLocation): Rule[] {
  const srcs = spec.src ? spec.src.value : undefined;
  const dsts = spec.dst ? spec.dst.value : undefined;
  if ((srcs === undefined || srcs.length === 1) && (dsts === undefined || dsts.length === 1))
    return [makeRule(spec, srcs?.[0], dsts?.[0], table, chain, loc)];
  const out: Rule[] = [];
  for (const s of srcs ?? [undefined]) for (const d of dsts ?? [undefined]) out.push(makeRule(spec, s, d, table, chain, loc));
  return out;
}

/**
 * Two 32-bit FNV-1a style lanes over the parts (table, chain, canonical text), as 12 base-36 characters: short,
 * stable, cheap for 100k rules. Fed piece by piece (writeRuleSpec), so the rule text is never built.
 */
class RuleHash implements TextSink {
  static readonly H1 = 0x811c9dc5;
  static readonly H2 = 0x050c5d1f;
  h1 = RuleHash.H1;
  h2 = RuleHash.H2;

  add(text: string): void {
    let h1 = this.h1;
    let h2 = this.h2;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x01000193) ^ (h1 >>> 13);
    }
    this.h1 = h1;
    this.h2 = h2;
  }

  /** Ends one part. */
  end(): void {
    this.h1 = Math.imul(this.h1, 0x01000193);
    this.h2 = Math.imul(this.h2 ^ 0xff, 0x01000193);
  }

  /** Seven base-36 digits of h1 and the first five of h2's seven (Number#toString(36) showed in profiles). */
  digest(): string {
    let a = this.h1 >>> 0;
    let b = Math.floor((this.h2 >>> 0) / 1296);
    const d = ID_DIGITS;
    const c6 = d[a % 36], c5 = d[(a = Math.floor(a / 36)) % 36], c4 = d[(a = Math.floor(a / 36)) % 36];
    const c3 = d[(a = Math.floor(a / 36)) % 36], c2 = d[(a = Math.floor(a / 36)) % 36], c1 = d[(a = Math.floor(a / 36)) % 36];
    const c0 = d[Math.floor(a / 36) % 36];
    const e4 = d[b % 36], e3 = d[(b = Math.floor(b / 36)) % 36], e2 = d[(b = Math.floor(b / 36)) % 36];
    const e1 = d[(b = Math.floor(b / 36)) % 36], e0 = d[Math.floor(b / 36) % 36];
    return String.fromCharCode(c0, c1, c2, c3, c4, c5, c6, e0, e1, e2, e3, e4);
  }
}
const ID_DIGITS = Array.from('0123456789abcdefghijklmnopqrstuvwxyz', (c) => c.charCodeAt(0));

/** Give every rule of the table its identity: hash of table, chain and canonical text; `#n` for repeats. */
export function assignRuleIds(table: Table, family: Family): void {
  for (const chain of table.chains.values()) {
    const rules = chain.rules;
    for (let k = 0; k < rules.length; k++) rules[k].id = baseRuleId(rules[k], family);
  }
  numberRuleIds(table);
}

const hash = new RuleHash();
// The hash of the table and chain parts of the last rule's id, which the next rule of the same chain starts from.
let headTable = '';
let headChain = '';
let headH1 = 0;
let headH2 = 0;

/**
 * A rule's id without its occurrence number: the hash of its table, chain and canonical text. The parser takes it as
 * each rule is added, while the rule's objects are still in the CPU's cache; walking 100,000 rules again at COMMIT
 * to format them costs several times more.
 */
function baseRuleId(r: Rule, family: Family): string {
  const h = hash;
  if (r.table !== headTable || r.chain !== headChain) {
    h.h1 = RuleHash.H1;
    h.h2 = RuleHash.H2;
    h.add(r.table);
    h.end();
    h.add(r.chain);
    h.end();
    headTable = r.table;
    headChain = r.chain;
    headH1 = h.h1;
    headH2 = h.h2;
  }
  h.h1 = headH1;
  h.h2 = headH2;
  writeRuleSpec(r, family, h);
  h.end();
  return h.digest();
}

/** Turns base ids into ids: `#n` on the n-th rule of a chain with the same base (n > 1). */
function numberRuleIds(table: Table): void {
  runSync(numberRuleIdsSteps(table));
}

function* numberRuleIdsSteps(table: Table): Steps<void> {
  // The ids of a chain's first rules: repeats among them are found by comparing, without a map per chain.
  const firsts: string[] = [];
  let chains = 0;
  for (const chain of table.chains.values()) {
    if ((++chains & 8191) === 0) yield;
    numberChain(chain, firsts);
  }
}

/**
 * numberRuleIds for one chain; `firsts` is scratch space. With `reusing` (the chain holds rules of the last parse), a
 * rule numbered is a copy put in its place.
 */
function numberChain(chain: Chain, firsts: string[], reusing?: TableBuild): void {
  const rules = chain.rules;
  let seen: Map<string, number> | undefined;
  for (let k = 0; k < rules.length; k++) {
    const r = rules[k];
    const base = r.id;
    let n = 1;
    if (k < FEW_RULES) {
      for (let j = 0; j < k; j++) if (firsts[j] === base) n++;
      firsts[k] = base;
    } else {
      if (seen === undefined) {
        seen = new Map();
        for (let j = 0; j < FEW_RULES; j++) seen.set(firsts[j], (seen.get(firsts[j]) ?? 0) + 1);
      }
      n = (seen.get(base) ?? 0) + 1;
      seen.set(base, n);
    }
    if (n > 1) (reusing === undefined ? r : (rules[k] = copyRule(r, reusing))).id = `${base}#${n}`;
  }
}

/** Chains up to this long (nearly all) look for repeated ids by comparing. */
const FEW_RULES = 16;

// ---- the file ----

function isTableName(s: string): s is TableName {
  return (TABLES as readonly string[]).includes(s);
}

export function parseRuleset(text: string, file: string, opts: ParseOptions = {}): Ruleset {
  return runSync(parseRulesetSteps(text, file, opts));
}

/**
 * parseRuleset in steps (src/steps.ts) of about a thousand lines, for a daemon that must keep deciding packets while
 * it reads a large file. `opts.extensions` holds for the whole parse, so two parses with different registries must
 * not be interleaved (only tests pass one).
 */
export function* parseRulesetSteps(text: string, file: string, opts: ParseOptions = {}): Steps<Ruleset> {
  lookup = opts.extensions ?? REGISTRY;
  zeroing = opts.zeroCounters === true;
  factBits = 0;
  try {
    return yield* parseWith(text, file, opts);
  } finally {
    lookup = REGISTRY;
    zeroing = false;
    appending = undefined;
  }
}

function* parseWith(text: string, file: string, opts: ParseOptions): Steps<Ruleset> {
  const family: Family = opts.family ?? inferFamily(text.split('\n'));
  const cache = opts.cache;
  cache?.begin(file, family, lookup, zeroing, text);
  const starts = cache?.starts;
  const p = new Parser(file, family);
  const errors = p.errors;
  const tables = new Map<TableName, Table>();
  let cur: TableBuild | undefined;
  let curFailed = false;
  const err = (line: number, col: number, msg: string) => errors.push(new RuleError(msg, { file, line, column: col }));
  let renamedTables: Set<TableName> | undefined;

  const buf = new LexBuf();
  // Line by line as text.split('\n') would give them, lexed in place: a line is never copied out of the text.
  let next = -1;
  for (let lineNo = 1, from = 0; from <= text.length; lineNo++, from = next + 1) {
    if ((lineNo & 1023) === 0) yield;
    if (starts !== undefined) starts[lineNo] = from;
    next = text.indexOf('\n', from);
    if (next < 0) next = text.length;
    let to = next;
    if (to > from && text.charCodeAt(to - 1) === 13) to--;
    if (to === from || text.charCodeAt(from) === 35 /* # */) continue;
    // A rule line seen before (its exact text, in this table): its rules are copied without reading a word of it.
    let cacheable = false;
    let own: string | undefined;
    if (cache !== undefined && cur !== undefined) {
      const c0 = text.charCodeAt(from);
      if (c0 === 58 /* : */) {
        cacheable = true;
        const hit = cache.find(cur.table.name, text, from, to, lineNo);
        own = cache.lastKey;
        // A user chain declared before, not yet in this build, while only declarations and -A made its chains: as
        // the declaration below would make it, without reading the line.
        const slot = hit?.slot;
        if (hit !== undefined && slot !== undefined && hit.decl && cur.slotsOff !== true && slot.serial !== cur.serial) {
          const c: Chain = { name: hit.chain, builtin: false, counters: emptyCounters(), rules: [], loc: { file, line: lineNo, column: 1 } };
          cur.table.chains.set(c.name, c);
          cur.touched = true;
          cache.declared(slot, c, cur.serial);
          hit.line = lineNo;
          cache.used(hit, lineNo);
          cache.stats.declsReused++;
          continue;
        }
      } else if (c0 === 45 /* - */ || c0 === 91 /* [ */) {
        cacheable = true;
        const hit = cache.find(cur.table.name, text, from, to, lineNo);
        own = cache.lastKey;
        if (hit !== undefined && !hit.decl) {
          // The first line of a user chain whose lines all stay as they were: the chain takes the rules the last parse
          // made of them.
          const slot = hit.slot;
          if (cur.sharing === true && hit.line === lineNo && slot?.serial === cur.serial && cur.onlyAppends === true && cur.slotsOff !== true) {
            const c = slot.chain!;
            const old = c.rules.length === 0 ? slot.last?.rules : undefined;
            const n = old === undefined || old.length === 0 ? 0 : cache.sharedRun(cur.table.name, hit.chain, old, lineNo, from, text, cur.vouchGen);
            if (n > 0) {
              c.rules = old!;
              (cur.shared ??= new Map()).set(c, lineNo);
              cur.last = c;
              cur.touched = true;
              factBits |= cache.useShared(lineNo, n, from, old!, cur.stateful);
              next = starts![lineNo + n] - 1;
              lineNo += n - 1;
              continue;
            }
          }
          const seenIn = hit.gen;
          const c = appendCached(hit, cur, file, lineNo, cache);
          if (c !== undefined) {
            // Rules of a line the validated version did not have are checked with the table's changes.
            if (seenIn !== cur.vouchGen) addFresh(cur, c, hit.count);
            continue;
          }
        }
      }
    }
    // With a cache, rules outlive the file they were read from: their words must not be slices of it, which would
    // keep every version of the file a rule was ever read from in memory. A copy of the line is lexed instead.
    try {
      if (cache === undefined) lexInto(text, from, to, buf);
      else {
        own ??= ownCopy(text, from, to);
        lexInto(own, 0, own.length, buf);
      }
    } catch (e) {
      if (e instanceof LexError) {
        err(lineNo, e.col, e.message);
        continue;
      }
      throw e;
    }
    const tx = buf.texts;
    const cl = buf.cols;
    if (buf.n === 0) continue;
    // iptables-restore reads the name after `*` and `:` with strtok, so `* mangle` is `*mangle`.
    if ((tx[0] === '*' || tx[0] === ':') && cl[0] === 1 && buf.n > 1) {
      tx[0] = tx[0] + tx[1];
      for (let k = 1; k + 1 < buf.n; k++) {
        tx[k] = tx[k + 1];
        cl[k] = cl[k + 1];
      }
      buf.n--;
    }
    const nw = buf.n;
    const first = tx[0];
    const loc: SourceLocation = { file, line: lineNo, column: cl[0] };

    if (first[0] === '*' && cl[0] === 1) {
      const name = first.slice(1);
      if (cur) err(lineNo, 1, `table "${cur.table.name}" (line ${cur.loc.line}) is not closed by COMMIT before this table`);
      if (!isTableName(name)) {
        err(lineNo, 2, `unknown table "${name}" (tables: ${TABLES.join(' ')})`);
        cur = undefined;
        curFailed = true;
        continue;
      }
      cur = newTable(name, loc);
      appending = cur;
      curFailed = false;
      if (cache !== undefined) {
        cur.vouchGen = cache.beginTable(name);
        cur.fresh = [];
        cur.onlyAppends = true;
        cur.sharing = zeroing && opts.shareChains === true;
      }
      continue;
    }
    if (first === 'COMMIT' && nw === 1) {
      if (!cur) {
        if (!curFailed) err(lineNo, 1, 'COMMIT outside of a table');
        curFailed = false;
        continue;
      }
      const before = errors.length;
      // Whole-table passes, in steps of their own: for a 100,000-rule table each takes about 0.1 s.
      yield;
      if (cache === undefined) yield* validateTableSteps(cur.table, family, errors);
      else yield* cache.validate(cur.table, cur.fresh, cur.vouchGen, cur.onlyAppends === true, errors);
      yield;
      if (errors.length === before) {
        if (cur.renamed) assignRuleIds(cur.table, family);
        else if (cur.rulesEdited === true) yield* numberRuleIdsSteps(cur.table);
        else if (cur.toNumber !== undefined) {
          // Only -A built the chains: a chain whose ids are all different and that never grew long needs nothing.
          const firsts: string[] = [];
          for (const c of cur.toNumber) numberChain(c, firsts, cur.reused?.has(c) === true ? cur : undefined);
        }
        recordStatefulRules(cur.table, cur.stateful);
        if (cur.touched) tables.set(cur.table.name, cur.table);
        else tables.delete(cur.table.name);
      }
      cur = undefined;
      continue;
    }
    if (!cur) {
      if (!curFailed) err(lineNo, cl[0], `"${first}" outside of a table (no *table line before it)`);
      continue;
    }
    const tb = cur;
    const chains = tb.table.chains;

    if (first[0] === ':' && cl[0] === 1) {
      const name = first.slice(1);
      const policy = nw > 1 ? tx[1] : undefined;
      if (!name) {
        err(lineNo, 2, 'empty chain name');
        continue;
      }
      if (name.length > MAX_CHAIN_NAME) {
        err(lineNo, 2, `invalid chain name "${name}" (${MAX_CHAIN_NAME} chars max)`);
        continue;
      }
      if (policy === undefined) {
        err(lineNo, cl[0] + first.length, `chain "${name}" declared without a policy`);
        continue;
      }
      // Read (and checked) on every declaration, kept by built-in chains only; no object otherwise: emptyCounters()'s
      // objects all live as long as the ruleset, which lets V8 allocate them straight into the old generation.
      let counters: Counters | undefined;
      if (nw > 2) {
        const c = parseCounterWord(tx[2]);
        if (!c) {
          err(lineNo, cl[2], `invalid counters "${tx[2]}" for chain "${name}"`);
          continue;
        }
        counters = c;
      }
      const existing = chains.get(name);
      tb.touched = true;
      if (existing?.builtin) {
        if (policy !== 'ACCEPT' && policy !== 'DROP') {
          err(lineNo, cl[1], `invalid policy "${policy}" for built-in chain "${name}" (ACCEPT or DROP)`);
          continue;
        }
        existing.policy = policy;
        existing.counters = zeroing ? emptyCounters() : counters ?? emptyCounters();
        existing.loc = loc;
        continue;
      }
      if (policy !== '-') {
        err(lineNo, cl[1], `cannot set policy "${policy}" on user chain "${name}" (built-in chains only; write "-")`);
        continue;
      }
      if (STANDARD_VERDICTS.has(name) || findTarget(name)) {
        err(lineNo, 2, `chain name "${name}" clashes with a target name`);
        continue;
      }
      if (existing) {
        // As iptables-restore: re-declaring a user chain flushes it.
        tb.shared?.delete(existing);
        existing.rules = [];
        tb.onlyAppends = false;
        continue;
      }
      const c: Chain = { name, builtin: false, counters: emptyCounters(), rules: [], loc };
      chains.set(name, c);
      if (cacheable && own !== undefined && cache !== undefined && cl[0] === 1) cache.setDecl(tb.table.name, own, lineNo, c, tb.serial);
      continue;
    }

    // A command line, with an optional [p:b] prefix.
    let counterPrefix: Counters | undefined;
    let start = 0;
    if (first[0] === '[') {
      counterPrefix = parseCounterWord(first);
      if (!counterPrefix) {
        err(lineNo, cl[0], `invalid counters "${first}"`);
        continue;
      }
      start = 1;
    }
    try {
      const res = p.parseCommandLine(buf, start, lineNo, tb.table.name, counterPrefix);
      if (res.skip) continue;
      if ((tb.shared !== undefined && tb.shared.size > 0) || tb.reused !== undefined) unshareFor(res.cmd, tb, cache!, file);
      // Deleting an empty chain (kube-proxy's stale ones) leaves the rules as appended; anything else may not.
      if (res.cmd?.op !== 'append' && !(res.cmd?.op === 'delete-chain' && isEmptyUserChain(tb, res.cmd.args[0]))) tb.onlyAppends = false;
      if (res.cmd?.op !== 'append') tb.slotsOff = true;
      if (res.cmd !== undefined && !NUMBERING_KEPT.has(res.cmd.op)) tb.rulesEdited = true;
      // A rename changes rules the cache holds as its lines' (their chain, their jumps): it forgets the table's lines,
      // before and (at the end) after it.
      if (res.cmd?.op === 'rename-chain' && cache !== undefined) {
        cache.forget(tb.table.name);
        (renamedTables ??= new Set()).add(tb.table.name);
      }
      const appended = applyCommand(res, tb, loc, family);
      if (appended !== undefined && cache !== undefined) {
        if (tb.fresh !== undefined) for (const r of appended) tb.fresh.push(r);
        if (cacheable && own !== undefined)
          cache.set(tb.table.name, own, lineNo, appended[0].chain, res.spec.inIface !== undefined, res.spec.outIface !== undefined, appended);
      }
    } catch (e) {
      if (e instanceof LineError) err(lineNo, e.col, e.message);
      else if (e instanceof RuleError) errors.push(e);
      else if (e instanceof RuleErrors) errors.push(...e.errors);
      else throw e;
    }
  }
  if (cur) err(cur.loc.line, 1, `table "${cur.table.name}" is not closed by COMMIT`);
  if (cache !== undefined) {
    for (const t of renamedTables ?? []) cache.forget(t);
    yield* cache.end();
  }
  if (errors.length > 0) {
    errors.sort((a, b) => a.loc.line - b.loc.line || a.loc.column - b.loc.column);
    throw new RuleErrors(errors);
  }
  // Print order of iptables-save (nft): the tables in the backend's list order.
  const ordered = new Map<TableName, Table>();
  for (const name of SAVE_TABLE_ORDER) {
    const t = tables.get(name);
    if (t) ordered.set(name, t);
  }
  const rs: Ruleset = { family, tables: ordered, sources: [file] };
  recordFacts(rs, factBits);
  return rs;
}

/** iptables-nft's table list order (nft.c xtables_ipv4[]), which iptables-save follows. */
export const SAVE_TABLE_ORDER: readonly TableName[] = ['mangle', 'security', 'raw', 'filter', 'nat'];

function chainOf(tb: TableBuild, w: Word | undefined, loc: SourceLocation): Chain {
  if (!w) throw new RuleError('chain name required', loc);
  // Rule files append to one chain line after line: skip the map lookup then.
  if (tb.last !== undefined && tb.last.name === w.text) return tb.last;
  const c = tb.table.chains.get(w.text);
  if (c) tb.last = c;
  if (!c) throw new RuleError(`chain "${w.text}" does not exist in table ${tb.table.name}`, { ...loc, column: w.col });
  return c;
}

/** iptables' generic_opt_check for built-in chains: no input interface after routing out, no output before. */
function checkIfaceForChain(spec: RuleSpec, c: Chain): void {
  if (!c.builtin) return;
  if (spec.inIface && (c.name === 'OUTPUT' || c.name === 'POSTROUTING'))
    throw new LineError(`can't use -i with ${c.name}`, spec.inIface.col);
  if (spec.outIface && (c.name === 'PREROUTING' || c.name === 'INPUT'))
    throw new LineError(`can't use -o with ${c.name}`, spec.outIface.col);
}

function ruleNumber(w: Word, loc: SourceLocation): number {
  if (!/^\d+$/.test(w.text) || Number(w.text) < 1)
    throw new RuleError(`invalid rule number "${w.text}"`, { ...loc, column: w.col });
  return Number(w.text);
}

function referencedBy(table: Table, name: string): Rule | undefined {
  for (const c of table.chains.values())
    for (const r of c.rules) if (r.target?.kind === 'chain' && r.target.chain === name) return r;
  return undefined;
}

/**
 * c.rules.push(r), with short chains in arrays of their own length: push grows an empty array to 17 slots, and a
 * large file has tens of thousands of chains of one to four rules.
 */
function appendRule(c: Chain, r: Rule): void {
  const a = c.rules;
  const n = a.length;
  // What numberRuleIds would find at COMMIT, while the chain's rules are still in the CPU's cache: a repeated id
  // among the first FEW_RULES, or a chain longer (whose repeats are found with a map then).
  if (n < FEW_RULES) {
    const id = r.id;
    for (let j = 0; j < n; j++)
      if (a[j].id === id) {
        numberLater(c);
        break;
      }
  } else if (n === FEW_RULES) numberLater(c);
  switch (n) {
    case 0:
      c.rules = [r];
      break;
    case 1:
      c.rules = [a[0], r];
      break;
    case 2:
      c.rules = [a[0], a[1], r];
      break;
    case 3:
      c.rules = [a[0], a[1], a[2], r];
      break;
    default:
      a.push(r);
  }
}

function numberLater(c: Chain): void {
  if (appending !== undefined) (appending.toNumber ??= new Set()).add(c);
}

/** Commands after which appendRule's account of the ids still holds: they add no rule and change none. */
const NUMBERING_KEPT: ReadonlySet<string> = new Set(['append', 'new-chain', 'delete-chain', 'policy', 'zero']);

function needNoSpec(spec: RuleSpec, loc: SourceLocation): void {
  if (spec.hasSpec) throw new RuleError(`rule options are not allowed with this command`, loc);
}

/**
 * A cached `-A` line (src/rules/line-cache.ts) appended to its chain, as applyCommand would append it; returns the
 * chain. Undefined when it would fail here (no such chain, -i/-o refused by a built-in chain): the line is then
 * parsed, for the error.
 */
function appendCached(e: CachedLine, tb: TableBuild, file: string, lineNo: number, cache: ParseCache): Chain | undefined {
  const slot = e.slot;
  const c =
    slot !== undefined && slot.serial === tb.serial && tb.slotsOff !== true
      ? slot.chain
      : tb.last !== undefined && tb.last.name === e.chain
        ? tb.last
        : tb.table.chains.get(e.chain);
  if (c === undefined) return undefined;
  if (c.builtin) {
    if (e.inIface && (c.name === 'OUTPUT' || c.name === 'POSTROUTING')) return undefined;
    if (e.outIface && (c.name === 'PREROUTING' || c.name === 'INPUT')) return undefined;
  }
  tb.last = c;
  tb.touched = true;
  if (tb.shared !== undefined && tb.shared.has(c)) unshare(tb, c, cache, file);
  if (e.line !== lineNo) cache.stats.moved++;
  const old = reusable(e, tb, c, lineNo);
  if (old !== undefined) {
    // The rules a copy would be made of, with the same ids: the rules themselves, which spares a copy of each and,
    // once carryCounters finds the chain unchanged, its garbage (50,000 rules per kube-proxy sync at 10,000 services).
    const pos = c.rules.length;
    for (let k = 0; k < e.count; k++) appendRule(c, old[pos + k]);
    if ((e.facts & HAS_STATE) !== 0) for (let k = 0; k < e.count; k++) tb.stateful.push(old[pos + k]);
    if (tb.lastReused !== c) {
      (tb.reused ??= new Set()).add(c);
      tb.lastReused = c;
    }
  } else copyLine(e, file, lineNo, zeroing, c, appendRule, (e.facts & HAS_STATE) === 0 ? undefined : tb.stateful);
  factBits |= e.facts;
  cache.used(e, lineNo);
  cache.stats.reused++;
  return c;
}

/**
 * The rules of the last parse's version of chain `c` (ChainSlot.last) when the unmoved line `e`'s rules are where `c`'s
 * next rules go, with the ids the line gives (ids numbered as repeats are left to copies); undefined otherwise.
 */
function reusable(e: CachedLine, tb: TableBuild, c: Chain, lineNo: number): readonly Rule[] | undefined {
  if (e.line !== lineNo || tb.sharing !== true || tb.onlyAppends !== true || tb.slotsOff === true) return undefined;
  const slot = e.slot;
  if (slot === undefined || slot.chain !== c || slot.serial !== tb.serial) return undefined;
  const old = slot.last?.rules;
  return old !== undefined && madeOf(e, old, c.rules.length, true) ? old : undefined;
}

/**
 * A rule of the last parse as a rule of this one: its objects, and counters of its own (rules are only ever taken with
 * ParseOptions.zeroCounters).
 */
function copyRule(r: Rule, tb: TableBuild): Rule {
  // Field by field, not a spread (`{ ...r }`), which gives the copy another hidden class than makeRule's.
  const c: Rule = {
    id: r.id,
    table: r.table,
    chain: r.chain,
    src: r.src,
    dst: r.dst,
    inIface: r.inIface,
    outIface: r.outIface,
    proto: r.proto,
    fragment: r.fragment,
    matches: r.matches,
    target: r.target,
    counters: emptyCounters(),
    loc: r.loc,
  };
  // Listed after the rule it copies: the engine takes the state of the last rule listed with the same match.
  if ((ruleFacts(c) & HAS_STATE) !== 0) tb.stateful.push(c);
  return c;
}

/** Replaces every rule the chains took from the last parse (TableBuild.reused) by a copy. */
function unreuse(tb: TableBuild): void {
  if (tb.reused === undefined) return;
  for (const c of tb.reused) c.rules = c.rules.map((r) => copyRule(r, tb));
  tb.reused = undefined;
  tb.lastReused = undefined;
}

/**
 * Gives a chain that took the rules of the last parse (ParseOptions.shareChains) copies of them, made of its lines as
 * appendCached makes them, before something changes it.
 */
function unshare(tb: TableBuild, c: Chain, cache: ParseCache, file: string): void {
  const line = tb.shared!.get(c)!;
  tb.shared!.delete(c);
  const n = c.rules.length;
  c.rules = [];
  for (let l = line, made = 0; made < n; l++) {
    const e = cache.lineAt(l)!;
    copyLine(e, file, l, zeroing, c, appendRule, (e.facts & HAS_STATE) === 0 ? undefined : tb.stateful);
    made += e.count;
  }
}

/**
 * Before a parsed command: the shared chain an -A appends to gets copies of its rules, and every shared chain does
 * before a command that may change rules (-I, -D, -R, -F, -Z, -E). -N, -X and -P change none.
 */
function unshareFor(cmd: Command | undefined, tb: TableBuild, cache: ParseCache, file: string): void {
  const op = cmd?.op;
  if (op === 'new-chain' || op === 'delete-chain' || op === 'policy') return;
  if (op === 'append') {
    // Appending changes none of the rules a chain took line by line (TableBuild.reused).
    const name = cmd?.args[0]?.text;
    const c = name === undefined ? undefined : tb.table.chains.get(name);
    if (c !== undefined && tb.shared?.has(c) === true) unshare(tb, c, cache, file);
    return;
  }
  if (tb.shared !== undefined) for (const c of [...tb.shared.keys()]) unshare(tb, c, cache, file);
  unreuse(tb);
}

function isEmptyUserChain(tb: TableBuild, w: Word | undefined): boolean {
  const c = w === undefined ? undefined : tb.table.chains.get(w.text);
  return c !== undefined && !c.builtin && c.rules.length === 0;
}

/** The `count` rules a cached line just appended to `c` (its last ones), as rules to validate with the changes. */
function addFresh(tb: TableBuild, c: Chain, count: number): void {
  const fresh = tb.fresh;
  if (fresh === undefined) return;
  for (let k = c.rules.length - count; k < c.rules.length; k++) fresh.push(c.rules[k]);
}

/** Carries out one command line; for -A, returns the rules it appended. */
function applyCommand(res: LineResult, tb: TableBuild, lineLoc: SourceLocation, family: Family): Rule[] | undefined {
  const { cmd, spec } = res;
  if (!cmd) throw new RuleError('no command given (expected -A, -I, -N, ...)', lineLoc);
  const loc = cmd.loc;
  const table = tb.table;
  tb.touched = true;
  switch (cmd.op) {
    case 'append':
    case 'insert': {
      const c = chainOf(tb, cmd.args[0], loc);
      checkIfaceForChain(spec, c);
      const rules = expandRules(spec, table.name, c.name, lineLoc);
      for (let k = 0; k < rules.length; k++) rules[k].id = baseRuleId(rules[k], family);
      const bits = ruleFacts(rules[0]);
      factBits |= bits;
      if ((bits & HAS_STATE) !== 0) for (const r of rules) tb.stateful.push(r);
      if (cmd.op === 'append') {
        for (let k = 0; k < rules.length; k++) appendRule(c, rules[k]);
        return rules;
      } else {
        const n = cmd.args[1] ? ruleNumber(cmd.args[1], loc) : 1;
        if (n > c.rules.length + 1)
          throw new RuleError(`index of insertion too big (chain "${c.name}" has ${c.rules.length} rules)`, {
            ...loc,
            column: cmd.args[1].col,
          });
        c.rules.splice(n - 1, 0, ...rules);
      }
      return;
    }
    case 'delete': {
      const c = chainOf(tb, cmd.args[0], loc);
      if (cmd.args[1]) {
        needNoSpec(spec, loc);
        const n = ruleNumber(cmd.args[1], loc);
        if (n > c.rules.length)
          throw new RuleError(`index of deletion too big (chain "${c.name}" has ${c.rules.length} rules)`, {
            ...loc,
            column: cmd.args[1].col,
          });
        c.rules.splice(n - 1, 1);
        return;
      }
      for (const r of expandRules(spec, table.name, c.name, lineLoc)) {
        const want = formatRuleSpec(r, family);
        const k = c.rules.findIndex((x) => formatRuleSpec(x, family) === want);
        if (k < 0) throw new RuleError(`bad rule (no matching rule exists in chain "${c.name}")`, loc);
        c.rules.splice(k, 1);
      }
      return;
    }
    case 'replace': {
      const c = chainOf(tb, cmd.args[0], loc);
      checkIfaceForChain(spec, c);
      const n = ruleNumber(cmd.args[1], loc);
      const rules = expandRules(spec, table.name, c.name, lineLoc);
      if (rules.length !== 1) throw new RuleError('-R takes exactly one source and destination address', loc);
      rules[0].id = baseRuleId(rules[0], family);
      const bits = ruleFacts(rules[0]);
      factBits |= bits;
      if ((bits & HAS_STATE) !== 0) tb.stateful.push(rules[0]);
      if (n > c.rules.length)
        throw new RuleError(`index of replacement too big (chain "${c.name}" has ${c.rules.length} rules)`, {
          ...loc,
          column: cmd.args[1].col,
        });
      c.rules[n - 1] = rules[0];
      return;
    }
    case 'new-chain': {
      needNoSpec(spec, loc);
      const w = cmd.args[0];
      const wl = { ...loc, column: w.col };
      if (w.text.length > MAX_CHAIN_NAME)
        throw new RuleError(`invalid chain name "${w.text}" (${MAX_CHAIN_NAME} chars max)`, wl);
      if (w.text[0] === '-' || w.text[0] === '!') throw new RuleError(`chain name may not start with "${w.text[0]}"`, wl);
      if (STANDARD_VERDICTS.has(w.text) || findTarget(w.text))
        throw new RuleError(`chain name "${w.text}" clashes with a target name`, wl);
      if (table.chains.has(w.text)) throw new RuleError(`chain "${w.text}" already exists`, wl);
      table.chains.set(w.text, { name: w.text, builtin: false, counters: emptyCounters(), rules: [], loc: lineLoc });
      return;
    }
    case 'delete-chain': {
      needNoSpec(spec, loc);
      tb.last = undefined;
      const w = cmd.args[0];
      const targets = w ? [chainOf(tb, w, loc)] : [...table.chains.values()].filter((c) => !c.builtin);
      for (const c of targets) {
        if (c.builtin) throw new RuleError(`cannot delete built-in chain "${c.name}"`, { ...loc, column: w?.col ?? loc.column });
        const ref = referencedBy(table, c.name);
        if (ref && (w || ref.chain !== c.name))
          throw new RuleError(
            `cannot delete chain "${c.name}": still referenced (${ref.loc.file}:${ref.loc.line}, chain ${ref.chain})`,
            { ...loc, column: w?.col ?? loc.column },
          );
      }
      for (const c of targets) table.chains.delete(c.name);
      // chainOf remembered the chain: a later -A must not find it there.
      tb.last = undefined;
      return;
    }
    case 'flush': {
      needNoSpec(spec, loc);
      const w = cmd.args[0];
      const targets = w ? [chainOf(tb, w, loc)] : [...table.chains.values()];
      for (const c of targets) c.rules = [];
      return;
    }
    case 'zero': {
      needNoSpec(spec, loc);
      const w = cmd.args[0];
      const targets = w ? [chainOf(tb, w, loc)] : [...table.chains.values()];
      for (const c of targets) {
        c.counters = emptyCounters();
        for (const r of c.rules) r.counters = emptyCounters();
      }
      return;
    }
    case 'policy': {
      needNoSpec(spec, loc);
      const c = chainOf(tb, cmd.args[0], loc);
      const pol = cmd.args[1];
      if (!c.builtin) throw new RuleError(`cannot set a policy on user chain "${c.name}"`, { ...loc, column: cmd.args[0].col });
      if (pol.text !== 'ACCEPT' && pol.text !== 'DROP')
        throw new RuleError(`invalid policy "${pol.text}" (ACCEPT or DROP)`, { ...loc, column: pol.col });
      c.policy = pol.text;
      if (spec.counters && !zeroing) c.counters = spec.counters;
      return;
    }
    case 'rename-chain': {
      needNoSpec(spec, loc);
      tb.last = undefined;
      tb.renamed = true;
      const c = chainOf(tb, cmd.args[0], loc);
      const nw = cmd.args[1];
      const nl = { ...loc, column: nw.col };
      if (c.builtin) throw new RuleError(`cannot rename built-in chain "${c.name}"`, { ...loc, column: cmd.args[0].col });
      if (table.chains.has(nw.text)) throw new RuleError(`chain "${nw.text}" already exists`, nl);
      if (nw.text.length > MAX_CHAIN_NAME) throw new RuleError(`invalid chain name "${nw.text}" (${MAX_CHAIN_NAME} chars max)`, nl);
      const entries = [...table.chains.entries()];
      table.chains.clear();
      const old = c.name;
      c.name = nw.text;
      for (const [k, v] of entries) table.chains.set(k === old ? nw.text : k, v);
      for (const r of c.rules) r.chain = nw.text;
      for (const ch of table.chains.values())
        for (const r of ch.rules) if (r.target?.kind === 'chain' && r.target.chain === old) r.target = { ...r.target, chain: nw.text };
      return;
    }
    default:
      throw new RuleError(`unexpected command`, loc);
  }
}
