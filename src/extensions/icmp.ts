// -m icmp (libipt_icmp.c, kernel ip_tables.c icmp_match). iptables-save 1.8.9 prints types as numbers
// (`--icmp-type 8`), a single code as `/N`, and type 255 as `any`, which matches every ICMP packet.
import type { MatchExtension } from './types';
import { bang, byName, badMatch } from './util/opts';
import { ICMP_NAMES, formatIcmpType, parseIcmpType, type IcmpSpec } from './util/icmp';

export interface IcmpOptions extends IcmpSpec {
  invert: boolean;
}

const icmp: MatchExtension<IcmpOptions> = {
  kind: 'match',
  name: 'icmp',
  family: 4,
  protocolMatch: 1,
  options: [{ name: 'icmp-type', args: 1, invertible: true }],
  parse(opts, ctx) {
    const use = byName(opts, 'icmp').get('icmp-type');
    if (!use) badMatch(ctx, 'icmp: option "--icmp-type" must be specified');
    return { ...parseIcmpType(use, ICMP_NAMES, 'ICMP'), invert: use.negated };
  },
  format(o) {
    return `${bang(o.invert)}--icmp-type ${o.type === 0xff ? 'any' : formatIcmpType(o)}`;
  },
  match(o, ctx) {
    const pkt = ctx.pkt;
    // Later fragments never match; a cut-short header is the kernel's hotdrop.
    if (pkt.protocol !== 1 || pkt.fragOffset !== 0) return false;
    if (pkt.truncated || pkt.icmpType < 0) {
      ctx.hotdrop = true;
      return false;
    }
    const hit = o.type === 0xff || (pkt.icmpType === o.type && pkt.icmpCode >= o.codeMin && pkt.icmpCode <= o.codeMax);
    return hit !== o.invert;
  },
};

export default icmp;
