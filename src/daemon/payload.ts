// What a rewritten packet must be before it goes back to the kernel with its verdict. nfqnl_mangle copies the bytes
// over the packet, trims or extends it to their length, and marks it CHECKSUM_NONE: the bytes are final.
import { parsePacket } from '../engine/packet';
import { fixL4Full } from '../engine/rewrite';
import type { Family } from '../rules/model';

/**
 * The bytes to send for a rewritten packet, or undefined when it cannot be sent whole: only part of it was copied
 * to nfqwall (copy range, or a GSO packet over 64 KiB), and a payload would cut it short. For a packet whose
 * transport checksum the kernel left partial (NFQA_SKB_CSUMNOTREADY: locally generated or from a veth peer, only
 * the pseudo-header sum is there), the whole checksum is computed, as native/queue.cc does for NAT.
 */
export function finalPayload(data: Uint8Array, family: Family, opts: { truncated: boolean; checksumNotReady: boolean }): Uint8Array | undefined {
  if (opts.truncated) return undefined;
  if (opts.checksumNotReady) {
    const pkt = parsePacket(data, family);
    if (pkt.l4Offset >= 0 && pkt.fragOffset === 0 && !pkt.moreFragments && !pkt.truncated) fixL4Full(pkt);
  }
  return data;
}
