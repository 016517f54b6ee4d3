// A kube-proxy node in a lab: client — node — three backends (b1, b2, b3), each backend a "pod" with TCP and UDP
// servers that answer with their own name and the address they saw. The node holds the generated kube-proxy rules
// (scripts/gen-kube-proxy.ts), under the kernel's iptables or under nfqwall; the scenario probes it the same way
// and returns what every probe saw, so the two runs can be held to the same expectations and to each other.
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { kubeProxyRuleset, type KubeService } from '../../scripts/gen-kube-proxy';
import { controlRequest } from '../../src/daemon/control';
import { Daemon, scratchDir } from '../lab/daemon';
import type { Host, Lab, LabSpec } from '../lab/lab';
import { ping } from '../lab/traffic';

const NODE = process.execPath;

export const BACKENDS = ['b1', 'b2', 'b3'] as const;
export type Backend = (typeof BACKENDS)[number];

export const ADDR = {
  client: '198.18.0.2',
  nodeClient: '198.18.0.1',
  /** The backend's own address, its "pod IP". */
  pod: (b: Backend): string => `198.19.${BACKENDS.indexOf(b) + 1}.2`,
  /** The node's address on the backend's link: what a masqueraded connection comes from. */
  nodeTo: (b: Backend): string => `198.19.${BACKENDS.indexOf(b) + 1}.1`,
  serviceCIDR: '198.18.128.0/24',
  /** Covers every lab host: only the rules' own KUBE-MARK-MASQ paths (NodePort, hairpin) masquerade. */
  clusterCIDR: '198.18.0.0/15',
} as const;

export const TCP_PORT = 8080;
export const UDP_PORT = 5353;

export const VIP = {
  web: '198.18.128.10',
  sticky: '198.18.128.11',
  dns: '198.18.128.12',
  closed: '198.18.128.13',
  empty: '198.18.128.14',
} as const;
export const NODE_PORT = { web: 30080, empty: 30081 } as const;
/** A backend port nothing listens on: UDP to it draws an ICMP port unreachable from the backend. */
export const CLOSED_PORT = 9999;

function endpoints(port: number, which: readonly Backend[] = BACKENDS): { ip: string; port: number }[] {
  return which.map((b) => ({ ip: ADDR.pod(b), port }));
}

export const SERVICES: KubeService[] = [
  { namespace: 'lab', name: 'web', portName: 'http', protocol: 'tcp', clusterIP: VIP.web, port: 80, nodePort: NODE_PORT.web, endpoints: endpoints(TCP_PORT) },
  { namespace: 'lab', name: 'sticky', portName: 'http', protocol: 'tcp', clusterIP: VIP.sticky, port: 80, affinitySeconds: 10800, endpoints: endpoints(TCP_PORT) },
  { namespace: 'lab', name: 'dns', portName: 'dns', protocol: 'udp', clusterIP: VIP.dns, port: 53, endpoints: endpoints(UDP_PORT) },
  { namespace: 'lab', name: 'closed', portName: 'dns', protocol: 'udp', clusterIP: VIP.closed, port: 9, endpoints: endpoints(CLOSED_PORT, ['b2']) },
  { namespace: 'lab', name: 'empty', portName: 'http', protocol: 'tcp', clusterIP: VIP.empty, port: 80, nodePort: NODE_PORT.empty, endpoints: [] },
];

export function kubeRules(): string {
  return kubeProxyRuleset(SERVICES, { clusterCIDR: ADDR.clusterCIDR });
}

export function kubeLabSpec(): LabSpec {
  return {
    hosts: [{ name: 'client' }, { name: 'node', forward: true }, ...BACKENDS.map((name) => ({ name }))],
    links: [
      { a: 'client', b: 'node', aAddr: [`${ADDR.client}/24`], bAddr: [`${ADDR.nodeClient}/24`] },
      ...BACKENDS.map((b) => ({ a: 'node', b, aAddr: [`${ADDR.nodeTo(b)}/24`], bAddr: [`${ADDR.pod(b)}/24`] })),
    ],
    routes: [
      { host: 'client', to: 'default', via: ADDR.nodeClient },
      ...BACKENDS.map((b) => ({ host: b, to: 'default', via: ADDR.nodeTo(b) })),
      // A node forwards what no rule rewrites (a real one has a default route): so a VIP without endpoints reaches
      // filter FORWARD, where kube-proxy's REJECT is.
      { host: 'node', to: ADDR.serviceCIDR, via: ADDR.pod('b1') },
    ],
  };
}

// argv: name addr tcpPort udpPort. TCP: answers each connection with `name peer` and closes; UDP: answers each
// datagram with `name peer`.
const SERVER = `
const net = require('node:net');
const dgram = require('node:dgram');
const [name, addr, tcpPort, udpPort] = process.argv.slice(1);
let ready = 0;
const up = () => { if (++ready === 2) process.stdout.write('ready\\n'); };
net.createServer((c) => { c.on('error', () => {}); c.end(name + ' ' + c.remoteAddress + '\\n'); }).listen(Number(tcpPort), addr, up);
const u = dgram.createSocket('udp4');
u.on('message', (m, r) => u.send(name + ' ' + r.address, r.port, r.address));
u.bind(Number(udpPort), addr, up);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

// argv: addr port timeoutMs count. Connects count times in turn; one line each: `ok <answer> from <remote>` or
// `fail <code> <ms>` (ms: how long the failure took).
const TCP_CLIENT = `
const net = require('node:net');
const [addr, port, timeoutMs, count] = process.argv.slice(1);
let left = Number(count);
function one() {
  if (left-- <= 0) process.exit(0);
  let got = '';
  let done = false;
  const t0 = Date.now();
  const c = net.connect({ host: addr, port: Number(port) });
  const finish = (line) => { if (done) return; done = true; clearTimeout(t); c.destroy(); process.stdout.write(line + '\\n'); one(); };
  const t = setTimeout(() => finish('fail timeout ' + (Date.now() - t0)), Number(timeoutMs));
  c.on('data', (d) => { got += d; });
  c.on('end', () => finish('ok ' + got.trim() + ' from ' + c.remoteAddress));
  c.on('error', (e) => finish('fail ' + e.code + ' ' + (Date.now() - t0)));
}
one();
`;

// argv: addr port timeoutMs count firstPort. count exchanges in turn, each from a new unconnected socket bound to
// firstPort + i (a new connection for the node): `ok <answer> from <source>:<sport>` with the reply's real source, or
// `fail timeout`. Not an ephemeral port: the kernel may pick one again while the node still tracks the exchange that
// used it, and the two exchanges are then one connection, which the nat table sees once.
const UDP_CLIENT = `
const dgram = require('node:dgram');
const [addr, port, timeoutMs, count, firstPort] = process.argv.slice(1);
let i = 0;
function one() {
  if (i >= Number(count)) process.exit(0);
  const sport = Number(firstPort) + i++;
  const s = dgram.createSocket('udp4');
  let done = false;
  const finish = (line) => { if (done) return; done = true; clearTimeout(t); s.close(); process.stdout.write(line + '\\n'); one(); };
  const t = setTimeout(() => finish('fail timeout'), Number(timeoutMs));
  s.on('message', (m, r) => finish('ok ' + m.toString().trim() + ' from ' + r.address + ':' + r.port));
  s.on('error', (e) => finish('fail ' + e.code));
  s.bind(sport, () => s.send('q', Number(port), addr));
}
one();
`;

// argv: addr port timeoutMs. A connected UDP socket: an ICMP error whose quoted header names this socket's tuple
// surfaces as an error (`fail ECONNREFUSED <ms>`); `ok` if something answers, `fail timeout` if nothing does.
const UDP_CONNECTED = `
const dgram = require('node:dgram');
const [addr, port, timeoutMs] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
const t0 = Date.now();
const finish = (line) => { process.stdout.write(line + '\\n'); process.exit(0); };
setTimeout(() => finish('fail timeout'), Number(timeoutMs));
s.on('message', (m) => finish('ok ' + m.toString().trim()));
s.on('error', (e) => finish('fail ' + e.code + ' ' + (Date.now() - t0)));
s.connect(Number(port), addr, () => { s.send('q'); setTimeout(() => s.send('q'), 200); });
`;

// argv: capPath device. Captures ICMP destination-unreachable frames on device; on stdin's end prints one line per
// frame: `icmp <src> <dst> <type> <code> quoted <proto> <src>:<sport> <dst>:<dport>`, then `done`.
const ICMP_CAPTURE = `
const { Cap } = require(process.argv[1]);
const device = process.argv[2];
const cap = new Cap();
const buf = Buffer.alloc(65536);
cap.open(device, 'icmp and icmp[0] == 3', 1024 * 1024, buf);
if (typeof cap.setMinBytes === 'function') cap.setMinBytes(0);
const ip = (b, o) => b[o] + '.' + b[o + 1] + '.' + b[o + 2] + '.' + b[o + 3];
const lines = [];
cap.on('packet', (n) => {
  const f = Buffer.from(buf.subarray(0, n));
  const o = 14;
  const icmp = o + (f[o] & 15) * 4;
  const q = icmp + 8;
  const qt = q + (f[q] & 15) * 4;
  lines.push(['icmp', ip(f, o + 12), ip(f, o + 16), f[icmp], f[icmp + 1], 'quoted', f[q + 9],
    ip(f, q + 12) + ':' + f.readUInt16BE(qt), ip(f, q + 16) + ':' + f.readUInt16BE(qt + 2)].join(' '));
});
process.stdout.write('ready\\n');
process.stdin.on('end', () => setTimeout(() => { cap.close(); process.stdout.write(lines.join('\\n') + (lines.length ? '\\n' : '') + 'done\\n', () => process.exit(0)); }, 200));
process.stdin.resume();
`;

function waitFor(child: ChildProcess, marker: string, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const t = setTimeout(() => reject(new Error(`no "${marker}" within ${ms} ms: ${out}${err}`)), ms);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(`${marker}\n`)) {
        clearTimeout(t);
        resolve(out);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`exited ${code} before "${marker}": ${out}${err}`));
    });
  });
}

/** Starts the backends' servers; resolves with a function that stops them. */
export async function startBackends(lab: Lab): Promise<() => void> {
  const kids = BACKENDS.map((b) => lab.host(b).spawn([NODE, '-e', SERVER, b, ADDR.pod(b), String(TCP_PORT), String(UDP_PORT)]));
  const stop = (): void => {
    for (const k of kids) k.kill('SIGKILL');
  };
  try {
    await Promise.all(kids.map((k) => waitFor(k, 'ready', 10_000)));
  } catch (e) {
    stop();
    throw e;
  }
  return stop;
}

async function lines(host: Host, argv: string[], timeoutMs: number): Promise<string[]> {
  const r = await host.exec([NODE, '-e', ...argv], { timeoutMs });
  return r.stdout.trim().split('\n');
}

export function tcp(host: Host, addr: string, port: number, count: number, timeoutMs = 3_000): Promise<string[]> {
  return lines(host, [TCP_CLIENT, addr, String(port), String(timeoutMs), String(count)], count * (timeoutMs + 500) + 10_000);
}

/** Below the ephemeral range (32768 up), so no other socket of the client's takes one of the exchanges' ports. */
const UDP_FIRST_PORT = 20_000;

export function udp(host: Host, addr: string, port: number, count: number, timeoutMs = 2_000): Promise<string[]> {
  const argv = [UDP_CLIENT, addr, String(port), String(timeoutMs), String(count), String(UDP_FIRST_PORT)];
  return lines(host, argv, count * (timeoutMs + 500) + 10_000);
}

/** A connected UDP probe to addr:port, with the ICMP destination-unreachable frames the host received meanwhile. */
export async function udpIcmp(host: Host, addr: string, port: number, device: string): Promise<{ result: string; icmp: string[] }> {
  const capture = host.spawn([NODE, '-e', ICMP_CAPTURE, require.resolve('cap'), device]);
  try {
    const done = waitFor(capture, 'done', 20_000);
    await Promise.race([waitFor(capture, 'ready', 10_000), done]);
    const [result = ''] = await lines(host, [UDP_CONNECTED, addr, String(port), '2000'], 15_000);
    capture.stdin?.end();
    const out = await done;
    return { result, icmp: out.split('\n').filter((l) => l.startsWith('icmp ')) };
  } finally {
    capture.kill('SIGKILL');
  }
}

export interface Outcome {
  /** 90 connections from the client to the web ClusterIP. */
  web: string[];
  /** 30 UDP exchanges from the client to the dns ClusterIP. */
  udp: string[];
  /** 20 connections from the client to the sticky (ClientIP affinity) ClusterIP. */
  sticky: string[];
  /** 9 connections from the client to the web NodePort on the node's address. */
  nodePort: string[];
  /** 30 connections from b1 to the web ClusterIP: a third of them come back to b1 itself. */
  hairpin: string[];
  /** One connection each to the ClusterIP and the NodePort of the service without endpoints. */
  rejectClusterIP: string;
  rejectNodePort: string;
  /** Echo replies (of 3) from each pod IP, pinged through the node. */
  ping: Record<Backend, number>;
  /** UDP to the closed service: the client socket's error and the ICMP it received. */
  closed: { result: string; icmp: string[] };
  /** The node's rules with counters after the probes (`iptables-save -c`, or nfqwall's save with counters). */
  save: string;
}

export const COUNTS = { web: 90, udp: 30, sticky: 20, nodePort: 9, hairpin: 30 } as const;

/** The scenario, with the rules already in force on the node. */
export async function probe(lab: Lab): Promise<Omit<Outcome, 'save'>> {
  const client = lab.host('client');
  const [rejectClusterIP = ''] = await tcp(client, VIP.empty, 80, 1);
  const [rejectNodePort = ''] = await tcp(client, ADDR.nodeClient, NODE_PORT.empty, 1);
  const out: Omit<Outcome, 'save'> = {
    web: await tcp(client, VIP.web, 80, COUNTS.web),
    udp: await udp(client, VIP.dns, 53, COUNTS.udp),
    sticky: await tcp(client, VIP.sticky, 80, COUNTS.sticky),
    nodePort: await tcp(client, ADDR.nodeClient, NODE_PORT.web, COUNTS.nodePort),
    hairpin: await tcp(lab.host('b1'), VIP.web, 80, COUNTS.hairpin),
    rejectClusterIP,
    rejectNodePort,
    ping: { b1: 0, b2: 0, b3: 0 },
    closed: await udpIcmp(client, VIP.closed, 9, client.ifname('node')),
  };
  for (const b of BACKENDS) out.ping[b] = await ping(client, ADDR.pod(b), 3, { intervalS: 0.05, waitS: 1 });
  // Lets the last closes cross the node before counters are read.
  await new Promise((r) => setTimeout(r, 300));
  return out;
}

export type Mode = 'kernel' | 'nfqwall';

/** Loads the rules on the node (kernel iptables, or nfqwall run), probes, and takes the rules away again. */
export async function runScenario(lab: Lab, mode: Mode): Promise<Outcome> {
  const node = lab.host('node');
  const stop = await startBackends(lab);
  try {
    if (mode === 'kernel') {
      await node.exec(['iptables-restore'], { input: kubeRules() });
      const seen = await probe(lab);
      return { ...seen, save: (await node.exec(['iptables-save', '-c'])).stdout };
    }
    const scratch = scratchDir();
    const control = path.join(scratch.dir, 'control.sock');
    const d = await Daemon.start(node, control, { rules: scratch.write('kube.rules', kubeRules()) });
    try {
      const seen = await probe(lab);
      const res = await controlRequest(control, { cmd: 'save', counters: true });
      if (!res.ok) throw new Error(`nfqwall save: ${res.error}`);
      return { ...seen, save: (res as { rulesets?: { ipv4?: string } }).rulesets?.ipv4 ?? '' };
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\ndaemon output:\n${d.output}`);
    } finally {
      await d.stop();
      scratch.cleanup();
    }
  } finally {
    stop();
  }
}
