// -j HL (extensions/libip6t_HL.c, net/netfilter/xt_HL.c): mangle table only; IPv6.
import type { TargetExtension } from './types';
import { applyHl, formatHl, parseHl, type HlOpts } from './util/t-hl';

const target: TargetExtension<HlOpts> = {
  kind: 'target',
  name: 'HL',
  family: 6,
  options: [
    { name: 'hl-set', args: 1 },
    { name: 'hl-dec', args: 1 },
    { name: 'hl-inc', args: 1 },
  ],
  allowed: { tables: ['mangle'] },
  terminal: false,
  parse: (uses, ctx) => parseHl('HL', uses, ctx.loc),
  format: (o) => formatHl('HL', o),
  apply: applyHl,
};

export default target;
