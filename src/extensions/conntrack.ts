// -m conntrack, revision 3 (libxt_conntrack.c conntrack3_mt_save, kernel xt_conntrack.c conntrack_mt).
import { NameError, parseProtocol } from '../rules/services';
import type { ConnTuple, MatchExtension, OptionUse } from './types';
import { parseServicePortRange } from './util/ports';
import { addrMaskMatch, formatAddrMask, parseAddrMask, type AddrMask } from './util/netaddr';
import { badArg, badMatch, bang, byName, parseUintWord } from './util/opts';
import { IPS_ASSURED, IPS_FIXED_TIMEOUT, formatStates, packetStates, trackedConn, STATE_ORDER, type StateName } from './util/ctstate';

interface Inv<T> {
  value: T;
  invert: boolean;
}

interface Range {
  min: number;
  max: number;
}

export interface ConntrackOptions {
  state?: Inv<Set<StateName>>;
  proto?: Inv<number>;
  origsrc?: Inv<AddrMask>;
  origdst?: Inv<AddrMask>;
  replsrc?: Inv<AddrMask>;
  repldst?: Inv<AddrMask>;
  origsrcport?: Inv<Range>;
  origdstport?: Inv<Range>;
  replsrcport?: Inv<Range>;
  repldstport?: Inv<Range>;
  /** IPS_* bits; 0 is NONE (which the kernel never matches, as `0 & status` is never true). */
  status?: Inv<number>;
  expire?: Inv<Range>;
  dir?: 'ORIGINAL' | 'REPLY';
}

const STATUS_NAMES: ReadonlyArray<[string, number]> = [
  ['EXPECTED', 1],
  ['SEEN_REPLY', 2],
  ['ASSURED', IPS_ASSURED],
  ['CONFIRMED', 8],
];

export function parseStateList(use: OptionUse, allowed: readonly StateName[], what: string): Set<StateName> {
  const s = new Set<StateName>();
  for (const word of (use.args[0] ?? '').split(',')) {
    const n = allowed.find((a) => a === word.toUpperCase());
    if (!n) badArg(use, `Bad ${what} "${word}"`);
    s.add(n);
  }
  return s;
}

function parseStatus(use: OptionUse): number {
  let bits = 0;
  for (const word of (use.args[0] ?? '').split(',')) {
    const up = word.toUpperCase();
    if (up === 'NONE') continue;
    const f = STATUS_NAMES.find(([n]) => n === up);
    if (!f) badArg(use, `Bad ctstatus "${word}"`);
    bits |= f[1];
  }
  return bits;
}

function formatStatus(bits: number): string {
  const names = STATUS_NAMES.filter(([, b]) => bits & b).map(([n]) => n);
  return names.length ? names.join(',') : 'NONE';
}

/** XTTYPE_UINT32RC for --ctexpire. */
function parseUintRc(use: OptionUse): Range {
  const w = use.args[0] ?? '';
  const i = w.indexOf(':');
  const a = i < 0 ? w : w.slice(0, i);
  const b = i < 0 ? w : w.slice(i + 1);
  const min = a === '' && i >= 0 ? 0 : parseUintWord(a);
  const max = b === '' && i >= 0 ? 0xffffffff : parseUintWord(b);
  if (min === undefined || max === undefined) {
    const near = min === undefined ? a : b;
    badArg(use, `conntrack: bad value for option "--${use.name}" near "${near}", or out of range (0-4294967295).`);
  }
  return { min, max };
}

const range = (r: Range): string => (r.min === r.max ? `${r.min}` : `${r.min}:${r.max}`);

const inRange = (r: Range, v: number): boolean => v >= r.min && v <= r.max;

const conntrack: MatchExtension<ConntrackOptions> = {
  kind: 'match',
  // Not --ctexpire: the remaining timeout moves with time.
  flowStable: (o) => o.expire === undefined,
  name: 'conntrack',
  options: [
    { name: 'ctstate', args: 1, invertible: true },
    { name: 'ctproto', args: 1, invertible: true },
    { name: 'ctorigsrc', args: 1, invertible: true },
    { name: 'ctorigdst', args: 1, invertible: true },
    { name: 'ctreplsrc', args: 1, invertible: true },
    { name: 'ctrepldst', args: 1, invertible: true },
    { name: 'ctorigsrcport', args: 1, invertible: true },
    { name: 'ctorigdstport', args: 1, invertible: true },
    { name: 'ctreplsrcport', args: 1, invertible: true },
    { name: 'ctrepldstport', args: 1, invertible: true },
    { name: 'ctstatus', args: 1, invertible: true },
    { name: 'ctexpire', args: 1, invertible: true },
    { name: 'ctdir', args: 1 },
  ],
  parse(opts, ctx) {
    const m = byName(opts, 'conntrack');
    if (m.size === 0) badMatch(ctx, 'conntrack: At least one option is required');
    const o: ConntrackOptions = {};
    const inv = <T>(u: OptionUse, value: T): Inv<T> => ({ value, invert: u.negated });
    for (const u of m.values()) {
      switch (u.name) {
        case 'ctstate':
          o.state = inv(u, parseStateList(u, STATE_ORDER, 'ctstate'));
          break;
        case 'ctproto': {
          let p: number;
          try {
            p = parseProtocol(u.args[0] ?? '');
          } catch (e) {
            if (e instanceof NameError) badArg(u, e.message);
            throw e;
          }
          o.proto = inv(u, p);
          break;
        }
        case 'ctorigsrc':
        case 'ctorigdst':
        case 'ctreplsrc':
        case 'ctrepldst':
          o[u.name.slice(2) as 'origsrc'] = inv(u, parseAddrMask(u, ctx.family));
          break;
        case 'ctorigsrcport':
        case 'ctorigdstport':
        case 'ctreplsrcport':
        case 'ctrepldstport':
          o[u.name.slice(2) as 'origsrcport'] = inv(u, parseServicePortRange(u));
          break;
        case 'ctstatus':
          o.status = inv(u, parseStatus(u));
          break;
        case 'ctexpire':
          o.expire = inv(u, parseUintRc(u));
          break;
        case 'ctdir': {
          const d = (u.args[0] ?? '').toUpperCase();
          if (d !== 'ORIGINAL' && d !== 'REPLY') badArg(u, `conntrack: Bad value for "--ctdir" option: "${u.args[0] ?? ''}"`);
          o.dir = d;
          break;
        }
      }
    }
    return o;
  },
  format(o) {
    const out: string[] = [];
    const put = <T>(name: string, v: Inv<T> | undefined, f: (x: T) => string): void => {
      if (v) out.push(`${bang(v.invert)}--${name} ${f(v.value)}`);
    };
    put('ctstate', o.state, formatStates);
    put('ctproto', o.proto, String);
    put('ctorigsrc', o.origsrc, formatAddrMask);
    put('ctorigdst', o.origdst, formatAddrMask);
    put('ctreplsrc', o.replsrc, formatAddrMask);
    put('ctrepldst', o.repldst, formatAddrMask);
    put('ctorigsrcport', o.origsrcport, range);
    put('ctorigdstport', o.origdstport, range);
    put('ctreplsrcport', o.replsrcport, range);
    put('ctrepldstport', o.repldstport, range);
    put('ctstatus', o.status, formatStatus);
    put('ctexpire', o.expire, range);
    if (o.dir) out.push(`--ctdir ${o.dir}`);
    return out.join(' ');
  },
  match(o, ctx) {
    if (o.state) {
      const states = packetStates(ctx);
      let hit = false;
      for (const s of o.state.value) if (states.has(s)) hit = true;
      if (hit === o.state.invert) return false;
    }
    const ct = trackedConn(ctx);
    // No connection: only the state test can have matched (conntrack_mt returns match_flags & STATE).
    if (!ct) return o.state !== undefined;
    if (o.dir && ct.direction !== o.dir) return false;
    const addr = (v: Inv<AddrMask> | undefined, x: Uint8Array): boolean => !v || addrMaskMatch(x, v.value) !== v.invert;
    if (!addr(o.origsrc, ct.orig.src) || !addr(o.origdst, ct.orig.dst)) return false;
    if (!addr(o.replsrc, ct.reply.src) || !addr(o.repldst, ct.reply.dst)) return false;
    if (o.proto && (ct.orig.protocol === o.proto.value) === o.proto.invert) return false;
    const port = (v: Inv<Range> | undefined, t: ConnTuple, which: 'sport' | 'dport'): boolean =>
      !v || inRange(v.value, t[which]) !== v.invert;
    if (!port(o.origsrcport, ct.orig, 'sport') || !port(o.origdstport, ct.orig, 'dport')) return false;
    if (!port(o.replsrcport, ct.reply, 'sport') || !port(o.repldstport, ct.reply, 'dport')) return false;
    if (o.status && ((o.status.value & ct.status) !== 0) === o.status.invert) return false;
    if (o.expire) {
      const expires = ct.status & IPS_FIXED_TIMEOUT ? 0 : ct.expiresSeconds;
      if (inRange(o.expire.value, expires) === o.expire.invert) return false;
    }
    return true;
  },
};

export default conntrack;
