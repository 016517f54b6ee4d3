// Test packets: what each one is (for the generator and for messages), how it is built, and how what comes back on
// the wire is traced to the packet that caused it.
import { craftPacket } from '../../src/engine/craft';
import { fold, ipv4HeaderChecksum, pseudoHeaderSum, transportChecksum, transportChecksumValid } from '../../src/engine/checksum';
import { CLIENT6_ADDRS, CLIENT_ADDRS, FW6_ADDRS, FW_ADDRS, SERVER6_ADDRS, SERVER_ADDRS, type Sender, type SendItem } from './harness';

/** Where a packet goes through fw: forwarded either way, to fw from either side, or from fw. */
export type Direction = 'fwd-cs' | 'fwd-sc' | 'in-c' | 'in-s' | 'out';
export const DIRECTIONS: readonly Direction[] = ['fwd-cs', 'fwd-sc', 'in-c', 'in-s', 'out'];

export interface PacketSpec {
  dir: Direction;
  src: string;
  dst: string;
  proto: number;
  sport: number;
  dport: number;
  /** TCP flags byte. */
  flags: number;
  icmpType: number;
  icmpCode: number;
  /** TTL as sent (a forwarded packet has one less in FORWARD and after). */
  ttl: number;
  tos: number;
  payloadLen: number;
  /** TCP options bytes (a multiple of 4 long). */
  tcpOptions?: number[];
  /** The payload as text (instead of payloadLen filler bytes). */
  payloadText?: string;
  /**
   * TCP sequence and acknowledgement numbers, for exchanges the kernel's window tracking must accept (by default
   * they carry the packet's index; forwarded packets are traced by their IP ID / flow label either way).
   */
  seq?: number;
  ack?: number;
}

const SEQ_BASE = 0x01000000;
const ACK_BASE = 0x02000000;
const STRIDE = 0x10000;
const ID_BASE = 0x1000;
const ECHO_ID = 0x4e51;

export function senderOf(dir: Direction): Sender {
  return dir === 'fwd-cs' || dir === 'in-c' ? 'client' : dir === 'out' ? 'fw' : 'server';
}

/** Source and destination pools for a direction (IPv4 unless `family` is 6). */
export function pools(dir: Direction, family: 4 | 6 = 4): { src: readonly string[]; dst: readonly string[] } {
  const [c, s, f] = family === 4 ? [CLIENT_ADDRS, SERVER_ADDRS, FW_ADDRS] : [CLIENT6_ADDRS, SERVER6_ADDRS, FW6_ADDRS];
  switch (dir) {
    case 'fwd-cs':
      return { src: c, dst: s };
    case 'fwd-sc':
      return { src: s, dst: c };
    case 'in-c':
      return { src: c, dst: f };
    case 'in-s':
      return { src: s, dst: f };
    case 'out':
      return { src: f, dst: [...c, ...s] };
  }
}

export function familyOf(address: string): 4 | 6 {
  return address.includes(':') ? 6 : 4;
}

/** fw's input and output interfaces for a packet (undefined: none at that point). */
export function interfacesOf(p: Pick<PacketSpec, 'dir' | 'dst'>): { in?: string; out?: string } {
  const toClient = p.dst.startsWith('198.18.') || (CLIENT6_ADDRS as readonly string[]).includes(p.dst);
  switch (p.dir) {
    case 'fwd-cs':
      return { in: 'to-client', out: 'to-server' };
    case 'fwd-sc':
      return { in: 'to-server', out: 'to-client' };
    case 'in-c':
      return { in: 'to-client' };
    case 'in-s':
      return { in: 'to-server' };
    case 'out':
      return { out: toClient ? 'to-client' : 'to-server' };
  }
}

/** The bytes of an IPv4 dotted quad or an IPv6 address (with at most one `::`). */
export function addrBytes(a: string): Uint8Array {
  if (!a.includes(':')) return new Uint8Array(a.split('.').map(Number));
  const [head, tail] = a.includes('::') ? (a.split('::') as [string, string]) : [a, undefined];
  const groups = (x: string | undefined): number[] => (x === undefined || x === '' ? [] : x.split(':').map((g) => parseInt(g, 16)));
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** Text of address bytes (IPv6 as eight groups, zeros stripped; enough for messages and comparisons). */
function addrText(b: Uint8Array): string {
  if (b.length === 4) return b.join('.');
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push((((b[i] ?? 0) << 8) | (b[i + 1] ?? 0)).toString(16));
  return g.join(':');
}

const FW_TEXT = new Set<string>([...FW_ADDRS, ...FW6_ADDRS.map((a) => addrText(addrBytes(a)))]);

function isIcmpError(proto: number, type: number): boolean {
  return proto === 58 ? type < 128 : type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/** An ICMP error's body: the start of a made-up original datagram (a UDP packet the other way). */
function icmpErrorBody(p: PacketSpec, len: number): Uint8Array {
  const family = familyOf(p.src);
  const inner = craftPacket({ family, src: addrBytes(p.dst), dst: addrBytes(p.src), proto: 17, sport: 5353, dport: 40000, id: 7, payload: new Uint8Array(8) });
  const out = new Uint8Array(len);
  out.set(inner.subarray(0, Math.min(len, inner.length)));
  return out;
}

/**
 * Builds packet number `index`: its IP ID (IPv4) or flow label (IPv6), TCP sequence numbers and echo sequence carry
 * the index, so whatever it causes on the wire can be traced back to it.
 */
export function build(p: PacketSpec, index: number): SendItem {
  const family = familyOf(p.src);
  const icmp = p.proto === 1 || p.proto === 58;
  const payload =
    p.payloadText !== undefined
      ? new Uint8Array(Buffer.from(p.payloadText))
      : icmp && isIcmpError(p.proto, p.icmpType)
        ? icmpErrorBody(p, p.payloadLen)
        : new Uint8Array(p.payloadLen).fill(0x61 + (index % 26));
  const bytes = craftPacket({
    family,
    src: addrBytes(p.src),
    dst: addrBytes(p.dst),
    proto: p.proto,
    sport: p.sport,
    dport: p.dport,
    tcpFlags: p.flags,
    ...(p.tcpOptions ? { tcpOptions: new Uint8Array(p.tcpOptions) } : {}),
    seq: p.seq ?? SEQ_BASE + index * STRIDE,
    ack: p.ack ?? (p.flags & 0x10 ? ACK_BASE + index * STRIDE : 0),
    icmpType: p.icmpType,
    icmpCode: p.icmpCode,
    icmpRest: icmp && !isIcmpError(p.proto, p.icmpType) ? ((ECHO_ID << 16) | (index & 0xffff)) >>> 0 : 0,
    ttl: p.ttl,
    tos: p.tos,
    id: ID_BASE + index,
    payload,
  });
  if (family === 6) {
    // The flow label is not covered by any checksum.
    const fl = ID_BASE + index;
    bytes[1] = ((bytes[1] ?? 0) & 0xf0) | ((fl >> 16) & 0x0f);
    bytes[2] = (fl >> 8) & 0xff;
    bytes[3] = fl & 0xff;
  }
  return { from: senderOf(p.dir), bytes };
}

export function describePacket(p: PacketSpec): string {
  const proto =
    p.proto === 6
      ? `tcp ${p.sport}>${p.dport} flags=0x${p.flags.toString(16)}${p.tcpOptions ? ` opts=${p.tcpOptions.length}` : ''}`
      : p.proto === 17
        ? `udp ${p.sport}>${p.dport}`
        : p.proto === 1 || p.proto === 58
          ? `icmp${p.proto === 58 ? 'v6' : ''} ${p.icmpType}/${p.icmpCode}`
          : `proto ${p.proto}`;
  return `${p.dir} ${p.src}>${p.dst} ${proto} ttl=${p.ttl} tos=${p.tos} len=${totalLength(p)}`;
}

/** Length of the IP packet (IPv4: the total length; the IPv6 header adds 20 more bytes than IPv4's). */
export function totalLength(p: Pick<PacketSpec, 'proto' | 'payloadLen' | 'tcpOptions' | 'payloadText'> & { src?: string }): number {
  const ip = p.src !== undefined && familyOf(p.src) === 6 ? 40 : 20;
  const l4 = p.proto === 6 ? 20 + (p.tcpOptions?.length ?? 0) : p.proto === 17 || p.proto === 1 || p.proto === 58 ? 8 : 0;
  return ip + l4 + (p.payloadText !== undefined ? Buffer.byteLength(p.payloadText) : p.payloadLen);
}

function r16(b: Uint8Array, o: number): number {
  return ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
}
function r32(b: Uint8Array, o: number): number {
  return (((b[o] ?? 0) << 24) | ((b[o + 1] ?? 0) << 16) | ((b[o + 2] ?? 0) << 8) | (b[o + 3] ?? 0)) >>> 0;
}

/** The fields of an IP packet the tracing and comparison need, for either family (IPv6 without extension headers). */
function fields(ip: Uint8Array): { family: 4 | 6; hl: number; proto: number; src: Uint8Array; dst: Uint8Array; tag: number; total: number } {
  if ((ip[0] ?? 0) >> 4 === 6) {
    return {
      family: 6, hl: 40, proto: ip[6] ?? 0, src: ip.subarray(8, 24), dst: ip.subarray(24, 40),
      tag: (((ip[1] ?? 0) & 0x0f) << 16) | r16(ip, 2), total: Math.min(40 + r16(ip, 4), ip.length),
    };
  }
  return {
    family: 4, hl: ((ip[0] ?? 0) & 0x0f) * 4, proto: ip[9] ?? 0, src: ip.subarray(12, 16), dst: ip.subarray(16, 20),
    tag: r16(ip, 4), total: Math.min(r16(ip, 2), ip.length),
  };
}

/** Whether `ip` carries the IP ID (IPv4) or flow label (IPv6) the harness gave test packet `index`. */
export function hasTestId(ip: Uint8Array, index: number): boolean {
  return fields(ip).tag === ID_BASE + index;
}

/** The index of the test packet that caused a packet seen on the wire, or -1 when it cannot tell. */
export function traceIndex(ip: Uint8Array, count: number): number {
  const ok = (i: number): number => (i >= 0 && i < count ? i : -1);
  const f = fields(ip);
  const fromFw = FW_TEXT.has(addrText(f.src));
  if (!fromFw && ok(f.tag - ID_BASE) >= 0) return f.tag - ID_BASE;
  const hl = f.hl;
  if (f.proto === 1 || f.proto === 58) {
    const type = ip[hl] ?? 0;
    if (isIcmpError(f.proto, type)) {
      const inner = fields(ip.subarray(hl + 8));
      if (ok(inner.tag - ID_BASE) >= 0) return inner.tag - ID_BASE;
    } else if (r16(ip, hl + 4) === ECHO_ID) return ok(r16(ip, hl + 6));
  }
  if (f.proto === 6) {
    const seq = r32(ip, hl + 4);
    const ack = r32(ip, hl + 8);
    if (seq >= ACK_BASE && ok(Math.floor((seq - ACK_BASE) / STRIDE)) >= 0) return Math.floor((seq - ACK_BASE) / STRIDE);
    if (ack >= SEQ_BASE && ack < ACK_BASE) return ok(Math.floor((ack - SEQ_BASE) / STRIDE));
  }
  if (fromFw && ok(f.tag - ID_BASE) >= 0) return f.tag - ID_BASE;
  return -1;
}

/**
 * The bytes compared. fw numbers the IPv4 packets it originates (ICMP errors, its own replies) from a per-boot random
 * secret, so for those the IP ID is zeroed and the header checksum (verified first) cleared.
 */
export function normalize(ip: Uint8Array, keepId: boolean): { hex: string; problems: string[] } {
  const problems: string[] = [];
  const b = ip.slice();
  const f = fields(b);
  const hl = f.hl;
  if (f.family === 4 && ipv4HeaderChecksum(b, hl) !== r16(b, 10)) problems.push('bad IP header checksum');
  const total = f.total;
  const proto = f.proto;
  const fragment = f.family === 4 && (r16(b, 6) & 0x3fff) !== 0;
  const l4 = proto === 6 || proto === 17 || proto === 1 || proto === 58;
  if (!fragment && l4 && total > hl) {
    const skip = proto === 17 && f.family === 4 && r16(b, hl + 6) === 0;
    const saddr = f.src;
    const daddr = f.dst;
    if (!skip && !transportChecksumValid(f.family, saddr, daddr, proto, b, hl, total)) {
      // veth hands a locally built TCP/UDP packet on with its checksum still partial (CHECKSUM_PARTIAL: only the
      // pseudo-header folded in), which is what the capture sees; the receiver never checks it. Complete it.
      const co = hl + (proto === 6 ? 16 : proto === 17 ? 6 : 2);
      const partial = proto === 6 || proto === 17 ? fold(pseudoHeaderSum(f.family, saddr, daddr, proto, total - hl)) : -1;
      if (partial >= 0 && (r16(b, co) === partial || r16(b, co) === (~partial & 0xffff))) {
        const full = transportChecksum(f.family, saddr, daddr, proto, b.subarray(0, total), hl);
        b[co] = full >> 8;
        b[co + 1] = full & 0xff;
      } else problems.push(`bad ${proto === 6 ? 'TCP' : proto === 17 ? 'UDP' : 'ICMP'} checksum`);
    }
  }
  if (f.family === 4 && proto === 1 && b[hl] === 14 && total >= hl + 20) {
    // A timestamp reply carries fw's clock (ms since midnight), which differs between the two sides.
    b.fill(0, hl + 12, hl + 20);
    b[hl + 2] = 0;
    b[hl + 3] = 0;
  }
  if (f.family === 6 && b[6] === 44 && total >= 48) {
    // fw reassembles fragments (conntrack's defrag, on both sides) and fragments them again on the way out with an
    // identification of its own (ipv6_select_ident: a hash keyed by a per-namespace random secret).
    b.fill(0, 44, 48);
  }
  if (f.family === 4 && FW_TEXT.has(addrText(f.src)) && !keepId) {
    b[4] = 0;
    b[5] = 0;
    b[10] = 0;
    b[11] = 0;
  }
  return { hex: Buffer.from(b.subarray(0, total)).toString('hex'), problems };
}

/** A short reading of a wire packet for messages. */
export function summarize(ip: Uint8Array): string {
  const f = fields(ip);
  const hl = f.hl;
  const hop = f.family === 4 ? ip[8] : ip[7];
  const s = `${addrText(f.src)}>${addrText(f.dst)} ttl=${hop} ${f.family === 4 ? 'id' : 'flow'}=0x${f.tag.toString(16)}`;
  switch (f.proto) {
    case 6:
      return `${s} tcp ${r16(ip, hl)}>${r16(ip, hl + 2)} flags=0x${(ip[hl + 13] ?? 0).toString(16)} seq=0x${r32(ip, hl + 4).toString(16)} ack=0x${r32(ip, hl + 8).toString(16)}`;
    case 17:
      return `${s} udp ${r16(ip, hl)}>${r16(ip, hl + 2)}`;
    case 1:
    case 58:
      return `${s} icmp${f.proto === 58 ? 'v6' : ''} ${ip[hl]}/${ip[hl + 1]}`;
    default:
      return `${s} proto ${f.proto}`;
  }
}
