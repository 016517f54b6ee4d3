// Name tables iptables reads from files (rt_realms, group, connlabel.conf): `value name` per line, `#` comments.
import { readFileSync } from 'node:fs';

export function readIdNames(paths: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of paths) {
    let text: string;
    try {
      text = readFileSync(p, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const m = /^\s*(0x[0-9a-fA-F]+|[0-9]+)\s+(\S+)/.exec(line);
      if (m && !out.has(m[2]!)) out.set(m[2]!, Number(m[1]));
    }
    break; // the first file found wins, as iproute2 and libxtables read one
  }
  return out;
}

export function nameOf(names: Map<string, number>, id: number): string | undefined {
  for (const [n, v] of names) if (v === id) return n;
  return undefined;
}

export const REALM_FILES = ['/etc/iproute2/rt_realms', '/usr/share/iproute2/rt_realms'] as const;
export const GROUP_FILES = ['/etc/iproute2/group', '/usr/share/iproute2/group'] as const;
export const CONNLABEL_FILES = ['/etc/xtables/connlabel.conf'] as const;
