// -m esp: the SPI of an ESP packet (xt_esp).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { readU32 } from './util/b-opts';
import { ALL_SPIS, formatSpis, parseSpis, spiMatch, type SpiRange } from './util/b-spi';

export interface EspOptions {
  spis: SpiRange;
}

const esp: MatchExtension<EspOptions> = {
  kind: 'match',
  name: 'esp',
  protocolMatch: 50, // `-p esp --option` loads it implicitly, as iptables does
  options: [{ name: 'espspi', args: 1, invertible: true }],
  parse(uses, ctx) {
    if (!ctx.proto || ctx.proto.value !== 50 || ctx.proto.negated) {
      throw new RuleError('esp: needs `-p esp` (the kernel refuses this rule: Invalid argument)', ctx.loc);
    }
    const u = uses.find((x) => x.name === 'espspi');
    return { spis: u ? parseSpis(u, 'esp') : ALL_SPIS };
  },
  format(o) {
    return formatSpis('espspi', o.spis).join(' ');
  },
  match(o, ctx) {
    // esp_mt: later fragments never match; a header cut short is a hotdrop (no match).
    const { pkt } = ctx;
    if (pkt.fragOffset !== 0 || pkt.l4Offset < 0 || pkt.l4Offset + 4 > pkt.data.length) return false;
    return spiMatch(o.spis, readU32(pkt.data, pkt.l4Offset));
  },
};

export default esp;
