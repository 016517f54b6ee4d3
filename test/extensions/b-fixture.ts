// Packet and context fixtures for the part-B match tests: real header bytes, so matches that read `data`
// (u32, string, tcpmss, rt, frag) see what the kernel would.
import assert from 'node:assert/strict';
import { parseIpAddr } from '../../src/rules/addr';
import type { KernelCase } from './b-kernel-cases';
import type { Family, SourceLocation } from '../../src/rules/model';
import { RuleError } from '../../src/extensions/types';
import type {
  MatchContext,
  MatchExtension,
  OptionUse,
  ParseContext,
  ParsedPacket,
  PacketMeta,
} from '../../src/extensions/types';

export interface PacketSpec {
  family?: Family;
  src?: string;
  dst?: string;
  proto?: number; // 6 tcp, 17 udp, other: payload only
  sport?: number;
  dport?: number;
  tos?: number;
  ttl?: number;
  ipId?: number;
  tcpFlags?: number;
  tcpOptions?: number[];
  payload?: string | number[];
  /** IPv6 extension headers before the transport header: type and body (without the next-header byte). */
  ext?: { type: number; body: number[] }[];
}

function addr(text: string, family: Family): Uint8Array {
  const a = parseIpAddr(text, family);
  if (!a) throw new Error(`fixture: bad address ${text}`);
  return a;
}

export function packet(spec: PacketSpec = {}): ParsedPacket {
  const family = spec.family ?? 4;
  const proto = spec.proto ?? 6;
  const src = addr(spec.src ?? (family === 4 ? '198.18.0.1' : '2001:db8::1'), family);
  const dst = addr(spec.dst ?? (family === 4 ? '198.18.0.2' : '2001:db8::2'), family);
  const payload = typeof spec.payload === 'string' ? [...Buffer.from(spec.payload, 'latin1')] : (spec.payload ?? []);
  const sport = spec.sport ?? 40000;
  const dport = spec.dport ?? 80;
  let l4: number[] = [];
  if (proto === 6) {
    const opts = [...(spec.tcpOptions ?? [])];
    while (opts.length % 4) opts.push(0);
    const doff = 5 + opts.length / 4;
    l4 = [
      sport >> 8,
      sport & 255,
      dport >> 8,
      dport & 255,
      0,
      0,
      0,
      1,
      0,
      0,
      0,
      0,
      doff << 4,
      spec.tcpFlags ?? 0x02,
      0xff,
      0xff,
      0,
      0,
      0,
      0,
      ...opts,
    ];
  } else if (proto === 17) {
    const len = 8 + payload.length;
    l4 = [sport >> 8, sport & 255, dport >> 8, dport & 255, len >> 8, len & 255, 0, 0];
  }
  const tos = spec.tos ?? 0;
  const ttl = spec.ttl ?? 64;
  const extHeaders: ParsedPacket['extHeaders'] = [];
  let bytes: number[];
  let l3len: number;
  let fragOffset = 0;
  let moreFragments = false;
  if (family === 4) {
    const total = 20 + l4.length + payload.length;
    const id = spec.ipId ?? 0x1234;
    bytes = [0x45, tos, total >> 8, total & 255, id >> 8, id & 255, 0x40, 0, ttl, proto, 0, 0, ...src, ...dst];
    l3len = 20;
  } else {
    const exts = spec.ext ?? [];
    const extBytes: number[] = [];
    let off = 40;
    for (let i = 0; i < exts.length; i++) {
      const e = exts[i]!;
      const next = i + 1 < exts.length ? exts[i + 1]!.type : proto;
      const hdr = [next, ...e.body];
      extHeaders.push({ type: e.type, offset: off, length: hdr.length });
      if (e.type === 44) {
        fragOffset = ((hdr[2]! << 8) | hdr[3]!) & 0xfff8;
        moreFragments = (hdr[3]! & 1) === 1;
      }
      off += hdr.length;
      extBytes.push(...hdr);
    }
    const first = exts.length ? exts[0]!.type : proto;
    const plen = extBytes.length + l4.length + payload.length;
    bytes = [0x60 | (tos >> 4), (tos & 15) << 4, 0, 0, plen >> 8, plen & 255, first, ttl, ...src, ...dst, ...extBytes];
    l3len = 40 + extBytes.length;
  }
  const data = new Uint8Array([...bytes, ...l4, ...payload]);
  const hasPorts = proto === 6 || proto === 17;
  return {
    family,
    data,
    length: data.length,
    src,
    dst,
    protocol: proto,
    ttl,
    tos,
    ipId: family === 4 ? (spec.ipId ?? 0x1234) : 0,
    fragOffset,
    moreFragments,
    dontFragment: family === 4,
    extHeaders,
    l3HeaderLength: l3len,
    l4Offset: l3len,
    sport: hasPorts ? sport : -1,
    dport: hasPorts ? dport : -1,
    tcpFlags: proto === 6 ? (spec.tcpFlags ?? 0x02) : -1,
    icmpType: -1,
    icmpCode: -1,
    truncated: false,
  };
}

export function context(
  pkt: ParsedPacket,
  over: Partial<Omit<MatchContext, 'meta'>> & { meta?: Partial<PacketMeta> } = {},
): MatchContext {
  const { meta, ...rest } = over;
  return {
    pkt,
    meta: { hook: 'INPUT', mark: 0, pktType: 'unicast', ...meta },
    table: 'filter',
    chain: 'INPUT',
    host: { addressType: () => 'UNICAST' },
    sets: { test: () => undefined },
    now: 1_000_000,
    wallclock: new Date(Date.UTC(2024, 0, 1, 12, 0, 0)),
    state: undefined,
    random31: () => 0,
    ...rest,
  };
}

const LOC: SourceLocation = { file: 'test.rules', line: 1, column: 1 };

/**
 * Split option text the way the rule parser would hand it to a module: `[!] --name args...`, columns counted from 1.
 * Arguments are plain words; `"..."` groups a word with spaces (backslash escapes the next character).
 */
export function uses<O>(ext: MatchExtension<O>, text: string): OptionUse[] {
  const words: { w: string; col: number }[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] === ' ') {
      i++;
      continue;
    }
    const col = i + 1;
    let w = '';
    if (text[i] === '"') {
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        w += text[i++];
      }
      i++;
    } else {
      while (i < text.length && text[i] !== ' ') w += text[i++];
    }
    words.push({ w, col });
  }
  const out: OptionUse[] = [];
  let neg = false;
  for (let k = 0; k < words.length; k++) {
    const { w, col } = words[k]!;
    if (w === '!') {
      neg = true;
      continue;
    }
    if (!w.startsWith('--')) throw new Error(`fixture: expected an option at column ${col}: ${w}`);
    const name = w.slice(2);
    const spec = ext.options.find((o) => o.name === name || (o.aliases ?? []).includes(name));
    if (!spec) throw new Error(`fixture: ${ext.name} has no option --${name}`);
    // As the rule parser does: `!` before an option that is not invertible is refused at the option.
    if (neg && !spec.invertible) throw new RuleError(`--${name} cannot be inverted`, { ...LOC, column: col });
    // As the rule parser does: an option given twice is refused unless the module says it may repeat.
    if (!spec.repeatable && out.some((u) => u.name === spec.name)) {
      throw new RuleError(`--${name} may only be given once`, { ...LOC, column: col });
    }
    const args: string[] = [];
    const argLocs: SourceLocation[] = [];
    for (let a = 0; a < spec.args; a++) {
      const next = words[++k];
      if (!next) throw new Error(`fixture: --${name} needs an argument`);
      args.push(next.w);
      argLocs.push({ ...LOC, column: next.col });
    }
    out.push({ name: spec.name, args, negated: neg, loc: { ...LOC, column: col }, argLocs });
    neg = false;
  }
  return out;
}

export function parseCtx(over: Partial<ParseContext> = {}): ParseContext {
  return { family: 4, table: 'filter', chain: 'INPUT', loc: LOC, ...over };
}

/** Parse option text and print it again. */
export function roundTrip<O>(ext: MatchExtension<O>, text: string, over: Partial<ParseContext> = {}): string {
  const pc = parseCtx(over);
  return ext.format(ext.parse(uses(ext, text), pc), pc.family);
}

/**
 * One `it` per recorded iptables 1.8.9 case: accepted rules must print exactly as iptables-save printed them, and
 * refused ones must be refused with a located RuleError.
 */
export function kernelCases<O>(ext: MatchExtension<O>, cases: readonly KernelCase[]): void {
  for (const c of cases) {
    const over: Partial<ParseContext> = { family: c.family, chain: c.chain, table: c.table ?? 'filter' };
    if (c.proto !== undefined) over.proto = { value: c.proto, negated: false };
    if (c.expect !== null) {
      const expected = c.expect;
      it(`IPv${c.family} ${c.opts} -> ${expected}`, () => {
        assert.equal(roundTrip(ext, c.opts, over), expected);
      });
    } else {
      it(`IPv${c.family} ${c.opts} is refused`, () => {
        // A match whose kernel .hooks exclude the chain parses; validation refuses it there (allowedHooks).
        const pc = parseCtx(over);
        let opts: O | undefined;
        try {
          opts = ext.parse(uses(ext, c.opts), pc);
        } catch (e) {
          assert.ok(e instanceof RuleError && /^test\.rules:1:\d+: /.test(e.message), String(e));
        }
        if (opts !== undefined) {
          const hooks = ext.allowedHooks?.(opts);
          assert.ok(hooks && !(hooks as readonly string[]).includes(c.chain), `accepted in ${c.chain}`);
        }
      });
    }
  }
}

/** The error a parse throws, for tests of its message and location. */
export function refusal<O>(ext: MatchExtension<O>, text: string, over: Partial<ParseContext> = {}): RuleError {
  try {
    roundTrip(ext, text, over);
  } catch (e) {
    if (e instanceof RuleError) return e;
    throw e;
  }
  throw new Error(`expected "${text}" to be refused`);
}
