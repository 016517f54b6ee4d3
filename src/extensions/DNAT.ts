// -j DNAT (extensions/libxt_NAT.c as of iptables 1.8.9; libipt_DNAT.t / libip6t_DNAT.t): nat PREROUTING and OUTPUT.
import type { TargetExtension } from './types';
import { formatNatRange, parseNatRange, type NatRange } from './util/t-natrange';
import { formatNatFlags, natFlags, rangeRequest, requestNat, type NatFlags } from './util/t-nat';
import { collect, mustSpecify } from './util/t-options';

export interface DnatOpts extends NatFlags {
  to: NatRange;
}

const target: TargetExtension<DnatOpts> = {
  kind: 'target',
  name: 'DNAT',
  options: [
    { name: 'to-destination', args: 1 },
    { name: 'random', args: 0 },
    { name: 'persistent', args: 0 },
  ],
  allowed: { tables: ['nat'], hooks: ['PREROUTING', 'OUTPUT'] },
  terminal: true,
  parse(uses, ctx) {
    const seen = collect('DNAT', uses);
    const u = mustSpecify('DNAT', seen, 'to-destination', ctx);
    return { to: parseNatRange(u.args[0], ctx, u.argLocs[0] ?? u.loc, true), ...natFlags(seen) };
  },
  format: (o, family) => `--to-destination ${formatNatRange(o.to, family)}${formatNatFlags(o)}`,
  apply: (o, ctx) => requestNat(ctx, rangeRequest('DST', o.to, o, true)),
};

export default target;
