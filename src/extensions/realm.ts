// -m realm: the routing realm of the packet's route (xt_realm, IPv4).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { REALM_FILES, readIdNames } from './util/b-names';
import { formatValMask, parseValMask, type ValMask } from './util/b-valmask';

export type RealmOptions = ValMask;

const realm: MatchExtension<RealmOptions> = {
  kind: 'match',
  name: 'realm',
  family: 4,
  options: [{ name: 'realm', args: 1, invertible: true }],
  unsupported: 'realm: routing realms come from the kernel route of the packet, which nfqwall does not see',
  parse(uses, ctx) {
    const u = uses.find((x) => x.name === 'realm');
    if (!u) throw new RuleError('realm: option "--realm" must be specified', ctx.loc);
    return parseValMask(u, readIdNames(REALM_FILES), 'realm');
  },
  // realm_mt_reg .hooks: the route is known from the routing decision on.
  allowedHooks: () => ['INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  format(o) {
    return `${o.invert ? '! ' : ''}--realm ${formatValMask(o, readIdNames(REALM_FILES))}`;
  },
};

export default realm;
