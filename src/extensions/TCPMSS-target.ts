// -j TCPMSS (extensions/libxt_TCPMSS.c, net/netfilter/xt_TCPMSS.c). The kernel ties it to -p tcp (xt_target .proto)
// and allows --clamp-mss-to-pmtu only in FORWARD, OUTPUT and POSTROUTING. Any table. With the nf_tables backend the
// legacy "only works on TCP SYN packets" check (a --tcp-flags match on the rule) is skipped (par->nft_compat), and
// iptables-nft is what the corpus was rendered with, so it is not enforced here either.
import { setTcpMss } from '../engine/rewrite';
import { RuleError, type TargetExtension } from './types';
import { collect, plainProto, uintArg } from './util/t-options';

export interface TcpmssOpts {
  /** undefined: clamp to the path MTU. */
  mss?: number;
}

const CLAMP_HOOKS = ['FORWARD', 'OUTPUT', 'POSTROUTING'] as const;

const target: TargetExtension<TcpmssOpts> = {
  kind: 'target',
  name: 'TCPMSS',
  options: [
    { name: 'set-mss', args: 1 },
    { name: 'clamp-mss-to-pmtu', args: 0 },
  ],
  terminal: false,
  parse(uses, ctx) {
    collect('TCPMSS', uses);
    if (uses.length === 0) throw new RuleError('TCPMSS target: At least one parameter is required', ctx.loc);
    if (plainProto(ctx) !== 6)
      throw new RuleError('TCPMSS: only valid with -p tcp (the kernel refuses it otherwise)', ctx.loc);
    // The two forms share one field in the kernel's struct, so the later one wins, as iptables does it.
    const last = uses[uses.length - 1];
    if (last.name === 'clamp-mss-to-pmtu') {
      if ((ctx.chain === 'PREROUTING' || ctx.chain === 'INPUT'))
        throw new RuleError('TCPMSS: --clamp-mss-to-pmtu is only supported in FORWARD, OUTPUT and POSTROUTING', last.loc);
      return {};
    }
    return { mss: uintArg('TCPMSS', last, 0, ctx.family === 4 ? 65535 - 20 : 65535 - 40) };
  },
  allowedFor: (o) => (o.mss === undefined ? { hooks: CLAMP_HOOKS } : undefined),
  unsupportedFor: (o) =>
    o.mss === undefined
      ? 'TCPMSS --clamp-mss-to-pmtu needs the route MTU of the packet, which the queue does not report'
      : undefined,
  format: (o) => (o.mss === undefined ? '--clamp-mss-to-pmtu' : `--set-mss ${o.mss}`),
  apply(o, ctx) {
    if (o.mss !== undefined && setTcpMss(ctx.pkt, o.mss)) ctx.rewritten = true;
    return { verdict: 'continue' };
  },
};

export default target;
