// `nfqwall reload`: ask a running daemon to reread its rule and ipset files and wait for the result. Exits non-zero
// when the files are broken (their file:line:column errors on stderr; the daemon keeps its running rules).
import type { Command } from 'commander';
import { controlRequest, DEFAULT_CONTROL_PATH } from '../daemon/control';

export function registerReload(program: Command): void {
  program
    .command('reload')
    .description('reload the rule and ipset files of a running nfqwall and report the result')
    .option('--control <path>', 'control socket path', DEFAULT_CONTROL_PATH)
    .option('--timeout <ms>', 'how long to wait for the result', '60000')
    .action(async (opts: { control: string; timeout: string }) => {
      try {
        const res = await controlRequest(opts.control, { cmd: 'reload' }, Number(opts.timeout) || 60_000);
        if (!res.ok) {
          process.stderr.write(`nfqwall reload: failed, the running rules stay:\n${res.error}\n`);
          process.exitCode = 1;
          return;
        }
        const ms = typeof res['durationMs'] === 'number' ? ` in ${res['durationMs']} ms` : '';
        process.stdout.write(`reloaded${ms}\n`);
      } catch (err) {
        process.stderr.write(`nfqwall reload: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });
}
