// -m ipv6header: which IPv6 extension headers a packet carries (ip6t_ipv6header).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { failArg, parseUintWord } from './util/b-opts';

export interface Ipv6headerOptions {
  /** MASK_* bits of the headers named. */
  mask: number;
  invert: boolean;
  soft: boolean;
}

/** Protocol number → MASK_* bit, in the order iptables prints them (highest bit first). */
const MASKS: readonly [number, number, string][] = [
  [0, 0x80, 'hop-by-hop'],
  [60, 0x40, 'ipv6-opts'],
  [43, 0x20, 'ipv6-route'],
  [44, 0x10, 'ipv6-frag'],
  [51, 0x08, 'ah'],
  [50, 0x04, 'esp'],
  [59, 0x02, 'ipv6-nonxt'],
  [255, 0x01, 'protocol'],
];

/** chain_protos of libip6t_ipv6header.c, then the /etc/protocols names of the same numbers. */
const NAMES: Readonly<Record<string, number>> = {
  'hop-by-hop': 0,
  protocol: 255,
  hop: 0,
  dst: 60,
  route: 43,
  frag: 44,
  auth: 51,
  esp: 50,
  none: 59,
  prot: 255,
  hopopt: 0,
  'ipv6-opts': 60,
  'ipv6-route': 43,
  'ipv6-frag': 44,
  ah: 51,
  'ipv6-nonxt': 59,
};

const ipv6header: MatchExtension<Ipv6headerOptions> = {
  kind: 'match',
  name: 'ipv6header',
  family: 6,
  options: [
    { name: 'header', args: 1, invertible: true },
    { name: 'soft', args: 0 },
  ],
  parse(uses, ctx) {
    const h = uses.find((u) => u.name === 'header');
    if (!h) throw new RuleError('ipv6header: option "--header" must be specified', ctx.loc);
    let mask = 0;
    for (const word of (h.args[0] ?? '').split(',')) {
      const proto = parseUintWord(word, 255) ?? NAMES[word] ?? PROTOCOL_NUMBERS[word];
      if (proto === undefined) failArg(h, `unknown header \`${word}' specified`);
      const m = MASKS.find(([p]) => p === proto);
      if (!m) failArg(h, `unknown header \`${proto}' specified`);
      mask |= m![1];
    }
    return { mask, invert: h.negated, soft: uses.some((u) => u.name === 'soft') };
  },
  format(o) {
    const names = MASKS.filter(([, m]) => o.mask & m).map(([, , n]) => n);
    return `${o.invert ? '! ' : ''}--header ${names.length ? names.join(',') : 'NONE'}${o.soft ? ' --soft' : ''}`;
  },
  match(o, ctx) {
    // ipv6header_mt6: the headers present, then an exact (or, with --soft, subset) comparison.
    const { pkt } = ctx;
    let temp = 0;
    for (const e of pkt.extHeaders) temp |= MASKS.find(([p]) => p === e.type)?.[1] ?? 0;
    if (pkt.protocol === 59) temp |= 0x02;
    else if (pkt.protocol === 50) temp |= 0x04;
    else temp |= 0x01;
    const invflags = o.invert ? 0xff : 0;
    if (o.soft) return ((temp ^ o.mask ^ invflags) & o.mask) === 0;
    return o.invert ? temp !== o.mask : temp === o.mask;
  },
};

/** Other /etc/protocols names, so that `tcp` is refused with its number as ip6tables does. */
const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = { tcp: 6, udp: 17, icmp: 1, 'ipv6-icmp': 58, sctp: 132 };

export default ipv6header;
