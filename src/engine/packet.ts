// Header parsing for the reference engine: what ip_tables / ip6_tables and the protocol matches read from a packet.
// Hostile input never throws and never reads past `data`: a header that is cut short sets `truncated`, which is where
// the kernel's matches would set hotdrop.
import type { ParsedPacket } from '../extensions/types';
import type { Family } from '../rules/model';

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_DCCP = 33;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;
export const IPPROTO_UDPLITE = 136;

// IPv6 extension headers ipv6_find_hdr() walks (ipv6_ext_hdr(): hop-by-hop, routing, fragment, AH, none, dstopts).
const NEXTHDR_HOP = 0;
const NEXTHDR_ROUTING = 43;
const NEXTHDR_FRAGMENT = 44;
const NEXTHDR_AUTH = 51;
const NEXTHDR_NONE = 59;
const NEXTHDR_DEST = 60;

/** Headers a packet can hold are bounded by its length anyway; this caps the work on a hostile chain. */
const MAX_EXT_HEADERS = 64;

function isExtHeader(nh: number): boolean {
  return (
    nh === NEXTHDR_HOP ||
    nh === NEXTHDR_ROUTING ||
    nh === NEXTHDR_FRAGMENT ||
    nh === NEXTHDR_AUTH ||
    nh === NEXTHDR_NONE ||
    nh === NEXTHDR_DEST
  );
}

/** How many bytes of the transport header the kernel's match for that protocol reads (skb_header_pointer size). */
export function l4HeaderNeed(proto: number): number {
  switch (proto) {
    case IPPROTO_TCP:
      return 20;
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      return 8;
    case IPPROTO_SCTP:
    case IPPROTO_DCCP:
      return 12;
    default:
      return 0;
  }
}

function hasPorts(proto: number): boolean {
  return (
    proto === IPPROTO_TCP ||
    proto === IPPROTO_UDP ||
    proto === IPPROTO_UDPLITE ||
    proto === IPPROTO_SCTP ||
    proto === IPPROTO_DCCP
  );
}

function blank(data: Uint8Array, family: Family, length: number): ParsedPacket {
  const alen = family === 4 ? 4 : 16;
  return {
    family,
    data,
    length,
    src: new Uint8Array(alen),
    dst: new Uint8Array(alen),
    protocol: 0,
    ttl: 0,
    tos: 0,
    ipId: 0,
    fragOffset: 0,
    moreFragments: false,
    dontFragment: false,
    extHeaders: [],
    l3HeaderLength: 0,
    l4Offset: -1,
    sport: -1,
    dport: -1,
    tcpFlags: -1,
    icmpType: -1,
    icmpCode: -1,
    truncated: true,
  };
}

/** Fills the transport fields from the header at `off` (a first fragment or an unfragmented packet). */
function parseL4(p: ParsedPacket, off: number): void {
  const d = p.data;
  const avail = d.length - off;
  const need = l4HeaderNeed(p.protocol);
  if (avail < need) {
    p.truncated = true;
    return;
  }
  p.l4Offset = off;
  if (hasPorts(p.protocol)) {
    p.sport = (d[off] << 8) | d[off + 1];
    p.dport = (d[off + 2] << 8) | d[off + 3];
    if (p.protocol === IPPROTO_TCP) p.tcpFlags = d[off + 13];
  } else if (p.protocol === IPPROTO_ICMP && p.family === 4) {
    p.icmpType = d[off];
    p.icmpCode = d[off + 1];
  } else if (p.protocol === IPPROTO_ICMPV6 && p.family === 6) {
    p.icmpType = d[off];
    p.icmpCode = d[off + 1];
  }
}

function parse4(data: Uint8Array, length: number): ParsedPacket {
  const p = blank(data, 4, length);
  if (data.length < 20 || data[0] >> 4 !== 4) return p;
  const ihl = (data[0] & 0x0f) * 4;
  if (ihl < 20 || data.length < ihl) return p;
  p.src = data.slice(12, 16);
  p.dst = data.slice(16, 20);
  p.tos = data[1];
  p.ipId = (data[4] << 8) | data[5];
  const frag = (data[6] << 8) | data[7];
  p.dontFragment = (frag & 0x4000) !== 0;
  p.moreFragments = (frag & 0x2000) !== 0;
  p.fragOffset = (frag & 0x1fff) * 8;
  p.ttl = data[8];
  p.protocol = data[9];
  p.l3HeaderLength = ihl;
  p.truncated = false;
  // Later fragments carry no transport header; the matches see fragoff != 0 and do not look.
  if (p.fragOffset === 0) parseL4(p, ihl);
  return p;
}

function parse6(data: Uint8Array, length: number): ParsedPacket {
  const p = blank(data, 6, length);
  if (data.length < 40 || data[0] >> 4 !== 6) return p;
  p.src = data.slice(8, 24);
  p.dst = data.slice(24, 40);
  p.tos = ((data[0] & 0x0f) << 4) | (data[1] >> 4);
  p.ttl = data[7];
  p.truncated = false;
  let nh = data[6];
  let off = 40;
  // ipv6_find_hdr(skb, &off, -1, &fragoff, NULL): walk to the first header that is not an extension header.
  for (let n = 0; ; n++) {
    if (!isExtHeader(nh) || nh === NEXTHDR_NONE) break;
    if (n >= MAX_EXT_HEADERS || off + 2 > data.length) {
      p.truncated = true;
      break;
    }
    let hdrlen: number;
    if (nh === NEXTHDR_FRAGMENT) {
      // The kernel reads the fragment header's first 4 bytes (next header and frag_off), no more.
      if (off + 4 > data.length) {
        p.truncated = true;
        break;
      }
      const fo = (data[off + 2] << 8) | data[off + 3];
      p.moreFragments = (fo & 1) !== 0;
      p.ipId = 0;
      const fragOff = fo & ~7;
      if (fragOff !== 0) {
        // A later fragment: the kernel reports the fragment header's next header as the protocol (when that is not
        // itself an extension header) and the transport header is absent.
        p.fragOffset = fragOff;
        p.extHeaders.push({ type: nh, offset: off, length: 8 });
        const inner = data[off];
        p.l3HeaderLength = off + 8;
        p.protocol = inner;
        // An extension header after a later fragment's header: ipv6_find_hdr returns -ENOENT with fragoff 0, and
        // ip6_packet_match hotdrops a rule with -p.
        if (isExtHeader(inner) && inner !== NEXTHDR_NONE) p.truncated = true;
        return p;
      }
      hdrlen = 8;
    } else if (nh === NEXTHDR_AUTH) {
      // The kernel stops at AH only when asked for flags; ip6_tables passes NULL and walks past it.
      hdrlen = (data[off + 1] + 2) << 2;
    } else {
      hdrlen = (data[off + 1] + 1) << 3;
    }
    if (off + hdrlen > data.length) {
      // The header's own length runs past the packet: the next skb_header_pointer would fail.
      p.extHeaders.push({ type: nh, offset: off, length: hdrlen });
      p.truncated = true;
      nh = data[off];
      off += hdrlen;
      p.protocol = nh;
      p.l3HeaderLength = Math.min(off, data.length);
      return p;
    }
    p.extHeaders.push({ type: nh, offset: off, length: hdrlen });
    nh = data[off];
    off += hdrlen;
  }
  p.protocol = nh;
  p.l3HeaderLength = off;
  if (p.truncated) return p;
  parseL4(p, off);
  return p;
}

/**
 * Whether ipv6_find_hdr() fails for this packet (a header of the chain cannot be read, or an extension header follows
 * a later fragment's header): ip6_packet_match then hotdrops any rule with -p.
 */
export function ipv6HeaderChainBroken(p: ParsedPacket): boolean {
  return p.family === 6 && p.truncated && isExtHeader(p.protocol) && p.protocol !== NEXTHDR_NONE;
}

/**
 * Parses an L3 packet. `length` is the length on the wire when the queue copied less than all of it; it defaults to
 * the bytes given.
 */
export function parsePacket(data: Uint8Array, family: Family, length?: number): ParsedPacket {
  const len = length ?? data.length;
  return family === 4 ? parse4(data, len) : parse6(data, len);
}

/** The IP total length as counters count it (skb->len): the wire length. */
export function packetBytes(p: ParsedPacket): number {
  return p.length;
}
