// -j NOTRACK: the old name of `CT --notrack` (libxt_CT.c registers it as an alias of CT); raw table only, and
// iptables-save prints it back as NOTRACK.
import type { TargetExtension } from './types';
import { parseNone, type NoOptions } from './util/t-simple';

const target: TargetExtension<NoOptions> = {
  kind: 'target',
  name: 'NOTRACK',
  options: [],
  allowed: { tables: ['raw'] },
  terminal: false,
  parse: (uses) => parseNone('NOTRACK', uses),
  format: () => '',
  apply(_o, ctx) {
    ctx.notrack = true;
    return { verdict: 'continue' };
  },
};

export default target;
