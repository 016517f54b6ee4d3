// The internet checksum (RFC 1071), its incremental update (RFC 1624 eqn. 3, as the kernel's inet_proto_csum_replace
// does), the IPv4 header checksum, and the pseudo-header sums TCP, UDP, UDP-Lite, DCCP and ICMPv6 cover.
import type { Family } from '../rules/model';

/** One's-complement sum of 16-bit big-endian words of data[start, end), not folded. An odd tail is padded with 0. */
export function sum16(data: Uint8Array, start: number, end: number, initial = 0): number {
  let s = initial;
  let i = start;
  const last = Math.min(end, data.length);
  for (; i + 1 < last; i += 2) s += (data[i] << 8) | data[i + 1];
  if (i < last) s += data[i] << 8;
  // Fold now and then so the sum stays a small integer on long packets.
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value for data[start, end): the complement of the folded sum. */
export function internetChecksum(data: Uint8Array, start = 0, end = data.length, initial = 0): number {
  return ~fold(sum16(data, start, end, initial)) & 0xffff;
}

export function read16(d: Uint8Array, off: number): number {
  return (d[off] << 8) | d[off + 1];
}

export function write16(d: Uint8Array, off: number, v: number): void {
  d[off] = (v >>> 8) & 0xff;
  d[off + 1] = v & 0xff;
}

/** RFC 1624 eqn. 3: the checksum after one 16-bit word changed from `oldWord` to `newWord`. */
export function csumUpdate16(check: number, oldWord: number, newWord: number): number {
  return ~fold((~check & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)) & 0xffff;
}

/**
 * Incrementally updates the checksum stored at data[checkOff] for the change of `oldBytes` to `newBytes` (same even
 * length, 16-bit aligned relative to the checksummed area).
 */
export function csumReplace(data: Uint8Array, checkOff: number, oldBytes: Uint8Array, newBytes: Uint8Array): void {
  let s = ~read16(data, checkOff) & 0xffff;
  for (let i = 0; i + 1 < oldBytes.length; i += 2) {
    s += (~((oldBytes[i] << 8) | oldBytes[i + 1]) & 0xffff) + ((newBytes[i] << 8) | newBytes[i + 1]);
  }
  write16(data, checkOff, ~fold(s) & 0xffff);
}

/** The IPv4 header checksum over the header of length `ihl` bytes, with the checksum field taken as zero. */
export function ipv4HeaderChecksum(data: Uint8Array, ihl = (data[0] & 0x0f) * 4): number {
  const s = sum16(data, 0, 10) + sum16(data, 12, ihl);
  return ~fold(s) & 0xffff;
}

export function fixIpv4HeaderChecksum(data: Uint8Array): void {
  write16(data, 10, ipv4HeaderChecksum(data));
}

/** The unfolded sum of the pseudo-header: addresses, protocol and upper-layer length (RFC 793 / RFC 8200 8.1). */
export function pseudoHeaderSum(family: Family, src: Uint8Array, dst: Uint8Array, proto: number, len: number): number {
  let s = sum16(src, 0, src.length) + sum16(dst, 0, dst.length) + proto;
  if (family === 4) s += len & 0xffff;
  else s += Math.floor(len / 0x10000) + (len & 0xffff);
  return fold(s);
}

/** Where the checksum field sits in each transport header that has one covering a pseudo-header. */
export function l4ChecksumOffset(family: Family, proto: number): number {
  switch (proto) {
    case 6:
      return 16;
    case 17:
    case 136:
    case 33:
      return 6;
    case 58:
      return family === 6 ? 2 : -1;
    case 1:
      return family === 4 ? 2 : -1;
    default:
      return -1;
  }
}

/**
 * The full checksum of the transport segment data[l4Off, end) with its checksum field taken as zero: the value the
 * field must hold. ICMP (v4) has no pseudo-header. UDP-Lite and DCCP are computed over the whole segment here
 * (checksum coverage = all), which is what their senders use by default.
 */
export function transportChecksum(
  family: Family,
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  data: Uint8Array,
  l4Off: number,
  end = data.length,
): number {
  const co = l4ChecksumOffset(family, proto);
  const len = end - l4Off;
  let s = proto === 1 && family === 4 ? 0 : pseudoHeaderSum(family, src, dst, proto, len);
  s += sum16(data, l4Off, l4Off + co) + sum16(data, l4Off + co + 2, end);
  // A computed UDP checksum of 0 is sent as 0xffff (RFC 768); for the others 0 and 0xffff are equivalent.
  const c = ~fold(s) & 0xffff;
  return c === 0 && proto === 17 ? 0xffff : c;
}

/** Whether the checksum stored in data[l4Off, end) verifies (sums to 0xffff with the pseudo-header). */
export function transportChecksumValid(
  family: Family,
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  data: Uint8Array,
  l4Off: number,
  end = data.length,
): boolean {
  const len = end - l4Off;
  const s = proto === 1 && family === 4 ? 0 : pseudoHeaderSum(family, src, dst, proto, len);
  return fold(s + sum16(data, l4Off, end)) === 0xffff;
}

// CRC32c (Castagnoli), reflected, for SCTP's checksum (RFC 4960 appendix B).
let crcTable: Uint32Array | undefined;
export function crc32c(data: Uint8Array, start = 0, end = data.length): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = crcTable[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
