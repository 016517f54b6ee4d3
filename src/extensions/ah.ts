// -m ah: the SPI (and, for IPv6, length and reserved field) of an Authentication Header (ipt_ah / ip6t_ah).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { readU16, readU32, uintArg } from './util/b-opts';
import { findExtHeader } from './util/b-ipv6';
import { ALL_SPIS, formatSpis, parseSpis, spiMatch, type SpiRange } from './util/b-spi';

export interface AhOptions {
  spis: SpiRange;
  /** IPv6 only. */
  len?: { value: number; invert: boolean };
  res: boolean;
}

const ah: MatchExtension<AhOptions> = {
  kind: 'match',
  name: 'ah',
  options: [
    { name: 'ahspi', args: 1, invertible: true },
    { name: 'ahlen', args: 1, invertible: true },
    { name: 'ahres', args: 0 },
  ],
  parse(uses, ctx) {
    const o: AhOptions = { spis: ALL_SPIS, res: false };
    for (const u of uses) {
      // libipt_ah knows only --ahspi; --ahlen/--ahres are ip6tables options.
      if (ctx.family === 4 && u.name !== 'ahspi')
        throw new RuleError(`ah: unknown option "--${u.name}" for IPv4`, u.loc);
      if (u.name === 'ahspi') o.spis = parseSpis(u, 'ah');
      else if (u.name === 'ahlen') o.len = { value: uintArg(u, 0, 0xffffffff, 'ah'), invert: u.negated };
      else o.res = true;
    }
    // ipt_ah is registered for IPPROTO_AH; ip6t_ah walks the extension headers itself.
    if (ctx.family === 4 && (!ctx.proto || ctx.proto.value !== 51 || ctx.proto.negated)) {
      throw new RuleError('ah: needs `-p ah` (the kernel refuses this rule: Invalid argument)', ctx.loc);
    }
    return o;
  },
  format(o) {
    const w = formatSpis('ahspi', o.spis);
    if (o.len) w.push(...(o.len.invert ? ['!'] : []), '--ahlen', String(o.len.value));
    if (o.res) w.push('--ahres');
    return w.join(' ');
  },
  match(o, ctx) {
    const { pkt } = ctx;
    if (pkt.family === 4) {
      if (pkt.fragOffset !== 0 || pkt.l4Offset < 0 || pkt.l4Offset + 8 > pkt.data.length) return false;
      return spiMatch(o.spis, readU32(pkt.data, pkt.l4Offset + 4));
    }
    const h =
      findExtHeader(pkt, 51) ??
      (pkt.protocol === 51 && pkt.l4Offset >= 0 ? { offset: pkt.l4Offset, length: 0 } : undefined);
    if (!h || h.offset + 8 > pkt.data.length) return false;
    const hdrlen = (pkt.data[h.offset + 1]! + 2) << 2;
    return (
      spiMatch(o.spis, readU32(pkt.data, h.offset + 4)) &&
      (!o.len || (o.len.value === hdrlen) !== o.len.invert) &&
      !(o.res && readU16(pkt.data, h.offset + 2) !== 0)
    );
  },
};

export default ah;
