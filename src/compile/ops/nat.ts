// The NAT targets (DNAT.ts, SNAT.ts, MASQUERADE.ts, REDIRECT.ts, NETMAP.ts) as the request their apply() hands the
// engine, in the connection table's form (nativeNatRequest + parseNatRequest): what is known at compile time here,
// the interface addresses of MASQUERADE and REDIRECT filled in by the matcher from mt::Host at run time.
import type { DnatOpts } from '../../extensions/DNAT';
import type { MasqueradeOpts } from '../../extensions/MASQUERADE';
import type { NetmapOpts } from '../../extensions/NETMAP';
import type { RedirectOpts } from '../../extensions/REDIRECT';
import type { SnatOpts } from '../../extensions/SNAT';
import type { NatRequest } from '../../extensions/types';
import type { PortRange } from '../../extensions/util/t-natrange';
import { rangeRequest } from '../../extensions/util/t-nat';
import { addrWords, NAT_FLAG, NAT_KIND, NAT_WORDS } from './format';

const MANIP_BY_HOOK = 2;

function request(req: NatRequest, manip: number): number[] {
  let flags = 0;
  if (req.minAddr !== undefined) flags |= NAT_FLAG.MAP_IPS;
  if (req.minPort !== undefined) flags |= NAT_FLAG.PROTO_SPECIFIED;
  if (req.basePort !== undefined) flags |= NAT_FLAG.PROTO_OFFSET;
  if (req.random === true) flags |= NAT_FLAG.PROTO_RANDOM;
  if (req.randomFully === true) flags |= NAT_FLAG.PROTO_RANDOM_FULLY;
  if (req.persistent === true) flags |= NAT_FLAG.PERSISTENT;
  if (req.netmap === true) flags |= NAT_FLAG.NETMAP;
  const none = new Uint8Array(16);
  const w = [
    manip,
    flags,
    ...addrWords(req.minAddr ?? none),
    ...addrWords(req.maxAddr ?? req.minAddr ?? none),
    req.minPort ?? 0,
    req.maxPort ?? req.minPort ?? 0,
    req.basePort ?? 0,
  ];
  if (w.length !== NAT_WORDS) throw new Error('NAT request words');
  return w;
}

/** What withPorts() and the flags make of MASQUERADE/REDIRECT, the address left to run time. */
function portsOnly(manip: 'SRC' | 'DST', ports: PortRange | undefined, random: boolean, randomFully: boolean): NatRequest {
  const req: NatRequest = { manip };
  if (ports) {
    req.minPort = ports.min;
    req.maxPort = ports.max;
  }
  if (random) req.random = true;
  if (randomFully) req.randomFully = true;
  return req;
}

/** [how, NAT_WORDS, request...] for a NAT target, or undefined for any other. */
export function natTarget(name: string, opts: unknown): number[] | undefined {
  switch (name) {
    case 'DNAT': {
      const o = opts as DnatOpts;
      return [NAT_KIND.RANGE, NAT_WORDS, ...request(rangeRequest('DST', o.to, o, true), 1)];
    }
    case 'SNAT': {
      const o = opts as SnatOpts;
      return [NAT_KIND.RANGE, NAT_WORDS, ...request(rangeRequest('SRC', o.to, o, false), 0)];
    }
    case 'MASQUERADE': {
      const o = opts as MasqueradeOpts;
      return [NAT_KIND.MASQUERADE, NAT_WORDS, ...request(portsOnly('SRC', o.ports, o.random, o.randomFully), 0)];
    }
    case 'REDIRECT': {
      const o = opts as RedirectOpts;
      return [NAT_KIND.REDIRECT, NAT_WORDS, ...request(portsOnly('DST', o.ports, o.random, false), 1)];
    }
    case 'NETMAP': {
      const o = opts as NetmapOpts;
      const last = o.to.addr.map((x, i) => (x | (~o.to.mask[i] & 0xff)) & 0xff);
      return [NAT_KIND.RANGE, NAT_WORDS, ...request({ manip: 'DST', minAddr: o.to.addr, maxAddr: last, netmap: true }, MANIP_BY_HOOK)];
    }
    default:
      return undefined;
  }
}
