// -j REJECT (extensions/libipt_REJECT.c, libip6t_REJECT.c; net/ipv4/netfilter/ipt_REJECT.c,
// net/ipv6/netfilter/ip6t_REJECT.c): filter table only, INPUT/FORWARD/OUTPUT; iptables-save always prints the type.
import { buildReject, type RejectKind } from '../engine/reject';
import { RuleError, type TargetExtension } from './types';
import { collect, plainProto } from './util/t-options';

export type RejectWith = RejectKind;

export interface RejectOpts {
  with: RejectWith;
}

// [canonical, alias] as the two families' reject_table lists them.
const V4: ReadonlyArray<[RejectWith, string]> = [
  ['icmp-net-unreachable', 'net-unreach'],
  ['icmp-host-unreachable', 'host-unreach'],
  ['icmp-port-unreachable', 'port-unreach'],
  ['icmp-proto-unreachable', 'proto-unreach'],
  ['icmp-net-prohibited', 'net-prohib'],
  ['icmp-host-prohibited', 'host-prohib'],
  ['tcp-reset', 'tcp-rst'],
  ['icmp-admin-prohibited', 'admin-prohib'],
];
const V6: ReadonlyArray<[RejectWith, string]> = [
  ['icmp6-no-route', 'no-route'],
  ['icmp6-adm-prohibited', 'adm-prohibited'],
  ['icmp6-addr-unreachable', 'addr-unreach'],
  ['icmp6-port-unreachable', 'port-unreach'],
  ['icmp6-policy-fail', 'policy-fail'],
  ['icmp6-reject-route', 'reject-route'],
  ['tcp-reset', 'tcp-rst'],
];

const target: TargetExtension<RejectOpts> = {
  kind: 'target',
  name: 'REJECT',
  options: [{ name: 'reject-with', args: 1 }],
  allowed: { tables: ['filter'], hooks: ['INPUT', 'FORWARD', 'OUTPUT'] },
  terminal: true,
  parse(uses, ctx) {
    const seen = collect('REJECT', uses);
    const u = seen.get('reject-with');
    if (!u) return { with: ctx.family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable' };
    const word = u.args[0];
    const hit = (ctx.family === 4 ? V4 : V6).find(([name, alias]) => word === name || word === alias);
    if (!hit) throw new RuleError(`unknown reject type "${word}"`, u.argLocs[0] ?? u.loc);
    // The kernel's checkentry refuses a TCP reset on a rule that does not match TCP only.
    if (hit[0] === 'tcp-reset' && plainProto(ctx) !== 6)
      throw new RuleError('REJECT: --reject-with tcp-reset is only valid with -p tcp (the kernel refuses it)', u.loc);
    return { with: hit[0] };
  },
  format: (o) => `--reject-with ${o.with}`,
  apply(o, ctx) {
    const pkt = ctx.pkt;
    // An ICMP packet the kernel itself sends (an echo reply, an error: no socket owner in the queue's report) leaves
    // while the kernel holds its ICMP send lock, so icmp_send/icmpv6_send cannot answer it: the packet is dropped
    // and nothing is sent.
    if (ctx.meta.hook === 'OUTPUT' && ctx.meta.uid === undefined && (pkt.protocol === 1 || pkt.protocol === 58)) {
      return { verdict: 'reject' };
    }
    // icmp_send: the error comes from the original destination when that is us; otherwise from the address
    // routing picks for the way back to the sender. A reset always pretends to come from the original destination.
    const local = ctx.host.addressType(pkt.family, pkt.dst) === 'LOCAL';
    const from = local || o.with === 'tcp-reset' ? undefined : ctx.host.sourceFor?.(pkt.family, pkt.src);
    const verify = ctx.meta.checksumNotReady === true ? { verifyChecksum: false } : undefined;
    const reply = buildReject(pkt, ctx.meta, o.with, from, verify);
    if (reply) ctx.replies.push(reply);
    return { verdict: 'reject' };
  },
};

export default target;
