// Port ranges as the tcp/udp/sctp matches read and print them (xtables_parse_port, parse_ports in libxt_tcp.c).
import { NameError, parsePort } from '../../rules/services';
import type { OptionUse, ParsedPacket } from '../types';
import { badArg } from './opts';

export interface PortRange {
  min: number;
  max: number;
}

export const ALL_PORTS: Readonly<PortRange> = { min: 0, max: 65535 };

function port(use: OptionUse, word: string, proto: string): number {
  try {
    return parsePort(word, proto);
  } catch (e) {
    if (e instanceof NameError) badArg(use, e.message);
    throw e;
  }
}

/** `a`, `a:b`, `:b` (from 0), `a:` (to 65535), `:` (all): libxt_tcp's parse_tcp_ports. */
export function parsePortRange(use: OptionUse, proto: string): PortRange {
  const word = use.args[0] ?? '';
  const i = word.indexOf(':');
  if (i < 0) {
    const p = port(use, word, proto);
    return { min: p, max: p };
  }
  const a = word.slice(0, i);
  const b = word.slice(i + 1);
  const min = a === '' ? 0 : port(use, a, proto);
  const max = b === '' ? 65535 : port(use, b, proto);
  if (min > max) badArg(use, 'invalid portrange (min > max)');
  return { min, max };
}

export function isAllPorts(r: PortRange): boolean {
  return r.min === 0 && r.max === 65535;
}

/** `a` or `a:b`, as tcp_save prints a range. */
export function formatPortRange(r: PortRange): string {
  return r.min === r.max ? `${r.min}` : `${r.min}:${r.max}`;
}

/** xt_tcpudp port_match: inside the range, XOR the inversion. */
export function portInRange(r: PortRange, p: number, invert: boolean): boolean {
  return (p >= r.min && p <= r.max) !== invert;
}

/**
 * Where the transport header starts when `need` bytes of it can be read, or -1: later fragments have none, and a
 * packet cut short has too few bytes (the engine leaves l4Offset unset then, but l3HeaderLength still points there).
 */
export function transportStart(pkt: ParsedPacket, need: number): number {
  if (pkt.fragOffset !== 0) return -1;
  const off = pkt.l4Offset >= 0 ? pkt.l4Offset : pkt.l3HeaderLength;
  if (off <= 0 || off + need > pkt.data.length) return -1;
  return off;
}

/**
 * The ports of the packet as the xt matches (multiport, sctp, the xt tcp/udp) read them: undefined for a later
 * fragment (no match) or when their header is cut short (the kernel's hotdrop, which the caller reports).
 */
export function xtPorts(pkt: ParsedPacket, need: number): { sport: number; dport: number } | 'fragment' | 'short' {
  if (pkt.fragOffset !== 0) return 'fragment';
  const off = transportStart(pkt, need);
  if (off < 0) return 'short';
  const d = pkt.data;
  return { sport: (d[off] << 8) | d[off + 1], dport: (d[off + 2] << 8) | d[off + 3] };
}

export interface PortTest {
  sport: PortRange;
  sportInvert: boolean;
  dport: PortRange;
  dportInvert: boolean;
}

/** No port test at all: what iptables-nft's tcp_all_zero/udp_all_zero check before falling back to the xt match. */
export function noPortTest(t: PortTest): boolean {
  return isAllPorts(t.sport) && isAllPorts(t.dport) && !t.sportInvert && !t.dportInvert;
}

/**
 * The port compares iptables-nft 1.8.9 loads into the kernel for tcp/udp (add_nft_tcpudp), on ports read from the
 * packet: full ranges emit nothing (even inverted); two single ports with the same inversion become ONE 4-byte
 * compare, so `! --sport 6 ! --dport 5` matches unless both ports are equal, where xt_tcpudp would need both to
 * differ. nfqwall follows the kernel it is tested against; checked with `iptables -vvv` on 1.8.9.
 */
export function nftPortsMatch(t: PortTest, sport: number, dport: number): boolean {
  const sOn = !isAllPorts(t.sport);
  const dOn = !isAllPorts(t.dport);
  if (sOn && dOn && t.sport.min === t.sport.max && t.dport.min === t.dport.max && t.sportInvert === t.dportInvert)
    return (sport === t.sport.min && dport === t.dport.min) !== t.sportInvert;
  if (sOn && !portInRange(t.sport, sport, t.sportInvert)) return false;
  if (dOn && !portInRange(t.dport, dport, t.dportInvert)) return false;
  return true;
}

/**
 * A port as libxtables' XTTYPE_PORT/PORTRC reads it (udp, conntrack's --ct*port): getaddrinfo's service lookup, so
 * decimal only, truncated to 16 bits as htons does (70000 is 4464), or a service name of any protocol.
 */
export function parseServicePort(use: OptionUse, word: string): number {
  if (/^[0-9]+$/.test(word)) return Number(BigInt(word) & 0xffffn);
  if (!/^[0-9]/.test(word) && word !== '') {
    try {
      return parsePort(word);
    } catch (e) {
      if (!(e instanceof NameError)) throw e;
    }
  }
  return badArg(use, `Port "${word}" does not resolve to anything.`);
}

/** XTTYPE_PORTRC: `a`, `a:b`, `:b`, `a:`, with no min <= max check (a reversed range then never matches). */
export function parseServicePortRange(use: OptionUse): PortRange {
  const w = use.args[0] ?? '';
  const i = w.indexOf(':');
  if (i < 0) {
    const p = parseServicePort(use, w);
    return { min: p, max: p };
  }
  const a = w.slice(0, i);
  const b = w.slice(i + 1);
  return { min: a === '' ? 0 : parseServicePort(use, a), max: b === '' ? 65535 : parseServicePort(use, b) };
}
