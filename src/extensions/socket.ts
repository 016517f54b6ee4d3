// -m socket: whether a local socket exists for the packet (xt_socket revision 3).
import type { MatchExtension } from './types';

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
  parse(uses) {
    const has = (n: string) => uses.some((u) => u.name === n);
    return { transparent: has('transparent'), nowildcard: has('nowildcard'), restoreSkmark: has('restore-skmark') };
  },
  // socket_mt4_v0 .. v3 .hooks.
  allowedHooks: () => ['PREROUTING', 'INPUT'],
  format(o) {
    const w: string[] = [];
    if (o.transparent) w.push('--transparent');
    if (o.nowildcard) w.push('--nowildcard');
    if (o.restoreSkmark) w.push('--restore-skmark');
    return w.join(' ');
  },
};

export default socket;
