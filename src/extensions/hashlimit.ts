// -m hashlimit: per-flow token buckets (xt_hashlimit revision 3, as iptables 1.8.9 uses it).
import type { MatchContext, MatchExtension, OptionUse } from './types';
import { RuleError } from './types';
import { exclusive, fail, failArg, find, uintArg } from './util/b-opts';
import { hashlimitStore, type HashlimitBucket } from './util/b-hashlimit-store';

export type HashMode = 'srcip' | 'srcport' | 'dstip' | 'dstport';

export interface HashlimitOptions {
  /** Packet mode: microseconds (XT_HASHLIMIT_SCALE_v2 units) per packet. Bytes mode: the kernel's cost value. */
  avg: number;
  burst: number;
  bytes: boolean;
  above: boolean;
  mode: HashMode[];
  name: string;
  size: number;
  max: number;
  gcInterval: number;
  expire: number;
  srcmask: number;
  dstmask: number;
  rateMatch: boolean;
  interval: number;
  /** Bytes mode prints --hashlimit-htable-expire whenever it was given (as iptables 1.8.9 does, whatever the value). */
  expireGiven: boolean;
}

const SCALE = 1_000_000; // XT_HASHLIMIT_SCALE_v2
const HZ = 250; // CONFIG_HZ of the kernels nfqwall targets; the kernel's units are per jiffy
const CPJ = 2n ** 39n; // CREDITS_PER_JIFFY = POW2_BELOW64(U64_MAX / (HZ*86400)) for HZ=250
const BURST_MAX = 1_000_000; // XT_HASHLIMIT_BURST_MAX
const GCINTERVAL = 1000;
const NAME_MAX = 254; // longer names are cut to this length, as iptables 1.8.9 stores them (XT_HASHLIMIT_NAME_LEN 255)
const MODES: readonly HashMode[] = ['srcip', 'srcport', 'dstip', 'dstport'];
const RATES: readonly [string, number][] = [
  ['day', SCALE * 86400],
  ['hour', SCALE * 3600],
  ['min', SCALE * 60],
  ['sec', SCALE],
];

function bytesToCost(bytes: number): number {
  const r = Number((BigInt(bytes) >> 4n) & 0xffffffffn);
  return Math.floor(0xffffffff / (r + 1));
}

export function costToBytes(cost: number): number {
  const r = cost ? Math.floor(0xffffffff / cost) : 0xffffffff;
  return (r - 1) * 16;
}

/** parse_bytes: `N[k|m]b/s`. Undefined when the word is not a byte rate. */
function parseBytes(word: string): { avg: number; mult: number } | undefined {
  const at = word.indexOf('b/s');
  if (at <= 0) return undefined;
  const r = parseInt(word, 10);
  if (!Number.isFinite(r) || r <= 0) return undefined;
  const unit = word[at - 1];
  const factor = unit === 'm' ? 1 << 20 : unit === 'k' ? 1 << 10 : 1;
  const v = r * factor;
  return { avg: bytesToCost(v), mult: 1 };
}

/** parse_rate: `N[/second|/minute|/hour|/day]`, any prefix of the unit, case-insensitive. */
function parseRate(use: OptionUse, word: string): { avg: number; mult: number } | undefined {
  let mult = 1;
  const slash = word.indexOf('/');
  if (slash >= 0) {
    const unit = word.slice(slash + 1).toLowerCase();
    if (unit.length === 0) return undefined;
    if ('second'.startsWith(unit)) mult = 1;
    else if ('minute'.startsWith(unit)) mult = 60;
    else if ('hour'.startsWith(unit)) mult = 3600;
    else if ('day'.startsWith(unit)) mult = 86400;
    else return undefined;
  }
  const m = /^\s*\+?([0-9]+)/.exec(word);
  if (!m) return undefined;
  const r = Number(m[1]);
  if (r === 0) return undefined;
  const avg = Math.floor((SCALE * mult) / r);
  if (avg === 0) failArg(use, `Rate too fast "${word}"`);
  return { avg, mult };
}

/** print_rate: the largest unit that divides evenly enough; returns the printed unit in ms (the default expire). */
function formatRate(avg: number): [string, number] {
  let i = 1;
  for (; i < RATES.length; i++) {
    const mult = RATES[i]![1];
    if (avg > mult || Math.floor(mult / avg) < mult % avg) break;
  }
  const [name, mult] = RATES[i - 1]!;
  return [`${Math.floor(mult / avg)}/${name}`, (mult / SCALE) * 1000];
}

const UNITS: readonly [string, number][] = [
  ['m', 1 << 20],
  ['k', 1 << 10],
  ['', 1],
];

function formatBytes(avg: number, burst: number): string {
  const r = costToBytes(avg);
  let i = 0;
  for (; i < UNITS.length - 1; i++) {
    const t = UNITS[i]![1];
    // `r & ~(thresh - 1)` with an unsigned int mask: the upper 32 bits of r are cleared too.
    const masked = Number(BigInt(r) & BigInt(~(t - 1) >>> 0));
    if (r >= t && bytesToCost(masked) === avg) break;
  }
  let s = `${Math.floor(r / UNITS[i]![1])}${UNITS[i]![0]}b/s`;
  if (burst === 0) return s;
  const rb = r * burst;
  let j = 0;
  for (; j < UNITS.length - 1; j++) if (rb >= UNITS[j]![1]) break;
  s += ` --hashlimit-burst ${Math.floor(rb / UNITS[j]![1])}${UNITS[j]![0]}b`;
  return s;
}

/** user2credits for revision 2/3 with u64 wrap-around, for the kernel's overflow check. */
function user2credits(user: bigint): bigint {
  return (user * ((BigInt(HZ) * CPJ) / BigInt(SCALE))) & 0xffffffffffffffffn;
}

const hashlimit: MatchExtension<HashlimitOptions> = {
  kind: 'match',
  name: 'hashlimit',
  options: [
    { name: 'hashlimit-upto', aliases: ['hashlimit'], args: 1, invertible: true },
    { name: 'hashlimit-above', args: 1, invertible: true },
    { name: 'hashlimit-srcmask', args: 1 },
    { name: 'hashlimit-dstmask', args: 1 },
    { name: 'hashlimit-burst', args: 1 },
    { name: 'hashlimit-htable-size', args: 1 },
    { name: 'hashlimit-htable-max', args: 1 },
    { name: 'hashlimit-htable-gcinterval', args: 1 },
    { name: 'hashlimit-htable-expire', args: 1 },
    { name: 'hashlimit-mode', args: 1 },
    { name: 'hashlimit-name', args: 1 },
    { name: 'hashlimit-rate-match', args: 0 },
    { name: 'hashlimit-rate-interval', args: 1 },
  ],
  parse(uses, ctx) {
    const plen = ctx.family === 4 ? 32 : 128;
    const o: HashlimitOptions = {
      avg: 0,
      burst: 5,
      bytes: false,
      above: false,
      mode: [],
      name: '',
      size: 0,
      max: 0,
      gcInterval: GCINTERVAL,
      expire: 0,
      srcmask: plen,
      dstmask: plen,
      rateMatch: false,
      interval: 1,
      expireGiven: find(uses, 'hashlimit-htable-expire') !== undefined,
    };
    let mult = 1;
    let burstWord: OptionUse | undefined;
    let rateUse: OptionUse | undefined;
    exclusive(uses, ['hashlimit-upto', 'hashlimit-above'], 'hashlimit');
    for (const u of uses) {
      const word = u.args[0] ?? '';
      switch (u.name) {
        case 'hashlimit-upto':
        case 'hashlimit-above': {
          const r = parseBytes(word) ?? parseRate(u, word);
          if (!r) failArg(u, `hashlimit: Bad value for "--${u.name}" option: "${word}"`);
          o.bytes = parseBytes(word) !== undefined;
          o.avg = r!.avg;
          mult = r!.mult;
          o.above = (u.name === 'hashlimit-above') !== u.negated;
          rateUse = u;
          break;
        }
        case 'hashlimit-burst':
          burstWord = u;
          break;
        case 'hashlimit-mode':
          o.mode = [];
          for (const m of word === '' ? [] : word.split(',')) {
            if (!MODES.includes(m as HashMode))
              failArg(u, `hashlimit: Bad value for "--hashlimit-mode" option: "${word}"`);
            if (!o.mode.includes(m as HashMode)) o.mode.push(m as HashMode);
          }
          o.mode.sort((a, b) => MODES.indexOf(a) - MODES.indexOf(b));
          break;
        case 'hashlimit-name':
          if (word.length === 0) failArg(u, 'hashlimit: the name must not be empty');
          o.name = word.slice(0, NAME_MAX);
          break;
        case 'hashlimit-htable-size':
          o.size = uintArg(u, 0, 0xffffffff, 'hashlimit');
          break;
        case 'hashlimit-htable-max':
          o.max = uintArg(u, 0, 0xffffffff, 'hashlimit');
          break;
        case 'hashlimit-htable-gcinterval':
          o.gcInterval = uintArg(u, 0, 0xffffffff, 'hashlimit');
          break;
        case 'hashlimit-htable-expire':
          o.expire = uintArg(u, 0, 0xffffffff, 'hashlimit');
          break;
        case 'hashlimit-srcmask':
          o.srcmask = uintArg(u, 0, 128, 'hashlimit');
          break;
        case 'hashlimit-dstmask':
          o.dstmask = uintArg(u, 0, 128, 'hashlimit');
          break;
        case 'hashlimit-rate-match':
          o.rateMatch = true;
          break;
        case 'hashlimit-rate-interval':
          o.interval = uintArg(u, 0, 0xffffffff, 'hashlimit');
          break;
      }
    }
    if (!rateUse)
      throw new RuleError('hashlimit: option "--hashlimit-upto" or "--hashlimit-above" must be specified', ctx.loc);
    if (!find(uses, 'hashlimit-name'))
      throw new RuleError('hashlimit: option "--hashlimit-name" must be specified', ctx.loc);
    // parse_burst, then the final check.
    if (burstWord) {
      const w = burstWord.args[0] ?? '';
      const m = /^\s*\+?([0-9]+)([kKmM]?)/.exec(w);
      const badBurst = () =>
        failArg(burstWord!, `bad value for option "--hashlimit-burst", or out of range (1-${BURST_MAX}).`);
      if (!m || Number(m[1]) < 1) badBurst();
      let v = Number(m![1]);
      if (m![2] === '' && w.length === m![0].length && v > BURST_MAX) badBurst();
      if (/[kK]/.test(m![2]!)) v *= 1 << 10;
      else if (/[mM]/.test(m![2]!)) v *= 1 << 20;
      o.burst = v;
    }
    if (o.rateMatch && !o.bytes) {
      // With --hashlimit-rate-match the unit becomes the interval: 5/min is printed as 5/sec over 60 seconds.
      o.avg = Math.floor(o.avg / mult);
      if (!find(uses, 'hashlimit-rate-interval')) o.interval = mult;
    }
    if (!o.expireGiven) o.expire = mult * 1000;
    if (o.bytes) {
      let burst = 0;
      if (burstWord) {
        const per = costToBytes(o.avg);
        if (o.burst < per) failArg(burstWord, `burst cannot be smaller than ${per}b`);
        burst = Math.ceil(o.burst / per);
      }
      o.burst = burst;
    } else if (o.burst > BURST_MAX) {
      failArg(burstWord!, `bad value for option "--hashlimit-burst", or out of range (1-${BURST_MAX}).`);
    }
    // hashlimit_mt_check_common: what the kernel refuses at load.
    const kernel = (u: OptionUse, why: string, errno = 'Invalid argument'): never =>
      fail(u, `hashlimit: ${why} (the kernel refuses this rule: ${errno})`);
    if (!o.bytes && !o.rateMatch) {
      const avg = BigInt(o.avg);
      if (user2credits((avg * BigInt(o.burst)) & 0xffffffffffffffffn) < user2credits(avg)) {
        kernel(
          rateUse,
          `rate ${formatRate(o.avg)[0]} with burst ${o.burst} overflows the kernel's credits, try lower`,
          'Numerical result out of range',
        );
      }
    }
    if (o.gcInterval === 0)
      kernel(find(uses, 'hashlimit-htable-gcinterval')!, '--hashlimit-htable-gcinterval must not be 0');
    if (o.expire === 0) kernel(find(uses, 'hashlimit-htable-expire')!, '--hashlimit-htable-expire must not be 0');
    const maxMask = ctx.family === 4 ? 32 : 128;
    for (const n of ['srcmask', 'dstmask'] as const) {
      if (o[n] > maxMask) kernel(find(uses, `hashlimit-${n}`)!, `--hashlimit-${n} ${o[n]} is longer than ${maxMask}`);
    }
    if (o.rateMatch && o.interval === 0)
      kernel(find(uses, 'hashlimit-rate-interval')!, '--hashlimit-rate-interval must not be 0');
    return o;
  },
  format(o, family) {
    const w: string[] = [o.above ? '--hashlimit-above' : '--hashlimit-upto'];
    let quantum = 0;
    if (o.bytes) w.push(formatBytes(o.avg, o.burst));
    else {
      const [rate, q] = formatRate(o.avg);
      quantum = q;
      w.push(rate, '--hashlimit-burst', String(o.burst));
    }
    if (o.mode.length) w.push('--hashlimit-mode', o.mode.join(','));
    w.push('--hashlimit-name', o.name);
    if (o.size) w.push('--hashlimit-htable-size', String(o.size));
    if (o.max) w.push('--hashlimit-htable-max', String(o.max));
    if (o.gcInterval !== GCINTERVAL) w.push('--hashlimit-htable-gcinterval', String(o.gcInterval));
    if (o.bytes ? o.expireGiven : o.expire !== quantum) w.push('--hashlimit-htable-expire', String(o.expire));
    const dmask = family === 4 ? 32 : 128;
    if (o.srcmask !== dmask) w.push('--hashlimit-srcmask', String(o.srcmask));
    if (o.dstmask !== dmask) w.push('--hashlimit-dstmask', String(o.dstmask));
    if (o.rateMatch) {
      w.push('--hashlimit-rate-match');
      if (o.interval !== 1) w.push('--hashlimit-rate-interval', String(o.interval));
    }
    return w.join(' ');
  },
  match(o, ctx) {
    return hashlimitMatch(o, ctx);
  },
};

function maskAddr(a: Uint8Array, plen: number): string {
  let s = '';
  for (let i = 0; i < a.length; i++) {
    const bits = Math.max(0, Math.min(8, plen - i * 8));
    s += ((a[i]! & ((0xff << (8 - bits)) & 0xff)) >>> 0).toString(16).padStart(2, '0');
  }
  return s;
}

/** hashlimit_mt_common: one bucket per masked flow key; `above` inverts the result. */
function hashlimitMatch(o: HashlimitOptions, ctx: MatchContext): boolean {
  const { pkt, now } = ctx;
  // Default table size when none is given: the kernel sizes by memory; nfqwall uses the kernel's upper bound.
  const size = o.size || 8192;
  const table = hashlimitStore.table(
    pkt.family,
    o.name,
    { max: o.max || size * 8, gcInterval: o.gcInterval, expire: o.expire },
    now,
  );
  table.gc(now);
  const parts: string[] = [];
  const ports = pkt.sport >= 0;
  if (o.mode.includes('srcip')) parts.push(maskAddr(pkt.src, o.srcmask));
  if (o.mode.includes('dstip')) parts.push(maskAddr(pkt.dst, o.dstmask));
  if (o.mode.includes('srcport') || o.mode.includes('dstport')) {
    // hashlimit_init_dst: a port mode on a later fragment or a header-less protocol cannot be hashed: hotdrop.
    if (!ports) return false;
    if (o.mode.includes('srcport')) parts.push(`s${pkt.sport}`);
    if (o.mode.includes('dstport')) parts.push(`d${pkt.dport}`);
  }
  const key = parts.join('|');
  const jiffies = Math.floor((now * HZ) / 1000);
  const perJiffy = Number(CPJ);
  let b: HashlimitBucket | undefined = table.buckets.get(key);
  if (!b) {
    if (table.buckets.size >= table.cfg.max) return false; // the kernel hot-drops when the table is full
    b = { credit: 0, prev: jiffies, expires: 0, currentRate: 0, windowStart: now, prevWindowOver: false };
    b.credit = capacity(o);
    table.buckets.set(key, b);
  } else {
    b.credit = Math.min(capacity(o), b.credit + (jiffies - b.prev) * (o.bytes ? BYTE_CREDITS_PER_JIFFY : perJiffy));
    b.prev = jiffies;
  }
  b.expires = now + table.cfg.expire;
  if (o.rateMatch) {
    // Approximation of revision 3's rate match: cost counted per interval against the rate times the interval.
    if (now - b.windowStart >= o.interval * 1000) {
      b.prevWindowOver = b.currentRate > rateLimit(o);
      b.currentRate = 0;
      b.windowStart = now;
    }
    b.currentRate += o.bytes ? pkt.length : 1;
    const under = !b.prevWindowOver && b.currentRate <= rateLimit(o);
    return under !== o.above;
  }
  const cost = o.bytes ? byteCost(pkt.length, o.avg) : creditsOf(o.avg);
  if (b.credit >= cost) {
    b.credit -= cost;
    return !o.above;
  }
  return o.above;
}

/** user2credits as a double (exact enough: < 2^64, compared against other credits). */
function creditsOf(avg: number): number {
  return avg * Number((BigInt(HZ) * CPJ) / BigInt(SCALE));
}

const BYTE_CREDITS_PER_JIFFY = Math.floor(0xffffffff / HZ) >>> 0; // CREDITS_PER_JIFFY_BYTES-ish: one second = U32_MAX

/** Bytes mode: one second of the rate is U32_MAX credits; a packet costs its share of that. */
function byteCost(len: number, avg: number): number {
  return Math.max(1, Math.floor((len * BYTE_CREDITS_PER_JIFFY * HZ) / Math.max(1, costToBytes(avg))));
}

function capacity(o: HashlimitOptions): number {
  if (o.bytes) return BYTE_CREDITS_PER_JIFFY * HZ * Math.max(1, o.burst);
  return creditsOf(o.avg) * o.burst;
}

function rateLimit(o: HashlimitOptions): number {
  return o.bytes ? costToBytes(o.avg) * o.interval : (SCALE / o.avg) * o.interval;
}

export default hashlimit;
