// -j NFQUEUE (extensions/libxt_NFQUEUE.c revision 3, net/netfilter/xt_NFQUEUE.c; REFERENCE.md 1.10): any table.
// iptables-save prints --queue-num (0 by default) or --queue-balance, then --queue-bypass and --queue-cpu-fanout.
import { RuleError, type TargetContext, type TargetExtension } from './types';
import { collect, exclusive, uintArg } from './util/t-options';
import { parseUInt } from '../rules/services';
import { jhash3words, leWord, reciprocalScale } from './util/t-jhash';

export interface NfqueueOpts {
  queue: number;
  /** Queues in the balance range (1 without --queue-balance). */
  total: number;
  bypass: boolean;
  cpuFanout: boolean;
}

/**
 * The kernel seeds its hash with a random number at boot (jhash_initval), so which queue of a balance range a flow
 * lands on cannot match the kernel's; nfqwall uses a fixed seed, which keeps the kernel's property that both
 * directions of a flow, and every packet of it, go to the same queue.
 */
const HASH_SEED = 0;

function balanceHash(ctx: TargetContext): number {
  const { src, dst, protocol, family } = ctx.pkt;
  if (family === 4) {
    const s = leWord(src, 0);
    const d = leWord(dst, 0);
    return s < d ? jhash3words(s, d, protocol, HASH_SEED) : jhash3words(d, s, protocol, HASH_SEED);
  }
  const s3 = leWord(src, 12);
  const d3 = leWord(dst, 12);
  const [a, b] = s3 < d3 ? [s3, d3] : [d3, s3];
  const c = leWord(src, 4) < leWord(dst, 4) ? leWord(src, 4) : leWord(dst, 4);
  return jhash3words(a, b, c, HASH_SEED);
}

const target: TargetExtension<NfqueueOpts> = {
  kind: 'target',
  flowStable: () => true,
  name: 'NFQUEUE',
  options: [
    { name: 'queue-num', args: 1 },
    { name: 'queue-balance', args: 1 },
    { name: 'queue-bypass', args: 0 },
    { name: 'queue-cpu-fanout', args: 0 },
  ],
  terminal: true,
  parse(uses) {
    const seen = collect('NFQUEUE', uses);
    exclusive('NFQUEUE', seen, ['queue-num', 'queue-balance']);
    const o: NfqueueOpts = { queue: 0, total: 1, bypass: seen.has('queue-bypass'), cpuFanout: seen.has('queue-cpu-fanout') };
    const num = seen.get('queue-num');
    if (num) o.queue = uintArg('NFQUEUE', num, 0, 65535);
    const bal = seen.get('queue-balance');
    if (bal) {
      const w = bal.args[0];
      const at = bal.argLocs[0] ?? bal.loc;
      const parts = w.split(':');
      const lo = parts.length === 2 ? parseUInt(parts[0], 65535) : undefined;
      const hi = parts.length === 2 ? parseUInt(parts[1], 65535) : undefined;
      if (lo === undefined || hi === undefined) throw new RuleError(`Bad range "${w}"`, at);
      if (lo >= hi) throw new RuleError(`${lo} should be less than ${hi}`, at);
      // The kernel keeps the count in 16 bits and refuses a range whose last queue would pass 65535.
      if (hi - lo + 1 > 65535) throw new RuleError(`NFQUEUE: --queue-balance ${w} spans more than 65535 queues`, at);
      o.queue = lo;
      o.total = hi - lo + 1;
    }
    const fan = seen.get('queue-cpu-fanout');
    if (fan && !bal) throw new RuleError('NFQUEUE: option "--queue-cpu-fanout" also requires "--queue-balance".', fan.loc);
    return o;
  },
  format(o) {
    let s = o.total > 1 ? `--queue-balance ${o.queue}:${o.queue + o.total - 1}` : `--queue-num ${o.queue}`;
    if (o.bypass) s += ' --queue-bypass';
    if (o.cpuFanout) s += ' --queue-cpu-fanout';
    return s;
  },
  apply(o, ctx) {
    // --queue-cpu-fanout picks by the CPU the packet is on, which userspace does not see; the flow hash stands in.
    const queue = o.total > 1 ? o.queue + reciprocalScale(balanceHash(ctx), o.total) : o.queue;
    return { verdict: 'queue', queue, bypass: o.bypass };
  },
};

export default target;
