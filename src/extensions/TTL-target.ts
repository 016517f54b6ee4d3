// -j TTL (extensions/libipt_TTL.c, net/netfilter/xt_HL.c): mangle table only; IPv4.
import type { TargetExtension } from './types';
import { applyHl, formatHl, parseHl, type HlOpts } from './util/t-hl';

const target: TargetExtension<HlOpts> = {
  kind: 'target',
  name: 'TTL',
  family: 4,
  options: [
    { name: 'ttl-set', args: 1 },
    { name: 'ttl-dec', args: 1 },
    { name: 'ttl-inc', args: 1 },
  ],
  allowed: { tables: ['mangle'] },
  terminal: false,
  parse: (uses, ctx) => parseHl('TTL', uses, ctx.loc),
  format: (o) => formatHl('TTL', o),
  apply: applyHl,
};

export default target;
