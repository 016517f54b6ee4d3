// -m recent: remembers addresses in named lists (xt_recent). Lists are global per name, see util/b-recent-store.
import { AddrError, formatIpAddr, parseIpAddr } from '../rules/addr';
import type { Family } from '../rules/model';
import { RuleError, type MatchContext, type MatchExtension, type OptionUse } from './types';
import { exclusive, fail, failArg, find, parseUintWord, requires, uintArg } from './util/b-opts';
import { MAX_NSTAMPS, nstampsMaskFor, recentStore } from './util/b-recent-store';

export type RecentCommand = 'set' | 'rcheck' | 'update' | 'remove';

export interface RecentOptions {
  command: RecentCommand;
  invert: boolean;
  seconds: number; // 0: not given
  reap: boolean;
  hitcount: number; // 0: not given
  rttl: boolean;
  name: string;
  mask: Uint8Array;
  side: 'source' | 'dest';
}

const COMMANDS: readonly RecentCommand[] = ['set', 'rcheck', 'update', 'remove'];
const NAME_LEN = 200; // XT_RECENT_NAME_LEN, including the NUL

/** inet_aton: 1-4 parts, each decimal, 0x hex or 0 octal; the last part fills the remaining bytes. */
export function inetAton(word: string): Uint8Array | undefined {
  const parts = word.split('.');
  if (parts.length > 4) return undefined;
  const vals = parts.map((p) => parseUintWord(p));
  if (vals.some((v) => v === undefined)) return undefined;
  const last = vals.pop()!;
  if (vals.some((v) => v! > 255) || last >= 2 ** (8 * (4 - vals.length))) return undefined;
  const out = new Uint8Array(4);
  vals.forEach((v, i) => (out[i] = v!));
  for (let i = 3, v = last; i >= vals.length; i--, v = Math.floor(v / 256)) out[i] = v & 255;
  return out;
}

/** XTTYPE_HOST: a numeric address as getaddrinfo reads it (inet_aton for IPv4: "24" is 0.0.0.24). */
function parseMask(use: OptionUse, family: Family): Uint8Array {
  const word = use.args[0] ?? '';
  const a = family === 4 ? inetAton(word) : parseIpAddr(word, family);
  if (!a) failArg(use, `host/network "${word}" not found`);
  return a!;
}

const recent: MatchExtension<RecentOptions> = {
  kind: 'match',
  name: 'recent',
  options: [
    { name: 'set', args: 0, invertible: true },
    { name: 'rcheck', args: 0, invertible: true },
    { name: 'update', args: 0, invertible: true },
    { name: 'remove', args: 0, invertible: true },
    { name: 'seconds', args: 1 },
    { name: 'reap', args: 0 },
    { name: 'hitcount', args: 1 },
    { name: 'rttl', args: 0 },
    { name: 'name', args: 1 },
    { name: 'rsource', args: 0 },
    { name: 'rdest', args: 0 },
    { name: 'mask', args: 1 },
  ],
  parse(uses, ctx) {
    const o: RecentOptions = {
      command: 'set',
      invert: false,
      seconds: 0,
      reap: false,
      hitcount: 0,
      rttl: false,
      name: 'DEFAULT',
      mask: new Uint8Array(ctx.family === 4 ? 4 : 16).fill(0xff),
      side: 'source',
    };
    let cmd: OptionUse | undefined;
    for (const u of uses) {
      switch (u.name) {
        case 'set':
        case 'rcheck':
        case 'update':
        case 'remove':
          cmd = u;
          o.command = u.name;
          if (u.negated) o.invert = true;
          break;
        case 'seconds':
          o.seconds = uintArg(u, 1, 0xffffffff, 'recent');
          break;
        case 'reap':
          o.reap = true;
          break;
        case 'hitcount':
          o.hitcount = uintArg(u, 0, 0xffffffff, 'recent');
          break;
        case 'rttl':
          o.rttl = true;
          break;
        case 'name':
          // Longer names are cut to XT_RECENT_NAME_LEN - 1, as iptables 1.8.9 copies them.
          o.name = (u.args[0] ?? '').slice(0, NAME_LEN - 1);
          break;
        case 'rsource':
          o.side = 'source';
          break;
        case 'rdest':
          o.side = 'dest';
          break;
        case 'mask':
          try {
            o.mask = parseMask(u, ctx.family);
          } catch (e) {
            if (e instanceof AddrError) failArg(u, e.message);
            throw e;
          }
          break;
      }
    }
    // libxtables' final check, in option-table order.
    exclusive(uses, COMMANDS, 'recent');
    requires(uses, 'reap', 'seconds', 'recent');
    for (const c of ['set', 'remove']) {
      const r = find(uses, 'rttl');
      if (r && find(uses, c)) fail(r, `recent: option "--rttl" cannot be used together with "--${c}".`);
    }
    if (!cmd)
      throw new RuleError("recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'", ctx.loc);
    // What the kernel's recent_mt_check refuses (EINVAL at load).
    const kernel = (u: OptionUse | undefined, why: string): never =>
      fail(u ?? cmd!, `recent: ${why} (the kernel refuses this rule: Invalid argument)`);
    if ((o.command === 'set' || o.command === 'remove') && (o.seconds || o.hitcount)) {
      kernel(
        find(uses, 'seconds') ?? find(uses, 'hitcount'),
        `--seconds and --hitcount do not apply to --${o.command}`,
      );
    }
    if (o.hitcount >= MAX_NSTAMPS) {
      kernel(find(uses, 'hitcount'), `--hitcount ${o.hitcount} is larger than the allowed maximum ${MAX_NSTAMPS - 1}`);
    }
    const nameUse = find(uses, 'name');
    if (o.name === '' || o.name.length >= NAME_LEN || o.name.includes('/') || o.name === '.' || o.name === '..') {
      kernel(nameUse, `invalid list name "${o.name}"`);
    }
    return o;
  },
  format(o, family) {
    const w: string[] = [];
    if (o.invert) w.push('!');
    w.push(`--${o.command}`);
    if (o.seconds) w.push('--seconds', String(o.seconds));
    if (o.reap) w.push('--reap');
    if (o.hitcount) w.push('--hitcount', String(o.hitcount));
    if (o.rttl) w.push('--rttl');
    w.push('--name', o.name);
    if (family === 4 || family === 6) w.push('--mask', formatIpAddr(o.mask));
    w.push(o.side === 'source' ? '--rsource' : '--rdest');
    return w.join(' ');
  },
  match(o, ctx) {
    return recentMatch(o, ctx);
  },
};

/** recent_mt in net/netfilter/xt_recent.c. */
function recentMatch(o: RecentOptions, ctx: MatchContext): boolean {
  const { pkt, meta } = ctx;
  const addr = o.side === 'dest' ? pkt.dst : pkt.src;
  let ttl = pkt.ttl;
  // The kernel uses the TTL as seen before forwarding: forwarded packets (out device, no local socket) get +1.
  if (
    meta.outIface !== undefined &&
    meta.hook !== 'OUTPUT' &&
    (meta.hook === 'FORWARD' || meta.inIface !== undefined)
  ) {
    ttl = (ttl + 1) & 0xff;
  }
  let ret = o.invert;
  const t = recentStore.table(o.name, o.mask, nstampsMaskFor(o.hitcount));
  const masked = new Uint8Array(addr.length);
  for (let i = 0; i < addr.length; i++) masked[i] = addr[i]! & (t.mask[i] ?? 0xff);
  const e = t.lookup(masked, pkt.family, o.rttl ? ttl : 0);
  if (!e) {
    if (o.command !== 'set') return ret;
    t.add(masked, pkt.family, ttl, ctx.now);
    return !ret;
  }
  if (o.command === 'set') ret = !ret;
  else if (o.command === 'remove') {
    t.remove(e);
    return !ret;
  } else {
    const time = ctx.now - o.seconds * 1000;
    let hits = 0;
    for (let i = 0; i < e.nstamps; i++) {
      if (o.seconds && time > e.stamps[i]!) continue;
      if (!o.hitcount || ++hits >= o.hitcount) {
        ret = !ret;
        break;
      }
    }
    if (o.reap) t.reap(time, e);
  }
  if (o.command === 'set' || (o.command === 'update' && ret)) {
    t.touch(e, ctx.now);
    e.ttl = ttl;
  }
  return ret;
}

export default recent;
