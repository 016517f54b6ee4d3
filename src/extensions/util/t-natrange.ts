// NAT ranges as libxt_DNAT/SNAT/MASQUERADE/REDIRECT read and print them (iptables 1.8.9):
// `--to-destination [ip[-ip]][:port[-port[/baseport]]]` for IPv4, `[ip[-ip]]:port...` in brackets for IPv6,
// and `--to-ports port[-port]`.
import { AddrError, formatIpAddr, parseIpAddr } from '../../rules/addr';
import type { Family, SourceLocation } from '../../rules/model';
import { NameError, parsePort } from '../../rules/services';
import { RuleError, type ParseContext } from '../types';

export interface PortRange {
  min: number;
  max: number;
  /** /baseport (NF_NAT_RANGE_PROTO_OFFSET), DNAT only in effect. */
  base?: number;
}

export interface NatRange {
  /** Absent when only ports were given (`:80`). */
  minAddr?: Uint8Array;
  maxAddr?: Uint8Array;
  ports?: PortRange;
}

const PORT_PROTOS: Readonly<Record<number, string>> = { 6: 'tcp', 17: 'udp', 132: 'sctp', 33: 'dccp' };

/**
 * Ports need a protocol with ports (or ICMP, whose id the NAT core maps like one). The check looks at -p's number
 * only, not at `!`, as libxt_NAT does.
 */
function portProtoName(ctx: ParseContext, loc: SourceLocation): string | undefined {
  const p = ctx.proto?.value ?? 0;
  const icmp = ctx.family === 4 ? 1 : 58;
  if (p === icmp) return undefined;
  const name = PORT_PROTOS[p];
  if (name === undefined) throw new RuleError('Need TCP, UDP, SCTP or DCCP with port specification', loc);
  return name;
}

/** xtables_strtoui(base 0) on a prefix: the number and what follows it, or undefined without leading digits. */
function leadingUInt(s: string): { v: number; rest: string } | undefined {
  const m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/.exec(s);
  if (!m) return undefined;
  const t = m[1];
  const v = /^0[xX]/.test(t) ? parseInt(t.slice(2), 16) : t.length > 1 && t[0] === '0' ? parseInt(t.slice(1), 8) : Number(t);
  if (v > 65535) return undefined;
  return { v, rest: s.slice(t.length) };
}

/**
 * A number with whatever follows it, or else (first port only) the whole word as a service name, which then ends it.
 */
function portPart(word: string, proto: string | undefined, loc: SourceLocation, names = false): { v: number; rest: string } {
  const n = leadingUInt(word);
  if (n) return n;
  try {
    if (!names) throw new NameError('');
    if (word === '') throw new NameError('');
    return { v: parsePort(word, proto), rest: '' };
  } catch (e) {
    if (e instanceof NameError) throw new RuleError(`Port \`${word}' not valid`, loc);
    throw e;
  }
}

/** `port[-port[/base]]` (base only when allowBase), read as libxt_NAT's parse_ports does. */
export function parsePortRange(word: string, ctx: ParseContext, loc: SourceLocation, allowBase: boolean): PortRange {
  const proto = portProtoName(ctx, loc);
  const first = portPart(word, proto, loc, true);
  if (first.rest === '') return { min: first.v, max: first.v };
  if (!first.rest.startsWith('-')) throw new RuleError(`Garbage after port value: \`${first.rest}'`, loc);
  const second = first.rest.slice(1);
  const last = portPart(second, proto, loc);
  if (last.v < first.v) throw new RuleError(`Port range \`${second}' funky`, loc);
  if (last.rest === '') return { min: first.v, max: last.v };
  if (!allowBase || !last.rest.startsWith('/'))
    throw new RuleError(`Garbage after port range: \`${last.rest}'`, loc);
  const baseWord = last.rest.slice(1);
  const base = portPart(baseWord, proto, loc);
  if (base.rest !== '') throw new RuleError(`Port \`${baseWord}' not valid`, loc);
  return { min: first.v, max: last.v, base: base.v };
}

function addr(word: string, family: Family, whole: string, loc: SourceLocation): Uint8Array {
  const a = parseIpAddr(word, family);
  // A dotted quad as inet_pton takes it: four parts, no leading zeros.
  const strict = family === 6 || /^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}$/.test(word);
  if (!a || !strict) throw new RuleError(`Bad IP address "${whole}"`, loc);
  return a;
}

function addrRange(word: string, family: Family, loc: SourceLocation): Pick<NatRange, 'minAddr' | 'maxAddr'> {
  if (word === '') return {};
  const dash = word.indexOf('-');
  if (dash < 0) {
    const a = addr(word, family, word, loc);
    return { minAddr: a, maxAddr: a };
  }
  return { minAddr: addr(word.slice(0, dash), family, word, loc), maxAddr: addr(word.slice(dash + 1), family, word, loc) };
}

/** `--to-destination` / `--to-source`. */
export function parseNatRange(word: string, ctx: ParseContext, loc: SourceLocation, allowBase: boolean): NatRange {
  try {
    if (ctx.family === 4) {
      const colon = word.indexOf(':');
      const a = colon >= 0 ? word.slice(0, colon) : word;
      const out: NatRange = addrRange(a, 4, loc);
      if (colon >= 0) out.ports = parsePortRange(word.slice(colon + 1), ctx, loc, allowBase);
      return out;
    }
    if (!word.startsWith('[')) {
      // No brackets: all of it is an address (range); ports need the bracketed form.
      if (word.startsWith(':') && !word.startsWith('::')) {
        return { ports: parsePortRange(word.slice(1), ctx, loc, allowBase) };
      }
      return addrRange(word, 6, loc);
    }
    const close = word.indexOf(']');
    if (close < 0) throw new RuleError(`Invalid address format "${word}"`, loc);
    const out: NatRange = addrRange(word.slice(1, close), 6, loc);
    const rest = word.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) throw new RuleError(`Invalid address format "${word}"`, loc);
      out.ports = parsePortRange(rest.slice(1), ctx, loc, allowBase);
    }
    return out;
  } catch (e) {
    if (e instanceof AddrError) throw new RuleError(e.message, loc);
    throw e;
  }
}

function portText(p: PortRange, baseAsZero: boolean): string {
  let s = `${p.min}`;
  if (p.max !== p.min) s += `-${p.max}`;
  if (p.base !== undefined) s += `/${baseAsZero ? 0 : p.base}`;
  return s;
}

function sameAddr(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * As iptables-save prints it. `baseAsZero`: SNAT keeps the offset flag but the kernel drops the base, so
 * iptables-save shows `/0` there.
 */
export function formatNatRange(r: NatRange, family: Family, baseAsZero = false): string {
  let a = '';
  if (r.minAddr && r.maxAddr) {
    a = formatIpAddr(r.minAddr);
    if (!sameAddr(r.minAddr, r.maxAddr)) a += `-${formatIpAddr(r.maxAddr)}`;
  }
  if (!r.ports) return a;
  if (family === 6 && a !== '') a = `[${a}]`;
  return `${a}:${portText(r.ports, baseAsZero)}`;
}

/** `--to-ports port[-port]` for MASQUERADE and REDIRECT. */
export function parseToPorts(word: string, ctx: ParseContext, loc: SourceLocation): PortRange {
  return parsePortRange(word, ctx, loc, false);
}

export function formatPortRange(p: PortRange): string {
  return portText(p, false);
}
