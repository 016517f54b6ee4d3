// -m udp (libxt_udp.c, kernel xt_tcpudp.c). Unlike tcp, its ports go through XTTYPE_PORTRC: decimal or a service
// name, truncated to 16 bits, and a reversed range is kept. iptables-nft 1.8.9 loads port tests as nft payload
// compares (no hotdrop; see util/ports nftPortsMatch); an empty udp match stays xt and hotdrops a short header.
import type { MatchExtension } from './types';
import { bang, byName } from './util/opts';
import {
  ALL_PORTS,
  formatPortRange,
  isAllPorts,
  nftPortsMatch,
  noPortTest,
  parseServicePortRange,
  transportStart,
  type PortRange,
} from './util/ports';

export interface UdpOptions {
  sport: PortRange;
  sportInvert: boolean;
  dport: PortRange;
  dportInvert: boolean;
}

/** The udp match's options and semantics for a given protocol (udp, or udplite which the kernel also serves). */
export function udpLike(name: string, protocol: number): MatchExtension<UdpOptions> {
  return {
    kind: 'match',
    flowStable: () => true,
    name,
    protocolMatch: protocol,
    options: [
      { name: 'sport', aliases: ['source-port'], args: 1, invertible: true },
      { name: 'dport', aliases: ['destination-port'], args: 1, invertible: true },
    ],
    parse(opts) {
      const m = byName(opts, name);
      const o: UdpOptions = { sport: { ...ALL_PORTS }, sportInvert: false, dport: { ...ALL_PORTS }, dportInvert: false };
      const sp = m.get('sport');
      if (sp) {
        o.sport = parseServicePortRange(sp);
        o.sportInvert = sp.negated;
      }
      const dp = m.get('dport');
      if (dp) {
        o.dport = parseServicePortRange(dp);
        o.dportInvert = dp.negated;
      }
      return o;
    },
    format(o) {
      const out: string[] = [];
      if (!isAllPorts(o.sport)) out.push(`${bang(o.sportInvert)}--sport ${formatPortRange(o.sport)}`);
      if (!isAllPorts(o.dport)) out.push(`${bang(o.dportInvert)}--dport ${formatPortRange(o.dport)}`);
      return out.join(' ');
    },
    match(o, ctx) {
      const pkt = ctx.pkt;
      if (pkt.protocol !== protocol) return false;
      if (noPortTest(o)) {
        // The xt udp match with nothing to test: it still reads the 8-byte header.
        if (pkt.fragOffset !== 0) return false;
        if (transportStart(pkt, 8) < 0) {
          ctx.hotdrop = true;
          return false;
        }
        return true;
      }
      if (isAllPorts(o.sport) && isAllPorts(o.dport)) return true; // inverted full ranges: nft emits nothing
      const off = transportStart(pkt, 4);
      if (off < 0) return false;
      const d = pkt.data;
      return nftPortsMatch(o, (d[off] << 8) | d[off + 1], (d[off + 2] << 8) | d[off + 3]);
    },
  };
}

const udp = udpLike('udp', 17);
export default udp;
