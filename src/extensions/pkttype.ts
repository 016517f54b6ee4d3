// -m pkttype (libxt_pkttype.c, kernel xt_pkttype.c): the link-layer class of the packet as the queue reports it.
import type { MatchExtension } from './types';
import { badArg, badMatch, bang, byName } from './util/opts';

export type PktTypeName = 'unicast' | 'broadcast' | 'multicast' | 'otherhost';

export interface PkttypeOptions {
  type: PktTypeName;
  invert: boolean;
}

/** libxt_pkttype's supported_types, with aliases. */
const NAMES: ReadonlyArray<[string, PktTypeName]> = [
  ['unicast', 'unicast'],
  ['broadcast', 'broadcast'],
  ['multicast', 'multicast'],
  ['otherhost', 'otherhost'],
  ['host', 'unicast'],
];

const pkttype: MatchExtension<PkttypeOptions> = {
  kind: 'match',
  name: 'pkttype',
  options: [{ name: 'pkt-type', args: 1, invertible: true }],
  parse(opts, ctx) {
    const use = byName(opts, 'pkttype').get('pkt-type');
    if (!use) badMatch(ctx, 'pkttype: option "--pkt-type" must be specified');
    const word = (use.args[0] ?? '').toLowerCase();
    const t = NAMES.find(([n]) => n === word);
    if (!t) badArg(use, `Bad packet type '${use.args[0] ?? ''}'`);
    return { type: t[1], invert: use.negated };
  },
  format(o) {
    return `${bang(o.invert)}--pkt-type ${o.type}`;
  },
  match(o, ctx) {
    // Packets for other hosts never reach netfilter's IP hooks (ip_rcv drops them), so otherhost never matches.
    return (ctx.meta.pktType === o.type) !== o.invert;
  },
};

export default pkttype;
