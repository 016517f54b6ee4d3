// The daemon: rule files -> engine -> queue -> kernel hooks, then serve batches and the control socket until a
// signal. Hooks go in last and come out first, so the kernel never queues to a queue nobody answers while we stop.
import { Engine } from '../engine/engine';
import { LinuxHost } from '../engine/host';
import { EmptySets } from '../engine/sets';
import type { QueueStats, PacketBatch } from '../native';
import { checkEnforceable } from '../rules/enforce';
import { RuleErrors, type RuleError } from '../rules/errors';
import { loadRuleFile } from '../rules/load';
import type { Family, Ruleset } from '../rules/model';
import { HOOKS } from '../rules/model';
import { saveRuleset } from '../rules/save';
import { ControlServer, claimSocketPath, type Handlers } from './control';
import { HookManager } from './hooks';
import { InterfaceNames } from './interfaces';
import { BatchProcessor } from './processor';

export interface DaemonOptions {
  rules4?: string;
  rules6?: string;
  queue: number;
  failOpen: boolean;
  controlPath: string;
  log?: (msg: string) => void;
}

export interface LoadedRules {
  rules4?: Ruleset;
  rules6?: Ruleset;
}

/**
 * Reads, parses and checks the rule files. Throws RuleErrors (every problem of both files, with file:line:column) on
 * any fault in them; other errors (an unreadable file) as they are.
 */
export function loadRulesets(opts: { rules4?: string; rules6?: string }): LoadedRules {
  const out: LoadedRules = {};
  const errors: RuleError[] = [];
  const load = (file: string, family: Family): Ruleset | undefined => {
    try {
      const rs = loadRuleFile(file, family);
      checkEnforceable(rs);
      return rs;
    } catch (err) {
      if (!(err instanceof RuleErrors)) throw err;
      errors.push(...err.errors);
      return undefined;
    }
  };
  if (opts.rules4 !== undefined) out.rules4 = load(opts.rules4, 4);
  if (opts.rules6 !== undefined) out.rules6 = load(opts.rules6, 6);
  if (errors.length > 0) throw new RuleErrors(errors);
  return out;
}

export interface RulesetSummary {
  sources: string[];
  tables: string[];
  chains: number;
  rules: number;
}

export function summarize(rs: Ruleset): RulesetSummary {
  let chains = 0;
  let rules = 0;
  for (const t of rs.tables.values()) {
    for (const c of t.chains.values()) {
      chains++;
      rules += c.rules.length;
    }
  }
  return { sources: [...rs.sources], tables: [...rs.tables.keys()], chains, rules };
}

const familyKey = (f: Family): 'ipv4' | 'ipv6' => (f === 4 ? 'ipv4' : 'ipv6');

/** The addon, loaded only when a daemon starts, so commands that never bind a queue work without it. */
function loadAddon(): typeof import('../native') {
  return require('../native') as typeof import('../native');
}

function notify(state: string): void {
  try {
    loadAddon().addon.notify(state);
  } catch {
    // No service manager to tell, or it went away: nothing to do.
  }
}

type Queue = InstanceType<ReturnType<typeof loadAddon>['addon']['Queue']>;

const HOST_REFRESH_MS = 5000;
const ERROR_LOG_INTERVAL_MS = 1000;

export class Daemon {
  readonly startedAt = Date.now();
  private queue: Queue | undefined;
  private control: ControlServer | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private lastErrorLog = 0;
  private suppressedErrors = 0;
  readonly hooks: HookManager;
  readonly processor: BatchProcessor;
  readonly ifnames = new InterfaceNames();

  private constructor(
    readonly opts: DaemonOptions,
    readonly rules: LoadedRules,
    private readonly host: LinuxHost,
  ) {
    const log = opts.log ?? ((msg: string) => process.stderr.write(`nfqwall: ${msg}\n`));
    this.log = log;
    this.hooks = new HookManager({ log });
    const engine = new Engine({ rules4: rules.rules4, rules6: rules.rules6, host, sets: new EmptySets() });
    this.processor = new BatchProcessor(engine, this.ifnames, {
      failOpen: opts.failOpen,
      onError: (err) => this.packetError(err),
      onLog: (rec) => process.stdout.write(`${rec.line}\n`),
      sendReply: (packet) => loadAddon().addon.sendRaw(packet),
    });
  }

  private readonly log: (msg: string) => void;

  /**
   * Loads everything, binds the queue, installs the hooks. Any failure before serving undoes what was done and
   * rethrows; rule-file errors happen before anything touches the kernel.
   */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    if (opts.rules4 === undefined && opts.rules6 === undefined) throw new Error('no rule file given');
    const rules = loadRulesets(opts);
    const host = await LinuxHost.load();
    const d = new Daemon(opts, rules, host);
    try {
      await claimSocketPath(opts.controlPath);
      const { addon } = loadAddon();
      d.queue = new addon.Queue(
        { queue: opts.queue, failOpen: opts.failOpen, overloadVerdict: opts.failOpen ? 'accept' : 'drop' },
        (batch) => d.onBatch(batch),
      );
      // A crashed run's hooks go first in both families, even one this run does not filter: left in place they
      // would keep queueing (or, fail-closed, dropping) that family's traffic to a queue nobody serves.
      for (const family of [4, 6] as const) d.hooks.removeStale(family);
      for (const rs of [rules.rules4, rules.rules6]) {
        if (rs === undefined) continue;
        d.hooks.install({
          family: rs.family,
          hooks: HOOKS,
          queue: opts.queue,
          failOpen: opts.failOpen,
          notrack: true,
          ownerPid: process.pid,
        });
      }
      // Last, so that a status answer means the hooks are in (the lab and service managers wait on it).
      d.control = await ControlServer.listen(opts.controlPath, d.handlers());
    } catch (err) {
      await d.stop();
      throw err;
    }
    d.timers.push(
      setInterval(() => {
        d.ifnames.refresh();
        Promise.resolve(d.host.refresh()).catch((err: unknown) => d.log(`host refresh failed: ${String(err)}`));
      }, HOST_REFRESH_MS),
    );
    for (const t of d.timers) t.unref();
    notify('READY=1');
    d.log(`serving queue ${opts.queue} (${opts.failOpen ? 'fail-open' : 'fail-closed'}), control ${opts.controlPath}`);
    return d;
  }

  private onBatch(batch: PacketBatch): void {
    const q = this.queue;
    if (!q) return;
    try {
      q.verdict(batch, this.processor.process(batch));
    } catch (err) {
      // Processing catches per packet, so this is the verdict call itself; try once more with the fail verdict.
      this.log(`batch ${batch.seq}: ${err instanceof Error ? err.message : String(err)}`);
      try {
        q.verdict(batch, this.processor.failAll(batch.count));
      } catch {
        // Already verdicted, or the queue closed: the addon defaults whatever is left.
      }
    }
  }

  /** Packet errors are logged at most once a second, with how many were not shown. */
  private packetError(err: unknown): void {
    const now = Date.now();
    if (now - this.lastErrorLog < ERROR_LOG_INTERVAL_MS) {
      this.suppressedErrors++;
      return;
    }
    const more = this.suppressedErrors > 0 ? ` (${this.suppressedErrors} more not shown)` : '';
    this.lastErrorLog = now;
    this.suppressedErrors = 0;
    const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
    this.log(`packet evaluation failed, ${this.opts.failOpen ? 'accepted' : 'dropped'}${more}: ${msg}`);
  }

  queueStats(): QueueStats[] {
    return this.queue ? [this.queue.stats()] : [];
  }

  status(): Record<string, unknown> {
    const rulesets: Record<string, RulesetSummary> = {};
    for (const rs of [this.rules.rules4, this.rules.rules6]) if (rs) rulesets[familyKey(rs.family)] = summarize(rs);
    return {
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      queue: this.opts.queue,
      failOpen: this.opts.failOpen,
      rulesets,
      queues: this.queueStats(),
      packets: { ...this.processor.stats },
      hooks: this.hooks.active.map((h) => ({
        family: familyKey(h.family),
        backend: h.backend.name,
        tables: Object.fromEntries([...h.owned].map(([t, o]) => [t, o.chains])),
      })),
    };
  }

  save(counters: boolean): Record<string, string> {
    const out: Record<string, string> = {};
    for (const rs of [this.rules.rules4, this.rules.rules6]) {
      if (rs) out[familyKey(rs.family)] = saveRuleset(rs, { counters });
    }
    return out;
  }

  handlers(): Handlers {
    return {
      status: () => this.status(),
      save: (req) => {
        const c = req['counters'];
        if (c !== undefined && typeof c !== 'boolean') throw new Error('"counters" must be a boolean');
        return { rulesets: this.save(c === true) };
      },
    };
  }

  /** Hooks out first (the kernel stops queueing), then the queue, then the control socket. Returns error messages. */
  async stop(): Promise<string[]> {
    if (this.stopping) return [];
    this.stopping = true;
    notify('STOPPING=1');
    for (const t of this.timers) clearInterval(t);
    const errors = this.hooks.remove();
    try {
      this.queue?.close();
    } catch (err) {
      errors.push(`closing the queue: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.queue = undefined;
    await this.control?.close();
    this.control = undefined;
    for (const e of errors) this.log(e);
    return errors;
  }
}

/**
 * Runs a daemon until SIGTERM/SIGINT (exit 0) or an unhandled error (exit 1), removing the hooks either way.
 * Resolves with the exit code; rejects only if starting failed (after undoing the start).
 */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  // Handlers go in before start, so a signal that arrives while hooks are being installed still removes them.
  let daemon: Daemon | undefined;
  let stopRequest: { code: number; why: string } | undefined;
  let resolveExit: (code: number) => void = () => undefined;
  const exit = new Promise<number>((resolve) => (resolveExit = resolve));
  let finishing = false;
  const finish = (code: number, why: string): void => {
    if (!daemon) {
      stopRequest ??= { code, why };
      return;
    }
    if (finishing) return;
    finishing = true;
    process.stderr.write(`nfqwall: stopping: ${why}\n`);
    daemon.stop().then(
      (errors) => resolveExit(errors.length > 0 && code === 0 ? 1 : code),
      () => resolveExit(1),
    );
  };
  const onTerm = (): void => finish(0, 'SIGTERM');
  const onInt = (): void => finish(0, 'SIGINT');
  const onError = (err: unknown): void =>
    finish(1, `unhandled error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  try {
    daemon = await Daemon.start(opts);
  } catch (err) {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
    throw err;
  }
  if (stopRequest) finish(stopRequest.code, stopRequest.why);
  return exit;
}
