// The ttl (IPv4) and hl (IPv6) matches share one shape: exactly one of --X-eq (invertible: "not equal"), --X-lt,
// --X-gt, with a value 0-255 (libipt_ttl.c, libip6t_hl.c; kernel xt_hl.c).
import type { Family } from '../../rules/model';
import type { MatchExtension } from '../types';
import { badMatch, badOpt, byName, uintArg } from './opts';

export interface TtlHlOptions {
  mode: 'eq' | 'ne' | 'lt' | 'gt';
  value: number;
}

export function ttlHlMatch(name: 'ttl' | 'hl', family: Family, upper: string): MatchExtension<TtlHlOptions> {
  const names = ['eq', 'lt', 'gt'].map((s) => `${name}-${s}`);
  return {
    kind: 'match',
    name,
    family,
    options: [
      { name: names[0], args: 1, invertible: true },
      { name: names[1], args: 1 },
      { name: names[2], args: 1 },
    ],
    parse(opts, ctx) {
      byName(opts, name);
      const given = opts.filter((o) => names.includes(o.name));
      if (given.length === 0)
        badMatch(ctx, `${upper} match: You must specify one of \`--${names[0]}', \`--${names[1]}', \`--${names[2]}'`);
      if (given.length > 1)
        badOpt(given[1], `${name}: option "--${given[1].name}" cannot be used together with "--${given[0].name}".`);
      const use = given[0];
      const value = uintArg(use, 0, 255, name);
      const kind = use.name.slice(name.length + 1) as 'eq' | 'lt' | 'gt';
      return { mode: kind === 'eq' && use.negated ? 'ne' : kind, value };
    },
    format(o) {
      const opt = o.mode === 'ne' ? `! --${name}-eq` : `--${name}-${o.mode}`;
      return `${opt} ${o.value}`;
    },
    match(o, ctx) {
      const t = ctx.pkt.ttl;
      switch (o.mode) {
        case 'eq':
          return t === o.value;
        case 'ne':
          return t !== o.value;
        case 'lt':
          return t < o.value;
        case 'gt':
          return t > o.value;
      }
    },
  };
}
