// -j RETURN: the built-in verdict (iptables(8) TARGETS).
import type { TargetExtension } from './types';
import { parseNone, type NoOptions } from './util/t-simple';

const target: TargetExtension<NoOptions> = {
  kind: 'target',
  flowStable: () => true,
  name: 'RETURN',
  options: [],
  terminal: true,
  parse: (uses) => parseNone('RETURN', uses),
  format: () => '',
  apply: () => ({ verdict: 'return' }),
};

export default target;
