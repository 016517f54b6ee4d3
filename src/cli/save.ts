// `nfqwall save [-4|-6] [-c] FILE`: the canonical text kernel iptables-save would print for the file.
import type { Command } from 'commander';
import { RuleErrors } from '../rules/errors';
import { loadRuleFile } from '../rules/load';
import { saveRuleset } from '../rules/save';
import { familyOption } from './check';

export interface SaveCliOptions {
  ipv4?: boolean;
  ipv6?: boolean;
  counters?: boolean;
  /** The running daemon's control socket: print its live ruleset and counters instead of a file's. */
  control?: string;
}

/**
 * Hook for the daemon: `save -c --control PATH` asks the running daemon for its ruleset text. Left unset until the
 * daemon helper provides it (setDaemonSave); without it `--control` is refused.
 */
let daemonSave: ((opts: SaveCliOptions) => Promise<string>) | undefined;
export function setDaemonSave(fn: (opts: SaveCliOptions) => Promise<string>): void {
  daemonSave = fn;
}

export function registerSave(program: Command): void {
  program
    .command('save')
    .description('print a rule file as kernel iptables-save would print it after iptables-restore')
    .option('-4, --ipv4', 'the file is IPv4 rules')
    .option('-6, --ipv6', 'the file is IPv6 rules')
    .option('-c, --counters', 'print packet and byte counters')
    .option('--control <path>', "the running daemon's control socket (instead of FILE)")
    .argument('[file]', 'rule file in iptables-save format')
    .action(async (file: string | undefined, opts: SaveCliOptions) => {
      if (opts.control !== undefined) {
        if (!daemonSave) throw new Error('save --control is not available in this build');
        process.stdout.write(await daemonSave(opts));
        return;
      }
      if (file === undefined) throw new Error('save needs a FILE (or --control PATH)');
      const family = familyOption(opts);
      try {
        process.stdout.write(saveRuleset(loadRuleFile(file, family, { counters: true }), { counters: opts.counters === true }));
      } catch (e) {
        if (!(e instanceof RuleErrors)) throw e;
        process.stderr.write(`${e.message}\n`);
        process.exitCode = 1;
      }
    });
}
