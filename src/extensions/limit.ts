// -m limit (libxt_limit.c). iptables-nft 1.8.9 loads it as nft's native `limit rate R/unit burst B packets`
// (add_nft_limit), so the kernel semantics are nft_limit.c's: a bucket of nanoseconds, capacity cost*burst, each
// packet costing unit/rate ns; refilled by elapsed time; a burst of 0 becomes 5 (NFT_LIMIT_PKT_BURST_DEFAULT).
// iptables-save prints the rate back through the same unit choice (print_rate), so `60/min` saves as `1/sec`.
import type { MatchExtension, OptionUse } from './types';
import { badArg, byName, uintArg } from './util/opts';

export const XT_LIMIT_SCALE = 10000;
const DEFAULT_BURST = 5;
/** day, hour, min, sec in XT_LIMIT_SCALE units per packet, as libxt_limit's rates[] and add_nft_limit's mult[]. */
const RATES: ReadonlyArray<[string, number]> = [
  ['day', XT_LIMIT_SCALE * 24 * 60 * 60],
  ['hour', XT_LIMIT_SCALE * 60 * 60],
  ['min', XT_LIMIT_SCALE * 60],
  ['sec', XT_LIMIT_SCALE],
];

export interface LimitOptions {
  /** Average interval between packets, in 1/XT_LIMIT_SCALE seconds (xt_rateinfo.avg). */
  avg: number;
  burst: number;
}

export interface LimitState {
  tokens?: bigint;
  lastNs?: bigint;
}

/** libxt_limit parse_rate: atoi of the number, then an optional /second|minute|hour|day abbreviation. */
function parseRate(use: OptionUse): number {
  const word = use.args[0] ?? '';
  const bad = (): never => badArg(use, `bad rate "${word}"'`);
  const slash = word.indexOf('/');
  let mult = 1;
  if (slash >= 0) {
    const unit = word.slice(slash + 1).toLowerCase();
    if (unit === '') bad();
    if ('second'.startsWith(unit)) mult = 1;
    else if ('minute'.startsWith(unit)) mult = 60;
    else if ('hour'.startsWith(unit)) mult = 3600;
    else if ('day'.startsWith(unit)) mult = 86400;
    else bad();
  }
  const num = /^\s*([+-]?\d+)/.exec(word);
  const r = num ? Number(num[1]) : 0;
  if (r === 0) bad();
  // atoi gives an int; the C code divides uint32 by its unsigned value.
  const ur = r < 0 ? r + 0x100000000 : r;
  const val = Math.floor((XT_LIMIT_SCALE * mult) / ur);
  if (val === 0) badArg(use, `Rate too fast "${word}"`);
  return val;
}

/** The unit add_nft_limit and print_rate choose for an interval: index into RATES. */
function unitIndex(avg: number): number {
  let i = 1;
  for (; i < RATES.length; i++) {
    const mult = RATES[i][1];
    if (avg > mult || Math.floor(mult / avg) < mult % avg) break;
  }
  return i - 1;
}

/** nft's rate and unit (seconds) for the rule. */
export function nftRate(avg: number): { rate: number; unitSeconds: number } {
  const mult = RATES[unitIndex(avg)][1];
  return { rate: Math.floor(mult / avg), unitSeconds: mult / XT_LIMIT_SCALE };
}

const limit: MatchExtension<LimitOptions> = {
  kind: 'match',
  name: 'limit',
  options: [
    { name: 'limit', args: 1 },
    { name: 'limit-burst', args: 1 },
  ],
  parse(opts) {
    const m = byName(opts, 'limit');
    const l = m.get('limit');
    let avg = l ? parseRate(l) : (XT_LIMIT_SCALE * 3600) / 3;
    // The kernel holds rate/unit, so the interval read back is recomputed from them.
    const { rate, unitSeconds } = nftRate(avg);
    avg = Math.floor((XT_LIMIT_SCALE * unitSeconds) / rate);
    const b = m.get('limit-burst');
    let burst = b ? uintArg(b, 0, 10000, 'limit') : DEFAULT_BURST;
    if (burst === 0) burst = DEFAULT_BURST;
    return { avg, burst };
  },
  format(o) {
    const [name, mult] = RATES[unitIndex(o.avg)];
    const rate = `--limit ${Math.floor(mult / o.avg)}/${name}`;
    return o.burst === DEFAULT_BURST ? rate : `${rate} --limit-burst ${o.burst}`;
  },
  createState(): LimitState {
    return {};
  },
  match(o, ctx) {
    const st = ctx.state as LimitState;
    const { rate, unitSeconds } = nftRate(o.avg);
    const cost = (BigInt(unitSeconds) * 1_000_000_000n) / BigInt(rate);
    const max = cost * BigInt(o.burst);
    const now = BigInt(Math.round(ctx.now * 1e6));
    // The bucket starts full when the rule is loaded; starting it at the first packet is the same, as it is capped.
    if (st.tokens === undefined || st.lastNs === undefined) {
      st.tokens = max;
      st.lastNs = now;
    }
    let tokens = st.tokens + (now > st.lastNs ? now - st.lastNs : 0n);
    if (tokens > max) tokens = max;
    st.lastNs = now;
    if (tokens >= cost) {
      st.tokens = tokens - cost;
      return true;
    }
    st.tokens = tokens;
    return false;
  },
};

export default limit;
