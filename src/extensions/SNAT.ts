// -j SNAT (extensions/libxt_NAT.c as of iptables 1.8.9): nat POSTROUTING and INPUT.
import type { TargetExtension } from './types';
import { formatNatRange, parseNatRange, type NatRange } from './util/t-natrange';
import { formatNatFlags, natFlags, rangeRequest, requestNat, type NatFlags } from './util/t-nat';
import { collect, mustSpecify } from './util/t-options';

export interface SnatOpts extends NatFlags {
  to: NatRange;
}

const target: TargetExtension<SnatOpts> = {
  kind: 'target',
  name: 'SNAT',
  options: [
    { name: 'to-source', args: 1 },
    { name: 'random', args: 0 },
    { name: 'random-fully', args: 0 },
    { name: 'persistent', args: 0 },
  ],
  allowed: { tables: ['nat'], hooks: ['POSTROUTING', 'INPUT'] },
  terminal: true,
  parse(uses, ctx) {
    const seen = collect('SNAT', uses);
    const u = mustSpecify('SNAT', seen, 'to-source', ctx);
    return { to: parseNatRange(u.args[0], ctx, u.argLocs[0] ?? u.loc, true), ...natFlags(seen) };
  },
  // The kernel keeps the port-offset flag of a SNAT /baseport but not the base, so iptables-save shows `/0`.
  format: (o, family) => `--to-source ${formatNatRange(o.to, family, true)}${formatNatFlags(o)}`,
  // The kernel keeps PROTO_OFFSET but a base of 0 for SNAT (see format): the offset is then the port itself.
  apply: (o, ctx) => requestNat(ctx, rangeRequest('SRC', o.to, o, false)),
};

export default target;
