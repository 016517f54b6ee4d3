// -m dccp: DCCP ports, packet types and options (xt_dccp).
import type { MatchExtension, OptionUse } from './types';
import { RuleError } from './types';
import { NameError, parsePort } from '../rules/services';
import { failArg, uintArg } from './util/b-opts';

interface PortRange {
  min: number;
  max: number;
  invert: boolean;
}

export interface DccpOptions {
  sport?: PortRange;
  dport?: PortRange;
  types?: { mask: number; invert: boolean };
  option?: { value: number; invert: boolean };
}

export const DCCP_TYPES = [
  'REQUEST',
  'RESPONSE',
  'DATA',
  'ACK',
  'DATAACK',
  'CLOSEREQ',
  'CLOSE',
  'RESET',
  'SYNC',
  'SYNCACK',
  'INVALID',
] as const;

/**
 * XTTYPE_PORTRC: `port[:port]`, each resolved by getaddrinfo with no hints: decimal numbers wrap to 16 bits
 * (99999 is 34463, as iptables 1.8.9 stores it), names come from the services database of any protocol.
 */
function ports(u: OptionUse): PortRange {
  const word = u.args[0] ?? '';
  const one = (w: string, dflt: number): number => {
    if (w === '') return dflt;
    if (/^[0-9]+$/.test(w)) return Number(BigInt(w) % 65536n);
    try {
      if (/^[A-Za-z]/.test(w)) return parsePort(w);
    } catch (e) {
      if (!(e instanceof NameError)) throw e;
    }
    return failArg(u, `Port "${w}" does not resolve to anything.`);
  };
  const i = word.indexOf(':');
  const min = one(i < 0 ? word : word.slice(0, i), 0);
  const max = i < 0 ? min : one(word.slice(i + 1), 65535);
  return { min, max, invert: u.negated };
}

function fmtPorts(p: PortRange): string {
  return p.min === p.max ? String(p.min) : `${p.min}:${p.max}`;
}

/** __dccp_hdr_len: the generic header (12 or 16 bytes with X) plus the type's own subheader. */
function headerLength(data: Uint8Array, off: number): number {
  const type = (data[off + 8]! >> 1) & 0xf;
  const x = data[off + 8]! & 1;
  const basic = x ? 16 : 12;
  const sub = type === 2 ? 0 : type === 0 ? 4 : type === 1 || type === 7 ? 12 : 8;
  return basic + sub;
}

const dccp: MatchExtension<DccpOptions> = {
  kind: 'match',
  // Ports only: packet types and options change from packet to packet of a connection.
  flowStable: (o) => o.types === undefined && o.option === undefined,
  name: 'dccp',
  protocolMatch: 33,
  options: [
    { name: 'source-port', aliases: ['sport'], args: 1, invertible: true },
    { name: 'destination-port', aliases: ['dport'], args: 1, invertible: true },
    { name: 'dccp-types', args: 1, invertible: true },
    { name: 'dccp-option', args: 1, invertible: true },
  ],
  parse(uses, ctx) {
    if (!ctx.proto || ctx.proto.value !== 33 || ctx.proto.negated) {
      throw new RuleError('dccp: needs `-p dccp` (the kernel refuses this rule: Invalid argument)', ctx.loc);
    }
    const o: DccpOptions = {};
    for (const u of uses) {
      if (u.name === 'source-port') o.sport = ports(u);
      else if (u.name === 'destination-port') o.dport = ports(u);
      else if (u.name === 'dccp-types') {
        let mask = 0;
        for (const t of (u.args[0] ?? '').split(',')) {
          const i = DCCP_TYPES.findIndex((n) => n === t.toUpperCase());
          if (i < 0) failArg(u, `Unknown DCCP type \`${t}'`);
          mask |= 1 << i;
        }
        o.types = { mask, invert: u.negated };
      } else o.option = { value: uintArg(u, 1, 255, 'dccp'), invert: u.negated };
    }
    return o;
  },
  format(o) {
    const w: string[] = [];
    if (o.sport) w.push(...(o.sport.invert ? ['!'] : []), '--sport', fmtPorts(o.sport));
    if (o.dport) w.push(...(o.dport.invert ? ['!'] : []), '--dport', fmtPorts(o.dport));
    if (o.types) {
      const names = DCCP_TYPES.filter((_, i) => o.types!.mask & (1 << i));
      w.push(...(o.types.invert ? ['!'] : []), '--dccp-types', names.join(','));
    }
    if (o.option) w.push(...(o.option.invert ? ['!'] : []), '--dccp-option', String(o.option.value));
    return w.join(' ');
  },
  match(o, ctx) {
    const { pkt } = ctx;
    const off = pkt.l4Offset;
    if (pkt.fragOffset !== 0 || off < 0 || off + 12 > pkt.data.length) return false;
    const d = pkt.data;
    const sport = (d[off]! << 8) | d[off + 1]!;
    const dport = (d[off + 2]! << 8) | d[off + 3]!;
    const inR = (p: PortRange, v: number) => (p.min <= v && v <= p.max) !== p.invert;
    if (o.sport && !inR(o.sport, sport)) return false;
    if (o.dport && !inR(o.dport, dport)) return false;
    if (o.types && ((o.types.mask & (1 << ((d[off + 8]! >> 1) & 0xf))) !== 0) === o.types.invert) return false;
    if (o.option) {
      const start = off + headerLength(d, off);
      const end = Math.min(off + d[off + 4]! * 4, d.length);
      let found = false;
      for (let i = start; i < end;) {
        if (d[i] === o.option.value) {
          found = true;
          break;
        }
        i += d[i]! < 2 ? 1 : d[i + 1] || 1;
      }
      if (found === o.option.invert) return false;
    }
    return true;
  },
};

export default dccp;
