// The nfqwall command. Each subcommand lives in its own module and registers itself here.
import { Command } from 'commander';
import { registerCheck } from './check';
import { registerExplain } from './explain';
import { registerRun } from './run';
import { registerSave } from './save';
import { registerStatus } from './status';

const program = new Command();
program
  .name('nfqwall')
  .description('a userspace packet filter for iptables-save rule files, through NFQUEUE')
  .showHelpAfterError();

registerRun(program);
registerStatus(program);
registerCheck(program);
registerSave(program);
registerExplain(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`nfqwall: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
