// -m state (libxt_state.c). iptables-nft 1.8.9 loads it into the kernel as conntrack revision 3 with only the state
// test, and prints it back as `-m state --state ...`; the meaning is xt_conntrack's (util/ctstate).
import type { MatchExtension } from './types';
import { parseStateList } from './conntrack';
import { badArg, badMatch, bang, byName } from './util/opts';
import { formatStates, packetStates, type StateName } from './util/ctstate';

export interface StateOptions {
  states: Set<StateName>;
  invert: boolean;
}

const STATE_NAMES: readonly StateName[] = ['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED'];

const state: MatchExtension<StateOptions> = {
  kind: 'match',
  flowStable: () => true,
  name: 'state',
  options: [{ name: 'state', args: 1, invertible: true }],
  parse(opts, ctx) {
    const use = byName(opts, 'state').get('state');
    if (!use) badMatch(ctx, 'state: option "--state" must be specified');
    if ((use.args[0] ?? '') === '')
      badArg(use, '"--state" requires a list of states with no spaces, e.g. ESTABLISHED,RELATED');
    return { states: parseStateList(use, STATE_NAMES, 'state'), invert: use.negated };
  },
  format(o) {
    return `${bang(o.invert)}--state ${formatStates(o.states)}`;
  },
  match(o, ctx) {
    const have = packetStates(ctx);
    let hit = false;
    for (const s of o.states) if (have.has(s)) hit = true;
    return hit !== o.invert;
  },
};

export default state;
