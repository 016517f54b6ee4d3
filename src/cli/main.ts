// The nfqwall command. Each subcommand lives in its own module and registers itself here.
import { Command } from 'commander';
import { registerCheck } from './check';
import { registerConntrack } from './conntrack'; // H16
import { registerCounters } from './counters';
import { registerExplain } from './explain';
import { registerInstallService } from './install-service';
import { registerList } from './list';
import { registerReload } from './reload';
import { registerRun } from './run';
import { registerSave } from './save';
import { registerShadow } from './shadow';
import { registerStatus } from './status';
import { registerTrace } from './trace'; // trace:

const program = new Command();
program
  .name('nfqwall')
  .description('a userspace packet filter for iptables-save rule files, through NFQUEUE')
  .showHelpAfterError();

registerRun(program);
registerStatus(program);
registerReload(program);
registerCounters(program);
registerCheck(program);
registerSave(program);
registerExplain(program);
registerInstallService(program);
registerList(program);
registerConntrack(program); // H16
registerShadow(program);
registerTrace(program); // trace:

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`nfqwall: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
