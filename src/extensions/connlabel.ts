// -m connlabel: a label bit of the packet's connection (xt_connlabel).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { fail, failArg, parseUintWord } from './util/b-opts';
import { CONNLABEL_FILES, nameOf, readIdNames } from './util/b-names';

export interface ConnlabelOptions {
  bit: number;
  invert: boolean;
  set: boolean;
}

const MAX_BIT = 127; // XT_CONNLABEL_MAXBIT

const connlabel: MatchExtension<ConnlabelOptions> = {
  kind: 'match',
  name: 'connlabel',
  options: [
    { name: 'label', args: 1, invertible: true },
    { name: 'set', args: 0 },
  ],
  unsupported: 'connlabel: connection labels are not kept in the connection table',
  parse(uses, ctx) {
    const u = uses.find((x) => x.name === 'label');
    if (!u) throw new RuleError('connlabel: option "--label" must be specified', ctx.loc);
    const word = u.args[0] ?? '';
    const bit = readIdNames(CONNLABEL_FILES).get(word) ?? parseUintWord(word);
    if (bit === undefined) failArg(u, `label '${word}' not found or invalid value`);
    if (bit! > MAX_BIT)
      fail(
        u,
        `connlabel: bit ${bit} is above ${MAX_BIT} (the kernel refuses this rule: Numerical result out of range)`,
      );
    return { bit: bit!, invert: u.negated, set: uses.some((x) => x.name === 'set') };
  },
  format(o) {
    // connlabel_mt_save: the name from connlabel.conf (or the number), always in double quotes.
    const name = nameOf(readIdNames(CONNLABEL_FILES), o.bit) ?? String(o.bit);
    return `${o.invert ? '! ' : ''}--label "${name}"${o.set ? ' --set' : ''}`;
  },
};

export default connlabel;
