// -j DROP: the built-in verdict (iptables(8) TARGETS).
import type { TargetExtension } from './types';
import { parseNone, type NoOptions } from './util/t-simple';

const target: TargetExtension<NoOptions> = {
  kind: 'target',
  flowStable: () => true,
  name: 'DROP',
  options: [],
  terminal: true,
  parse: (uses) => parseNone('DROP', uses),
  format: () => '',
  apply: () => ({ verdict: 'drop' }),
};

export default target;
