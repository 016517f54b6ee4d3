// -j NETMAP --to ADDR[/MASK] (extensions/libxt_NETMAP.c, XTTYPE_HOSTMASK): maps a whole network 1:1; nat table, any
// of its chains. The address is read as getaddrinfo reads it (inet_aton forms for IPv4) and masked.
import { AddrError, formatIpNet, maskPrefixLength, parseIpNet, prefixMask } from '../rules/addr';
import type { IpNet } from '../rules/model';
import { RuleError, type TargetExtension } from './types';
import { parseHostAddr } from './util/t-host';
import { natUnsupported } from './util/t-nat';
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
  unsupported: natUnsupported('NETMAP'),
  parse(uses, ctx) {
    const seen = collect('NETMAP', uses);
    const u = mustSpecify('NETMAP', seen, 'to', ctx);
    const at = u.argLocs[0] ?? u.loc;
    const word = u.args[0];
    const slash = word.indexOf('/');
    const a = slash >= 0 ? word.slice(0, slash) : word;
    const addr = parseHostAddr(a, ctx.family);
    if (!addr) throw new RuleError(`NETMAP: invalid IPv${ctx.family} address "${a}"`, at);
    let net: IpNet;
    try {
      // The mask part reads as -s/-d masks do; only the address differs.
      const bytes = ctx.family === 4 ? 4 : 16;
      net = slash >= 0 ? parseIpNet(`${ctx.family === 4 ? '0.0.0.0' : '::'}${word.slice(slash)}`, ctx.family) : { family: ctx.family, addr, mask: prefixMask(bytes * 8, bytes) };
    } catch (e) {
      if (e instanceof AddrError) throw new RuleError(`NETMAP: ${e.message}`, at);
      throw e;
    }
    // The kernel maps by min/max of a range; a mask with holes has no such range (iptables-nft prints it as /32).
    if (maskPrefixLength(net.mask) < 0) throw new RuleError(`NETMAP: the mask of "${word}" is not contiguous`, at);
    return { to: { family: ctx.family, addr: addr.map((b, i) => b & net.mask[i]), mask: net.mask } };
  },
  format: (o) => `--to ${formatIpNet(o.to)}`,
};

export default target;
