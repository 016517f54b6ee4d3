// -m icmp6 (libip6t_icmp6.c, kernel ip6_tables.c icmp6_match). Printed as numbers (`--icmpv6-type 128`), `/code`
// for a single code. Unlike IPv4 there is no `any`, and type 255 is just type 255.
import type { MatchExtension } from './types';
import { bang, byName, badMatch } from './util/opts';
import { ICMP6_NAMES, formatIcmpType, parseIcmpType, type IcmpSpec } from './util/icmp';

export interface Icmp6Options extends IcmpSpec {
  invert: boolean;
}

const icmp6: MatchExtension<Icmp6Options> = {
  kind: 'match',
  name: 'icmp6',
  family: 6,
  protocolMatch: 58,
  options: [{ name: 'icmpv6-type', args: 1, invertible: true }],
  parse(opts, ctx) {
    const use = byName(opts, 'icmp6').get('icmpv6-type');
    if (!use) badMatch(ctx, 'icmp6: option "--icmpv6-type" must be specified');
    return { ...parseIcmpType(use, ICMP6_NAMES, 'ICMPv6'), invert: use.negated };
  },
  format(o) {
    return `${bang(o.invert)}--icmpv6-type ${formatIcmpType(o)}`;
  },
  match(o, ctx) {
    const pkt = ctx.pkt;
    // Later fragments never match; a cut-short header is the kernel's hotdrop.
    if (pkt.protocol !== 58 || pkt.fragOffset !== 0) return false;
    if (pkt.truncated || pkt.icmpType < 0) {
      ctx.hotdrop = true;
      return false;
    }
    const hit = pkt.icmpType === o.type && pkt.icmpCode >= o.codeMin && pkt.icmpCode <= o.codeMax;
    return hit !== o.invert;
  },
};

export default icmp6;
