// Rule counters as `nfqwall save -c` or `iptables-save -c` print them, for lab tests that tell rules apart by their
// comments.

/** `[packets:bytes] -A CHAIN ... --comment NAME` lines: packets (or bytes) by comment. */
export function countsByComment(save: string, what: 'packets' | 'bytes' = 'packets'): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of save.split('\n')) {
    const m = /^\[(\d+):(\d+)\] -A \S+ .*--comment "?([\w-]+)"?/.exec(line);
    if (m !== null) out.set(m[3]!, Number(what === 'packets' ? m[1] : m[2]));
  }
  return out;
}

/** countsByComment as a plain object, for deepEqual against the counts expected. */
export function countersByComment(save: string, what: 'packets' | 'bytes' = 'packets'): Record<string, number> {
  return Object.fromEntries(countsByComment(save, what));
}

/** The count of the rule with that comment; throws naming the rules there are when there is none. */
export function commentCount(counts: Map<string, number>, name: string, where: string): number {
  const n = counts.get(name);
  if (n === undefined) throw new Error(`no counter for rule ${name} in ${where}:\n${[...counts.keys()].join(', ')}`);
  return n;
}
