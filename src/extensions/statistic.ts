// -m statistic (libxt_statistic.c, kernel xt_statistic.c). random: userspace stores lround(2^31 * p) and the kernel
// matches when (prandom_u32() & 0x7fffffff) < stored; iptables-save prints stored / 2^31 with %.11f. nth: one counter
// per rule shared by every packet (and CPU), starting at every-1-packet; a packet matches when it wraps to 0.
import type { MatchExtension, OptionUse } from './types';
import { badArg, badMatch, badOpt, byName, uintArg } from './util/opts';

export type StatisticOptions =
  | { mode: 'random'; invert: boolean; /** lround(2^31 * p) */ probability: number }
  | { mode: 'nth'; invert: boolean; every: number; packet: number };

/** The nth counter (xt_statistic_priv.count). */
export interface NthState {
  count: number;
}

const TWO31 = 0x80000000;

/** strtod over the whole word for decimal numbers, as XTTYPE_DOUBLE accepts them. */
function parseProbability(use: OptionUse): number {
  const w = use.args[0] ?? '';
  const p = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(w) ? Number(w) : NaN;
  if (!(p >= 0 && p <= 1)) badArg(use, 'statistic: bad value for option "--probability", or out of range (0-1).');
  // lround: half away from zero; p >= 0 here and 2^31 * p is exact.
  return Math.round(TWO31 * p);
}

/** `%.11f` of stored / 2^31, rounded half to even on the exact binary value as glibc printf does. */
export function formatProbability(stored: number): string {
  let text = probabilityTexts.get(stored);
  if (text === undefined) {
    text = probabilityText(stored);
    // A ruleset holds few distinct probabilities (kube-proxy: 1/n for its endpoint counts); bound the memory anyway.
    if (probabilityTexts.size >= 4096) probabilityTexts.clear();
    probabilityTexts.set(stored, text);
  }
  return text;
}

const probabilityTexts = new Map<number, string>();

function probabilityText(stored: number): string {
  const scale = 10n ** 11n;
  const num = BigInt(stored) * scale;
  const den = BigInt(TWO31);
  let q = num / den;
  const r = num % den;
  if (2n * r > den || (2n * r === den && q % 2n === 1n)) q += 1n;
  const s = q.toString().padStart(12, '0');
  return `${s.slice(0, -11)}.${s.slice(-11)}`;
}

const statistic: MatchExtension<StatisticOptions> = {
  kind: 'match',
  name: 'statistic',
  options: [
    { name: 'mode', args: 1 },
    { name: 'probability', args: 1, invertible: true },
    { name: 'every', args: 1, invertible: true },
    { name: 'packet', args: 1 },
  ],
  parse(opts, ctx) {
    const m = byName(opts, 'statistic');
    const modeUse = m.get('mode');
    const mode = modeUse?.args[0] ?? 'random';
    if (mode !== 'random' && mode !== 'nth') badArg(modeUse!, `Bad mode "${mode}"`);
    const prob = m.get('probability');
    const every = m.get('every');
    const packet = m.get('packet');
    if (prob && every) badOpt(prob, 'statistic: option "--probability" cannot be used together with "--every".');
    if (every && !packet) badOpt(every, 'statistic: option "--every" also requires "--packet".');
    if (packet && !every) badOpt(packet, 'statistic: option "--packet" also requires "--every".');
    if (mode === 'random') {
      if (!prob) badMatch(ctx, '--probability must be specified when using random mode');
      if (!modeUse) badMatch(ctx, 'statistic: option "--mode" must be specified');
      if (every) badOpt(prob, 'statistic: option "--probability" cannot be used together with "--every".');
      return { mode, invert: prob.negated, probability: parseProbability(prob) };
    }
    if (!every || !packet) badMatch(ctx, '--every and --packet must be specified when using nth mode');
    if (prob) badOpt(prob, 'statistic: option "--probability" cannot be used together with "--every".');
    const n = uintArg(every, 1, 0xffffffff, 'statistic');
    const p = uintArg(packet, 0, 0xffffffff, 'statistic');
    if (p > n - 1) badArg(packet, 'the --packet p must be 0 <= p <= n-1');
    return { mode, invert: every.negated, every: n, packet: p };
  },
  format(o) {
    const inv = o.invert ? ' !' : '';
    if (o.mode === 'random') return `--mode random${inv} --probability ${formatProbability(o.probability)}`;
    return `--mode nth${inv} --every ${o.every} --packet ${o.packet}`;
  },
  createState(o): NthState {
    return { count: o.mode === 'nth' ? o.every - 1 - o.packet : 0 };
  },
  // kube-proxy's 20,000 random-mode rules at 10,000 services would otherwise each carry an unused counter over every
  // reload.
  keepsState: (o) => o.mode === 'nth',
  match(o, ctx) {
    if (o.mode === 'random') return ((ctx.random31() & 0x7fffffff) < o.probability) !== o.invert;
    const st = ctx.state as NthState;
    st.count = st.count === o.every - 1 ? 0 : st.count + 1;
    return (st.count === 0) !== o.invert;
  },
};

export default statistic;
