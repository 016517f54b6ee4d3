// Packets and checks for the connection table tests: crafted with the engine's packet builder, verified by full
// recomputation of every checksum (never by the incremental updates under test).
import assert from 'node:assert/strict';
import type { ConnTable, CtClassification, CtNatRequest } from '../../native/index';
import { crc32c, ipv4HeaderChecksum, transportChecksumValid } from '../../src/engine/checksum';
import { craftPacket, type CraftOptions } from '../../src/engine/craft';
import { parsePacket } from '../../src/engine/packet';
import { formatIpAddr, parseIpAddr } from '../../src/rules/addr';
import type { Family } from '../../src/rules/model';

export const PRE = 0;
export const IN = 1;
export const FWD = 2;
export const OUT = 3;
export const POST = 4;

export const SYN = 0x02;
export const ACK = 0x10;
export const FIN = 0x01;
export const RST = 0x04;
export const SYNACK = SYN | ACK;

export function addr(s: string): Uint8Array {
  const a = parseIpAddr(s, s.includes(':') ? 6 : 4);
  if (!a) throw new Error(`bad address ${s}`);
  return a;
}

export function fam(s: string): Family {
  return s.includes(':') ? 6 : 4;
}

export function tcp(src: string, sport: number, dst: string, dport: number, flags: number, seq = 1000, payload?: Uint8Array): Uint8Array {
  return craftPacket({ family: fam(src), src: addr(src), dst: addr(dst), proto: 6, sport, dport, tcpFlags: flags, seq, ack: flags & ACK ? 5000 : 0, payload });
}

export function udp(src: string, sport: number, dst: string, dport: number, payload = new Uint8Array([1, 2, 3, 4])): Uint8Array {
  return craftPacket({ family: fam(src), src: addr(src), dst: addr(dst), proto: 17, sport, dport, payload });
}

export function echo(src: string, dst: string, id: number, seq: number, reply = false): Uint8Array {
  const v6 = fam(src) === 6;
  const type = v6 ? (reply ? 129 : 128) : reply ? 0 : 8;
  return craftPacket({ family: fam(src), src: addr(src), dst: addr(dst), proto: v6 ? 58 : 1, icmpType: type, icmpRest: ((id << 16) | seq) >>> 0, payload: new Uint8Array([9, 8, 7, 6]) });
}

export function craft(o: CraftOptions): Uint8Array {
  return craftPacket(o);
}

/** An ICMP error from `from` to `to` quoting the first 28 (v4) / 48 (v6) bytes of `quoted`, as a router sends it. */
export function icmpError(from: string, to: string, quoted: Uint8Array, type?: number, code?: number): Uint8Array {
  const v6 = fam(from) === 6;
  const quote = quoted.slice(0, v6 ? 48 : 28);
  return craftPacket({ family: v6 ? 6 : 4, src: addr(from), dst: addr(to), proto: v6 ? 58 : 1, icmpType: type ?? (v6 ? 1 : 3), icmpCode: code ?? (v6 ? 4 : 3), payload: quote });
}

export interface Seen {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: number;
}

export function seen(p: Uint8Array): Seen {
  const f: Family = (p[0] >> 4) === 6 ? 6 : 4;
  const h = parsePacket(p, f);
  let sport = h.sport;
  let dport = h.dport;
  if (h.icmpType >= 0 && h.l4Offset >= 0) {
    sport = (p[h.l4Offset + 4] << 8) | p[h.l4Offset + 5];
    dport = (h.icmpType << 8) | h.icmpCode;
  }
  return { src: formatIpAddr(h.src), dst: formatIpAddr(h.dst), sport, dport, proto: h.protocol };
}

/** Every checksum of the packet, recomputed from scratch: IPv4 header, transport (or SCTP's CRC32c), and for an ICMP
 * error the quoted IPv4 header as well. */
export function assertChecksums(p: Uint8Array, what = 'packet'): void {
  const f: Family = (p[0] >> 4) === 6 ? 6 : 4;
  const h = parsePacket(p, f);
  assert.equal(h.truncated, false, `${what}: truncated`);
  if (f === 4) assert.equal(ipv4HeaderChecksum(p), (p[10] << 8) | p[11], `${what}: IPv4 header checksum`);
  if (h.protocol === 132) {
    const c = new Uint8Array(p.subarray(h.l4Offset));
    const stored = c[8] | (c[9] << 8) | (c[10] << 16) | ((c[11] << 24) >>> 0);
    c.fill(0, 8, 12);
    assert.equal(crc32c(c) >>> 0, stored >>> 0, `${what}: SCTP CRC32c`);
    return;
  }
  if ([6, 17, 1, 58].includes(h.protocol)) {
    assert.ok(transportChecksumValid(f, h.src, h.dst, h.protocol, p, h.l4Offset), `${what}: transport checksum`);
  }
  if ((h.protocol === 1 && [3, 11, 12].includes(h.icmpType)) && p.length >= h.l4Offset + 28) {
    const inner = p.subarray(h.l4Offset + 8);
    assert.equal(ipv4HeaderChecksum(inner), (inner[10] << 8) | inner[11], `${what}: quoted IPv4 header checksum`);
  }
}

export interface TripOptions {
  hook: number;
  ctPoint?: boolean;
  final?: boolean;
  accept?: boolean;
  nat?: CtNatRequest[];
  natRan?: ('SRC' | 'DST')[];
  connmark?: number;
  notrack?: boolean;
  /** The trip sent REJECT replies before its verdict. */
  replied?: boolean;
}

/** One trip through the queue as the daemon makes it: classify, then commit the verdict and translate in one step. */
export function trip(t: ConnTable, p: Uint8Array, o: TripOptions): { c: CtClassification; out: Uint8Array; ok: boolean } {
  const f: Family = (p[0] >> 4) === 6 ? 6 : 4;
  const c = t.classify(p, f, o.hook, { ctPoint: o.ctPoint ?? (o.hook === PRE || o.hook === OUT) });
  const r = t.finish(c, {
    accept: o.accept ?? true,
    final: o.final ?? (o.hook === POST || o.hook === IN),
    natRan: o.natRan ?? (c.state === 'NEW' && o.hook !== FWD ? [o.hook === PRE || o.hook === OUT ? 'DST' : 'SRC'] : []),
    nat: o.nat,
    connmark: o.connmark,
    notrack: o.notrack,
    replied: o.replied,
  }, p, f, o.hook);
  return { c, out: r.packet ?? p, ok: r.ok };
}

export interface ForwardResult {
  states: string[];
  out: Uint8Array;
  pre: CtClassification;
  ok: boolean;
}

/** PREROUTING (DST nat), FORWARD, POSTROUTING (SRC nat, confirmation) for a forwarded packet. */
export function forward(t: ConnTable, p: Uint8Array, dnat?: CtNatRequest, snat?: CtNatRequest): ForwardResult {
  const a = trip(t, p, { hook: PRE, nat: dnat ? [dnat] : undefined });
  if (!a.ok) return { states: [a.c.state], out: a.out, pre: a.c, ok: false };
  const b = trip(t, a.out, { hook: FWD });
  const c = trip(t, b.out, { hook: POST, nat: snat ? [snat] : undefined });
  return { states: [a.c.state, b.c.state, c.c.state], out: c.out, pre: a.c, ok: c.ok };
}

export { assert };
