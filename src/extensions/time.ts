// -m time: date, time of day, weekday and day of month of the packet's arrival (xt_time).
import type { MatchExtension, OptionUse } from './types';
import { RuleError } from './types';
import { exclusive, failArg } from './util/b-opts';

export interface TimeOptions {
  /** Seconds since the epoch (UTC), as stored by iptables (u32). */
  dateStart: number;
  dateStop: number;
  /** Seconds since midnight. */
  daytimeStart: number;
  daytimeStop: number;
  /** Bit i set: weekday i (1 = Mon ... 7 = Sun). */
  weekdays: number;
  /** Bit i set: day i of the month (1..31). */
  monthdays: number;
  localTz: boolean;
  contiguous: boolean;
}

const MAX_DAYTIME = 24 * 60 * 60 - 1;
const ALL_WEEKDAYS = 0xfe;
const ALL_MONTHDAYS = 0xfffffffe;
const INT_MAX = 0x7fffffff;
const WEEK_DAYS = ['', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

/** my_strseg in libxt_time.c: comma segments, each cut to buflen-1 characters. */
function segments(arg: string, keep: number): string[] {
  if (arg === '') return [];
  return arg.split(',').map((s) => s.slice(0, keep));
}

/** strtoul(s, &end, 0) on a prefix; returns the value and what is left. */
function strtoul(s: string): [number, string] {
  const m = /^\s*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/.exec(s);
  if (!m) return [0, s];
  const t = m[1]!;
  const v = /^0[xX]/.test(t) ? parseInt(t, 16) : t.length > 1 && t[0] === '0' ? parseInt(t, 8) : parseInt(t, 10);
  return [v, s.slice(m[0].length)];
}

function strtoul10(s: string): [number, string] {
  const m = /^\s*\+?([0-9]+)/.exec(s);
  if (!m) return [0, s];
  return [Number(m[1]), s.slice(m[0].length)];
}

/**
 * time_parse_weekdays: a number sets bit 1 << n (the shift wraps at 32 and the result is kept in 8 bits, so 8 or
 * 128 set nothing printable, as iptables 1.8.9 stores them); names compare their first two letters.
 */
function parseWeekdays(use: OptionUse): number {
  let ret = 0;
  for (const day of segments(use.args[0] ?? '', 3)) {
    const [i, rest] = strtoul(day);
    if (rest === '' && day !== '') {
      if (i === 0) failArg(use, 'No, the week does NOT begin with Sunday.');
      ret |= 1 << i;
      continue;
    }
    let valid = false;
    for (let d = 1; d <= 7; d++) {
      if (day.slice(0, 2) === WEEK_DAYS[d]!.slice(0, 2)) {
        ret |= 1 << d;
        valid = true;
      }
    }
    if (!valid) failArg(use, `${day} is not a valid day specifier`);
  }
  return ret & 0xff;
}

function parseMonthdays(use: OptionUse): number {
  let ret = 0;
  for (const day of segments(use.args[0] ?? '', 2)) {
    const [i, rest] = strtoul(day);
    if (rest !== '' || i > 31) failArg(use, `${day} is not a valid day for --monthdays`);
    ret = (ret | (1 << i)) >>> 0;
  }
  return ret;
}

function parseDaytime(use: OptionUse): number {
  const word = use.args[0] ?? '';
  const bad = (): never =>
    failArg(use, `invalid time "${word}" specified, should be hh:mm[:ss] format and within the boundaries`);
  const [h, r1] = strtoul10(word);
  if (!r1.startsWith(':') || h > 23) bad();
  const [m, r2] = strtoul10(r1.slice(1));
  if ((r2 !== '' && !r2.startsWith(':')) || m > 59) bad();
  let s = 0;
  if (r2 !== '') {
    const [sec, r3] = strtoul10(r2.slice(1));
    if (r3 !== '' || sec > 59) bad();
    s = sec;
  }
  return h * 3600 + m * 60 + s;
}

/** time_parse_date: YYYY[-MM[-DD[Thh[:mm[:ss]]]]] in UTC, normalised as mktime does. */
function parseDate(use: OptionUse): number {
  const word = use.args[0] ?? '';
  const bad = (): never => failArg(use, `Invalid date "${word}" specified. Should be YYYY[-MM[-DD[Thh[:mm[:ss]]]]]`);
  const f = [1970, 1, 1, 0, 0, 0];
  const seps = ['-', '-', 'T', ':', ':', ''];
  const limits = [2038, 12, 31, 23, 59, 59];
  let rest = word;
  for (let k = 0; k < 6; k++) {
    const [v, r] = strtoul10(rest);
    if ((r !== '' && (seps[k] === '' || !r.startsWith(seps[k]!))) || v > limits[k]!) bad();
    if (k === 0 && v < 1970) bad();
    f[k] = v;
    if (r === '') break;
    rest = r.slice(1);
  }
  const t = Date.UTC(f[0]!, f[1]! - 1, f[2]!, f[3]!, f[4]!, f[5]!) / 1000;
  if (t < 0) bad();
  return t >>> 0;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

function fmtDaytime(s: number): string {
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
}

function fmtDate(t: number): string {
  const d = new Date(t * 1000);
  return (
    `${String(d.getUTCFullYear()).padStart(4, '0')}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`
  );
}

const time: MatchExtension<TimeOptions> = {
  kind: 'match',
  name: 'time',
  options: [
    { name: 'datestart', args: 1 },
    { name: 'datestop', args: 1 },
    { name: 'timestart', args: 1 },
    { name: 'timestop', args: 1 },
    { name: 'weekdays', args: 1, invertible: true },
    { name: 'monthdays', args: 1, invertible: true },
    { name: 'localtz', aliases: ['kerneltz'], args: 0 },
    { name: 'utc', args: 0 },
    { name: 'contiguous', args: 0 },
  ],
  parse(uses, ctx) {
    void ctx;
    const o: TimeOptions = {
      dateStart: 0,
      dateStop: INT_MAX,
      daytimeStart: 0,
      daytimeStop: MAX_DAYTIME,
      weekdays: ALL_WEEKDAYS,
      monthdays: ALL_MONTHDAYS,
      localTz: false,
      contiguous: false,
    };
    exclusive(uses, ['localtz', 'utc'], 'time');
    for (const u of uses) {
      switch (u.name) {
        case 'datestart':
          o.dateStart = parseDate(u);
          break;
        case 'datestop':
          o.dateStop = parseDate(u);
          break;
        case 'timestart':
          o.daytimeStart = parseDaytime(u);
          break;
        case 'timestop':
          o.daytimeStop = parseDaytime(u);
          break;
        case 'weekdays':
          o.weekdays = parseWeekdays(u);
          if (u.negated) o.weekdays ^= ALL_WEEKDAYS;
          break;
        case 'monthdays':
          o.monthdays = parseMonthdays(u);
          if (u.negated) o.monthdays = (o.monthdays ^ ALL_MONTHDAYS) >>> 0;
          break;
        case 'localtz':
          o.localTz = true;
          break;
        case 'utc':
          o.localTz = false;
          break;
        case 'contiguous':
          o.contiguous = true;
          break;
      }
    }
    const c = uses.find((u) => u.name === 'contiguous');
    if (c && o.daytimeStart < o.daytimeStop) {
      throw new RuleError('time: --contiguous only makes sense when stoptime is smaller than starttime', c.loc);
    }
    return o;
  },
  format(o) {
    const w: string[] = [];
    if (o.daytimeStart !== 0 || o.daytimeStop !== MAX_DAYTIME) {
      w.push('--timestart', fmtDaytime(o.daytimeStart), '--timestop', fmtDaytime(o.daytimeStop));
    }
    if (o.monthdays !== ALL_MONTHDAYS) {
      const days: string[] = [];
      for (let i = 1; i <= 31; i++) if (o.monthdays & (1 << i)) days.push(String(i));
      w.push('--monthdays', days.join(','));
    }
    if (o.weekdays !== ALL_WEEKDAYS) {
      const days: string[] = [];
      for (let i = 1; i <= 7; i++) if (o.weekdays & (1 << i)) days.push(WEEK_DAYS[i]!);
      w.push('--weekdays', days.join(','));
    }
    // time_print_date skips 0 and LONG_MAX; INT_MAX (the default stop) is therefore printed, as iptables does.
    if (o.dateStart !== 0) w.push('--datestart', fmtDate(o.dateStart));
    if (o.dateStop !== 0) w.push('--datestop', fmtDate(o.dateStop));
    if (o.localTz) w.push('--kerneltz');
    if (o.contiguous) w.push('--contiguous');
    return w.join(' ');
  },
  match(o, ctx) {
    return timeMatch(o, ctx.wallclock);
  },
};

/** time_mt in net/netfilter/xt_time.c. */
export function timeMatch(o: TimeOptions, now: Date): boolean {
  let stamp = Math.floor(now.getTime() / 1000);
  if (o.localTz) stamp -= 60 * now.getTimezoneOffset();
  if (stamp < o.dateStart || stamp > o.dateStop) return false;
  const packetTime = ((stamp % 86400) + 86400) % 86400;
  if (o.daytimeStart < o.daytimeStop) {
    if (packetTime < o.daytimeStart || packetTime > o.daytimeStop) return false;
  } else {
    if (packetTime < o.daytimeStart && packetTime > o.daytimeStop) return false;
    if (o.contiguous && packetTime <= o.daytimeStop) stamp -= 86400;
  }
  const d = new Date(stamp * 1000);
  const weekday = d.getUTCDay() === 0 ? 7 : d.getUTCDay();
  if (!(o.weekdays & (1 << weekday))) return false;
  if (o.monthdays !== ALL_MONTHDAYS && !(o.monthdays & (1 << d.getUTCDate()))) return false;
  return true;
}

export default time;
