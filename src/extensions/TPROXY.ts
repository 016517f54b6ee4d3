// -j TPROXY (extensions/libxt_TPROXY.c revision 1, net/netfilter/xt_TPROXY.c): mangle PREROUTING, -p tcp or udp.
// iptables-save always prints all three options, the address and mark with their defaults.
import { formatIpAddr } from '../rules/addr';
import { NameError, parsePort } from '../rules/services';
import { RuleError, type TargetExtension } from './types';
import { collect, hex, mustSpecify, plainProto } from './util/t-options';
import { parseMarkMask } from './util/t-mark';
import { parseHostAddr } from './util/t-host';

export interface TproxyOpts {
  port: number;
  ip: Uint8Array;
  markValue: number;
  markMask: number;
}

const target: TargetExtension<TproxyOpts> = {
  kind: 'target',
  name: 'TPROXY',
  options: [
    { name: 'on-port', args: 1 },
    { name: 'on-ip', args: 1 },
    { name: 'tproxy-mark', args: 1 },
  ],
  allowed: { tables: ['mangle'], hooks: ['PREROUTING'] },
  terminal: true,
  unsupported: "TPROXY needs the kernel's socket assignment (the packet is handed to a local socket), which userspace cannot do",
  parse(uses, ctx) {
    const seen = collect('TPROXY', uses);
    const pu = mustSpecify('TPROXY', seen, 'on-port', ctx);
    const p = plainProto(ctx);
    if (p !== 6 && p !== 17)
      throw new RuleError('TPROXY: only valid with -p tcp or -p udp (the kernel refuses it otherwise)', ctx.loc);
    let port: number;
    try {
      port = parsePort(pu.args[0]);
    } catch (e) {
      if (e instanceof NameError) throw new RuleError(`TPROXY: ${e.message}`, pu.argLocs[0] ?? pu.loc);
      throw e;
    }
    const o: TproxyOpts = { port, ip: new Uint8Array(ctx.family === 4 ? 4 : 16), markValue: 0, markMask: 0 };
    const iu = seen.get('on-ip');
    if (iu) {
      const a = parseHostAddr(iu.args[0], ctx.family);
      if (!a) throw new RuleError(`TPROXY: invalid IPv${ctx.family} address "${iu.args[0]}"`, iu.argLocs[0] ?? iu.loc);
      o.ip = a;
    }
    const mu = seen.get('tproxy-mark');
    if (mu) {
      const m = parseMarkMask('TPROXY', mu);
      o.markValue = m.value;
      o.markMask = m.mask;
    }
    return o;
  },
  format: (o) => `--on-port ${o.port} --on-ip ${formatIpAddr(o.ip)} --tproxy-mark ${hex(o.markValue)}/${hex(o.markMask)}`,
};

export default target;
