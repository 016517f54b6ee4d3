// -j MASQUERADE (extensions/libxt_MASQUERADE.c, libxt_MASQUERADE.man): nat POSTROUTING only.
import type { TargetExtension } from './types';
import { formatPortRange, parseToPorts, type PortRange } from './util/t-natrange';
import { formatNatFlags, requestNat, withPorts } from './util/t-nat';
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
  apply(o, ctx) {
    // nf_nat_masquerade_ipv4/6: the out interface's address for the packet; none means NF_DROP.
    const out = ctx.meta.outIface;
    const addr = out === undefined ? undefined : ctx.host.primaryAddress?.(ctx.pkt.family, out);
    if (addr === undefined) return { verdict: 'drop' };
    const req = withPorts({ manip: 'SRC', minAddr: addr, maxAddr: addr, masquerade: true }, o.ports, false);
    if (o.random) req.random = true;
    if (o.randomFully) req.randomFully = true;
    return requestNat(ctx, req);
  },
};

export default target;
