// -m string: a byte pattern in the packet (xt_string via the kernel's textsearch, revision 1).
import type { MatchExtension, OptionUse } from './types';
import { RuleError } from './types';
import { exclusive, fail, failArg, find, uintArg } from './util/b-opts';

export interface StringOptions {
  algo: 'bm' | 'kmp';
  from: number;
  to: number;
  pattern: Uint8Array;
  invert: boolean;
  icase: boolean;
}

const MAX_PATTERN = 128; // XT_STRING_MAX_PATTERN_SIZE

/** parse_hex_string in libxt_string.c: `|hex hex|` blocks, `\c` literal characters, the rest copied. */
function parseHexString(use: OptionUse): Uint8Array {
  const s = Buffer.from(use.args[0] ?? '', 'latin1');
  const out: number[] = [];
  const err = (m: string): never => failArg(use, m);
  let i = 0;
  let hex = false;
  let literal = false;
  if (s.length === 0) err('STRING must contain at least one char');
  while (i < s.length) {
    if (i >= MAX_PATTERN) err('STRING too long');
    const c = s[i]!;
    if (c === 0x5c && !hex) literal = true;
    else if (c === 0x5c) err('Cannot include literals in hex data');
    else if (c === 0x7c) {
      hex = !hex;
      if (hex) while (s[i + 1] === 0x20) i++;
      if (i + 1 >= s.length) break;
      i++;
      continue;
    }
    if (literal) {
      if (i + 1 >= s.length) err('Bad literal placement at end of string');
      out.push(s[i + 1]!);
      i += 2;
      literal = false;
    } else if (hex) {
      if (i + 2 >= s.length) err('Invalid hex block'); // a block must close with `|`
      const a = String.fromCharCode(c);
      const b = String.fromCharCode(s[i + 1]!);
      if (!/[0-9a-fA-F]/.test(a)) err(`Invalid hex char '${a}'`);
      if (!/[0-9a-fA-F]/.test(b)) err(`Invalid hex char '${b}'`);
      out.push(parseInt(a + b, 16));
      i += s[i + 2] === 0x20 ? 3 : 2;
    } else {
      out.push(c);
      i++;
    }
    if (out.length > MAX_PATTERN) err('STRING too long');
  }
  return Uint8Array.from(out);
}

function isPrint(b: number): boolean {
  return b >= 0x20 && b <= 0x7e;
}

const string: MatchExtension<StringOptions> = {
  kind: 'match',
  name: 'string',
  options: [
    { name: 'from', args: 1 },
    { name: 'to', args: 1 },
    { name: 'algo', args: 1 },
    { name: 'string', args: 1, invertible: true },
    { name: 'hex-string', args: 1, invertible: true },
    { name: 'icase', args: 0 },
  ],
  parse(uses, ctx) {
    const o: StringOptions = {
      algo: 'bm',
      from: 0,
      to: 65535,
      pattern: new Uint8Array(0),
      invert: false,
      icase: false,
    };
    let algo: OptionUse | undefined;
    let pat: OptionUse | undefined;
    for (const u of uses) {
      switch (u.name) {
        case 'from':
          o.from = uintArg(u, 0, 65535, 'string');
          break;
        case 'to':
          o.to = uintArg(u, 0, 65535, 'string');
          break;
        case 'algo':
          algo = u;
          break;
        case 'string': {
          const b = Buffer.from(u.args[0] ?? '', 'latin1');
          if (b.length > MAX_PATTERN) failArg(u, 'STRING too long');
          o.pattern = Uint8Array.from(b);
          o.invert = u.negated;
          pat = u;
          break;
        }
        case 'hex-string':
          o.pattern = parseHexString(u);
          o.invert = u.negated;
          pat = u;
          break;
        case 'icase':
          o.icase = true;
          break;
      }
    }
    exclusive(uses, ['string', 'hex-string'], 'string');
    if (!algo) throw new RuleError('string: option "--algo" must be specified', ctx.loc);
    if (!pat) throw new RuleError("STRING match: You must specify `--string' or `--hex-string'", ctx.loc);
    const a = algo.args[0] ?? '';
    if (a !== 'bm' && a !== 'kmp') {
      failArg(algo, `string: unknown algorithm "${a}" (the kernel refuses this rule: No such file or directory)`);
    }
    o.algo = a;
    if (o.pattern.length === 0)
      fail(pat, 'string: the pattern is empty (the kernel refuses this rule: Invalid argument)');
    if (o.from > o.to) {
      fail(
        find(uses, 'from')!,
        `string: --from ${o.from} is beyond --to ${o.to} (the kernel refuses this rule: Invalid argument)`,
      );
    }
    return o;
  },
  format(o) {
    const p = o.pattern;
    const asHex = p.some((b) => !isPrint(b)) || (p.length > 0 && p[p.length - 1] === 0x5c);
    const w: string[] = [];
    if (o.invert) w.push('!');
    if (asHex) w.push('--hex-string', `"|${Buffer.from(p).toString('hex')}|"`);
    else {
      let s = '"';
      for (const b of p) s += (b === 0x22 || b === 0x5c ? '\\' : '') + String.fromCharCode(b);
      w.push('--string', `${s}"`);
    }
    w.push('--algo', o.algo);
    if (o.from !== 0) w.push('--from', String(o.from));
    if (o.to !== 65535) w.push('--to', String(o.to));
    if (o.icase) w.push('--icase');
    return w.join(' ');
  },
  match(o, ctx) {
    // skb_find_text(skb, from, to, ...): the search runs over skb bytes [from, to) counted from the network header,
    // and a match must start before `to` (the textsearch stops consuming at `to`, so it must also end by then).
    const data = ctx.pkt.data;
    const end = Math.min(o.to, data.length);
    const found = indexOf(data, o.pattern, o.from, end, o.icase) >= 0;
    return found !== o.invert;
  },
};

function lower(b: number): number {
  return b >= 0x41 && b <= 0x5a ? b + 0x20 : b;
}

/** First offset in [from, end) where the whole pattern lies within [from, end). */
export function indexOf(data: Uint8Array, pat: Uint8Array, from: number, end: number, icase: boolean): number {
  if (pat.length === 0) return -1;
  for (let i = from; i + pat.length <= end; i++) {
    let k = 0;
    while (k < pat.length && (icase ? lower(data[i + k]!) === lower(pat[k]!) : data[i + k] === pat[k])) k++;
    if (k === pat.length) return i;
  }
  return -1;
}

export default string;
