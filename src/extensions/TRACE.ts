// -j TRACE (extensions/libxt_TRACE.c): marks the packet for rule tracing and continues; the engine does the tracing.
// The legacy kernel target is raw-only, but iptables-nft turns it into `meta nftrace set 1`, which any table takes,
// so no table is refused here (the corpus is rendered by iptables-nft).
import type { TargetExtension } from './types';
import { parseNone, type NoOptions } from './util/t-simple';

const target: TargetExtension<NoOptions> = {
  kind: 'target',
  name: 'TRACE',
  options: [],
  terminal: false,
  parse: (uses) => parseNone('TRACE', uses),
  format: () => '',
  apply: () => ({ verdict: 'continue' }),
};

export default target;
