// -m tos: the TOS byte / IPv6 traffic class under a mask (xt_tos revision 1, as iptables 1.8.9 loads it).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { failArg, hex2, parseUintWord } from './util/b-opts';

export interface TosOptions {
  value: number;
  mask: number;
  invert: boolean;
}

/** tos_symbol_names in libxtables' xtables.c: the old RFC 1349 names, compared under the mask 0x3f. */
const SYMBOLS: Readonly<Record<string, number>> = {
  'minimize-delay': 0x10,
  'maximize-throughput': 0x08,
  'maximize-reliability': 0x04,
  'minimize-cost': 0x02,
  'normal-service': 0x00,
};

const tos: MatchExtension<TosOptions> = {
  kind: 'match',
  name: 'tos',
  options: [{ name: 'tos', args: 1, invertible: true }],
  parse(uses, ctx) {
    const u = uses.find((x) => x.name === 'tos');
    if (!u) throw new RuleError('tos: option "--tos" must be specified', ctx.loc);
    const word = u.args[0] ?? '';
    const sym = SYMBOLS[word.toLowerCase()];
    if (sym !== undefined) return { value: sym, mask: 0x3f, invert: u.negated };
    const slash = word.indexOf('/');
    const v = parseUintWord(slash < 0 ? word : word.slice(0, slash), 0xff);
    const m = slash < 0 ? 0xff : parseUintWord(word.slice(slash + 1), 0xff);
    if (v === undefined) failArg(u, `Symbolic name "${word}" is unknown`);
    if (m === undefined) failArg(u, `tos: Bad value for "--tos" option: "${word}"`);
    return { value: v!, mask: m!, invert: u.negated };
  },
  format(o) {
    return `${o.invert ? '! ' : ''}--tos ${hex2(o.value)}/${hex2(o.mask)}`;
  },
  match(o, ctx) {
    return ((ctx.pkt.tos & o.mask) === o.value) !== o.invert;
  },
};

export default tos;
