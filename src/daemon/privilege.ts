// Privilege (issue #9): `nfqwall run` holds CAP_NET_ADMIN alone once it serves. Like ping or chronyd it acquires what
// needs more at start, then drops it: it opens the two IPPROTO_RAW sockets REJECT replies go out through (CAP_NET_RAW),
// lowers every capability set of its main thread (effective, permitted, inheritable, ambient, bounding) to what it
// keeps, and re-executes itself with the sockets inherited. Capabilities belong to threads, and Node has a dozen
// before the first line of JavaScript runs (one of them blocks every signal, so no signal could make it drop its
// own): only a new image starts every thread, including the queues' receive threads, from the lowered sets. The pid
// stays the same, so systemd (Type=notify, the watchdog) and the lab see one process.
//
// Kept: CAP_NET_ADMIN (the queue, SO_RCVBUFFORCE, and the iptables children that install and remove the hooks: the
// bounding set passes it to children run as root, the ambient set to children of a non-root service user). Until
// the daemon serves it also keeps CAP_CHOWN when control_group is set (the control socket is given to that group) and
// CAP_NET_BIND_SERVICE for a metrics port below 1024 (and then CAP_SETPCAP, to lower the bounding set later), and
// drops them from the main thread once both are bound.
import fs from 'node:fs';
import type { CapabilitySets } from '../native';
import type { Config } from '../config/config';

/** What the daemon holds while it serves. */
export const SERVING_CAPABILITIES: readonly string[] = ['net_admin'];

/** Carries the inherited raw sockets across the re-exec ("<ipv4 fd>,<ipv6 fd>", -1: none); also says it happened. */
export const RAW_SOCKETS_ENV = 'NFQWALL_RAW_SOCKETS';

type Addon = (typeof import('../native'))['addon'];
function loadAddon(): Addon {
  return (require('../native') as typeof import('../native')).addon;
}

/** The capabilities starting with `cfg` needs beyond those held while serving. */
export function startOnlyCapabilities(cfg: Pick<Config, 'controlGroup' | 'metrics'>): string[] {
  const extra: string[] = [];
  if (cfg.controlGroup !== undefined) extra.push('chown');
  if (cfg.metrics !== undefined && cfg.metrics.port > 0 && cfg.metrics.port < 1024) extra.push('net_bind_service');
  return extra;
}

export interface RawSocketState {
  ipv4: boolean;
  ipv6: boolean;
  /** Why a socket is missing (no CAP_NET_RAW at start, IPv6 disabled): REJECT replies of that family then fail. */
  errors: string[];
}

/** One thread's five sets as /proc/<pid>/task/<tid>/status shows them (hexadecimal). */
export interface ThreadCaps {
  tid: number;
  inh: string;
  prm: string;
  eff: string;
  bnd: string;
  amb: string;
}

/** Every thread's capability sets, from /proc (unreadable or vanished threads are left out). */
export function threadCapabilities(pid: number | 'self' = 'self'): ThreadCaps[] {
  const out: ThreadCaps[] = [];
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tids) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
    } catch {
      continue; // The thread ended meanwhile.
    }
    const field = (k: string): string => new RegExp(`^${k}:\\s*([0-9a-f]+)$`, 'm').exec(text)?.[1] ?? '?';
    out.push({ tid: Number(t), inh: field('CapInh'), prm: field('CapPrm'), eff: field('CapEff'), bnd: field('CapBnd'), amb: field('CapAmb') });
  }
  return out;
}

export interface PrivilegeStatus {
  /** The main thread's sets. */
  held: CapabilitySets;
  /** Threads of the process, and how many hold sets other than the main thread's (0 after the re-exec). */
  threads: number;
  threadsDiffering: number;
  rawSockets: RawSocketState;
  /** Whether this process is the re-executed image (false: it never held more than it keeps, or drop is off). */
  reexecuted: boolean;
}

export interface PrivilegeOptions {
  addon?: Addon;
  env?: NodeJS.ProcessEnv;
  /** The command line to re-execute (default: this Node, its flags, its script and arguments). */
  argv?: string[];
}

/** What was acquired and dropped; the daemon reports it (status) and finishes the drop once it serves. */
export class Privilege {
  private constructor(
    private readonly addon: Addon,
    readonly rawSockets: RawSocketState,
    readonly reexecuted: boolean,
    /** Dropped by afterStart (CAP_CHOWN, CAP_NET_BIND_SERVICE); empty when start needs nothing beyond CAP_NET_ADMIN. */
    private readonly startOnly: readonly string[],
  ) {}

  /**
   * At `nfqwall run`'s start, before anything else: opens the raw sockets, drops every capability but CAP_NET_ADMIN
   * (and `startOnly`) and re-executes; in the re-executed image, takes the sockets over. Returns only when there is
   * nothing more to do. Throws when a step fails: better not to start than to serve with more privilege than meant.
   */
  static acquire(startOnly: readonly string[], opts: PrivilegeOptions = {}): Privilege {
    const addon = opts.addon ?? loadAddon();
    const env = opts.env ?? process.env;
    // CAP_SETPCAP with the start-only ones, so that afterStart can take them out of the bounding set too.
    const keep = [...SERVING_CAPABILITIES, ...startOnly, ...(startOnly.length > 0 ? ['setpcap'] : [])];
    const inherited = env[RAW_SOCKETS_ENV];
    if (inherited !== undefined) {
      // The re-executed image. The variable goes first so no child (ip, iptables) sees it.
      delete env[RAW_SOCKETS_ENV];
      const m = /^(-1|\d+),(-1|\d+)(?:;(.*))?$/s.exec(inherited);
      if (!m) throw new Error(`${RAW_SOCKETS_ENV}="${inherited}": not two descriptors`);
      const [v4, v6] = [Number(m[1]), Number(m[2])];
      // A variable set by anyone but nfqwall itself must not buy a start without the drop.
      if (canLower(addon.capabilities(), keep)) {
        throw new Error(`${RAW_SOCKETS_ENV} is set, but this process was not re-executed by nfqwall (it holds more than it keeps): unset it`);
      }
      addon.adoptRawSockets(v4, v6);
      const errors = m[3] ? m[3].split('\n').filter((e) => e !== '') : [];
      return new Privilege(addon, { ipv4: v4 >= 0, ipv6: v6 >= 0, errors }, true, startOnly);
    }
    const opened = addon.openRawSockets();
    const raw: RawSocketState = { ipv4: opened.ipv4 >= 0, ipv6: opened.ipv6 >= 0, errors: opened.errors };
    if (!canLower(addon.capabilities(), keep)) return new Privilege(addon, raw, false, startOnly);
    addon.dropCapabilities(keep);
    const fds = [opened.ipv4, opened.ipv6].filter((fd) => fd >= 0);
    const childEnv = Object.entries(env)
      .filter(([k, v]) => v !== undefined && k !== RAW_SOCKETS_ENV)
      .map(([k, v]) => `${k}=${v}`);
    childEnv.push(`${RAW_SOCKETS_ENV}=${opened.ipv4},${opened.ipv6};${opened.errors.join('\n')}`);
    const argv = opts.argv ?? [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
    return addon.reexec(argv[0]!, argv, childEnv, fds);
  }

  /**
   * Once the control socket and the metrics port are bound: the start-only capabilities go from the main thread
   * (other threads keep them: documented in docs/robustness.md; without control_group and a port below 1024 there
   * are none). Throws naming the failing step.
   */
  afterStart(): void {
    if (this.startOnly.length === 0) return;
    this.addon.dropCapabilities([...SERVING_CAPABILITIES]);
  }

  status(): PrivilegeStatus {
    const threads = threadCapabilities();
    const main = threads.find((t) => t.tid === process.pid);
    const same = (t: ThreadCaps): boolean =>
      main !== undefined && t.inh === main.inh && t.prm === main.prm && t.eff === main.eff && t.bnd === main.bnd && t.amb === main.amb;
    return {
      held: this.addon.capabilities(),
      threads: threads.length,
      threadsDiffering: threads.filter((t) => !same(t)).length,
      rawSockets: { ...this.rawSockets, errors: [...this.rawSockets.errors] },
      reexecuted: this.reexecuted,
    };
  }

  /** Log lines for the start: what is held, and what REJECT cannot do. */
  describe(): { info: string; warnings: string[] } {
    const held = this.addon.capabilities();
    const warnings: string[] = [];
    if (!held.effective.includes('net_admin')) warnings.push('no CAP_NET_ADMIN: binding the queue and installing the hooks will fail');
    if (!this.rawSockets.ipv4 || !this.rawSockets.ipv6) {
      warnings.push(
        `REJECT replies cannot be sent (${this.rawSockets.errors.join('; ')}): start nfqwall with CAP_NET_RAW (it drops it once ` +
          'the sockets are open); REJECT still drops, and nfqwall status counts the replies lost (replyErrors)',
      );
    }
    const names = (s: string[]): string => (s.length > 0 ? s.map((c) => `CAP_${c.toUpperCase()}`).join(' ') : 'none');
    return { info: `capabilities: effective ${names(held.effective)}, bounding ${names(held.bounding)}`, warnings };
  }
}

/**
 * Whether a set holds a capability outside `keep` that this process can give up: any in the effective, permitted,
 * inheritable or ambient set, or in the bounding set while CAP_SETPCAP is effective (without it, as for an
 * unprivileged user, the bounding set stays, and a process that is not root cannot regain what it lists anyway).
 */
export function canLower(sets: CapabilitySets, keep: readonly string[]): boolean {
  const extra = (set: string[]): boolean => set.some((c) => !keep.includes(c));
  if ([sets.effective, sets.permitted, sets.inheritable, sets.ambient].some(extra)) return true;
  return extra(sets.bounding) && sets.effective.includes('setpcap');
}
