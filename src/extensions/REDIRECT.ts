// -j REDIRECT (extensions/libxt_REDIRECT.c): nat PREROUTING and OUTPUT.
import type { TargetExtension } from './types';
import { formatPortRange, parseToPorts, type PortRange } from './util/t-natrange';
import { parseIpAddr } from '../rules/addr';
import { requestNat, withPorts } from './util/t-nat';
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
  apply(o, ctx) {
    // nf_nat_redirect_ipv4/6: loopback for locally generated packets, else the in interface's primary address;
    // an interface without one gives NF_DROP.
    const family = ctx.pkt.family;
    let addr: Uint8Array | undefined;
    if (ctx.meta.hook === 'OUTPUT') addr = parseIpAddr(family === 4 ? '127.0.0.1' : '::1', family);
    else if (ctx.meta.inIface !== undefined) addr = ctx.host.primaryAddress?.(family, ctx.meta.inIface);
    if (addr === undefined) return { verdict: 'drop' };
    const req = withPorts({ manip: 'DST', minAddr: addr, maxAddr: addr }, o.ports, false);
    if (o.random) req.random = true;
    return requestNat(ctx, req);
  },
};

export default target;
