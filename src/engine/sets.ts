// Named sets (ipset) as the set match tests them (net/netfilter/ipset/ip_set_hash_*.c, ip_set_bitmap_port.c,
// ip_set_list_set.c, ip_set_getport.c). IpsetStore loads `ipset save` text (create/add lines) for hash:ip, hash:net,
// hash:ip,port, hash:net,port, bitmap:port and list:set. Timeouts, counters and comments are read and ignored:
// an entry is a member for as long as the store holds it.
import type { PacketMeta, ParsedPacket, SetView } from '../extensions/types';
import { parseIpAddr, prefixMask } from '../rules/addr';
import type { Family } from '../rules/model';
import { parseProtocol } from '../rules/services';

/** No sets loaded: every set name is unknown. */
export class EmptySets implements SetView {
  test(_name: string, _pkt: ParsedPacket, _meta: PacketMeta, _dims: ('src' | 'dst')[]): boolean | undefined {
    return undefined;
  }
}

type SetType = 'hash:ip' | 'hash:net' | 'hash:ip,port' | 'hash:net,port' | 'bitmap:port' | 'list:set';
const TYPES: readonly SetType[] = ['hash:ip', 'hash:net', 'hash:ip,port', 'hash:net,port', 'bitmap:port', 'list:set'];

interface IpSet {
  name: string;
  type: SetType;
  family: Family;
  /** hash:*: prefix length → (key → nomatch). hash:ip uses the full length only. */
  byPrefix: Map<number, Map<string, boolean>>;
  /** The prefix lengths present, most specific first. */
  prefixOrder: number[];
  /** bitmap:port */
  ports: Set<number>;
  range?: [number, number];
  /** list:set */
  members: string[];
}

export class IpsetError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'IpsetError';
  }
}

/** Splits a line into words, honouring double quotes (comments). */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) !== null) out.push(m[1] ?? m[2]);
  return out;
}

function hexKey(a: Uint8Array): string {
  return Buffer.from(a).toString('hex');
}

function maskedKey(a: Uint8Array, prefix: number): string {
  const m = prefixMask(prefix, a.length);
  return hexKey(a.map((b, i) => b & m[i]));
}

/** `proto:port`, `port` (tcp), `icmp:type/code`: the value ipset's port dimension holds, with its protocol. */
function parsePortPart(s: string, line: number): { proto: number; port: number } {
  const colon = s.indexOf(':');
  const protoWord = colon >= 0 ? s.slice(0, colon) : 'tcp';
  const rest = colon >= 0 ? s.slice(colon + 1) : s;
  let proto: number;
  try {
    proto = parseProtocol(protoWord === 'icmpv6' ? 'ipv6-icmp' : protoWord);
  } catch {
    throw new IpsetError(`unknown protocol "${protoWord}"`, line);
  }
  if (proto === 1 || proto === 58) {
    const [t, c] = rest.split('/');
    const type = Number(t);
    const code = c === undefined ? 0 : Number(c);
    if (!Number.isInteger(type) || !Number.isInteger(code)) throw new IpsetError(`bad ICMP type/code "${rest}"`, line);
    return { proto, port: ((type & 0xff) << 8) | (code & 0xff) };
  }
  const port = Number(rest);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new IpsetError(`bad port "${rest}"`, line);
  return { proto, port };
}

/** ip_set_get_ip{4,6}_port: the port dimension of a packet, or undefined (a later fragment, a short header). */
function packetPort(pkt: ParsedPacket, src: boolean): { proto: number; port: number } | undefined {
  if (pkt.fragOffset !== 0) return undefined;
  const p = pkt.protocol;
  if (p === 6 || p === 17 || p === 132 || p === 136) {
    if (pkt.sport < 0) return undefined;
    return { proto: p, port: src ? pkt.sport : pkt.dport };
  }
  if ((p === 1 && pkt.family === 4) || (p === 58 && pkt.family === 6)) {
    if (pkt.icmpType < 0) return undefined;
    return { proto: p, port: (pkt.icmpType << 8) | pkt.icmpCode };
  }
  // Other protocols have no ports: ipset matches them with port 0.
  return { proto: p, port: 0 };
}

export class IpsetStore implements SetView {
  private readonly sets = new Map<string, IpSet>();

  /** Parses `ipset save` output. Throws IpsetError for lines it cannot honour. */
  static parse(text: string): IpsetStore {
    const s = new IpsetStore();
    s.load(text);
    return s;
  }

  names(): string[] {
    return [...this.sets.keys()];
  }

  load(text: string): void {
    const lines = text.split('\n');
    lines.forEach((raw, i) => {
      const line = i + 1;
      const w = words(raw.trim());
      if (w.length === 0 || w[0].startsWith('#')) return;
      if (w[0] === 'create' || w[0] === '-N' || w[0] === 'n') this.create(w, line);
      else if (w[0] === 'add' || w[0] === '-A' || w[0] === 'a') this.add(w, line);
      else throw new IpsetError(`unknown command "${w[0]}"`, line);
    });
  }

  private create(w: string[], line: number): void {
    const [, name, type] = w;
    if (!name || !type) throw new IpsetError('create needs a name and a type', line);
    if (!TYPES.includes(type as SetType)) throw new IpsetError(`set type "${type}" is not supported`, line);
    const set: IpSet = { name, type: type as SetType, family: 4, byPrefix: new Map(), prefixOrder: [], ports: new Set(), members: [] };
    for (let i = 3; i < w.length; i++) {
      if (w[i] === 'family') set.family = w[++i] === 'inet6' ? 6 : 4;
      else if (w[i] === 'range' && set.type === 'bitmap:port') {
        const [a, b] = (w[++i] ?? '').split('-').map(Number);
        set.range = [a, b ?? a];
      }
    }
    this.sets.set(name, set);
  }

  private add(w: string[], line: number): void {
    const [, name, entry] = w;
    const set = this.sets.get(name ?? '');
    if (!set) throw new IpsetError(`add to unknown set "${name}"`, line);
    if (!entry) throw new IpsetError('add needs an entry', line);
    const nomatch = w.includes('nomatch');
    switch (set.type) {
      case 'list:set':
        set.members.push(entry);
        return;
      case 'bitmap:port': {
        const [a, b] = entry.split('-').map(Number);
        for (let p = a; p <= (b ?? a); p++) set.ports.add(p);
        return;
      }
      default: {
        const [ipPart, portPart] = set.type.endsWith(',port') ? splitOnce(entry) : [entry, undefined];
        const slash = ipPart.indexOf('/');
        const addr = parseIpAddr(slash >= 0 ? ipPart.slice(0, slash) : ipPart, set.family);
        if (!addr) throw new IpsetError(`bad IPv${set.family} address "${ipPart}"`, line);
        const prefix = slash >= 0 ? Number(ipPart.slice(slash + 1)) : addr.length * 8;
        if (!Number.isInteger(prefix) || prefix < 0 || prefix > addr.length * 8) throw new IpsetError(`bad prefix in "${ipPart}"`, line);
        let key = maskedKey(addr, prefix);
        if (set.type.endsWith(',port')) {
          if (portPart === undefined) throw new IpsetError(`"${entry}" needs ,port`, line);
          const pp = parsePortPart(portPart, line);
          key += `,${pp.proto}:${pp.port}`;
        }
        let m = set.byPrefix.get(prefix);
        if (!m) {
          set.byPrefix.set(prefix, (m = new Map()));
          set.prefixOrder = [...set.byPrefix.keys()].sort((a, b) => b - a);
        }
        m.set(key, nomatch);
      }
    }
  }

  test(name: string, pkt: ParsedPacket, meta: PacketMeta, dims: ('src' | 'dst')[], depth = 0): boolean | undefined {
    const set = this.sets.get(name);
    if (!set) return undefined;
    switch (set.type) {
      case 'list:set':
        // ip_set_list_set: the first member set that matches decides; a member of the wrong family does not match.
        if (depth > 8) return false;
        return set.members.some((m) => this.test(m, pkt, meta, dims, depth + 1) === true);
      case 'bitmap:port': {
        const p = packetPort(pkt, dims[0] === 'src');
        if (!p || (p.proto !== 6 && p.proto !== 17)) return false;
        if (set.range && (p.port < set.range[0] || p.port > set.range[1])) return false;
        return set.ports.has(p.port);
      }
      default: {
        if (set.family !== pkt.family) return false;
        const addr = dims[0] === 'src' ? pkt.src : pkt.dst;
        let suffix = '';
        if (set.type.endsWith(',port')) {
          const p = packetPort(pkt, (dims[1] ?? dims[0]) === 'src');
          if (!p) return false;
          suffix = `,${p.proto}:${p.port}`;
        }
        // Most specific prefix first; a nomatch entry there makes the packet a non-member.
        for (const len of set.prefixOrder) {
          const hit = set.byPrefix.get(len)!.get(maskedKey(addr, len) + suffix);
          if (hit !== undefined) return !hit;
        }
        return false;
      }
    }
  }
}

function splitOnce(entry: string): [string, string | undefined] {
  const i = entry.indexOf(',');
  return i < 0 ? [entry, undefined] : [entry.slice(0, i), entry.slice(i + 1)];
}
