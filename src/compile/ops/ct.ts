// conntrack --ctstate/--ctstatus/--ctdir and state (src/extensions/conntrack.ts, state.ts). Any other conntrack
// option (tuples, protocol, expiry) reads what the matcher is not given: SLOW.
import type { ConntrackOptions } from '../../extensions/conntrack';
import type { StateOptions } from '../../extensions/state';
import type { StateName } from '../../extensions/util/ctstate';
import { OP, ST } from './format';
import { b, op, type MatchEncoder } from './op';

function stateMask(s: ReadonlySet<StateName>): number {
  let m = 0;
  for (const n of s) m |= ST[n];
  return m;
}

export const conntrack: MatchEncoder = (m) => {
  const o = m.opts as ConntrackOptions;
  const known = new Set(['state', 'status', 'dir']);
  for (const k of Object.keys(o) as (keyof ConntrackOptions)[]) if (o[k] !== undefined && !known.has(k)) return undefined;
  return op(OP.CONNTRACK, [
    b(o.state !== undefined),
    o.state ? stateMask(o.state.value) : 0,
    b(o.state?.invert === true),
    o.dir === undefined ? 0 : o.dir === 'ORIGINAL' ? 1 : 2,
    b(o.status !== undefined),
    o.status?.value ?? 0,
    b(o.status?.invert === true),
  ]);
};

export const state: MatchEncoder = (m) => {
  const o = m.opts as StateOptions;
  return op(OP.STATE, [stateMask(o.states), b(o.invert)]);
};
