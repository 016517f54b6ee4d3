// Follows link, address, route and routing rule changes of the daemon's network namespace with `ip monitor link
// address route rule`, calling back (debounced) so the host view (addrtype LOCAL, REJECT sources, MASQUERADE and
// REDIRECT addresses, what hook skipping needs), and interface names stay current, and reporting each link and
// address event as its line comes, so the daemon can forget MASQUERADE bindings as the kernel's netdevice and inetaddr
// notifiers do. Restarted with a delay if it dies; killed at close.
//
// A child inherits every descriptor not marked close-on-exec. If the NFQUEUE socket is such a descriptor, a monitor
// outliving a SIGKILLed daemon would keep the queue bound, and the kernel would hold packets for it instead of
// bypassing (fail-open) or dropping: so the daemon starts the monitor before it binds the queue, and a restart is
// skipped (the periodic refresh remains) while a descriptor could leak.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';

const O_CLOEXEC = 0o2000000;

/**
 * Sockets above stderr a child would inherit (no O_CLOEXEC), from /proc/PID/fdinfo. Only sockets: a pipe some
 * parent left open is harmless, a netlink queue socket is not.
 */
export function inheritableSockets(procDir = '/proc/self'): number[] {
  const out: number[] = [];
  let fds: string[];
  try {
    fds = fs.readdirSync(`${procDir}/fd`);
  } catch {
    return out;
  }
  for (const name of fds) {
    const fd = Number(name);
    if (!(fd > 2)) continue;
    try {
      if (!fs.readlinkSync(`${procDir}/fd/${fd}`).startsWith('socket:')) continue;
      const m = /^flags:\s*([0-7]+)/m.exec(fs.readFileSync(`${procDir}/fdinfo/${fd}`, 'utf8'));
      if (m && (parseInt(m[1]!, 8) & O_CLOEXEC) === 0) out.push(fd);
    } catch {
      // Closed meanwhile (the readdir's own descriptor).
    }
  }
  return out;
}

/**
 * One link or address event of `ip monitor`. `up` is IFF_UP (administratively up) in the link's flags: a link
 * event without it is the kernel's NETDEV_DOWN state (set down, or being deleted).
 */
export type IpEvent =
  | { kind: 'link'; ifindex: number; ifname: string; up: boolean; deleted: boolean }
  | { kind: 'address'; ifindex: number; ifname: string; family: 4 | 6; address: string; deleted: boolean };

// `3: to-server@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu ...`, `Deleted 5: d1@NONE: <BROADCAST,MULTICAST> ...`
const LINK_LINE = /^(Deleted )?(\d+): ([^\s:@]+)(?:@\S+)?: <([^>]*)>/;
// `3: d0    inet 198.18.9.5/24 scope global secondary d0`, `Deleted 3: d0    inet6 2001:db8:9::1/64 scope global`
const ADDRESS_LINE = /^(Deleted )?(\d+): ([^\s:@]+)\s+inet(6?) ([0-9A-Fa-f.:]+)/;

/**
 * A line of `ip monitor link address` output as an event; undefined for routes, the indented continuation lines of
 * an event (`link/ether ...`, `valid_lft ...`) and anything else. With `-o` an event is one line: read the same.
 */
export function parseMonitorLine(line: string): IpEvent | undefined {
  const link = LINK_LINE.exec(line);
  if (link) {
    const deleted = link[1] !== undefined;
    const flags = link[4]!.split(',');
    return { kind: 'link', ifindex: Number(link[2]), ifname: link[3]!, up: !deleted && flags.includes('UP'), deleted };
  }
  const addr = ADDRESS_LINE.exec(line);
  if (addr) {
    return {
      kind: 'address',
      ifindex: Number(addr[2]),
      ifname: addr[3]!,
      family: addr[4] === '6' ? 6 : 4,
      address: addr[5]!,
      deleted: addr[1] !== undefined,
    };
  }
  return undefined;
}

export interface IpMonitorOptions {
  debounceMs?: number;
  restartMs?: number;
  /** The command, for tests: defaults to `ip monitor link address route rule`. */
  argv?: readonly string[];
  /** Each link and address event, as its line arrives (before the debounced onChange). */
  onEvent?: (event: IpEvent) => void;
  /** Sockets a restarted child would inherit; a restart is skipped when there are any (default: /proc). */
  leakingFds?: () => number[];
  onError?: (msg: string) => void;
}

export class IpMonitor {
  private child: ChildProcess | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private restart: NodeJS.Timeout | undefined;
  private closed = false;
  /** Change notifications seen (lines of `ip monitor` output). */
  events = 0;

  constructor(
    private readonly onChange: () => void,
    private readonly opts: IpMonitorOptions = {},
  ) {
    this.start();
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private start(): void {
    const [cmd, ...args] = this.opts.argv ?? ['ip', 'monitor', 'link', 'address', 'route', 'rule'];
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    // A chunk can end inside a line: the rest waits for the next chunk.
    let partial = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        this.events++;
        const event = this.opts.onEvent === undefined ? undefined : parseMonitorLine(line);
        if (event === undefined) continue;
        try {
          this.opts.onEvent?.(event);
        } catch (err) {
          // A failing handler must not take the stream (and with it the daemon's uncaughtException path) down.
          this.opts.onError?.(`ip monitor event ${JSON.stringify(line)}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      this.schedule();
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-500);
    });
    child.on('error', (err) => this.opts.onError?.(`ip monitor: ${err.message}`));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.closed) return;
      this.opts.onError?.(`ip monitor exited (${code ?? signal}) ${stderr.trim()}; restarting`);
      // Whatever changed while it was down is picked up by the refresh after the restart.
      this.restart = setTimeout(() => {
        this.restart = undefined;
        if (this.closed) return;
        const leaks = (this.opts.leakingFds ?? inheritableSockets)();
        if (leaks.length > 0) {
          this.opts.onError?.(`ip monitor not restarted: it would inherit sockets ${leaks.join(', ')}`);
          return;
        }
        this.start();
        this.schedule();
      }, this.opts.restartMs ?? 5000);
      this.restart.unref();
    });
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      if (!this.closed) this.onChange();
    }, this.opts.debounceMs ?? 100);
  }

  close(): void {
    this.closed = true;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.restart) clearTimeout(this.restart);
    const c = this.child;
    this.child = undefined;
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  }
}
