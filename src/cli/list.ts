// `nfqwall list [-t table] [-v] [-n] [-x] [--line-numbers] [-4|-6] (--control PATH | FILE)`: the ruleset as
// `iptables -L` prints it with the same flags. From the daemon, its live ruleset with counters: the save text it
// answers is canonical, so parsing it back gives exactly the rules it runs.
import type { Command } from 'commander';
import { controlRequest } from '../daemon/control';
import { RuleErrors } from '../rules/errors';
import { listTable } from '../rules/list';
import { loadRuleFile } from '../rules/load';
import { TABLES, type Family, type Ruleset, type TableName } from '../rules/model';
import { parseRuleset } from '../rules/parse';
import { familyOption } from './check';

export interface ListCliOptions {
  table: string;
  verbose?: boolean;
  numeric?: boolean;
  exact?: boolean;
  lineNumbers?: boolean;
  ipv4?: boolean;
  ipv6?: boolean;
  control?: string;
}

async function fromDaemon(socket: string, family: Family | undefined): Promise<Ruleset> {
  const res = await controlRequest(socket, { cmd: 'save', counters: true });
  if (!res.ok) throw new Error(`the daemon refused: ${res.error}`);
  const sets = (res as { rulesets?: { ipv4?: unknown; ipv6?: unknown } }).rulesets ?? {};
  // Without -4/-6: IPv4, unless the daemon runs IPv6 rules only.
  const fam: Family = family ?? (typeof sets.ipv4 !== 'string' && typeof sets.ipv6 === 'string' ? 6 : 4);
  const text = fam === 6 ? sets.ipv6 : sets.ipv4;
  if (typeof text !== 'string') throw new Error(`the daemon at ${socket} runs no IPv${fam} rules`);
  return parseRuleset(text, `${socket} (IPv${fam})`, { family: fam });
}

export function registerList(program: Command): void {
  program
    .command('list')
    .description('print the rules of a table as `iptables -L` does, from a rule file or the running daemon')
    .option('-t, --table <table>', `the table (${TABLES.join(', ')})`, 'filter')
    .option('-v, --verbose', 'counters and interfaces')
    .option('-n, --numeric', 'numeric addresses, ports and protocols')
    .option('-x, --exact', 'exact counter values (no K/M/G)')
    .option('--line-numbers', 'rule numbers')
    .option('-4, --ipv4', 'IPv4 rules')
    .option('-6, --ipv6', 'IPv6 rules')
    .option('--control <path>', "the running daemon's control socket (instead of FILE)")
    .argument('[file]', 'rule file in iptables-save format')
    .action(async (file: string | undefined, opts: ListCliOptions) => {
      if (!(TABLES as readonly string[]).includes(opts.table))
        throw new Error(`unknown table "${opts.table}" (tables: ${TABLES.join(' ')})`);
      const family = familyOption(opts);
      if ((file === undefined) === (opts.control === undefined)) throw new Error('list needs a FILE or --control PATH');
      try {
        const rs = opts.control !== undefined ? await fromDaemon(opts.control, family) : loadRuleFile(file as string, family, { counters: true });
        process.stdout.write(
          listTable(rs, opts.table as TableName, {
            verbose: opts.verbose === true,
            numeric: opts.numeric === true,
            exact: opts.exact === true,
            lineNumbers: opts.lineNumbers === true,
          }),
        );
      } catch (e) {
        if (!(e instanceof RuleErrors)) throw e;
        process.stderr.write(`${e.message}\n`);
        process.exitCode = 1;
      }
    });
}
