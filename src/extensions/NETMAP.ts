// -j NETMAP --to ADDR[/MASK] (extensions/libxt_NETMAP.c, XTTYPE_HOSTMASK): maps a whole network 1:1; nat table, any
// of its chains. Read as conntrack's addresses are (util/netaddr parseAddrMask), then masked.
import { formatIpNet } from '../rules/addr';
import type { IpNet } from '../rules/model';
import type { TargetExtension } from './types';
import { parseAddrMask } from './util/netaddr';
import { manipForHook, requestNat } from './util/t-nat';
import { collect, mustSpecify } from './util/t-options';

export interface NetmapOpts {
  to: IpNet;
}

const target: TargetExtension<NetmapOpts> = {
  kind: 'target',
  name: 'NETMAP',
  options: [{ name: 'to', args: 1 }],
  allowed: { tables: ['nat'], hooks: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'] },
  terminal: true,
  parse(uses, ctx) {
    const seen = collect('NETMAP', uses);
    const u = mustSpecify('NETMAP', seen, 'to', ctx);
    const { addr, mask } = parseAddrMask(u, ctx.family);
    return { to: { family: ctx.family, addr: addr.map((b, i) => b & mask[i]), mask } };
  },
  format: (o) => `--to ${formatIpNet(o.to)}`,
  apply(o, ctx) {
    // xt_NETMAP: the new prefix as a range (first..last address); the table keeps the host bits.
    const last = o.to.addr.map((b, i) => (b | (~o.to.mask[i] & 0xff)) & 0xff);
    return requestNat(ctx, { manip: manipForHook(ctx.meta.hook), minAddr: o.to.addr.slice(), maxAddr: last, netmap: true });
  },
};

export default target;
