// Test helpers for the match modules: option words as the rule parser would hand them over, hand-built packets, and
// evaluation contexts. Kept independent of src/rules/parse so module tests do not depend on the parser's progress.
import type { Family, TableName } from '../../src/rules/model';
import { RuleError } from '../../src/extensions/types';
import type {
  AddrType,
  ConnInfo,
  MatchContext,
  MatchExtension,
  OptionUse,
  PacketMeta,
  ParseContext,
  ParsedPacket,
} from '../../src/extensions/types';

/** Split option text as a shell-like rule line: double quotes group words, backslash escapes inside them. */
function words(text: string): { word: string; column: number }[] {
  const out: { word: string; column: number }[] = [];
  let i = 0;
  while (i < text.length) {
    while (text[i] === ' ') i++;
    if (i >= text.length) break;
    const column = i + 1;
    let w = '';
    while (i < text.length && text[i] !== ' ') {
      if (text[i] === '"') {
        i++;
        while (i < text.length && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < text.length) i++;
          w += text[i++];
        }
        i++;
      } else if (text[i] === "'") {
        i++;
        while (i < text.length && text[i] !== "'") w += text[i++];
        i++;
      } else w += text[i++];
    }
    out.push({ word: w, column });
  }
  return out;
}

export const FILE = 'test.rules';

/** The OptionUse list for `text` (e.g. `! --dport 80 --syn`), resolving aliases with the module's specs. */
export function optionUses(ext: MatchExtension<unknown>, text: string): OptionUse[] {
  const ws = words(text);
  const uses: OptionUse[] = [];
  let negated = false;
  for (let i = 0; i < ws.length; i++) {
    const { word, column } = ws[i];
    if (word === '!') {
      negated = true;
      continue;
    }
    if (!word.startsWith('--')) throw new Error(`fixture: unexpected word ${word}`);
    const name = word.slice(2);
    const spec = ext.options.find((o) => o.name === name || (o.aliases ?? []).includes(name));
    if (!spec) throw new Error(`fixture: unknown option ${word} for ${ext.name}`);
    const args: string[] = [];
    const argLocs = [];
    for (let a = 0; a < spec.args; a++) {
      const w = ws[++i];
      if (!w) throw new Error(`fixture: ${word} needs ${spec.args} args`);
      args.push(w.word);
      argLocs.push({ file: FILE, line: 1, column: w.column });
    }
    uses.push({ name: spec.name, args, negated, loc: { file: FILE, line: 1, column }, argLocs });
    negated = false;
  }
  return uses;
}

export interface CtxOptions {
  family?: Family;
  table?: TableName;
  chain?: string;
  proto?: number;
  protoNegated?: boolean;
}

export function parseCtx(o: CtxOptions = {}): ParseContext {
  const ctx: ParseContext = {
    family: o.family ?? 4,
    table: o.table ?? 'filter',
    chain: o.chain ?? 'INPUT',
    loc: { file: FILE, line: 1, column: 100 },
  };
  if (o.proto !== undefined) ctx.proto = { value: o.proto, negated: o.protoNegated ?? false };
  return ctx;
}

export function parseOpts<O>(ext: MatchExtension<O>, text: string, c: CtxOptions = {}): O {
  return ext.parse(optionUses(ext as MatchExtension<unknown>, text), parseCtx(c));
}

/** parse then format: what iptables-save would print after `-m name`. */
export function roundTrip<O>(ext: MatchExtension<O>, text: string, c: CtxOptions = {}): string {
  return ext.format(parseOpts(ext, text, c), c.family ?? 4);
}

/** The RuleError parse throws, or undefined when it accepts. */
export function parseError<O>(ext: MatchExtension<O>, text: string, c: CtxOptions = {}): RuleError | undefined {
  try {
    parseOpts(ext, text, c);
  } catch (e) {
    if (e instanceof RuleError) return e;
    throw e;
  }
  return undefined;
}

export interface PacketSpec {
  family?: Family;
  proto?: number;
  src?: string;
  dst?: string;
  ttl?: number;
  sport?: number;
  dport?: number;
  tcpFlags?: number;
  /** Raw TCP option bytes (padded to 4 by the fixture). */
  tcpOptions?: number[];
  icmpType?: number;
  icmpCode?: number;
  /** Bytes after the transport header (SCTP chunks go here). */
  payload?: number[];
  fragOffset?: number;
  /** Keep only this many bytes of the transport header, as a packet cut short (the engine then leaves the L4 fields unset). */
  cutL4?: number;
  truncated?: boolean;
  /** Override the IP length field / pkt.length. */
  length?: number;
}

function addrBytes(a: string, family: Family): Uint8Array {
  if (family === 4) return Uint8Array.from(a.split('.').map(Number));
  // Only the forms tests use: full or `::`-compressed hex groups.
  const [h, t] = a.includes('::') ? a.split('::') : [a, undefined];
  const hw = h ? h.split(':') : [];
  const tw = t ? t.split(':') : [];
  const groups = t === undefined ? hw : [...hw, ...Array(8 - hw.length - tw.length).fill('0'), ...tw];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g || '0', 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** A parsed packet with real header bytes for what the spec gives. */
export function fixture(p: PacketSpec = {}): ParsedPacket {
  const family = p.family ?? 4;
  const proto = p.proto ?? 6;
  const src = addrBytes(p.src ?? (family === 4 ? '198.18.0.1' : '2001:db8::1'), family);
  const dst = addrBytes(p.dst ?? (family === 4 ? '198.18.0.2' : '2001:db8::2'), family);
  const l3 = family === 4 ? 20 : 40;
  const fragOffset = p.fragOffset ?? 0;
  let l4: number[] = [];
  const hasPorts = proto === 6 || proto === 17 || proto === 132 || proto === 136 || proto === 33;
  if (proto === 6) {
    const opts = [...(p.tcpOptions ?? [])];
    while (opts.length % 4) opts.push(0);
    const doff = (20 + opts.length) / 4;
    l4 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, doff << 4, p.tcpFlags ?? 0x02, 0xff, 0xff, 0, 0, 0, 0, ...opts];
  } else if (proto === 17 || proto === 136) l4 = [0, 0, 0, 0, 0, 8, 0, 0];
  else if (proto === 132) l4 = new Array(12).fill(0);
  else if (proto === 1 || proto === 58) l4 = [p.icmpType ?? 8, p.icmpCode ?? 0, 0, 0, 0, 0, 0, 0];
  if (hasPorts) {
    const sp = p.sport ?? 1234;
    const dp = p.dport ?? 80;
    l4[0] = sp >> 8;
    l4[1] = sp & 0xff;
    l4[2] = dp >> 8;
    l4[3] = dp & 0xff;
  }
  if (fragOffset !== 0) l4 = [];
  const body = [...l4, ...(p.payload ?? [])];
  const total = p.length ?? l3 + body.length;
  const data = new Uint8Array(l3 + body.length);
  if (family === 4) {
    data[0] = 0x45;
    data[2] = total >> 8;
    data[3] = total & 0xff;
    data[6] = (fragOffset / 8) >> 8;
    data[7] = (fragOffset / 8) & 0xff;
    data[8] = p.ttl ?? 64;
    data[9] = proto;
    data.set(src, 12);
    data.set(dst, 16);
  } else {
    data[0] = 0x60;
    const plen = total - 40;
    data[4] = plen >> 8;
    data[5] = plen & 0xff;
    data[6] = proto;
    data[7] = p.ttl ?? 64;
    data.set(src, 8);
    data.set(dst, 24);
  }
  data.set(body, l3);
  const cut = p.cutL4 !== undefined;
  const readable = fragOffset === 0 && !cut;
  return {
    family,
    data: cut ? data.slice(0, l3 + (p.cutL4 ?? 0)) : data,
    length: total,
    src,
    dst,
    protocol: proto,
    ttl: p.ttl ?? 64,
    tos: 0,
    ipId: 0,
    fragOffset,
    moreFragments: false,
    dontFragment: false,
    extHeaders: [],
    l3HeaderLength: l3,
    l4Offset: readable ? l3 : -1,
    sport: readable && hasPorts ? (p.sport ?? 1234) : -1,
    dport: readable && hasPorts ? (p.dport ?? 80) : -1,
    tcpFlags: readable && proto === 6 ? (p.tcpFlags ?? 0x02) : -1,
    icmpType: readable && (proto === 1 || proto === 58) ? (p.icmpType ?? 8) : -1,
    icmpCode: readable && (proto === 1 || proto === 58) ? (p.icmpCode ?? 0) : -1,
    truncated: p.truncated ?? cut,
  };
}

export interface MatchCtxOptions {
  meta?: Partial<PacketMeta>;
  ct?: ConnInfo;
  now?: number;
  state?: unknown;
  random?: () => number;
  addressType?: (family: Family, addr: Uint8Array, iface?: string) => AddrType;
}

export function matchCtx(pkt: ParsedPacket, o: MatchCtxOptions = {}): MatchContext {
  const meta: PacketMeta = { hook: 'INPUT', mark: 0, pktType: 'unicast', ...o.meta };
  return {
    pkt,
    meta,
    table: 'filter',
    chain: 'INPUT',
    ct: o.ct,
    host: { addressType: o.addressType ?? (() => 'UNICAST') },
    sets: { test: () => undefined },
    now: o.now ?? 0,
    wallclock: new Date(0),
    state: o.state,
    random31: o.random ?? (() => 0),
  };
}

/** Evaluate a module on a packet, creating its per-rule state once when none is given. */
export function matches<O>(ext: MatchExtension<O>, opts: O, pkt: ParsedPacket, o: MatchCtxOptions = {}): boolean {
  const state = o.state ?? ext.createState?.(opts);
  return ext.match!(opts, matchCtx(pkt, { ...o, state }));
}

export function conn(over: Partial<ConnInfo> = {}): ConnInfo {
  const t = { src: addrBytes('198.18.0.1', 4), dst: addrBytes('198.18.0.2', 4), protocol: 6, sport: 1234, dport: 80 };
  return {
    state: 'ESTABLISHED',
    status: 0x0a,
    mark: 0,
    direction: 'ORIGINAL',
    orig: t,
    reply: { src: t.dst, dst: t.src, protocol: 6, sport: 80, dport: 1234 },
    expiresSeconds: 100,
    zone: 0,
    ...over,
  };
}

export { addrBytes };
