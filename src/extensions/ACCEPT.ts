// -j ACCEPT: the built-in verdict (iptables(8) TARGETS).
import type { TargetExtension } from './types';
import { parseNone, type NoOptions } from './util/t-simple';

const target: TargetExtension<NoOptions> = {
  kind: 'target',
  flowStable: () => true,
  name: 'ACCEPT',
  options: [],
  terminal: true,
  parse: (uses) => parseNone('ACCEPT', uses),
  format: () => '',
  apply: () => ({ verdict: 'accept' }),
};

export default target;
