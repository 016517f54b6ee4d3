// The daemon side of nfqwall's connection table (docs/conntrack-table.md): a packet's ct* batch columns as the
// engine's ConnInfo, and the engine's ConnUpdate as the verdict's ctFlags/ctMarks/ctNat.
import type { ConnUpdate } from '../engine/decision';
import { parsePacket } from '../engine/packet';
import type { ConnInfo, ConnTuple, CtState, NatRequest } from '../extensions/types';
import type { CtEntry, CtNatRequest, CtTuple } from '../../native/index';
import type { PacketBatch } from '../native';
import { formatIpAddr, parseIpAddr } from '../rules/addr';
import type { Family } from '../rules/model';

/** PacketBatch.ctState values, in order. */
export const CT_STATES: readonly CtState[] = ['INVALID', 'NEW', 'ESTABLISHED', 'RELATED', 'UNTRACKED'];

/** PacketBatch.ctFlags bits. */
export const CT_BATCH_TABLE_FULL = 2;

/** VerdictOptions.ctFlags bits. */
export const CT_NOTRACK = 1;
export const CT_SET_MARK = 2;
export const CT_NAT_SRC_RAN = 4;
export const CT_NAT_DST_RAN = 8;
/** The trip sent REJECT replies (attached to the packet's connection, as the kernel's nf_ct_attach does). */
export const CT_REPLIED = 16;

/**
 * ConnInfo for a packet of the batch. The tuples and the remaining timeout are read from the connection table only
 * when a rule asks for them (--ctorigsrc, --ctrepldst, --ctexpire and the like): the entry's tuples are the real ones,
 * translated by NAT (xt_conntrack reads ct->tuplehash). Without an entry to read (a queue without ctEntry, or the entry
 * gone) the packet's own tuple stands for its direction's and its inverse for the other's.
 */
export class BatchConn implements ConnInfo {
  private tuples?: { orig: ConnTuple; reply: ConnTuple };
  private read?: CtEntry | null;

  constructor(
    public state: CtState,
    public status: number,
    public mark: number,
    public direction: 'ORIGINAL' | 'REPLY',
    public zone: number,
    private readonly data: Uint8Array,
    private readonly family: Family,
    private readonly lookup?: () => CtEntry | undefined,
  ) {}

  private entry(): CtEntry | undefined {
    if (this.read === undefined) this.read = this.lookup?.() ?? null;
    return this.read ?? undefined;
  }

  /** Whole seconds left on the connection's timer (nf_ct_expires / HZ); 0 without an entry. */
  get expiresSeconds(): number {
    return this.entry()?.expiresSeconds ?? 0;
  }

  private both(): { orig: ConnTuple; reply: ConnTuple } {
    if (this.tuples) return this.tuples;
    const e = this.entry();
    if (e !== undefined) {
      const orig = connTuple(e.orig, this.family);
      const reply = connTuple(e.reply, this.family);
      if (orig !== undefined && reply !== undefined) {
        this.tuples = { orig, reply };
        return this.tuples;
      }
    }
    const p = parsePacket(this.data, this.family);
    const own: ConnTuple = { src: p.src, dst: p.dst, protocol: p.protocol, sport: Math.max(p.sport, 0), dport: Math.max(p.dport, 0) };
    const inv: ConnTuple = { src: p.dst, dst: p.src, protocol: p.protocol, sport: own.dport, dport: own.sport };
    this.tuples = this.direction === 'ORIGINAL' ? { orig: own, reply: inv } : { orig: inv, reply: own };
    return this.tuples;
  }

  get orig(): ConnTuple {
    return this.both().orig;
  }

  get reply(): ConnTuple {
    return this.both().reply;
  }
}

/** A table tuple (addresses as text) as the engine's ConnTuple; undefined if an address does not parse. */
function connTuple(t: CtTuple, family: Family): ConnTuple | undefined {
  const src = parseIpAddr(t.src, family);
  const dst = parseIpAddr(t.dst, family);
  if (src === undefined || dst === undefined) return undefined;
  return { src, dst, protocol: t.proto, sport: t.sport, dport: t.dport };
}

/** The packet's connection from the batch's ct columns, or undefined when the queue tracks nothing. */
export function connFromBatch(batch: PacketBatch, i: number, data: Uint8Array, family: Family): ConnInfo | undefined {
  const st = batch.ctState;
  if (st === undefined) return undefined;
  const state = CT_STATES[st[i]!] ?? 'INVALID';
  const handle = batch.ctHandle?.[i] ?? 0;
  const gen = batch.ctGen?.[i];
  const lookup = handle !== 0 && gen !== undefined && batch.ctEntry !== undefined ? () => batch.ctEntry!(handle, gen) : undefined;
  return new BatchConn(
    state,
    batch.ctStatus?.[i] ?? 0,
    batch.ctMark?.[i] ?? 0,
    batch.ctDir?.[i] === 1 ? 'REPLY' : 'ORIGINAL',
    batch.ctZone?.[i] ?? 0,
    data,
    family,
    lookup,
  );
}

/** The table was full for this packet: native drops it whatever the verdict, so it is not evaluated. */
export function tableFull(batch: PacketBatch, i: number): boolean {
  return ((batch.ctFlags?.[i] ?? 0) & CT_BATCH_TABLE_FULL) !== 0;
}

/** The addon's form of a request: addresses as text; MASQUERADE's binding names the out interface. */
export function nativeNatRequest(req: NatRequest, outIfindex: number): CtNatRequest {
  const out: CtNatRequest = { manip: req.manip };
  if (req.minAddr !== undefined) out.minAddr = formatIpAddr(req.minAddr);
  if (req.maxAddr !== undefined) out.maxAddr = formatIpAddr(req.maxAddr);
  if (req.minPort !== undefined) out.minPort = req.minPort;
  if (req.maxPort !== undefined) out.maxPort = req.maxPort;
  if (req.basePort !== undefined) out.basePort = req.basePort;
  if (req.random === true) out.random = true;
  if (req.randomFully === true) out.randomFully = true;
  if (req.persistent === true) out.persistent = true;
  if (req.netmap === true) out.netmap = true;
  if (req.masquerade === true && outIfindex !== 0) out.masqIfindex = outIfindex;
  return out;
}

/** VerdictOptions.ctFlags bits of an update. */
export function updateFlags(u: ConnUpdate): number {
  let f = 0;
  if (u.notrack === true) f |= CT_NOTRACK;
  if (u.connmark !== undefined) f |= CT_SET_MARK;
  for (const m of u.natRan ?? []) f |= m === 'SRC' ? CT_NAT_SRC_RAN : CT_NAT_DST_RAN;
  for (const r of u.nat ?? []) f |= r.manip === 'SRC' ? CT_NAT_SRC_RAN : CT_NAT_DST_RAN;
  return f;
}
