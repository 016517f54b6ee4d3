// -m frag: the IPv6 fragment header (ip6t_frag).
import type { MatchExtension } from './types';
import { exclusive, rangeArg, readU32, uintArg } from './util/b-opts';
import { findExtHeader, inRange } from './util/b-ipv6';

export interface FragOptions {
  ids: { min: number; max: number; invert: boolean };
  /** Printed, but the kernel does not test it (the fragment header has no length field). */
  len?: { value: number; invert: boolean };
  res: boolean;
  first: boolean;
  more: boolean;
  last: boolean;
}

const frag: MatchExtension<FragOptions> = {
  kind: 'match',
  name: 'frag',
  family: 6,
  options: [
    { name: 'fragid', args: 1, invertible: true },
    { name: 'fraglen', args: 1, invertible: true },
    { name: 'fragres', args: 0 },
    { name: 'fragfirst', args: 0 },
    { name: 'fragmore', args: 0 },
    { name: 'fraglast', args: 0 },
  ],
  parse(uses) {
    exclusive(uses, ['fragmore', 'fraglast'], 'frag');
    const o: FragOptions = {
      ids: { min: 0, max: 0xffffffff, invert: false },
      res: false,
      first: false,
      more: false,
      last: false,
    };
    for (const u of uses) {
      if (u.name === 'fragid') {
        const [min, max] = rangeArg(u, 0xffffffff, 'frag');
        o.ids = { min, max, invert: u.negated };
      } else if (u.name === 'fraglen') o.len = { value: uintArg(u, 0, 0xffffffff, 'frag'), invert: u.negated };
      else if (u.name === 'fragres') o.res = true;
      else if (u.name === 'fragfirst') o.first = true;
      else if (u.name === 'fragmore') o.more = true;
      else o.last = true;
    }
    return o;
  },
  format(o) {
    const w: string[] = [];
    const i = o.ids;
    if (!(i.min === 0 && i.max === 0xffffffff)) {
      w.push(...(i.invert ? ['!'] : []), '--fragid', i.min === i.max ? String(i.min) : `${i.min}:${i.max}`);
    }
    if (o.len) w.push(...(o.len.invert ? ['!'] : []), '--fraglen', String(o.len.value));
    if (o.res) w.push('--fragres');
    if (o.first) w.push('--fragfirst');
    if (o.more) w.push('--fragmore');
    if (o.last) w.push('--fraglast');
    return w.join(' ');
  },
  match(o, ctx) {
    // frag_mt6 in net/ipv6/netfilter/ip6t_frag.c.
    const { data } = ctx.pkt;
    const h = findExtHeader(ctx.pkt, 44);
    if (!h || h.offset + 8 > data.length) return false;
    const reserved = data[h.offset + 1]!;
    const fragOff = (data[h.offset + 2]! << 8) | data[h.offset + 3]!;
    const id = readU32(data, h.offset + 4);
    return (
      inRange(o.ids.min, o.ids.max, id, o.ids.invert) &&
      !(o.res && (reserved !== 0 || (fragOff & 0x6) !== 0)) &&
      !(o.first && (fragOff & 0xfff8) !== 0) &&
      !(o.more && (fragOff & 1) === 0) &&
      !(o.last && (fragOff & 1) !== 0)
    );
  },
};

export default frag;
