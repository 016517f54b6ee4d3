// One match's compiled op, or undefined when the matcher cannot evaluate it (the op is then SLOW, in its place).
import type { MatchUse } from '../../rules/model';

export type MatchEncoder = (m: MatchUse, family: 4 | 6) => number[] | undefined;

export function op(code: number, payload: readonly number[]): number[] {
  return [code, payload.length, ...payload.map((x) => x >>> 0)];
}

export const b = (x: boolean): number => (x ? 1 : 0);
