// `nfqwall counters --zero`: zero the rule and chain counters of a running daemon (iptables -Z).
import type { Command } from 'commander';
import { controlRequest, DEFAULT_CONTROL_PATH } from '../daemon/control';

export function registerCounters(program: Command): void {
  program
    .command('counters')
    .description('act on the packet/byte counters of a running nfqwall (see `nfqwall save --counters` to read them)')
    .option('--zero', 'zero every rule and built-in chain counter')
    .option('--control <path>', 'control socket path', DEFAULT_CONTROL_PATH)
    .action(async (opts: { zero?: boolean; control: string }) => {
      if (opts.zero !== true) {
        process.stderr.write('nfqwall counters: give --zero (read counters with `nfqwall save --counters`)\n');
        process.exitCode = 1;
        return;
      }
      try {
        const res = await controlRequest(opts.control, { cmd: 'counters', zero: true });
        if (!res.ok) {
          process.stderr.write(`nfqwall counters: ${res.error}\n`);
          process.exitCode = 1;
          return;
        }
        process.stdout.write(`zeroed ${String(res['zeroed'])} counters\n`);
      } catch (err) {
        process.stderr.write(`nfqwall counters: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });
}
