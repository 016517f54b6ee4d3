// Connection states as conntrack/state see them (xt_conntrack.c conntrack_mt, xt_state.c). The kernel has no
// connection (ct == NULL) for INVALID and UNTRACKED packets; nfqwall treats a packet with no ConnInfo the same way
// as an untracked one, since that is what the kernel does with traffic it does not track.
import type { ConnInfo, MatchContext } from '../types';

export type StateName = 'INVALID' | 'NEW' | 'RELATED' | 'ESTABLISHED' | 'UNTRACKED' | 'SNAT' | 'DNAT';

/** In the order print_state prints them. */
export const STATE_ORDER: readonly StateName[] = ['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED', 'SNAT', 'DNAT'];

export const IPS_ASSURED = 0x4;
export const IPS_CONFIRMED = 0x8;
export const IPS_SRC_NAT = 0x10;
export const IPS_DST_NAT = 0x20;
export const IPS_FIXED_TIMEOUT = 0x400;

/** The connection, or undefined when the kernel would have none (INVALID, UNTRACKED, or unknown to the engine). */
export function trackedConn(ctx: MatchContext): ConnInfo | undefined {
  const ct = ctx.ct;
  if (!ct || ct.state === 'INVALID' || ct.state === 'UNTRACKED') return undefined;
  return ct;
}

/** The state bits of the packet; SNAT/DNAT are the virtual states from the connection's NAT status bits. */
export function packetStates(ctx: MatchContext): Set<StateName> {
  const s = new Set<StateName>();
  const ct = trackedConn(ctx);
  if (!ct) {
    s.add(ctx.ct?.state === 'INVALID' ? 'INVALID' : 'UNTRACKED');
    return s;
  }
  s.add(ct.state);
  if (ct.status & IPS_SRC_NAT) s.add('SNAT');
  if (ct.status & IPS_DST_NAT) s.add('DNAT');
  return s;
}

export function formatStates(states: ReadonlySet<StateName>): string {
  return STATE_ORDER.filter((n) => states.has(n)).join(',');
}
