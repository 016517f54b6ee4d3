// -m tcpmss: the MSS option of TCP SYN packets (xt_tcpmss).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { failArg, parseUintWord, readU16 } from './util/b-opts';

export interface TcpmssOptions {
  min: number;
  max: number;
  invert: boolean;
}

const tcpmss: MatchExtension<TcpmssOptions> = {
  kind: 'match',
  name: 'tcpmss',
  options: [{ name: 'mss', args: 1, invertible: true }],
  parse(uses, ctx) {
    const u = uses.find((x) => x.name === 'mss');
    if (!u) throw new RuleError('tcpmss: option "--mss" must be specified', ctx.loc);
    const word = u.args[0] ?? '';
    // XTTYPE_UINT16RC: each end as strtoul base 0; an empty end is 0 or 65535.
    const bad = (): never => failArg(u, `tcpmss: bad value for option "--mss", or out of range (0-65535).`);
    const i = word.indexOf(':');
    const end = (w: string, dflt: number) => (w === '' ? dflt : (parseUintWord(w, 65535) ?? bad()));
    if (word === '' || word === ':') bad();
    const min = end(i < 0 ? word : word.slice(0, i), 0);
    const max = i < 0 ? min : end(word.slice(i + 1), 65535);
    if (min > max) failArg(u, 'tcpmss: invalid range given');
    if (!ctx.proto || ctx.proto.value !== 6 || ctx.proto.negated) {
      throw new RuleError('tcpmss: needs `-p tcp` (the kernel refuses this rule: Invalid argument)', ctx.loc);
    }
    return { min, max, invert: u.negated };
  },
  format(o) {
    return `${o.invert ? '! ' : ''}--mss ${o.min === o.max ? o.min : `${o.min}:${o.max}`}`;
  },
  match(o, ctx) {
    // tcpmss_mt: walks the TCP options for kind 2 (length 4); no MSS option (or no options) gives `invert`.
    const { data, l4Offset } = ctx.pkt;
    if (l4Offset < 0 || l4Offset + 20 > data.length) return false;
    const doff = (data[l4Offset + 12]! >> 4) * 4;
    if (doff < 20) return false; // malformed: hotdrop
    const end = l4Offset + doff;
    if (end > data.length) return false; // truncated options: hotdrop
    for (let i = l4Offset + 20; i < end;) {
      if (data[i] === 2 && end - i >= 4 && data[i + 1] === 4) {
        const mss = readU16(data, i + 2);
        return (mss >= o.min && mss <= o.max) !== o.invert;
      }
      i += data[i]! < 2 ? 1 : data[i + 1] || 1;
    }
    return o.invert;
  },
};

export default tcpmss;
