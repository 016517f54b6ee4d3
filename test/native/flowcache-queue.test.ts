// The flow cache on the receive thread, against the real kernel: a throwaway network namespace whose mangle OUTPUT
// and POSTROUTING queue UDP on lo to queue 13, bound with a ConnTable and a FlowCache; mangle INPUT queues UDP to
// queue 14 (an observer, bypassed when unbound). Each case runs fixtures/flowcache-fixture.js inside the namespace
// (the addon binds queues in its own process's namespace); the fixture plays the engine in JavaScript.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { CtEntry, FlowCacheStats, QueueStats } from '../../native/index';
import { packageRoot } from '../paths';
import { skipUnlessRoot } from '../lab/lab';

const ROOT = packageRoot();
const FIXTURE = path.join(ROOT, 'test', 'native', 'fixtures', 'flowcache-fixture.js');
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const NS = `nfqw-fc-${process.pid}`;

const OUTPUT = 3;
const POSTROUTING = 4;
const INPUT = 1;
const ESTABLISHED = 2;
const HELD = 'HOLD-HOLD-HOLD-HOLD';
const IP_UDP_HEADERS = 28;

interface Seen {
  hook: number;
  dir: number;
  state: number;
  text: string;
  path?: number;
  len: number;
  mark: number;
}

interface Observed {
  hook: number;
  sport: number;
  dport: number;
  text: string;
  csumNotReady: boolean;
  checksumsValid?: boolean;
}

type Row = [generation: number, pathId: number, packets: number, bytes: number];

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
  return JSON.parse(lines[lines.length - 1]!) as T;
}

/** Packets counted by the filter OUTPUT rule whose text contains `needle`. */
function ruleCounter(needle: string): number {
  const out = inNs('iptables', '-L', 'OUTPUT', '-v', '-x', '-n');
  const line = out.split('\n').find((l) => l.includes(needle));
  assert.ok(line, `no filter OUTPUT rule with "${needle}" in:\n${out}`);
  return Number(line.trim().split(/\s+/)[0]);
}

/** Every packet the kernel queued got exactly one verdict, and none is left in the queue. */
function assertBalanced(s: QueueStats): void {
  assert.equal(s.accepted + s.dropped, s.received, 'accepted + dropped == received');
  assert.equal(s.kernelIdSequence, s.received, 'kernel id_sequence == received');
  assert.equal(s.kernelQueueTotal, 0, 'kernel queue_total');
  assert.equal(s.errors, 0, 'errors');
  assert.equal(s.pendingBatches, 0, 'pendingBatches');
  assert.equal(s.overload, 0, 'overload');
}

/** Per path id: [packets, bytes] summed over every generation's rows. */
function drainedByPath(rows: Row[]): Map<number, [number, number]> {
  const m = new Map<number, [number, number]>();
  for (const [, id, p, b] of rows) {
    const cur = m.get(id) ?? [0, 0];
    m.set(id, [cur[0] + p, cur[1] + b]);
  }
  return m;
}

describe('native addon: the flow cache on the receive thread (root)', function () {
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
      inNs('iptables', '-t', 'mangle', '-A', chain, '-o', 'lo', '-p', 'udp', '-j', 'NFQUEUE', '--queue-num', '13');
    }
    // The held packet gets another input mark before it is queued (by its length: 28 + 19 bytes), so it misses.
    inNs('iptables', '-t', 'mangle', '-I', 'OUTPUT', '-o', 'lo', '-p', 'udp', '--dport', '7', '-m', 'length',
      '--length', String(IP_UDP_HEADERS + HELD.length), '-j', 'MARK', '--set-mark', '0x7');
    inNs('iptables', '-t', 'mangle', '-A', 'INPUT', '-i', 'lo', '-p', 'udp', '-j', 'NFQUEUE', '--queue-num', '14',
      '--queue-bypass');
    // The queue's verdict resumes at the next hook entry (filter OUTPUT), where this rule counts marked packets.
    inNs('iptables', '-A', 'OUTPUT', '-o', 'lo', '-p', 'udp', '-m', 'mark', '--mark', '0x42');
  });

  after(() => {
    deleteNs();
    process.removeListener('exit', onExit);
  });

  it('decides settled packets natively: same fates, marks, order and per-path counts as JavaScript', () => {
    const r = runFixture<{
      portA: number;
      portC: number;
      echoTexts: string[];
      aGot: number;
      cGot: string[];
      seen: Seen[];
      cachedBeforeBurst: number;
      afterBurst: QueueStats;
      afterB: QueueStats;
      stats: QueueStats;
      cacheStats: FlowCacheStats;
      generationBefore: number;
      newGeneration: number;
      drained: Row[];
      drainedAgain: Row[];
      dSeen: [string, number, number][];
      waitingAfterClose: number;
    }>('flow');
    const s = r.stats;

    // Every queued id got exactly one verdict: from JavaScript or from the cache.
    assertBalanced(s);
    assert.equal(r.seen.length + (s.cached ?? 0), s.received, 'JavaScript saw exactly the packets not cached');
    assert.equal(r.cacheStats.hits, s.cached);
    assert.equal(r.waitingAfterClose, 0, 'every packet handed to JavaScript stopped waiting');

    // The cache was in use: once the flow settled, its packets stopped reaching JavaScript.
    assert.ok(r.cachedBeforeBurst >= 150, `cached before the burst: ${r.cachedBeforeBurst}`);
    assert.ok((r.afterB.cached ?? 0) - (r.afterBurst.cached ?? 0) >= 150, 'phase b was cached again');

    // Order: the held packet was not overtaken by the ones after it, which the cache would otherwise have decided.
    const expectA = [
      ...Array.from({ length: 50 }, (_, i) => `a-${i}`),
      HELD,
      ...Array.from({ length: 149 }, (_, i) => `a-${i + 51}`),
      ...Array.from({ length: 50 }, (_, i) => `b-${i}`),
    ];
    const expectD = Array.from({ length: 10 }, (_, i) => `d-${i}`);
    assert.deepEqual(r.echoTexts, [...expectA, 'c-0', ...expectD], 'the echo server got every accepted packet, in order');
    const held = r.seen.find((x) => x.text === HELD && x.hook === OUTPUT);
    assert.ok(held && held.mark === 7, 'the held packet went to JavaScript with its own mark');
    // The ones after it had a stored decision: they waited natively (parked) behind it instead of joining it in
    // JavaScript, and were verdicted from the cache once it was.
    const afterHeld = r.seen.filter((x) => x.hook === OUTPUT && x.dir === 0 && /^a-(5[1-9]|[6-9]\d|1\d\d)$/.test(x.text));
    assert.deepEqual(afterHeld.map((x) => x.text), [], 'a-51..a-199 did not need JavaScript at OUTPUT');
    assert.ok(r.cacheStats.parked >= 149, `parked ${r.cacheStats.parked}`);

    // Fates: client C's established packets were dropped (by JavaScript, then by the cache); client A's all passed.
    assert.equal(r.aGot, 1 + expectA.length - 1 + expectD.length, 'client A got every echo');
    assert.deepEqual(r.cGot, ['re:c-0']);
    assert.equal(s.dropped, 20);
    // Marks: every packet of A at OUTPUT left with 0x42, whoever decided it.
    assert.equal(ruleCounter('mark match 0x42'), expectA.length + expectD.length);

    // Counters: per path, the packets JavaScript counted plus the hits the cache drained are all the traffic's
    // ESTABLISHED packets on that path, bytes included.
    const pathOf = (hook: number, dir: number, c: boolean): number => hook * 4 + dir * 2 + (c ? 1 : 0);
    const aOrig = [...expectA.slice(1), ...expectD];
    const aReply = [...expectA, ...expectD].map((t) => `re:${t}`);
    const bytes = (texts: string[]): number => texts.reduce((n, t) => n + IP_UDP_HEADERS + t.length, 0);
    const cDropped = Array.from({ length: 20 }, (_, i) => `c-${i + 1}`);
    const expected = new Map<number, string[]>([
      [pathOf(OUTPUT, 0, false), aOrig],
      [pathOf(POSTROUTING, 0, false), aOrig],
      [pathOf(OUTPUT, 1, false), aReply],
      [pathOf(POSTROUTING, 1, false), aReply],
      [pathOf(OUTPUT, 0, true), cDropped],
      [pathOf(OUTPUT, 1, true), ['re:c-0']],
      [pathOf(POSTROUTING, 1, true), ['re:c-0']],
    ]);
    const drained = drainedByPath(r.drained);
    for (const [id] of drained) assert.ok(expected.has(id), `hits on unexpected path ${id}`);
    for (const [id, texts] of expected) {
      const js = r.seen.filter((x) => x.path === id && x.state === ESTABLISHED);
      const [p, b] = drained.get(id) ?? [0, 0];
      assert.equal(js.length + p, texts.length, `path ${id}: packets`);
      assert.equal(js.reduce((n, x) => n + x.len, 0) + b, bytes(texts), `path ${id}: bytes`);
    }
    assert.deepEqual(r.drainedAgain, [], 'drain() resets');

    // Invalidation: hits of the old generation are still reported under it; the new generation starts empty, so
    // the first packet after it went to JavaScript.
    assert.equal(r.newGeneration, r.generationBefore + 1);
    const gens = new Set(r.drained.map((row) => row[0]));
    assert.deepEqual([...gens].sort(), [r.generationBefore, r.newGeneration]);
    assert.deepEqual(r.dSeen.slice(0, 2), [
      ['d-0', OUTPUT, ESTABLISHED],
      ['d-0', POSTROUTING, ESTABLISHED],
    ]);
    assert.ok(r.dSeen.length < 2 * expectD.length, 'the rest of phase d was cached again');
  });

  it('empties a full lot into JavaScript in order, then caches the flow again', () => {
    const r = runFixture<{
      N: number;
      parkLimit: number;
      echoTexts: string[];
      jsOutput: string[];
      parkedDuringHold: number;
      stats: QueueStats;
      cacheStats: FlowCacheStats;
    }>('spill');
    assertBalanced(r.stats);
    const sent = [
      ...Array.from({ length: 20 }, (_, i) => `s-${i}`),
      HELD,
      ...Array.from({ length: r.N }, (_, i) => `s-${i + 20}`),
      ...Array.from({ length: 20 }, (_, i) => `t-${i}`),
    ];
    assert.deepEqual(r.echoTexts, sent, 'every datagram arrived, in order');
    assert.ok(r.parkedDuringHold >= r.parkLimit, `parked ${r.parkedDuringHold} while the held packet waited`);
    // Beyond the lot's parkLimit packets the rest joined JavaScript's queue behind the held packet.
    const behind = r.jsOutput.filter((t) => /^s-\d+$/.test(t) && Number(t.slice(2)) >= 20);
    assert.ok(behind.length > 0, 'some of the burst was handed to JavaScript');
    assert.ok(r.jsOutput.filter((t) => t.startsWith('t-')).length < 20, 'the flow was cached again afterwards');
    assert.equal(r.cacheStats.waiting, 0);
  });

  it('applies NAT on the cached path: translated packets with correct checksums', () => {
    const r = runFixture<{
      clientPort: number;
      targetGot: string[];
      clientGot: { text: string; port: number }[];
      jsSeen: number;
      observed: Observed[];
      stats: QueueStats;
      observerStats: QueueStats;
      cacheStats: FlowCacheStats;
      list: CtEntry[];
      drained: Row[];
      csumErrors: number;
    }>('dnat');
    const N = 60;
    assertBalanced(r.stats);
    assertBalanced(r.observerStats);
    assert.equal(r.stats.received, 4 * N, 'each packet and its echo, at OUTPUT and POSTROUTING');
    assert.equal(r.jsSeen + (r.stats.cached ?? 0), r.stats.received);
    assert.ok((r.stats.cached ?? 0) >= 3 * N, `cached ${r.stats.cached}: the flow settled after its first exchange`);
    assert.equal(r.stats.ctDropped, 0);

    const texts = Array.from({ length: N }, (_, i) => `m-${i}`);
    assert.deepEqual(r.targetGot, texts, 'every packet reached the DNAT target, in order');
    assert.deepEqual(r.clientGot.map((g) => g.text), texts.map((t) => `re:${t}`));
    assert.ok(r.clientGot.every((g) => g.port === 9), 'replies come back from the original port');
    assert.equal(r.csumErrors, 0, 'UDP InCsumErrors');

    // What INPUT saw, after nfqwall's verdicts: every packet translated, its checksums complete and right.
    assert.equal(r.observed.length, 2 * N);
    for (const o of r.observed) {
      assert.equal(o.hook, INPUT);
      const orig = !o.text.startsWith('re:');
      assert.deepEqual([o.sport, o.dport], orig ? [r.clientPort, 10] : [9, r.clientPort], o.text);
      assert.equal(o.csumNotReady, false, `${o.text}: rewritten, so checksummed in full`);
      assert.equal(o.checksumsValid, true, `${o.text}: checksums`);
    }

    assert.equal(r.list.length, 1);
    assert.deepEqual(r.list[0]!.packets, [N, N], 'the table counted every packet, cached or not');
    const hits = r.drained.reduce((n, row) => n + row[2], 0);
    assert.equal(hits, r.stats.cached);
    assert.equal(r.cacheStats.waiting, 0);
  });

  it('answers a run of hits with one batch verdict only when nothing else of the queue is unanswered', () => {
    const marked = ruleCounter('mark match 0x42');
    const r = runFixture<{
      texts: string[];
      echoTexts: string[];
      beforeFirst: QueueStats;
      afterFirst: QueueStats;
      parkedAfterFirst: number;
      duringDefer: QueueStats;
      parkedDuringDefer: number;
      stats: QueueStats;
    }>('batch');
    assertBalanced(r.stats);
    assert.equal(r.stats.dropped, 1, "only N's packet was dropped");
    assert.deepEqual(r.echoTexts, r.texts, "A's packets all arrived, in order, and N's did not");
    // Every packet of A at OUTPUT left with 0x42: the batch verdicts carried the mark.
    assert.equal(ruleCounter('mark match 0x42') - marked, r.texts.length);
    const batches = (s: QueueStats): number => s.batchVerdicts ?? 0;
    assert.ok(batches(r.afterFirst) > batches(r.beforeFirst), 'phase 1 (nothing else queued) used batch verdicts');
    // Phase 2 had runs of hits too (the lot behind A's held packet) while N's packet waited in JavaScript: none of
    // them went out as a batch verdict, which would have taken N's packet along.
    assert.equal(r.duringDefer.dropped, r.afterFirst.dropped, "N's packet was still with JavaScript when phase 2 ended");
    assert.ok(r.parkedDuringDefer - r.parkedAfterFirst >= 50, `parked in phase 2: ${r.parkedDuringDefer - r.parkedAfterFirst}`);
    assert.equal(batches(r.duringDefer), batches(r.afterFirst), 'no batch verdict while a packet was with JavaScript');
  });

  it("parks a new flow's first packets behind the one in JavaScript, unless the flow's decisions cannot be stored", () => {
    const r = runFixture<{
      texts: string[];
      echoTexts: string[];
      jsB: string[];
      jsBPost: string[];
      jsU: string[];
      afterB: FlowCacheStats;
      afterU1: FlowCacheStats;
      afterU2: FlowCacheStats;
      stats: QueueStats;
    }>('burst');
    assertBalanced(r.stats);
    assert.deepEqual(r.echoTexts, r.texts, 'every packet arrived, in order');
    // B: only b-1 went to JavaScript at OUTPUT; the 99 behind it waited for its decision (at POSTROUTING b-1 leads
    // again, and the rest wait for it there).
    assert.deepEqual(r.jsB, ['b-1'], 'at OUTPUT JavaScript saw b-1 alone');
    assert.ok(r.jsBPost.length < 10, `at POSTROUTING JavaScript saw ${r.jsBPost.length} of B's packets`);
    assert.ok(r.afterB.parked >= 99, `parked: ${r.afterB.parked}`);
    assert.equal(r.afterB.uncacheable, 0);
    // U: JavaScript decided every packet, in order; after u-1's verdict the flow is known uncacheable.
    assert.deepEqual(r.jsU, Array.from({ length: 100 }, (_, i) => `u-${i + 1}`));
    assert.equal(r.afterU1.uncacheable, 1);
    assert.equal(r.afterU2.parked, r.afterU1.parked, 'phase 3: no packet of U parked');
    assert.equal(r.afterU2.waiting, 0);
  });

  it('checks its options: a FlowCache, with a table, one table per cache', () => {
    const r = runFixture<{ errors: string[]; second: string; hasCached: boolean; plainHasCached: boolean }>('options');
    assert.deepEqual(r.errors, [
      'TypeError: Queue: options.flowCache must be a FlowCache',
      'TypeError: Queue: options.flowCache needs options.conntrack',
      'TypeError: Queue: options.flowCache must be a FlowCache',
      'TypeError: Queue: options.parkLimit needs options.flowCache',
      'RangeError: Queue: options.parkLimit must be an integer from 0 to 1048576',
    ]);
    assert.equal(r.second, 'TypeError: Queue: options.flowCache serves the queues of one ConnTable, not another');
    assert.equal(r.hasCached, true, 'QueueStats.cached with a cache');
    assert.equal(r.plainHasCached, false, 'and not without');
  });
});
