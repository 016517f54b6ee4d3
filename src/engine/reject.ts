// REJECT's replies, built as net/ipv4/netfilter/nf_reject_ipv4.c + net/ipv4/icmp.c (__icmp_send) and
// net/ipv6/netfilter/nf_reject_ipv6.c + net/ipv6/icmp.c (icmp6_send) build them.
//
// What the kernel decides by routing is a parameter here:
// - `from`: the source of an ICMP error. The kernel uses the original destination when the packet was addressed to
//   this host (RTCF_LOCAL / ipv6_chk_addr); otherwise (forwarded) it lets the route lookup towards the original source
//   pick one, which is the address of the interface the error leaves by. Pass that address for forwarded packets;
//   without it the original destination is used. TCP resets always come from the original destination.
// - TTL / hop limit: the route's hoplimit metric or the sysctl default (64).
// - IPv4 identification of an ICMP error: the kernel's ip_select_ident() hash (DF is clear), not predictable from
//   userspace; 0 unless given. Resets have ID 0 and DF, as the kernel sets them.
// - IPv6 flow label of an ICMPv6 error: the automatic flow label (a flow hash) when auto_flowlabels is on; 0 unless
//   given. Resets have flow label 0.
// Not modelled: ICMP rate limits (icmp_ratelimit, icmp_msgs_per_sec), echoing IPv4 options (RR/TS/SRR) into the
// error, and routes with an MTU below 576 (IPv4) or 1280 (IPv6).
import type { PacketMeta, ParsedPacket } from '../extensions/types';
import { fixIpv4HeaderChecksum, transportChecksum, transportChecksumValid, write16 } from './checksum';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from './packet';

export type RejectKind =
  | 'icmp-net-unreachable'
  | 'icmp-host-unreachable'
  | 'icmp-port-unreachable'
  | 'icmp-proto-unreachable'
  | 'icmp-net-prohibited'
  | 'icmp-host-prohibited'
  | 'icmp-admin-prohibited'
  | 'icmp6-no-route'
  | 'icmp6-adm-prohibited'
  | 'icmp6-addr-unreachable'
  | 'icmp6-port-unreachable'
  | 'icmp6-policy-fail'
  | 'icmp6-reject-route'
  | 'tcp-reset';

/** ICMP destination-unreachable codes (ipt_REJECT.c / ip6t_REJECT.c). */
const V4_CODE: Partial<Record<RejectKind, number>> = {
  'icmp-net-unreachable': 0,
  'icmp-host-unreachable': 1,
  'icmp-proto-unreachable': 2,
  'icmp-port-unreachable': 3,
  'icmp-net-prohibited': 9, // ICMP_NET_ANO
  'icmp-host-prohibited': 10, // ICMP_HOST_ANO
  'icmp-admin-prohibited': 13, // ICMP_PKT_FILTERED
};
const V6_CODE: Partial<Record<RejectKind, number>> = {
  'icmp6-no-route': 0,
  'icmp6-adm-prohibited': 1,
  'icmp6-addr-unreachable': 3,
  'icmp6-port-unreachable': 4,
  'icmp6-policy-fail': 5,
  'icmp6-reject-route': 6,
};

export interface RejectOptions {
  /** TTL / hop limit of the reply (default 64, net.ipv4.ip_default_ttl / net.ipv6.conf.*.hop_limit). */
  ttl?: number;
  /** IPv4 identification of an ICMP error (default 0). */
  ipId?: number;
  /** IPv6 flow label of an ICMPv6 error (default 0). */
  flowLabel?: number;
  /**
   * Whether to refuse to answer a packet whose transport checksum is wrong, as nf_ip_checksum does for packets whose
   * checksum the kernel has not already validated. Default: true except at OUTPUT and POSTROUTING, where local packets
   * carry CHECKSUM_PARTIAL and the kernel does not check. Pass false when the queue said the checksum is not ready.
   */
  verifyChecksum?: boolean;
}

const DEFAULT_TTL = 64;

function isErrorIcmpType(t: number): boolean {
  // icmp_pointers[].error, and "any unknown ICMP type is an error" (> NR_ICMP_TYPES = 18).
  return t > 18 || t === 1 || t === 2 || t === 3 || t === 4 || t === 5 || t === 6 || t === 7 || t === 9 || t === 10 || t === 11 || t === 12;
}

function v4Multicast(a: Uint8Array): boolean {
  return (a[0] & 0xf0) === 0xe0;
}
function v4LimitedBroadcast(a: Uint8Array): boolean {
  return a[0] === 255 && a[1] === 255 && a[2] === 255 && a[3] === 255;
}
function v6Unspecified(a: Uint8Array): boolean {
  return a.every((b) => b === 0);
}

function shouldVerify(meta: PacketMeta, opts: RejectOptions | undefined): boolean {
  if (opts?.verifyChecksum !== undefined) return opts.verifyChecksum;
  return meta.hook !== 'OUTPUT' && meta.hook !== 'POSTROUTING';
}

/**
 * Whether the transport checksum is acceptable for nf_reject (nf_reject_verify_csum + nf_ip_checksum): protocols
 * without a full one's-complement checksum (SCTP, DCCP, UDP-Lite, AH, ESP, GRE) and UDP with a zero checksum are not
 * checked. The checksum covers the whole packet, so a truncated copy cannot be checked and is taken as good.
 */
function checksumOk(pkt: ParsedPacket, l4Off: number): boolean {
  const p = pkt.protocol;
  if (p === 132 || p === 33 || p === 136 || p === 50 || p === 51 || p === 47) return true;
  if (pkt.data.length < pkt.length) return true;
  if (p === IPPROTO_UDP) {
    if (l4Off + 8 > pkt.data.length) return true;
    if (pkt.data[l4Off + 6] === 0 && pkt.data[l4Off + 7] === 0) return true;
  }
  if (p !== IPPROTO_TCP && p !== IPPROTO_UDP && p !== IPPROTO_ICMP && p !== IPPROTO_ICMPV6) {
    // Other protocols: nf_ip_checksum sums the payload alone (csum 0 start) and expects it to fold to zero;
    // nothing standard relies on that, so accept.
    return true;
  }
  return transportChecksumValid(pkt.family, pkt.src, pkt.dst, p, pkt.data, l4Off, pkt.length);
}

/**
 * The reply REJECT sends for this packet, or undefined when the kernel would send none (a non-first fragment, an
 * ICMP error about an ICMP error, a broadcast or multicast, a RST, a bad checksum, a truncated header).
 */
export function buildReject(
  pkt: ParsedPacket,
  meta: PacketMeta,
  kind: RejectKind,
  from?: Uint8Array,
  opts?: RejectOptions,
): Uint8Array | undefined {
  if (pkt.l3HeaderLength === 0) return undefined;
  if (kind === 'tcp-reset') return pkt.family === 4 ? reset4(pkt, meta, opts) : reset6(pkt, meta, opts);
  if (pkt.family === 4) {
    const code = V4_CODE[kind];
    return code === undefined ? undefined : unreach4(pkt, meta, code, from, opts);
  }
  const code = V6_CODE[kind];
  return code === undefined ? undefined : unreach6(pkt, meta, code, from, opts);
}

function unreach4(
  pkt: ParsedPacket,
  meta: PacketMeta,
  code: number,
  from: Uint8Array | undefined,
  opts: RejectOptions | undefined,
): Uint8Array | undefined {
  const d = pkt.data;
  if (pkt.fragOffset !== 0) return undefined;
  if (meta.pktType !== 'unicast') return undefined;
  if (v4Multicast(pkt.dst) || v4LimitedBroadcast(pkt.dst)) return undefined;
  const ihl = pkt.l3HeaderLength;
  if (pkt.protocol === IPPROTO_ICMP) {
    if (ihl >= d.length) return undefined; // the inner type cannot be read
    if (isErrorIcmpType(d[ihl])) return undefined;
  }
  if (shouldVerify(meta, opts) && !checksumOk(pkt, ihl)) return undefined;
  // "Return as much as we can without exceeding 576 bytes": 576 − IP header − ICMP header.
  const quoteLen = Math.min(pkt.length, d.length, 576 - 20 - 8);
  const out = new Uint8Array(20 + 8 + quoteLen);
  out[0] = 0x45;
  // tos = RT_TOS(tos) | IPTOS_PREC_INTERNETCONTROL
  out[1] = (pkt.tos & 0x1e) | 0xc0;
  write16(out, 2, out.length);
  write16(out, 4, (opts?.ipId ?? 0) & 0xffff);
  out[8] = opts?.ttl ?? DEFAULT_TTL;
  out[9] = IPPROTO_ICMP;
  out.set(from ?? pkt.dst, 12);
  out.set(pkt.src, 16);
  fixIpv4HeaderChecksum(out);
  out[20] = 3; // ICMP_DEST_UNREACH
  out[21] = code;
  out.set(d.subarray(0, quoteLen), 28);
  write16(out, 22, transportChecksum(4, out.subarray(12, 16), out.subarray(16, 20), IPPROTO_ICMP, out, 20));
  return out;
}

function reset4(pkt: ParsedPacket, meta: PacketMeta, opts: RejectOptions | undefined): Uint8Array | undefined {
  const d = pkt.data;
  if (pkt.fragOffset !== 0 || pkt.protocol !== IPPROTO_TCP) return undefined;
  const th = pkt.l3HeaderLength;
  if (th + 20 > d.length) return undefined;
  if (d[th + 13] & 0x04) return undefined; // no RST for a RST
  if (shouldVerify(meta, opts) && !checksumOk(pkt, th)) return undefined;
  // nf_send_reset looks at the route (RTCF_BROADCAST|RTCF_MULTICAST), not at the link-layer packet type.
  if (v4Multicast(pkt.dst) || v4LimitedBroadcast(pkt.dst)) return undefined;
  const out = new Uint8Array(40);
  out[0] = 0x45;
  write16(out, 2, 40);
  out[6] = 0x40; // DF, id 0, tos 0
  out[8] = opts?.ttl ?? DEFAULT_TTL;
  out[9] = IPPROTO_TCP;
  out.set(pkt.dst, 12);
  out.set(pkt.src, 16);
  fixIpv4HeaderChecksum(out);
  fillReset(out, 20, d, th, pkt.length - th);
  write16(out, 36, transportChecksum(4, pkt.dst, pkt.src, IPPROTO_TCP, out, 20));
  return out;
}

/** The RST segment of nf_reject_ip{,6}_tcphdr_put; `segLen` is the original TCP segment length. */
function fillReset(out: Uint8Array, o: number, d: Uint8Array, th: number, segLen: number): void {
  out.set(d.subarray(th + 2, th + 4), o); // source = original dest
  out.set(d.subarray(th, th + 2), o + 2);
  out[o + 12] = 5 << 4;
  const flags = d[th + 13];
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const odv = new DataView(d.buffer, d.byteOffset, d.byteLength);
  if (flags & 0x10) {
    dv.setUint32(o + 4, odv.getUint32(th + 8)); // seq = the ACK we were sent
    out[o + 13] = 0x04;
  } else {
    const syn = flags & 0x02 ? 1 : 0;
    const fin = flags & 0x01 ? 1 : 0;
    const doff = (d[th + 12] >> 4) * 4;
    dv.setUint32(o + 8, (odv.getUint32(th + 4) + syn + fin + segLen - doff) >>> 0);
    out[o + 13] = 0x14; // RST|ACK
  }
}

function v6Multicast(a: Uint8Array): boolean {
  return a[0] === 0xff;
}

function unreach6(
  pkt: ParsedPacket,
  meta: PacketMeta,
  code: number,
  from: Uint8Array | undefined,
  opts: RejectOptions | undefined,
): Uint8Array | undefined {
  const d = pkt.data;
  // reject6_csum_ok: the transport header must be found, in a first fragment, inside the packet.
  if (pkt.fragOffset !== 0 || pkt.truncated && pkt.l4Offset < 0) return undefined;
  const thoff = pkt.l3HeaderLength;
  if (thoff >= pkt.length) return undefined;
  if (shouldVerify(meta, opts) && !checksumOk(pkt, thoff)) return undefined;
  if (v6Multicast(pkt.dst) || meta.pktType !== 'unicast') return undefined;
  if (v6Unspecified(pkt.src) || v6Multicast(pkt.src)) return undefined;
  // is_ineligible: never answer an ICMPv6 error (types below 128) or an ICMPv6 header we cannot read.
  if (pkt.protocol === IPPROTO_ICMPV6) {
    if (thoff >= d.length) return undefined;
    if ((d[thoff] & 0x80) === 0) return undefined;
  }
  const quoteLen = Math.min(pkt.length, d.length, 1280 - 40 - 8);
  const out = new Uint8Array(40 + 8 + quoteLen);
  const fl = (opts?.flowLabel ?? 0) & 0xfffff;
  out[0] = 0x60;
  out[1] = fl >> 16;
  write16(out, 2, fl & 0xffff);
  write16(out, 4, 8 + quoteLen);
  out[6] = IPPROTO_ICMPV6;
  out[7] = opts?.ttl ?? DEFAULT_TTL;
  const src = from ?? pkt.dst;
  out.set(src, 8);
  out.set(pkt.src, 24);
  out[40] = 1; // ICMPV6_DEST_UNREACH
  out[41] = code;
  out.set(d.subarray(0, quoteLen), 48);
  write16(out, 42, transportChecksum(6, src, pkt.src, IPPROTO_ICMPV6, out, 40));
  return out;
}

function reset6(pkt: ParsedPacket, meta: PacketMeta, opts: RejectOptions | undefined): Uint8Array | undefined {
  const d = pkt.data;
  if (v6Multicast(pkt.src) || v6Unspecified(pkt.src) || v6Multicast(pkt.dst) || v6Unspecified(pkt.dst)) return undefined;
  if (pkt.protocol !== IPPROTO_TCP || pkt.fragOffset !== 0 || pkt.l4Offset < 0) return undefined;
  const th = pkt.l4Offset;
  const segLen = pkt.length - th;
  if (segLen < 20 || th + 20 > d.length) return undefined;
  if (d[th + 13] & 0x04) return undefined;
  if (shouldVerify(meta, opts) && !checksumOk(pkt, th)) return undefined;
  const out = new Uint8Array(60);
  out[0] = 0x60;
  write16(out, 4, 20);
  out[6] = IPPROTO_TCP;
  out[7] = opts?.ttl ?? DEFAULT_TTL;
  out.set(pkt.dst, 8);
  out.set(pkt.src, 24);
  fillReset(out, 40, d, th, segLen);
  write16(out, 56, transportChecksum(6, pkt.dst, pkt.src, IPPROTO_TCP, out, 40));
  return out;
}
