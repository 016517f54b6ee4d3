// From a captured link-layer frame to the L3 packet the netfilter hooks would see: strip the link header (Ethernet
// with VLAN tags, Linux cooked SLL/SLL2, raw IP, BSD loopback), trim Ethernet padding to the IP length (the kernel's
// ip_rcv trims skb->len the same way, and counters count skb->len), and keep what tells the direction.
import type { Family } from '../rules/model';
import { LINKTYPE } from './pcap';

export interface Frame {
  family: Family;
  /** The L3 packet, trimmed to its IP length. */
  l3: Uint8Array;
  /** L3 length on the wire (differs from l3.length when the capture truncated the frame). */
  l3Length: number;
  srcMac?: Uint8Array;
  dstMac?: Uint8Array;
  /** What the link layer itself says about direction (Linux SLL packet type, pcapng flags). */
  direction?: 'in' | 'out';
  /** SLL packet type 3: addressed to another host; the IP layer never sees it (ip_rcv drops PACKET_OTHERHOST). */
  otherHost?: boolean;
  pktType: 'unicast' | 'broadcast' | 'multicast';
}

export type FrameResult = Frame | { skip: string };

/** cap's open() names its link types with strings; the file reader gives numbers. */
export function linktypeFromCap(name: string): number | undefined {
  switch (name) {
    case 'ETHERNET':
      return LINKTYPE.ETHERNET;
    case 'LINKTYPE_LINUX_SLL':
      return LINKTYPE.LINUX_SLL;
    case 'RAW':
      return LINKTYPE.RAW;
    case 'NULL':
      return LINKTYPE.NULL;
    default:
      return undefined;
  }
}

function ethertypeFamily(t: number): Family | undefined {
  return t === 0x0800 ? 4 : t === 0x86dd ? 6 : undefined;
}

function macPktType(dst: Uint8Array): Frame['pktType'] {
  if (dst.every((b) => b === 0xff)) return 'broadcast';
  return dst[0] & 1 ? 'multicast' : 'unicast';
}

function sllType(t: number): { direction: 'in' | 'out'; pktType: Frame['pktType']; otherHost: boolean } {
  // PACKET_HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3, OUTGOING 4.
  return {
    direction: t === 4 ? 'out' : 'in',
    pktType: t === 1 ? 'broadcast' : t === 2 ? 'multicast' : 'unicast',
    otherHost: t === 3,
  };
}

function l3(family: Family | undefined, data: Uint8Array, off: number, origLength: number): FrameResult | { family: Family; l3: Uint8Array; l3Length: number } {
  if (family === undefined) return { skip: 'not IPv4 or IPv6' };
  let pkt = data.subarray(off);
  let wire = origLength - off;
  if (family === 4) {
    if (pkt.length < 20 || pkt[0] >> 4 !== 4) return { skip: 'malformed IPv4 header' };
    const total = (pkt[2] << 8) | pkt[3];
    if (total >= 20 && total < wire) wire = total;
  } else {
    if (pkt.length < 40 || pkt[0] >> 4 !== 6) return { skip: 'malformed IPv6 header' };
    const payload = (pkt[4] << 8) | pkt[5];
    // A zero payload length is a jumbogram: the length is in a hop-by-hop option, trust the frame.
    if (payload > 0 && 40 + payload < wire) wire = 40 + payload;
  }
  if (pkt.length > wire) pkt = pkt.subarray(0, wire);
  return { family, l3: pkt, l3Length: wire };
}

export function decodeFrame(linktype: number, data: Uint8Array, origLength: number = data.length): FrameResult {
  switch (linktype) {
    case LINKTYPE.ETHERNET: {
      if (data.length < 14) return { skip: 'short Ethernet frame' };
      let off = 12;
      let type = (data[off] << 8) | data[off + 1];
      // 802.1Q / 802.1ad tags: the VLAN device would receive the inner packet.
      while ((type === 0x8100 || type === 0x88a8) && data.length >= off + 6) {
        off += 4;
        type = (data[off] << 8) | data[off + 1];
      }
      const r = l3(ethertypeFamily(type), data, off + 2, origLength);
      if ('skip' in r) return r;
      const dstMac = data.subarray(0, 6);
      return { ...r, dstMac, srcMac: data.subarray(6, 12), pktType: macPktType(dstMac) };
    }
    case LINKTYPE.LINUX_SLL: {
      if (data.length < 16) return { skip: 'short Linux cooked frame' };
      const t = sllType((data[0] << 8) | data[1]);
      const halen = (data[4] << 8) | data[5];
      const r = l3(ethertypeFamily((data[14] << 8) | data[15]), data, 16, origLength);
      if ('skip' in r) return r;
      const f: Frame = { ...r, direction: t.direction, pktType: t.pktType, otherHost: t.otherHost };
      if (halen === 6) f.srcMac = data.subarray(6, 12);
      return f;
    }
    case LINKTYPE.LINUX_SLL2: {
      if (data.length < 20) return { skip: 'short Linux cooked (v2) frame' };
      const t = sllType(data[10]);
      const r = l3(ethertypeFamily((data[0] << 8) | data[1]), data, 20, origLength);
      if ('skip' in r) return r;
      const f: Frame = { ...r, direction: t.direction, pktType: t.pktType, otherHost: t.otherHost };
      if (data[11] === 6) f.srcMac = data.subarray(12, 18);
      return f;
    }
    case LINKTYPE.RAW:
    case 12: // DLT_RAW on OpenBSD-derived writers
    case LINKTYPE.IPV4:
    case LINKTYPE.IPV6: {
      if (data.length < 1) return { skip: 'empty raw IP frame' };
      const v = data[0] >> 4;
      const r = l3(v === 4 ? 4 : v === 6 ? 6 : undefined, data, 0, origLength);
      if ('skip' in r) return r;
      return { ...r, pktType: 'unicast' };
    }
    case LINKTYPE.NULL: {
      if (data.length < 4) return { skip: 'short loopback frame' };
      // The AF_ value in the writer's byte order: 2 is AF_INET everywhere, AF_INET6 is 10, 24, 28 or 30.
      const af = data[0] !== 0 ? data[0] : data[3];
      const r = l3(af === 2 ? 4 : [10, 24, 28, 30].includes(af) ? 6 : undefined, data, 4, origLength);
      if ('skip' in r) return r;
      return { ...r, pktType: 'unicast' };
    }
    default:
      return { skip: `link type ${linktype} not supported` };
  }
}
