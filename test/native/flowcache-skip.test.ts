// Hook skipping in the native flow cache (native/flowcache.cc, docs/flow-cache.md "Trips"): a PREROUTING hit that also
// decides the packet's FORWARD trip, and its POSTROUTING trip unless that hook rewrites the source or its decision does
// not repeat, from the flow's stored decisions there; two mark bits tell the kernel which. INPUT is never skipped.
// Every "no skip" (and "FORWARD only") case starts from a setup that skips both and changes one thing, so each one
// fails if that thing stops mattering.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { FlowCacheDecision, FlowCacheKey, FlowCacheSkip } from '../../native/index';
import { addon } from '../../src/native';

const { FlowCache } = addon;
type Cache = InstanceType<typeof FlowCache>;

const NF_DROP = 0;
const NF_ACCEPT = 1;
const PRE = 0;
const IN = 1;
const FWD = 2;
const OUT = 3;
const POST = 4;
const bit = (h: number): number => 1 << h;
const ALL_HOOKS = bit(PRE) | bit(IN) | bit(FWD) | bit(OUT) | bit(POST);

// Two skip bits: the lower lets a packet pass FORWARD, the higher POSTROUTING.
const SKIP_MARK = 0x30000000;
const FWD_BIT = 0x10000000;
const POST_BIT = 0x20000000;
// IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED; the NAT bits are IPS_SRC_NAT (1 << 4) and IPS_DST_NAT (1 << 5).
const STATUS = 0xe;
const SRC_NAT = 1 << 4;
const DST_NAT = 1 << 5;
const IN_IF = 2;
const OUT_IF = 3;
const MARK = 0x42; // what the PREROUTING decision leaves on the packet
const LEN = 1000;
const PATH = { pre: 10, input: 11, fwd: 20, post: 40 };
// native/flowcache.cc kTransitMs: a flow's in-transit counts lapse this long after they last left zero.
const TRANSIT_MS = 50;
// A sequence of lookups that took this long may have seen its counts lapse (the native clock has 1 ms steps).
const TRANSIT_SAFE_MS = 40;

/** A hook's stored decision, the key values it was stored with, or 'seen' (a packet passed and nothing was stored). */
type Stored = { key: Partial<FlowCacheKey>; decision: FlowCacheDecision } | 'seen' | 'absent';

interface Setup {
  skip: FlowCacheSkip;
  /** The flow's packet at PREROUTING (hook and key.skip aside). */
  pre: Partial<FlowCacheKey>;
  preDecision: FlowCacheDecision;
  fwd: Stored;
  post: Stored;
  input: Stored;
  /** key.skip of the probing packet (undefined: not given). */
  probeSkip: boolean | undefined;
  /** setSkip() again after teaching (the first packets passed the hooks `skip` queues). */
  then?: FlowCacheSkip;
}

function flowKey(hook: number, over: Partial<FlowCacheKey> = {}): FlowCacheKey {
  return {
    handle: 7,
    gen: 3,
    hook,
    dir: 0,
    status: STATUS,
    mark: 0,
    connmark: 5,
    zone: 0,
    inIf: 0,
    outIf: 0,
    physInIf: 0,
    physOutIf: 0,
    ...over,
  };
}

function accept(pathId: number, over: Partial<FlowCacheDecision> = {}): FlowCacheDecision {
  return { verdict: NF_ACCEPT, mark: 0, setMark: false, pathId, ...over };
}

const ON: FlowCacheSkip = { mark: SKIP_MARK, allowed: true, maxLen: 1500, queuedHooks: bit(PRE) | bit(FWD) | bit(POST) };
const INPUT_STORED: Stored = { key: { mark: MARK, inIf: IN_IF }, decision: accept(PATH.input) };

/** A forwarded flow whose FORWARD and POSTROUTING decisions are stored: its next PREROUTING hit skips both. */
function forwardSetup(over: Partial<Setup> = {}): Setup {
  return {
    skip: ON,
    pre: { inIf: IN_IF },
    preDecision: accept(PATH.pre, { mark: MARK, setMark: true }),
    fwd: { key: { mark: MARK, inIf: IN_IF, outIf: OUT_IF }, decision: accept(PATH.fwd) },
    post: { key: { mark: MARK, outIf: OUT_IF }, decision: accept(PATH.post) },
    input: 'absent',
    probeSkip: true,
    ...over,
  };
}

/** A flow to the host whose INPUT decision is stored, every hook queued: INPUT is never skipped. */
function localSetup(over: Partial<Setup> = {}): Setup {
  return forwardSetup({ skip: { ...ON, queuedHooks: ALL_HOOKS }, fwd: 'absent', post: 'absent', input: INPUT_STORED, ...over });
}

/** The PREROUTING key of the setup's flow, as a packet with key.skip `skip`. */
function preKey(s: Setup, skip: boolean | undefined = undefined, over: Partial<FlowCacheKey> = {}): FlowCacheKey {
  const k = flowKey(PRE, { ...s.pre, ...over });
  if (skip !== undefined) k.skip = skip;
  return k;
}

/** The key a later hook's decision was stored with (the flow's direction and status unless the setup changes them). */
function laterKey(s: Setup, hook: number, stored: Stored): FlowCacheKey {
  const own = typeof stored === 'object' ? stored.key : {};
  return flowKey(hook, { dir: s.pre.dir ?? 0, status: s.pre.status ?? STATUS, ...own });
}

/** One packet at `hook` that misses, and what JavaScript decided for it (undefined: nothing stored). */
function teach(c: Cache, k: FlowCacheKey, d: FlowCacheDecision | undefined): void {
  assert.equal(c.lookup(k, 64), undefined, `hook ${k.hook}: nothing stored yet`);
  assert.equal(c.settle(k, d, c.generation()), d !== undefined, `hook ${k.hook}: stored`);
}

function teachLater(c: Cache, s: Setup, hook: number, stored: Stored): void {
  if (stored === 'absent') return;
  teach(c, laterKey(s, hook, stored), stored === 'seen' ? undefined : stored.decision);
}

/**
 * A cache that has seen the flow's first packets pass their hooks in kernel order (PREROUTING, then FORWARD and
 * POSTROUTING, then INPUT) and stored their decisions, with nothing left in transit.
 */
function build(s: Setup): Cache {
  const c = new FlowCache();
  c.setSkip(s.skip);
  teach(c, preKey(s), s.preDecision);
  teachLater(c, s, FWD, s.fwd);
  teachLater(c, s, POST, s.post);
  teachLater(c, s, IN, s.input);
  assert.equal(c.stats().waiting, 0);
  assert.deepEqual(rows(c.drain()), [], 'teaching misses: nothing charged');
  if (s.then) c.setSkip(s.then);
  return c;
}

function rows(d: Float64Array): number[][] {
  assert.equal(d.length % 4, 0);
  const out: number[][] = [];
  for (let i = 0; i < d.length; i += 4) out.push([d[i]!, d[i + 1]!, d[i + 2]!, d[i + 3]!]);
  return out.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
}

/** What a PREROUTING hit that skipped `hooks` returns: its decision, the mark carrying each skipped hook's bit. */
function skipping(pre: FlowCacheDecision, hooks: number[], mark = MARK): FlowCacheDecision {
  let skipped = 0;
  let bits = 0;
  for (const h of hooks) {
    assert.ok(h === FWD || h === POST, `hook ${h} is never skipped`);
    skipped |= bit(h);
    bits |= h === FWD ? FWD_BIT : POST_BIT;
  }
  return { ...pre, mark: (mark | bits) >>> 0, setMark: true, skipped };
}

const PATH_OF: Record<number, number> = { [FWD]: PATH.fwd, [POST]: PATH.post };

/**
 * The setup's next PREROUTING packet skips `hooks` (FORWARD, POSTROUTING or both): its decision says which, its mark
 * carries their bits (and nothing else but what PREROUTING leaves), each is counted and charged with the packet.
 */
function assertSkips(s: Setup, hooks: number[]): void {
  const c = build(s);
  const g = c.generation();
  const want = skipping(s.preDecision, hooks);
  const d = c.lookup(preKey(s, s.probeSkip), LEN);
  assert.deepEqual(d, want);
  assert.equal(c.stats().tripsSkipped, hooks.length);
  const paths = [s.preDecision.pathId, ...hooks.map((h) => PATH_OF[h]!)];
  assert.deepEqual(
    rows(c.drain()),
    paths.map((p) => [g, p, 1, LEN]).sort((a, b) => a[1]! - b[1]!),
    'the skipped hooks are charged with the packet, and only they',
  );
  // A second packet skips the same hooks: nothing it skips has a packet of the flow before it (a FORWARD-only skip
  // leaves its packet before POSTROUTING, which the second one does not skip either).
  assert.deepEqual(c.lookup(preKey(s, s.probeSkip), LEN), want, 'the next packet');
  assert.equal(c.stats().tripsSkipped, 2 * hooks.length);
}

/** The setup's next PREROUTING packet hits with the PREROUTING decision alone (and no `skipped` key). */
function assertNoSkip(s: Setup): void {
  const c = build(s);
  const g = c.generation();
  const d = c.lookup(preKey(s, s.probeSkip), LEN);
  assert.deepEqual(d, s.preDecision, 'a hit, for this hook only');
  assert.equal(c.stats().tripsSkipped, 0);
  assert.deepEqual(rows(c.drain()), [[g, s.preDecision.pathId, 1, LEN]], 'only PREROUTING is charged');
}

function withKey(stored: Stored, key: Partial<FlowCacheKey>): Stored {
  assert.ok(typeof stored === 'object');
  return { key: { ...stored.key, ...key }, decision: stored.decision };
}

function withDecision(stored: Stored, d: Partial<FlowCacheDecision>): Stored {
  assert.ok(typeof stored === 'object');
  return { key: stored.key, decision: { ...stored.decision, ...d } };
}

/**
 * Runs a sequence of lookups whose assertions hold only while the flow's in-transit counts have not lapsed. A run that
 * failed after TRANSIT_SAFE_MS (the process was descheduled: the machine is shared) says nothing and is run again; a
 * quicker failure is a real one.
 */
function beforeLapse(run: () => void): void {
  for (let attempt = 1; ; attempt++) {
    const t0 = performance.now();
    try {
      run();
      return;
    } catch (err) {
      if (performance.now() - t0 < TRANSIT_SAFE_MS || attempt === 5) throw err;
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('native FlowCache: hook skipping (docs/flow-cache.md, Trips)', () => {
  describe('forward path', () => {
    const base = forwardSetup();
    const BOTH = [FWD, POST];

    it('a PREROUTING hit decides FORWARD and POSTROUTING when both are stored and queued', () => {
      assertSkips(base, BOTH);
    });

    const postOnly = { ...ON, queuedHooks: bit(PRE) | bit(POST) };
    const skips: [string, Setup, number[]][] = [
      ['FORWARD stored a decision that sets the mark it found', forwardSetup({ fwd: withDecision(base.fwd, { setMark: true, mark: MARK }) }), BOTH],
      ['PREROUTING leaves the mark the packet came with', forwardSetup({ pre: { inIf: IN_IF, mark: MARK }, preDecision: accept(PATH.pre) }), BOTH],
      ['the original direction has DST_NAT (its source is not rewritten)', forwardSetup({ pre: { inIf: IN_IF, status: STATUS | DST_NAT } }), BOTH],
      ['the reply direction has SRC_NAT (its source is not rewritten)', forwardSetup({ pre: { inIf: IN_IF, dir: 1, status: STATUS | SRC_NAT } }), BOTH],
      ['INPUT and OUTPUT are queued too but INPUT has no decision for the flow', forwardSetup({ skip: { ...ON, queuedHooks: ALL_HOOKS } }), BOTH],
      ['its first packets passed while skipping was not allowed yet (the daemon starts so)', forwardSetup({ skip: { ...ON, allowed: false }, then: ON }), BOTH],
      ['its first packets passed with no skip mark set', forwardSetup({ skip: { ...ON, mark: 0, allowed: false }, then: ON }), BOTH],
      // FORWARD alone: POSTROUTING rewrites the source, its decision does not repeat, or it is not queued.
      ['the original direction has SRC_NAT (FORWARD only)', forwardSetup({ pre: { inIf: IN_IF, status: STATUS | SRC_NAT } }), [FWD]],
      ['the reply direction has DST_NAT (FORWARD only)', forwardSetup({ pre: { inIf: IN_IF, dir: 1, status: STATUS | DST_NAT } }), [FWD]],
      ['both directions rewritten, original direction (FORWARD only)', forwardSetup({ pre: { inIf: IN_IF, status: STATUS | SRC_NAT | DST_NAT } }), [FWD]],
      ['POSTROUTING passed but stored no decision (FORWARD only)', forwardSetup({ post: 'seen' }), [FWD]],
      ['POSTROUTING was never seen (FORWARD only)', forwardSetup({ post: 'absent' }), [FWD]],
      ['the POSTROUTING decision drops (FORWARD only)', forwardSetup({ post: withDecision(base.post, { verdict: NF_DROP }) }), [FWD]],
      ['the POSTROUTING decision sets another mark (FORWARD only)', forwardSetup({ post: withDecision(base.post, { setMark: true, mark: 0x43 }) }), [FWD]],
      ["POSTROUTING's outIf differs from FORWARD's (FORWARD only)", forwardSetup({ post: withKey(base.post, { outIf: 4 }) }), [FWD]],
      ['POSTROUTING was stored with another entry mark (FORWARD only)', forwardSetup({ post: withKey(base.post, { mark: 0x41 }) }), [FWD]],
      ['POSTROUTING was stored with another connmark (FORWARD only)', forwardSetup({ post: withKey(base.post, { connmark: 6 }) }), [FWD]],
      ['POSTROUTING was stored with a bridge port (FORWARD only)', forwardSetup({ post: withKey(base.post, { physOutIf: 9 }) }), [FWD]],
      ['POSTROUTING not queued (FORWARD only)', forwardSetup({ skip: { ...ON, queuedHooks: bit(PRE) | bit(FWD) }, post: 'absent' }), [FWD]],
      ['POSTROUTING no longer queued: its stored decision, which repeats, is not used (FORWARD only)', forwardSetup({ then: { ...ON, queuedHooks: bit(PRE) | bit(FWD) } }), [FWD]],
      ['SNAT, and a PREROUTING decision setting a skip bit of its own: the POSTROUTING bit is not left on (FORWARD only)', forwardSetup({ pre: { inIf: IN_IF, status: STATUS | SRC_NAT }, preDecision: accept(PATH.pre, { mark: MARK | POST_BIT, setMark: true }) }), [FWD]],
      // POSTROUTING alone: FORWARD is not queued.
      ['FORWARD not queued (POSTROUTING only)', forwardSetup({ skip: postOnly, fwd: 'absent' }), [POST]],
      ['FORWARD no longer queued: its stored decision (a drop) is not looked at (POSTROUTING only)', forwardSetup({ fwd: withDecision(base.fwd, { verdict: NF_DROP }), then: postOnly }), [POST]],
      ['FORWARD not queued: POSTROUTING is stored with any outIf (POSTROUTING only)', forwardSetup({ skip: postOnly, fwd: 'absent', post: withKey(base.post, { outIf: 4 }) }), [POST]],
      ['FORWARD not queued, the reply direction has SRC_NAT (POSTROUTING only)', forwardSetup({ skip: postOnly, fwd: 'absent', pre: { inIf: IN_IF, dir: 1, status: STATUS | SRC_NAT } }), [POST]],
      ['FORWARD not queued, INPUT queued with no decision for the flow (POSTROUTING only)', forwardSetup({ skip: { ...postOnly, queuedHooks: bit(PRE) | bit(IN) | bit(POST) }, fwd: 'absent' }), [POST]],
    ];
    for (const [what, s, hooks] of skips) {
      it(`skips when ${what}`, () => assertSkips(s, hooks));
    }

    const noSkip: [string, Setup][] = [
      ['setSkip mark is 0 (no bits installed)', forwardSetup({ skip: { ...ON, mark: 0 } })],
      ['setSkip allowed is false', forwardSetup({ skip: { ...ON, allowed: false } })],
      ['skipping is no longer allowed (a routing rule reads the mark)', forwardSetup({ then: { ...ON, allowed: false } })],
      ['key.skip is false', forwardSetup({ probeSkip: false })],
      ['key.skip is not given', forwardSetup({ probeSkip: undefined })],
      ['the PREROUTING decision drops', forwardSetup({ preDecision: accept(PATH.pre, { verdict: NF_DROP, mark: MARK, setMark: true }) })],
      // FORWARD is queued and its decision does not repeat: POSTROUTING's, which does, is not enough.
      ['FORWARD passed but stored no decision', forwardSetup({ fwd: 'seen' })],
      ['the FORWARD decision drops', forwardSetup({ fwd: withDecision(base.fwd, { verdict: NF_DROP }) })],
      ['the FORWARD decision sets another mark', forwardSetup({ fwd: withDecision(base.fwd, { setMark: true, mark: 0x43 }) })],
      ['FORWARD was stored with another inIf', forwardSetup({ fwd: withKey(base.fwd, { inIf: 5 }) })],
      ['FORWARD was stored with another entry mark', forwardSetup({ fwd: withKey(base.fwd, { mark: 0x41 }) })],
      ['FORWARD was stored with another status', forwardSetup({ fwd: withKey(base.fwd, { status: STATUS | 0x40 }) })],
      ['FORWARD was stored with another connmark', forwardSetup({ fwd: withKey(base.fwd, { connmark: 6 }) })],
      ['FORWARD was stored with a bridge port', forwardSetup({ fwd: withKey(base.fwd, { physInIf: 9 }) })],
      ['FORWARD does not repeat and POSTROUTING rewrites the source', forwardSetup({ fwd: 'seen', pre: { inIf: IN_IF, status: STATUS | SRC_NAT } })],
      ['POSTROUTING not queued and FORWARD passed without a stored decision', forwardSetup({ skip: { ...ON, queuedHooks: bit(PRE) | bit(FWD) }, post: 'absent', fwd: 'seen' })],
      // FORWARD not queued and POSTROUTING cannot be skipped: nothing left to skip.
      ['FORWARD not queued and the original direction has SRC_NAT', forwardSetup({ skip: postOnly, fwd: 'absent', pre: { inIf: IN_IF, status: STATUS | SRC_NAT } })],
      ['FORWARD not queued and POSTROUTING stored no decision', forwardSetup({ skip: postOnly, fwd: 'absent', post: 'seen' })],
      ['FORWARD not queued and the POSTROUTING decision drops', forwardSetup({ skip: postOnly, fwd: 'absent', post: withDecision(base.post, { verdict: NF_DROP }) })],
      ['neither FORWARD nor POSTROUTING is queued', forwardSetup({ skip: { ...ON, queuedHooks: bit(PRE) }, fwd: 'absent', post: 'absent' })],
      // A decision at INPUT as well means the flow's route changed (stale routing): neither way is trusted.
      ['INPUT has a stored decision for the flow too', forwardSetup({ skip: { ...ON, queuedHooks: ALL_HOOKS }, input: INPUT_STORED })],
      ['INPUT has a stored decision that drops', forwardSetup({ skip: { ...ON, queuedHooks: ALL_HOOKS }, input: withDecision(INPUT_STORED, { verdict: NF_DROP }) })],
      ['INPUT has a stored decision made with other key values', forwardSetup({ skip: { ...ON, queuedHooks: ALL_HOOKS }, input: withKey(INPUT_STORED, { inIf: 5, mark: 0 }) })],
      ['INPUT has a stored decision and is no longer queued', forwardSetup({ skip: { ...ON, queuedHooks: ALL_HOOKS }, input: INPUT_STORED, then: ON })],
      ['INPUT has a stored decision, and only FORWARD would be skipped (SRC_NAT)', forwardSetup({ skip: { ...ON, queuedHooks: ALL_HOOKS }, input: INPUT_STORED, pre: { inIf: IN_IF, status: STATUS | SRC_NAT } })],
      ['INPUT has a stored decision, and only POSTROUTING would be skipped (FORWARD not queued)', forwardSetup({ skip: { ...ON, queuedHooks: bit(PRE) | bit(IN) | bit(POST) }, fwd: 'absent', input: INPUT_STORED })],
    ];
    for (const [what, s] of noSkip) {
      it(`does not skip when ${what}`, () => assertNoSkip(s));
    }

    it('SNAT in the original direction and DNAT in the reply skip FORWARD only: its bit alone, its path alone', () => {
      for (const pre of [{ inIf: IN_IF, status: STATUS | SRC_NAT }, { inIf: IN_IF, dir: 1, status: STATUS | DST_NAT }]) {
        const s = forwardSetup({ pre });
        const c = build(s);
        const g = c.generation();
        const d = c.lookup(preKey(s, true), LEN);
        assert.equal(d?.skipped, 1 << 2, JSON.stringify(pre));
        assert.equal(d?.mark, MARK | FWD_BIT);
        assert.equal((d?.mark ?? 0) & POST_BIT, 0, 'the kernel must not let it pass POSTROUTING');
        assert.equal(d?.setMark, true);
        assert.equal(c.stats().tripsSkipped, 1);
        assert.deepEqual(rows(c.drain()), [[g, PATH.pre, 1, LEN], [g, PATH.fwd, 1, LEN]], 'POSTROUTING is not charged');
      }
    });

    it('the skip bits follow the mark, wherever its two bits are', () => {
      // Clear of MARK (0x42), which the flow's stored decisions keep.
      for (const mark of [0x5, 0x80000001, 0xc0000000, 0x10100]) {
        const low = (mark & -mark) >>> 0;
        const high = (mark - low) >>> 0;
        const both = build(forwardSetup({ skip: { ...ON, mark } }));
        assert.deepEqual(both.lookup(preKey(base, true), LEN), { ...base.preDecision, mark: (MARK | low | high) >>> 0, setMark: true, skipped: bit(FWD) | bit(POST) }, mark.toString(16));
        const snat = forwardSetup({ skip: { ...ON, mark }, pre: { inIf: IN_IF, status: STATUS | SRC_NAT } });
        assert.equal(build(snat).lookup(preKey(snat, true), LEN)?.mark, (MARK | low) >>> 0, `${mark.toString(16)}: FORWARD only`);
        const post = forwardSetup({ skip: { ...ON, mark, queuedHooks: bit(PRE) | bit(POST) }, fwd: 'absent' });
        assert.equal(build(post).lookup(preKey(post, true), LEN)?.mark, (MARK | high) >>> 0, `${mark.toString(16)}: POSTROUTING only`);
      }
    });

    it('a PREROUTING decision that sets both skip bits itself: they are cleared, then those of the skipped hooks set', () => {
      const s = forwardSetup({ preDecision: accept(PATH.pre, { mark: MARK | SKIP_MARK, setMark: true }) });
      assert.deepEqual(build(s).lookup(preKey(s, true), LEN), { ...s.preDecision, mark: MARK | FWD_BIT | POST_BIT, skipped: bit(FWD) | bit(POST) });
      const snat = forwardSetup({ pre: { inIf: IN_IF, status: STATUS | SRC_NAT }, preDecision: s.preDecision });
      assert.deepEqual(build(snat).lookup(preKey(snat, true), LEN), { ...s.preDecision, mark: MARK | FWD_BIT, skipped: bit(FWD) });
    });

    it('a hit at another hook never skips, whatever key.skip says', () => {
      const c = build(base);
      assert.deepEqual(c.lookup({ ...laterKey(base, FWD, base.fwd), skip: true }, LEN), accept(PATH.fwd));
      assert.deepEqual(c.lookup({ ...laterKey(base, POST, base.post), skip: true }, LEN), accept(PATH.post));
      assert.equal(c.stats().tripsSkipped, 0);
    });
  });

  describe('INPUT is never skipped', () => {
    const base = localSetup();

    // Each would skip INPUT under the old local path; now the hit decides PREROUTING alone.
    const noSkip: [string, Setup][] = [
      ['INPUT is stored, accepts and is queued (every hook queued)', base],
      ['only PREROUTING and INPUT are queued', localSetup({ skip: { ...ON, queuedHooks: bit(PRE) | bit(IN) } })],
      ['only PREROUTING is queued', localSetup({ skip: { ...ON, queuedHooks: bit(PRE) }, input: 'absent' })],
    ];
    for (const [what, s] of noSkip) {
      it(`does not skip when ${what}`, () => assertNoSkip(s));
    }

    it('the flow skips once its INPUT decision is gone (a new generation) and FORWARD and POSTROUTING are stored', () => {
      const s = forwardSetup({ skip: { ...ON, queuedHooks: ALL_HOOKS }, input: INPUT_STORED });
      const c = build(s);
      assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'A: INPUT stored, no skip');
      c.invalidate();
      const fresh = forwardSetup({ skip: { ...ON, queuedHooks: ALL_HOOKS } });
      teach(c, preKey(fresh), fresh.preDecision); // B
      teachLater(c, fresh, FWD, fresh.fwd); // A
      teachLater(c, fresh, POST, fresh.post); // A
      c.lookup(laterKey(fresh, FWD, fresh.fwd), LEN); // B
      c.lookup(laterKey(fresh, POST, fresh.post), LEN); // B
      assert.deepEqual(c.lookup(preKey(fresh, true), LEN), skipping(fresh.preDecision, [FWD, POST]), 'C: the same cache skips without the INPUT decision');
    });
  });

  describe('packets in transit between hooks', () => {
    it('waits for an earlier packet sent on from PREROUTING until FORWARD sees it (POSTROUTING not queued)', () => {
      const s = forwardSetup({ skip: { ...ON, queuedHooks: bit(PRE) | bit(FWD) }, post: 'absent' });
      const fwdKey = laterKey(s, FWD, s.fwd);
      beforeLapse(() => {
        const c = build(s);
        // A misses at PREROUTING (another entry mark), goes through JavaScript and on toward FORWARD.
        teach(c, preKey(s, undefined, { mark: 1 }), undefined);
        // B hits while A has not reached FORWARD: skipping would let B overtake A. lookup() never parks, so B is an
        // ordinary hit that takes its trips.
        assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'B');
        assert.equal(c.lookup(fwdKey, LEN)?.skipped, undefined, 'A at FORWARD');
        assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'C: B is still on its way');
        assert.equal(c.lookup(fwdKey, LEN)?.skipped, undefined, 'B at FORWARD');
        assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'D: C is still on its way');
        assert.equal(c.lookup(fwdKey, LEN)?.skipped, undefined, 'C at FORWARD');
        assert.equal(c.lookup(fwdKey, LEN)?.skipped, undefined, 'D at FORWARD');
        assert.equal(c.stats().tripsSkipped, 0);
        assert.equal(c.stats().parked, 0, 'lookup() never parks');
        assert.deepEqual(c.lookup(preKey(s, true), LEN), skipping(s.preDecision, [FWD]), 'E: nothing in transit');
        assert.equal(c.stats().tripsSkipped, 1);
      });
    });

    it('with POSTROUTING queued, waits until the earlier packets reached POSTROUTING', () => {
      const s = forwardSetup();
      const fwdKey = laterKey(s, FWD, s.fwd);
      const postKey = laterKey(s, POST, s.post);
      beforeLapse(() => {
        const c = build(s);
        teach(c, preKey(s, undefined, { mark: 1 }), undefined); // A
        assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'B');
        c.lookup(fwdKey, LEN); // A
        c.lookup(fwdKey, LEN); // B
        // Nothing before FORWARD, but C would skip POSTROUTING too: held entirely.
        assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'C: A and B are between FORWARD and POSTROUTING');
        c.lookup(postKey, LEN); // A
        c.lookup(postKey, LEN); // B
        c.lookup(fwdKey, LEN); // C
        assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'D: C is between FORWARD and POSTROUTING');
        c.lookup(postKey, LEN); // C
        c.lookup(fwdKey, LEN); // D
        c.lookup(postKey, LEN); // D
        assert.equal(c.stats().tripsSkipped, 0);
        assert.deepEqual(c.lookup(preKey(s, true), LEN), skipping(s.preDecision, [FWD, POST]), 'E: nothing in transit');
        assert.equal(c.stats().tripsSkipped, 2);
      });
    });

    it('a FORWARD-only skip waits for packets before FORWARD, not for those between FORWARD and POSTROUTING (SNAT)', () => {
      const s = forwardSetup({ pre: { inIf: IN_IF, status: STATUS | SRC_NAT } });
      const fwdKey = laterKey(s, FWD, s.fwd);
      const postKey = laterKey(s, POST, s.post);
      beforeLapse(() => {
        const c = build(s);
        teach(c, preKey(s, undefined, { mark: 1 }), undefined); // A
        assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'B: A is before FORWARD');
        c.lookup(fwdKey, LEN); // A
        assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'C: B is before FORWARD');
        c.lookup(fwdKey, LEN); // B
        c.lookup(fwdKey, LEN); // C
        // A, B and C are between FORWARD and POSTROUTING: D reaches POSTROUTING after them, by its own trip.
        assert.deepEqual(c.lookup(preKey(s, true), LEN), skipping(s.preDecision, [FWD]), 'D');
        assert.deepEqual(c.lookup(preKey(s, true), LEN), skipping(s.preDecision, [FWD]), 'E');
        for (let i = 0; i < 5; i++) assert.deepEqual(c.lookup(postKey, LEN), accept(PATH.post), `POSTROUTING ${i}`);
        assert.equal(c.stats().tripsSkipped, 2);
      });
    });

    it('after a FORWARD-only skip, a later packet may skip FORWARD again, but not POSTROUTING until the skipped one reached it', () => {
      // POSTROUTING has seen the flow but stored nothing yet: A skips FORWARD only.
      const s = forwardSetup({ post: 'seen' });
      const stored = forwardSetup().post;
      assert.ok(typeof stored === 'object');
      const fwdKey = laterKey(s, FWD, s.fwd);
      const postKey = laterKey(s, POST, stored);
      const onlyForward = skipping(s.preDecision, [FWD]);
      beforeLapse(() => {
        const c = build(s);
        const g = c.generation();
        assert.deepEqual(c.lookup(preKey(s, true), LEN), onlyForward, 'A');
        assert.deepEqual(c.lookup(preKey(s, true), LEN), onlyForward, 'B: nothing before FORWARD, so B skips it too');
        assert.equal(c.stats().tripsSkipped, 2);
        assert.deepEqual(rows(c.drain()), [[g, PATH.pre, 2, 2 * LEN], [g, PATH.fwd, 2, 2 * LEN]]);
        // A reaches POSTROUTING, misses, and JavaScript stores the decision there: it now repeats.
        teach(c, postKey, stored.decision);
        // C could skip both, but B is still before POSTROUTING: held (lookup() never parks: an ordinary hit).
        assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'C: B is before POSTROUTING');
        assert.deepEqual(c.lookup(postKey, LEN), accept(PATH.post), 'B at POSTROUTING');
        // C took its FORWARD trip: D waits for it.
        assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'D: C is before FORWARD');
        assert.deepEqual(c.lookup(fwdKey, LEN), accept(PATH.fwd), 'C at FORWARD');
        assert.deepEqual(c.lookup(fwdKey, LEN), accept(PATH.fwd), 'D at FORWARD');
        // Nothing before FORWARD, C and D before POSTROUTING: E would overtake them there.
        assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'E: C and D are before POSTROUTING');
        assert.deepEqual(c.lookup(postKey, LEN), accept(PATH.post), 'C at POSTROUTING');
        assert.deepEqual(c.lookup(postKey, LEN), accept(PATH.post), 'D at POSTROUTING');
        assert.deepEqual(c.lookup(fwdKey, LEN), accept(PATH.fwd), 'E at FORWARD');
        assert.deepEqual(c.lookup(postKey, LEN), accept(PATH.post), 'E at POSTROUTING');
        assert.equal(c.stats().tripsSkipped, 2);
        assert.equal(c.stats().parked, 0);
        assert.deepEqual(c.lookup(preKey(s, true), LEN), skipping(s.preDecision, [FWD, POST]), 'F: nothing in transit');
        assert.equal(c.stats().tripsSkipped, 4);
      });
    });

    it('a FORWARD-only skip with POSTROUTING not queued leaves nothing in transit', () => {
      const s = forwardSetup({ skip: { ...ON, queuedHooks: bit(PRE) | bit(FWD) }, post: 'absent' });
      const c = build(s);
      for (let i = 0; i < 3; i++) assert.deepEqual(c.lookup(preKey(s, true), LEN), skipping(s.preDecision, [FWD]), `packet ${i}`);
    });

    it('FORWARD not queued: a POSTROUTING skip waits for an earlier packet before POSTROUTING', () => {
      const s = forwardSetup({ skip: { ...ON, queuedHooks: bit(PRE) | bit(POST) }, fwd: 'absent' });
      const postKey = laterKey(s, POST, s.post);
      beforeLapse(() => {
        const c = build(s);
        teach(c, preKey(s, undefined, { mark: 1 }), undefined); // A, on its way to POSTROUTING
        assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'B: A is before POSTROUTING');
        c.lookup(postKey, LEN); // A
        assert.deepEqual(c.lookup(preKey(s, true), LEN), s.preDecision, 'C: B is before POSTROUTING');
        c.lookup(postKey, LEN); // B
        c.lookup(postKey, LEN); // C
        assert.equal(c.stats().tripsSkipped, 0);
        assert.deepEqual(c.lookup(preKey(s, true), LEN), skipping(s.preDecision, [POST]), 'D: nothing in transit');
        assert.deepEqual(c.lookup(preKey(s, true), LEN), skipping(s.preDecision, [POST]), 'E: D left nothing in transit');
        assert.equal(c.stats().tripsSkipped, 2);
      });
    });

    it('a packet of the reply direction in transit does not hold the original direction back', () => {
      const s = forwardSetup();
      const c = build(s);
      teach(c, preKey(s, undefined, { dir: 1 }), undefined);
      assert.deepEqual(c.lookup(preKey(s, true), LEN), skipping(s.preDecision, [FWD, POST]));
    });

    it(`a count left by a packet dropped on the way lapses after ${TRANSIT_MS} ms`, async () => {
      const s = forwardSetup();
      let c = build(s);
      beforeLapse(() => {
        c = build(s);
        teach(c, preKey(s, undefined, { mark: 1 }), undefined); // never seen at FORWARD: the kernel dropped it
        assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, undefined);
      });
      // The packet just probed also went on toward FORWARD (and is never seen there either).
      await sleep(2 * TRANSIT_MS + 20);
      assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, bit(FWD) | bit(POST));
    });

    it(`a FORWARD-only skipped packet dropped before POSTROUTING holds the flow back no longer than ${TRANSIT_MS} ms`, async () => {
      const s = forwardSetup({ post: 'seen' });
      const stored = forwardSetup().post;
      assert.ok(typeof stored === 'object');
      const postKey = laterKey(s, POST, stored);
      let c = build(s);
      beforeLapse(() => {
        c = build(s);
        assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, bit(FWD), 'A, never seen at POSTROUTING');
        assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, bit(FWD), 'B');
        teach(c, postKey, stored.decision); // B
        assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, undefined, 'C: A is still counted before POSTROUTING');
      });
      // C went on toward FORWARD and, like A, is never seen again.
      await sleep(2 * TRANSIT_MS + 20);
      assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, bit(FWD) | bit(POST));
    });

    describe('barriers: a count left by a dropped packet cleared without waiting for it to lapse', () => {
      // The queue begins a barrier after its verdicts went out and ends it when the kernel's acknowledgement, queued
      // behind every packet those verdicts put back in the queue, comes in: what a flow still counts then was dropped.
      it('clears the count of a flow held back since the last barrier, and the flow skips again', () => {
        const s = forwardSetup();
        beforeLapse(() => {
          const c = build(s);
          assert.equal(c.beginBarrier(), 0, 'nothing held back: no barrier');
          teach(c, preKey(s, undefined, { mark: 1 }), undefined); // A, never seen at FORWARD: the kernel dropped it
          assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, undefined, 'B: held back by A (and dropped too)');
          const b = c.beginBarrier();
          assert.ok(b > 0);
          assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, undefined, 'the barrier has not come back yet');
          c.endBarrier(b);
          assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, undefined, 'C, raised the count after the barrier began: held');
          const b2 = c.beginBarrier();
          assert.ok(b2 > b);
          c.endBarrier(b2);
          assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, bit(FWD) | bit(POST), 'D: nothing in transit');
          assert.equal(c.stats().transitsDropped, 1);
          assert.equal(c.stats().barriers, 2);
        });
      });

      it('keeps the count of a packet sent on from FORWARD after the barrier began: it may be behind it', () => {
        const s = forwardSetup();
        const fwdKey = laterKey(s, FWD, s.fwd);
        const postKey = laterKey(s, POST, s.post);
        beforeLapse(() => {
          const c = build(s);
          teach(c, preKey(s, undefined, { mark: 1 }), undefined); // A
          assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, undefined, 'B: held back by A');
          const b = c.beginBarrier();
          c.lookup(fwdKey, LEN); // A reaches FORWARD before the acknowledgement, and goes on toward POSTROUTING
          c.endBarrier(b);
          assert.equal(c.stats().transitsDropped, 0);
          assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, undefined, 'C: A is before POSTROUTING');
          c.lookup(postKey, LEN); // A
          const b2 = c.beginBarrier();
          c.endBarrier(b2); // B and C were dropped
          assert.equal(c.stats().transitsDropped, 1);
          assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, bit(FWD) | bit(POST), 'D: nothing in transit');
        });
      });

      for (const when of ['waits in JavaScript when the acknowledgement comes', 'is verdicted after the barrier began'] as const) {
        it(`keeps the count while a packet of the flow ${when}: its verdict may put it behind the barrier`, () => {
          const s = forwardSetup();
          const other = preKey(s, undefined, { mark: 2 }); // no decision stored for it: JavaScript decides
          beforeLapse(() => {
            const c = build(s);
            teach(c, preKey(s, undefined, { mark: 1 }), undefined); // A, dropped
            assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, undefined, 'B: held back by A');
            assert.equal(c.lookup(other, LEN), undefined, 'C goes to JavaScript');
            const b = c.beginBarrier();
            if (when === 'is verdicted after the barrier began') assert.equal(c.settle(other, undefined, c.generation()), false);
            c.endBarrier(b);
            assert.equal(c.stats().transitsDropped, 0);
            if (when === 'waits in JavaScript when the acknowledgement comes') assert.equal(c.settle(other, undefined, c.generation()), false);
            assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, undefined, 'D: held back');
            const b2 = c.beginBarrier();
            c.endBarrier(b2);
            assert.equal(c.stats().transitsDropped, 1, 'C was verdicted before this barrier began');
            assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, bit(FWD) | bit(POST), 'E: nothing in transit');
          });
        });
      }
    });

    it(`a busy flow, always one packet between hooks, does not skip past ${TRANSIT_MS} ms while they keep arriving, and skips once they are through`, async function () {
      this.timeout(10_000);
      const s = forwardSetup();
      const fwdKey = laterKey(s, FWD, s.fwd);
      const postKey = laterKey(s, POST, s.post);
      const c = build(s);
      const t0 = performance.now();
      teach(c, preKey(s, undefined, { mark: 1 }), undefined); // the counts leave zero
      // Every few ms a packet hits at PREROUTING, and the one before it reaches FORWARD and POSTROUTING: one is always
      // between hooks, and each arrival is a sign of life, so the counts never lapse. (The queue would hold the new
      // packet back in its lot; lookup() through JavaScript never parks, so it takes its trips.)
      let between = 1;
      let steps = 0;
      while (performance.now() - t0 < 3 * TRANSIT_MS) {
        const d = c.lookup(preKey(s, true), LEN);
        assert.deepEqual(d, s.preDecision, `step ${steps}, ${(performance.now() - t0).toFixed(1)} ms`);
        between++;
        c.lookup(fwdKey, LEN);
        c.lookup(postKey, LEN);
        between--;
        steps++;
        await sleep(4);
      }
      assert.ok(steps >= 5, `${steps} steps`);
      // The packets that took their trips reach their hooks, and from then on the flow keeps skipping.
      for (; between > 0; between--) {
        c.lookup(fwdKey, LEN);
        c.lookup(postKey, LEN);
      }
      const skipped = c.stats().tripsSkipped;
      for (let i = 0; i < 5; i++) assert.equal(c.lookup(preKey(s, true), LEN)?.skipped, bit(FWD) | bit(POST), `packet ${i} after the last arrival`);
      assert.equal(c.stats().tripsSkipped, skipped + 10);
    });
  });

  it('setSkip and key.skip refuse bad values', () => {
    const c = new FlowCache();
    // The mark must be two bits: not one, not three.
    for (const mark of [1, 0x10000000, 0x80000000, 7, 0x70000000, 0xffffffff]) {
      assert.throws(() => c.setSkip({ ...ON, mark }), { name: 'RangeError', message: 'FlowCache.setSkip: config.mark must be two bits (or 0: off)' }, mark.toString(16));
    }
    assert.throws(() => c.setSkip({ ...ON, queuedHooks: 32 }), RangeError);
    assert.throws(() => c.setSkip({ ...ON, mark: 0.5 }), RangeError);
    assert.throws(() => c.setSkip({ ...ON, mark: 2 ** 32 + 3 }), RangeError);
    assert.throws(() => c.setSkip(undefined as unknown as FlowCacheSkip), TypeError);
    const noAllowed: Partial<FlowCacheSkip> = { ...ON };
    delete noAllowed.allowed;
    assert.throws(() => c.setSkip(noAllowed as FlowCacheSkip), /config\.allowed must be a boolean/);
    assert.throws(() => c.setSkip({ ...ON, allowed: 1 as unknown as boolean }), TypeError);
    for (const mark of [3, 0x80000001, 0xc0000000, 0x10100, SKIP_MARK]) c.setSkip({ ...ON, mark, queuedHooks: ALL_HOOKS });
    c.setSkip({ mark: 0, allowed: false, maxLen: 0, queuedHooks: 0 });
    assert.throws(() => c.lookup(flowKey(PRE, { skip: 1 as unknown as boolean }), 1), /key\.skip must be a boolean/);
    assert.throws(() => c.lookup(flowKey(PRE, { skip: 'yes' as unknown as boolean }), 1), TypeError);
  });
});
