// -m mh: the IPv6 Mobility Header type (ip6t_mh).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { failArg, parseUintWord } from './util/b-opts';

export interface MhOptions {
  min: number;
  max: number;
  invert: boolean;
}

const TYPES: Readonly<Record<string, number>> = {
  'binding-refresh-request': 0,
  brr: 0,
  'home-test-init': 1,
  hoti: 1,
  'careof-test-init': 2,
  coti: 2,
  'home-test': 3,
  hot: 3,
  'careof-test': 4,
  cot: 4,
  'binding-update': 5,
  bu: 5,
  'binding-acknowledgement': 6,
  ba: 6,
  'binding-error': 7,
  be: 7,
};

const mh: MatchExtension<MhOptions> = {
  kind: 'match',
  name: 'mh',
  family: 6,
  // `-p mh --mh-type 5` loads it implicitly (by the word written: `-p 135` does not, kernel-checked).
  protocolMatch: 135,
  options: [{ name: 'mh-type', args: 1, invertible: true }],
  parse(uses, ctx) {
    const o: MhOptions = { min: 0, max: 255, invert: false };
    for (const u of uses) {
      const word = u.args[0] ?? '';
      const one = (w: string) => {
        const v = TYPES[w] ?? parseUintWord(w, 255);
        if (v === undefined) failArg(u, `Invalid MH type "${w}"`);
        return v!;
      };
      const i = word.indexOf(':');
      o.min = i < 0 ? one(word) : i === 0 ? 0 : one(word.slice(0, i));
      o.max = i < 0 ? o.min : i === word.length - 1 ? 255 : one(word.slice(i + 1));
      o.invert = u.negated;
    }
    if (!ctx.proto || ctx.proto.value !== 135 || ctx.proto.negated) {
      throw new RuleError('mh: needs `-p ipv6-mh` (the kernel refuses this rule: Invalid argument)', ctx.loc);
    }
    return o;
  },
  format(o) {
    if (o.min === 0 && o.max === 255 && !o.invert) return '';
    return `${o.invert ? '! ' : ''}--mh-type ${o.min === o.max ? o.min : `${o.min}:${o.max}`}`;
  },
  match(o, ctx) {
    const { pkt } = ctx;
    if (pkt.protocol !== 135 || pkt.l4Offset < 0 || pkt.l4Offset + 3 > pkt.data.length) return false;
    const type = pkt.data[pkt.l4Offset + 2]!;
    return (o.min <= type && type <= o.max) !== o.invert;
  },
};

export default mh;
