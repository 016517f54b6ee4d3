// -m nfacct: counts the packet in a named accounting object and always matches (xt_nfacct).
import { quote } from '../rules/quote';
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { nfacctStore } from './util/b-nfacct-store';

export interface NfacctOptions {
  name: string;
}

const NFACCT_NAME_MAX = 32;

const nfacct: MatchExtension<NfacctOptions> = {
  kind: 'match',
  name: 'nfacct',
  options: [{ name: 'nfacct-name', args: 1 }],
  parse(uses, ctx) {
    const u = uses.find((x) => x.name === 'nfacct-name');
    if (!u) throw new RuleError('nfacct: option "--nfacct-name" must be specified', ctx.loc);
    const name = u.args[0] ?? '';
    if (name.length === 0 || name.length >= NFACCT_NAME_MAX) {
      throw new RuleError(
        `nfacct: name "${name}" must be 1 to ${NFACCT_NAME_MAX - 1} characters`,
        u.argLocs[0] ?? u.loc,
      );
    }
    return { name };
  },
  format(o) {
    // nfacct_save prints " --nfacct-name " and then xtables_save_string's own leading space: two spaces.
    return `--nfacct-name  ${quote(o.name)}`;
  },
  match(o, ctx) {
    nfacctStore.add(o.name, ctx.pkt.length);
    return true;
  },
};

export default nfacct;
