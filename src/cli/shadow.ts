// `nfqwall shadow`: try a ruleset on live traffic (or a capture file) without enforcing it, and report what it would do.
import type { Command } from 'commander';
import { runShadow, type ShadowCliOptions } from '../shadow/run';

const collect = (value: string, prev: string[] | undefined): string[] => [...(prev ?? []), value];

export function registerShadow(program: Command): void {
  program
    .command('shadow')
    .description('evaluate a candidate ruleset on captured traffic without enforcing it; report hits, would-be drops, unused rules')
    .option('--rules <file>', 'candidate IPv4 rule file (iptables-save format)')
    .option('--rules6 <file>', 'candidate IPv6 rule file (ip6tables-save format)')
    .option('--iface <name>', 'capture on this interface (repeatable); with --read: the interface the file was captured on', collect)
    .option('--read <file>', 'read a pcap or pcapng file instead of capturing')
    .option('--filter <bpf>', 'capture filter (pcap-filter syntax)')
    .option('--duration <seconds>', 'stop after this long (default: until SIGINT/SIGTERM)')
    .option('--against <file>', 'a second IPv4 ruleset: list only the flows whose fate differs')
    .option('--against6 <file>', 'a second IPv6 ruleset for --against')
    .option('--against-running', "compare with the ruleset the running daemon enforces (fetched over its control socket)")
    .option('--control <path>', 'control socket of the daemon for --against-running (default /run/nfqwall/control.sock)')
    .option('--ipset <file>', 'ipset save file for -m set (repeatable)', collect)
    .option('--max-flows <n>', 'distinct flows kept per report table (default 10000; the rest are counted)')
    .option('--max-connections <n>', "entries of each shadow connection table (default 65536; give the daemon's conntrack_max: when full, new connections are judged dropped, as the daemon drops them)")
    .option('--no-progress', 'no progress line every second on stderr')
    .option('--json', 'print the report as JSON')
    .action(async (opts: ShadowCliOptions) => {
      let stop: () => void = () => undefined;
      const interrupted = new Promise<void>((resolve) => (stop = resolve));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        await runShadow(opts, {
          out: (s) => process.stdout.write(s),
          err: (s) => process.stderr.write(s),
          interrupted,
        });
      } catch (err) {
        process.stderr.write(`nfqwall shadow: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
