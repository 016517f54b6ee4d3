// -m tcp (libxt_tcp.c, kernel xt_tcpudp.c). `--syn` is stored as `--tcp-flags FIN,SYN,RST,ACK SYN` and printed that
// way. iptables-nft 1.8.9 (the kernel nfqwall is tested against) loads ports and flags as nft payload compares, which
// never hotdrop; only a rule with --tcp-option, or with no test at all, keeps the xt match and its hotdrops.
import type { MatchContext, MatchExtension, OptionUse, ParsedPacket } from './types';
import { badArg, badOpt, bang, byName, parseUintWord } from './util/opts';
import {
  ALL_PORTS,
  formatPortRange,
  isAllPorts,
  nftPortsMatch,
  noPortTest,
  parsePortRange,
  portInRange,
  transportStart,
  type PortRange,
} from './util/ports';

export interface TcpOptions {
  sport: PortRange;
  sportInvert: boolean;
  dport: PortRange;
  dportInvert: boolean;
  /** Flag bits examined, and the value they must have. */
  flagMask: number;
  flagCmp: number;
  flagsInvert: boolean;
  /** TCP option kind to look for; 0 = none. */
  option: number;
  optionInvert: boolean;
}

/** libxt_tcp's tcp_flag_names, in the order print_tcpf searches them. */
const FLAG_NAMES: ReadonlyArray<[string, number]> = [
  ['FIN', 0x01],
  ['SYN', 0x02],
  ['RST', 0x04],
  ['PSH', 0x08],
  ['ACK', 0x10],
  ['URG', 0x20],
  ['ALL', 0x3f],
  ['NONE', 0],
];

function parseFlags(use: OptionUse, i: number): number {
  let bits = 0;
  // strtok(","): empty items are skipped, so "" is no flag at all.
  for (const word of (use.args[i] ?? '').split(',').filter((w) => w !== '')) {
    const f = FLAG_NAMES.find(([name]) => name === word.toUpperCase());
    if (!f) badArg(use, `Unknown TCP flag \`${word}'`, i);
    bits |= f[1];
  }
  return bits;
}

export function formatTcpFlags(flags: number): string {
  const names: string[] = [];
  let rest = flags;
  while (rest) {
    const f = FLAG_NAMES.find(([, bit]) => (rest & bit) !== 0);
    if (!f) break;
    names.push(f[0]);
    rest &= ~f[1];
  }
  return names.length ? names.join(',') : 'NONE';
}

/** xt_tcpudp tcp_find_option over the option bytes; undefined when they are cut short (hotdrop). */
function hasTcpOption(pkt: ParsedPacket, off: number, kind: number): boolean | undefined {
  const data = pkt.data;
  const doff = (data[off + 12] >> 4) * 4;
  if (doff < 20) return undefined;
  const end = off + doff;
  if (end > data.length) return undefined;
  for (let i = off + 20; i < end; ) {
    if (data[i] === kind) return true;
    if (data[i] < 2) i++;
    else i += (i + 1 < end ? data[i + 1] : 0) || 1;
  }
  return false;
}

/** Whether iptables-nft keeps the xt tcp match for these options (add_nft_tcp: an option test, or nothing at all). */
export function tcpUsesXt(o: TcpOptions): boolean {
  return o.option !== 0 || (noPortTest(o) && o.flagMask === 0 && o.flagCmp === 0 && !o.flagsInvert && !o.optionInvert);
}

/** xt_tcpudp tcp_mt. */
function xtMatch(o: TcpOptions, ctx: MatchContext): boolean {
  const pkt = ctx.pkt;
  if (pkt.fragOffset !== 0) {
    // "Dropping evil TCP offset=1 frag": a fragment at offset 8 could overwrite the ports and flags.
    if (pkt.fragOffset === 8) ctx.hotdrop = true;
    return false;
  }
  const off = transportStart(pkt, 20);
  if (off < 0) {
    ctx.hotdrop = true;
    return false;
  }
  const d = pkt.data;
  if (!portInRange(o.sport, (d[off] << 8) | d[off + 1], o.sportInvert)) return false;
  if (!portInRange(o.dport, (d[off + 2] << 8) | d[off + 3], o.dportInvert)) return false;
  if (((d[off + 13] & o.flagMask) === o.flagCmp) === o.flagsInvert) return false;
  if (o.option) {
    const found = hasTcpOption(pkt, off, o.option);
    if (found === undefined) {
      ctx.hotdrop = true;
      return false;
    }
    if (found === o.optionInvert) return false;
  }
  return true;
}

/** The nft payload compares iptables-nft emits instead: a load that fails (later fragment, short header) is no match. */
function nftMatch(o: TcpOptions, pkt: ParsedPacket): boolean {
  const ports = !isAllPorts(o.sport) || !isAllPorts(o.dport);
  if (!ports && o.flagMask === 0) return true;
  const off = transportStart(pkt, o.flagMask ? 14 : 4);
  if (off < 0) return false;
  const d = pkt.data;
  if (ports && !nftPortsMatch(o, (d[off] << 8) | d[off + 1], (d[off + 2] << 8) | d[off + 3])) return false;
  if (o.flagMask && ((d[off + 13] & o.flagMask) === o.flagCmp) === o.flagsInvert) return false;
  return true;
}

const tcp: MatchExtension<TcpOptions> = {
  kind: 'match',
  // Ports only: flags and options change from packet to packet of a connection.
  flowStable: (o) => o.flagMask === 0 && o.flagCmp === 0 && !o.flagsInvert && o.option === 0 && !o.optionInvert,
  name: 'tcp',
  protocolMatch: 6,
  options: [
    { name: 'sport', aliases: ['source-port'], args: 1, invertible: true },
    { name: 'dport', aliases: ['destination-port'], args: 1, invertible: true },
    { name: 'syn', args: 0, invertible: true },
    { name: 'tcp-flags', args: 2, invertible: true },
    { name: 'tcp-option', args: 1, invertible: true },
  ],
  parse(opts) {
    const m = byName(opts, 'tcp');
    const sp = m.get('sport');
    const dp = m.get('dport');
    // Built whole, in this order (sport is read before dport): a ruleset keeps one per tcp match.
    const o: TcpOptions = {
      sport: sp ? parsePortRange(sp, 'tcp') : { min: ALL_PORTS.min, max: ALL_PORTS.max },
      sportInvert: sp ? sp.negated : false,
      dport: dp ? parsePortRange(dp, 'tcp') : { min: ALL_PORTS.min, max: ALL_PORTS.max },
      dportInvert: dp ? dp.negated : false,
      flagMask: 0,
      flagCmp: 0,
      flagsInvert: false,
      option: 0,
      optionInvert: false,
    };
    const syn = m.get('syn');
    const flags = m.get('tcp-flags');
    if (syn && flags) {
      const later = syn.loc.column > flags.loc.column ? syn : flags;
      badOpt(later, "Only one of `--syn' or `--tcp-flags'  allowed");
    }
    if (syn) {
      o.flagMask = 0x17;
      o.flagCmp = 0x02;
      o.flagsInvert = syn.negated;
    } else if (flags) {
      o.flagMask = parseFlags(flags, 0);
      o.flagCmp = parseFlags(flags, 1);
      o.flagsInvert = flags.negated;
    }
    const opt = m.get('tcp-option');
    if (opt) {
      const v = parseUintWord(opt.args[0] ?? '', 255);
      if (v === undefined || v < 1) badArg(opt, `Bad TCP option "${opt.args[0] ?? ''}"`);
      o.option = v;
      o.optionInvert = opt.negated;
    }
    return o;
  },
  format(o) {
    const out: string[] = [];
    if (!isAllPorts(o.sport)) out.push(`${bang(o.sportInvert)}--sport ${formatPortRange(o.sport)}`);
    if (!isAllPorts(o.dport)) out.push(`${bang(o.dportInvert)}--dport ${formatPortRange(o.dport)}`);
    if (o.option || o.optionInvert) out.push(`${bang(o.optionInvert)}--tcp-option ${o.option}`);
    if (o.flagMask || o.flagsInvert)
      out.push(`${bang(o.flagsInvert)}--tcp-flags ${formatTcpFlags(o.flagMask)} ${formatTcpFlags(o.flagCmp)}`);
    return out.join(' ');
  },
  match(o, ctx) {
    if (ctx.pkt.protocol !== 6) return false;
    return tcpUsesXt(o) ? xtMatch(o, ctx) : nftMatch(o, ctx.pkt);
  },
};

export default tcp;
