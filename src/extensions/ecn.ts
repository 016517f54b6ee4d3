// -m ecn: ECN bits of the IP header and the TCP ECE/CWR flags (xt_ecn).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { uintArg } from './util/b-opts';

export interface EcnOptions {
  ece?: { invert: boolean };
  cwr?: { invert: boolean };
  ect?: { value: number; invert: boolean };
}

const TCP_ECE = 0x40;
const TCP_CWR = 0x80;

const ecn: MatchExtension<EcnOptions> = {
  kind: 'match',
  name: 'ecn',
  options: [
    { name: 'ecn-tcp-cwr', args: 0, invertible: true },
    { name: 'ecn-tcp-ece', args: 0, invertible: true },
    { name: 'ecn-ip-ect', args: 1, invertible: true },
  ],
  parse(uses, ctx) {
    const o: EcnOptions = {};
    for (const u of uses) {
      if (u.name === 'ecn-tcp-cwr') o.cwr = { invert: u.negated };
      else if (u.name === 'ecn-tcp-ece') o.ece = { invert: u.negated };
      else o.ect = { value: uintArg(u, 0, 3, 'ecn'), invert: u.negated };
    }
    if (!o.cwr && !o.ece && !o.ect) {
      throw new RuleError('ECN match: some option required', ctx.loc);
    }
    if ((o.cwr || o.ece) && (!ctx.proto || ctx.proto.value !== 6 || ctx.proto.negated)) {
      throw new RuleError(
        'ecn: --ecn-tcp-ece/--ecn-tcp-cwr need `-p tcp` (the kernel refuses this rule: Invalid argument)',
        ctx.loc,
      );
    }
    return o;
  },
  format(o) {
    const w: string[] = [];
    if (o.ece) w.push(...(o.ece.invert ? ['!'] : []), '--ecn-tcp-ece');
    if (o.cwr) w.push(...(o.cwr.invert ? ['!'] : []), '--ecn-tcp-cwr');
    if (o.ect) w.push(...(o.ect.invert ? ['!'] : []), '--ecn-ip-ect', String(o.ect.value));
    return w.join(' ');
  },
  match(o, ctx) {
    const { pkt } = ctx;
    if (o.ect && ((pkt.tos & 3) === o.ect.value) === o.ect.invert) return false;
    if (o.ece || o.cwr) {
      if (pkt.protocol !== 6 || pkt.tcpFlags < 0) return false;
      if (o.ece && ((pkt.tcpFlags & TCP_ECE) !== 0) === o.ece.invert) return false;
      if (o.cwr && ((pkt.tcpFlags & TCP_CWR) !== 0) === o.cwr.invert) return false;
    }
    return true;
  },
};

export default ecn;
