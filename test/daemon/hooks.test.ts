import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  HookManager,
  commandRunner,
  installScript,
  lateHooks,
  lateQueueMaxlen,
  LATE_QUEUE_MIN_MAXLEN,
  ownedFromPlan,
  parseOwned,
  parseOwners,
  removeScript,
  type HookPlan,
  type OwnedState,
  type RunResult,
  type Runner,
} from '../../src/daemon/hooks';
import { HOOKS } from '../../src/rules/model';
import { skipUnlessRoot } from '../lab/lab';

const plan4: HookPlan = { family: 4, hooks: HOOKS, queue: 7, failOpen: false, notrack: true };

function plain(state: OwnedState): Record<string, { chains: string[]; jumps: string[] }> {
  const out: Record<string, { chains: string[]; jumps: string[] }> = {};
  for (const [t, o] of state) {
    out[t] = { chains: [...o.chains].sort(), jumps: o.jumps.map((j) => `${j.from}>${j.to}${j.match === undefined ? '' : ` [${j.match}]`}`).sort() };
  }
  return out;
}

describe('daemon/hooks scripts', () => {
  it('installs raw notrack chains and mangle queue chains, each jumped to at position 1', () => {
    assert.equal(
      installScript(plan4),
      [
        '*raw',
        ':NFQWALL-PREROUTING - [0:0]',
        ':NFQWALL-OUTPUT - [0:0]',
        ':NFQWALL-DEFRAG - [0:0]',
        '-A NFQWALL-PREROUTING -j CT --notrack',
        '-A NFQWALL-OUTPUT -j CT --notrack',
        '-A NFQWALL-DEFRAG -m conntrack --ctstate INVALID -j RETURN',
        '-I PREROUTING 1 -j NFQWALL-PREROUTING',
        '-I OUTPUT 1 -j NFQWALL-OUTPUT',
        'COMMIT',
        '*mangle',
        ':NFQWALL-PREROUTING - [0:0]',
        ':NFQWALL-INPUT - [0:0]',
        ':NFQWALL-FORWARD - [0:0]',
        ':NFQWALL-OUTPUT - [0:0]',
        ':NFQWALL-POSTROUTING - [0:0]',
        '-A NFQWALL-PREROUTING -j NFQUEUE --queue-num 7',
        '-A NFQWALL-INPUT -j NFQUEUE --queue-num 7',
        '-A NFQWALL-FORWARD -j NFQUEUE --queue-num 7',
        '-A NFQWALL-OUTPUT -j NFQUEUE --queue-num 7',
        '-A NFQWALL-POSTROUTING -j NFQUEUE --queue-num 7',
        '-I PREROUTING 1 -j NFQWALL-PREROUTING',
        '-I INPUT 1 -j NFQWALL-INPUT',
        '-I FORWARD 1 -j NFQWALL-FORWARD',
        '-I OUTPUT 1 -j NFQWALL-OUTPUT',
        '-I POSTROUTING 1 -j NFQWALL-POSTROUTING',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('adds --queue-bypass when fail-open, queues only the hooks asked for, in kernel order', () => {
    const s = installScript({ family: 6, hooks: ['OUTPUT', 'INPUT'], queue: 65535, failOpen: true, notrack: false });
    assert.equal(
      s,
      [
        '*mangle',
        ':NFQWALL-INPUT - [0:0]',
        ':NFQWALL-OUTPUT - [0:0]',
        '-A NFQWALL-INPUT -j NFQUEUE --queue-num 65535 --queue-bypass',
        '-A NFQWALL-OUTPUT -j NFQUEUE --queue-num 65535 --queue-bypass',
        '-I INPUT 1 -j NFQWALL-INPUT',
        '-I OUTPUT 1 -j NFQWALL-OUTPUT',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('sends INPUT, FORWARD and POSTROUTING to the late queues when PREROUTING is queued, and only then', () => {
    const target = (s: string, hook: string): string | undefined => /-j NFQUEUE (.*)$/.exec(s.split('\n').find((l) => l.startsWith(`-A NFQWALL-${hook} `) && l.includes('NFQUEUE')) ?? '')?.[1];
    const s = installScript({ ...plan4, queue: 20, queues: 2, lateQueue: 30 });
    assert.deepEqual(
      HOOKS.map((h) => `${h}: ${target(s, h)}`),
      ['PREROUTING: --queue-balance 20:21', 'INPUT: --queue-balance 30:31', 'FORWARD: --queue-balance 30:31', 'OUTPUT: --queue-balance 20:21', 'POSTROUTING: --queue-balance 30:31'],
    );
    const one = installScript({ ...plan4, lateQueue: 8, failOpen: true });
    assert.equal(target(one, 'FORWARD'), '--queue-num 8 --queue-bypass');
    assert.equal(target(one, 'OUTPUT'), '--queue-num 7 --queue-bypass');
    // Without PREROUTING, FORWARD and INPUT are where packets enter: one queue for all.
    const noPre = installScript({ ...plan4, hooks: ['INPUT', 'FORWARD', 'POSTROUTING'], lateQueue: 8 });
    assert.deepEqual(['INPUT', 'FORWARD', 'POSTROUTING'].map((h) => target(noPre, h)), ['--queue-num 7', '--queue-num 7', '--queue-num 7']);
    assert.deepEqual(lateHooks({ hooks: ['PREROUTING', 'FORWARD', 'OUTPUT'], lateQueue: 1 }), ['FORWARD']);
  });

  it('gives a late queue room for a lot of parked hits and a batch however short queue_maxlen is', () => {
    assert.equal(LATE_QUEUE_MIN_MAXLEN, 4608);
    assert.equal(lateQueueMaxlen(100), 4608);
    assert.equal(lateQueueMaxlen(4608), 4608);
    assert.equal(lateQueueMaxlen(20_000), 20_000);
    // Unset, the addon's default (4096) is below the floor.
    assert.equal(lateQueueMaxlen(undefined), 4608);
  });

  it('writes the owner pid as a comment in an OWNER chain of each table, on no rule a packet traverses, and reads it back', () => {
    const s = installScript({ ...plan4, hooks: ['INPUT'], ownerPid: 4242 });
    const owners = s.split('\n').filter((l) => l.includes('nfqwall pid'));
    assert.deepEqual(owners, ['-A NFQWALL-OWNER -m comment --comment "nfqwall pid 4242"', '-A NFQWALL-OWNER -m comment --comment "nfqwall pid 4242"']);
    assert.deepEqual(s.match(/^:NFQWALL-OWNER - \[0:0\]$/gm)?.length, 2, 'one in raw, one in mangle');
    assert.doesNotMatch(s, /-j NFQWALL-OWNER|-g NFQWALL-OWNER/, 'nothing jumps to it');
    assert.doesNotMatch(s, /comment.*-j/, 'no rule with a target carries the comment');
    assert.match(s, /^-A NFQWALL-PREROUTING -j CT --notrack$/m);
    assert.match(s, /^-A NFQWALL-INPUT -j NFQUEUE --queue-num 7$/m);
    assert.match(s, /^-I INPUT 1 -j NFQWALL-INPUT$/m);
    const saved = s.replace(/^-I (\S+) 1 /gm, '-A $1 ');
    assert.deepEqual(parseOwners(saved), [4242]);
    // What earlier versions left: the comment on every rule of ours.
    assert.deepEqual(parseOwners('-A NFQWALL-INPUT -m comment --comment "nfqwall pid 31" -j NFQUEUE --queue-num 7\n'), [31]);
    assert.deepEqual(parseOwners('-A INPUT -m comment --comment "nfqwall pid 7" -j ACCEPT\n'), []);
    assert.throws(() => installScript({ ...plan4, ownerPid: 0 }), /not a process id/);
  });

  it('refuses a queue number outside 0..65535', () => {
    assert.throws(() => installScript({ ...plan4, queue: 65536 }), /65536/);
    assert.throws(() => installScript({ ...plan4, queue: -1 }), /-1/);
  });

  it('removes jumps by exact spec, then flushes and deletes the chains', () => {
    assert.equal(
      removeScript(ownedFromPlan({ ...plan4, hooks: ['FORWARD'] })),
      [
        '*raw',
        '-D PREROUTING -j NFQWALL-PREROUTING',
        '-D OUTPUT -j NFQWALL-OUTPUT',
        '-F NFQWALL-PREROUTING',
        '-F NFQWALL-OUTPUT',
        '-F NFQWALL-DEFRAG',
        '-X NFQWALL-PREROUTING',
        '-X NFQWALL-OUTPUT',
        '-X NFQWALL-DEFRAG',
        'COMMIT',
        '*mangle',
        '-D FORWARD -j NFQWALL-FORWARD',
        '-F NFQWALL-FORWARD',
        '-X NFQWALL-FORWARD',
        'COMMIT',
        '',
      ].join('\n'),
    );
    assert.equal(removeScript(new Map()), '');
  });

  it('finds only our chains and our exact jumps in iptables-save output', () => {
    const save = [
      '# Generated by iptables-nft-save v1.8.9 (nf_tables)',
      '*mangle',
      ':PREROUTING ACCEPT [0:0]',
      ':INPUT ACCEPT [0:0]',
      ':NFQWALL-INPUT - [0:0]',
      ':KUBE-MARK - [0:0]',
      '-A PREROUTING -j NFQWALL-PREROUTING',
      '-A PREROUTING -j NFQWALL-PREROUTING',
      '-A INPUT -s 198.18.0.1/32 -j NFQWALL-INPUT',
      '-A INPUT -m mark --mark 0x1/0xff -j NFQWALL-INPUT',
      '-A INPUT -m mark --mark 0x3/0x3 -j NFQWALL-INPUT',
      '-A INPUT -m mark ! --mark 0x10/0x10 -m comment --comment x -j NFQWALL-INPUT',
      '-A INPUT -m mark ! --mark 0x10/0x10 -j NFQWALL-INPUT',
      '-A KUBE-MARK -j NFQWALL-INPUT',
      '-A INPUT -j KUBE-MARK',
      '-A NFQWALL-INPUT -j NFQUEUE --queue-num 0',
      'COMMIT',
      '*filter',
      ':INPUT ACCEPT [0:0]',
      '-A INPUT -j ACCEPT',
      'COMMIT',
    ].join('\n');
    assert.deepEqual(plain(parseOwned(save)), {
      mangle: {
        chains: ['NFQWALL-INPUT'],
        // A skip bit's test, one bit set or clear, is the only condition an owned jump carries.
        jumps: ['INPUT>NFQWALL-INPUT [-m mark ! --mark 0x10/0x10]', 'PREROUTING>NFQWALL-PREROUTING', 'PREROUTING>NFQWALL-PREROUTING'],
      },
    });
  });

  it('parses back what it installs', () => {
    // What iptables-save prints after installScript: chains declared, jumps as -A lines.
    const owned = ownedFromPlan(plan4);
    const lines: string[] = [];
    for (const [t, o] of owned) {
      lines.push(`*${t}`, ...o.chains.map((c) => `:${c} - [0:0]`), ...o.jumps.map((j) => `-A ${j.from} -j ${j.to}`));
      lines.push('COMMIT');
    }
    assert.deepEqual(plain(parseOwned(lines.join('\n'))), plain(owned));
  });
});

/** A fake iptables: records calls, answers from a table of results. */
function fakeRunner(answer: (cmd: string, args: string[], input?: string) => Partial<RunResult>) {
  const calls: { cmd: string; args: string[]; input?: string }[] = [];
  const run: Runner = (cmd, args, input) => {
    calls.push({ cmd, args, input });
    return { status: 0, stdout: '', stderr: '', ...answer(cmd, args, input) };
  };
  return { run, calls };
}

describe('daemon/hooks manager (fake iptables)', () => {
  it('falls back to the legacy backend when the nft one fails, and removes with the backend it used', () => {
    const { run, calls } = fakeRunner((cmd) =>
      cmd === 'iptables-nft-restore' ? { status: 1, stderr: 'nft: no such table' } : {},
    );
    const m = new HookManager({ run });
    m.install(plan4);
    const restores = calls.filter((c) => c.cmd.endsWith('restore'));
    assert.deepEqual(
      restores.map((c) => c.cmd),
      ['iptables-nft-restore', 'iptables-legacy-restore'],
    );
    assert.deepEqual(restores[1]!.args, ['--noflush', '--wait=5']);
    assert.equal(restores[1]!.input, installScript(plan4));
    assert.equal(m.active[0]!.backend.name, 'legacy');
    calls.length = 0;
    assert.deepEqual(m.remove(), []);
    assert.deepEqual(
      calls.map((c) => c.cmd),
      ['iptables-legacy-restore'],
    );
    assert.equal(calls[0]!.input, removeScript(ownedFromPlan(plan4)));
    assert.equal(m.active.length, 0);
  });

  it('reports both failures when no backend can install', () => {
    const { run } = fakeRunner((cmd) => (cmd.endsWith('restore') ? { status: 2, stderr: `${cmd} broke` } : {}));
    assert.throws(
      () => new HookManager({ run }).install(plan4),
      /iptables-nft-restore: iptables-nft-restore broke.*iptables-legacy-restore: iptables-legacy-restore broke/,
    );
  });

  it('refuses to take over hooks whose owner is a live daemon, unless forced', () => {
    const live = '*mangle\n:NFQWALL-INPUT - [0:0]\n-A INPUT -j NFQWALL-INPUT\n' +
      '-A NFQWALL-INPUT -m comment --comment "nfqwall pid 555" -j NFQUEUE --queue-num 1\nCOMMIT\n';
    const { run, calls } = fakeRunner((cmd) => (cmd === 'iptables-nft-save' ? { stdout: live } : {}));
    const m = new HookManager({ run, isLive: (pid) => pid === 555 });
    assert.throws(() => m.install(plan4), /another nfqwall \(pid 555\) owns the ipv4 hooks/);
    assert.equal(calls.filter((c) => c.cmd.endsWith('restore')).length, 0);
    const dead = new HookManager({ run, isLive: () => false });
    assert.equal(dead.removeStale(4).length, 2);
    assert.equal(m.removeStale(4, true).length, 2);
  });

  it('removes stale state found by save before installing', () => {
    const stale = '*mangle\n:NFQWALL-INPUT - [0:0]\n-A INPUT -j NFQWALL-INPUT\nCOMMIT\n';
    const { run, calls } = fakeRunner((cmd) => (cmd === 'ip6tables-nft-save' ? { stdout: stale } : {}));
    new HookManager({ run }).install({ ...plan4, family: 6 });
    const restores = calls.filter((c) => c.cmd.endsWith('restore'));
    assert.equal(restores[0]!.cmd, 'ip6tables-nft-restore');
    assert.equal(restores[0]!.input, '*mangle\n-D INPUT -j NFQWALL-INPUT\n-F NFQWALL-INPUT\n-X NFQWALL-INPUT\nCOMMIT\n');
    assert.equal(restores[1]!.input, installScript({ ...plan4, family: 6 }));
  });
});

// ---- root: real iptables inside a throwaway network namespace ----

const NS = `nfqw-daemon-${process.pid}`;

function sh(argv: string[], input?: string): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { input: input ?? '', encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

function inNs(...argv: string[]): string {
  return sh(['ip', 'netns', 'exec', NS, ...argv]);
}

/** Rule text without our lines. */
function withoutOurs(save: string): string {
  return save
    .split('\n')
    .filter((l) => !l.includes('NFQWALL-'))
    .join('\n');
}

/**
 * iptables-save output without comments and without tables that hold nothing (only built-in chains with policy
 * ACCEPT and no rules): the nft backend creates a table on first use, and an empty one is the same as none.
 */
function normalize(text: string): string {
  const sections = text
    .split('\n')
    .filter((l) => !l.startsWith('#') && l !== '')
    .join('\n')
    .split(/(?<=^COMMIT)\n/m);
  return sections
    .filter((sec) => !sec.split('\n').every((l) => /^(\*\w+|:[A-Z]+ ACCEPT \[0:0\]|COMMIT)$/.test(l)))
    .join('\n');
}

/**
 * Mocha hooks for a describe block working in its own network namespace `ns`: created and seeded before the block,
 * deleted after it, and every hook of ours removed after each test, so each starts clean even if the one before
 * failed half-way. Returns the runner that executes in the namespace.
 */
function useHookNamespace(ns: string, what: string, seed: () => void): { run: () => Runner } {
  let created = false;
  const run = (): Runner => commandRunner(['ip', 'netns', 'exec', ns]);
  before(function () {
    skipUnlessRoot(this, what);
    sh(['ip', 'netns', 'add', ns]);
    created = true;
    seed();
  });
  after(function () {
    if (created) spawnSync('ip', ['netns', 'del', ns]);
  });
  afterEach(function () {
    if (!created) return;
    const m = new HookManager({ run: run() });
    m.removeStale(4, true);
    m.removeStale(6, true);
  });
  return { run };
}

function saved(family: 4 | 6): string {
  return normalize(inNs(family === 4 ? 'iptables-nft-save' : 'ip6tables-nft-save'));
}

describe('daemon/hooks in a network namespace (root)', function () {
  const { run } = useHookNamespace(NS, 'daemon/hooks in a network namespace', () => {
    // A pre-existing unrelated rule in each table we touch, and a user chain, which must survive everything.
    inNs('iptables-nft', '-t', 'mangle', '-A', 'PREROUTING', '-s', '198.18.0.1/32', '-j', 'ACCEPT');
    inNs('iptables-nft', '-t', 'raw', '-A', 'OUTPUT', '-d', '198.18.0.2/32', '-j', 'ACCEPT');
    inNs('iptables-nft', '-t', 'mangle', '-N', 'USER-CHAIN');
    inNs('iptables-nft', '-t', 'mangle', '-A', 'USER-CHAIN', '-j', 'MARK', '--set-mark', '3');
    inNs('ip6tables-nft', '-t', 'mangle', '-A', 'INPUT', '-s', '2001:db8::1/128', '-j', 'ACCEPT');
  });

  it('installs exactly the expected chains and jumps, first in each built-in chain, and removes them all', () => {
    const before4 = saved(4);
    const before6 = saved(6);
    const m = new HookManager({ run: run() });
    m.install({ ...plan4, failOpen: true });
    m.install({ ...plan4, family: 6 });
    const after4 = saved(4);
    const after6 = saved(6);
    assert.deepEqual(plain(parseOwned(after4)), plain(ownedFromPlan(plan4)));
    assert.deepEqual(plain(parseOwned(after6)), plain(ownedFromPlan(plan4)));
    // Our chains hold exactly the intended rule.
    assert.match(after4, /^-A NFQWALL-FORWARD -j NFQUEUE --queue-num 7 --queue-bypass$/m);
    assert.match(after6, /^-A NFQWALL-FORWARD -j NFQUEUE --queue-num 7$/m);
    assert.match(after4, /^-A NFQWALL-PREROUTING -j CT --notrack$/m);
    // The jump comes before the pre-existing rule.
    const mangle = after4.slice(after4.indexOf('*mangle'));
    assert.ok(
      mangle.indexOf('-A PREROUTING -j NFQWALL-PREROUTING') < mangle.indexOf('-A PREROUTING -s 198.18.0.1/32 -j ACCEPT'),
    );
    // Nothing else changed.
    assert.equal(normalize(withoutOurs(after4)), before4);
    assert.equal(normalize(withoutOurs(after6)), before6);
    assert.match(after4, /-A USER-CHAIN -j MARK --set-xmark 0x3\/0xffffffff/);

    assert.deepEqual(m.remove(), []);
    assert.equal(saved(4), before4);
    assert.equal(saved(6), before6);
  });

  it('cleans up chains and jumps left by a crashed run, including duplicate jumps', () => {
    const before4 = saved(4);
    new HookManager({ run: run() }).install(plan4); // "crashes": never removed
    inNs('iptables-nft', '-t', 'mangle', '-I', 'INPUT', '1', '-j', 'NFQWALL-INPUT'); // a second stale copy
    const m = new HookManager({ run: run() });
    const removed = m.removeStale(4);
    assert.ok(removed.some((r) => r.includes('-A INPUT -j NFQWALL-INPUT')), removed.join('\n'));
    assert.equal(removed.filter((r) => r.endsWith('-A INPUT -j NFQWALL-INPUT')).length, 2);
    assert.equal(saved(4), before4);

    // And install after a crash leaves exactly one set, not two.
    new HookManager({ run: run() }).install(plan4);
    const m2 = new HookManager({ run: run() });
    m2.install(plan4);
    const after = saved(4);
    assert.equal(after.match(/^-A INPUT -j NFQWALL-INPUT$/gm)?.length, 1);
    assert.deepEqual(m2.remove(), []);
    assert.equal(saved(4), before4);
  });

  it('falls back to iptables-legacy for real when the nft backend fails, and removes from legacy', () => {
    const real = run();
    const noNft: Runner = (cmd, args, input) =>
      cmd.includes('-nft-restore') ? { status: 1, stdout: '', stderr: 'nft backend disabled by the test' } : real(cmd, args, input);
    const legacySaved = (): string => inNs('iptables-legacy-save');
    const nftBefore = saved(4);
    const m = new HookManager({ run: noNft });
    m.install(plan4);
    assert.equal(m.active[0]!.backend.name, 'legacy');
    assert.deepEqual(plain(parseOwned(legacySaved())), plain(ownedFromPlan(plan4)));
    assert.equal(saved(4), nftBefore);
    assert.deepEqual(m.remove(), []);
    assert.equal(parseOwned(legacySaved()).size, 0);
  });

  it('removal still succeeds when someone already deleted one of our jumps', () => {
    const before4 = saved(4);
    const m = new HookManager({ run: run() });
    m.install(plan4);
    inNs('iptables-nft', '-t', 'mangle', '-D', 'FORWARD', '-j', 'NFQWALL-FORWARD');
    assert.deepEqual(m.remove(), []);
    assert.equal(saved(4), before4);
  });
});

// ---- the flow cache's skip bits (docs/flow-cache.md, Trips) ----

// FORWARD's bit is the lower, POSTROUTING's the higher.
const SKIP = 0x30000000;
/** Where a packet enters the host (PREROUTING, OUTPUT) or is delivered (INPUT): both bits cleared. */
const CLEAR_BOTH = '-m mark ! --mark 0x0/0x30000000 -j MARK --set-xmark 0x0/0x30000000';
/** FORWARD and POSTROUTING are entered only without their bit; with POSTROUTING's, the bits are cleared. */
const FORWARD_JUMP = '-m mark ! --mark 0x10000000/0x10000000 -j NFQWALL-FORWARD';
const POST_JUMP = '-m mark ! --mark 0x20000000/0x20000000 -j NFQWALL-POSTROUTING';
const POST_PASS = '-m mark --mark 0x20000000/0x20000000 -j NFQWALL-SKIPPED';
/** A packet that skipped FORWARD only takes its POSTROUTING trip without the FORWARD bit. */
const POST_CLEAR_FORWARD = '-m mark --mark 0x10000000/0x10000000 -j MARK --set-xmark 0x0/0x10000000';
const SKIPPED_CLEAR = '-j MARK --set-xmark 0x0/0x30000000';

/** What iptables-save prints after installScript: the same lines, the jumps appended. */
function asSaved(script: string): string {
  return script.replace(/^-I (\S+) \d+ /gm, '-A $1 ');
}

describe('daemon/hooks with the skip mark', () => {
  const skipPlan: HookPlan = { ...plan4, notrack: false, skipMark: SKIP };

  it('clears both bits at PREROUTING, INPUT and OUTPUT before their queue rules, jumps at FORWARD without the lower bit and at POSTROUTING without the higher, which it clears with the lower, and clears the lower before POSTROUTING\'s queue rule', () => {
    assert.equal(
      installScript(skipPlan),
      [
        '*mangle',
        ':NFQWALL-PREROUTING - [0:0]',
        ':NFQWALL-INPUT - [0:0]',
        ':NFQWALL-FORWARD - [0:0]',
        ':NFQWALL-OUTPUT - [0:0]',
        ':NFQWALL-POSTROUTING - [0:0]',
        ':NFQWALL-SKIPPED - [0:0]',
        `-A NFQWALL-PREROUTING ${CLEAR_BOTH}`,
        '-A NFQWALL-PREROUTING -j NFQUEUE --queue-num 7',
        `-A NFQWALL-INPUT ${CLEAR_BOTH}`,
        '-A NFQWALL-INPUT -j NFQUEUE --queue-num 7',
        '-A NFQWALL-FORWARD -j NFQUEUE --queue-num 7',
        `-A NFQWALL-OUTPUT ${CLEAR_BOTH}`,
        '-A NFQWALL-OUTPUT -j NFQUEUE --queue-num 7',
        `-A NFQWALL-POSTROUTING ${POST_CLEAR_FORWARD}`,
        '-A NFQWALL-POSTROUTING -j NFQUEUE --queue-num 7',
        `-A NFQWALL-SKIPPED ${SKIPPED_CLEAR}`,
        '-I PREROUTING 1 -j NFQWALL-PREROUTING',
        '-I INPUT 1 -j NFQWALL-INPUT',
        `-I FORWARD 1 ${FORWARD_JUMP}`,
        '-I OUTPUT 1 -j NFQWALL-OUTPUT',
        `-I POSTROUTING 1 ${POST_JUMP}`,
        `-I POSTROUTING 2 ${POST_PASS}`,
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('has chains that clear the bits at INPUT, OUTPUT and POSTROUTING when only PREROUTING and FORWARD are queued (bits apart)', () => {
    // 0x10100: FORWARD's bit is 0x100, POSTROUTING's 0x10000.
    assert.equal(
      installScript({ ...skipPlan, hooks: ['PREROUTING', 'FORWARD'], skipMark: 0x10100, ownerPid: 99 }),
      [
        '*mangle',
        ':NFQWALL-PREROUTING - [0:0]',
        ':NFQWALL-INPUT - [0:0]',
        ':NFQWALL-FORWARD - [0:0]',
        ':NFQWALL-OUTPUT - [0:0]',
        ':NFQWALL-POSTROUTING - [0:0]',
        ':NFQWALL-SKIPPED - [0:0]',
        ':NFQWALL-OWNER - [0:0]',
        '-A NFQWALL-PREROUTING -m mark ! --mark 0x0/0x10100 -j MARK --set-xmark 0x0/0x10100',
        '-A NFQWALL-PREROUTING -j NFQUEUE --queue-num 7',
        '-A NFQWALL-INPUT -m mark ! --mark 0x0/0x10100 -j MARK --set-xmark 0x0/0x10100',
        '-A NFQWALL-FORWARD -j NFQUEUE --queue-num 7',
        '-A NFQWALL-OUTPUT -m mark ! --mark 0x0/0x10100 -j MARK --set-xmark 0x0/0x10100',
        '-A NFQWALL-POSTROUTING -m mark --mark 0x100/0x100 -j MARK --set-xmark 0x0/0x100',
        '-A NFQWALL-SKIPPED -j MARK --set-xmark 0x0/0x10100',
        '-A NFQWALL-OWNER -m comment --comment "nfqwall pid 99"',
        '-I PREROUTING 1 -j NFQWALL-PREROUTING',
        '-I INPUT 1 -j NFQWALL-INPUT',
        '-I FORWARD 1 -m mark ! --mark 0x100/0x100 -j NFQWALL-FORWARD',
        '-I OUTPUT 1 -j NFQWALL-OUTPUT',
        '-I POSTROUTING 1 -m mark ! --mark 0x10000/0x10000 -j NFQWALL-POSTROUTING',
        '-I POSTROUTING 2 -m mark --mark 0x10000/0x10000 -j NFQWALL-SKIPPED',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('has no FORWARD chain when FORWARD is not queued, and keeps the raw table as it was', () => {
    const s = installScript({ ...plan4, hooks: ['PREROUTING', 'INPUT'], skipMark: SKIP });
    assert.ok(s.startsWith(installScript({ ...plan4, hooks: [] })), 'the raw part comes first, unchanged');
    assert.doesNotMatch(s, /FORWARD/);
    const chain = (name: string): string[] => s.split('\n').filter((l) => l.startsWith(`-A ${name} `));
    assert.deepEqual(chain('NFQWALL-POSTROUTING'), [`-A NFQWALL-POSTROUTING ${POST_CLEAR_FORWARD}`]);
    assert.deepEqual(s.split('\n').filter((l) => l.startsWith('-I POSTROUTING ')), [`-I POSTROUTING 1 ${POST_JUMP}`, `-I POSTROUTING 2 ${POST_PASS}`]);
    // INPUT only clears the bits, then queues: a packet a changed route delivers here meets the INPUT rules.
    assert.deepEqual(chain('NFQWALL-INPUT'), [`-A NFQWALL-INPUT ${CLEAR_BOTH}`, '-A NFQWALL-INPUT -j NFQUEUE --queue-num 7']);
    assert.deepEqual(chain('NFQWALL-SKIPPED'), [`-A NFQWALL-SKIPPED ${SKIPPED_CLEAR}`]);
    assert.doesNotMatch(s, /^-A NFQWALL-INPUT .*-g /m);
    assert.doesNotMatch(s, /^-A NFQWALL-POSTROUTING -j NFQUEUE/m);
  });

  it('adds nothing when PREROUTING is not queued or the mark is 0', () => {
    for (const hooks of [['INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'], []] as const) {
      const plain4 = { ...plan4, hooks };
      const s = installScript({ ...plain4, skipMark: SKIP });
      assert.equal(s, installScript(plain4), hooks.join(','));
      assert.doesNotMatch(s, /mark|SKIPPED/);
      assert.deepEqual(plain(ownedFromPlan({ ...plain4, skipMark: SKIP })), plain(ownedFromPlan(plain4)));
    }
    assert.equal(installScript({ ...plan4, skipMark: 0 }), installScript(plan4));
  });

  it('refuses a skip mark that is not two bits', () => {
    assert.throws(() => installScript({ ...plan4, skipMark: 0x10000000 }), /skip mark 268435456 is not two mark bits/);
    assert.throws(() => installScript({ ...plan4, skipMark: 1 }), /skip mark 1 is not two mark bits/);
    assert.throws(() => installScript({ ...plan4, skipMark: 7 }), /skip mark 7 is not two mark bits/);
    assert.throws(() => installScript({ ...plan4, skipMark: 0xffffffff }), /not two mark bits/);
    assert.throws(() => installScript({ ...plan4, skipMark: 2 ** 32 + 2 ** 31 }), /not two mark bits/);
    assert.throws(() => installScript({ ...plan4, skipMark: -3 }), /not two mark bits/);
    assert.throws(() => installScript({ ...plan4, skipMark: 3.5 }), /not two mark bits/);
    // Refused even when PREROUTING is not queued and the mark would go unused.
    assert.throws(() => installScript({ ...plan4, hooks: ['FORWARD'], skipMark: 0x10000000 }), /not two mark bits/);
    for (const ok of [3, 0x80000001, 0xc0000000, SKIP]) assert.doesNotThrow(() => installScript({ ...plan4, skipMark: ok }));
    assert.match(installScript({ ...plan4, skipMark: 0x80000001 }), /^-I FORWARD 1 -m mark ! --mark 0x1\/0x1 -j NFQWALL-FORWARD$/m);
    assert.match(installScript({ ...plan4, skipMark: 0x80000001 }), /^-I POSTROUTING 2 -m mark --mark 0x80000000\/0x80000000 -j NFQWALL-SKIPPED$/m);
  });

  it('parses back what it installs, NFQWALL-SKIPPED included, and removes all of it', () => {
    for (const hooks of [HOOKS, ['PREROUTING', 'FORWARD']] as const) {
      const p: HookPlan = { ...plan4, hooks, skipMark: SKIP };
      const owned = ownedFromPlan(p);
      const parsed = parseOwned(asSaved(installScript(p)));
      assert.deepEqual(plain(parsed), plain(owned));
      assert.ok(parsed.get('mangle')?.chains.includes('NFQWALL-SKIPPED'));
      assert.deepEqual(
        plain(parsed).mangle!.jumps,
        [
          'FORWARD>NFQWALL-FORWARD [-m mark ! --mark 0x10000000/0x10000000]',
          'INPUT>NFQWALL-INPUT',
          'OUTPUT>NFQWALL-OUTPUT',
          'POSTROUTING>NFQWALL-POSTROUTING [-m mark ! --mark 0x20000000/0x20000000]',
          'POSTROUTING>NFQWALL-SKIPPED [-m mark --mark 0x20000000/0x20000000]',
          'PREROUTING>NFQWALL-PREROUTING',
        ],
      );
      const rm = removeScript(parsed);
      assert.match(rm, /^-D POSTROUTING -m mark --mark 0x20000000\/0x20000000 -j NFQWALL-SKIPPED$/m);
      assert.match(rm, /^-D FORWARD -m mark ! --mark 0x10000000\/0x10000000 -j NFQWALL-FORWARD$/m);
      assert.match(rm, /^-F NFQWALL-SKIPPED$/m);
      assert.match(rm, /^-X NFQWALL-SKIPPED$/m);
      // Every jump (POSTROUTING's into NFQWALL-SKIPPED too) is deleted and every chain flushed before any is deleted.
      const lines = rm.slice(rm.indexOf('*mangle')).split('\n');
      const lastUnlink = Math.max(...['-D ', '-F '].map((op) => lines.map((l) => l.startsWith(op)).lastIndexOf(true)));
      const firstDelete = lines.findIndex((l) => l.startsWith('-X '));
      assert.ok(lastUnlink < firstDelete, rm);
    }
  });
});

const SKIP_NS = `nfqw-skiphooks-${process.pid}`;

describe('daemon/hooks with the skip mark in a network namespace (root)', function () {
  const inSkipNs = (...argv: string[]): string => sh(['ip', 'netns', 'exec', SKIP_NS, ...argv]);
  const savedMangle = (family: 4 | 6): string =>
    normalize(inSkipNs(family === 4 ? 'iptables-nft-save' : 'ip6tables-nft-save', '-t', 'mangle'));
  const { run } = useHookNamespace(SKIP_NS, 'daemon/hooks skip mark in a network namespace', () => {
    // Someone else's mark rule, which must survive.
    inSkipNs('iptables-nft', '-t', 'mangle', '-A', 'FORWARD', '-d', '198.18.0.2/32', '-j', 'MARK', '--set-mark', '0x4000');
  });

  it('installs the skip rules as planned and removes every one of them', () => {
    const before4 = savedMangle(4);
    const before6 = savedMangle(6);
    const m = new HookManager({ run: run() });
    const p4: HookPlan = { ...plan4, notrack: false, skipMark: SKIP };
    m.install(p4);
    m.install({ ...p4, family: 6, hooks: ['PREROUTING', 'FORWARD'] });
    const after4 = savedMangle(4);
    const after6 = savedMangle(6);
    assert.deepEqual(plain(parseOwned(after4)), plain(ownedFromPlan(p4)));
    assert.deepEqual(plain(parseOwned(after6)), plain(ownedFromPlan({ ...p4, family: 6, hooks: ['PREROUTING', 'FORWARD'] })));
    // The kernel's own rendering of our chains: each holds exactly the planned rules, in order.
    const ours = (text: string, chain: string): string[] => text.split('\n').filter((l) => l.startsWith(`-A ${chain} `));
    for (const text of [after4, after6]) {
      assert.deepEqual(ours(text, 'NFQWALL-PREROUTING'), [
        `-A NFQWALL-PREROUTING ${CLEAR_BOTH}`,
        '-A NFQWALL-PREROUTING -j NFQUEUE --queue-num 7',
      ]);
      assert.equal(ours(text, 'NFQWALL-INPUT')[0], `-A NFQWALL-INPUT ${CLEAR_BOTH}`);
      assert.deepEqual(ours(text, 'NFQWALL-FORWARD'), ['-A NFQWALL-FORWARD -j NFQUEUE --queue-num 7']);
      assert.equal(ours(text, 'NFQWALL-OUTPUT')[0], `-A NFQWALL-OUTPUT ${CLEAR_BOTH}`);
      assert.deepEqual(ours(text, 'NFQWALL-POSTROUTING')[0], `-A NFQWALL-POSTROUTING ${POST_CLEAR_FORWARD}`);
      assert.deepEqual(ours(text, 'NFQWALL-SKIPPED'), [`-A NFQWALL-SKIPPED ${SKIPPED_CLEAR}`]);
      // The jumps at the head of the built-in chains, before someone else's rule.
      assert.deepEqual(ours(text, 'FORWARD').slice(0, 2), [`-A FORWARD ${FORWARD_JUMP}`, ...(text === after4 ? ['-A FORWARD -d 198.18.0.2/32 -j MARK --set-xmark 0x4000/0xffffffff'] : [])]);
      assert.deepEqual(ours(text, 'POSTROUTING'), [`-A POSTROUTING ${POST_JUMP}`, `-A POSTROUTING ${POST_PASS}`]);
    }
    assert.deepEqual(ours(after4, 'NFQWALL-POSTROUTING').slice(1), ['-A NFQWALL-POSTROUTING -j NFQUEUE --queue-num 7'], 'POSTROUTING queued in the ipv4 plan');
    assert.deepEqual(ours(after6, 'NFQWALL-POSTROUTING').slice(1), [], 'POSTROUTING only clears in the ipv6 plan');
    assert.equal(ours(after4, 'NFQWALL-INPUT').length, 2, 'INPUT queued in the ipv4 plan');
    assert.equal(ours(after6, 'NFQWALL-INPUT').length, 1, 'INPUT only clears the bits in the ipv6 plan');
    assert.equal(normalize(withoutOurs(after4)), before4);
    assert.match(after4, /^-A FORWARD -d 198\.18\.0\.2\/32 -j MARK --set-xmark 0x4000\/0xffffffff$/m);

    assert.deepEqual(m.remove(), []);
    assert.equal(savedMangle(4), before4);
    assert.equal(savedMangle(6), before6);
    assert.doesNotMatch(savedMangle(4) + savedMangle(6), /NFQWALL/);
  });

  it('a crashed run with the skip rules is removed entirely as stale', () => {
    const before4 = savedMangle(4);
    new HookManager({ run: run() }).install({ ...plan4, skipMark: SKIP, ownerPid: 2 ** 22 + 1 }); // never removed
    assert.match(savedMangle(4), /NFQWALL-SKIPPED/);
    const removed = new HookManager({ run: run(), isLive: () => false }).removeStale(4);
    assert.ok(removed.some((r) => r.endsWith('mangle: chain NFQWALL-SKIPPED')), removed.join('\n'));
    assert.equal(savedMangle(4), before4);
  });
});
