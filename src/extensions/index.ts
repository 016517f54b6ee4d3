// The registry of match and target modules. One module per extension; its file is named after it.
import type { MatchExtension, TargetExtension } from './types';

// -- matches --

// -- targets --

export const MATCHES: readonly MatchExtension[] = [
];

export const TARGETS: readonly TargetExtension[] = [
];

const matchByName = new Map<string, MatchExtension>(MATCHES.map((m) => [m.name, m]));
const targetByName = new Map<string, TargetExtension>(TARGETS.map((t) => [t.name, t]));

export function findMatch(name: string): MatchExtension | undefined {
  return matchByName.get(name);
}

export function findTarget(name: string): TargetExtension | undefined {
  return targetByName.get(name);
}
