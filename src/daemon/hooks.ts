// Kernel hook management: the only rules nfqwall puts in the kernel. It owns chains named NFQWALL-* and the jump rules
// into them at the head of the built-in chains it uses (one per chain, two in POSTROUTING with the skip bits), nothing
// else, in the network namespace it runs in.
// Every change is an `iptables-restore --noflush` script, so each family's install or removal is one transaction.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { Family, Hook, TableName } from '../rules/model';
import { BUILTIN_CHAINS, HOOKS } from '../rules/model';
import { isOneBit, isSkipMark, skipBits } from './skip-guard';

export const CHAIN_PREFIX = 'NFQWALL-';

/** What to install for one family. */
export interface HookPlan {
  family: Family;
  /** Hooks whose traffic goes to the queue (mangle chains). */
  hooks: readonly Hook[];
  queue: number;
  /**
   * Consecutive queues from `queue` (default 1). More than one: `--queue-balance queue:last`, the kernel spreading
   * packets by a hash of their addresses (symmetric: both directions of an address pair meet in one queue).
   */
  queues?: number;
  /** With several queues: `--queue-cpu-fanout`, the queue chosen by the CPU handling the packet instead of the hash. */
  cpuFanout?: boolean;
  /** Adds --queue-bypass: the kernel accepts when nobody is bound to the queue. */
  failOpen: boolean;
  /** Exempts all traffic from kernel connection tracking (raw CT --notrack); see docs/conntrack.md. */
  notrack: boolean;
  /**
   * The daemon's pid, written as a comment in our OWNER chain so a later start can tell a crashed run's leftovers
   * (owner gone) from a live daemon's hooks (refused, not removed).
   */
  ownerPid?: number;
  /**
   * The flow cache's two skip bits (docs/flow-cache.md, Trips); needs PREROUTING queued. FORWARD passes a packet
   * carrying the lower bit without a trip; POSTROUTING passes one carrying the higher bit, clearing both, and clears
   * the lower bit before its own trip; PREROUTING and OUTPUT clear both on packets entering the host with them, so
   * only nfqwall's own verdicts set them, and INPUT clears them before its own rules, so a packet a changed route
   * delivers locally still meets them.
   */
  skipMark?: number;
  /**
   * INPUT, FORWARD and POSTROUTING go to `queues` queues from this number instead, when PREROUTING is queued
   * (docs/flow-cache.md, Late queue).
   */
  lateQueue?: number;
}

/** The queued hooks a packet reaches after PREROUTING, which go to the late queues: none without them. */
export function lateHooks(plan: Pick<HookPlan, 'hooks' | 'lateQueue'>): Hook[] {
  if (plan.lateQueue === undefined || !plan.hooks.includes('PREROUTING')) return [];
  return plan.hooks.filter((h) => h === 'INPUT' || h === 'FORWARD' || h === 'POSTROUTING');
}

/**
 * A late queue's length floor. The receive threads read the queues packets enter only while the late queues have room
 * for what a read can send on (native/late_budget.h), so a late queue never drops a packet already judged at
 * PREROUTING: without that budget, 170 and 768 of two floods were dropped at 1,000, and 686 at 3,000, when a lot of
 * parked packets was released at once (up to parkLimit, 4,096) beside JavaScript's verdicts. The floor leaves room for
 * such a release and two batches (256 each, native/queue.h maxBatch) before the entering queue must wait, whatever
 * `queue_maxlen` says, which binds only the queues packets enter.
 */
export const LATE_QUEUE_MIN_MAXLEN = 4096 + 2 * 256;

/** The kernel queue length of a late queue for a `queue_maxlen` (unset: the addon's default, 4096, below the floor). */
export function lateQueueMaxlen(queueMaxlen: number | undefined): number {
  return Math.max(queueMaxlen ?? 0, LATE_QUEUE_MIN_MAXLEN);
}

/** `queue 10`, or `queues 10-13`. */
export function queueRangeText(first: number, count: number): string {
  return count > 1 ? `queues ${first}-${first + count - 1}` : `queue ${first}`;
}

/** The queues a daemon serves and its late ones: `queue 0, late queue 1`, `queues 10-11, late queues 12-13`. */
export function queueLayoutText(o: { queue: number; queues?: number; lateQueue?: number }): string {
  const n = o.queues ?? 1;
  return queueRangeText(o.queue, n) + (o.lateQueue !== undefined ? `, late ${queueRangeText(o.lateQueue, n)}` : '');
}

/** A rule `-A from [match] -j to` in a built-in chain that jumps to one of our chains. */
export interface OwnedJump {
  from: string;
  to: string;
  /** The skip bit test the jump carries (`-m mark ! --mark 0x10000000/0x10000000`), as iptables-save prints it. */
  match?: string;
}

/** The jump's rule after `-A CHAIN`, `-I CHAIN N` or `-D CHAIN`. */
export function jumpSpec(j: OwnedJump): string {
  return `${j.match === undefined ? '' : `${j.match} `}-j ${j.to}`;
}

/** Our chains and jumps per table, as installed or as found in the kernel. */
export type OwnedState = Map<TableName, { chains: string[]; jumps: OwnedJump[] }>;

export function chainName(hook: Hook): string {
  return CHAIN_PREFIX + hook;
}

export function isOwnedChain(name: string): boolean {
  return name.startsWith(CHAIN_PREFIX);
}

/** The raw hooks that see every packet first: incoming and forwarded (PREROUTING) and locally sent (OUTPUT). */
const NOTRACK_HOOKS: readonly Hook[] = ['PREROUTING', 'OUTPUT'];

/**
 * A raw chain nothing jumps to, holding one conntrack match: loading it registers the kernel's connection tracking
 * for this namespace and family (nf_ct_netns_get), and with it defragmentation (nf_defrag_ipv4/ipv6, priority -400),
 * as any host tracking connections has. The queue then sees whole datagrams, as the kernel's own rules would, instead
 * of fragments nfqwall cannot reassemble; the kernel's tracker itself sees only untracked packets (CT --notrack).
 */
export const DEFRAG_CHAIN = `${CHAIN_PREFIX}DEFRAG`;

/**
 * A chain nothing jumps to, in each table we hook, whose one rule names the owner (HookPlan.ownerPid) in a comment.
 * The rules packets traverse carry none: iptables-nft keeps `-m comment` as an xt match that the kernel evaluates for
 * every packet, three times per packet on each side of the queue with the comment on every rule.
 */
export const OWNER_CHAIN = `${CHAIN_PREFIX}OWNER`;

/** Where POSTROUTING sends a packet carrying its skip bit: the bits are cleared, and the packet passes. */
export const SKIPPED_CHAIN = `${CHAIN_PREFIX}SKIPPED`;

/** The skip bits, when the plan can use them. */
function skipBit(plan: HookPlan): number {
  return plan.skipMark !== undefined && plan.skipMark !== 0 && plan.hooks.includes('PREROUTING') ? plan.skipMark : 0;
}

/** The mangle hooks with a chain of ours: those queued, and with the skip bits those that clear them. */
function mangleHooks(plan: HookPlan): Hook[] {
  const skip = skipBit(plan) !== 0;
  return HOOKS.filter((h) => plan.hooks.includes(h) || (skip && h !== 'FORWARD'));
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** The mark test on skip bit `b`, as iptables-save prints it: set, or with `not` clear. */
function markTest(b: number, not = false): string {
  return `-m mark ${not ? '! ' : ''}--mark ${hex(b)}/${hex(b)}`;
}

/**
 * The jumps from the built-in mangle chains. With the skip bits a settled packet meets the bit's test in the jump
 * itself and never enters our chains: at FORWARD one rule, at POSTROUTING two, the second clearing the bits (nft
 * evaluates every jump, return and rule, and these are met by every packet the cache settles).
 */
function mangleJumps(plan: HookPlan, hooks: readonly Hook[]): OwnedJump[] {
  const { forward, post } = skipBits(skipBit(plan));
  const jumps: OwnedJump[] = [];
  for (const h of hooks) {
    const own = h === 'FORWARD' ? forward : h === 'POSTROUTING' ? post : 0;
    jumps.push(own === 0 ? { from: h, to: chainName(h) } : { from: h, to: chainName(h), match: markTest(own, true) });
    if (own !== 0 && h === 'POSTROUTING') jumps.push({ from: h, to: SKIPPED_CHAIN, match: markTest(post) });
  }
  return jumps;
}

/** The chains and jumps `installScript(plan)` creates, in the order it creates them. */
export function ownedFromPlan(plan: HookPlan): OwnedState {
  const state: OwnedState = new Map();
  const owner = plan.ownerPid === undefined ? [] : [OWNER_CHAIN];
  if (plan.notrack) {
    state.set('raw', {
      chains: [...NOTRACK_HOOKS.map(chainName), DEFRAG_CHAIN, ...owner],
      jumps: NOTRACK_HOOKS.map((h) => ({ from: h, to: chainName(h) })),
    });
  }
  const hooks = mangleHooks(plan);
  if (hooks.length > 0) {
    state.set('mangle', {
      chains: [...hooks.map(chainName), ...(skipBit(plan) !== 0 ? [SKIPPED_CHAIN] : []), ...owner],
      jumps: mangleJumps(plan, hooks),
    });
  }
  return state;
}

/** The iptables-restore --noflush script that installs a plan. `:CHAIN - [0:0]` creates or flushes our chain. */
export function installScript(plan: HookPlan): string {
  if (!Number.isInteger(plan.queue) || plan.queue < 0 || plan.queue > 65535) {
    throw new Error(`queue number ${plan.queue} is outside 0..65535`);
  }
  const count = plan.queues ?? 1;
  if (!Number.isInteger(count) || count < 1 || plan.queue + count - 1 > 65535) {
    throw new Error(`${count} queues from ${plan.queue} go outside 0..65535`);
  }
  if (plan.ownerPid !== undefined && !(Number.isInteger(plan.ownerPid) && plan.ownerPid > 0)) {
    throw new Error(`owner pid ${plan.ownerPid} is not a process id`);
  }
  if (plan.skipMark !== undefined && plan.skipMark !== 0 && !isSkipMark(plan.skipMark)) {
    throw new Error(`skip mark ${plan.skipMark} is not two mark bits`);
  }
  const owned = ownedFromPlan(plan);
  const bit = skipBit(plan);
  const { forward } = skipBits(bit);
  const clear = (b: number): string => `-j MARK --set-xmark 0x0/${hex(b)}`;
  const lines: string[] = [];
  for (const [table, { chains, jumps }] of owned) {
    lines.push(`*${table}`);
    for (const c of chains) lines.push(`:${c} - [0:0]`);
    for (const c of chains) {
      if (c === OWNER_CHAIN) lines.push(`-A ${c} -m comment --comment "${OWNER_COMMENT}${plan.ownerPid}"`);
      else if (c === DEFRAG_CHAIN) lines.push(`-A ${c} -m conntrack --ctstate INVALID -j RETURN`);
      else if (table === 'raw') lines.push(`-A ${c} -j CT --notrack`);
      else if (c === SKIPPED_CHAIN) lines.push(`-A ${c} ${clear(bit)}`);
      else {
        const hook = c.slice(CHAIN_PREFIX.length) as Hook;
        // FORWARD and POSTROUTING: a packet carrying its hook's bit does not jump here (mangleJumps).
        if (bit !== 0 && hook === 'POSTROUTING') lines.push(`-A ${c} ${markTest(forward)} ${clear(forward)}`);
        else if (bit !== 0 && hook !== 'FORWARD') lines.push(`-A ${c} -m mark ! --mark 0x0/${hex(bit)} ${clear(bit)}`);
        if (plan.hooks.includes(hook)) {
          const late = lateHooks(plan).includes(hook);
          lines.push(`-A ${c} -j NFQUEUE ${queueTarget(late ? { ...plan, queue: plan.lateQueue! } : plan)}`);
        }
      }
    }
    // Each built-in chain's jumps at its head, in order.
    const at = new Map<string, number>();
    for (const j of jumps) {
      const n = (at.get(j.from) ?? 0) + 1;
      at.set(j.from, n);
      lines.push(`-I ${j.from} ${n} ${jumpSpec(j)}`);
    }
    lines.push('COMMIT');
  }
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

/** The NFQUEUE target's options for a plan, as iptables-save prints them. */
export function queueTarget(plan: Pick<HookPlan, 'queue' | 'queues' | 'cpuFanout' | 'failOpen'>): string {
  const count = plan.queues ?? 1;
  const which = count > 1 ? `--queue-balance ${plan.queue}:${plan.queue + count - 1}` : `--queue-num ${plan.queue}`;
  return `${which}${plan.failOpen ? ' --queue-bypass' : ''}${count > 1 && plan.cpuFanout === true ? ' --queue-cpu-fanout' : ''}`;
}

/**
 * The script that removes exactly `state`: each jump deleted by its exact spec (once per copy), then our chains
 * flushed and deleted. Empty when there is nothing to remove.
 */
export function removeScript(state: OwnedState): string {
  const lines: string[] = [];
  for (const [table, { chains, jumps }] of state) {
    if (chains.length === 0 && jumps.length === 0) continue;
    lines.push(`*${table}`);
    for (const j of jumps) lines.push(`-D ${j.from} ${jumpSpec(j)}`);
    for (const c of chains) lines.push(`-F ${c}`);
    for (const c of chains) lines.push(`-X ${c}`);
    lines.push('COMMIT');
  }
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

/**
 * Our chains and jumps in `iptables-save` output. A jump counts as ours only when it is exactly `-A BUILTIN -j
 * NFQWALL-X`, or carries one skip bit's test as installScript writes it (no other match, no counters): a user's rule
 * that happens to jump to our chain with conditions is not ours.
 */
export function parseOwned(saveText: string): OwnedState {
  const state: OwnedState = new Map();
  let table: TableName | undefined;
  for (const raw of saveText.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      const name = line.slice(1);
      table = name in BUILTIN_CHAINS ? (name as TableName) : undefined;
      continue;
    }
    if (table === undefined) continue;
    const entry = (): { chains: string[]; jumps: OwnedJump[] } => {
      let e = state.get(table as TableName);
      if (!e) state.set(table as TableName, (e = { chains: [], jumps: [] }));
      return e;
    };
    if (line.startsWith(':')) {
      const name = line.slice(1).split(/\s+/)[0] ?? '';
      if (isOwnedChain(name)) entry().chains.push(name);
      continue;
    }
    const m = /^-A (\S+)(?: (-m mark (?:! )?--mark (0x[0-9a-f]+)\/(0x[0-9a-f]+)))? -j (\S+)$/.exec(line);
    if (!m || !isOwnedChain(m[5]!) || !(BUILTIN_CHAINS[table] as readonly string[]).includes(m[1]!)) continue;
    if (m[2] !== undefined && !(m[3] === m[4] && isOneBit(Number(m[3])))) continue;
    const j: OwnedJump = { from: m[1]!, to: m[5]! };
    if (m[2] !== undefined) j.match = m[2];
    entry().jumps.push(j);
  }
  return state;
}

const OWNER_COMMENT = 'nfqwall pid ';

/** The owner pids written on rules in our chains (see HookPlan.ownerPid), each once. */
export function parseOwners(saveText: string): number[] {
  const pids = new Set<number>();
  const re = /^-A NFQWALL-\S+ .*-m comment --comment "?nfqwall pid (\d+)"?/gm;
  for (let m = re.exec(saveText); m !== null; m = re.exec(saveText)) pids.add(Number(m[1]));
  return [...pids];
}

/** Whether a pid is a live process in this process's network namespace (a zombie or another namespace is not). */
export function liveInThisNetns(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/net`) === fs.readlinkSync('/proc/self/ns/net');
  } catch (err) {
    // H8: holding CAP_NET_ADMIN alone, the daemon may not look into a process that holds capabilities it lacks
    // (ptrace access mode): that process is alive, and its namespace unknown. Taken as the owner, as the safe guess.
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EACCES' || code === 'EPERM';
  }
}

export function isEmpty(state: OwnedState): boolean {
  for (const { chains, jumps } of state.values()) if (chains.length > 0 || jumps.length > 0) return false;
  return true;
}

// ---- running the iptables tools ----

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Set when the program could not be started (ENOENT: not installed). */
  spawnError?: string;
}

export type Runner = (cmd: string, args: string[], input?: string) => RunResult;

/** Runs a command synchronously, optionally prefixed (e.g. `ip netns exec NAME` in tests). */
export function commandRunner(prefix: readonly string[] = []): Runner {
  return (cmd, args, input) => {
    const argv = [...prefix, cmd, ...args];
    const r = spawnSync(argv[0]!, argv.slice(1), { input: input ?? '', encoding: 'utf8', timeout: 30_000 });
    const res: RunResult = { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
    if (r.error) res.spawnError = r.error.message;
    return res;
  };
}

export interface Backend {
  name: 'nft' | 'legacy';
  save: string;
  restore: string;
}

/** The nft backend first, as DESIGN.md asks; legacy when the nft one fails. */
export function backends(family: Family): Backend[] {
  const p = family === 4 ? 'iptables' : 'ip6tables';
  return [
    { name: 'nft', save: `${p}-nft-save`, restore: `${p}-nft-restore` },
    { name: 'legacy', save: `${p}-legacy-save`, restore: `${p}-legacy-restore` },
  ];
}

function describe(r: RunResult): string {
  if (r.spawnError) return r.spawnError;
  return (r.stderr.trim() || r.stdout.trim() || `exit status ${r.status}`).replace(/\s*\n\s*/g, '; ');
}

export interface HookManagerOptions {
  run?: Runner;
  log?: (msg: string) => void;
  /** Whether the owner pid found on existing hooks is a running daemon. Default: liveInThisNetns. */
  isLive?: (pid: number) => boolean;
}

interface Installed {
  family: Family;
  backend: Backend;
  owned: OwnedState;
}

export class HookManager {
  private readonly run: Runner;
  private readonly log: (msg: string) => void;
  private installed: Installed[] = [];

  constructor(opts: HookManagerOptions = {}) {
    this.run = opts.run ?? commandRunner();
    this.log = opts.log ?? (() => undefined);
    this.isLive = opts.isLive ?? liveInThisNetns;
  }

  private readonly isLive: (pid: number) => boolean;

  /** What this manager installed and has not removed yet. */
  get active(): readonly Readonly<Installed>[] {
    return this.installed;
  }

  private restore(b: Backend, script: string): RunResult {
    return this.run(b.restore, ['--noflush', '--wait=5'], script);
  }

  private saveText(b: Backend): string | undefined {
    const r = this.run(b.save, []);
    return r.spawnError || r.status !== 0 ? undefined : r.stdout;
  }

  /** Our chains and jumps currently in the kernel under one backend, or undefined when that tool is unusable. */
  findOwned(b: Backend): OwnedState | undefined {
    const text = this.saveText(b);
    return text === undefined ? undefined : parseOwned(text);
  }

  /**
   * Removes what a crashed run left behind, under every backend. Returns a description of each removal. Hooks whose
   * owner is a live daemon in this namespace are not stale: that is an error (two daemons would fight over them),
   * unless `force`.
   */
  removeStale(family: Family, force = false): string[] {
    const done: string[] = [];
    for (const b of backends(family)) {
      const text = this.saveText(b);
      if (text === undefined) continue;
      const owned = parseOwned(text);
      if (isEmpty(owned)) continue;
      const live = force ? [] : parseOwners(text).filter((pid) => this.isLive(pid));
      if (live.length > 0) {
        throw new Error(
          `another nfqwall (pid ${live.join(', ')}) owns the ipv${family} hooks in this network namespace; stop it first`,
        );
      }
      const script = removeScript(owned);
      const r = this.restore(b, script);
      if (r.status !== 0) {
        throw new Error(`cannot remove stale NFQWALL chains (${b.restore}): ${describe(r)}`);
      }
      for (const [table, { chains, jumps }] of owned) {
        for (const j of jumps) done.push(`${b.name} ipv${family} ${table}: -A ${j.from} ${jumpSpec(j)}`);
        for (const c of chains) done.push(`${b.name} ipv${family} ${table}: chain ${c}`);
      }
    }
    for (const d of done) this.log(`removed stale ${d}`);
    return done;
  }

  /** Removes stale state, then installs the plan in one transaction (nft backend, else legacy). */
  install(plan: HookPlan): void {
    this.removeStale(plan.family);
    const script = installScript(plan);
    if (script === '') return;
    const failures: string[] = [];
    for (const b of backends(plan.family)) {
      const r = this.restore(b, script);
      if (r.status === 0) {
        this.installed.push({ family: plan.family, backend: b, owned: ownedFromPlan(plan) });
        const count = plan.queues ?? 1;
        const late = lateHooks(plan);
        const early = plan.hooks.filter((h) => !late.includes(h));
        const to = [`${early.join(' ')} -> ${queueRangeText(plan.queue, count)}`];
        if (late.length > 0) to.push(`${late.join(' ')} -> ${queueRangeText(plan.lateQueue!, count)}`);
        this.log(`installed ipv${plan.family} hooks (${b.name}): ${to.join('; ')}`);
        return;
      }
      failures.push(`${b.restore}: ${describe(r)}`);
    }
    throw new Error(`cannot install ipv${plan.family} hooks: ${failures.join(' / ')}`);
  }

  /**
   * Removes everything installed: jumps by exact spec, then our chains. If that transaction fails (someone changed
   * our rules meanwhile), removes whatever of ours is still there. Never throws; returns the errors it met.
   */
  remove(): string[] {
    const errors: string[] = [];
    for (const inst of this.installed.splice(0).reverse()) {
      const r = this.restore(inst.backend, removeScript(inst.owned));
      if (r.status === 0) {
        this.log(`removed ipv${inst.family} hooks (${inst.backend.name})`);
        continue;
      }
      const left = this.findOwned(inst.backend);
      if (left && isEmpty(left)) continue;
      const r2 = left ? this.restore(inst.backend, removeScript(left)) : r;
      if (r2.status !== 0) errors.push(`cannot remove ipv${inst.family} hooks (${inst.backend.restore}): ${describe(r2)}`);
    }
    return errors;
  }
}
