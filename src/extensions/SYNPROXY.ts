// -j SYNPROXY (extensions/libxt_SYNPROXY.c, net/netfilter/xt_SYNPROXY.c): -p tcp, INPUT and FORWARD. Printed in
// synproxy_tg_save's order.
import { RuleError, type TargetExtension } from './types';
import { collect, plainProto, uintArg } from './util/t-options';

export interface SynproxyOpts {
  mss?: number;
  wscale?: number;
  sackPerm: boolean;
  timestamp: boolean;
  ecn: boolean;
}

const target: TargetExtension<SynproxyOpts> = {
  kind: 'target',
  name: 'SYNPROXY',
  options: [
    { name: 'mss', args: 1 },
    { name: 'wscale', args: 1 },
    { name: 'sack-perm', args: 0 },
    { name: 'timestamp', args: 0 },
    { name: 'ecn', args: 0 },
  ],
  allowed: { hooks: ['INPUT', 'FORWARD'] },
  terminal: true,
  unsupported: 'SYNPROXY answers SYNs with syncookies and splices the connection in the kernel, not yet implemented',
  parse(uses, ctx) {
    const seen = collect('SYNPROXY', uses);
    if (plainProto(ctx) !== 6)
      throw new RuleError('SYNPROXY: only valid with -p tcp (the kernel refuses it otherwise)', ctx.loc);
    const o: SynproxyOpts = { sackPerm: seen.has('sack-perm'), timestamp: seen.has('timestamp'), ecn: seen.has('ecn') };
    const m = seen.get('mss');
    if (m) o.mss = uintArg('SYNPROXY', m, 0, 65535);
    const w = seen.get('wscale');
    if (w) o.wscale = uintArg('SYNPROXY', w, 0, 255);
    return o;
  },
  format(o) {
    const parts: string[] = [];
    if (o.sackPerm) parts.push('--sack-perm');
    if (o.timestamp) parts.push('--timestamp');
    if (o.wscale !== undefined) parts.push(`--wscale ${o.wscale}`);
    if (o.mss !== undefined) parts.push(`--mss ${o.mss}`);
    if (o.ecn) parts.push('--ecn');
    return parts.join(' ');
  },
};

export default target;
