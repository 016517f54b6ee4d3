// -m helper: the conntrack helper of the packet's connection (xt_helper).
import { quote } from '../rules/quote';
import type { MatchExtension } from './types';
import { RuleError } from './types';

export interface HelperOptions {
  name: string;
  invert: boolean;
}

const helper: MatchExtension<HelperOptions> = {
  kind: 'match',
  name: 'helper',
  options: [{ name: 'helper', args: 1, invertible: true }],
  unsupported:
    'helper: conntrack helpers (ftp, sip, ...) are not run by nfqwall, so the helper of a connection is unknown',
  parse(uses, ctx) {
    const u = uses.find((x) => x.name === 'helper');
    if (!u) throw new RuleError('helper: option "--helper" must be specified', ctx.loc);
    const name = u.args[0] ?? '';
    if (name.length >= 30)
      throw new RuleError(`helper: name "${name}" is longer than 29 characters`, u.argLocs[0] ?? u.loc);
    return { name, invert: u.negated };
  },
  format(o) {
    return `${o.invert ? '! ' : ''}--helper ${quote(o.name)}`;
  },
};

export default helper;
