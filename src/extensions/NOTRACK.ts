// -j NOTRACK: the old name of `CT --notrack` (libxt_CT.c registers it as an alias of CT); raw table only, and
// iptables-save prints it back as NOTRACK.
import type { TargetExtension } from './types';
import { ctUnsupported } from './CT';
import { parseNone, type NoOptions } from './util/t-simple';

const target: TargetExtension<NoOptions> = {
  kind: 'target',
  name: 'NOTRACK',
  options: [],
  allowed: { tables: ['raw'] },
  terminal: false,
  unsupported: ctUnsupported('NOTRACK'),
  parse: (uses) => parseNone('NOTRACK', uses),
  format: () => '',
};

export default target;
