// -m connlimit: the number of connections per address group (xt_connlimit).
import { maskPrefixLength, parseIpAddr } from '../rules/addr';
import type { Family } from '../rules/model';
import type { MatchExtension, OptionUse } from './types';
import { RuleError } from './types';
import { exclusive, failArg, parseUintWord, uintArg } from './util/b-opts';

export interface ConnlimitOptions {
  limit: number;
  /** true: --connlimit-above (the kernel's XT_CONNLIMIT_INVERT); false: --connlimit-upto. */
  above: boolean;
  /** Prefix length; absent: the full address. */
  mask?: number;
  side: 'saddr' | 'daddr';
}

/** A prefix length or a contiguous netmask. IPv4 lengths beyond 32 are printed as 32, as iptables 1.8.9 does. */
function parseMask(u: OptionUse, family: Family): number {
  const word = u.args[0] ?? '';
  const max = family === 4 ? 32 : 128;
  const n = parseUintWord(word, 128);
  if (n !== undefined && /^[0-9]+$/.test(word)) return Math.min(n, max);
  const a = parseIpAddr(word, family);
  const len = a ? maskPrefixLength(a) : -1;
  // A valid but non-contiguous mask is printed as the full length by iptables 1.8.9.
  if (a && len < 0) return max;
  if (len < 0) {
    failArg(
      u,
      `connlimit: bad value for option "--connlimit-mask", neither a valid network mask nor valid CIDR (0-${max}).`,
    );
  }
  return len;
}

const connlimit: MatchExtension<ConnlimitOptions> = {
  kind: 'match',
  name: 'connlimit',
  options: [
    { name: 'connlimit-upto', args: 1, invertible: true },
    { name: 'connlimit-above', args: 1, invertible: true },
    { name: 'connlimit-mask', args: 1 },
    { name: 'connlimit-saddr', args: 0 },
    { name: 'connlimit-daddr', args: 0 },
  ],
  unsupported:
    'connlimit: needs a count of the connections per address in the connection table, which the engine does not expose yet',
  parse(uses, ctx) {
    exclusive(uses, ['connlimit-upto', 'connlimit-above'], 'connlimit');
    exclusive(uses, ['connlimit-saddr', 'connlimit-daddr'], 'connlimit');
    const o: ConnlimitOptions = { limit: 0, above: false, side: 'saddr' };
    let given = false;
    for (const u of uses) {
      if (u.name === 'connlimit-upto' || u.name === 'connlimit-above') {
        o.limit = uintArg(u, 0, 0xffffffff, 'connlimit');
        o.above = (u.name === 'connlimit-above') !== u.negated;
        given = true;
      } else if (u.name === 'connlimit-mask') o.mask = parseMask(u, ctx.family);
      else if (u.name === 'connlimit-saddr') o.side = 'saddr';
      else o.side = 'daddr';
    }
    if (!given) throw new RuleError('You must specify "--connlimit-above" or "--connlimit-upto".', ctx.loc);
    return o;
  },
  format(o, family) {
    const mask = o.mask ?? (family === 4 ? 32 : 128);
    return `--connlimit-${o.above ? 'above' : 'upto'} ${o.limit} --connlimit-mask ${mask} --connlimit-${o.side}`;
  },
};

export default connlimit;
