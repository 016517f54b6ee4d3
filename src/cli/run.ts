// `nfqwall run`: load rule files, bind the queue, install the kernel hooks, serve until a signal.
import type { Command } from 'commander';
import { RuleError, RuleErrors } from '../rules/errors';
import { DEFAULT_CONTROL_PATH } from '../daemon/control';
import { runDaemon } from '../daemon/daemon';

interface RunOptions {
  rules?: string;
  rules6?: string;
  queue: number;
  failOpen?: boolean;
  control: string;
}

function parseQueue(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new Error(`--queue: "${text}" is not a queue number (0..65535)`);
  return n;
}

/** The lines a user sees for a failure to start: one `file:line:column: message` per rule error. */
export function startErrorLines(err: unknown): string[] {
  if (err instanceof RuleErrors) return err.errors.map((e) => e.message);
  if (err instanceof RuleError) return [err.message];
  return [`nfqwall: ${err instanceof Error ? err.message : String(err)}`];
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('enforce rule files on queued traffic until SIGTERM/SIGINT')
    .option('--rules <file>', 'IPv4 rule file (iptables-save format)')
    .option('--rules6 <file>', 'IPv6 rule file (ip6tables-save format)')
    .option('--queue <n>', 'NFQUEUE number', parseQueue, 0)
    .option('--fail-open', 'accept traffic when nfqwall is not there to decide (--queue-bypass, fail-open queue)')
    .option('--control <path>', 'control socket path', DEFAULT_CONTROL_PATH)
    .action(async (opts: RunOptions) => {
      if (opts.rules === undefined && opts.rules6 === undefined) {
        process.stderr.write('nfqwall run: give --rules FILE and/or --rules6 FILE\n');
        process.exit(1);
      }
      let code: number;
      try {
        code = await runDaemon({
          rules4: opts.rules,
          rules6: opts.rules6,
          queue: opts.queue,
          failOpen: opts.failOpen === true,
          controlPath: opts.control,
        });
      } catch (err) {
        for (const line of startErrorLines(err)) process.stderr.write(line + '\n');
        code = 1;
      }
      // The addon's receive thread is gone after close, but exit explicitly so nothing else keeps us alive.
      process.exit(code);
    });
}
