// -m length (libxt_length.c, kernel xt_length.c): the IPv4 total length, or the IPv6 payload length plus the
// 40-byte fixed header.
import type { MatchExtension, ParsedPacket } from './types';
import { badArg, badMatch, bang, byName, parseUintWord } from './util/opts';

export interface LengthOptions {
  min: number;
  max: number;
  invert: boolean;
}

/** The length the kernel reads from the header (the queue may have copied less than that). */
export function headerLength(pkt: ParsedPacket): number {
  const d = pkt.data;
  if (pkt.family === 4 && d.length >= 4) return (d[2] << 8) | d[3];
  if (pkt.family === 6 && d.length >= 6) return ((d[4] << 8) | d[5]) + 40;
  return pkt.length;
}

const length: MatchExtension<LengthOptions> = {
  kind: 'match',
  name: 'length',
  options: [{ name: 'length', args: 1, invertible: true }],
  parse(opts, ctx) {
    const use = byName(opts, 'length').get('length');
    if (!use) badMatch(ctx, 'length: option "--length" must be specified');
    const w = use.args[0] ?? '';
    const i = w.indexOf(':');
    const a = i < 0 ? w : w.slice(0, i);
    const b = i < 0 ? w : w.slice(i + 1);
    const min = a === '' && i >= 0 ? 0 : parseUintWord(a, 65535);
    const max = b === '' && i >= 0 ? 65535 : parseUintWord(b, 65535);
    if (min === undefined || max === undefined) {
      const near = min === undefined ? a : b;
      badArg(use, `length: bad value for option "--length" near "${near}", or out of range (0-65535).`);
    }
    return { min, max, invert: use.negated };
  },
  format(o) {
    return `${bang(o.invert)}--length ${o.min === o.max ? o.min : `${o.min}:${o.max}`}`;
  },
  match(o, ctx) {
    const len = headerLength(ctx.pkt);
    return (len >= o.min && len <= o.max) !== o.invert;
  },
};

export default length;
