// -m connmark, revision 1 (libxt_connmark.c, kernel xt_connmark.c): tests the connection's mark. A packet without
// a connection (untracked, invalid, or unknown to the engine) never matches, inverted or not, as in the kernel.
import type { MatchExtension } from './types';
import { badMatch, byName } from './util/opts';
import { trackedConn } from './util/ctstate';
import { formatMarkMask, markMatches, parseMarkMask, type MarkMask } from './util/markmask';

export type ConnmarkOptions = MarkMask;

const connmark: MatchExtension<ConnmarkOptions> = {
  kind: 'match',
  flowStable: () => true,
  name: 'connmark',
  options: [{ name: 'mark', args: 1, invertible: true }],
  parse(opts, ctx) {
    const use = byName(opts, 'connmark').get('mark');
    if (!use) badMatch(ctx, 'connmark: option "--mark" must be specified');
    return parseMarkMask(use, 'connmark');
  },
  format: formatMarkMask,
  match(o, ctx) {
    const ct = trackedConn(ctx);
    return ct !== undefined && markMatches(o, ct.mark);
  },
};

export default connmark;
