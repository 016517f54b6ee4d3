// -m dscp: the DiffServ code point of the TOS / traffic class byte (xt_dscp).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { exclusive, failArg, hex2, uintArg } from './util/b-opts';

export interface DscpOptions {
  dscp: number;
  invert: boolean;
}

/** libxt_dscp_helper.c class names. */
export const DSCP_CLASSES: Readonly<Record<string, number>> = {
  CS0: 0x00,
  CS1: 0x08,
  CS2: 0x10,
  CS3: 0x18,
  CS4: 0x20,
  CS5: 0x28,
  CS6: 0x30,
  CS7: 0x38,
  BE: 0x00,
  AF11: 0x0a,
  AF12: 0x0c,
  AF13: 0x0e,
  AF21: 0x12,
  AF22: 0x14,
  AF23: 0x16,
  AF31: 0x1a,
  AF32: 0x1c,
  AF33: 0x1e,
  AF41: 0x22,
  AF42: 0x24,
  AF43: 0x26,
  EF: 0x2e,
};

const dscp: MatchExtension<DscpOptions> = {
  kind: 'match',
  name: 'dscp',
  options: [
    { name: 'dscp', args: 1, invertible: true },
    { name: 'dscp-class', args: 1, invertible: true },
  ],
  parse(uses, ctx) {
    exclusive(uses, ['dscp', 'dscp-class'], 'dscp');
    const u = uses.find((x) => x.name === 'dscp' || x.name === 'dscp-class');
    if (!u) throw new RuleError('DSCP match: Parameter --dscp is required', ctx.loc);
    if (u.name === 'dscp') return { dscp: uintArg(u, 0, 63, 'dscp'), invert: u.negated };
    const word = u.args[0] ?? '';
    const v = DSCP_CLASSES[word.toUpperCase()];
    if (v === undefined) failArg(u, `Invalid DSCP value \`${word}'`);
    return { dscp: v!, invert: u.negated };
  },
  format(o) {
    return `${o.invert ? '! ' : ''}--dscp ${hex2(o.dscp)}`;
  },
  match(o, ctx) {
    return (ctx.pkt.tos >> 2 === o.dscp) !== o.invert;
  },
};

export default dscp;
