// Generates the rules kube-proxy (iptables mode, v1.28) keeps on a node, for tests and benchmarks:
// `npx tsx scripts/gen-kube-proxy.ts --services 10000 --endpoints 3 > kube.rules`. The text is what kube-proxy hands
// to iptables-restore (its argument order, its comments, its chain names: the same sha256/base32 hashes), preceded by
// the jumps from the built-in chains it installs separately, so one `iptables-restore` of the file gives a node's
// state. `--help` lists the knobs. Tests and benches import `kubeProxyRuleset` (explicit services) or `kubeProxyRules`.
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';

export type KubeProtocol = 'tcp' | 'udp' | 'sctp';

export interface KubeEndpoint {
  ip: string;
  port: number;
}

export interface KubeService {
  namespace: string;
  name: string;
  /** The service port's name (`http`, `dns`, ...): part of `ns/name:port`, which every chain hash is taken from. */
  portName: string;
  protocol: KubeProtocol;
  clusterIP: string;
  port: number;
  /** A NodePort service (type NodePort, externalTrafficPolicy Cluster) when set. */
  nodePort?: number;
  /** Ready endpoints; none makes the service REJECT in filter KUBE-SERVICES (and KUBE-EXTERNAL-SERVICES). */
  endpoints: KubeEndpoint[];
  /** sessionAffinity: ClientIP with this timeout (kube's default is 10800 s). */
  affinitySeconds?: number;
}

export interface KubeProxyOptions {
  /** --cluster-cidr: service traffic from outside it is masqueraded (`! -s CIDR -j KUBE-MARK-MASQ`). */
  clusterCIDR?: string;
  /** --masquerade-all: every service connection is masqueraded (overrides clusterCIDR). */
  masqueradeAll?: boolean;
  /** --iptables-masquerade-bit (default 14: mark 0x4000). */
  masqueradeBit?: number;
  /** MASQUERADE --random-fully, as kube-proxy writes when iptables supports it. */
  randomFully?: boolean;
}

export interface GenerateOptions extends KubeProxyOptions {
  /** ClusterIPs are taken in turn from this range (default 198.18.0.0/16). */
  serviceCIDR?: string;
  /** Endpoint (pod) addresses are taken in turn from this range (default 198.19.0.0/16). */
  podCIDR?: string;
  /** Every k-th service (k > 0) has sessionAffinity ClientIP (default 8; 0: none). */
  affinityEvery?: number;
  /** Every k-th service has no endpoints (default 20; 0: none). */
  noEndpointsEvery?: number;
  /** Every k-th service is a NodePort service, ports from 30000 upward (default 5; 0: none). */
  nodePortEvery?: number;
  /** Every k-th service is UDP (port 53 -> 5353) instead of TCP (80 -> 8080) (default 10; 0: none). */
  udpEvery?: number;
}

const MARK_MASQ = 'KUBE-MARK-MASQ';
const NODE_PORT_MIN = 30000;
const NODE_PORT_MAX = 32767;

/** kube-proxy's chain suffix: the first 16 characters of the RFC 4648 base32 of sha256(text). */
export function kubeHash(text: string): string {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of crypto.createHash('sha256').update(text).digest()) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += A[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length >= 16) break;
  }
  return out.slice(0, 16);
}

export function servicePortName(s: KubeService): string {
  return `${s.namespace}/${s.name}:${s.portName}`;
}
export function svcChain(s: KubeService): string {
  return `KUBE-SVC-${kubeHash(servicePortName(s) + s.protocol)}`;
}
export function extChain(s: KubeService): string {
  return `KUBE-EXT-${kubeHash(servicePortName(s) + s.protocol)}`;
}
export function sepChain(s: KubeService, ep: KubeEndpoint): string {
  return `KUBE-SEP-${kubeHash(servicePortName(s) + s.protocol + `${ep.ip}:${ep.port}`)}`;
}

/** A comment as kube-proxy passes it: quoted when it has spaces (iptables-restore strips the quotes). */
function comment(text: string): string[] {
  return ['-m', 'comment', '--comment', /\s/.test(text) ? `"${text}"` : text];
}

function line(...parts: (string | string[])[]): string {
  return parts.flat().join(' ');
}

/** kube-proxy's probability for the i-th of n remaining endpoints: fmt.Sprintf("%0.10f", 1/n). */
function probability(n: number): string {
  return (1 / n).toFixed(10);
}

/**
 * The ruleset for `services` (filter then nat, as kube-proxy writes them), with the built-in chains' jumps first in
 * each table in the order they end up on a node (kube-proxy prepends them one by one with `iptables -I`).
 */
export function kubeProxyRuleset(services: KubeService[], opts: KubeProxyOptions = {}): string {
  const bit = opts.masqueradeBit ?? 14;
  if (!Number.isInteger(bit) || bit < 0 || bit > 31) throw new Error(`masquerade bit ${bit} is not 0..31`);
  const mark = `0x${(1 << bit >>> 0).toString(16)}`;
  const seen = new Set<string>();
  for (const s of services) {
    const key = servicePortName(s) + s.protocol;
    if (seen.has(key)) throw new Error(`service port ${servicePortName(s)}/${s.protocol} appears twice`);
    seen.add(key);
  }

  const filterChains = ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL', 'KUBE-PROXY-CANARY'];
  const filterRules: string[] = [
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  ];
  const natChains = ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', MARK_MASQ, 'KUBE-PROXY-CANARY'];
  const natRules: string[] = [
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    `-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`,
    `-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`,
    line('-A KUBE-POSTROUTING', comment('kubernetes service traffic requiring SNAT'), '-j MASQUERADE', opts.randomFully ? ['--random-fully'] : []),
    `-A ${MARK_MASQ} -j MARK --or-mark ${mark}`,
  ];

  for (const s of services) {
    const name = servicePortName(s);
    const p = s.protocol;
    const svc = svcChain(s);
    const has = s.endpoints.length > 0;
    const dst = ['-m', p, '-p', p, '-d', s.clusterIP, '--dport', String(s.port)];
    if (has) natRules.push(line('-A KUBE-SERVICES', comment(`${name} cluster IP`), dst, '-j', svc));
    else filterRules.push(line('-A KUBE-SERVICES', comment(`${name} has no endpoints`), dst, '-j REJECT'));
    if (s.nodePort !== undefined) {
      const port = ['-m', p, '-p', p, '--dport', String(s.nodePort)];
      if (has) natRules.push(line('-A KUBE-NODEPORTS', comment(name), port, '-j', extChain(s)));
      else filterRules.push(line('-A KUBE-EXTERNAL-SERVICES', comment(`${name} has no endpoints`), '-m addrtype --dst-type LOCAL', port, '-j REJECT'));
    }
    if (!has) continue;

    natChains.push(svc);
    const cip = [...comment(`${name} cluster IP`), ...dst];
    if (opts.masqueradeAll) natRules.push(line('-A', svc, cip, '-j', MARK_MASQ));
    else if (opts.clusterCIDR !== undefined) natRules.push(line('-A', svc, cip, '! -s', opts.clusterCIDR, '-j', MARK_MASQ));
    if (s.nodePort !== undefined) {
      const ext = extChain(s);
      natChains.push(ext);
      natRules.push(
        line('-A', ext, comment(`masquerade traffic for ${name} external destinations`), '-j', MARK_MASQ),
        line('-A', ext, '-j', svc),
      );
    }
    if (s.affinitySeconds !== undefined) {
      for (const ep of s.endpoints) {
        const sep = sepChain(s, ep);
        natRules.push(line('-A', svc, comment(`${name} -> ${ep.ip}:${ep.port}`), '-m recent --name', sep, '--rcheck --seconds', String(s.affinitySeconds), '--reap -j', sep));
      }
    }
    s.endpoints.forEach((ep, i) => {
      const left = s.endpoints.length - i;
      const stat = left > 1 ? ['-m statistic --mode random --probability', probability(left)] : [];
      natRules.push(line('-A', svc, comment(`${name} -> ${ep.ip}:${ep.port}`), stat, '-j', sepChain(s, ep)));
    });
    for (const ep of s.endpoints) {
      const sep = sepChain(s, ep);
      natChains.push(sep);
      const recent = s.affinitySeconds !== undefined ? ['-m recent --name', sep, '--set'] : [];
      natRules.push(
        line('-A', sep, comment(name), '-s', ep.ip, '-j', MARK_MASQ),
        line('-A', sep, comment(name), recent, '-m', p, '-p', p, '-j DNAT --to-destination', `${ep.ip}:${ep.port}`),
      );
    }
  }
  natRules.push(
    line('-A KUBE-SERVICES', comment('kubernetes service nodeports; NOTE: this must be the last rule in this chain'), '-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'),
  );
  filterRules.push(
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    line('-A KUBE-FORWARD', comment('kubernetes forwarding rules'), `-m mark --mark ${mark}/${mark} -j ACCEPT`),
    line('-A KUBE-FORWARD', comment('kubernetes forwarding conntrack rule'), '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'),
  );

  const builtin = (names: string[]): string[] => names.map((c) => `:${c} ACCEPT [0:0]`);
  const user = (names: string[]): string[] => names.map((c) => `:${c} - [0:0]`);
  return [
    '*filter',
    ...builtin(['INPUT', 'FORWARD', 'OUTPUT']),
    ...user(filterChains),
    ...filterRules,
    'COMMIT',
    '*nat',
    ...builtin(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']),
    ...user(natChains),
    ...natRules,
    'COMMIT',
    '',
  ].join('\n');
}

interface Cidr {
  base: number;
  size: number;
  text: string;
}

function parseCidr(text: string): Cidr {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(text);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const len = m ? Number(m[5]) : -1;
  if (!m || octets.some((o) => o > 255) || len < 8 || len > 30) throw new Error(`${text}: not an IPv4 CIDR with a /8../30 prefix`);
  const addr = octets.reduce((a, o) => a * 256 + o, 0);
  const size = 2 ** (32 - len);
  return { base: addr - (addr % size), size, text };
}

function ipAt(c: Cidr, offset: number, what: string): string {
  // Offset 0 is the network address, size-1 the broadcast: neither is handed out.
  if (offset < 1 || offset > c.size - 2) throw new Error(`${c.text} has no room for ${what} (needs more than ${c.size - 2} addresses)`);
  const a = c.base + offset;
  return [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.');
}

/** Whether service i is one of every k-th, counted from `phase` so the kinds mix differently (UDP with affinity, ...). */
function every(k: number | undefined, dflt: number, i: number, phase: number): boolean {
  const n = k ?? dflt;
  return n > 0 && i % n === phase % n;
}

/** `services` synthetic services of `endpoints` endpoints each, in kube-proxy's shapes (see GenerateOptions). */
export function generateServices(services: number, endpoints: number, opts: GenerateOptions = {}): KubeService[] {
  if (!Number.isInteger(services) || services < 0) throw new Error(`--services ${services}: not a count`);
  if (!Number.isInteger(endpoints) || endpoints < 0) throw new Error(`--endpoints ${endpoints}: not a count`);
  const svcRange = parseCidr(opts.serviceCIDR ?? '198.18.0.0/16');
  const podRange = parseCidr(opts.podCIDR ?? '198.19.0.0/16');
  const out: KubeService[] = [];
  let pod = 0;
  let nodePort = NODE_PORT_MIN;
  for (let i = 0; i < services; i++) {
    const udp = every(opts.udpEvery, 10, i, 7);
    const s: KubeService = {
      namespace: `ns${i % 100}`,
      name: `svc${i}`,
      portName: udp ? 'dns' : 'http',
      protocol: udp ? 'udp' : 'tcp',
      clusterIP: ipAt(svcRange, i + 1, `${services} services`),
      port: udp ? 53 : 80,
      endpoints: [],
    };
    if (!every(opts.noEndpointsEvery, 20, i, 19)) {
      for (let e = 0; e < endpoints; e++) s.endpoints.push({ ip: ipAt(podRange, ++pod, `${pod} endpoints`), port: udp ? 5353 : 8080 });
    }
    if (every(opts.affinityEvery, 8, i, 3)) s.affinitySeconds = 10800;
    if (every(opts.nodePortEvery, 5, i, 4)) {
      if (nodePort > NODE_PORT_MAX) throw new Error(`more NodePort services than the ${NODE_PORT_MAX - NODE_PORT_MIN + 1} ports of ${NODE_PORT_MIN}-${NODE_PORT_MAX}`);
      s.nodePort = nodePort++;
    }
    out.push(s);
  }
  return out;
}

/** The rules for `services` synthetic services with `endpoints` endpoints each (defaults: see GenerateOptions). */
export function kubeProxyRules(services: number, endpoints: number, opts: GenerateOptions = {}): string {
  return kubeProxyRuleset(generateServices(services, endpoints, opts), {
    ...opts,
    clusterCIDR: opts.clusterCIDR ?? opts.podCIDR ?? '198.19.0.0/16',
  });
}

const USAGE = `usage: npx tsx scripts/gen-kube-proxy.ts --services N --endpoints M [options] > kube.rules
  --service-cidr CIDR      ClusterIPs from here (default 198.18.0.0/16)
  --pod-cidr CIDR          endpoint addresses from here (default 198.19.0.0/16)
  --cluster-cidr CIDR      masquerade service traffic from outside it (default: the pod CIDR)
  --masquerade-all         masquerade all service traffic
  --random-fully           MASQUERADE --random-fully
  --affinity-every K       every K-th service has ClientIP session affinity (default 8, 0: none)
  --no-endpoints-every K   every K-th service has no endpoints (default 20, 0: none)
  --node-port-every K      every K-th service is a NodePort (default 5, 0: none)
  --udp-every K            every K-th service is UDP (default 10, 0: none)
`;

function count(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new Error(`${flag} ${v}: not a non-negative integer`);
  return Number(v);
}

export function main(argv: string[]): string {
  const { values } = parseArgs({
    args: argv,
    options: {
      services: { type: 'string' },
      endpoints: { type: 'string' },
      'service-cidr': { type: 'string' },
      'pod-cidr': { type: 'string' },
      'cluster-cidr': { type: 'string' },
      'masquerade-all': { type: 'boolean' },
      'random-fully': { type: 'boolean' },
      'affinity-every': { type: 'string' },
      'no-endpoints-every': { type: 'string' },
      'node-port-every': { type: 'string' },
      'udp-every': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return USAGE;
  const podCIDR = values['pod-cidr'];
  return kubeProxyRules(count(values.services, '--services') ?? 10, count(values.endpoints, '--endpoints') ?? 3, {
    serviceCIDR: values['service-cidr'],
    podCIDR,
    clusterCIDR: values['cluster-cidr'] ?? podCIDR ?? '198.19.0.0/16',
    masqueradeAll: values['masquerade-all'],
    randomFully: values['random-fully'],
    affinityEvery: count(values['affinity-every'], '--affinity-every'),
    noEndpointsEvery: count(values['no-endpoints-every'], '--no-endpoints-every'),
    nodePortEvery: count(values['node-port-every'], '--node-port-every'),
    udpEvery: count(values['udp-every'], '--udp-every'),
  });
}

if (require.main === module) {
  try {
    process.stdout.write(main(process.argv.slice(2)));
  } catch (e) {
    process.stderr.write(`gen-kube-proxy: ${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
    process.exitCode = 2;
  }
}
