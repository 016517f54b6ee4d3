// Header rewrites for targets (TTL/HL, TOS/DSCP, TCPMSS, and the address/port changes NAT makes). Each keeps the
// IPv4 header checksum and the transport checksum right by incremental update, as the kernel's mangling does, and
// keeps the ParsedPacket fields in step with the bytes.
import type { ParsedPacket } from '../extensions/types';
import { crc32c, csumReplace, fixIpv4HeaderChecksum, read16, transportChecksum, write16 } from './checksum';
import { IPPROTO_DCCP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from './packet';

function word(hi: number, lo: number): Uint8Array {
  return Uint8Array.of(hi & 0xff, lo & 0xff);
}

/** Sets the IPv4 TTL or the IPv6 hop limit. */
export function setTtl(pkt: ParsedPacket, ttl: number): void {
  const d = pkt.data;
  const v = ttl & 0xff;
  if (pkt.family === 4) {
    if (d.length < 20) return;
    const old = word(d[8], d[9]);
    d[8] = v;
    csumReplace(d, 10, old, word(d[8], d[9]));
  } else {
    if (d.length < 40) return;
    d[7] = v;
  }
  pkt.ttl = v;
}

/** Sets the IPv4 TOS byte or the IPv6 traffic class (the 8 bits straddling bytes 0 and 1). */
export function setTos(pkt: ParsedPacket, tos: number): void {
  const d = pkt.data;
  const v = tos & 0xff;
  if (pkt.family === 4) {
    if (d.length < 20) return;
    const old = word(d[0], d[1]);
    d[1] = v;
    csumReplace(d, 10, old, word(d[0], d[1]));
  } else {
    if (d.length < 40) return;
    d[0] = (d[0] & 0xf0) | (v >> 4);
    d[1] = (d[1] & 0x0f) | ((v & 0x0f) << 4);
  }
  pkt.tos = v;
}

/** Where the transport checksum of this packet sits in data, or -1 when it is absent or not covered. */
function l4CheckOffset(pkt: ParsedPacket): number {
  if (pkt.l4Offset < 0) return -1;
  let rel: number;
  switch (pkt.protocol) {
    case IPPROTO_TCP:
      rel = 16;
      break;
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_DCCP:
      rel = 6;
      break;
    case IPPROTO_ICMPV6:
      rel = pkt.family === 6 ? 2 : -1;
      break;
    default:
      rel = -1;
  }
  if (rel < 0 || pkt.l4Offset + rel + 2 > pkt.data.length) return -1;
  return pkt.l4Offset + rel;
}

/** Applies a change of bytes covered by the transport checksum (pseudo-header or header) to that checksum. */
function fixL4(pkt: ParsedPacket, oldBytes: Uint8Array, newBytes: Uint8Array, inPseudoHeader: boolean): void {
  const d = pkt.data;
  if (pkt.protocol === IPPROTO_SCTP) {
    // CRC32c covers the SCTP packet only, not addresses; recompute it when the header changed.
    if (!inPseudoHeader) fixSctp(pkt);
    return;
  }
  const co = l4CheckOffset(pkt);
  if (co < 0) return;
  if (pkt.protocol === IPPROTO_UDP) {
    // A zero UDP checksum over IPv4 means "none" and stays so; a computed zero is sent as 0xffff (CSUM_MANGLED_0).
    if (pkt.family === 4 && read16(d, co) === 0) return;
    csumReplace(d, co, oldBytes, newBytes);
    if (read16(d, co) === 0) write16(d, co, 0xffff);
    return;
  }
  csumReplace(d, co, oldBytes, newBytes);
}

function fixSctp(pkt: ParsedPacket): void {
  const d = pkt.data;
  const o = pkt.l4Offset;
  if (o < 0 || o + 12 > d.length) return;
  d[o + 8] = d[o + 9] = d[o + 10] = d[o + 11] = 0;
  const c = crc32c(d, o, d.length);
  // SCTP stores the CRC32c little-endian in wire order (RFC 4960 appendix B).
  d[o + 8] = c & 0xff;
  d[o + 9] = (c >>> 8) & 0xff;
  d[o + 10] = (c >>> 16) & 0xff;
  d[o + 11] = (c >>> 24) & 0xff;
}

/** Rewrites the source or destination address (NAT), fixing the IPv4 header and the transport checksums. */
export function setAddress(pkt: ParsedPacket, which: 'src' | 'dst', addr: Uint8Array): void {
  const d = pkt.data;
  const len = pkt.family === 4 ? 4 : 16;
  if (addr.length !== len) throw new RangeError(`setAddress: ${addr.length}-byte address for an IPv${pkt.family} packet`);
  const off = pkt.family === 4 ? (which === 'src' ? 12 : 16) : which === 'src' ? 8 : 24;
  if (off + len > d.length) return;
  const old = d.slice(off, off + len);
  d.set(addr, off);
  if (pkt.family === 4) csumReplace(d, 10, old, addr);
  fixL4(pkt, old, addr, true);
  if (which === 'src') pkt.src = addr.slice();
  else pkt.dst = addr.slice();
}

/** Rewrites the source or destination port of TCP, UDP, UDP-Lite, SCTP or DCCP; false when there is none. */
export function setPort(pkt: ParsedPacket, which: 'src' | 'dst', port: number): boolean {
  const d = pkt.data;
  if (pkt.sport < 0 || pkt.l4Offset < 0) return false;
  const off = pkt.l4Offset + (which === 'src' ? 0 : 2);
  if (off + 2 > d.length) return false;
  const old = d.slice(off, off + 2);
  write16(d, off, port & 0xffff);
  fixL4(pkt, old, d.slice(off, off + 2), false);
  if (which === 'src') pkt.sport = port & 0xffff;
  else pkt.dport = port & 0xffff;
  return true;
}

const TCPOPT_EOL = 0;
const TCPOPT_NOP = 1;
const TCPOPT_MSS = 2;
const TCPOLEN_MSS = 4;

/** optlen() of xt_TCPMSS.c: a bad length counts as 1 so the walk always advances. */
function optlen(opt: Uint8Array, off: number): number {
  if (opt[off] <= TCPOPT_NOP || off + 1 >= opt.length || opt[off + 1] === 0) return 1;
  return opt[off + 1];
}

/**
 * TCPMSS's mangle (net/netfilter/xt_TCPMSS.c tcpmss_mangle_packet): lowers an MSS option above `mss` (never raises
 * it); when there is no MSS option and no payload after the header, inserts one with min(mss, 536) for IPv4 or
 * min(mss, 1220) for IPv6, growing the packet by 4 bytes (pkt.data is replaced). Returns whether the packet changed.
 */
export function setTcpMss(pkt: ParsedPacket, mss: number): boolean {
  if (pkt.protocol !== IPPROTO_TCP || pkt.fragOffset !== 0 || pkt.l4Offset < 0) return false;
  const d = pkt.data;
  const th = pkt.l4Offset;
  const len = d.length - th;
  if (len < 20) return false;
  const hdrlen = (d[th + 12] >> 4) * 4;
  if (len < hdrlen || hdrlen < 20) return false;
  let newmss = mss & 0xffff;
  const tcp = d.subarray(th, th + hdrlen);
  for (let i = 20; i <= hdrlen - TCPOLEN_MSS; i += optlen(tcp, i)) {
    if (tcp[i] === TCPOPT_MSS && tcp[i + 1] === TCPOLEN_MSS) {
      const oldmss = read16(tcp, i + 2);
      if (oldmss <= newmss) return false;
      const old = tcp.slice(i + 2, i + 4);
      write16(tcp, i + 2, newmss);
      // The option may start at an odd offset; the checksum covers 16-bit words from the header start.
      if ((i & 1) === 0) csumReplace(d, th + 16, old, tcp.slice(i + 2, i + 4));
      else fixL4Full(pkt);
      return true;
    }
    if (tcp[i] === TCPOPT_EOL) break;
  }
  if (len > hdrlen) return false;
  if (hdrlen >= 15 * 4) return false;
  newmss = Math.min(newmss, pkt.family === 4 ? 536 : 1220);
  const grown = new Uint8Array(d.length + TCPOLEN_MSS);
  grown.set(d.subarray(0, th + 20), 0);
  grown[th + 20] = TCPOPT_MSS;
  grown[th + 21] = TCPOLEN_MSS;
  write16(grown, th + 22, newmss);
  grown.set(d.subarray(th + 20), th + 24);
  grown[th + 12] = (grown[th + 12] & 0x0f) | (((hdrlen + TCPOLEN_MSS) / 4) << 4);
  if (pkt.family === 4) {
    write16(grown, 2, read16(grown, 2) + TCPOLEN_MSS);
    fixIpv4HeaderChecksum(grown);
  } else {
    write16(grown, 4, read16(grown, 4) + TCPOLEN_MSS);
  }
  pkt.data = grown;
  pkt.length += TCPOLEN_MSS;
  fixL4Full(pkt);
  return true;
}

/** Recomputes the transport checksum from scratch (after a change the incremental form cannot express cheaply). */
export function fixL4Full(pkt: ParsedPacket): void {
  const co = l4CheckOffset(pkt);
  if (co < 0) return;
  const d = pkt.data;
  write16(d, co, transportChecksum(pkt.family, pkt.src, pkt.dst, pkt.protocol, d, pkt.l4Offset, d.length));
}
