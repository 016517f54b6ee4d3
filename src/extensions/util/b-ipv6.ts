// IPv6 extension header lookup shared by rt, frag and ipv6header (ipv6_find_hdr over ParsedPacket.extHeaders).
import type { ParsedPacket } from '../types';

/** The first extension header of `type`, or undefined (the kernel's -ENOENT). */
export function findExtHeader(pkt: ParsedPacket, type: number): { offset: number; length: number } | undefined {
  return pkt.extHeaders.find((h) => h.type === type);
}

/** The range test of rt/frag/mh: `(min <= v && v <= max) ^ invert`. */
export function inRange(min: number, max: number, v: number, invert: boolean): boolean {
  return (min <= v && v <= max) !== invert;
}
