// The addon against the real kernel: a throwaway network namespace whose mangle OUTPUT queues UDP to 127.0.0.1:9 on
// queue 7. The addon binds queues in its own process's namespace, so each case runs fixtures/queue-fixture.js there.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { QueueStats } from '../../native/index';
import { packageRoot } from '../paths';
import { skipUnlessRoot } from '../lab/lab';

const ROOT = packageRoot();
const FIXTURE = path.join(ROOT, 'test', 'native', 'fixtures', 'queue-fixture.js');
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const NS = `nfqw-native-${process.pid}`;

function inNs(cmd: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', NS, cmd, ...args], { encoding: 'utf8' });
}

function deleteNs(): void {
  spawnSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
}

function runFixture<T>(scenario: string): T {
  const r = spawnSync('ip', ['netns', 'exec', NS, process.execPath, '--expose-gc', FIXTURE, scenario], {
    encoding: 'utf8',
    timeout: 60000,
  });
  if (r.status !== 0) {
    throw new Error(`fixture ${scenario} exited ${r.status} (signal ${r.signal}):\n${r.stderr}\n${r.stdout}`);
  }
  const lines = r.stdout.trim().split('\n');
  return { ...(JSON.parse(lines[lines.length - 1]) as T), stderr: r.stderr } as T;
}

/** Packets counted by the rule in `table` OUTPUT whose text contains `needle`. */
function ruleCounter(table: string, needle: string): number {
  const out = inNs('iptables', '-t', table, '-L', 'OUTPUT', '-v', '-x', '-n');
  const line = out.split('\n').find((l) => l.includes(needle));
  assert.ok(line, `no ${table} OUTPUT rule with "${needle}" in:\n${out}`);
  return Number(line.trim().split(/\s+/)[0]);
}

/** Every packet the kernel queued got exactly one verdict, and none is left in the queue. */
function assertBalanced(s: QueueStats, sent: number): void {
  assert.equal(s.received, sent, 'received');
  assert.equal(s.accepted + s.dropped, s.received, 'accepted + dropped == received');
  assert.equal(s.kernelIdSequence, s.received, 'kernel id_sequence == received');
  assert.equal(s.kernelQueueTotal, 0, 'kernel queue_total');
  assert.equal(s.errors, 0, 'errors');
  assert.equal(s.pendingBatches, 0, 'pendingBatches');
}

interface Sample {
  hook: number;
  proto: number;
  uid: number;
  gid: number;
  outIf: number;
  inIf: number;
  origLen: number;
  len: number;
  flags: number;
  id: number;
  hwLen: number;
  text: string;
}

describe('native addon: NFQUEUE in a network namespace (root)', function () {
  this.timeout(120000);

  const onExit = (): void => deleteNs();

  before(function () {
    skipUnlessRoot(this, 'binding an NFQUEUE in a network namespace');
    assert.ok(fs.existsSync(ADDON), `${ADDON} is missing: run npm run build:native`);
    process.once('exit', onExit);
    deleteNs();
    execFileSync('ip', ['netns', 'add', NS]);
    execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    inNs('iptables', '-t', 'mangle', '-A', 'OUTPUT', '-o', 'lo', '-p', 'udp', '--dport', '9', '-j', 'NFQUEUE',
      '--queue-num', '7');
    inNs('ip6tables', '-t', 'mangle', '-A', 'OUTPUT', '-o', 'lo', '-p', 'udp', '--dport', '9', '-j', 'NFQUEUE',
      '--queue-num', '7');
    // The late queue of the `late` case; bypassed when nothing is bound to it, as in every other case.
    inNs('iptables', '-t', 'mangle', '-A', 'POSTROUTING', '-o', 'lo', '-p', 'udp', '--dport', '9', '-j', 'NFQUEUE',
      '--queue-num', '8', '--queue-bypass');
    // The queue's verdict resumes at the next hook entry (filter OUTPUT), where this rule counts marked packets.
    inNs('iptables', '-t', 'filter', '-A', 'OUTPUT', '-o', 'lo', '-p', 'udp', '--dport', '9', '-m', 'mark', '--mark',
      '0x42');
  });

  after(() => {
    deleteNs();
    process.removeListener('exit', onExit);
  });

  it('verdicts, marks and rewrites packets; counts match the kernel', () => {
    const r = runFixture<{
      sent: number;
      got: string[];
      stats: QueueStats;
      sample: Sample[];
      secondVerdictError: string;
      badVerdictErrors: string[];
      bindError: string;
      afterClose: unknown;
    }>('basic');
    assertBalanced(r.stats, r.sent);
    assert.equal(r.stats.dropped, 20);
    assert.equal(r.stats.accepted, 40);
    assert.equal(r.got.length, r.stats.accepted, 'the listener got exactly the accepted packets');
    assert.equal(r.got.filter((m) => m.startsWith('drop')).length, 0);
    assert.equal(r.got.filter((m) => m.startsWith('pass-')).length, 20);
    assert.deepEqual(
      r.got.filter((m) => /rewrite/i.test(m)).sort(),
      Array.from({ length: 10 }, (_, i) => `REWRITE-${i}`).sort(),
    );
    assert.equal(ruleCounter('filter', 'mark match 0x42'), 10, 'packets carrying the verdict mark');
    assert.ok(r.stats.bytes > 0 && r.stats.batches > 0 && r.stats.batches <= r.stats.received);
    assert.ok(r.stats.threadIdleMs < 1000, `threadIdleMs ${r.stats.threadIdleMs}`);

    const s = r.sample[0];
    assert.equal(s.hook, 3, 'NF_INET_LOCAL_OUT');
    assert.equal(s.proto, 0x0800);
    assert.equal(s.uid, 0, 'socket owner (UID_GID flag)');
    assert.equal(s.gid, 0);
    assert.equal(s.outIf, 1, 'lo');
    assert.equal(s.inIf, 0);
    assert.equal(s.origLen, s.len);
    assert.equal(s.hwLen, 0);
    assert.equal(s.text, 'pass-0');
    assert.ok(s.id >= 1);

    assert.match(r.secondVerdictError, /^TypeError: /);
    assert.deepEqual(r.badVerdictErrors, ['TypeError', 'TypeError', 'TypeError', 'TypeError', 'RangeError']);
    assert.match(r.bindError, /^cannot bind NFQUEUE 7: .*\(another process holds it\?\)$/);
    assert.equal(r.afterClose, null, 'close() unbinds: the queue leaves /proc/net/netfilter/nfnetlink_queue');
  });

  it('queues IPv6 through the same queue', () => {
    const r = runFixture<{ sent: number; got: string[]; protos: number[]; stats: QueueStats }>('ipv6');
    assertBalanced(r.stats, r.sent);
    assert.deepEqual(r.protos, [0x86dd, 0x86dd, 0x86dd]);
    assert.deepEqual(r.got.sort(), ['six-1', 'six-2', 'six-3']);
  });

  it('sendRaw sends hand-built IPv4 and IPv6 packets through OUTPUT, and refuses what is not a packet', () => {
    const r = runFixture<{ got4: string[]; got6: string[]; hooks: number[]; badError: string; stats: QueueStats }>('rawSend');
    assert.deepEqual(r.got4, ['raw-four']);
    assert.deepEqual(r.got6, ['raw-six']);
    assert.deepEqual(r.hooks, [3, 3], 'both passed the OUTPUT hook (NF_INET_LOCAL_OUT) and were queued there');
    assert.match(r.badError, /^sendRaw: cannot send the packet: Invalid argument$/);
    assertBalanced(r.stats, 2);
  });

  it('gives the overload verdict when JavaScript holds maxPendingBatches batches', () => {
    const r = runFixture<{ sent: number; got: string[]; stats: QueueStats }>('overload');
    assertBalanced(r.stats, r.sent);
    assert.ok(r.stats.overload > 0, `overload ${r.stats.overload}`);
    assert.ok(r.stats.overload < r.sent, 'the batches JavaScript took were verdicted by JavaScript');
    assert.equal(r.stats.accepted, r.sent, "overloadVerdict 'accept'");
    assert.equal(r.got.length, r.sent);
    assert.equal(r.stats.defaulted, 0);
  });

  it('serves a driven late queue from its own thread: both hooks, every packet once; closing the late queue closes both', () => {
    const r = runFixture<{
      refused: string[];
      hooks: { early: number[]; late: number[] };
      got: string[];
      stats: { early: QueueStats; late: QueueStats };
      bound: { early: boolean; late: boolean };
      afterClose: { early: unknown; late: unknown };
    }>('late');
    const notDriven = 'TypeError: Queue: options.late must be an open Queue made with driven: true that no other queue serves';
    const tooShort = 'Error: a late queue must hold at least 784 packets (maxLen): one read of the queue it follows, and a margin';
    assert.deepEqual(r.refused, [notDriven, notDriven, 'TypeError: Queue: a driven queue cannot drive another (options.late)', notDriven, tooShort]);
    assert.deepEqual(r.got, Array.from({ length: 20 }, (_, i) => `late-${i}`), 'every datagram, in order');
    assert.deepEqual([...new Set(r.hooks.early)], [3], 'OUTPUT on the queue');
    assert.deepEqual([...new Set(r.hooks.late)], [4], 'POSTROUTING on the late queue');
    assertBalanced(r.stats.early, 20);
    assertBalanced(r.stats.late, 20);
    assert.deepEqual(r.bound, { early: true, late: true });
    assert.deepEqual(r.afterClose, { early: null, late: null }, 'closing the late queue unbound both');
  });

  it('reads a queue only while its late queue has room for what the read can send on: the kernel keeps the rest where it entered, and drops none already judged', () => {
    const r = runFixture<{
      sent: number;
      lateMax: number;
      got: number;
      inOrder: boolean;
      whileHeld: { early: QueueStats; late: QueueStats; heldBatches: number };
      stats: { early: QueueStats; late: QueueStats };
    }>('lateBudget');
    const held = r.whileHeld;
    const facts = JSON.stringify({ whileHeld: held, stats: r.stats });
    // JavaScript held every late batch: the late queue took packets until it had no room for another read's worth.
    assert.ok(held.late.received > 0 && held.late.received <= r.lateMax, `the late queue held ${held.late.received}: ${facts}`);
    assert.equal(held.late.kernelQueueDropped, 0, `the late queue dropped nothing while held: ${facts}`);
    assert.ok((held.early.lateWaits ?? 0) >= 1, `the early queue was left unread: ${facts}`);
    assert.ok(held.early.kernelQueueTotal > 0, `the rest waited in the early queue: ${facts}`);
    // Released, everything went through both hooks, once, in order.
    assert.equal(r.got, r.sent, facts);
    assert.ok(r.inOrder, 'delivered in order');
    for (const q of [r.stats.early, r.stats.late]) {
      assert.equal(q.received, r.sent, facts);
      assert.equal(q.kernelQueueDropped, 0, facts);
      assertBalanced(q, r.sent);
    }
  });

  it('close() verdicts every outstanding batch, unbinds, and refuses late verdicts', () => {
    const r = runFixture<{
      sent: number;
      got: string[];
      before: QueueStats;
      stats: QueueStats;
      afterClose: unknown;
      lateVerdict: string;
      rebind: string;
      heldBatches: number;
    }>('close');
    assert.equal(r.before.kernelQueueTotal, r.sent, 'the packets wait in the kernel before close()');
    assert.ok(r.before.pendingBatches > 0);
    assert.equal(r.stats.defaulted, r.sent);
    assert.equal(r.stats.dropped, r.sent, "overloadVerdict 'drop'");
    assert.equal(r.stats.accepted, 0);
    assert.equal(r.stats.pendingBatches, 0);
    assert.equal(r.afterClose, null, 'queue gone from the kernel (queue_total 0)');
    assert.equal(r.got.length, 0);
    assert.equal(r.lateVerdict, 'TypeError');
    assert.equal(r.rebind, 'ok');
    assert.ok(r.heldBatches > 0);
  });

  it('defaults the batch when onBatch throws, and reports the error as a warning', () => {
    const r = runFixture<{ sent: number; got: string[]; stats: QueueStats; warnings: string[]; stderr: string }>(
      'throwing',
    );
    assertBalanced(r.stats, r.sent);
    assert.equal(r.stats.defaulted, r.sent);
    assert.equal(r.got.length, r.sent, "overloadVerdict 'accept'");
    assert.ok(r.warnings.includes('handler exploded'), JSON.stringify(r.warnings));
  });

  it('configures failOpen, no GSO, no UID/GID, a small maxLen and copy range', () => {
    const r = runFixture<{ got: string[]; stats: QueueStats }>('failOpen');
    assertBalanced(r.stats, 2);
    assert.deepEqual(r.got.sort(), ['open-1', 'open-2']);
  });

  it('drains bursts in batches with one verdict per packet', () => {
    const r = runFixture<{ sent: number; got: number; rcvbufErrors: number; stats: QueueStats }>('burst');
    assertBalanced(r.stats, r.sent);
    assert.equal(r.stats.accepted, r.sent);
    assert.ok(r.stats.batches < r.stats.received, `batches ${r.stats.batches} for ${r.stats.received} packets`);
    assert.equal(r.got + r.rcvbufErrors, r.sent, 'every accepted packet reached the listening socket');
  });

  it('counts ENOBUFS when the socket buffer overflows (fail-open lets the lost packets pass)', () => {
    const r = runFixture<{ sent: number; stats: QueueStats }>('overflow');
    const s = r.stats;
    assert.equal(s.kernelIdSequence, r.sent);
    assert.ok(s.enobufs > 0, `enobufs ${s.enobufs}`);
    assert.ok(s.received > 0 && s.received < r.sent, `received ${s.received}`);
    assert.equal(s.accepted + s.dropped, s.received);
    assert.equal(s.kernelQueueTotal, 0);
    assert.equal(s.errors, 0);
  });

  it('closes the queue when the Queue object is garbage-collected', () => {
    const r = runFixture<{ seen: number; before: { total: number } | null; after: unknown }>('collected');
    assert.equal(r.seen, 2);
    assert.ok(r.before && r.before.total === 2, JSON.stringify(r.before));
    assert.equal(r.after, null, 'the finalizer unbound the queue');
  });

  it('exits cleanly with an open queue and a pending batch', () => {
    const r = runFixture<{ seen: number; pending: number; stderr: string }>('exitOpen');
    assert.equal(r.seen, 1);
    assert.equal(r.pending, 1);
    assert.doesNotMatch(r.stderr, /terminate|abort|Segmentation/i);
    assert.equal(inNs('cat', '/proc/net/netfilter/nfnetlink_queue').trim(), '', 'no queue left bound');
  });
});
