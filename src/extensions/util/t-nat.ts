// What the NAT targets share: the reason they cannot run yet, and their flag options.
import type { OptionUse } from '../types';

export function natUnsupported(name: string): string {
  return (
    `${name} needs nfqwall's connection table with NAT bindings, not yet implemented: the kernel binds NAT on a ` +
    `connection's first packet and translates every later packet of both directions from that binding`
  );
}

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
