// Which netfilter hooks a captured packet passes on this host, and with which in/out interfaces (REFERENCE.md 1.1):
//   received for a local address   PREROUTING(in) → INPUT(in)
//   received, routed elsewhere     PREROUTING(in) → FORWARD(in, out) → POSTROUTING(out)
//   sent from a local address      OUTPUT(out) → POSTROUTING(out)
//   on lo                          OUTPUT(lo) → POSTROUTING(lo) → PREROUTING(lo) → INPUT(lo)
// A capture sees a forwarded packet twice when both of its interfaces are captured (in, then out): only the
// incoming copy is evaluated then. When only the outgoing side is captured the in interface is taken from the route
// back to the source, which is wrong under asymmetric routing (documented in docs/shadow.md).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type { HostView } from '../extensions/types';
import { formatIpAddr } from '../rules/addr';
import type { Family, Hook } from '../rules/model';

export interface HookStep {
  hook: Hook;
  inIface?: string;
  outIface?: string;
}

export type PathKind = 'local-in' | 'forward' | 'local-out' | 'loopback' | 'unroutable';
export type HookPlan = { kind: PathKind; steps: HookStep[] } | { kind: 'skip'; reason: string };

/** Route lookups: the interface a packet to `dst` leaves by (`ip route get`). */
export interface RouteOracle {
  outIface(family: Family, dst: Uint8Array): string | undefined;
  /** Whether the host forwards this family at all (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding). */
  forwarding(family: Family): boolean;
}

export interface PacketAddrs {
  family: Family;
  src: Uint8Array;
  dst: Uint8Array;
}

export interface CaptureSide {
  /** The interface the packet was captured on. */
  iface: string;
  /** 'out' when the host sent it on that interface, 'in' when it arrived there; undefined when nothing says. */
  direction: 'in' | 'out' | undefined;
  /** Every interface being captured, to avoid evaluating a forwarded packet twice. */
  captured: ReadonlySet<string>;
}

function delivered(host: HostView, family: Family, dst: Uint8Array): boolean {
  const t = host.addressType(family, dst);
  return t === 'LOCAL' || t === 'BROADCAST' || t === 'MULTICAST';
}

export function planHooks(p: PacketAddrs, side: CaptureSide, host: HostView, routes: RouteOracle): HookPlan {
  const { iface } = side;
  if (iface === 'lo') {
    // libpcap shows each loopback packet once (it drops lo's outgoing copy); the kernel runs both halves.
    return {
      kind: 'loopback',
      steps: [
        { hook: 'OUTPUT', outIface: 'lo' },
        { hook: 'POSTROUTING', outIface: 'lo' },
        { hook: 'PREROUTING', inIface: 'lo' },
        { hook: 'INPUT', inIface: 'lo' },
      ],
    };
  }
  const srcLocal = host.addressType(p.family, p.src) === 'LOCAL';
  const direction = side.direction ?? (srcLocal ? 'out' : 'in');
  if (direction === 'out') {
    if (srcLocal) {
      return { kind: 'local-out', steps: [{ hook: 'OUTPUT', outIface: iface }, { hook: 'POSTROUTING', outIface: iface }] };
    }
    const inIface = routes.outIface(p.family, p.src);
    if (inIface === undefined) return { kind: 'skip', reason: 'forwarded out, no route back to its source' };
    if (side.captured.has(inIface)) return { kind: 'skip', reason: 'forwarded out, evaluated where it came in' };
    return {
      kind: 'forward',
      steps: [
        { hook: 'PREROUTING', inIface },
        { hook: 'FORWARD', inIface, outIface: iface },
        { hook: 'POSTROUTING', outIface: iface },
      ],
    };
  }
  if (delivered(host, p.family, p.dst)) {
    return { kind: 'local-in', steps: [{ hook: 'PREROUTING', inIface: iface }, { hook: 'INPUT', inIface: iface }] };
  }
  const outIface = routes.forwarding(p.family) ? routes.outIface(p.family, p.dst) : undefined;
  // No forwarding or no route: the packet dies in routing after PREROUTING.
  if (outIface === undefined) return { kind: 'unroutable', steps: [{ hook: 'PREROUTING', inIface: iface }] };
  return {
    kind: 'forward',
    steps: [
      { hook: 'PREROUTING', inIface: iface },
      { hook: 'FORWARD', inIface: iface, outIface },
      { hook: 'POSTROUTING', outIface },
    ],
  };
}

/** Routes given by hand, for tests. */
export class StaticRoutes implements RouteOracle {
  constructor(
    private readonly lookup: (family: Family, dst: string) => string | undefined,
    private readonly fwd = true,
  ) {}
  outIface(family: Family, dst: Uint8Array): string | undefined {
    return this.lookup(family, formatIpAddr(dst));
  }
  forwarding(): boolean {
    return this.fwd;
  }
}

/**
 * `ip route get` in the namespace the process runs in, cached per destination (bounded: cleared when full, so a scan
 * of many addresses costs lookups, not memory). A lookup blocks the capture loop for a few milliseconds; libpcap's
 * buffer absorbs that, and the first packet of each destination is the only one that pays.
 */
export class LinuxRoutes implements RouteOracle {
  private readonly cache = new Map<string, string | undefined>();
  private readonly fwd: Record<Family, boolean>;
  lookups = 0;

  constructor(private readonly limit = 4096) {
    this.fwd = { 4: readSysctl('/proc/sys/net/ipv4/ip_forward'), 6: readSysctl('/proc/sys/net/ipv6/conf/all/forwarding') };
  }

  forwarding(family: Family): boolean {
    return this.fwd[family];
  }

  outIface(family: Family, dst: Uint8Array): string | undefined {
    const addr = formatIpAddr(dst);
    const key = `${family}/${addr}`;
    if (this.cache.has(key)) return this.cache.get(key);
    let dev: string | undefined;
    this.lookups++;
    try {
      const out = execFileSync('ip', [family === 4 ? '-4' : '-6', '-j', 'route', 'get', addr], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
        timeout: 2000,
      });
      const rows = JSON.parse(out) as { dev?: string; type?: string }[];
      const row = rows[0];
      dev = row && (row.type === undefined || row.type === 'unicast') ? row.dev : undefined;
    } catch {
      dev = undefined; // unreachable: the kernel would drop it in routing
    }
    if (this.cache.size >= this.limit) this.cache.clear();
    this.cache.set(key, dev);
    return dev;
  }
}

function readSysctl(path: string): boolean {
  try {
    return fs.readFileSync(path, 'utf8').trim() === '1';
  } catch {
    return false;
  }
}
