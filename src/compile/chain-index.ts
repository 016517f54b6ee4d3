// Hashed dispatch for one chain: for a packet, the rules that could match it, in rule order. Every rule sits in
// exactly one list (its key's, or the wildcards); a lookup picks the few lists the packet's keys select and a
// Candidates cursor merges them by rule index. keys.ts says why a rule outside those lists cannot match.
// Rather than cutting the chain into runs of one key kind with a table per run, every rule is filed once and the
// lookup merges by index: a chain that alternates key kinds (destination, then mark, then interface) costs no more
// than one that does not, and a run boundary never forces a walk.
import type { PacketMeta, ParsedPacket } from '../extensions/types';
import { ipv6HeaderChainBroken } from '../engine/packet';
import type { Chain } from '../rules/model';
import { transportStart } from '../extensions/util/ports';
import { dstKey, PORT_PROTOCOLS, ruleKey, type DstKey, type RuleKey } from './keys';

/** Ascending rule positions. Plain arrays of small integers: built in order, never sorted, never copied. */
type List = number[];

const EMPTY: List = [];

interface ProtoEntry {
  /** Rules keyed on this destination and protocol only. */
  any: List;
  /** Rules keyed on a destination port too, by port. */
  byPort: Map<number, List>;
  /** All rules of byPort, in order: the candidates when the port cannot be read and reading it would hotdrop. */
  allPorts: List;
}

interface DstEntry {
  any: List;
  byProto: Map<number, ProtoEntry>;
}

export interface IndexStats {
  rules: number;
  wild: number;
  dst: number;
  mark: number;
  iface: number;
}

/** Rule positions in a chain, merged from a few ascending lists; `next()` gives -1 when none is left. */
export class Candidates {
  private readonly pos: number[];

  constructor(private readonly lists: readonly List[]) {
    this.pos = lists.map(() => 0);
  }

  /** Positions the cursor at the first candidate at or after rule position `from`. */
  seek(from: number): void {
    for (let k = 0; k < this.lists.length; k++) this.pos[k] = lowerBound(this.lists[k], from);
  }

  next(): number {
    const lists = this.lists;
    if (lists.length === 1) {
      const l = lists[0];
      const p = this.pos[0];
      if (p >= l.length) return -1;
      this.pos[0] = p + 1;
      return l[p];
    }
    let best = -1;
    let bestK = -1;
    for (let k = 0; k < lists.length; k++) {
      const l = lists[k];
      const p = this.pos[k];
      if (p < l.length && (best < 0 || l[p] < best)) {
        best = l[p];
        bestK = k;
      }
    }
    if (bestK >= 0) this.pos[bestK]++;
    return best;
  }
}

function lowerBound(a: List, v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function push<K>(m: Map<K, List>, k: K, i: number): void {
  const l = m.get(k);
  if (l) l.push(i);
  else m.set(k, [i]);
}

export class ChainIndex {
  private readonly wild: List = [];
  private readonly byDst = new Map<DstKey, DstEntry>();
  private readonly byMark: { mask: number; values: Map<number, List> }[] = [];
  private readonly byIn = new Map<string, List>();
  private readonly byOut = new Map<string, List>();
  readonly stats: IndexStats;

  /**
   * One pass in rule order, so every list comes out ascending. Nothing here refers to `chain` afterwards: the index
   * serves any chain whose rules have the same keys in the same order (a reload reuses it, compile.ts).
   */
  constructor(
    chain: Chain,
    readonly keys: readonly RuleKey[] = chain.rules.map(ruleKey),
  ) {
    const stats: IndexStats = { rules: keys.length, wild: 0, dst: 0, mark: 0, iface: 0 };
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      switch (k.kind) {
        case 'wild':
          this.wild.push(i);
          stats.wild++;
          break;
        case 'dst': {
          stats.dst++;
          let d = this.byDst.get(k.dst);
          if (!d) {
            d = { any: [], byProto: new Map() };
            this.byDst.set(k.dst, d);
          }
          if (k.proto === undefined) {
            d.any.push(i);
            break;
          }
          let p = d.byProto.get(k.proto);
          if (!p) {
            p = { any: [], byPort: new Map(), allPorts: [] };
            d.byProto.set(k.proto, p);
          }
          if (k.port === undefined) p.any.push(i);
          else {
            push(p.byPort, k.port, i);
            p.allPorts.push(i);
          }
          break;
        }
        case 'mark': {
          stats.mark++;
          let m = this.byMark.find((x) => x.mask === k.mask);
          if (!m) {
            m = { mask: k.mask, values: new Map() };
            this.byMark.push(m);
          }
          push(m.values, k.value, i);
          break;
        }
        case 'in':
          stats.iface++;
          push(this.byIn, k.iface, i);
          break;
        case 'out':
          stats.iface++;
          push(this.byOut, k.iface, i);
          break;
      }
    }
    this.stats = stats;
  }

  /**
   * The candidates for a packet as it is now, or undefined when the chain must be walked rule by rule (an IPv6 packet
   * whose header chain is broken: -p would hotdrop on it, so no protocol key may skip a rule).
   */
  lookup(pkt: ParsedPacket, meta: PacketMeta): Candidates | undefined {
    if (pkt.family === 6 && ipv6HeaderChainBroken(pkt)) return undefined;
    const lists: List[] = [];
    if (this.wild.length) lists.push(this.wild);
    if (this.byDst.size) {
      const d = this.byDst.get(dstKey(pkt.dst));
      if (d) {
        if (d.any.length) lists.push(d.any);
        const p = d.byProto.get(pkt.protocol);
        if (p) {
          if (p.any.length) lists.push(p.any);
          if (p.byPort.size) {
            const l = portList(p, pkt);
            if (l.length) lists.push(l);
          }
        }
      }
    }
    for (const m of this.byMark) {
      const l = m.values.get((meta.mark & m.mask) >>> 0);
      if (l) lists.push(l);
    }
    if (this.byIn.size) {
      const l = this.byIn.get(meta.inIface ?? '');
      if (l) lists.push(l);
    }
    if (this.byOut.size) {
      const l = this.byOut.get(meta.outIface ?? '');
      if (l) lists.push(l);
    }
    return new Candidates(lists);
  }
}

/** The port-keyed rules a packet of this destination and protocol can match. */
function portList(p: ProtoEntry, pkt: ParsedPacket): List {
  const spec = PORT_PROTOCOLS.get(pkt.protocol);
  if (!spec) return EMPTY;
  const off = transportStart(pkt, spec.need);
  if (off < 0) {
    // tcp/udp payload compares fail without effect on a fragment or short header; sctp's xt match hotdrops on a short
    // one, so every port-keyed rule must run.
    return spec.hotdropsShort ? p.allPorts : EMPTY;
  }
  return p.byPort.get((pkt.data[off + 2] << 8) | pkt.data[off + 3]) ?? EMPTY;
}
