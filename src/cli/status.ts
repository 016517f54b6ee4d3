// `nfqwall status`: ask a running daemon over its control socket. Also provides `nfqwall save --control` its
// client (registered here because save.ts leaves the daemon side to this module).
import type { Command } from 'commander';
import { controlRequest, DEFAULT_CONTROL_PATH } from '../daemon/control';
import { setDaemonSave, type SaveCliOptions } from './save';

/** The live ruleset text of one family from the daemon; -4/-6 choose when it holds both. */
export async function daemonSaveText(opts: SaveCliOptions): Promise<string> {
  const socket = opts.control ?? DEFAULT_CONTROL_PATH;
  const res = await controlRequest(socket, { cmd: 'save', counters: opts.counters === true });
  if (!res.ok) throw new Error(res.error);
  const sets = (res as { rulesets?: Record<string, unknown> }).rulesets ?? {};
  const want = opts.ipv6 === true ? ['ipv6'] : opts.ipv4 === true ? ['ipv4'] : Object.keys(sets);
  if (want.length > 1) throw new Error('the daemon holds IPv4 and IPv6 rules: give -4 or -6');
  const text = want.length === 1 ? sets[want[0]!] : undefined;
  if (typeof text !== 'string') throw new Error(`the daemon holds no ${want.length === 1 ? want[0]! + ' ' : ''}ruleset`);
  return text;
}

export function registerStatus(program: Command): void {
  setDaemonSave(daemonSaveText);
  program
    .command('status')
    .description('print the status of a running nfqwall as JSON')
    .option('--control <path>', 'control socket path', DEFAULT_CONTROL_PATH)
    .action(async (opts: { control: string }) => {
      try {
        const res = await controlRequest(opts.control, { cmd: 'status' });
        if (!res.ok) {
          process.stderr.write(`nfqwall status: ${res.error}\n`);
          process.exitCode = 1;
          return;
        }
        process.stdout.write(JSON.stringify(res, null, 2) + '\n');
      } catch (err) {
        process.stderr.write(`nfqwall status: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });
}
