// Network-namespace labs for end-to-end tests and benchmarks. Every host is a namespace named
// `nfqw-<pid>-<seq>-<host>`, wired only to other lab hosts by veth pairs; nothing touches the host's own namespace.
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface HostSpec {
  name: string;
  /** Turn on IPv4 and IPv6 forwarding in this host. */
  forward?: boolean;
}
/** A veth pair between hosts a and b, with the CIDRs (v4 and v6) to assign on each end. */
export interface LinkSpec {
  a: string;
  b: string;
  aAddr: string[];
  bAddr: string[];
}
export interface RouteSpec {
  host: string;
  /** Destination prefix, or `default`. */
  to: string;
  via: string;
}
export interface LabSpec {
  hosts: HostSpec[];
  links: LinkSpec[];
  routes?: RouteSpec[];
}

export interface ExecOptions {
  input?: string;
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
  /** Throw when the command exits non-zero (default true). */
  check?: boolean;
}
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}
export type HostSpawnOptions = Pick<SpawnOptions, 'stdio' | 'env' | 'cwd'>;

export interface Host {
  name: string;
  ns: string;
  /** Interface name in this host for its link to `peer` (first link when there are several). */
  ifname(peer: string): string;
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a process in this host; it is killed by Lab.destroy(). */
  spawn(argv: string[], opts?: HostSpawnOptions): ChildProcess;
}

const NS_PREFIX = 'nfqw';
let labSeq = 0;
/** Namespaces of this process not yet deleted, for the exit sweep. */
const liveNamespaces = new Set<string>();

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Skips the calling suite or test when `why` is set, saying so on stderr: a skip a reader of the output can check
 * (CI runs as root with every tool installed, so none of these fire there).
 */
export function skipBecause(ctx: Mocha.Context, what: string, why: string | undefined): void {
  if (why === undefined) return;
  process.stderr.write(`${what}: skipped: ${why}\n`);
  ctx.skip();
}

/** skipBecause for tests that build network namespaces, bind NFQUEUE or change a namespace's rules. */
export function skipUnlessRoot(ctx: Mocha.Context, what: string): void {
  skipBecause(ctx, what, isRoot() ? undefined : 'needs root (network namespaces, NFQUEUE, iptables in a namespace)');
}

function run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new Error('lab: empty argv'));
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        const result = { code, stdout: String(stdout), stderr: String(stderr) };
        if (code !== 0 && opts.check !== false) {
          const why = err?.killed === true ? `killed after ${opts.timeoutMs ?? 30_000} ms` : `exit ${code}`;
          reject(new Error(`lab: ${argv.join(' ')}: ${why}: ${result.stderr.trim()}`));
          return;
        }
        resolve(result);
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

function listNamespaces(): string[] {
  let out: string;
  try {
    out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return [];
  }
  return out
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

function pidsIn(ns: string): number[] {
  try {
    const out = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out
      .split('\n')
      .map((s) => Number.parseInt(s, 10))
      .filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Synchronous: kills what runs in the namespace (it is ours), then deletes it. */
function deleteNamespaceSync(ns: string): void {
  for (const pid of pidsIn(ns)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // already gone
  }
  liveNamespaces.delete(ns);
}

/** Deletes `nfqw-<pid>-...` namespaces left by processes that no longer exist and have nothing running inside. */
export function sweepStaleNamespaces(): string[] {
  if (!isRoot()) return [];
  const swept: string[] = [];
  for (const ns of listNamespaces()) {
    const m = /^nfqw-(\d+)-/.exec(ns);
    if (m === null) continue;
    const owner = Number(m[1]);
    if (owner === process.pid || pidAlive(owner) || pidsIn(ns).length > 0) continue;
    deleteNamespaceSync(ns);
    swept.push(ns);
  }
  return swept;
}

process.on('exit', () => {
  for (const ns of [...liveNamespaces]) deleteNamespaceSync(ns);
});
sweepStaleNamespaces();

// A signal's default action skips 'exit' handlers: once a lab exists, turn SIGINT/SIGTERM/SIGHUP into an exit.
let signalsHooked = false;
function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.once(sig, () => process.exit(code));
  }
}

/** A veth name (at most 15 bytes) that is unique within the host. */
function vethName(peer: string, used: Set<string>): string {
  let name = `to-${peer}`.slice(0, 15);
  for (let i = 1; used.has(name); i++) name = `to-${peer}`.slice(0, 15 - String(i).length) + String(i);
  used.add(name);
  return name;
}

class LabHost implements Host {
  readonly children = new Set<ChildProcess>();
  readonly ifnames = new Map<string, string>();
  readonly usedIfnames = new Set<string>();

  constructor(
    readonly name: string,
    readonly ns: string,
  ) {}

  ifname(peer: string): string {
    const name = this.ifnames.get(peer);
    if (name === undefined) throw new Error(`lab: host ${this.name} has no link to ${peer}`);
    return name;
  }

  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult> {
    return run(['ip', 'netns', 'exec', this.ns, ...argv], opts);
  }

  spawn(argv: string[], opts: HostSpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.ns, ...argv], { stdio: 'pipe', ...opts });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export class Lab {
  private readonly hosts = new Map<string, LabHost>();
  private destroyed = false;

  private constructor(readonly id: string) {}

  static async create(spec: LabSpec): Promise<Lab> {
    if (!isRoot()) throw new Error('lab: network namespaces need root');
    hookSignals();
    const lab = new Lab(`${NS_PREFIX}-${process.pid}-${++labSeq}`);
    try {
      await lab.build(spec);
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (h === undefined) throw new Error(`lab: no host ${name}`);
    return h;
  }

  /** The namespace names of this lab's hosts. */
  namespaces(): string[] {
    return [...this.hosts.values()].map((h) => h.ns);
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const hosts = [...this.hosts.values()];
    for (const h of hosts) for (const c of h.children) c.kill('SIGKILL');
    await Promise.all(hosts.flatMap((h) => [...h.children].map((c) => waitExit(c, 5_000))));
    for (const h of hosts) deleteNamespaceSync(h.ns);
  }

  private async build(spec: LabSpec): Promise<void> {
    for (const hs of spec.hosts) {
      if (!/^[a-z][a-z0-9]{0,11}$/.test(hs.name)) throw new Error(`lab: bad host name ${JSON.stringify(hs.name)}`);
      if (this.hosts.has(hs.name)) throw new Error(`lab: duplicate host ${hs.name}`);
      const ns = `${this.id}-${hs.name}`;
      liveNamespaces.add(ns);
      this.hosts.set(hs.name, new LabHost(hs.name, ns));
      await run(['ip', 'netns', 'add', ns]);
      await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      const f = hs.forward === true ? '1' : '0';
      await run([
        'ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w',
        `net.ipv4.ip_forward=${f}`, `net.ipv6.conf.all.forwarding=${f}`,
        'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0',
      ]);
    }
    for (const link of spec.links) {
      const a = this.hosts.get(link.a);
      const b = this.hosts.get(link.b);
      if (a === undefined || b === undefined) throw new Error(`lab: link ${link.a}-${link.b} names an unknown host`);
      const aIf = vethName(b.name, a.usedIfnames);
      const bIf = vethName(a.name, b.usedIfnames);
      if (!a.ifnames.has(b.name)) a.ifnames.set(b.name, aIf);
      if (!b.ifnames.has(a.name)) b.ifnames.set(a.name, bIf);
      // Created inside a's namespace with the peer placed straight into b's: never visible in the host namespace.
      await run(['ip', '-n', a.ns, 'link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.ns]);
      for (const [h, ifname, addrs] of [[a, aIf, link.aAddr], [b, bIf, link.bAddr]] as const) {
        for (const cidr of addrs) {
          const extra = cidr.includes(':') ? ['nodad'] : [];
          await run(['ip', '-n', h.ns, 'addr', 'add', cidr, 'dev', ifname, ...extra]);
        }
        await run(['ip', '-n', h.ns, 'link', 'set', ifname, 'up']);
      }
    }
    for (const r of spec.routes ?? []) {
      const h = this.hosts.get(r.host);
      if (h === undefined) throw new Error(`lab: route for unknown host ${r.host}`);
      const family = r.via.includes(':') ? '-6' : '-4';
      await run(['ip', '-n', h.ns, family, 'route', 'add', r.to, 'via', r.via]);
    }
  }
}

/** Addresses of the standard three-host lab. */
export const THREE_HOST = {
  client4: '198.18.0.2',
  client6: '2001:db8:0::2',
  fwClient4: '198.18.0.1',
  fwClient6: '2001:db8:0::1',
  fwServer4: '198.19.0.1',
  fwServer6: '2001:db8:1::1',
  server4: '198.19.0.2',
  server6: '2001:db8:1::2',
} as const;

/**
 * The standard three-host lab: client 198.18.0.2/24 + 2001:db8:0::2/64 — fw (198.18.0.1, 2001:db8:0::1 /
 * 198.19.0.1, 2001:db8:1::1, forwarding on) — server 198.19.0.2/24 + 2001:db8:1::2/64, with routes both ways.
 */
export function threeHostSpec(): LabSpec {
  return {
    hosts: [{ name: 'client' }, { name: 'fw', forward: true }, { name: 'server' }],
    links: [
      { a: 'client', b: 'fw', aAddr: ['198.18.0.2/24', '2001:db8:0::2/64'], bAddr: ['198.18.0.1/24', '2001:db8:0::1/64'] },
      { a: 'fw', b: 'server', aAddr: ['198.19.0.1/24', '2001:db8:1::1/64'], bAddr: ['198.19.0.2/24', '2001:db8:1::2/64'] },
    ],
    routes: [
      { host: 'client', to: '198.19.0.0/24', via: THREE_HOST.fwClient4 },
      { host: 'client', to: '2001:db8:1::/64', via: THREE_HOST.fwClient6 },
      { host: 'server', to: '198.18.0.0/24', via: THREE_HOST.fwServer4 },
      { host: 'server', to: '2001:db8:0::/64', via: THREE_HOST.fwServer6 },
    ],
  };
}

/**
 * Mocha hooks: builds the lab before the suite and destroys it after. Without root the suite is skipped (with the
 * reason on stderr); with root a failure to build the lab fails the suite.
 */
export function useLab(spec: () => LabSpec): { readonly lab: Lab } {
  let current: Lab | undefined;
  before(async function () {
    this.timeout(60_000);
    if (!isRoot()) {
      process.stderr.write('lab: skipping: network-namespace tests need root\n');
      this.skip();
    }
    current = await Lab.create(spec());
  });
  after(async function () {
    this.timeout(30_000);
    await current?.destroy();
    current = undefined;
  });
  return {
    get lab(): Lab {
      if (current === undefined) throw new Error('lab: not created (outside the suite, or creation failed)');
      return current;
    },
  };
}
