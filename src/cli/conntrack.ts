// `nfqwall conntrack -L [--control PATH]`: the running daemon's connection table, printed as `conntrack -L` prints it
// (one line per entry on stdout, the summary on stderr).
import type { Command } from 'commander';
import { controlRequest, DEFAULT_CONTROL_PATH } from '../daemon/control';

/** conntrack-tools' closing line (conntrack.c: "%s v%s (conntrack-tools): %d flow entries have been shown."). */
export function conntrackSummary(n: number): string {
  return `conntrack v1.4.7 (conntrack-tools): ${n} flow entries have been shown.`;
}

export function registerConntrack(program: Command): void {
  program
    .command('conntrack')
    .description("list the running nfqwall's connection table (conntrack -L)")
    .option('-L, --dump', 'list the connections')
    .option('--control <path>', 'control socket path', DEFAULT_CONTROL_PATH)
    .action(async (opts: { dump?: boolean; control: string }) => {
      if (opts.dump !== true) {
        process.stderr.write('nfqwall conntrack: give -L\n');
        process.exitCode = 1;
        return;
      }
      try {
        const res = await controlRequest(opts.control, { cmd: 'conntrack' });
        if (!res.ok) {
          process.stderr.write(`nfqwall conntrack: ${res.error}\n`);
          process.exitCode = 1;
          return;
        }
        const entries = Array.isArray(res['entries']) ? (res['entries'] as { line?: unknown }[]) : [];
        let text = '';
        for (const e of entries) if (typeof e.line === 'string') text += e.line + '\n';
        process.stdout.write(text);
        process.stderr.write(conntrackSummary(entries.length) + '\n');
      } catch (err) {
        process.stderr.write(`nfqwall conntrack: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });
}
