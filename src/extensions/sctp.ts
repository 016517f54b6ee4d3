// -m sctp (libxt_sctp.c, kernel xt_sctp.c): ports, and `--chunk-types any|all|only LIST` where LIST names chunk
// types, each optionally with `:FLAGS` (upper case = bit set, lower case = bit clear), or ALL / NONE.
import type { MatchExtension, OptionUse } from './types';
import { badArg, badOpt, bang, byName } from './util/opts';
import { formatPortRange, parsePortRange, portInRange, xtPorts, type PortRange } from './util/ports';

interface ChunkName {
  name: string;
  type: number;
  /** Flag letters for bits 7..0, '-' where no flag is defined. */
  flags: string;
}

/** libxt_sctp's sctp_chunk_names. */
const CHUNKS: readonly ChunkName[] = [
  { name: 'DATA', type: 0, flags: '----IUBE' },
  { name: 'INIT', type: 1, flags: '--------' },
  { name: 'INIT_ACK', type: 2, flags: '--------' },
  { name: 'SACK', type: 3, flags: '--------' },
  { name: 'HEARTBEAT', type: 4, flags: '--------' },
  { name: 'HEARTBEAT_ACK', type: 5, flags: '--------' },
  { name: 'ABORT', type: 6, flags: '-------T' },
  { name: 'SHUTDOWN', type: 7, flags: '--------' },
  { name: 'SHUTDOWN_ACK', type: 8, flags: '--------' },
  { name: 'ERROR', type: 9, flags: '--------' },
  { name: 'COOKIE_ECHO', type: 10, flags: '--------' },
  { name: 'COOKIE_ACK', type: 11, flags: '--------' },
  { name: 'ECN_ECNE', type: 12, flags: '--------' },
  { name: 'ECN_CWR', type: 13, flags: '--------' },
  { name: 'SHUTDOWN_COMPLETE', type: 14, flags: '-------T' },
  { name: 'ASCONF', type: 193, flags: '--------' },
  { name: 'ASCONF_ACK', type: 128, flags: '--------' },
  { name: 'FORWARD_TSN', type: 192, flags: '--------' },
  { name: 'I_DATA', type: 64, flags: '----IUBE' },
  { name: 'RE_CONFIG', type: 130, flags: '--------' },
  { name: 'PAD', type: 132, flags: '--------' },
  { name: 'I_FORWARD_TSN', type: 194, flags: '--------' },
];

/** XT_NUM_SCTP_FLAGS: how many chunk types may carry flag conditions. */
const MAX_FLAG_INFOS = 4;

export type ChunkMatchType = 'any' | 'all' | 'only';

export interface SctpChunks {
  matchType: ChunkMatchType;
  /** Chunk types selected (all 256 for ALL). */
  types: Set<number>;
  /** Flag conditions per chunk type: (flags & mask) == value. */
  flagInfo: { type: number; value: number; mask: number }[];
  invert: boolean;
}

export interface SctpOptions {
  sport?: PortRange & { invert: boolean };
  dport?: PortRange & { invert: boolean };
  chunks?: SctpChunks;
}

function parseChunks(use: OptionUse): SctpChunks {
  const mt = (use.args[0] ?? '').toLowerCase();
  if (mt !== 'any' && mt !== 'all' && mt !== 'only')
    badArg(use, 'Match type has to be one of "ALL", "ANY" or "ONLY"');
  const list = use.args[1] ?? '';
  const types = new Set<number>();
  const flagInfo: SctpChunks['flagInfo'] = [];
  // ALL and NONE stand only alone; items are strtok()ed, so empty ones are skipped.
  if (list.toUpperCase() === 'ALL') for (let i = 0; i < 256; i++) types.add(i);
  else if (list.toUpperCase() !== 'NONE') {
    for (const item of list.split(',').filter((x) => x !== '')) {
      const colon = item.indexOf(':');
      const name = (colon < 0 ? item : item.slice(0, colon)).toUpperCase();
      const c = CHUNKS.find((x) => x.name === name);
      if (!c) badArg(use, `Unknown sctp chunk \`${colon < 0 ? item : item.slice(0, colon)}'`, 1);
      types.add(c.type);
      if (colon < 0) continue;
      // Conditions on one chunk type given twice are merged into one entry, as libxt_sctp does.
      let fi = flagInfo.find((f) => f.type === c.type);
      if (!fi) {
        if (flagInfo.length >= MAX_FLAG_INFOS)
          badArg(use, 'Number of chunk types with flags exceeds currently allowed limit.', 1);
        fi = { type: c.type, value: 0, mask: 0 };
        flagInfo.push(fi);
      }
      for (const ch of item.slice(colon + 1)) {
        const pos = c.flags.indexOf(ch.toUpperCase());
        if (pos < 0) badArg(use, `Invalid flags for chunk type ${c.type}`, 1);
        const bit = 1 << (7 - pos);
        fi.mask |= bit;
        if (/[A-Z]/.test(ch)) fi.value |= bit;
      }
    }
  }
  return { matchType: mt, types, flagInfo, invert: use.negated };
}

/**
 * iptables prints flag conditions with sctp_chunk_names[type], which is only right for the chunk types whose table
 * index is their number (DATA ... SHUTDOWN_COMPLETE); for later ones (I_DATA) the kernel keeps the condition but
 * iptables-save prints none (checked: `I_DATA:I` saves as `I_DATA`).
 */
const PRINTS_FLAGS_BELOW = 15;

function formatChunks(c: SctpChunks): string {
  let list: string;
  if (c.types.size === 0) list = 'NONE';
  else if (c.types.size === 256) list = 'ALL';
  else {
    const parts: string[] = [];
    for (let t = 0; t < 256; t++) {
      if (!c.types.has(t)) continue;
      const chunk = CHUNKS.find((x) => x.type === t);
      let s = chunk?.name ?? '';
      const fi = c.flagInfo.find((f) => f.type === t);
      if (fi && fi.mask !== 0 && chunk && t < PRINTS_FLAGS_BELOW) {
        s += ':';
        for (let i = 7; i >= 0; i--) {
          if (!(fi.mask & (1 << i))) continue;
          const letter = chunk.flags[7 - i];
          s += fi.value & (1 << i) ? letter : letter.toLowerCase();
        }
      }
      parts.push(s);
    }
    list = parts.join(',');
  }
  return `${bang(c.invert)}--chunk-types ${c.matchType} ${list}`;
}

/** xt_sctp match_packet over the chunks after the 12-byte common header; undefined on a bad chunk (hotdrop). */
function matchChunks(c: SctpChunks, data: Uint8Array, l4: number, end: number): boolean | undefined {
  const flagsOk = (type: number, flags: number): boolean => {
    const fi = c.flagInfo.find((f) => f.type === type);
    return !fi || (flags & fi.mask) === fi.value;
  };
  const pending = new Set(c.types);
  let off = l4 + 12;
  do {
    if (off + 4 > data.length) return undefined;
    const type = data[off];
    const flags = data[off + 1];
    const len = (data[off + 2] << 8) | data[off + 3];
    if (len === 0) return undefined;
    if (c.types.has(type)) {
      if (c.matchType === 'any' && flagsOk(type, flags)) return true;
      if (c.matchType === 'all' && flagsOk(type, flags)) pending.delete(type);
      if (c.matchType === 'only' && !flagsOk(type, flags)) return false;
    } else if (c.matchType === 'only') return false;
    off += (len + 3) & ~3;
  } while (off < end);
  if (c.matchType === 'all') return pending.size === 0;
  return c.matchType === 'only';
}

const sctp: MatchExtension<SctpOptions> = {
  kind: 'match',
  // Ports only: chunk types change from packet to packet of an association.
  flowStable: (o) => o.chunks === undefined,
  name: 'sctp',
  protocolMatch: 132,
  options: [
    { name: 'sport', aliases: ['source-port'], args: 1, invertible: true },
    { name: 'dport', aliases: ['destination-port'], args: 1, invertible: true },
    { name: 'chunk-types', args: 2, invertible: true },
  ],
  parse(opts) {
    const m = byName(opts, 'sctp');
    const o: SctpOptions = {};
    const sp = m.get('sport');
    if (sp) o.sport = { ...parsePortRange(sp, 'sctp'), invert: sp.negated };
    const dp = m.get('dport');
    if (dp) o.dport = { ...parsePortRange(dp, 'sctp'), invert: dp.negated };
    const ch = m.get('chunk-types');
    if (ch) {
      if ((ch.args[1] ?? '') === '') badOpt(ch, '--chunk-types requires two args');
      o.chunks = parseChunks(ch);
    }
    return o;
  },
  format(o) {
    const out: string[] = [];
    if (o.sport) out.push(`${bang(o.sport.invert)}--sport ${formatPortRange(o.sport)}`);
    if (o.dport) out.push(`${bang(o.dport.invert)}--dport ${formatPortRange(o.dport)}`);
    if (o.chunks) out.push(formatChunks(o.chunks));
    return out.join(' ');
  },
  match(o, ctx) {
    const pkt = ctx.pkt;
    if (pkt.protocol !== 132) return false;
    const ports = xtPorts(pkt, 12);
    if (ports === 'fragment') return false;
    if (ports === 'short') {
      ctx.hotdrop = true;
      return false;
    }
    if (o.sport && !portInRange(o.sport, ports.sport, o.sport.invert)) return false;
    if (o.dport && !portInRange(o.dport, ports.dport, o.dport.invert)) return false;
    if (o.chunks) {
      // The kernel walks chunks up to skb->len, the packet's length; bytes the queue did not copy count as cut short.
      const hit = matchChunks(o.chunks, pkt.data, pkt.l4Offset, pkt.length);
      if (hit === undefined) {
        ctx.hotdrop = true;
        return false;
      }
      if (hit === o.chunks.invert) return false;
    }
    return true;
  },
};

export default sctp;
