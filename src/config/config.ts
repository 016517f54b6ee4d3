// The daemon's configuration file (/etc/nfqwall/nfqwall.conf): `key = value` lines, `#` comment lines, blank lines.
// Every key is documented in examples/nfqwall.conf. Relative paths resolve against the directory of the file, so a
// configuration and its rule files can move together. Errors name `file:line:column` and the key.
import { DEFAULT_SKIP_MARK, isSkipMark } from '../daemon/skip-guard';
import fs from 'node:fs';
import path from 'node:path';
import { HOOKS, type Hook } from '../rules/model';

export const DEFAULT_CONFIG_PATH = '/etc/nfqwall/nfqwall.conf';
export const DEFAULT_CONTROL = '/run/nfqwall/control.sock';
export const DEFAULT_METRICS = '127.0.0.1:9469';

export const LOG_LEVELS = ['err', 'warning', 'notice', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** journald/syslog priorities (sd-daemon.h SD_ERR .. SD_DEBUG). */
export const LOG_PRIORITY: Readonly<Record<LogLevel, number>> = { err: 3, warning: 4, notice: 5, info: 6, debug: 7 };

export interface ListenAddress {
  host: string;
  port: number;
}

/** Everything the daemon is told, after defaults, the file and command-line flags. */
export interface Config {
  /** The file it came from, if any. */
  file?: string;
  rules?: string;
  rules6?: string;
  ipsets: string[];
  queue: number;
  /** How many consecutive queues starting at `queue`: the hooks spread packets over them (--queue-balance). */
  queues: number;
  /** With several queues, the kernel picks a packet's queue by the CPU handling it, not by address hash. */
  queueCpuFanout: boolean;
  /**
   * The first of `queues` queues for the hooks a packet reaches after PREROUTING (docs/flow-cache.md, Late queue):
   * 'auto' the numbers right after the queues, 'off' one set of queues for every hook.
   */
  lateQueue: number | 'auto' | 'off';
  failOpen: boolean;
  /** Hooks nfqwall installs NFQUEUE jumps in; empty: none (the administrator's own rules queue). */
  hooks: Hook[];
  /** Connection-tracking table size (nfqwall's nf_conntrack_max). */
  conntrackMax?: number;
  /** Decide settled connections' packets natively from cached decisions (docs/flow-cache.md). */
  flowCache: boolean;
  /** Decide the packets the cache cannot with the compiled rule programs on the receive thread (docs/matcher.md). */
  matcher: boolean;
  /**
   * The packet mark bit the flow cache sets so the kernel passes a settled packet's later hooks without a queue trip
   * (docs/flow-cache.md, Trips); 0: every hook keeps its trip. Reserved: nfqwall's rules never see it set.
   */
  skipMark: number;
  /** Packets the kernel holds for the queue at most (NFQA_CFG_QUEUE_MAXLEN); beyond it the fail-open/closed policy. */
  queueMaxlen: number;
  /** The JavaScript heap's budget in MiB (src/daemon/heap.ts); undefined: auto, half of the memory available. */
  heapLimitMiB?: number;
  /** Prometheus endpoint, or undefined when off. */
  metrics?: ListenAddress;
  logLevel: LogLevel;
  logDestination: 'stdout' | 'stderr';
  /** LOG/NFLOG lines per second written, and the burst allowed above it. */
  logRate: number;
  logBurst: number;
  control: string;
  controlMode: number;
  /** Group (name or number) given access to the control socket; with it the default mode is 0660. */
  controlGroup?: string;
}

export function defaultConfig(): Config {
  return {
    ipsets: [],
    queue: 0,
    queues: 1,
    queueCpuFanout: false,
    lateQueue: 'auto',
    queueMaxlen: DEFAULT_QUEUE_MAXLEN,
    failOpen: false,
    hooks: [...HOOKS],
    flowCache: true,
    matcher: true,
    skipMark: DEFAULT_SKIP_MARK,
    metrics: parseListen(DEFAULT_METRICS),
    logLevel: 'info',
    logDestination: 'stdout',
    logRate: 50,
    logBurst: 100,
    control: DEFAULT_CONTROL,
    controlMode: 0o600,
  };
}

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`${file}:${line}:${column}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** All the errors of one file, so a user fixes them in one pass. */
export class ConfigErrors extends Error {
  constructor(readonly errors: ConfigError[]) {
    super(errors.map((e) => e.message).join('\n'));
    this.name = 'ConfigErrors';
  }
}

// ---- value parsers: each throws an Error whose message says what is wrong with the value ----

export function parseQueueNumber(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new Error(`"${text}" is not a queue number (0..65535)`);
  return n;
}

export function parseLateQueue(text: string): number | 'auto' | 'off' {
  if (text === 'auto' || text === 'off') return text;
  try {
    return parseQueueNumber(text);
  } catch {
    throw new Error(`"${text}" is not a queue number (0..65535), auto or off`);
  }
}

/** The late queues' first number, or undefined when there are none; throws when they do not fit beside the queues. */
export function lateQueueOf(cfg: Pick<Config, 'queue' | 'queues' | 'lateQueue'>): number | undefined {
  if (cfg.lateQueue === 'off') return undefined;
  const first = cfg.lateQueue === 'auto' ? cfg.queue + cfg.queues : cfg.lateQueue;
  if (first + cfg.queues - 1 > 65535) {
    throw new Error(`the late queues ${first}..${first + cfg.queues - 1} go past 65535: set late_queue to a free number, or off`);
  }
  if (first < cfg.queue + cfg.queues && first + cfg.queues > cfg.queue) {
    throw new Error(`the late queues ${first}..${first + cfg.queues - 1} overlap the queues ${cfg.queue}..${cfg.queue + cfg.queues - 1}`);
  }
  return first;
}

/** The addon's default (native/addon.cc): room for a few milliseconds of a flood, or a second of moderate traffic. */
export const DEFAULT_QUEUE_MAXLEN = 4096;

export function parseQueueMaxlen(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 1_048_576) throw new Error(`"${text}" is not a queue length (1..1048576 packets)`);
  return n;
}

/** `auto` (undefined) or MiB: at least 64, at most 16 TiB. */
export function parseHeapLimit(text: string): number | undefined {
  if (text === 'auto') return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 64 || n > 2 ** 24) throw new Error(`"${text}" is not a heap limit ("auto", or MiB from 64)`);
  return n;
}

/** `auto` leaves no key, as the default has none. */
function setHeapLimit(cfg: Config, mib: number | undefined): void {
  if (mib === undefined) delete cfg.heapLimitMiB;
  else cfg.heapLimitMiB = mib;
}

/** Two mark bits (`0x30000000`), or 0/off. */
export function parseSkipMark(text: string): number {
  if (text === 'off') return 0;
  const n = Number(text);
  if (!/^(0x[0-9a-fA-F]{1,8}|\d+)$/.test(text) || (n !== 0 && !isSkipMark(n))) {
    throw new Error(`"${text}" is not two mark bits (such as 0x30000000), 0 or off`);
  }
  return n;
}

export function parseQueueCount(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 1024) throw new Error(`"${text}" is not a queue count (1..1024)`);
  return n;
}

export function parseBool(text: string): boolean {
  const t = text.toLowerCase();
  if (['yes', 'true', 'on', '1'].includes(t)) return true;
  if (['no', 'false', 'off', '0'].includes(t)) return false;
  throw new Error(`"${text}" is not a boolean (yes/no, true/false, on/off, 1/0)`);
}

export function parseHooks(text: string): Hook[] {
  const t = text.trim();
  if (t === 'all') return [...HOOKS];
  if (t === 'none') return [];
  const out: Hook[] = [];
  for (const part of t.split(/[\s,]+/)) {
    const h = part.toUpperCase();
    if (!(HOOKS as readonly string[]).includes(h)) {
      throw new Error(`"${part}" is not a hook (all, none, or a list of ${HOOKS.join(', ')})`);
    }
    if (!out.includes(h as Hook)) out.push(h as Hook);
  }
  // In the kernel's order, whatever order they were written in.
  return HOOKS.filter((h) => out.includes(h));
}

export function parsePositiveInt(text: string, max = 2 ** 31 - 1): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > max) throw new Error(`"${text}" is not a whole number from 1 to ${max}`);
  return n;
}

/** `ADDR:PORT`, `[v6addr]:PORT` or `:PORT` (all addresses); `off` is handled by the caller. */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]*)):(\d+)$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new Error(`"${text}" is not ADDR:PORT (e.g. 127.0.0.1:9469, [::1]:9469)`);
  return { host: m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!), port };
}

export function parseMetrics(text: string): ListenAddress | undefined {
  return text === 'off' || text === 'no' ? undefined : parseListen(text);
}

export function parseLogLevel(text: string): LogLevel {
  const t = text.toLowerCase();
  const alias: Record<string, LogLevel> = { error: 'err', warn: 'warning' };
  const lvl = alias[t] ?? t;
  if (!(LOG_LEVELS as readonly string[]).includes(lvl)) {
    throw new Error(`"${text}" is not a log level (${LOG_LEVELS.join(', ')})`);
  }
  return lvl as LogLevel;
}

export function parseMode(text: string): number {
  if (!/^0?[0-7]{3}$/.test(text)) throw new Error(`"${text}" is not an octal file mode (e.g. 0600, 0660)`);
  const mode = parseInt(text, 8);
  if ((mode & 0o600) !== 0o600) throw new Error(`"${text}" must let the owner read and write (0600 at least)`);
  if ((mode & 0o111) !== 0) throw new Error(`"${text}" sets execute bits, which mean nothing on a socket`);
  return mode;
}

export function parseGroup(text: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(text)) throw new Error(`"${text}" is not a group name or number`);
  return text;
}

/** iptables refuses --queue-cpu-fanout without --queue-balance (libxt_NFQUEUE): one queue has nothing to pick from. */
const FANOUT_NEEDS_QUEUES = 'needs queues of 2 or more: one queue has nothing to pick from';

// ---- the file ----

type Setter = (cfg: Config, value: string, resolvePath: (p: string) => string) => void;

const KEYS: Readonly<Record<string, { set: Setter; repeatable?: boolean }>> = {
  rules: { set: (c, v, r) => (c.rules = r(v)) },
  rules6: { set: (c, v, r) => (c.rules6 = r(v)) },
  ipset: { set: (c, v, r) => c.ipsets.push(r(v)), repeatable: true },
  queue: { set: (c, v) => (c.queue = parseQueueNumber(v)) },
  queues: { set: (c, v) => (c.queues = parseQueueCount(v)) },
  queue_cpu_fanout: { set: (c, v) => (c.queueCpuFanout = parseBool(v)) },
  late_queue: { set: (c, v) => (c.lateQueue = parseLateQueue(v)) },
  queue_maxlen: { set: (c, v) => (c.queueMaxlen = parseQueueMaxlen(v)) },
  fail_open: { set: (c, v) => (c.failOpen = parseBool(v)) },
  hooks: { set: (c, v) => (c.hooks = parseHooks(v)) },
  conntrack_max: { set: (c, v) => (c.conntrackMax = parsePositiveInt(v)) },
  heap_limit: { set: (c, v) => setHeapLimit(c, parseHeapLimit(v)) },
  flow_cache: { set: (c, v) => (c.flowCache = parseBool(v)) },
  matcher: { set: (c, v) => (c.matcher = parseBool(v)) },
  skip_mark: { set: (c, v) => (c.skipMark = parseSkipMark(v)) },
  metrics: { set: (c, v) => (c.metrics = parseMetrics(v)) },
  log_level: { set: (c, v) => (c.logLevel = parseLogLevel(v)) },
  log_destination: {
    set: (c, v) => {
      if (v !== 'stdout' && v !== 'stderr') throw new Error(`"${v}" is not a log destination (stdout, stderr)`);
      c.logDestination = v;
    },
  },
  log_rate: { set: (c, v) => (c.logRate = parsePositiveInt(v, 1_000_000)) },
  log_burst: { set: (c, v) => (c.logBurst = parsePositiveInt(v, 1_000_000)) },
  control: { set: (c, v, r) => (c.control = r(v)) },
  control_mode: { set: (c, v) => (c.controlMode = parseMode(v)) },
  control_group: { set: (c, v) => (c.controlGroup = parseGroup(v)) },
};

export const CONFIG_KEYS: readonly string[] = Object.keys(KEYS);

/** What the file set explicitly, so command-line flags and derived defaults know what was given. */
export interface ParsedConfig {
  config: Config;
  given: Set<string>;
}

/**
 * Parses configuration text. `file` names it in errors and anchors relative paths. Throws ConfigErrors with every
 * problem found.
 */
export function parseConfig(text: string, file: string): ParsedConfig {
  const cfg = defaultConfig();
  const given = new Set<string>();
  const firstLine = new Map<string, number>();
  const errors: ConfigError[] = [];
  const dir = path.dirname(path.resolve(file));
  const resolvePath = (p: string): string => path.resolve(dir, p);
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const content = raw.replace(/\r$/, '');
    const trimmed = content.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const indent = content.length - content.trimStart().length;
    const eq = content.indexOf('=');
    if (eq < 0) {
      errors.push(new ConfigError(`expected "key = value", found "${trimmed}"`, file, line, indent + 1));
      return;
    }
    const key = content.slice(0, eq).trim();
    const afterEq = content.slice(eq + 1);
    const value = afterEq.trim();
    const valueCol = eq + 2 + (afterEq.length - afterEq.trimStart().length);
    const spec = Object.prototype.hasOwnProperty.call(KEYS, key) ? KEYS[key] : undefined;
    if (!spec) {
      const what = key === '' ? 'missing key before "="' : `unknown key "${key}" (known: ${CONFIG_KEYS.join(', ')})`;
      errors.push(new ConfigError(what, file, line, indent + 1));
      return;
    }
    if (value === '') {
      errors.push(new ConfigError(`${key}: missing value after "="`, file, line, eq + 1));
      return;
    }
    const first = firstLine.get(key);
    if (first !== undefined && spec.repeatable !== true) {
      errors.push(new ConfigError(`${key}: given twice (first at line ${first})`, file, line, indent + 1));
      return;
    }
    firstLine.set(key, line);
    try {
      spec.set(cfg, value, resolvePath);
      given.add(key);
    } catch (err) {
      errors.push(new ConfigError(`${key}: ${err instanceof Error ? err.message : String(err)}`, file, line, valueCol));
    }
  });
  if (given.has('control_group') && !given.has('control_mode')) cfg.controlMode = 0o660;
  if (errors.length === 0 && cfg.queue + cfg.queues - 1 > 65535) {
    const line = firstLine.get('queues') ?? firstLine.get('queue') ?? 0;
    errors.push(new ConfigError(`queues: queue ${cfg.queue} + ${cfg.queues} queues goes past 65535`, file, line, 1));
  }
  if (errors.length === 0 && cfg.queueCpuFanout && cfg.queues === 1) {
    errors.push(new ConfigError(`queue_cpu_fanout: ${FANOUT_NEEDS_QUEUES}`, file, firstLine.get('queue_cpu_fanout') ?? 0, 1));
  }
  if (errors.length === 0) {
    try {
      lateQueueOf(cfg);
    } catch (err) {
      const line = firstLine.get('late_queue') ?? firstLine.get('queues') ?? firstLine.get('queue') ?? 0;
      errors.push(new ConfigError(`late_queue: ${err instanceof Error ? err.message : String(err)}`, file, line, 1));
    }
  }
  if (errors.length > 0) throw new ConfigErrors(errors);
  cfg.file = file;
  return { config: cfg, given };
}

/** Reads and parses a configuration file; an unreadable file is a ConfigErrors naming it. */
export function loadConfigFile(file: string): ParsedConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new ConfigErrors([new ConfigError(`cannot read configuration: ${why}`, file, 0, 0)]);
  }
  return parseConfig(text, file);
}

/** Command-line flags, each overriding the file's key of the same meaning. Paths resolve against the cwd. */
export interface ConfigOverrides {
  rules?: string;
  rules6?: string;
  ipset?: string[];
  queue?: string;
  queues?: string;
  /** --queue-cpu-fanout gives true; undefined keeps the file's `queue_cpu_fanout`. */
  queueCpuFanout?: boolean;
  lateQueue?: string;
  queueMaxlen?: string;
  failOpen?: boolean;
  control?: string;
  metrics?: string;
  logLevel?: string;
  /** --no-flow-cache gives false; undefined keeps the file's `flow_cache`. */
  flowCache?: boolean;
  /** --no-matcher gives false; undefined keeps the file's `matcher`. */
  matcher?: boolean;
  skipMark?: string;
  heapLimit?: string;
}

/** Applies flags over a configuration. Throws an Error naming the flag when a value is invalid. */
export function applyOverrides(base: Config, o: ConfigOverrides, cwd = process.cwd()): Config {
  const cfg: Config = { ...base, ipsets: [...base.ipsets], hooks: [...base.hooks] };
  const flag = <T>(name: string, f: () => T): T => {
    try {
      return f();
    } catch (err) {
      throw new Error(`--${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  if (o.rules !== undefined) cfg.rules = path.resolve(cwd, o.rules);
  if (o.rules6 !== undefined) cfg.rules6 = path.resolve(cwd, o.rules6);
  // Flags replace the file's list rather than adding to it, as for every other key.
  if (o.ipset !== undefined && o.ipset.length > 0) cfg.ipsets = o.ipset.map((p) => path.resolve(cwd, p));
  if (o.queue !== undefined) cfg.queue = flag('queue', () => parseQueueNumber(o.queue!));
  if (o.queues !== undefined) cfg.queues = flag('queues', () => parseQueueCount(o.queues!));
  if (o.queueCpuFanout !== undefined) cfg.queueCpuFanout = o.queueCpuFanout;
  if (o.lateQueue !== undefined) cfg.lateQueue = flag('late-queue', () => parseLateQueue(o.lateQueue!));
  if (o.queueMaxlen !== undefined) cfg.queueMaxlen = flag('queue-maxlen', () => parseQueueMaxlen(o.queueMaxlen!));
  if (o.failOpen !== undefined) cfg.failOpen = o.failOpen;
  if (o.flowCache !== undefined) cfg.flowCache = o.flowCache;
  if (o.matcher !== undefined) cfg.matcher = o.matcher;
  if (o.skipMark !== undefined) cfg.skipMark = flag('skip-mark', () => parseSkipMark(o.skipMark!));
  if (o.heapLimit !== undefined) setHeapLimit(cfg, flag('heap-limit', () => parseHeapLimit(o.heapLimit!)));
  if (o.control !== undefined) cfg.control = path.resolve(cwd, o.control);
  if (o.metrics !== undefined) cfg.metrics = flag('metrics', () => parseMetrics(o.metrics!));
  if (o.logLevel !== undefined) cfg.logLevel = flag('log-level', () => parseLogLevel(o.logLevel!));
  if (cfg.queue + cfg.queues - 1 > 65535) throw new Error(`--queues: queue ${cfg.queue} + ${cfg.queues} queues goes past 65535`);
  if (cfg.queueCpuFanout && cfg.queues === 1) throw new Error(`queue_cpu_fanout (--queue-cpu-fanout) ${FANOUT_NEEDS_QUEUES} (--queues)`);
  flag('late-queue', () => lateQueueOf(cfg));
  return cfg;
}

/**
 * The configuration a `run` uses: defaults, then `configFile` (or the default file when it exists and none was
 * named), then the flags.
 */
export function resolveConfig(configFile: string | undefined, overrides: ConfigOverrides, cwd = process.cwd()): Config {
  let base = defaultConfig();
  const file = configFile ?? (fs.existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
  if (file !== undefined) base = loadConfigFile(path.resolve(cwd, file)).config;
  return applyOverrides(base, overrides, cwd);
}
