// -m rt: the IPv6 routing header (ip6t_rt).
import { formatIpAddr, parseIpAddr } from '../rules/addr';
import type { MatchExtension, OptionUse } from './types';
import { fail, failArg, rangeArg, readU32, uintArg } from './util/b-opts';
import { findExtHeader, inRange } from './util/b-ipv6';

export interface RtOptions {
  type?: { value: number; invert: boolean };
  segsleft: { min: number; max: number; invert: boolean };
  len?: { value: number; invert: boolean };
  res: boolean;
  addrs: Uint8Array[];
  notStrict: boolean;
}

const RT_HOPS = 16; // IP6T_RT_HOPS

const rt: MatchExtension<RtOptions> = {
  kind: 'match',
  name: 'rt',
  family: 6,
  options: [
    { name: 'rt-type', args: 1, invertible: true },
    { name: 'rt-segsleft', args: 1, invertible: true },
    { name: 'rt-len', args: 1, invertible: true },
    { name: 'rt-0-res', args: 0 },
    { name: 'rt-0-addrs', args: 1 },
    { name: 'rt-0-not-strict', args: 0 },
  ],
  parse(uses) {
    const o: RtOptions = {
      segsleft: { min: 0, max: 0xffffffff, invert: false },
      res: false,
      addrs: [],
      notStrict: false,
    };
    const needType0 = (u: OptionUse) => {
      if (!o.type || o.type.value !== 0 || o.type.invert) fail(u, `\`--rt-type 0' required before \`--${u.name}'`);
    };
    for (const u of uses) {
      switch (u.name) {
        case 'rt-type':
          o.type = { value: uintArg(u, 0, 0xffffffff, 'rt'), invert: u.negated };
          break;
        case 'rt-segsleft': {
          const [min, max] = rangeArg(u, 0xffffffff, 'rt');
          o.segsleft = { min, max, invert: u.negated };
          break;
        }
        case 'rt-len':
          o.len = { value: uintArg(u, 0, 0xffffffff, 'rt'), invert: u.negated };
          break;
        case 'rt-0-res':
          needType0(u);
          o.res = true;
          break;
        case 'rt-0-addrs': {
          needType0(u);
          const words = (u.args[0] ?? '').split(',');
          if (words.length > RT_HOPS) failArg(u, 'too many addresses specified');
          o.addrs = words.map((w) => {
            const a = parseIpAddr(w, 6);
            if (!a) failArg(u, `bad IPv6 address "${w}"`);
            return a!;
          });
          break;
        }
        case 'rt-0-not-strict':
          if (o.addrs.length === 0) fail(u, "`--rt-0-addr ...' required before `--rt-0-not-strict'");
          o.notStrict = true;
          break;
      }
    }
    return o;
  },
  format(o) {
    const w: string[] = [];
    if (o.type) w.push(...(o.type.invert ? ['!'] : []), '--rt-type', String(o.type.value));
    const s = o.segsleft;
    if (!(s.min === 0 && s.max === 0xffffffff)) {
      w.push(...(s.invert ? ['!'] : []), '--rt-segsleft', s.min === s.max ? String(s.min) : `${s.min}:${s.max}`);
    }
    if (o.len) w.push(...(o.len.invert ? ['!'] : []), '--rt-len', String(o.len.value));
    if (o.res) w.push('--rt-0-res');
    if (o.addrs.length) w.push('--rt-0-addrs', o.addrs.map(formatIpAddr).join(','));
    if (o.notStrict) w.push('--rt-0-not-strict');
    return w.join(' ');
  },
  match(o, ctx) {
    // rt_mt6 in net/ipv6/netfilter/ip6t_rt.c.
    const { data } = ctx.pkt;
    const h = findExtHeader(ctx.pkt, 43);
    if (!h || h.offset + 8 > data.length) return false;
    const hdrlen = (data[h.offset + 1]! + 1) * 8;
    const rtype = data[h.offset + 2]!;
    const segsleft = data[h.offset + 3]!;
    let ret =
      inRange(o.segsleft.min, o.segsleft.max, segsleft, o.segsleft.invert) &&
      (!o.len || (o.len.value === hdrlen) !== o.len.invert) &&
      (!o.type || (o.type.value === rtype) !== o.type.invert);
    if (ret && o.res) ret = readU32(data, h.offset + 4) === 0;
    if (!ret || o.addrs.length === 0) return ret;
    // Type 0 addresses: strict compares position by position; not-strict finds each in order.
    const n = Math.floor((hdrlen - 8) / 16);
    if (n < o.addrs.length) return false;
    const at = (i: number) => data.subarray(h.offset + 8 + 16 * i, h.offset + 24 + 16 * i);
    const eq = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
    if (!o.notStrict) return o.addrs.every((a, i) => eq(at(i), a)) && o.addrs.length === Math.min(n, o.addrs.length);
    let j = 0;
    for (let i = 0; i < n && j < o.addrs.length; i++) if (eq(at(i), o.addrs[j]!)) j++;
    return j === o.addrs.length;
  },
};

export default rt;
