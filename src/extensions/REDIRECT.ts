// -j REDIRECT (extensions/libxt_REDIRECT.c): nat PREROUTING and OUTPUT.
import type { TargetExtension } from './types';
import { formatPortRange, parseToPorts, type PortRange } from './util/t-natrange';
import { natUnsupported } from './util/t-nat';
import { collect } from './util/t-options';

export interface RedirectOpts {
  ports?: PortRange;
  random: boolean;
}

const target: TargetExtension<RedirectOpts> = {
  kind: 'target',
  name: 'REDIRECT',
  options: [
    // getopt_long takes any unambiguous prefix; Istio's rules write --to-port.
    { name: 'to-ports', aliases: ['to-port'], args: 1 },
    { name: 'random', args: 0 },
  ],
  allowed: { tables: ['nat'], hooks: ['PREROUTING', 'OUTPUT'] },
  terminal: true,
  unsupported: natUnsupported('REDIRECT'),
  parse(uses, ctx) {
    const seen = collect('REDIRECT', uses);
    const u = seen.get('to-ports');
    const o: RedirectOpts = { random: seen.has('random') };
    if (u) o.ports = parseToPorts(u.args[0], ctx, u.argLocs[0] ?? u.loc);
    return o;
  },
  format(o) {
    const parts: string[] = [];
    if (o.ports) parts.push(`--to-ports ${formatPortRange(o.ports)}`);
    if (o.random) parts.push('--random');
    return parts.join(' ');
  },
};

export default target;
