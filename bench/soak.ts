// Soak (issue #9): nfqwall in the three-host lab for minutes under mixed traffic through NAT (UDP and TCP echo through
// DNAT and MASQUERADE, ICMP echo), with a reload of a randomly changed ruleset every second and a scrape of /metrics
// every second. Every interval it prints the daemon's resident size, V8 heap, open descriptors, verdict accounting and
// connection-table size; at the end it fails (exit 1) if resident memory grew past a bound after warm-up, descriptors
// grew, any verdict was lost, a reload failed, a carried rule counter went backwards, the traffic did not get
// through, or any of the exact accounting identities (accountingFailures below) does not hold: the kernel's queue ids
// against the verdicts, the daemon's own verdict counts and /metrics against the queue, counting rules that no reload
// changes against the packets the endpoints' kernels received (/proc/net/snmp in their namespaces), the NAT rules and
// the connection table against the connections the endpoints opened.
//
// Run (root): `npm run soak` (10 minutes), `npm run soak -- --minutes 2`, or `npx tsx bench/soak.ts --seconds 30`.
// Options: --minutes N | --seconds N, --interval S (10), --rss-growth-mib M (32), --seed N.
import fs from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { controlRequest } from '../src/daemon/control';
import { Daemon, scratchDir, sleep } from '../test/lab/daemon';
import { isRoot, Lab, THREE_HOST as A, threeHostSpec, type Host } from '../test/lab/lab';

export interface SoakOptions {
  seconds: number;
  /** Seconds between printed samples. */
  interval: number;
  /**
   * Most resident-memory growth allowed after warm-up, in MiB: the lowest RSS of the run's last quarter against the
   * lowest of the quarter after warm-up. Lowest, because RSS swings with each garbage collection (tens of MiB here) and
   * its floor is what a leak raises.
   */
  rssGrowthMiB: number;
  seed: number;
  log: (line: string) => void;
}

export interface SoakSample {
  t: number;
  rssKiB: number;
  heapUsedBytes: number;
  fds: number;
  received: number;
  unverdicted: number;
  kernelQueue: number;
  conntrack: number;
  reloads: number;
  scrapes: number;
}

export interface SoakResult {
  ok: boolean;
  failures: string[];
  samples: SoakSample[];
  /** Figures for the record (issue #9 asks for them). */
  summary: Record<string, number>;
}

const QUEUE = 13;
const UDP_PORT = 5000;
const UDP_DNAT_PORT = 6000;
const TCP_PORT = 8080;
const TCP_DNAT_PORT = 6080;
/** The fw's interfaces towards the client and the server. */
export interface SoakIfs {
  toClient: string;
  toServer: string;
}

/**
 * Rules no reload changes, found in nfqwall's save by their comment. The six `count ...` rules have no target and
 * stand first in FORWARD, so each counts every forwarded packet of one direction of one kind of traffic, which the
 * receiving host's kernel counts too; the NAT rules see the first packet of each connection only.
 */
export const SOAK_RULES = {
  countUdpToServer: 'soak: count udp to server',
  countUdpToClient: 'soak: count udp to client',
  countTcpToServer: 'soak: count tcp to server',
  countTcpToClient: 'soak: count tcp to client',
  countEchoRequests: 'soak: count echo requests',
  countEchoReplies: 'soak: count echo replies',
  dnatUdp: 'soak: dnat udp',
  dnatTcp: 'soak: dnat tcp',
  masquerade: 'soak: masquerade',
  established: 'soak: established',
  acceptUdp: 'soak: accept udp',
} as const;
export type SoakRule = keyof typeof SOAK_RULES;
const SOAK_RULE_NAMES = Object.keys(SOAK_RULES) as SoakRule[];

/** Flows the generators open besides TCP connections: the UDP client's one socket and ping's one ICMP id. */
const UDP_FLOWS = 1;
const ICMP_FLOWS = 1;

/** A small deterministic PRNG (mulberry32), so a run's rule changes can be replayed with --seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The ruleset of reload number `n`: NAT, the counting rules and the rules the traffic needs never change; around them,
 * a random number of random rules that match nothing in the lab (sources in 10/8), with random matches, comments and
 * targets.
 */
export function soakRules(rand: () => number, ifs: SoakIfs): string {
  const noise = (): string => {
    const src = `10.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${1 + Math.floor(rand() * 254)}`;
    const kinds = [
      `-s ${src}/32 -p tcp -m tcp --dport ${1 + Math.floor(rand() * 65535)} -j DROP`,
      `-s ${src}/32 -p udp -m multiport --dports ${1 + Math.floor(rand() * 1000)},${2000 + Math.floor(rand() * 1000)} -j REJECT`,
      `-s ${src}/32 -m comment --comment "soak ${Math.floor(rand() * 1e6)}" -j ACCEPT`,
      `-s ${src}/32 -m limit --limit ${1 + Math.floor(rand() * 100)}/second -j LOG --log-prefix "soak "`,
      `-s ${src}/32 -p icmp -m icmp --icmp-type ${Math.floor(rand() * 16)} -j DROP`,
    ];
    return kinds[Math.floor(rand() * kinds.length)] as string;
  };
  const c = (k: SoakRule): string => `-m comment --comment "${SOAK_RULES[k]}"`;
  const before = Array.from({ length: Math.floor(rand() * 20) }, () => `-A FORWARD ${noise()}`);
  const after = Array.from({ length: Math.floor(rand() * 40) }, () => `-A FORWARD ${noise()}`);
  return [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    `-A PREROUTING -d ${A.server4}/32 -p udp -m udp --dport ${UDP_DNAT_PORT} ${c('dnatUdp')} -j DNAT --to-destination ${A.server4}:${UDP_PORT}`,
    `-A PREROUTING -d ${A.server4}/32 -p tcp -m tcp --dport ${TCP_DNAT_PORT} ${c('dnatTcp')} -j DNAT --to-destination ${A.server4}:${TCP_PORT}`,
    `-A POSTROUTING -o ${ifs.toServer} ${c('masquerade')} -j MASQUERADE`,
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD DROP [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    // After DNAT and before the reply's un-DNAT, so the server's ports.
    `-A FORWARD -i ${ifs.toClient} -p udp -m udp --dport ${UDP_PORT} ${c('countUdpToServer')}`,
    `-A FORWARD -i ${ifs.toServer} -p udp -m udp --sport ${UDP_PORT} ${c('countUdpToClient')}`,
    `-A FORWARD -i ${ifs.toClient} -p tcp -m tcp --dport ${TCP_PORT} ${c('countTcpToServer')}`,
    `-A FORWARD -i ${ifs.toServer} -p tcp -m tcp --sport ${TCP_PORT} ${c('countTcpToClient')}`,
    `-A FORWARD -i ${ifs.toClient} -p icmp -m icmp --icmp-type 8 ${c('countEchoRequests')}`,
    `-A FORWARD -i ${ifs.toServer} -p icmp -m icmp --icmp-type 0 ${c('countEchoReplies')}`,
    `-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED ${c('established')} -j ACCEPT`,
    ...before,
    '-A FORWARD -m conntrack --ctstate INVALID -j DROP',
    `-A FORWARD -p udp -m udp --dport ${UDP_PORT} ${c('acceptUdp')} -j ACCEPT`,
    `-A FORWARD -p tcp -m tcp --dport ${TCP_PORT} --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT`,
    '-A FORWARD -p icmp -m icmp --icmp-type 8 -j ACCEPT',
    ...after,
    'COMMIT',
    '',
  ].join('\n');
}

// ---- traffic, each a script run in a lab host that stops by itself ----

// argv: udpPort tcpPort. UDP and TCP echo until stdin closes.
const ECHO = `
const [udpPort, tcpPort] = process.argv.slice(1).map(Number);
const u = require('node:dgram').createSocket('udp4');
u.on('message', (m, r) => u.send(m, r.port, r.address));
const t = require('node:net').createServer((s) => { s.on('error', () => {}); s.pipe(s); });
let up = 0;
const ready = () => { if (++up === 2) process.stdout.write('ready\\n'); };
u.bind(udpPort, ready);
t.listen(tcpPort, ready);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

// argv: addr port seconds intervalMs. One datagram every intervalMs; prints `udp <sent> <replies>` at the end.
// The stream starts once the first datagram's reply is back (or after 3 s without it): datagrams sent while the
// first is still in the queue would each be NEW and see the NAT rules too, as in the kernel (an unconfirmed
// connection is not shared), and the flow's NAT rule would not count exactly one.
const UDP_CLIENT = `
const [addr, port, seconds, every] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const s = require('node:dgram').createSocket('udp4');
const seen = new Set();
let sent = 0;
let stream;
const start = () => {
  if (stream) return;
  const t0 = Date.now();
  stream = setInterval(() => {
    if (Date.now() - t0 >= seconds * 1000) {
      clearInterval(stream);
      setTimeout(() => { process.stdout.write('udp ' + sent + ' ' + seen.size + '\\n'); process.exit(0); }, 1000);
      return;
    }
    s.send('soak-' + sent++, port, addr);
  }, every);
};
s.on('message', (m) => { seen.add(m.toString()); start(); });
s.send('soak-' + sent++, port, addr);
setTimeout(start, 3000);
`;

// argv: addr port seconds. Connection after connection (connect, 200 bytes echoed, close); prints `tcp <tried> <ok>`.
const TCP_CLIENT = `
const net = require('node:net');
const [addr, port, seconds] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const t0 = Date.now();
let tried = 0, ok = 0;
function one() {
  if (Date.now() - t0 >= seconds * 1000) { process.stdout.write('tcp ' + tried + ' ' + ok + '\\n'); process.exit(0); }
  tried++;
  const payload = Buffer.alloc(200, 0x73);
  let got = 0, done = false;
  const s = net.connect(port, addr);
  const finish = (good) => { if (done) return; done = true; clearTimeout(timer); if (good) ok++; s.destroy(); setTimeout(one, 20); };
  const timer = setTimeout(() => finish(false), 3000);
  s.on('connect', () => s.write(payload));
  s.on('data', (d) => { got += d.length; if (got >= payload.length) { s.end(); finish(true); } });
  s.on('error', () => finish(false));
}
one();
`;

// argv: port seconds. Scrapes http://127.0.0.1:port/metrics every second; one line per scrape:
// `scrape <status> <heap used bytes>` (status 0 when the request failed).
const SCRAPER = `
const http = require('node:http');
const [port, seconds] = process.argv.slice(1).map(Number);
const t0 = Date.now();
function one() {
  if (Date.now() - t0 >= seconds * 1000) return process.exit(0);
  const req = http.get({ host: '127.0.0.1', port, path: '/metrics', timeout: 5000 }, (res) => {
    let b = ''; res.setEncoding('utf8'); res.on('data', (d) => (b += d));
    res.on('end', () => {
      const m = /^nodejs_heap_size_used_bytes (\\S+)$/m.exec(b);
      process.stdout.write('scrape ' + res.statusCode + ' ' + (m ? m[1] : -1) + '\\n');
      setTimeout(one, 1000);
    });
  });
  req.on('error', () => { process.stdout.write('scrape 0 -1\\n'); setTimeout(one, 1000); });
  req.on('timeout', () => req.destroy());
}
one();
`;

// argv: port. One GET of /metrics; prints the body.
const SCRAPE_ONCE = `
require('node:http').get({ host: '127.0.0.1', port: Number(process.argv[1]), path: '/metrics', agent: false }, (res) => {
  res.pipe(process.stdout);
}).on('error', (e) => { process.stderr.write(e.message); process.exit(1); });
`;

/** The sum over all label sets of one metric in a Prometheus text exposition. */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    sum += Number(m[2]);
    seen = true;
  }
  if (!seen) throw new Error(`/metrics has no ${name}`);
  return sum;
}

/** Collects a child's stdout lines. */
function lines(child: ChildProcess): { all: string[]; exited: Promise<void> } {
  const all: string[] = [];
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    all.push(...parts);
  });
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  return { all, exited };
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

interface QueueCounts {
  queue: number;
  received: number;
  accepted: number;
  dropped: number;
  kernelIdSequence: number;
  kernelQueueTotal: number;
  kernelQueueDropped: number;
  kernelUserDropped: number;
  overload: number;
  defaulted: number;
  /** Packets the flow cache decided on the receive thread (docs/flow-cache.md); JavaScript never saw them. */
  cached?: number;
  /** Packets the rule matcher decided on the receive thread (docs/matcher.md); JavaScript never saw them either. */
  matched?: number;
}

/** The processor's own tally (status `packets`): every packet JavaScript decided, by verdict. */
interface JsCounts {
  packets: number;
  accepted: number;
  dropped: number;
  queued: number;
}

/** The connection table's counters (status `conntrack`, `conntrack -S` style). */
interface CtCounts {
  entries: number;
  created: number;
  expired: number;
  earlyDrop: number;
  deleted: number;
  /** Ended by the TCP tracker (an RST, a SYN reopening a TIME_WAIT connection); nfqwall's own counter. */
  killed: number;
  /** Unconfirmed entries freed with their packet (dropped first packet, NOTRACK, invalid, lost clash). */
  discarded: number;
  drop: number;
}

interface Status {
  q: QueueCounts;
  js: JsCounts;
  ct: CtCounts;
  reloads: { success: number; failure: number; lastError?: string };
}

async function statusOf(control: string): Promise<Status> {
  const r = await controlRequest(control, { cmd: 'status' });
  if (!r.ok) throw new Error(`status: ${r.error}`);
  // The queue and its late queue (INPUT, FORWARD, POSTROUTING), counted together: each identity below holds for
  // every queue, and so for their sum.
  const qs = r['queues'] as QueueCounts[];
  if (qs.length === 0 || qs[0]!.queue !== QUEUE) throw new Error(`status shows no queue ${QUEUE}`);
  const q = { ...qs[0]!, queue: QUEUE };
  const sum = <K extends keyof QueueCounts>(k: K): number => qs.reduce((n, x) => n + (x[k] ?? 0), 0);
  for (const k of ['received', 'accepted', 'dropped', 'kernelIdSequence', 'kernelQueueTotal', 'kernelQueueDropped', 'kernelUserDropped', 'overload', 'defaulted', 'cached', 'matched'] as const) q[k] = sum(k);
  const ct = r['conntrack'] as CtCounts | undefined;
  if (ct === undefined) throw new Error('status shows no connection table');
  return { q, js: r['packets'] as JsCounts, ct, reloads: r['reloads'] as Status['reloads'] };
}

/** Packet counters of the SOAK_RULES, from nfqwall's live ruleset (each found once by its comment). */
async function ruleCounters(control: string): Promise<Record<SoakRule, number>> {
  const r = await controlRequest(control, { cmd: 'save', counters: true });
  if (!r.ok) throw new Error(`save: ${r.error}`);
  const text = (r['rulesets'] as Record<string, string>)['ipv4'] ?? '';
  const out = {} as Record<SoakRule, number>;
  for (const k of SOAK_RULE_NAMES) {
    const found = text.split('\n').filter((l) => l.includes(`"${SOAK_RULES[k]}"`));
    const m = found.length === 1 ? /^\[(\d+):/.exec(found[0] as string) : null;
    if (m === null) throw new Error(`${found.length} rules "${SOAK_RULES[k]}" with a counter in nfqwall's save`);
    out[k] = Number(m[1]);
  }
  return out;
}

/** /proc/net/snmp of a lab host's namespace as `Proto.Name` -> value (the kernel's own per-namespace counts). */
export function parseSnmp(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  const ls = text.trim().split('\n');
  for (let i = 0; i + 1 < ls.length; i += 2) {
    const names = (ls[i] as string).trim().split(/\s+/);
    const values = (ls[i + 1] as string).trim().split(/\s+/);
    const proto = (names[0] ?? '').replace(/:$/, '');
    if (values[0] !== names[0]) throw new Error(`/proc/net/snmp: "${values[0]}" after "${names[0]}"`);
    names.slice(1).forEach((n, j) => (out[`${proto}.${n}`] = Number(values[j + 1])));
  }
  return out;
}

async function snmpOf(h: Host): Promise<Record<string, number>> {
  return parseSnmp((await h.exec(['cat', '/proc/net/snmp'])).stdout);
}

/** Endpoint counters the accounting uses: what arrived at a host (delivered, to no socket, or in error). */
export interface HostCounts {
  udpArrived: number;
  tcpInSegs: number;
  tcpActiveOpens: number;
  icmpInEchos: number;
  icmpInEchoReps: number;
  /** Resets the host sent (for the record: each kills a connection-table entry without an event counter). */
  tcpOutRsts: number;
}

function hostCounts(after: Record<string, number>, before: Record<string, number>): HostCounts {
  const d = (k: string): number => {
    const a = after[k];
    const b = before[k];
    if (a === undefined || b === undefined) throw new Error(`/proc/net/snmp has no ${k}`);
    return a - b;
  };
  return {
    udpArrived: d('Udp.InDatagrams') + d('Udp.NoPorts') + d('Udp.InErrors'),
    tcpInSegs: d('Tcp.InSegs'),
    tcpActiveOpens: d('Tcp.ActiveOpens'),
    icmpInEchos: d('Icmp.InEchos'),
    icmpInEchoReps: d('Icmp.InEchoReps'),
    tcpOutRsts: d('Tcp.OutRsts'),
  };
}

/** Everything the end-of-run accounting compares, measured once the traffic stopped and the queue settled. */
export interface SoakAccounting {
  q: QueueCounts;
  js: JsCounts;
  /** Connection-table counters at the end (since the daemon started), and `created` before the traffic started. */
  ct: CtCounts;
  ctCreatedBefore: number;
  /** Rule packet counters gained over the run. */
  rules: Record<SoakRule, number>;
  client: HostCounts;
  server: HostCounts;
  fw: HostCounts;
  /** One scrape of /metrics after the queue settled, and the verdicts sent before and after it. */
  metrics: { verdicts: number; received: number; verdictsBefore: number; verdictsAfter: number };
}

/**
 * The identities that must hold at the end of a soak (none depends on timing: the traffic has stopped and the queue is
 * empty). Returns one line per identity that does not hold. The queue's own identities are exact. The end-to-end ones
 * (rules against endpoints, NAT rules and the connection table against connections opened) are exact too unless
 * packets were decided without the rules or lost by the kernel queue (overload, defaulted, queue_dropped,
 * user_dropped): each such packet can move each of them by one (counted at FORWARD, then dropped at POSTROUTING; a
 * dropped SYN retried as a new connection), so they get that much slack, and none in a run without such packets.
 */
export function accountingFailures(a: SoakAccounting): string[] {
  const f: string[] = [];
  const eq = (what: string, got: number, want: number, why: string): void => {
    if (got !== want) f.push(`${what}: ${got} != ${want} (${why})`);
  };
  const { q, js, ct, rules, client, server, fw } = a;
  const slack = q.overload + q.defaulted + q.kernelQueueDropped + q.kernelUserDropped;
  const near = (what: string, got: number, want: number, why: string): void => {
    if (Math.abs(got - want) > slack) f.push(`${what}: ${got} != ${want} (${why}${slack > 0 ? `; off by more than the ${slack} packets decided without the rules or lost by the queue` : ''})`);
  };
  // Every packet the kernel handed over got exactly one verdict, and the kernel numbered no packet nfqwall did not get.
  eq('verdicts sent', q.accepted + q.dropped, q.received, 'accepted + dropped against packets received: lost or doubled verdicts');
  eq('kernel id_sequence', q.kernelIdSequence, q.accepted + q.dropped + q.kernelUserDropped, 'ids the kernel gave against verdicts sent + packets it could not deliver');
  eq('kernel queue_total', q.kernelQueueTotal, 0, 'packets still waiting in the kernel queue');
  // JavaScript's tally: each packet it decided has one verdict, and it decided all the queue gave it.
  eq('decided by JavaScript', js.accepted + js.dropped + js.queued, js.packets, 'its accept + drop + queue verdicts against its packets');
  eq('packets received', q.received, js.packets + (q.cached ?? 0) + (q.matched ?? 0) + q.overload + q.defaulted, 'the queue against JavaScript + flow cache + rule matcher + overload + defaulted verdicts');
  // /metrics is scraped over TCP through the queue itself, so it is bracketed by the verdicts before and after it.
  if (a.metrics.verdicts < a.metrics.verdictsBefore || a.metrics.verdicts > a.metrics.verdictsAfter) {
    f.push(`nfqwall_verdicts_total: ${a.metrics.verdicts} outside [${a.metrics.verdictsBefore}, ${a.metrics.verdictsAfter}] (the verdicts sent before and after the scrape)`);
  }
  if (a.metrics.received < a.metrics.verdicts) f.push(`nfqwall_queue_received_total ${a.metrics.received} < nfqwall_verdicts_total ${a.metrics.verdicts}`);
  // Counting rules, against what the receiving kernels counted: every forwarded packet was judged, counted once and
  // carried across every reload, and nothing nfqwall passed went missing.
  near('rule "count udp to server"', rules.countUdpToServer, server.udpArrived, "UDP datagrams arrived at the server (its kernel's InDatagrams + NoPorts + InErrors)");
  near('rule "count udp to client"', rules.countUdpToClient, client.udpArrived, "UDP datagrams arrived at the client");
  near('rule "count tcp to server"', rules.countTcpToServer, server.tcpInSegs, "TCP segments arrived at the server (InSegs)");
  near('rule "count tcp to client"', rules.countTcpToClient, client.tcpInSegs, 'TCP segments arrived at the client (InSegs)');
  near('rule "count echo requests"', rules.countEchoRequests, server.icmpInEchos, 'echo requests arrived at the server (InEchos)');
  near('rule "count echo replies"', rules.countEchoReplies, client.icmpInEchoReps, 'echo replies arrived at the client (InEchoReps)');
  // NAT rules see only the first packet of a connection; the connection table creates one entry per connection.
  near('rule "dnat tcp"', rules.dnatTcp, client.tcpActiveOpens, "TCP connections the client opened (its kernel's ActiveOpens)");
  near('rule "dnat udp"', rules.dnatUdp, UDP_FLOWS, "the UDP client's flows");
  near('rule "masquerade"', rules.masquerade, client.tcpActiveOpens + UDP_FLOWS + ICMP_FLOWS, 'connections leaving towards the server: TCP + UDP + ICMP');
  near(
    'connection table: created',
    ct.created - a.ctCreatedBefore,
    client.tcpActiveOpens + fw.tcpActiveOpens + UDP_FLOWS + ICMP_FLOWS,
    'connections opened: client TCP + the scraper on fw (loopback TCP) + UDP + ICMP',
  );
  eq('connection table: drop', ct.drop, 0, 'new connections refused (table full)');
  // Every entry created is still there or went exactly one way (docs/conntrack-table.md, Accounting).
  const gone = ct.entries + ct.expired + ct.earlyDrop + ct.deleted + ct.killed + ct.discarded;
  if (gone !== ct.created) {
    f.push(
      `connection table: entries ${ct.entries} + expired ${ct.expired} + early_drop ${ct.earlyDrop} + deleted ${ct.deleted} + killed ${ct.killed} + discarded ${ct.discarded} = ${gone} != created ${ct.created}`,
    );
  }
  return f;
}

function writeAtomically(file: string, text: string): void {
  // Renamed into place: the file watcher must never read half a file (that would be a failed reload).
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

export async function soak(opts: SoakOptions): Promise<SoakResult> {
  const log = opts.log;
  const failures: string[] = [];
  const samples: SoakSample[] = [];
  const rand = prng(opts.seed);
  const lab = await Lab.create(threeHostSpec());
  const scratch = scratchDir();
  let daemon: Daemon | undefined;
  const children: ChildProcess[] = [];
  try {
    const fw = lab.host('fw');
    const client = lab.host('client');
    const server = lab.host('server');
    const ifs: SoakIfs = { toClient: fw.ifname('client'), toServer: fw.ifname('server') };
    const rulesFile = scratch.write('rules.v4', soakRules(rand, ifs));
    const control = `${scratch.dir}/control.sock`;
    daemon = await Daemon.start(fw, control, { rules: rulesFile, queue: QUEUE });
    const pid = daemon.child.pid;
    if (pid === undefined) throw new Error('no daemon pid');

    const echo = server.spawn([process.execPath, '-e', ECHO, String(UDP_PORT), String(TCP_PORT)]);
    children.push(echo);
    const echoOut = lines(echo);
    for (let i = 0; i < 50 && !echoOut.all.includes('ready'); i++) await sleep(100);
    if (!echoOut.all.includes('ready')) throw new Error('the echo server did not start');

    // Baselines for the accounting, taken with nothing moving yet.
    const snmpBefore = { client: await snmpOf(client), server: await snmpOf(server), fw: await snmpOf(fw) };
    const rulesBefore = await ruleCounters(control);
    const ctCreatedBefore = (await statusOf(control)).ct.created;

    const secs = String(opts.seconds);
    const spawnTraffic = (h: Host, argv: string[]): { all: string[]; exited: Promise<void> } => {
      const c = h.spawn(argv);
      children.push(c);
      return lines(c);
    };
    const udp = spawnTraffic(client, [process.execPath, '-e', UDP_CLIENT, A.server4, String(UDP_DNAT_PORT), secs, '5']);
    const tcp = spawnTraffic(client, [process.execPath, '-e', TCP_CLIENT, A.server4, String(TCP_DNAT_PORT), secs]);
    const ping = spawnTraffic(client, ['ping', '-n', '-q', '-i', '0.1', '-w', secs, A.server4]);
    const scraper = spawnTraffic(fw, [process.execPath, '-e', SCRAPER, '9469', secs]);

    const t0 = Date.now();
    let reloads = 0;
    let lastSample = 0;
    // Warm-up: the connection table fills for two minutes (TCP TIME_WAIT) and the allocator settles after it (RSS
    // climbs for about four minutes of a 10-minute run, then stays flat).
    const warmAt = Math.min(Math.max(10, opts.seconds * 0.4), opts.seconds / 2);
    let warm: SoakSample | undefined;
    /** RSS and V8 heap once a second, for the floors compared at the end. */
    const series: { t: number; rssKiB: number; heap: number }[] = [];
    let lastRules = rulesBefore;
    log(`soak: ${opts.seconds} s, samples every ${opts.interval} s, reload every second, seed ${opts.seed}, daemon pid ${pid}`);
    log('   t(s)   rss(KiB)  heap(MiB)  fds   received  unverdicted  kqueue  conntrack  reloads  scrapes');
    while ((Date.now() - t0) / 1000 < opts.seconds) {
      const tick = Date.now();
      writeAtomically(rulesFile, soakRules(rand, ifs));
      const r = await controlRequest(control, { cmd: 'reload' }, 15_000);
      reloads++;
      if (!r.ok) failures.push(`reload ${reloads} failed: ${r.error}`);
      const now = await ruleCounters(control);
      for (const k of SOAK_RULE_NAMES) {
        if (now[k] < lastRules[k]) failures.push(`the counter of "${SOAK_RULES[k]}" went back from ${lastRules[k]} to ${now[k]} at reload ${reloads}`);
      }
      lastRules = now;
      const t = (Date.now() - t0) / 1000;
      const heapNow = [...scraper.all].reverse().find((l) => l.startsWith('scrape 200 '));
      series.push({ t, rssKiB: rssKiB(pid), heap: heapNow ? Number(heapNow.split(' ')[2]) : -1 });
      if (t - lastSample >= opts.interval || samples.length === 0) {
        lastSample = t;
        const st = await statusOf(control);
        const heapLine = [...scraper.all].reverse().find((l) => l.startsWith('scrape 200 '));
        const s: SoakSample = {
          t: Math.round(t),
          rssKiB: rssKiB(pid),
          heapUsedBytes: heapLine ? Number(heapLine.split(' ')[2]) : -1,
          fds: fdCount(pid),
          received: st.q.received,
          unverdicted: st.q.received - st.q.accepted - st.q.dropped,
          kernelQueue: st.q.kernelQueueTotal,
          conntrack: st.ct.entries,
          reloads,
          scrapes: scraper.all.filter((l) => l.startsWith('scrape 200 ')).length,
        };
        samples.push(s);
        if (warm === undefined && t >= warmAt) warm = s;
        log(
          `${String(s.t).padStart(7)} ${String(s.rssKiB).padStart(10)} ${(s.heapUsedBytes < 0 ? '-' : (s.heapUsedBytes / 1048576).toFixed(1)).padStart(10)} ${String(s.fds).padStart(4)} ` +
            `${String(s.received).padStart(10)} ${String(s.unverdicted).padStart(12)} ${String(s.kernelQueue).padStart(7)} ${String(s.conntrack).padStart(10)} ` +
            `${String(s.reloads).padStart(8)} ${String(s.scrapes).padStart(8)}`,
        );
      }
      await sleep(Math.max(0, 1000 - (Date.now() - tick)));
    }

    // Traffic stops by itself; then every queued packet must have had its verdict, and the last packets in flight
    // (late replies, the closing segments) must have arrived: the figures are read until two reads agree.
    await Promise.all([udp.exited, tcp.exited, ping.exited, scraper.exited]);
    const read = async (): Promise<{ st: Status; rules: Record<SoakRule, number>; snmp: Record<'client' | 'server' | 'fw', Record<string, number>> }> => ({
      st: await statusOf(control),
      rules: await ruleCounters(control),
      snmp: { client: await snmpOf(client), server: await snmpOf(server), fw: await snmpOf(fw) },
    });
    let last = await read();
    for (let i = 0; i < 40; i++) {
      await sleep(500);
      const next = await read();
      // threadIdleMs and the like move on their own: compare only what the accounting reads.
      const key = (x: typeof next): string => JSON.stringify([x.rules, x.snmp, x.st.js, x.st.ct.created, x.st.q.received, x.st.q.accepted, x.st.q.dropped]);
      const same = key(next) === key(last);
      last = next;
      if (same && next.st.q.kernelQueueTotal === 0 && next.st.q.received === next.st.q.accepted + next.st.q.dropped) break;
    }
    const st = last.st;
    const q = st.q;
    // /metrics last: its own request passes the queue (loopback TCP), so it is bracketed by the verdicts around it.
    const verdictsBefore = q.accepted + q.dropped;
    const metricsText = (await fw.exec([process.execPath, '-e', SCRAPE_ONCE, '9469'], { timeoutMs: 10_000 })).stdout;
    let after = await statusOf(control);
    for (let i = 0; i < 20 && (after.q.kernelQueueTotal !== 0 || after.q.received !== after.q.accepted + after.q.dropped); i++) {
      await sleep(100);
      after = await statusOf(control);
    }
    const accounting: SoakAccounting = {
      q,
      js: st.js,
      ct: st.ct,
      ctCreatedBefore,
      rules: Object.fromEntries(SOAK_RULE_NAMES.map((k) => [k, last.rules[k] - rulesBefore[k]])) as Record<SoakRule, number>,
      client: hostCounts(last.snmp.client, snmpBefore.client),
      server: hostCounts(last.snmp.server, snmpBefore.server),
      fw: hostCounts(last.snmp.fw, snmpBefore.fw),
      metrics: {
        verdicts: metricSum(metricsText, 'nfqwall_verdicts_total'),
        received: metricSum(metricsText, 'nfqwall_queue_received_total'),
        verdictsBefore,
        verdictsAfter: after.q.accepted + after.q.dropped,
      },
    };
    const end: SoakSample = {
      t: Math.round((Date.now() - t0) / 1000), rssKiB: rssKiB(pid), heapUsedBytes: samples.at(-1)?.heapUsedBytes ?? -1,
      fds: fdCount(pid), received: q.received, unverdicted: q.received - q.accepted - q.dropped, kernelQueue: q.kernelQueueTotal,
      conntrack: st.ct.entries, reloads, scrapes: scraper.all.filter((l) => l.startsWith('scrape 200 ')).length,
    };
    samples.push(end);
    warm ??= samples[0];
    failures.push(...accountingFailures(accounting));
    if (st.reloads.failure > 0) failures.push(`${st.reloads.failure} reloads failed (last: ${st.reloads.lastError ?? ''})`);
    const quarter = (opts.seconds - warmAt) / 4;
    const floor = (from: number, to: number, key: 'rssKiB' | 'heap'): number => {
      const xs = series.filter((x) => x.t >= from && x.t <= to && x[key] >= 0).map((x) => x[key]);
      return xs.length === 0 ? NaN : Math.min(...xs);
    };
    const rssFloorWarm = floor(warmAt, warmAt + quarter, 'rssKiB');
    const rssFloorEnd = floor(opts.seconds - quarter, Infinity, 'rssKiB');
    const heapFloorWarm = floor(warmAt, warmAt + quarter, 'heap');
    const heapFloorEnd = floor(opts.seconds - quarter, Infinity, 'heap');
    const growthKiB = rssFloorEnd - rssFloorWarm;
    if (!Number.isFinite(growthKiB)) failures.push('too few samples to measure memory growth');
    else if (growthKiB > opts.rssGrowthMiB * 1024) {
      failures.push(`resident memory grew ${growthKiB} KiB after warm-up (lowest of the last quarter against the lowest after warm-up; bound ${opts.rssGrowthMiB} MiB)`);
    }
    const fdGrowth = end.fds - (warm?.fds ?? end.fds);
    if (fdGrowth > 4) failures.push(`open descriptors grew by ${fdGrowth} after warm-up`);
    if (!daemon.running) failures.push(`nfqwall exited:\n${daemon.output.slice(-3000)}`);

    const num = (all: string[], re: RegExp): number[] => {
      const m = all.map((l) => re.exec(l)).find((x) => x !== null);
      return m ? m.slice(1).map(Number) : [];
    };
    const [udpSent = 0, udpReplies = 0] = num(udp.all, /^udp (\d+) (\d+)$/);
    const [tcpTried = 0, tcpOk = 0] = num(tcp.all, /^tcp (\d+) (\d+)$/);
    const [pingSent = 0, pingReceived = 0] = num(ping.all, /(\d+) packets transmitted, (\d+) (?:packets )?received/);
    const ratio = (a: number, b: number): number => (b === 0 ? 0 : a / b);
    // The soak is about leaks and lost verdicts, not speed: a machine busy elsewhere may lose a little traffic.
    for (const [what, got, of] of [['UDP echoes', udpReplies, udpSent], ['TCP exchanges', tcpOk, tcpTried], ['pings', pingReceived, pingSent]] as const) {
      if (of === 0 || ratio(got, of) < 0.95) failures.push(`${what}: ${got} of ${of} got through`);
    }
    const summary: Record<string, number> = {
      seconds: opts.seconds, reloads, scrapes: end.scrapes, queued: q.received, overload: q.overload,
      udpSent, udpReplies, tcpTried, tcpOk, pingSent, pingReceived,
      rssFloorWarmKiB: rssFloorWarm, rssFloorEndKiB: rssFloorEnd, rssGrowthKiB: growthKiB, rssEndKiB: end.rssKiB,
      heapFloorWarmMiB: Math.round((heapFloorWarm / 1048576) * 10) / 10, heapFloorEndMiB: Math.round((heapFloorEnd / 1048576) * 10) / 10,
      fdsWarm: warm?.fds ?? 0, fdsEnd: end.fds, conntrackEnd: end.conntrack, lostVerdicts: q.received - q.accepted - q.dropped,
      kernelIdSequence: q.kernelIdSequence, kernelQueueDropped: q.kernelQueueDropped, kernelUserDropped: q.kernelUserDropped, defaulted: q.defaulted,
      jsPackets: st.js.packets, jsAccepted: st.js.accepted, jsDropped: st.js.dropped,
      ctCreated: st.ct.created - ctCreatedBefore, ctExpired: st.ct.expired, ctEarlyDrop: st.ct.earlyDrop, ctDeleted: st.ct.deleted,
      ctKilled: st.ct.killed, ctDiscarded: st.ct.discarded, cached: q.cached ?? 0, matched: q.matched ?? 0,
      clientTcpActiveOpens: accounting.client.tcpActiveOpens, fwTcpActiveOpens: accounting.fw.tcpActiveOpens,
      clientTcpOutRsts: accounting.client.tcpOutRsts, serverTcpOutRsts: accounting.server.tcpOutRsts,
      ...Object.fromEntries(SOAK_RULE_NAMES.map((k) => [`rule_${k}`, accounting.rules[k]])),
      serverUdpArrived: accounting.server.udpArrived, clientUdpArrived: accounting.client.udpArrived,
      serverTcpInSegs: accounting.server.tcpInSegs, clientTcpInSegs: accounting.client.tcpInSegs,
      serverInEchos: accounting.server.icmpInEchos, clientInEchoReps: accounting.client.icmpInEchoReps,
      metricsVerdicts: accounting.metrics.verdicts, metricsReceived: accounting.metrics.received,
    };
    log(`soak: ${Object.entries(summary).map(([k, v]) => `${k}=${v}`).join(' ')}`);
    for (const f of failures) log(`soak: FAIL: ${f}`);
    if (failures.length === 0) log('soak: ok');
    return { ok: failures.length === 0, failures, samples, summary };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    if (daemon?.running === true) await daemon.stop();
    await lab.destroy();
    scratch.cleanup();
  }
}

function parseArgs(argv: string[]): Omit<SoakOptions, 'log'> {
  const o = { seconds: 600, interval: 10, rssGrowthMiB: 32, seed: Date.now() % 1_000_000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = Number(argv[i + 1]);
    const need = (): number => {
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      i++;
      return v;
    };
    if (a === '--minutes') o.seconds = need() * 60;
    else if (a === '--seconds') o.seconds = need();
    else if (a === '--interval') o.interval = need();
    else if (a === '--rss-growth-mib') o.rssGrowthMiB = need();
    else if (a === '--seed') o.seed = need();
    else throw new Error(`unknown option ${a} (--minutes N, --seconds N, --interval S, --rss-growth-mib M, --seed N)`);
  }
  return o;
}

if (require.main === module) {
  (async () => {
    if (!isRoot()) throw new Error('the soak needs root (network namespaces)');
    const r = await soak({ ...parseArgs(process.argv.slice(2)), log: (l) => process.stdout.write(l + '\n') });
    process.exit(r.ok ? 0 : 1);
  })().catch((err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  });
}
