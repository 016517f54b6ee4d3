// The host's addresses and routes as the addrtype match sees them. IPv4 follows inet_addr_type_table() /
// inet_dev_addr_type(): 0.0.0.0/8 and 255.255.255.255 are BROADCAST, 224/4 MULTICAST, otherwise the type of the
// longest local-table route covering the address (LOCAL, BROADCAST, ANYCAST, ...), UNICAST when none does. With an
// interface limit the route must sit on that device. IPv6 uses ff00::/8 for MULTICAST and the local and other tables
// (so unreachable/blackhole/prohibit routes show), which approximates addrtype_mt6's route lookup.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import type { AddrType, HostView } from '../extensions/types';
import { formatIpAddr, parseIpAddr, prefixMask } from '../rules/addr';
import type { Family } from '../rules/model';

const run = promisify(execFile);

export interface HostRoute {
  family: Family;
  addr: Uint8Array; // masked
  prefix: number;
  type: AddrType;
  dev?: string;
}

function masked(addr: Uint8Array, prefix: number): Uint8Array {
  const m = prefixMask(prefix, addr.length);
  return addr.map((b, i) => b & m[i]);
}

function covers(r: HostRoute, addr: Uint8Array): boolean {
  if (r.addr.length !== addr.length) return false;
  const m = prefixMask(r.prefix, addr.length);
  for (let i = 0; i < addr.length; i++) if ((addr[i] & m[i]) !== r.addr[i]) return false;
  return true;
}

/** Parses `addr[/len]` into a route entry; undefined when it is not an address. */
export function hostRoute(dst: string, type: AddrType, dev?: string): HostRoute | undefined {
  const slash = dst.indexOf('/');
  const a = slash >= 0 ? dst.slice(0, slash) : dst;
  const family: Family = a.includes(':') ? 6 : 4;
  const bytes = parseIpAddr(a, family);
  if (!bytes) return undefined;
  const max = family === 4 ? 32 : 128;
  const prefix = slash >= 0 ? Number(dst.slice(slash + 1)) : max;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return undefined;
  return { family, addr: masked(bytes, prefix), prefix, type, dev };
}

const RTN_NAMES: Record<string, AddrType> = {
  unicast: 'UNICAST',
  local: 'LOCAL',
  broadcast: 'BROADCAST',
  anycast: 'ANYCAST',
  multicast: 'MULTICAST',
  blackhole: 'BLACKHOLE',
  unreachable: 'UNREACHABLE',
  prohibit: 'PROHIBIT',
  throw: 'THROW',
  nat: 'NAT',
  xresolve: 'XRESOLVE',
};

abstract class RouteHost implements HostView {
  protected routes: HostRoute[] = [];
  /** H16: `${family}:${iface}` -> the interface's primary address (MASQUERADE, REDIRECT). */
  protected primaries = new Map<string, Uint8Array>();

  primaryAddress(family: Family, iface: string): Uint8Array | undefined {
    return this.primaries.get(`${family}:${iface}`);
  }

  /** The routes addressType() reads (a snapshot), for the native matcher's copy of them (docs/matcher.md). */
  routeList(): readonly HostRoute[] {
    return this.routes.slice();
  }

  /** Every interface's primary addresses (a snapshot), so the daemon can tell which went away. */
  primaryAddresses(): Uint8Array[] {
    return [...this.primaries.values()];
  }

  addressType(family: Family, addr: Uint8Array, iface?: string): AddrType {
    if (family === 4) {
      if (addr[0] === 0 || (addr[0] === 255 && addr[1] === 255 && addr[2] === 255 && addr[3] === 255)) return 'BROADCAST';
      if ((addr[0] & 0xf0) === 0xe0) return 'MULTICAST';
    } else if (addr[0] === 0xff) {
      return 'MULTICAST';
    }
    let best: HostRoute | undefined;
    for (const r of this.routes) {
      if (r.family !== family || !covers(r, addr)) continue;
      if (!best || r.prefix > best.prefix) best = r;
    }
    if (!best) return 'UNICAST';
    if (iface !== undefined && best.dev !== undefined && best.dev !== iface) return 'UNICAST';
    return best.type;
  }
}

export interface StaticHostOptions {
  /** Addresses of this host (type LOCAL), optionally `addr@dev`. */
  local?: string[];
  /** Extra routes: `{ dst: '198.18.0.255', type: 'BROADCAST', dev: 'eth0' }`. */
  routes?: { dst: string; type: AddrType; dev?: string }[];
}

/** A host given by hand, for tests and `nfqwall explain`. */
export class StaticHost extends RouteHost {
  constructor(opts: StaticHostOptions = {}) {
    super();
    for (const l of opts.local ?? []) {
      const at = l.indexOf('@');
      const r = hostRoute(at >= 0 ? l.slice(0, at) : l, 'LOCAL', at >= 0 ? l.slice(at + 1) : undefined);
      if (!r) throw new Error(`not an address: ${l}`);
      this.routes.push(r);
      // The first address given for a device is its primary one.
      const key = `${r.family}:${r.dev ?? ''}`;
      if (r.dev !== undefined && !this.primaries.has(key)) this.primaries.set(key, parseIpAddr(l.slice(0, at).split('/')[0], r.family)!);
    }
    for (const x of opts.routes ?? []) {
      const r = hostRoute(x.dst, x.type, x.dev);
      if (!r) throw new Error(`not an address: ${x.dst}`);
      this.routes.push(r);
    }
  }
}

interface IpRouteJson {
  type?: string;
  dst?: string;
  dev?: string;
}

/** Parses `ip -j route show table ...` output into host routes ("default" and unknown types skipped). */
export function parseIpRouteJson(text: string, family: Family): HostRoute[] {
  const out: HostRoute[] = [];
  const rows: unknown = JSON.parse(text || '[]');
  if (!Array.isArray(rows)) return out;
  for (const row of rows as IpRouteJson[]) {
    if (typeof row !== 'object' || row === null || typeof row.dst !== 'string') continue;
    const type = RTN_NAMES[row.type ?? 'unicast'];
    if (!type || type === 'UNICAST') continue;
    const dst = row.dst === 'default' ? (family === 4 ? '0.0.0.0/0' : '::/0') : row.dst;
    const r = hostRoute(dst, type, row.dev);
    if (r && r.family === family) out.push(r);
  }
  return out;
}

interface IpAddrJson {
  ifname?: string;
  addr_info?: { family?: string; local?: string; scope?: string; secondary?: boolean; deprecated?: boolean }[];
}

/**
 * H16: `ip -j addr show` into each interface's primary address per family: IPv4's first non-secondary address (what
 * inet_select_addr and REDIRECT's ifa_local take), IPv6's first global non-deprecated one, else its first address.
 */
export function parseIpAddrJson(text: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const rows: unknown = JSON.parse(text || '[]');
  if (!Array.isArray(rows)) return out;
  for (const row of rows as IpAddrJson[]) {
    if (typeof row !== 'object' || row === null || typeof row.ifname !== 'string') continue;
    const infos = Array.isArray(row.addr_info) ? row.addr_info : [];
    for (const family of [4, 6] as const) {
      const fam = infos.filter((a) => a.family === (family === 4 ? 'inet' : 'inet6') && typeof a.local === 'string');
      const best =
        family === 4
          ? (fam.find((a) => a.secondary !== true) ?? fam[0])
          : (fam.find((a) => a.scope === 'global' && a.deprecated !== true) ?? fam[0]);
      const addr = best?.local === undefined ? undefined : parseIpAddr(best.local, family);
      if (addr) out.set(`${family}:${row.ifname}`, addr);
    }
  }
  return out;
}

/** The namespace the process runs in, read with iproute2. */
export class LinuxHost extends RouteHost {
  static async load(): Promise<LinuxHost> {
    const h = new LinuxHost();
    await h.refresh();
    return h;
  }

  /** Re-reads the routes; call it when addresses change. The swap is atomic for readers. */
  async refresh(): Promise<void> {
    const [v4, v6] = await Promise.all([
      run('ip', ['-4', '-j', 'route', 'show', 'table', 'local']),
      // IPv6 addrtype looks routes up in all tables (unreachable, prohibit, blackhole show there).
      run('ip', ['-6', '-j', 'route', 'show', 'table', 'all']),
    ]);
    this.routes = [...parseIpRouteJson(v4.stdout, 4), ...parseIpRouteJson(v6.stdout, 6)];
    this.sources.clear();
    // H16: primary addresses for MASQUERADE/REDIRECT.
    this.primaries = parseIpAddrJson((await run('ip', ['-j', 'addr', 'show'])).stdout);
  }

  // Route lookups for REJECT's ICMP source, cached: errors about forwarded packets are rare and come in bursts from
  // few senders. Bounded so a flood of distinct senders cannot grow it; cleared when routes change (refresh).
  private readonly sources = new Map<string, Uint8Array | undefined>();

  sourceFor(family: Family, dst: Uint8Array): Uint8Array | undefined {
    const key = `${family}:${dst.join('.')}`;
    if (this.sources.has(key)) return this.sources.get(key);
    let src: Uint8Array | undefined;
    try {
      const out = execFileSync('ip', [family === 4 ? '-4' : '-6', '-j', 'route', 'get', formatIpAddr(dst)], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
        timeout: 2000,
      });
      const routes = JSON.parse(out) as { prefsrc?: string }[];
      const pref = routes[0]?.prefsrc;
      src = pref === undefined ? undefined : parseIpAddr(pref, family);
    } catch {
      src = undefined; // no route: the kernel sends no error either
    }
    if (this.sources.size >= 1024) this.sources.clear();
    this.sources.set(key, src);
    return src;
  }
}
