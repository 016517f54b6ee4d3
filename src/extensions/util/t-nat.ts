// What the NAT targets share: their flag options and how a range becomes a binding request for the connection table.
import type { Hook } from '../../rules/model';
import type { NatRequest, OptionUse, TargetContext, TargetResult } from '../types';
import type { NatRange, PortRange } from './t-natrange';

export interface NatFlags {
  random: boolean;
  randomFully: boolean;
  persistent: boolean;
}

export function natFlags(seen: Map<string, OptionUse>): NatFlags {
  return { random: seen.has('random'), randomFully: seen.has('random-fully'), persistent: seen.has('persistent') };
}

/** In libxt_NAT's save order. */
export function formatNatFlags(f: NatFlags): string {
  let s = '';
  if (f.random) s += ' --random';
  if (f.randomFully) s += ' --random-fully';
  if (f.persistent) s += ' --persistent';
  return s;
}

/** Adds the port range of a request (NF_NAT_RANGE_PROTO_SPECIFIED, and PROTO_OFFSET with /baseport). */
export function withPorts(req: NatRequest, ports: PortRange | undefined, base: boolean): NatRequest {
  if (ports) {
    req.minPort = ports.min;
    req.maxPort = ports.max;
    if (base && ports.base !== undefined) req.basePort = ports.base;
  }
  return req;
}

/** The request of DNAT/SNAT `--to-*` with its flags. */
export function rangeRequest(manip: 'SRC' | 'DST', to: NatRange, f: NatFlags, base: boolean): NatRequest {
  const req: NatRequest = { manip };
  if (to.minAddr && to.maxAddr) {
    req.minAddr = to.minAddr;
    req.maxAddr = to.maxAddr;
  }
  withPorts(req, to.ports, base);
  if (f.random) req.random = true;
  if (f.randomFully) req.randomFully = true;
  if (f.persistent) req.persistent = true;
  return req;
}

/**
 * Hands the request to the engine. A NAT target's verdict is NF_ACCEPT: the nat table stops, the binding is made by the
 * connection table once the trip's verdict is known. Without a connection (nfqwall run without its table, explain)
 * nothing is bound, as nf_nat_inet_fn never reaches the target for an untracked packet.
 */
export function requestNat(ctx: TargetContext, req: NatRequest): TargetResult {
  ctx.nat = req;
  return { verdict: 'accept' };
}

/** The manip type a hook's NAT binds (NETMAP picks it by hook as xt_NETMAP does). */
export function manipForHook(hook: Hook): 'SRC' | 'DST' {
  return hook === 'PREROUTING' || hook === 'OUTPUT' ? 'DST' : 'SRC';
}
