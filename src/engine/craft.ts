// Builds well-formed IPv4/IPv6 packets (correct lengths and checksums) for `nfqwall explain` and for tests.
import type { Family } from '../rules/model';
import { fixIpv4HeaderChecksum, transportChecksum, write16 } from './checksum';

export interface CraftOptions {
  family: Family;
  src: Uint8Array;
  dst: Uint8Array;
  /** Protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6, 132 sctp, 136 udplite, 33 dccp, or any other). */
  proto: number;
  sport?: number;
  dport?: number;
  /** TCP flags byte (FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE 64, CWR 128). */
  tcpFlags?: number;
  seq?: number;
  ack?: number;
  window?: number;
  /** TCP options, padded by the caller to a multiple of 4. */
  tcpOptions?: Uint8Array;
  icmpType?: number;
  icmpCode?: number;
  /** ICMP echo identifier/sequence, or the rest-of-header word. */
  icmpRest?: number;
  ttl?: number;
  tos?: number;
  id?: number;
  df?: boolean;
  payload?: Uint8Array;
  /** UDP over IPv4 with no checksum (0). */
  udpNoChecksum?: boolean;
}

function transport(o: CraftOptions): Uint8Array {
  const payload = o.payload ?? new Uint8Array(0);
  let h: Uint8Array;
  switch (o.proto) {
    case 6: {
      const optLen = o.tcpOptions?.length ?? 0;
      h = new Uint8Array(20 + optLen + payload.length);
      write16(h, 0, o.sport ?? 0);
      write16(h, 2, o.dport ?? 0);
      new DataView(h.buffer).setUint32(4, (o.seq ?? 0) >>> 0);
      new DataView(h.buffer).setUint32(8, (o.ack ?? 0) >>> 0);
      h[12] = ((20 + optLen) / 4) << 4;
      h[13] = o.tcpFlags ?? 0x02;
      write16(h, 14, o.window ?? 64240);
      if (o.tcpOptions) h.set(o.tcpOptions, 20);
      h.set(payload, 20 + optLen);
      return h;
    }
    case 17:
    case 136: {
      h = new Uint8Array(8 + payload.length);
      write16(h, 0, o.sport ?? 0);
      write16(h, 2, o.dport ?? 0);
      write16(h, 4, h.length);
      h.set(payload, 8);
      return h;
    }
    case 132: {
      h = new Uint8Array(12 + payload.length);
      write16(h, 0, o.sport ?? 0);
      write16(h, 2, o.dport ?? 0);
      h.set(payload, 12);
      return h;
    }
    case 33: {
      h = new Uint8Array(16 + payload.length);
      write16(h, 0, o.sport ?? 0);
      write16(h, 2, o.dport ?? 0);
      h[4] = 4; // data offset in 32-bit words
      h.set(payload, 16);
      return h;
    }
    case 1:
    case 58: {
      h = new Uint8Array(8 + payload.length);
      h[0] = o.icmpType ?? (o.proto === 1 ? 8 : 128);
      h[1] = o.icmpCode ?? 0;
      new DataView(h.buffer).setUint32(4, (o.icmpRest ?? 0) >>> 0);
      h.set(payload, 8);
      return h;
    }
    default:
      return payload.slice();
  }
}

export function craftPacket(o: CraftOptions): Uint8Array {
  const l4 = transport(o);
  const hl = o.family === 4 ? 20 : 40;
  const p = new Uint8Array(hl + l4.length);
  if (o.family === 4) {
    p[0] = 0x45;
    p[1] = o.tos ?? 0;
    write16(p, 2, p.length);
    write16(p, 4, o.id ?? 0);
    if (o.df) p[6] = 0x40;
    p[8] = o.ttl ?? 64;
    p[9] = o.proto;
    p.set(o.src, 12);
    p.set(o.dst, 16);
    fixIpv4HeaderChecksum(p);
  } else {
    const tc = o.tos ?? 0;
    p[0] = 0x60 | (tc >> 4);
    p[1] = (tc & 0x0f) << 4;
    write16(p, 4, l4.length);
    p[6] = o.proto;
    p[7] = o.ttl ?? 64;
    p.set(o.src, 8);
    p.set(o.dst, 24);
  }
  p.set(l4, hl);
  const co =
    o.proto === 6 ? 16 : o.proto === 17 || o.proto === 136 || o.proto === 33 ? 6 : o.proto === 1 || o.proto === 58 ? 2 : -1;
  const skip = o.proto === 17 && o.family === 4 && o.udpNoChecksum;
  if (co >= 0 && !skip && hl + co + 2 <= p.length) {
    write16(p, hl + co, transportChecksum(o.family, o.src, o.dst, o.proto, p, hl));
  }
  return p;
}
