// `nfqwall run`: load the configuration and rule files, bind the queue, install the kernel hooks, serve until a
// signal. Flags override the configuration file (/etc/nfqwall/nfqwall.conf when it exists, or --config FILE).
import type { Command } from 'commander';
import { ConfigErrors, DEFAULT_CONFIG_PATH, lateQueueOf, resolveConfig, type Config, type ConfigOverrides } from '../config/config';
import { RuleError, RuleErrors } from '../rules/errors';
import { runDaemon, type DaemonOptions } from '../daemon/daemon';
import { checkFileSafety } from '../daemon/files';
import { Logger } from '../daemon/logger';
import { Privilege, startOnlyCapabilities } from '../daemon/privilege';

interface RunOptions {
  config?: string;
  rules?: string;
  rules6?: string;
  ipset?: string[];
  queue?: string;
  queues?: string;
  queueCpuFanout?: boolean;
  lateQueue?: string;
  queueMaxlen?: string;
  failOpen?: boolean;
  control?: string;
  metrics?: string;
  logLevel?: string;
  flowCache?: boolean;
  matcher?: boolean;
  skipMark?: string;
  heapLimit?: string;
}

/** The lines a user sees for a failure to start: one `file:line:column: message` per rule or configuration error. */
export function startErrorLines(err: unknown): string[] {
  if (err instanceof RuleErrors || err instanceof ConfigErrors) return err.errors.map((e) => e.message);
  if (err instanceof RuleError) return [err.message];
  return [`nfqwall: ${err instanceof Error ? err.message : String(err)}`];
}

/** The daemon's options for a resolved configuration. */
export function daemonOptions(cfg: Config): DaemonOptions {
  const opts: DaemonOptions = {
    rules4: cfg.rules,
    rules6: cfg.rules6,
    ipsets: cfg.ipsets,
    queue: cfg.queue,
    queues: cfg.queues,
    queueCpuFanout: cfg.queueCpuFanout,
    lateQueue: lateQueueOf(cfg),
    queueMaxlen: cfg.queueMaxlen,
    failOpen: cfg.failOpen,
    hooks: cfg.hooks,
    controlPath: cfg.control,
    controlMode: cfg.controlMode,
    controlGroup: cfg.controlGroup,
    logRate: cfg.logRate,
    logBurst: cfg.logBurst,
    metrics: cfg.metrics,
    conntrackMax: cfg.conntrackMax, // H16
    flowCache: cfg.flowCache,
    matcher: cfg.matcher,
    skipMark: cfg.skipMark,
    heapLimitMiB: cfg.heapLimitMiB,
  };
  // H2: by descriptor, so a full disk or a broken log stream costs lines (counted), not the daemon.
  opts.logger = new Logger({ level: cfg.logLevel, fd: cfg.logDestination === 'stderr' ? 2 : 1 });
  return opts;
}

const collect = (value: string, prev: string[] | undefined): string[] => [...(prev ?? []), value];

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('enforce rule files on queued traffic until SIGTERM/SIGINT (SIGHUP reloads)')
    .option('--config <file>', `configuration file (default ${DEFAULT_CONFIG_PATH} when it exists)`)
    .option('--rules <file>', 'IPv4 rule file (iptables-save format)')
    .option('--rules6 <file>', 'IPv6 rule file (ip6tables-save format)')
    .option('--ipset <file>', 'ipset save file for -m set (repeatable)', collect)
    .option('--queue <n>', 'NFQUEUE number (default 0)')
    .option('--queues <count>', 'consecutive queues from --queue, spread by address hash (default 1)')
    .option('--queue-cpu-fanout', 'with --queues, spread by the CPU that handles the packet instead (queue_cpu_fanout = on)')
    .option('--late-queue <n>', 'first of the queues for the hooks after PREROUTING (INPUT, FORWARD, POSTROUTING), "auto" (right after --queues) or "off" (default auto)')
    .option('--queue-maxlen <packets>', 'packets the kernel holds for the queue at most (default 4096)')
    .option('--fail-open', 'accept traffic when nfqwall is not there to decide (--queue-bypass, fail-open queue)')
    .option('--fail-closed', 'drop traffic when nfqwall is not there to decide (the default)')
    .option('--control <path>', 'control socket path (default /run/nfqwall/control.sock)')
    .option('--metrics <addr:port>', 'Prometheus endpoint, or "off" (default 127.0.0.1:9469)')
    .option('--log-level <level>', 'err, warning, notice, info or debug (default info)')
    .option('--no-flow-cache', 'decide every packet in JavaScript: no cached decisions for settled connections (flow_cache = off)')
    .option('--no-matcher', 'no compiled rule programs: the packets the flow cache cannot decide go to JavaScript (matcher = off)')
    .option('--heap-limit <MiB>', 'the JavaScript heap\'s budget: a reload that would pass it fails and the running rules stay (default auto: half the memory)')
    .option('--skip-mark <bits>', 'two mark bits that let settled packets pass later hooks without a queue trip, or "off" (default 0x30000000)')
    .action(async (opts: RunOptions & { failClosed?: boolean }, cmd: Command) => {
      let code: number;
      try {
        if (opts.failOpen === true && opts.failClosed === true) throw new Error('give --fail-open or --fail-closed, not both');
        const overrides: ConfigOverrides = {
          rules: opts.rules,
          rules6: opts.rules6,
          ipset: opts.ipset,
          queue: opts.queue,
          queues: opts.queues,
          queueCpuFanout: opts.queueCpuFanout === true ? true : undefined,
          lateQueue: opts.lateQueue,
          queueMaxlen: opts.queueMaxlen,
          failOpen: opts.failOpen === true ? true : opts.failClosed === true ? false : undefined,
          control: opts.control,
          metrics: opts.metrics,
          logLevel: opts.logLevel,
          // Commander defaults a --no-* flag to true: only the flag itself overrides the file.
          flowCache: cmd.getOptionValueSource('flowCache') === 'cli' ? opts.flowCache : undefined,
          matcher: cmd.getOptionValueSource('matcher') === 'cli' ? opts.matcher : undefined,
          skipMark: opts.skipMark,
          heapLimit: opts.heapLimit,
        };
        const cfg = resolveConfig(opts.config, overrides);
        // Refused before anything acts on it, as the rule files are (src/daemon/files.ts).
        if (cfg.file !== undefined) checkFileSafety([cfg.file]);
        if (cfg.rules === undefined && cfg.rules6 === undefined) {
          throw new Error('no rule file: give --rules FILE and/or --rules6 FILE, or rules/rules6 in the configuration');
        }
        // Issue #9: raw sockets open, every capability but CAP_NET_ADMIN dropped; may re-execute this process (same
        // pid, same arguments) and so never return here: everything above runs again in the new image, cheaply.
        const privilege = Privilege.acquire(startOnlyCapabilities(cfg));
        const dopts = daemonOptions(cfg);
        dopts.privilege = privilege;
        const said = privilege.describe();
        dopts.logger?.info(said.info);
        for (const w of said.warnings) dopts.logger?.warning(w);
        code = await runDaemon(dopts);
      } catch (err) {
        for (const line of startErrorLines(err)) process.stderr.write(line + '\n');
        code = 1;
      }
      // The addon's receive thread is gone after close, but exit explicitly so nothing else keeps us alive.
      process.exit(code);
    });
}
