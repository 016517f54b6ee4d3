// -m u32: tests on 32-bit words of the packet (xt_u32), with the u32 program language of libxt_u32.
import type { MatchExtension, OptionUse } from './types';
import { RuleError } from './types';
import { failArg } from './util/b-opts';
import { readU32 } from './util/b-opts';

export type U32Op = '&' | '<<' | '>>' | '@';

export interface U32Test {
  /** First number is the start position; the rest apply an operator to the value read so far. */
  location: { op?: U32Op; number: number }[];
  values: { min: number; max: number }[];
}

export interface U32Options {
  tests: U32Test[];
  invert: boolean;
}

const MAXSIZE = 10; // XT_U32_MAXSIZE

/** parse_number: xtables_strtoui(s, &end, &n, 0, UINT32_MAX) on a prefix of the rest of the program. */
function number(use: OptionUse, s: string, pos: { i: number }): number {
  const m = /^\s*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/.exec(s.slice(pos.i));
  const v = m
    ? Number(
        /^0[xX]/.test(m[1]!)
          ? BigInt(m[1]!)
          : m[1]!.length > 1 && m[1]![0] === '0'
            ? BigInt(`0o${m[1]!.slice(1)}`)
            : BigInt(m[1]!),
      )
    : NaN;
  if (!m || !(v <= 0xffffffff)) throw err(use, `u32: at char ${pos.i}: not a number or out of range`);
  pos.i += m[0].length;
  return v;
}

function err(use: OptionUse, m: string): RuleError {
  try {
    failArg(use, m);
  } catch (e) {
    return e as RuleError;
  }
  return new RuleError(m, use.loc);
}

/** u32_parse in libxt_u32.c, with its error messages. */
export function parseU32(use: OptionUse): U32Test[] {
  const s = use.args[0] ?? '';
  const tests: U32Test[] = [];
  let ct: U32Test = { location: [], values: [] };
  let state = 0;
  const pos = { i: 0 };
  const at = (m: string) => err(use, `u32: at char ${pos.i}: ${m}`);
  for (;;) {
    while (pos.i < s.length && /\s/.test(s[pos.i]!)) pos.i++;
    if (pos.i >= s.length) {
      if (state === 0) throw err(use, 'u32: abrupt end of input after location specifier');
      if (ct.values.length === 0) throw err(use, 'u32: test ended with no value specified');
      tests.push(ct);
      if (tests.length > MAXSIZE) throw at('too many "&&"s');
      return tests;
    }
    const c = s[pos.i];
    if (state === 0) {
      if (c === '=') {
        if (ct.location.length === 0) throw at('location spec missing');
        pos.i++;
        state = 1;
        continue;
      }
      let op: U32Op | undefined;
      if (ct.location.length !== 0) {
        if (c === '&') op = '&';
        else if (c === '<') {
          if (s[++pos.i] !== '<') throw at("a second '<' was expected");
          op = '<<';
        } else if (c === '>') {
          if (s[++pos.i] !== '>') throw at("a second '>' was expected");
          op = '>>';
        } else if (c === '@') op = '@';
        else throw at('operator expected');
        pos.i++;
      }
      const n = number(use, s, pos);
      ct.location.push(op ? { op, number: n } : { number: n });
      if (ct.location.length > MAXSIZE) throw at('too many operators');
    } else if (c === '&') {
      if (s[++pos.i] !== '&') throw at("a second '&' was expected");
      if (ct.values.length === 0) throw at('value spec missing');
      tests.push(ct);
      if (tests.length > MAXSIZE) throw at('too many "&&"s');
      ct = { location: [], values: [] };
      pos.i++;
      state = 0;
    } else {
      if (ct.values.length > 0) {
        if (c !== ',') throw at('expected "," or "&&"');
        pos.i++;
      }
      const min = number(use, s, pos);
      while (pos.i < s.length && /\s/.test(s[pos.i]!)) pos.i++;
      let max = min;
      if (s[pos.i] === ':') {
        pos.i++;
        max = number(use, s, pos);
      }
      ct.values.push({ min, max });
      if (ct.values.length > MAXSIZE) throw at('too many ","s');
    }
  }
}

export function formatU32(tests: U32Test[]): string {
  const hx = (n: number) => `0x${n.toString(16)}`;
  return tests
    .map((t) => {
      const loc = t.location.map((l) => (l.op ?? '') + hx(l.number)).join('');
      const vals = t.values.map((v) => (v.min === v.max ? hx(v.min) : `${hx(v.min)}:${hx(v.max)}`)).join(',');
      return `${loc}=${vals}`;
    })
    .join('&&');
}

/** u32_match_it in net/netfilter/xt_u32.c; `len` is skb->len. */
export function runU32(tests: U32Test[], data: Uint8Array, len = data.length): boolean {
  for (const t of tests) {
    let at = 0;
    let pos = t.location[0]!.number;
    if (len < 4 || pos > len - 4) return false;
    let val = readU32(data, pos);
    for (let i = 1; i < t.location.length; i++) {
      const { op, number: n } = t.location[i]!;
      if (op === '&') val = (val & n) >>> 0;
      else if (op === '<<')
        val = (val << (n & 31)) >>> 0; // x86 masks the shift count
      else if (op === '>>') val = val >>> (n & 31);
      else {
        if (at + val > 0xffffffff) return false;
        at += val;
        pos = n;
        if (at + 4 > 0xffffffff || len < at + 4 || pos > len - at - 4) return false;
        val = readU32(data, at + pos);
      }
    }
    if (!t.values.some((v) => v.min <= val && val <= v.max)) return false;
  }
  return true;
}

const u32: MatchExtension<U32Options> = {
  kind: 'match',
  name: 'u32',
  options: [{ name: 'u32', args: 1, invertible: true }],
  parse(uses, ctx) {
    const u = uses.find((x) => x.name === 'u32');
    if (!u) throw new RuleError('u32: option "--u32" must be specified', ctx.loc);
    return { tests: parseU32(u), invert: u.negated };
  },
  format(o) {
    return `${o.invert ? '! ' : ''}--u32 "${formatU32(o.tests)}"`;
  },
  match(o, ctx) {
    // A queued copy shorter than the packet cannot answer reads past its end: treat those as out of the packet.
    return runU32(o.tests, ctx.pkt.data, Math.min(ctx.pkt.length, ctx.pkt.data.length)) !== o.invert;
  },
};

export default u32;
