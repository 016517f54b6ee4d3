// `nfqwall check [-4|-6] FILE...`: parse and validate rule files, one summary line each.
import type { Command } from 'commander';
import { RuleErrors } from '../rules/errors';
import { loadRuleFile } from '../rules/load';
import type { Family, Ruleset } from '../rules/model';

export function familyOption(opts: { ipv4?: boolean; ipv6?: boolean }): Family | undefined {
  if (opts.ipv4 && opts.ipv6) throw new Error('-4 and -6 are mutually exclusive');
  return opts.ipv4 ? 4 : opts.ipv6 ? 6 : undefined;
}

export function summarize(file: string, rs: Ruleset): string {
  let chains = 0;
  let rules = 0;
  for (const t of rs.tables.values())
    for (const c of t.chains.values()) {
      chains++;
      rules += c.rules.length;
    }
  const n = (k: number, word: string) => `${k} ${word}${k === 1 ? '' : 's'}`;
  return `${file}: ok, IPv${rs.family}, ${n(rs.tables.size, 'table')}, ${n(chains, 'chain')}, ${n(rules, 'rule')}`;
}

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('parse and validate rule files as iptables-restore would, without loading them')
    .option('-4, --ipv4', 'the files are IPv4 rules (iptables-save)')
    .option('-6, --ipv6', 'the files are IPv6 rules (ip6tables-save)')
    .argument('<files...>', 'rule files in iptables-save format')
    .action((files: string[], opts: { ipv4?: boolean; ipv6?: boolean }) => {
      const family = familyOption(opts);
      let failed = false;
      for (const file of files) {
        try {
          process.stdout.write(`${summarize(file, loadRuleFile(file, family))}\n`);
        } catch (e) {
          if (!(e instanceof RuleErrors)) throw e;
          failed = true;
          process.stderr.write(`${e.message}\n`);
        }
      }
      if (failed) process.exitCode = 1;
    });
}
