// -m rpfilter: reverse-path filtering by a route lookup of the source (xt_rpfilter).
import type { MatchExtension } from './types';
import { RuleError } from './types';

export interface RpfilterOptions {
  loose: boolean;
  validmark: boolean;
  acceptLocal: boolean;
  invert: boolean;
}

const rpfilter: MatchExtension<RpfilterOptions> = {
  kind: 'match',
  name: 'rpfilter',
  options: [
    { name: 'loose', args: 0 },
    { name: 'validmark', args: 0 },
    { name: 'accept-local', args: 0 },
    { name: 'invert', args: 0 },
  ],
  unsupported: 'rpfilter: needs a route lookup of the source address in the kernel FIB, which nfqwall does not mirror',
  parse(uses, ctx) {
    // rpfilter_check: raw and mangle tables only (the PREROUTING hook is its .hooks: allowedHooks).
    if (ctx.table !== 'raw' && ctx.table !== 'mangle') {
      throw new RuleError(
        'rpfilter: only valid in the raw and mangle PREROUTING chains (the kernel refuses this rule: Invalid argument)',
        ctx.loc,
      );
    }
    const has = (n: string) => uses.some((u) => u.name === n);
    return {
      loose: has('loose'),
      validmark: has('validmark'),
      acceptLocal: has('accept-local'),
      invert: has('invert'),
    };
  },
  allowedHooks: () => ['PREROUTING'],
  format(o) {
    const w: string[] = [];
    if (o.loose) w.push('--loose');
    if (o.validmark) w.push('--validmark');
    if (o.acceptLocal) w.push('--accept-local');
    if (o.invert) w.push('--invert');
    return w.join(' ');
  },
};

export default rpfilter;
