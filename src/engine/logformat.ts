// The LOG target's line, field for field as net/netfilter/nf_log_syslog.c writes it (REFERENCE.md 3.5), without the
// KERN_SOH level marker (LogRecord carries the level). Every field ends with a space, as the kernel's do.
// The kernel's MAC= field prints the whole link-layer header (destination, source, ethertype), and --log-macdecode
// prints MACSRC/MACDST/MACPROTO; NFQUEUE hands over only the source address (NFQA_HWADDR), so nfqwall prints `MAC=`
// with the source address (or empty), and with --log-macdecode only `MACSRC=`. Everything after it is exact.
import type { PacketMeta, ParsedPacket } from '../extensions/types';

export interface LogFormatOptions {
  prefix: string;
  tcpSequence?: boolean;
  tcpOptions?: boolean;
  ipOptions?: boolean;
  uid?: boolean;
  macDecode?: boolean;
}

const hex2 = (b: number): string => b.toString(16).padStart(2, '0');
const HEX2 = (b: number): string => b.toString(16).toUpperCase().padStart(2, '0');

function mac(b: Uint8Array): string {
  return Array.from(b, hex2).join(':');
}

function ipv4(d: Uint8Array, o: number): string {
  return `${d[o]}.${d[o + 1]}.${d[o + 2]}.${d[o + 3]}`;
}

/** %pI6: eight groups of four hex digits, never compressed. */
function ipv6Full(d: Uint8Array, o: number): string {
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(hex2(d[o + i]) + hex2(d[o + i + 1]));
  return g.join(':');
}

class Buf {
  s = '';
  add(x: string): void {
    this.s += x;
  }
}

interface Ctx {
  d: Uint8Array;
  /** skb->len: the wire length of the whole packet. */
  len: number;
  opts: LogFormatOptions;
  meta: PacketMeta;
}

function u16(d: Uint8Array, o: number): number {
  return (d[o] << 8) | d[o + 1];
}
function u32(d: Uint8Array, o: number): number {
  return ((d[o] << 24) | (d[o + 1] << 16) | (d[o + 2] << 8) | d[o + 3]) >>> 0;
}
/** skb_header_pointer succeeds: the bytes are in the packet (and in our copy of it). */
function has(c: Ctx, off: number, n: number): boolean {
  return off >= 0 && off + n <= c.len && off + n <= c.d.length;
}

/** nf_log_dump_tcp_header; true when the caller must stop (the kernel's return 1). */
function tcp(m: Buf, c: Ctx, fragment: boolean, off: number): boolean {
  m.add('PROTO=TCP ');
  if (fragment) return false;
  if (!has(c, off, 20)) {
    m.add(`INCOMPLETE [${c.len - off} bytes] `);
    return true;
  }
  const d = c.d;
  m.add(`SPT=${u16(d, off)} DPT=${u16(d, off + 2)} `);
  if (c.opts.tcpSequence) m.add(`SEQ=${u32(d, off + 4)} ACK=${u32(d, off + 8)} `);
  m.add(`WINDOW=${u16(d, off + 14)} `);
  m.add(`RES=0x${hex2((d[off + 12] & 0x0e) << 2)} `);
  const f = d[off + 13];
  if (d[off + 12] & 0x01) m.add('AE ');
  if (f & 0x80) m.add('CWR ');
  if (f & 0x40) m.add('ECE ');
  if (f & 0x20) m.add('URG ');
  if (f & 0x10) m.add('ACK ');
  if (f & 0x08) m.add('PSH ');
  if (f & 0x04) m.add('RST ');
  if (f & 0x02) m.add('SYN ');
  if (f & 0x01) m.add('FIN ');
  m.add(`URGP=${u16(d, off + 18)} `);
  const doff = (d[off + 12] >> 4) * 4;
  if (c.opts.tcpOptions && doff > 20) {
    const optsize = doff - 20;
    if (!has(c, off + 20, optsize)) {
      m.add('OPT (TRUNCATED)');
      return true;
    }
    let s = 'OPT (';
    for (let i = 0; i < optsize; i++) s += HEX2(d[off + 20 + i]);
    m.add(s + ') ');
  }
  return false;
}

function udp(m: Buf, c: Ctx, proto: number, fragment: boolean, off: number): boolean {
  m.add(proto === 17 ? 'PROTO=UDP ' : 'PROTO=UDPLITE ');
  if (fragment) return false;
  if (!has(c, off, 8)) {
    m.add(`INCOMPLETE [${c.len - off} bytes] `);
    return true;
  }
  m.add(`SPT=${u16(c.d, off)} DPT=${u16(c.d, off + 2)} LEN=${u16(c.d, off + 4)} `);
  return false;
}

// required_len[] of dump_ipv4_packet: bytes an ICMP message of that type must hold to be printed in full.
const ICMP_REQUIRED: Record<number, number> = { 0: 4, 3: 28, 4: 28, 5: 28, 8: 4, 11: 28, 12: 28, 13: 20, 14: 20, 17: 12, 18: 12 };

function dumpIpv4(m: Buf, c: Ctx, iphoff: number): void {
  const d = c.d;
  if (!has(c, iphoff, 20)) {
    m.add('TRUNCATED');
    return;
  }
  m.add(`SRC=${ipv4(d, iphoff + 12)} DST=${ipv4(d, iphoff + 16)} `);
  const tos = d[iphoff + 1];
  m.add(
    `LEN=${u16(d, iphoff + 2)} TOS=0x${HEX2(tos & 0x1e)} PREC=0x${HEX2(tos & 0xe0)} TTL=${d[iphoff + 8]} ID=${u16(d, iphoff + 4)} `,
  );
  const fo = u16(d, iphoff + 6);
  if (fo & 0x8000) m.add('CE ');
  if (fo & 0x4000) m.add('DF ');
  if (fo & 0x2000) m.add('MF ');
  const frag = fo & 0x1fff;
  if (frag) m.add(`FRAG:${frag} `);
  const ihl = (d[iphoff] & 0x0f) * 4;
  if (c.opts.ipOptions && ihl > 20) {
    const optsize = ihl - 20;
    if (!has(c, iphoff + 20, optsize)) {
      m.add('TRUNCATED');
      return;
    }
    let s = 'OPT (';
    for (let i = 0; i < optsize; i++) s += HEX2(d[iphoff + 20 + i]);
    m.add(s + ') ');
  }
  const proto = d[iphoff + 9];
  const l4 = iphoff + ihl;
  switch (proto) {
    case 6:
      if (tcp(m, c, frag !== 0, l4)) return;
      break;
    case 17:
    case 136:
      if (udp(m, c, proto, frag !== 0, l4)) return;
      break;
    case 1: {
      m.add('PROTO=ICMP ');
      if (frag) break;
      if (!has(c, l4, 8)) {
        m.add(`INCOMPLETE [${c.len - l4} bytes] `);
        break;
      }
      const type = d[l4];
      const code = d[l4 + 1];
      m.add(`TYPE=${type} CODE=${code} `);
      const req = type <= 18 ? ICMP_REQUIRED[type] : undefined;
      if (req && c.len - l4 < req) {
        m.add(`INCOMPLETE [${c.len - l4} bytes] `);
        break;
      }
      switch (type) {
        case 0:
        case 8:
          m.add(`ID=${u16(d, l4 + 4)} SEQ=${u16(d, l4 + 6)} `);
          break;
        case 12:
          m.add(`PARAMETER=${d[l4 + 4]} `);
          break;
        case 5:
        case 3:
        case 4:
        case 11:
          if (type === 5) m.add(`GATEWAY=${ipv4(d, l4 + 4)} `);
          if (iphoff === 0) {
            m.add('[');
            dumpIpv4(m, c, l4 + 8);
            m.add('] ');
          }
          if (type === 3 && code === 4) m.add(`MTU=${u16(d, l4 + 6)} `);
          break;
      }
      break;
    }
    case 51: {
      if (frag) break;
      m.add('PROTO=AH ');
      if (!has(c, l4, 12)) {
        m.add(`INCOMPLETE [${c.len - l4} bytes] `);
        break;
      }
      m.add(`SPI=0x${u32(d, l4 + 4).toString(16)} `);
      break;
    }
    case 50: {
      m.add('PROTO=ESP ');
      if (frag) break;
      if (!has(c, l4, 8)) {
        m.add(`INCOMPLETE [${c.len - l4} bytes] `);
        break;
      }
      m.add(`SPI=0x${u32(d, l4).toString(16)} `);
      break;
    }
    default:
      m.add(`PROTO=${proto} `);
  }
  if (iphoff === 0) tail(m, c);
}

/** UID/GID (with --log-uid, when the packet has a local socket) and MARK, on the outer packet only. */
function tail(m: Buf, c: Ctx): void {
  if (c.opts.uid && c.meta.uid !== undefined) m.add(`UID=${c.meta.uid} GID=${c.meta.gid ?? 0} `);
  if (c.meta.mark >>> 0 !== 0) m.add(`MARK=0x${(c.meta.mark >>> 0).toString(16)} `);
}

// nf_ip6_ext_hdr(): hop-by-hop, routing, fragment, ESP, AH, none, destination options.
const V6_EXT = new Set([0, 43, 44, 50, 51, 59, 60]);

function dumpIpv6(m: Buf, c: Ctx, ip6hoff: number, recurse: boolean): void {
  const d = c.d;
  const ipopt = c.opts.ipOptions === true;
  if (!has(c, ip6hoff, 40)) {
    m.add('TRUNCATED');
    return;
  }
  m.add(`SRC=${ipv6Full(d, ip6hoff + 8)} DST=${ipv6Full(d, ip6hoff + 24)} `);
  const w = u32(d, ip6hoff);
  m.add(`LEN=${u16(d, ip6hoff + 4) + 40} TC=${(w & 0x0ff00000) >>> 20} HOPLIMIT=${d[ip6hoff + 7]} FLOWLBL=${w & 0xfffff} `);
  let fragment = false;
  let ptr = ip6hoff + 40;
  let cur = d[ip6hoff + 6];
  while (cur !== 59 && V6_EXT.has(cur)) {
    if (!has(c, ptr, 2)) {
      m.add('TRUNCATED');
      return;
    }
    if (ipopt) m.add('OPT ( ');
    let hdrlen: number;
    switch (cur) {
      case 44: {
        m.add('FRAG:');
        if (!has(c, ptr, 8)) {
          m.add('TRUNCATED ');
          return;
        }
        const fo = u16(d, ptr + 2);
        m.add(`${fo & 0xfff8} `);
        if (fo & 1) m.add('INCOMPLETE ');
        m.add(`ID:${u32(d, ptr + 4).toString(16).padStart(8, '0')} `);
        if (fo & 0xfff8) fragment = true;
        hdrlen = 8;
        break;
      }
      case 60:
      case 43:
      case 0:
        if (fragment) {
          if (ipopt) m.add(')');
          return;
        }
        hdrlen = (d[ptr + 1] + 1) << 3;
        break;
      case 51:
        if (ipopt) {
          m.add('AH ');
          if (fragment) {
            m.add(')');
            return;
          }
          if (!has(c, ptr, 12)) {
            m.add(`INCOMPLETE [${c.len - ptr} bytes] )`);
            return;
          }
          m.add(`SPI=0x${u32(d, ptr + 4).toString(16)} `);
        }
        hdrlen = (d[ptr + 1] + 2) << 2;
        break;
      default:
        // ESP (50): the rest is encrypted.
        if (ipopt) {
          m.add('ESP ');
          if (fragment) {
            m.add(')');
            return;
          }
          if (!has(c, ptr, 8)) {
            m.add(`INCOMPLETE [${c.len - ptr} bytes] )`);
            return;
          }
          m.add(`SPI=0x${u32(d, ptr).toString(16)} )`);
        }
        return;
    }
    if (ipopt) m.add(') ');
    cur = d[ptr];
    ptr += hdrlen;
  }
  switch (cur) {
    case 6:
      if (tcp(m, c, fragment, ptr)) return;
      break;
    case 17:
    case 136:
      if (udp(m, c, cur, fragment, ptr)) return;
      break;
    case 58: {
      m.add('PROTO=ICMPv6 ');
      if (fragment) break;
      if (!has(c, ptr, 8)) {
        m.add(`INCOMPLETE [${c.len - ptr} bytes] `);
        return;
      }
      const type = d[ptr];
      m.add(`TYPE=${type} CODE=${d[ptr + 1]} `);
      switch (type) {
        case 128:
        case 129:
          m.add(`ID=${u16(d, ptr + 4)} SEQ=${u16(d, ptr + 6)} `);
          break;
        case 4:
        case 1:
        case 2:
        case 3:
          if (type === 4) m.add(`POINTER=${u32(d, ptr + 4).toString(16).padStart(8, '0')} `);
          if (recurse) {
            m.add('[');
            dumpIpv6(m, c, ptr + 8, false);
            m.add('] ');
          }
          if (type === 2) m.add(`MTU=${u32(d, ptr + 4)} `);
          break;
      }
      break;
    }
    default:
      m.add(`PROTO=${cur} `);
  }
  if (recurse) tail(m, c);
}

export function formatLogLine(pkt: ParsedPacket, meta: PacketMeta, opts: LogFormatOptions): string {
  const m = new Buf();
  const inIf = meta.inIface ?? '';
  const outIf = meta.outIface ?? '';
  m.add(`${opts.prefix}IN=${inIf} OUT=${outIf} `);
  if (meta.physIn && meta.physIn !== inIf) m.add(`PHYSIN=${meta.physIn} `);
  if (meta.physOut && meta.physOut !== outIf) m.add(`PHYSOUT=${meta.physOut} `);
  if (meta.inIface) {
    if (opts.macDecode && meta.srcMac) m.add(`MACSRC=${mac(meta.srcMac)} `);
    else m.add(`MAC=${meta.srcMac ? mac(meta.srcMac) : ''} `);
  }
  const c: Ctx = { d: pkt.data, len: pkt.length, opts, meta };
  if (pkt.family === 4) dumpIpv4(m, c, 0);
  else dumpIpv6(m, c, 0, true);
  return m.s;
}
