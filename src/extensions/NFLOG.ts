// -j NFLOG (extensions/libxt_NFLOG.c; iptables-nft turns it into nftables' own log statement, and its
// iptables-save prints that back: group 0, threshold 0 and the obsolete --nflog-range are not shown).
import { formatLogLine } from '../engine/logformat';
import { quote } from '../rules/quote';
import { RuleError, type TargetExtension } from './types';
import { collect, exclusive, uintArg } from './util/t-options';

export interface NflogOpts {
  group: number;
  prefix: string;
  /** --nflog-size: bytes of the packet copied to userspace. */
  size?: number;
  /** --nflog-range: accepted and ignored ("has never worked", libxt_NFLOG.c). */
  range?: number;
  threshold: number;
}

const target: TargetExtension<NflogOpts> = {
  kind: 'target',
  name: 'NFLOG',
  options: [
    { name: 'nflog-group', args: 1 },
    { name: 'nflog-prefix', args: 1 },
    { name: 'nflog-range', args: 1 },
    { name: 'nflog-size', args: 1 },
    { name: 'nflog-threshold', args: 1 },
  ],
  terminal: false,
  parse(uses) {
    const seen = collect('NFLOG', uses);
    exclusive('NFLOG', seen, ['nflog-range', 'nflog-size']);
    const o: NflogOpts = { group: 0, prefix: '', threshold: 0 };
    const g = seen.get('nflog-group');
    if (g) o.group = uintArg('NFLOG', g, 0, 65535);
    const p = seen.get('nflog-prefix');
    if (p) {
      if (p.args[0].length === 0)
        throw new RuleError('Argument must have a minimum length of 1 characters', p.argLocs[0] ?? p.loc);
      o.prefix = p.args[0];
    }
    const r = seen.get('nflog-range');
    if (r) o.range = uintArg('NFLOG', r, 0, 0xffffffff);
    const s = seen.get('nflog-size');
    if (s) o.size = uintArg('NFLOG', s, 0, 0xffffffff);
    const t = seen.get('nflog-threshold');
    if (t) o.threshold = uintArg('NFLOG', t, 0, 65535);
    return o;
  },
  format(o) {
    const parts: string[] = [];
    if (o.prefix) parts.push(`--nflog-prefix ${quote(o.prefix)}`);
    if (o.group) parts.push(`--nflog-group ${o.group}`);
    if (o.size !== undefined) parts.push(`--nflog-size ${o.size}`);
    if (o.threshold) parts.push(`--nflog-threshold ${o.threshold}`);
    return parts.join(' ');
  },
  apply(o, ctx) {
    const line = formatLogLine(ctx.pkt, ctx.meta, { prefix: o.prefix });
    ctx.logs.push({ kind: 'NFLOG', line, group: o.group });
    return { verdict: 'continue' };
  },
};

export default target;
