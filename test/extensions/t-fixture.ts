// Test helpers for the target modules: option words as the rule parser would hand them over, parse contexts,
// crafted packets and target contexts.
import assert from 'node:assert/strict';
import { parsePacket } from '../../src/engine/packet';
import { fixIpv4HeaderChecksum, transportChecksum, write16 } from '../../src/engine/checksum';
import type {
  ConnInfo,
  OptionUse,
  ParseContext,
  PacketMeta,
  ParsedPacket,
  TargetContext,
  TargetExtension,
} from '../../src/extensions/types';
import { RuleError } from '../../src/extensions/types';
import type { Family, Hook } from '../../src/rules/model';
import { FILE, parseCtx, type CtxOptions } from './packet-fixture';

/** Split like a shell / iptables-restore line: spaces, and "..." with backslash escapes. Keeps 1-based columns. */
function words(text: string): { w: string; col: number }[] {
  const out: { w: string; col: number }[] = [];
  let i = 0;
  while (i < text.length) {
    while (text[i] === ' ') i++;
    if (i >= text.length) break;
    const col = i + 1;
    let w = '';
    while (i < text.length && text[i] !== ' ') {
      if (text[i] === '"') {
        i++;
        while (i < text.length && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < text.length) i++;
          w += text[i++];
        }
        i++;
      } else w += text[i++];
    }
    out.push({ w, col });
  }
  return out;
}

/** `--opt a b ! --flag` into OptionUse[], the way the rule parser resolves option names and arity. */
export function uses(ext: TargetExtension<unknown>, text: string): OptionUse[] {
  const ws = words(text);
  const out: OptionUse[] = [];
  for (let i = 0; i < ws.length; i++) {
    let negated = false;
    if (ws[i].w === '!') {
      negated = true;
      i++;
    }
    const { w, col } = ws[i];
    assert.ok(w.startsWith('--'), `fixture: expected an option at column ${col}, got ${w}`);
    const name = w.slice(2);
    const spec = ext.options.find((o) => o.name === name || (o.aliases ?? []).includes(name));
    if (!spec) throw new RuleError(`unknown option "${w}"`, { file: FILE, line: 1, column: col });
    const args: string[] = [];
    const argLocs = [];
    for (let k = 0; k < spec.args; k++) {
      const a = ws[++i];
      assert.ok(a, `fixture: ${w} needs ${spec.args} argument(s)`);
      args.push(a.w);
      argLocs.push({ file: FILE, line: 1, column: a.col });
    }
    out.push({ name: spec.name, args, negated, loc: { file: FILE, line: 1, column: col }, argLocs });
  }
  return out;
}

export type CtxOpts = CtxOptions;

/** The match fixture's parse context, with the word at fault at column 1 (where a test's `-j` word stands). */
export function pctx(o: CtxOpts = {}): ParseContext {
  return { ...parseCtx(o), loc: { file: FILE, line: 1, column: 1 } };
}

export function parse<O>(ext: TargetExtension<O>, text: string, o: CtxOpts = {}): O {
  return ext.parse(uses(ext as TargetExtension<unknown>, text), pctx(o));
}

/** parse then format: what iptables-save would print after `-j NAME`. */
export function roundTrip<O>(ext: TargetExtension<O>, text: string, o: CtxOpts = {}): string {
  return ext.format(parse(ext, text, o), o.family ?? 4);
}

/** Asserts a RuleError whose reason matches and that points at `column` (1 is the -j word). */
export function refuses<O>(ext: TargetExtension<O>, text: string, reason: RegExp, column: number, o: CtxOpts = {}): void {
  assert.throws(
    () => parse(ext, text, o),
    (e: unknown) => {
      assert.ok(e instanceof RuleError, `expected RuleError, got ${String(e)}`);
      assert.match(e.reason, reason);
      assert.equal(e.loc.column, column, `error column for ${text}: ${e.message}`);
      assert.ok(e.message.startsWith(`${FILE}:1:${column}: `));
      return true;
    },
  );
}

/** Column of the n-th (0-based) occurrence of `needle` in `text`, 1-based, for refuses(). */
export function col(text: string, needle: string, nth = 0): number {
  let at = -1;
  for (let k = 0; k <= nth; k++) at = text.indexOf(needle, at + 1);
  assert.ok(at >= 0, `fixture: ${needle} not in ${text}`);
  return at + 1;
}

// ---- packets ----

export interface PacketSpec {
  family?: Family;
  src?: string;
  dst?: string;
  proto?: number;
  ttl?: number;
  tos?: number;
  sport?: number;
  dport?: number;
  /** TCP flags byte (default SYN). */
  flags?: number;
  /** Raw TCP options, padded by the caller to a multiple of 4. */
  tcpOptions?: number[];
  payload?: number[];
}

function v4(s: string): number[] {
  return s.split('.').map(Number);
}

function v6(s: string): number[] {
  const [h, t] = s.split('::');
  const hw = h ? h.split(':') : [];
  const tw = t !== undefined && t !== '' ? t.split(':') : [];
  const all = [...hw, ...Array(8 - hw.length - tw.length).fill('0'), ...tw].map((x) => parseInt(x, 16));
  return all.flatMap((w) => [w >> 8, w & 0xff]);
}

/** Build an IPv4/IPv6 packet with a TCP or UDP header (valid checksums) and parse it with the engine's parser. */
export function packet(p: PacketSpec = {}): ParsedPacket {
  const family = p.family ?? 4;
  const proto = p.proto ?? 6;
  const opts = p.tcpOptions ?? [];
  const payload = p.payload ?? [];
  const l4: number[] =
    proto === 6
      ? [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, ((20 + opts.length) / 4) << 4, p.flags ?? 0x02, 0xff, 0xff, 0, 0, 0, 0, ...opts]
      : [0, 0, 0, 0, 0, 8 + payload.length, 0, 0];
  const l4b = Uint8Array.from([...l4, ...payload]);
  write16(l4b, 0, p.sport ?? 40000);
  write16(l4b, 2, p.dport ?? 80);
  let data: Uint8Array;
  if (family === 4) {
    const h = new Uint8Array(20);
    h[0] = 0x45;
    h[1] = p.tos ?? 0;
    write16(h, 2, 20 + l4b.length);
    write16(h, 4, 0x1234);
    h[6] = 0x40;
    h[8] = p.ttl ?? 64;
    h[9] = proto;
    h.set(v4(p.src ?? '198.18.0.1'), 12);
    h.set(v4(p.dst ?? '198.18.0.2'), 16);
    data = new Uint8Array(20 + l4b.length);
    data.set(h);
    data.set(l4b, 20);
    fixIpv4HeaderChecksum(data);
  } else {
    const h = new Uint8Array(40);
    const tc = p.tos ?? 0;
    h[0] = 0x60 | (tc >> 4);
    h[1] = (tc & 0x0f) << 4;
    write16(h, 4, l4b.length);
    h[6] = proto;
    h[7] = p.ttl ?? 64;
    h.set(v6(p.src ?? '2001:db8::1'), 8);
    h.set(v6(p.dst ?? '2001:db8::2'), 24);
    data = new Uint8Array(40 + l4b.length);
    data.set(h);
    data.set(l4b, 40);
  }
  const l3 = family === 4 ? 20 : 40;
  const parsed0 = parsePacket(data, family);
  write16(data, l3 + (proto === 6 ? 16 : 6), transportChecksum(family, parsed0.src, parsed0.dst, proto, data, l3));
  return parsePacket(data, family);
}

export function meta(hook: Hook = 'INPUT', mark = 0): PacketMeta {
  return { hook, mark, inIface: 'veth0', pktType: 'unicast' };
}

export function conn(mark = 0, state: ConnInfo['state'] = 'NEW'): ConnInfo {
  const t = { src: new Uint8Array(4), dst: new Uint8Array(4), protocol: 6, sport: 1, dport: 2 };
  return { state, status: 0, mark, direction: 'ORIGINAL', orig: t, reply: t, expiresSeconds: 60, zone: 0 };
}

export function tctx(pkt: ParsedPacket, m: PacketMeta = meta(), ct?: ConnInfo): TargetContext {
  const ctx: TargetContext = {
    pkt,
    meta: m,
    table: 'mangle',
    chain: m.hook,
    host: { addressType: () => 'UNICAST' },
    sets: { test: () => undefined },
    now: 0,
    wallclock: new Date(0),
    state: undefined,
    random31: () => 0,
    logs: [],
    rewritten: false,
    replies: [],
  };
  if (ct) ctx.ct = ct;
  return ctx;
}

/** Apply a target parsed from `text` to a context. */
export function run<O>(ext: TargetExtension<O>, text: string, ctx: TargetContext, o: CtxOpts = {}) {
  assert.ok(ext.apply, `${ext.name} has no apply`);
  return ext.apply(parse(ext, text, o), ctx);
}

export function checksumsValid(pkt: ParsedPacket): boolean {
  const d = pkt.data;
  if (pkt.family === 4) {
    let s = 0;
    for (let i = 0; i < 20; i += 2) s += (d[i] << 8) | d[i + 1];
    while (s > 0xffff) s = (s & 0xffff) + (s >> 16);
    if (s !== 0xffff) return false;
  }
  const co = pkt.l4Offset + (pkt.protocol === 6 ? 16 : 6);
  const want = transportChecksum(pkt.family, pkt.src, pkt.dst, pkt.protocol, d, pkt.l4Offset);
  return ((d[co] << 8) | d[co + 1]) === want;
}
