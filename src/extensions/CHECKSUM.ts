// -j CHECKSUM --checksum-fill (extensions/libxt_CHECKSUM.c, net/netfilter/xt_CHECKSUM.c): mangle table only.
// The kernel fills in a checksum only for a packet whose checksum is left to the NIC (CHECKSUM_PARTIAL) and leaves
// every other packet alone. A packet queued without F_GSO has had its checksum completed before the copy, and one
// queued with F_GSO that nfqwall does not rewrite keeps CHECKSUM_PARTIAL and is completed by the kernel or NIC;
// a packet nfqwall rewrites leaves with correct checksums from engine/rewrite. So the target changes nothing here.
import { RuleError, type TargetExtension } from './types';
import { collect } from './util/t-options';

export interface ChecksumOpts {
  fill: true;
}

const target: TargetExtension<ChecksumOpts> = {
  kind: 'target',
  name: 'CHECKSUM',
  options: [{ name: 'checksum-fill', args: 0 }],
  allowed: { tables: ['mangle'] },
  terminal: false,
  parse(uses, ctx) {
    const seen = collect('CHECKSUM', uses);
    if (!seen.has('checksum-fill')) throw new RuleError('CHECKSUM: option "--checksum-fill" must be specified', ctx.loc);
    return { fill: true };
  },
  format: () => '--checksum-fill',
  apply: () => ({ verdict: 'continue' }),
};

export default target;
