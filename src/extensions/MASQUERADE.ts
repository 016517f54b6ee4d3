// -j MASQUERADE (extensions/libxt_MASQUERADE.c, libxt_MASQUERADE.man): nat POSTROUTING only.
import type { TargetExtension } from './types';
import { formatPortRange, parseToPorts, type PortRange } from './util/t-natrange';
import { formatNatFlags, natUnsupported } from './util/t-nat';
import { collect } from './util/t-options';

export interface MasqueradeOpts {
  ports?: PortRange;
  random: boolean;
  randomFully: boolean;
}

const target: TargetExtension<MasqueradeOpts> = {
  kind: 'target',
  name: 'MASQUERADE',
  options: [
    // getopt_long takes any unambiguous prefix; Istio's rules write --to-port.
    { name: 'to-ports', aliases: ['to-port'], args: 1 },
    { name: 'random', args: 0 },
    { name: 'random-fully', args: 0 },
  ],
  allowed: { tables: ['nat'], hooks: ['POSTROUTING'] },
  terminal: true,
  unsupported: natUnsupported('MASQUERADE'),
  parse(uses, ctx) {
    const seen = collect('MASQUERADE', uses);
    const u = seen.get('to-ports');
    const o: MasqueradeOpts = { random: seen.has('random'), randomFully: seen.has('random-fully') };
    if (u) o.ports = parseToPorts(u.args[0], ctx, u.argLocs[0] ?? u.loc);
    return o;
  },
  format(o) {
    const ports = o.ports ? `--to-ports ${formatPortRange(o.ports)}` : '';
    return `${ports}${formatNatFlags({ ...o, persistent: false })}`.trim();
  },
};

export default target;
