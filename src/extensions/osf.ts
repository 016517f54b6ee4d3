// -m osf: passive OS fingerprinting of TCP SYNs (xt_osf).
import { quote } from '../rules/quote';
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { failArg, uintArg } from './util/b-opts';

export interface OsfOptions {
  genre: string;
  invert: boolean;
  ttl?: number;
  log?: number;
}

const GENRE_MAX = 32; // MAXGENRELEN

const osf: MatchExtension<OsfOptions> = {
  kind: 'match',
  name: 'osf',
  family: 4, // libxt_osf registers for NFPROTO_IPV4 only
  options: [
    { name: 'genre', args: 1, invertible: true },
    { name: 'ttl', args: 1 },
    { name: 'log', args: 1 },
  ],
  unsupported: 'osf: needs the kernel fingerprint database (nfnl_osf), which nfqwall does not load',
  parse(uses, ctx) {
    const g = uses.find((u) => u.name === 'genre');
    if (!g) throw new RuleError('osf: option "--genre" must be specified', ctx.loc);
    const genre = g.args[0] ?? '';
    if (genre.length >= GENRE_MAX) failArg(g, `osf: genre "${genre}" is too long`);
    const o: OsfOptions = { genre, invert: g.negated };
    for (const u of uses) {
      if (u.name === 'ttl') o.ttl = uintArg(u, 0, 2, 'osf');
      else if (u.name === 'log') o.log = uintArg(u, 0, 2, 'osf');
    }
    if (!ctx.proto || ctx.proto.value !== 6 || ctx.proto.negated) {
      throw new RuleError('osf: needs `-p tcp` (the kernel refuses this rule: Invalid argument)', ctx.loc);
    }
    return o;
  },
  format(o) {
    const w = [...(o.invert ? ['!'] : []), '--genre', quote(o.genre)];
    if (o.ttl !== undefined) w.push('--ttl', String(o.ttl));
    if (o.log !== undefined) w.push('--log', String(o.log));
    return w.join(' ');
  },
};

export default osf;
