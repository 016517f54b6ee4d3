// The two sides of a differential run: a three-host lab whose fw holds a ruleset either in the kernel's own
// iptables (the oracle) or in nfqwall. Both sides get the same packets, in the same order, from the same hosts, and
// report what arrived on the client's and the server's wire and the per-rule counters of fw.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Lab, THREE_HOST, threeHostSpec, type Host } from '../lab/lab';
import { Daemon, packageRoot, scratchDir, sleep } from '../lab/daemon';

export type Side = 'kernel' | 'nfqwall';
export type Sender = 'client' | 'server' | 'fw';

/** Extra addresses on client and server so rules can tell sources apart (fw can still reach them: REJECT replies). */
export const CLIENT_ADDRS = ['198.18.0.2', '198.18.0.3', '198.18.0.66', '198.18.0.130', '198.18.0.200'] as const;
export const SERVER_ADDRS = ['198.19.0.2', '198.19.0.3', '198.19.0.66', '198.19.0.130', '198.19.0.200'] as const;
export const FW_ADDRS = [THREE_HOST.fwClient4, THREE_HOST.fwServer4] as const;
export const CLIENT6_ADDRS = ['2001:db8::2', '2001:db8::3', '2001:db8::66', '2001:db8::82', '2001:db8::c8'] as const;
export const SERVER6_ADDRS = ['2001:db8:1::2', '2001:db8:1::3', '2001:db8:1::66', '2001:db8:1::82', '2001:db8:1::c8'] as const;
export const FW6_ADDRS = ['2001:db8::1', '2001:db8:1::1'] as const;

export type Family = 4 | 6;

/** IPv4 rules that let everything through: nfqwall needs an IPv4 file when only the IPv6 rules are under test. */
const OPEN4 = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n';

/** The chain the harness adds to the kernel side's raw table; never compared. */
export const ORACLE_CHAIN = 'NFQW-ORACLE';

/**
 * How the kernel side treats connection tracking. `conntrack` (default): the kernel tracks connections and does NAT,
 * which nfqwall's own connection table must match. `notrack` (NFQW_ORACLE=notrack): every packet untracked on the
 * kernel side (`CT --notrack` first in raw PREROUTING and OUTPUT), for an nfqwall that has no connection table.
 */
export const ORACLE_MODE: 'notrack' | 'conntrack' = process.env['NFQW_ORACLE'] === 'notrack' ? 'notrack' : 'conntrack';

const NOTRACK_SCRIPT = [
  '*raw',
  `:${ORACLE_CHAIN} - [0:0]`,
  `-A ${ORACLE_CHAIN} -j CT --notrack`,
  `-I PREROUTING 1 -j ${ORACLE_CHAIN}`,
  `-I OUTPUT 1 -j ${ORACLE_CHAIN}`,
  'COMMIT',
  '',
].join('\n');

/**
 * The kernel only runs conntrack in a namespace once some rule needs it (nf_ct_netns_get: a conntrack/state match, a
 * NAT target, CT): a ruleset whose nat table has no NAT target would leave every packet untracked and the nat chains
 * unvisited, where nfqwall always tracks. A conntrack match in a chain nothing jumps to turns it on and sees nothing.
 */
const CONNTRACK_SCRIPT = ['*raw', `:${ORACLE_CHAIN} - [0:0]`, `-A ${ORACLE_CHAIN} -m conntrack --ctstate NEW`, 'COMMIT', ''].join('\n');

/** Whether conntrack(8) is installed (to empty fw's connection table between rulesets instead of rebuilding fw). */
const HAVE_CONNTRACK_TOOL = ['/usr/sbin/conntrack', '/sbin/conntrack', '/usr/bin/conntrack'].some((f) => fs.existsSync(f));

const TABLES = ['raw', 'mangle', 'nat', 'filter', 'security'] as const;
const BUILTINS: Record<(typeof TABLES)[number], string[]> = {
  raw: ['PREROUTING', 'OUTPUT'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

/** An iptables-restore script that empties every table (a previous ruleset may have used tables this one does not). */
function resetScript(): string {
  const out: string[] = [];
  for (const t of TABLES) {
    out.push(`*${t}`, ...BUILTINS[t].map((c) => `:${c} ACCEPT [0:0]`), 'COMMIT');
  }
  return out.join('\n') + '\n';
}

export interface WirePacket {
  /** Where it was seen: the client's or the server's interface towards fw. */
  at: 'client' | 'server';
  /** The IP packet (Ethernet header removed). */
  ip: Uint8Array;
}

export interface RunResult {
  frames: WirePacket[];
  /** Per packet sent: `ok` or the send error (locally generated packets dropped in OUTPUT fail with EPERM). */
  sendResults: string[];
}

export interface SendItem {
  from: Sender;
  bytes: Uint8Array;
}

function fixture(name: string): string {
  return path.join(packageRoot(), 'test', 'differential', 'fixtures', name);
}

function addonPath(): string {
  return path.join(packageRoot(), 'build', 'Release', 'nfqwall.node');
}

/** Line reader over a child's stdout: next() resolves with the next line. */
class Lines {
  private buf = '';
  private readonly queue: string[] = [];
  private waiter: ((line: string) => void) | undefined;
  private failed: Error | undefined;
  private failWaiter: ((e: Error) => void) | undefined;
  stderr = '';

  constructor(
    readonly child: ChildProcess,
    what: string,
  ) {
    child.stdout?.on('data', (d: Buffer) => {
      this.buf += d.toString();
      const parts = this.buf.split('\n');
      this.buf = parts.pop() ?? '';
      for (const p of parts) this.push(p);
    });
    child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    // 'close', not 'exit': the last lines of stdout may still be in the pipe when the process has exited.
    child.once('close', (code) => {
      this.failed = new Error(`${what} exited (${code}): ${this.stderr.trim()}`);
      this.failWaiter?.(this.failed);
    });
  }

  private push(line: string): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      this.failWaiter = undefined;
      w(line);
    } else this.queue.push(line);
  }

  next(ms = 10_000): Promise<string> {
    const l = this.queue.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        this.failWaiter = undefined;
        reject(new Error(`no output within ${ms} ms: ${this.stderr.trim()}`));
      }, ms);
      this.waiter = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.failWaiter = (e) => {
        clearTimeout(timer);
        reject(e);
      };
    });
  }
}

/** Asks a running nfqwall for its live ruleset with counters over the control socket. */
export function controlSave(socketPath: string, family: 4 | 6 = 4): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('control save: no answer within 10 s'));
    }, 10_000);
    // The answer holds every family's ruleset (rulesets.ipv4, rulesets.ipv6); the request names none.
    sock.on('connect', () => sock.write(JSON.stringify({ cmd: 'save', counters: true }) + '\n'));
    sock.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      const res = JSON.parse(buf.slice(0, nl)) as { ok: boolean; error?: string; rulesets?: Record<string, string> };
      if (!res.ok) return reject(new Error(`control save: ${res.error ?? 'failed'}`));
      const text = res.rulesets?.[family === 4 ? 'ipv4' : 'ipv6'];
      if (text === undefined) return reject(new Error(`control save: no IPv${family} ruleset in the answer`));
      resolve(text);
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export class DiffSide {
  private readonly senders = new Map<Sender, Lines>();
  private daemon: Daemon | undefined;
  private readonly scratch = scratchDir();
  private readonly macs = new Map<string, string>();

  private constructor(
    readonly side: Side,
    public lab: Lab,
  ) {}

  static async create(side: Side): Promise<DiffSide> {
    const lab = await Lab.create(threeHostSpec());
    const d = new DiffSide(side, lab);
    try {
      await d.setup();
    } catch (e) {
      await d.destroy();
      throw e;
    }
    return d;
  }

  host(name: Sender): Host {
    return this.lab.host(name);
  }

  private async mac(h: Host, ifname: string): Promise<string> {
    const key = `${h.name}/${ifname}`;
    const known = this.macs.get(key);
    if (known !== undefined) return known;
    const r = await h.exec(['cat', `/sys/class/net/${ifname}/address`]);
    const m = r.stdout.trim();
    this.macs.set(key, m);
    return m;
  }

  private async setup(): Promise<void> {
    const client = this.host('client');
    const server = this.host('server');
    const fw = this.host('fw');
    for (const [h, addrs, addrs6] of [[client, CLIENT_ADDRS, CLIENT6_ADDRS], [server, SERVER_ADDRS, SERVER6_ADDRS]] as const) {
      const ifname = h.ifname('fw');
      for (const a of addrs.slice(1)) await h.exec(['ip', 'addr', 'add', `${a}/24`, 'dev', ifname]);
      for (const a of addrs6.slice(1)) await h.exec(['ip', 'addr', 'add', `${a}/64`, 'dev', ifname, 'nodad']);
      // Client and server only send and capture: whatever reaches their IP stack is dropped so they never answer
      // (their answers would cross fw and change its counters). Capture sees frames before netfilter does.
      await h.exec(['iptables', '-t', 'raw', '-A', 'PREROUTING', '-j', 'DROP']);
      await h.exec(['ip6tables', '-t', 'raw', '-A', 'PREROUTING', '-j', 'DROP']);
      // Nor do they send router solicitations or MLD reports that fw would count (test packets are unicast).
      await h.exec(['ip6tables', '-A', 'OUTPUT', '-d', 'ff00::/8', '-j', 'DROP']);
    }
    // ICMP errors are rate limited per destination and globally: neither side may have some suppressed.
    await fw.exec([
      'sysctl', '-q', '-w', 'net.ipv4.icmp_ratemask=0', 'net.ipv4.icmp_ratelimit=0', 'net.ipv4.icmp_msgs_per_sec=100000',
      'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0', 'net.ipv6.icmp.ratelimit=0',
      // Flow labels of fw's own IPv6 packets would otherwise be hashes that differ between the two sides.
      'net.ipv6.auto_flowlabels=0',
    ]);
    await fw.exec(['sysctl', '-q', '-w', 'net.ipv6.icmp.ratemask=255'], { check: false });
    // Permanent neighbours: no ARP exchanges whose timing could reorder or delay test packets.
    const fwC = fw.ifname('client');
    const fwS = fw.ifname('server');
    const cIf = client.ifname('fw');
    const sIf = server.ifname('fw');
    const cMac = await this.mac(client, cIf);
    const sMac = await this.mac(server, sIf);
    for (const a of CLIENT_ADDRS) await fw.exec(['ip', 'neigh', 'replace', a, 'lladdr', cMac, 'dev', fwC, 'nud', 'permanent']);
    for (const a of SERVER_ADDRS) await fw.exec(['ip', 'neigh', 'replace', a, 'lladdr', sMac, 'dev', fwS, 'nud', 'permanent']);
    await client.exec(['ip', 'neigh', 'replace', THREE_HOST.fwClient4, 'lladdr', await this.mac(fw, fwC), 'dev', cIf, 'nud', 'permanent']);
    await server.exec(['ip', 'neigh', 'replace', THREE_HOST.fwServer4, 'lladdr', await this.mac(fw, fwS), 'dev', sIf, 'nud', 'permanent']);
    for (const a of CLIENT6_ADDRS) await fw.exec(['ip', '-6', 'neigh', 'replace', a, 'lladdr', cMac, 'dev', fwC, 'nud', 'permanent']);
    for (const a of SERVER6_ADDRS) await fw.exec(['ip', '-6', 'neigh', 'replace', a, 'lladdr', sMac, 'dev', fwS, 'nud', 'permanent']);
    await client.exec(['ip', '-6', 'neigh', 'replace', FW6_ADDRS[0], 'lladdr', await this.mac(fw, fwC), 'dev', cIf, 'nud', 'permanent']);
    await server.exec(['ip', '-6', 'neigh', 'replace', FW6_ADDRS[1], 'lladdr', await this.mac(fw, fwS), 'dev', sIf, 'nud', 'permanent']);
    await this.quietIpv6();
    for (const s of ['client', 'server', 'fw'] as const) {
      const lines = new Lines(this.host(s).spawn([process.execPath, fixture('send.js'), addonPath()]), `sender in ${s}`);
      const first = await lines.next();
      if (first !== 'ready') throw new Error(`sender in ${s}: ${first}`);
      this.senders.set(s, lines);
    }
  }

  /**
   * Replaces fw's ruleset of one family (iptables-restore text) and zeroes its counters; the other family is left
   * open (kernel side: empty tables; nfqwall: accept-all IPv4 rules, no IPv6 rules).
   */
  async load(rules: string, family: Family = 4, prereq?: Prereq): Promise<void> {
    const conntrack = this.side === 'kernel' && ORACLE_MODE === 'conntrack';
    if (conntrack && this.loaded && !HAVE_CONNTRACK_TOOL) await this.rebuild();
    this.loaded = true;
    const fw = this.host('fw');
    if (this.side === 'kernel') {
      for (const tool of ['iptables-restore', 'ip6tables-restore']) await fw.exec([tool], { input: resetScript() });
      const tool = family === 4 ? 'iptables-restore' : 'ip6tables-restore';
      if (prereq) await this.runPrereq(prereq);
      await fw.exec(prereq?.noflush ? [tool, '--noflush'] : [tool], { input: rules });
      await fw.exec([tool, '--noflush'], { input: conntrack ? CONNTRACK_SCRIPT : NOTRACK_SCRIPT });
      // Every ruleset starts from an empty connection table, as nfqwall's (restarted for each) does.
      if (conntrack && HAVE_CONNTRACK_TOOL) for (const f of ['ipv4', 'ipv6']) await fw.exec(['conntrack', '-F', '-f', f], { check: false });
      return;
    }
    await this.stopDaemon();
    const ipset: string[] = [];
    if (prereq) {
      await this.runPrereq(prereq);
      // nfqwall reads one file: the chains the commands created (`iptables -N`) are declared in it instead.
      rules = declareChains(rules, prereq.chains);
      // and the sets they created (`ipset create`) come as an `ipset save` file, as a user would give them.
      if (prereq.commands.some((c) => /^ipset\s/.test(c))) {
        const saved = await fw.exec(['ipset', 'save']);
        ipset.push(this.scratch.write('sets.ipset', saved.stdout));
      }
    }
    const control = path.join(this.scratch.dir, 'control.sock');
    if (family === 4) this.daemon = await Daemon.start(fw, control, { rules: this.scratch.write('rules.v4', rules), ipset });
    else {
      const rules4 = this.scratch.write('rules.v4', OPEN4);
      this.daemon = await Daemon.start(fw, control, { rules: rules4, rules6: this.scratch.write('rules.v6', rules), ipset });
    }
  }

  /** A corpus file's prerequisite commands, in fw (objects that already exist from an earlier run are kept). */
  private async runPrereq(prereq: Prereq): Promise<void> {
    for (const cmd of prereq.commands) await this.host('fw').exec(['bash', '-c', cmd], { check: false });
  }

  async stopDaemon(): Promise<void> {
    if (this.daemon === undefined) return;
    const d = this.daemon;
    this.daemon = undefined;
    const r = await d.stop();
    if (r.timedOut) throw new Error(`nfqwall did not stop within 10 s:\n${d.output}`);
  }

  /**
   * What nfqwall itself reports going wrong (packets whose evaluation threw get the fail verdict, which would show
   * up only as unexplained drops): one line each, with the daemon's output.
   */
  async selfReported(): Promise<string[]> {
    if (this.side === 'kernel' || this.daemon === undefined) return [];
    const s = await this.daemon.status();
    const packets = (s['packets'] ?? {}) as Record<string, unknown>;
    const out: string[] = [];
    for (const key of ['errors', 'replyErrors', 'repliesUnsent']) {
      const v = packets[key];
      if (typeof v === 'number' && v > 0) out.push(`nfqwall status: packets.${key} = ${v}`);
    }
    if (out.length > 0) out.push(`nfqwall output:\n${this.daemon.output.slice(-4000)}`);
    return out;
  }

  daemonOutput(): string {
    return this.daemon?.output ?? '';
  }

  /** fw's live ruleset of one family with counters, as iptables-save -c prints it. */
  async save(family: Family = 4): Promise<string> {
    if (this.side === 'kernel') return (await this.host('fw').exec([family === 4 ? 'iptables-save' : 'ip6tables-save', '-c'])).stdout;
    if (this.daemon === undefined) throw new Error('nfqwall is not running');
    if (!this.daemon.running) throw new Error(`nfqwall exited:\n${this.daemon.output}`);
    return controlSave(this.daemon.control, family);
  }

  /**
   * Sends the packets one by one, in order, each from its host, `gapMs` apart (time for both sides to finish
   * with one before the next: `limit` and `statistic --mode nth` depend on order), and captures what reaches the
   * client's and the server's wire from fw.
   */
  async run(items: SendItem[], gapMs: number): Promise<RunResult> {
    const caps = new Map<'client' | 'server', Lines>();
    const sendResults: string[] = [];
    try {
      for (const at of ['client', 'server'] as const) {
        const h = this.host(at);
        const ifname = h.ifname('fw');
        // Test traffic only: no IGMP, no IPv6 multicast (MLD, router and neighbour solicitations) or link-local.
        const filter = '(ip and not igmp) or (ip6 and not ip6 multicast and not src net fe80::/10)';
        const child = h.spawn([process.execPath, fixture('capture.js'), ifname, filter, await this.mac(h, ifname)]);
        const lines = new Lines(child, `capture in ${at}`);
        const first = await lines.next();
        if (first !== 'ready') throw new Error(`capture in ${at}: ${first}`);
        caps.set(at, lines);
      }
      for (const item of items) {
        const s = this.senders.get(item.from);
        if (s === undefined) throw new Error(`no sender in ${item.from}`);
        s.child.stdin?.write(Buffer.from(item.bytes).toString('hex') + '\n');
        const ans = await s.next();
        sendResults.push(ans.startsWith('ok ') ? 'ok' : ans.replace(/^err \d+ /, ''));
        // The kernel has decided the packet when the send returns; nfqwall must have too before the next one goes.
        if (this.daemon !== undefined) await this.daemon.settled();
        await sleep(gapMs);
      }
      await sleep(300);
      const frames: WirePacket[] = [];
      for (const [at, lines] of caps) {
        lines.child.stdin?.end();
        for (;;) {
          const line = await lines.next(10_000);
          if (line === 'done') break;
          const hex = line.slice(3);
          if (hex.slice(24, 28) !== '0800' && hex.slice(24, 28) !== '86dd') continue;
          frames.push({ at, ip: new Uint8Array(Buffer.from(hex.slice(28), 'hex')) });
        }
      }
      return { frames, sendResults };
    } finally {
      for (const c of caps.values()) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    }
  }

  private loaded = false;

  /** A fresh lab in place of this one (the kernel's connection table starts empty). */
  private async rebuild(): Promise<void> {
    for (const s of this.senders.values()) s.child.stdin?.end();
    this.senders.clear();
    this.macs.clear();
    await this.lab.destroy();
    this.lab = await Lab.create(threeHostSpec());
    await this.setup();
  }

  /**
   * A new link's IPv6 multicast listener reports (and the reports for each address added) go out at random times in
   * the following second or two, through fw's OUTPUT and POSTROUTING: counted by whichever side they fall in, they
   * would make the policy counters differ by chance. Waits until fw has sent none for 1.5 s (at most 8 s).
   */
  private async quietIpv6(): Promise<void> {
    const fw = this.host('fw');
    const sent = async (): Promise<string> => {
      const text = (await fw.exec(['cat', '/proc/net/snmp6'])).stdout;
      return text.split('\n').filter((l) => /^Icmp6Out(MLDv2Reports|GroupMembResponses|RouterSolicits|NeighborSolicits)\s/.test(l)).join(' ');
    };
    const deadline = Date.now() + 8_000;
    let last = await sent();
    let since = Date.now();
    while (Date.now() < deadline && Date.now() - since < 1_500) {
      await sleep(100);
      const now = await sent();
      if (now !== last) {
        last = now;
        since = Date.now();
      }
    }
  }

  async destroy(): Promise<void> {
    try {
      await this.stopDaemon();
    } finally {
      for (const s of this.senders.values()) s.child.stdin?.end();
      await this.lab.destroy();
      this.scratch.cleanup();
    }
  }
}

/**
 * A corpus file's `.prereq` (see ../shared/corpus/validate.sh): shell commands to run in fw before the restore, and
 * `#NOFLUSH` (restore with --noflush, after chains the commands created).
 */
export interface Prereq {
  commands: string[];
  noflush: boolean;
  /** `table/chain` for each `iptables -N` / `ip6tables -N` among the commands. */
  chains: { table: string; chain: string }[];
}

export function parsePrereq(text: string): Prereq {
  const lines = text.split('\n').map((l) => l.trim());
  const commands = lines.filter((l) => l !== '' && !l.startsWith('#'));
  const chains: { table: string; chain: string }[] = [];
  for (const c of commands) {
    const m = /^ip6?tables(?:\s+-t\s+(\S+))?\s+-N\s+(\S+)\s*$/.exec(c);
    if (m) chains.push({ table: m[1] ?? 'filter', chain: m[2] as string });
  }
  return { commands, noflush: lines.includes('#NOFLUSH'), chains };
}

/** `rules` with `:CHAIN - [0:0]` declared in each table for the given chains (tables missing from it are added). */
export function declareChains(rules: string, chains: { table: string; chain: string }[]): string {
  let out = rules;
  for (const t of new Set(chains.map((c) => c.table))) {
    const decl = chains.filter((c) => c.table === t).map((c) => `:${c.chain} - [0:0]`).join('\n');
    const re = new RegExp(`^\\*${t}\\s*$`, 'm');
    out = re.test(out) ? out.replace(re, `*${t}\n${decl}`) : `${out}*${t}\n${decl}\nCOMMIT\n`;
  }
  return out;
}

/** Both sides, built in parallel. */
export async function createPair(): Promise<{ kernel: DiffSide; nfqwall: DiffSide }> {
  const [k, n] = await Promise.allSettled([DiffSide.create('kernel'), DiffSide.create('nfqwall')]);
  if (k.status === 'fulfilled' && n.status === 'fulfilled') return { kernel: k.value, nfqwall: n.value };
  if (k.status === 'fulfilled') await k.value.destroy();
  if (n.status === 'fulfilled') await n.value.destroy();
  throw k.status === 'rejected' ? k.reason : (n as PromiseRejectedResult).reason;
}
