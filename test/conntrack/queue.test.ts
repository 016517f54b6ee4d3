// The connection table wired into the NFQUEUE receive/verdict path, against the real kernel: a throwaway network
// namespace whose mangle OUTPUT and POSTROUTING queue TCP and UDP on lo to queue 11, bound with a ConnTable. Each case
// runs fixtures/queue-ct-fixture.js inside the namespace (the addon binds queues in its own process's namespace).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { ConnTableStats, CtEntry, QueueStats } from '../../native/index';
import { packageRoot } from '../paths';
import { skipUnlessRoot } from '../lab/lab';

const ROOT = packageRoot();
const FIXTURE = path.join(ROOT, 'test', 'conntrack', 'fixtures', 'queue-ct-fixture.js');
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const NS = `nfqw-ct-${process.pid}`;

const OUTPUT = 3;
const POSTROUTING = 4;
const INVALID = 0;
const NEW = 1;
const ESTABLISHED = 2;
const SEEN_REPLY = 2;
const ASSURED = 4;
const CONFIRMED = 8;
const DST_NAT = 32;
const DST_NAT_DONE = 256;
const CT_FLAG_CREATED = 1;
const CT_FLAG_TABLE_FULL = 2;

interface Seen {
  hook: number;
  proto: number;
  sport: number;
  dport: number;
  tcpFlags: number;
  text: string;
  csumNotReady: boolean;
  checksumsValid: boolean;
  state: number;
  dir: number;
  status: number;
  mark: number;
  zone: number;
  handle: number;
  flags: number;
}

interface Received {
  text: string;
  port: number;
}

function deleteNs(): void {
  spawnSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
}

function inNs(cmd: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', NS, cmd, ...args], { encoding: 'utf8' });
}

function runFixture<T>(scenario: string): T {
  const r = spawnSync('ip', ['netns', 'exec', NS, process.execPath, FIXTURE, scenario], {
    encoding: 'utf8',
    timeout: 60000,
  });
  if (r.status !== 0) {
    throw new Error(`fixture ${scenario} exited ${r.status} (signal ${r.signal}):\n${r.stderr}\n${r.stdout}`);
  }
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as T;
}

/** Every packet the kernel queued got exactly one verdict, and none is left in the queue. */
function assertBalanced(s: QueueStats): void {
  assert.equal(s.accepted + s.dropped, s.received, 'accepted + dropped == received');
  assert.equal(s.kernelIdSequence, s.received, 'kernel id_sequence == received');
  assert.equal(s.kernelQueueTotal, 0, 'kernel queue_total');
  assert.equal(s.errors, 0, 'errors');
  assert.equal(s.pendingBatches, 0, 'pendingBatches');
}

function pick(seen: Seen[], hook: number, pred: (s: Seen) => boolean): Seen[] {
  return seen.filter((s) => s.hook === hook && pred(s));
}

describe('native addon: NFQUEUE with a connection table (root)', function () {
  this.timeout(120000);

  const onExit = (): void => deleteNs();

  before(function () {
    skipUnlessRoot(this, 'binding an NFQUEUE in a network namespace');
    assert.ok(fs.existsSync(ADDON), `${ADDON} is missing: run npm run build:native`);
    process.once('exit', onExit);
    deleteNs();
    execFileSync('ip', ['netns', 'add', NS]);
    execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    for (const chain of ['OUTPUT', 'POSTROUTING']) {
      for (const proto of ['udp', 'tcp']) {
        inNs('iptables', '-t', 'mangle', '-A', chain, '-o', 'lo', '-p', proto, '-j', 'NFQUEUE', '--queue-num', '11');
      }
    }
  });

  after(() => {
    deleteNs();
    process.removeListener('exit', onExit);
  });

  it('a UDP exchange is NEW, then ESTABLISHED on the reply and after it; later hooks keep the state', () => {
    const r = runFixture<{
      clientPort: number;
      got: Received[];
      seen: Seen[];
      list: CtEntry[];
      stats: QueueStats;
      tableStats: ConnTableStats;
      columnsPresent: boolean[];
    }>('udp');
    assertBalanced(r.stats);
    assert.ok(r.columnsPresent.length > 0 && r.columnsPresent.every(Boolean), 'every batch carries the ct columns');
    assert.deepEqual(r.got.map((g) => g.text), ['re:one', 're:two']);
    const out = pick(r.seen, OUTPUT, () => true).map((s) => [s.text, s.state, s.dir]);
    assert.deepEqual(out, [
      ['one', NEW, 0],
      ['re:one', ESTABLISHED, 1],
      ['two', ESTABLISHED, 0],
      ['re:two', ESTABLISHED, 1],
    ]);
    const post = pick(r.seen, POSTROUTING, () => true).map((s) => [s.text, s.state, s.dir]);
    assert.deepEqual(post, out, 'POSTROUTING sees the state each packet had at OUTPUT');
    const first = r.seen[0];
    assert.equal(first.flags & CT_FLAG_CREATED, CT_FLAG_CREATED, 'the first packet created the entry');
    assert.equal(first.status & CONFIRMED, 0, 'not confirmed before its POSTROUTING trip');
    assert.ok(first.handle > 0);
    assert.ok(r.seen.every((s) => s.handle === first.handle), 'one connection');
    const reply = pick(r.seen, OUTPUT, (s) => s.text === 're:one')[0];
    assert.equal(reply.status & (SEEN_REPLY | CONFIRMED), SEEN_REPLY | CONFIRMED);

    assert.equal(r.list.length, 1);
    const e = r.list[0];
    assert.equal(e.orig.proto, 17);
    assert.equal(e.orig.sport, r.clientPort);
    assert.equal(e.orig.dport, 7);
    assert.equal(e.reply.sport, 7);
    assert.equal(e.status & (SEEN_REPLY | CONFIRMED), SEEN_REPLY | CONFIRMED);
    assert.deepEqual(e.packets, [2, 2], 'each packet counted once, not once per hook');
    assert.equal(r.tableStats.created, 1);
    assert.equal(r.tableStats.unconfirmed, 0);
    assert.equal(r.stats.ctDropped, 0);
  });

  it('a TCP connection to a local server reaches ESTABLISHED and ASSURED, then TIME_WAIT', () => {
    const r = runFixture<{
      clientPort: number;
      echoed: string;
      seen: Seen[];
      listOpen: CtEntry[];
      listClosed: CtEntry[];
      stats: QueueStats;
    }>('tcp');
    assertBalanced(r.stats);
    assert.equal(r.echoed, 'hello');
    const syn = pick(r.seen, OUTPUT, (s) => s.tcpFlags === 0x02);
    assert.equal(syn.length, 1);
    assert.equal(syn[0].state, NEW);
    assert.equal(syn[0].flags & CT_FLAG_CREATED, CT_FLAG_CREATED);
    const synAck = pick(r.seen, OUTPUT, (s) => s.tcpFlags === 0x12);
    assert.equal(synAck.length, 1);
    assert.deepEqual([synAck[0].state, synAck[0].dir], [ESTABLISHED, 1]);
    assert.ok(
      pick(r.seen, OUTPUT, (s) => s !== syn[0]).every((s) => s.state === ESTABLISHED),
      'every packet after the SYN is ESTABLISHED',
    );

    const open = r.listOpen.filter((e) => e.orig.proto === 6 && e.orig.dport === 8080);
    assert.equal(open.length, 1, JSON.stringify(r.listOpen));
    assert.equal(open[0].orig.sport, r.clientPort);
    assert.equal(open[0].tcpState, 'ESTABLISHED');
    assert.equal(open[0].status & (ASSURED | SEEN_REPLY | CONFIRMED), ASSURED | SEEN_REPLY | CONFIRMED);
    assert.match(open[0].line, /^tcp +6 \d+ ESTABLISHED src=127\.0\.0\.1 .* dport=8080 .*\[ASSURED\]/);
    const closed = r.listClosed.filter((e) => e.orig.proto === 6 && e.orig.dport === 8080);
    assert.equal(closed.length, 1);
    assert.equal(closed[0].tcpState, 'TIME_WAIT');
  });

  it('a DNAT binding committed on the first packet redirects the flow both ways with valid checksums', () => {
    const r = runFixture<{
      clientPort: number;
      targetGot: Received[];
      clientGot: Received[];
      seen: Seen[];
      list: CtEntry[];
      stats: QueueStats;
      tableStats: ConnTableStats;
      csumErrors: number;
    }>('dnat');
    assertBalanced(r.stats);
    assert.equal(r.stats.dropped, 0);
    // Sent to port 9, where nothing listens: they reached the listener on port 10, from the client's own port.
    // m1 carried a payload JavaScript rewrote: NAT applied on top of it.
    assert.deepEqual(r.targetGot, ['m0', 'M1', 'm2'].map((text) => ({ text, port: r.clientPort })));
    // The replies left port 10 and came back to the client from port 9.
    assert.deepEqual(r.clientGot.map((g) => [g.text, g.port]), [['re:m0', 9], ['re:M1', 9], ['re:m2', 9]]);
    assert.equal(r.csumErrors, 0, 'no UDP checksum errors in the namespace');

    // At OUTPUT every datagram is still addressed to port 9; at POSTROUTING (after the verdict's rewrite) to port 10,
    // with the whole checksum now computed (the kernel had left it partial).
    const out = pick(r.seen, OUTPUT, (s) => s.sport === r.clientPort);
    assert.deepEqual(out.map((s) => s.dport), [9, 9, 9]);
    assert.equal(out[0].state, NEW);
    const post = pick(r.seen, POSTROUTING, (s) => s.sport === r.clientPort);
    assert.deepEqual(post.map((s) => s.dport), [10, 10, 10]);
    assert.ok(post.every((s) => s.checksumsValid && !s.csumNotReady), JSON.stringify(post));
    // The reply leaves from port 10 and is un-NATed at POSTROUTING (its source manip).
    const replies = pick(r.seen, OUTPUT, (s) => s.dport === r.clientPort);
    assert.deepEqual(replies.map((s) => [s.sport, s.state, s.dir]), [[10, ESTABLISHED, 1], [10, ESTABLISHED, 1], [10, ESTABLISHED, 1]]);

    assert.equal(r.list.length, 1);
    const e = r.list[0];
    assert.deepEqual([e.orig.sport, e.orig.dport, e.reply.sport, e.reply.dport], [r.clientPort, 9, 10, r.clientPort]);
    assert.equal(e.status & (DST_NAT | DST_NAT_DONE | CONFIRMED), DST_NAT | DST_NAT_DONE | CONFIRMED);
    assert.equal(r.tableStats.natFailed, 0);
  });

  for (const scenario of ['raceSame', 'raceSplit'] as const) {
    const split = scenario === 'raceSplit';
    it(`two datagrams of a new flow classified before either is decided, ${split ? 'DNATed to different ports: the second becomes a NAT_CLASH entry' : 'with the same DNAT: the second is attached to the first'}`, () => {
      const r = runFixture<{
        clientPort: number;
        got10: Received[];
        got11: Received[];
        clientGot: Received[];
        seen: Seen[];
        list: CtEntry[];
        tableStats: ConnTableStats & { clashResolve?: number };
        stats: QueueStats;
      }>(scenario);
      assertBalanced(r.stats);
      assert.equal(r.stats.dropped, 0);
      const firsts = pick(r.seen, OUTPUT, (s) => s.dport === 9);
      assert.deepEqual(firsts.map((s) => [s.text, s.state, s.flags & CT_FLAG_CREATED]), [['a', NEW, CT_FLAG_CREATED], ['b', NEW, CT_FLAG_CREATED]], 'each created its own entry');
      assert.notEqual(firsts[0].handle, firsts[1].handle);
      // Both delivered, each where its own binding sent it; both answers reach the client from the port it asked.
      assert.deepEqual(r.got10.map((g) => g.text), split ? ['a'] : ['a', 'b']);
      assert.deepEqual(r.got11.map((g) => g.text), split ? ['b'] : []);
      assert.deepEqual(r.clientGot.map((g) => [g.text, g.port]).sort(), [['re:a', 9], ['re:b', 9]]);
      assert.equal(r.tableStats.clashResolve, 1);
      assert.equal(r.tableStats.insertFailed, 0);
      assert.equal(r.list.length, 1, 'conntrack -L: one connection');
      assert.equal(r.tableStats.entries, split ? 2 : 1, split ? 'the NAT_CLASH entry is hidden but counted' : 'the second entry is gone');
    });
  }

  it('a full table drops new connections whatever JavaScript answers, and counts them', () => {
    const r = runFixture<{
      echoGot: Received[];
      clientsGot: number[];
      seen: Seen[];
      list: CtEntry[];
      stats: QueueStats;
      tableStats: ConnTableStats;
      echoed: string;
    }>('full');
    assertBalanced(r.stats);
    assert.equal(r.echoed, 'hello', 'the ASSURED connection already in the table keeps working');
    const udp = r.seen.filter((s) => s.proto === 17);
    assert.equal(udp.length, 3, 'each datagram was queued once: dropped at OUTPUT');
    assert.ok(udp.every((s) => s.hook === OUTPUT && s.flags & CT_FLAG_TABLE_FULL && s.state === INVALID && s.handle === 0));
    assert.deepEqual(r.echoGot, [], 'JavaScript accepted them, the table dropped them');
    assert.equal(r.stats.ctDropped, 3);
    assert.equal(r.stats.dropped, 3);
    assert.equal(r.tableStats.drop, 3);
    assert.equal(r.tableStats.earlyDrop, 0, 'an ASSURED connection is never evicted');
    assert.deepEqual(r.list.map((e) => e.orig.proto), [6]);
  });

  it('a dropped first packet leaves no entry; the retry opens the connection', () => {
    const r = runFixture<{
      echoGot: Received[];
      seen: Seen[];
      listAfterDrop: CtEntry[];
      statsAfterDrop: ConnTableStats;
      listAfterRetry: CtEntry[];
      stats: QueueStats;
      clientPort: number;
    }>('dropFirst');
    assertBalanced(r.stats);
    assert.deepEqual(r.echoGot.map((g) => g.text), ['second']);
    assert.deepEqual(r.listAfterDrop, []);
    assert.equal(r.statsAfterDrop.created, 1);
    assert.equal(r.statsAfterDrop.entries, 0);
    assert.equal(r.statsAfterDrop.unconfirmed, 0);
    const second = pick(r.seen, OUTPUT, (s) => s.text === 'second')[0];
    assert.equal(second.state, NEW, 'the retry is a new connection again');
    assert.equal(second.flags & CT_FLAG_CREATED, CT_FLAG_CREATED);
    assert.equal(r.listAfterRetry.length, 1);
    assert.equal(r.listAfterRetry[0].orig.sport, r.clientPort);
    assert.equal(r.listAfterRetry[0].status & CONFIRMED, CONFIRMED);
  });

  it('the close default (drop) commits too: the unconfirmed entry goes at once', () => {
    const r = runFixture<{
      held: number[];
      listBefore: CtEntry[];
      unconfirmedBefore: number;
      listAfter: CtEntry[];
      tableStats: ConnTableStats;
      stats: QueueStats;
    }>('closeDefault');
    assert.deepEqual(r.held, [NEW, CT_FLAG_CREATED]);
    assert.equal(r.listBefore.length, 1);
    assert.equal(r.unconfirmedBefore, 1);
    assert.deepEqual(r.listAfter, []);
    assert.equal(r.tableStats.unconfirmed, 0);
    assert.equal(r.stats.defaulted, 1);
    assert.equal(r.stats.dropped, 1);
  });

  it('the overload default (accept) commits and confirms; the held batch, dropped later, leaves nothing', () => {
    const r = runFixture<{
      portA: number;
      portB: number;
      echoGot: Received[];
      list: CtEntry[];
      listAfter: CtEntry[];
      heldState: number;
      stats: QueueStats;
    }>('overloadAccept');
    assertBalanced(r.stats);
    assert.ok(r.stats.overload >= 3, `overload ${r.stats.overload}`);
    assert.deepEqual(r.echoGot.map((g) => [g.text, g.port]), [['overloaded', r.portB]]);
    assert.equal(r.heldState, NEW);
    const b = r.list.find((e) => e.orig.sport === r.portB);
    assert.ok(b, JSON.stringify(r.list));
    assert.equal(b.status & (CONFIRMED | SEEN_REPLY), CONFIRMED | SEEN_REPLY);
    const a = r.list.find((e) => e.orig.sport === r.portA);
    assert.ok(a, 'the held packet has its unconfirmed entry while JavaScript holds it');
    assert.equal(a.status & CONFIRMED, 0);
    assert.deepEqual(r.listAfter.map((e) => e.orig.sport), [r.portB]);
  });

  it('idle wakeups of the receive thread sweep expired entries', () => {
    const r = runFixture<{ before: ConnTableStats; after: ConnTableStats }>('idleSweep');
    assert.equal(r.before.entries, 1);
    assert.equal(r.before.expired, 0);
    assert.equal(r.after.expired, 1);
    assert.equal(r.after.entries, 0);
  });

  it('checks its options; a queue without a table has no ct columns and refuses ct updates', () => {
    const r = runFixture<{ errors: string[]; plainColumns: string[]; plainUpdateError: string; hasCtDropped: boolean }>('options');
    assert.deepEqual(r.errors, [
      'TypeError: Queue: options.conntrack must be a ConnTable',
      'TypeError: Queue: options.conntrack must be a ConnTable',
      'TypeError: Queue: options.queuedHooks needs options.conntrack',
      'RangeError: Queue: options.queuedHooks must be an integer from 1 to 31',
    ]);
    assert.deepEqual(r.plainColumns, []);
    assert.match(r.plainUpdateError, /^TypeError: verdict: ctFlags, ctMarks and ctNat need a queue bound with options\.conntrack$/);
    assert.equal(r.hasCtDropped, false);
  });
});
