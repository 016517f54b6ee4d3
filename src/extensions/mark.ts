// -m mark (libxt_mark.c, kernel xt_mark.c; lowered to `meta mark & m == v` by iptables-nft 1.8.9).
import type { MatchExtension } from './types';
import { badMatch, byName } from './util/opts';
import { formatMarkMask, markMatches, parseMarkMask, type MarkMask } from './util/markmask';

export type MarkOptions = MarkMask;

const mark: MatchExtension<MarkOptions> = {
  kind: 'match',
  flowStable: () => true,
  name: 'mark',
  options: [{ name: 'mark', args: 1, invertible: true }],
  parse(opts, ctx) {
    const use = byName(opts, 'mark').get('mark');
    if (!use) badMatch(ctx, 'mark: option "--mark" must be specified');
    return parseMarkMask(use, 'mark');
  },
  format: formatMarkMask,
  match(o, ctx) {
    return markMatches(o, ctx.meta.mark);
  },
};

export default mark;
