// -m multiport, revision 1 (libxt_multiport.c, kernel xt_multiport.c): up to 15 ports where a range `a:b` takes
// two slots; one of --sports/--dports/--ports; only with -p tcp/udp/udplite/sctp/dccp.
import { NameError, parsePort, protocolName } from '../rules/services';
import type { MatchExtension, OptionUse, ParseContext } from './types';
import { badArg, badMatch, badOpt, bang, byName } from './util/opts';
import { xtPorts } from './util/ports';

export type MultiportDir = 'sports' | 'dports' | 'ports';

export interface MultiportOptions {
  dir: MultiportDir;
  invert: boolean;
  /** Single ports have min === max. */
  items: { min: number; max: number }[];
}

const LONG = { sports: 'source-ports', dports: 'destination-ports', ports: 'ports' } as const;
const PROTOS = new Set([6, 17, 33, 132, 136]);
const MAX_SLOTS = 15;

function checkProto(use: OptionUse, ctx: ParseContext): string {
  const p = ctx.proto;
  if (p && (p.negated || (p.value !== 0 && !PROTOS.has(p.value))))
    badOpt(use, 'multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP');
  if (!p || p.value === 0) badOpt(use, "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'");
  return protocolName(p.value);
}

function port(use: OptionUse, word: string, proto: string): number {
  try {
    return parsePort(word, proto);
  } catch (e) {
    if (e instanceof NameError) badArg(use, e.message);
    throw e;
  }
}

const multiport: MatchExtension<MultiportOptions> = {
  kind: 'match',
  flowStable: () => true,
  name: 'multiport',
  options: [
    { name: 'sports', aliases: ['source-ports'], args: 1, invertible: true },
    { name: 'dports', aliases: ['destination-ports'], args: 1, invertible: true },
    { name: 'ports', args: 1, invertible: true },
  ],
  parse(opts, ctx) {
    const m = byName(opts, 'multiport');
    // iptables names the options by their long names, source option first.
    const given = (['sports', 'dports', 'ports'] as const).filter((n) => m.has(n));
    if (given.length > 1)
      badOpt(m.get(given[1])!, `multiport: option "--${LONG[given[0]]}" cannot be used together with "--${LONG[given[1]]}".`);
    const use = m.get('sports') ?? m.get('dports') ?? m.get('ports');
    if (!use) badMatch(ctx, 'multiport expection an option');
    const proto = checkProto(use, ctx);
    const items: { min: number; max: number }[] = [];
    let slots = 0;
    for (const part of (use.args[0] ?? '').split(',')) {
      const colon = part.indexOf(':');
      if (colon < 0) {
        const p = port(use, part, proto);
        items.push({ min: p, max: p });
        slots += 1;
      } else {
        const min = port(use, part.slice(0, colon), proto);
        const max = port(use, part.slice(colon + 1), proto);
        if (min >= max) badArg(use, 'invalid portrange specified');
        items.push({ min, max });
        slots += 2;
      }
      if (slots > MAX_SLOTS) badArg(use, 'too many ports specified');
    }
    return { dir: use.name as MultiportDir, invert: use.negated, items };
  },
  format(o) {
    const list = o.items.map((i) => (i.min === i.max ? `${i.min}` : `${i.min}:${i.max}`)).join(',');
    return `${bang(o.invert)}--${o.dir} ${list}`;
  },
  match(o, ctx) {
    const ports = xtPorts(ctx.pkt, 4);
    if (ports === 'fragment') return false;
    if (ports === 'short') {
      ctx.hotdrop = true;
      return false;
    }
    const inAny = (p: number): boolean => o.items.some((i) => p >= i.min && p <= i.max);
    let hit: boolean;
    if (o.dir === 'sports') hit = inAny(ports.sport);
    else if (o.dir === 'dports') hit = inAny(ports.dport);
    else hit = inAny(ports.sport) || inAny(ports.dport);
    return hit !== o.invert;
  },
};

export default multiport;
