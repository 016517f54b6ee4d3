// What the host must look like for the kernel to pass a packet's later hooks on the flow cache's word
// (docs/flow-cache.md, Trips). Between PREROUTING and FORWARD the packet, carrying the skip bits, meets routing: a
// policy routing rule that reads the mark (`ip rule ... fwmark`) would see them, so any rule whose mask covers one
// turns skipping off. And ip_forward() drops a packet larger than its route's MTU before FORWARD (with DF set, and
// always for IPv6): only packets no link or route MTU could stop may skip FORWARD. Read again whenever links, routes
// or rules change (`ip monitor`, the daemon's host refresh).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The default skip bits (FORWARD the lower, POSTROUTING the higher): clear of the marks kube-proxy (0x4000, 0x8000),
 * flannel, Weave, Tailscale (0xff0000) and WireGuard (0xca6c) use.
 */
export const DEFAULT_SKIP_MARK = 0x30000000;

/** Whether `n` is one bit of a 32-bit mark. */
export function isOneBit(n: number): boolean {
  return Number.isInteger(n) && n > 0 && n <= 0xffffffff && (n & (n - 1)) === 0;
}

/** Whether `n` can be the skip mark: two bits of a 32-bit mark. */
export function isSkipMark(n: number): boolean {
  if (!Number.isInteger(n) || n <= 0 || n > 0xffffffff) return false;
  return isOneBit((n - (n & -n)) >>> 0);
}

/** The skip mark's FORWARD bit (the lower) and POSTROUTING bit (the higher). */
export function skipBits(mark: number): { forward: number; post: number } {
  const forward = (mark & -mark) >>> 0;
  return { forward, post: (mark - forward) >>> 0 };
}

export interface SkipGuard {
  /** Policy routing rules (`priority: selector`) whose fwmark mask covers a skip bit: skipping stays off. */
  markRules: string[];
  /** The smallest MTU of any link but loopback and of any route with an `mtu` metric; 0 when none is known. */
  maxLen: number;
}

interface RuleJson {
  priority?: number;
  fwmark?: string;
  fwmask?: string;
}

interface LinkJson {
  ifname?: string;
  mtu?: number;
  link_type?: string;
}

interface RouteJson {
  dst?: string;
  metrics?: { mtu?: number }[];
}

function parseJsonArray<T>(text: string, what: string): T[] {
  const v: unknown = JSON.parse(text.trim() === '' ? '[]' : text);
  if (!Array.isArray(v)) throw new Error(`${what}: expected a JSON array`);
  return v as T[];
}

/** `ip -j rule show` output: the rules whose fwmark mask has a bit in common with `mark`. */
export function markRulesOf(text: string, mark: number, family: 4 | 6): string[] {
  const out: string[] = [];
  for (const r of parseJsonArray<RuleJson>(text, 'ip rule')) {
    if (r.fwmark === undefined) continue;
    // Without a mask the rule compares the whole mark.
    const mask = r.fwmask === undefined ? 0xffffffff : Number(r.fwmask);
    if (!Number.isFinite(mask) || (mask & mark) !== 0) {
      out.push(`ipv${family} rule ${r.priority ?? '?'}: fwmark ${r.fwmark}${r.fwmask === undefined ? '' : '/' + r.fwmask}`);
    }
  }
  return out;
}

/** The smallest MTU in `ip -j link show` (loopback aside) and `ip -j route show table all` outputs. */
export function smallestMtu(links: string, routes: readonly string[]): number {
  let min = Infinity;
  for (const l of parseJsonArray<LinkJson>(links, 'ip link')) {
    if (l.link_type === 'loopback' || typeof l.mtu !== 'number') continue;
    min = Math.min(min, l.mtu);
  }
  for (const text of routes) {
    for (const r of parseJsonArray<RouteJson>(text, 'ip route')) {
      for (const m of r.metrics ?? []) if (typeof m.mtu === 'number') min = Math.min(min, m.mtu);
    }
  }
  return Number.isFinite(min) ? min : 0;
}

/** Reads the guard of the namespace the process runs in. */
export async function readSkipGuard(mark: number): Promise<SkipGuard> {
  const [r4, r6, links, routes4, routes6] = await Promise.all([
    run('ip', ['-4', '-j', 'rule', 'show']),
    run('ip', ['-6', '-j', 'rule', 'show']),
    run('ip', ['-j', 'link', 'show']),
    run('ip', ['-4', '-j', 'route', 'show', 'table', 'all']),
    run('ip', ['-6', '-j', 'route', 'show', 'table', 'all']),
  ]);
  return {
    markRules: [...markRulesOf(r4.stdout, mark, 4), ...markRulesOf(r6.stdout, mark, 6)],
    maxLen: smallestMtu(links.stdout, [routes4.stdout, routes6.stdout]),
  };
}
