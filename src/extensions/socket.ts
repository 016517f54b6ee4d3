// -m socket: whether a local socket exists for the packet (xt_socket revision 3).
import type { MatchExtension } from './types';
import { RuleError } from './types';

export interface SocketOptions {
  transparent: boolean;
  nowildcard: boolean;
  restoreSkmark: boolean;
}

const socket: MatchExtension<SocketOptions> = {
  kind: 'match',
  name: 'socket',
  options: [
    { name: 'transparent', args: 0 },
    { name: 'nowildcard', args: 0 },
    { name: 'restore-skmark', args: 0 },
  ],
  unsupported: 'socket: needs a lookup in the kernel socket tables, which nfqwall cannot do from userspace',
  parse(uses, ctx) {
    // xt_socket runs at PREROUTING and INPUT only (user chains: the validator's business).
    if (['FORWARD', 'OUTPUT', 'POSTROUTING'].includes(ctx.chain)) {
      throw new RuleError(
        `socket: not valid in ${ctx.chain} (the kernel refuses this rule: Invalid argument)`,
        ctx.loc,
      );
    }
    const has = (n: string) => uses.some((u) => u.name === n);
    return { transparent: has('transparent'), nowildcard: has('nowildcard'), restoreSkmark: has('restore-skmark') };
  },
  format(o) {
    const w: string[] = [];
    if (o.transparent) w.push('--transparent');
    if (o.nowildcard) w.push('--nowildcard');
    if (o.restoreSkmark) w.push('--restore-skmark');
    return w.join(' ');
  },
};

export default socket;
