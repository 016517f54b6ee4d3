// The native flow cache without a queue (native/flowcache.*): FlowCache.lookup() is the receive thread's step for one
// ESTABLISHED packet and settle() the verdict's, so stores, hits, staleness, keys, waiting packets and the hit
// counters drain() reports can be checked one packet at a time.
import assert from 'node:assert/strict';
import type { FlowCacheDecision, FlowCacheKey } from '../../native/index';
import { addon } from '../../src/native';

const { FlowCache } = addon;

const NF_DROP = 0;
const NF_ACCEPT = 1;

function key(over: Partial<FlowCacheKey> = {}): FlowCacheKey {
  return {
    handle: 7,
    gen: 3,
    hook: 3,
    dir: 0,
    status: 0x10a,
    mark: 0,
    connmark: 5,
    zone: 0,
    inIf: 0,
    outIf: 2,
    physInIf: 0,
    physOutIf: 0,
    ...over,
  };
}

function decision(over: Partial<FlowCacheDecision> = {}): FlowCacheDecision {
  return { verdict: NF_ACCEPT, mark: 0x42, setMark: true, pathId: 9, ...over };
}

/** drain() as rows of [generation, pathId, packets, bytes], sorted. */
function rows(d: Float64Array): number[][] {
  assert.equal(d.length % 4, 0);
  const out: number[][] = [];
  for (let i = 0; i < d.length; i += 4) out.push([d[i]!, d[i + 1]!, d[i + 2]!, d[i + 3]!]);
  return out.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
}

/** A packet that misses, is verdicted by JavaScript with `d`, and stored. */
function teach(c: InstanceType<typeof FlowCache>, k: FlowCacheKey, d: FlowCacheDecision): void {
  assert.equal(c.lookup(k, 100), undefined, 'nothing stored yet for this key');
  assert.equal(c.settle(k, d, c.generation()), true, 'stored');
}

describe('native FlowCache (no queue)', () => {
  it('stores a decision and returns it for later packets of the same key', () => {
    const c = new FlowCache();
    const g = c.generation();
    assert.ok(g >= 1);
    teach(c, key(), decision());
    assert.deepEqual(c.lookup(key(), 60), decision());
    assert.deepEqual(c.lookup(key(), 40), decision());
    teach(c, key({ hook: 4 }), decision({ verdict: NF_DROP, setMark: false, mark: 0, pathId: 2 }));
    assert.deepEqual(c.lookup(key({ hook: 4 }), 10), { verdict: NF_DROP, mark: 0, setMark: false, pathId: 2 });
    const s = c.stats();
    assert.equal(s.hits, 3);
    assert.equal(s.misses, 2);
    assert.equal(s.stores, 2);
    assert.equal(s.entries, 2);
    assert.equal(s.waiting, 0);
    assert.equal(s.generation, g);
    assert.equal(s.enabled, true);
  });

  it('a stale generation is neither used nor stored', () => {
    const c = new FlowCache();
    const old = c.generation();
    teach(c, key(), decision());
    const g = c.invalidate();
    assert.equal(g, old + 1);
    assert.equal(c.generation(), g);
    assert.equal(c.lookup(key(), 50), undefined, 'the decision of the previous generation is stale');
    // A decision JavaScript made before the invalidation arrives late: refused.
    assert.equal(c.settle(key(), decision(), old), false);
    assert.equal(c.lookup(key(), 50), undefined);
    assert.equal(c.settle(key(), decision({ pathId: 4 }), g), true);
    assert.deepEqual(c.lookup(key(), 50), decision({ pathId: 4 }));
    const s = c.stats();
    assert.equal(s.invalidations, 1);
    assert.equal(s.entries, 1, 'entries count the current generation only');
    assert.equal(s.waiting, 0);
  });

  it('a packet with any other key value misses', () => {
    const c = new FlowCache();
    teach(c, key(), decision());
    const others: Partial<FlowCacheKey>[] = [
      { handle: 8 },
      { gen: 4 },
      { hook: 4 },
      { dir: 1 },
      { status: 0x10e },
      { mark: 1 },
      { connmark: 6 },
      { zone: 1 },
      { inIf: 1 },
      { outIf: 3 },
      { physInIf: 4 },
      { physOutIf: 5 },
    ];
    for (const o of others) {
      assert.equal(c.lookup(key(o), 10), undefined, `hit with ${JSON.stringify(o)}`);
      c.settle(key(o), undefined, c.generation());
    }
    assert.deepEqual(c.lookup(key(), 10), decision(), 'the original key still hits');
    assert.equal(c.stats().misses, 1 + others.length);
    // Handle 0 (no connection) never stores nor hits, and never counts as looked up.
    assert.equal(c.settle(key({ handle: 0 }), decision(), c.generation()), false);
    assert.equal(c.lookup(key({ handle: 0 }), 10), undefined);
    assert.equal(c.stats().misses, 1 + others.length);
  });

  it('with a status mask, a decision applies to packets whose status differs only outside it', () => {
    const ASSURED = 4;
    const c = new FlowCache();
    const g = c.invalidate((~ASSURED) >>> 0);
    assert.equal(c.generation(), g);
    teach(c, key({ status: 0x10a }), decision());
    // The flow turned ASSURED: still its decision.
    assert.deepEqual(c.lookup(key({ status: 0x10e }), 10), decision());
    // Any other bit is still part of the key.
    for (const status of [0x108, 0x10b, 0x11a, 0x12e]) {
      assert.equal(c.lookup(key({ status }), 10), undefined, status.toString(16));
      c.settle(key({ status }), undefined, c.generation());
    }
    // invalidate() without a mask keeps it; invalidate(all bits) makes the key exact again.
    c.invalidate();
    teach(c, key({ status: 0x10a }), decision());
    assert.deepEqual(c.lookup(key({ status: 0x10e }), 10), decision());
    c.invalidate(0xffffffff);
    teach(c, key({ status: 0x10a }), decision());
    assert.equal(c.lookup(key({ status: 0x10e }), 10), undefined);
    c.settle(key({ status: 0x10e }), undefined, c.generation());
    assert.throws(() => c.invalidate(-1), RangeError);
    assert.throws(() => c.invalidate('4' as unknown as number), TypeError);
  });

  it('drain() reports hits per generation and path once, then nothing', () => {
    const c = new FlowCache();
    const g1 = c.generation();
    teach(c, key(), decision({ pathId: 3 }));
    teach(c, key({ dir: 1 }), decision({ pathId: 5 }));
    c.lookup(key(), 100);
    c.lookup(key(), 60);
    c.lookup(key({ dir: 1 }), 1500);
    // Hits of the generation an invalidation ends are still reported, under that generation.
    const g2 = c.invalidate();
    teach(c, key(), decision({ pathId: 3 }));
    c.lookup(key(), 70);
    assert.deepEqual(rows(c.drain()), [
      [g1, 3, 2, 160],
      [g1, 5, 1, 1500],
      [g2, 3, 1, 70],
    ]);
    assert.deepEqual(rows(c.drain()), [], 'reset');
    c.lookup(key(), 33);
    assert.deepEqual(rows(c.drain()), [[g2, 3, 1, 33]]);
  });

  it('a flow with a packet waiting in JavaScript misses until it is verdicted', () => {
    const c = new FlowCache();
    teach(c, key(), decision());
    // The reply direction and other hooks are other flows; this one has a packet whose key changed (a new mark).
    assert.equal(c.lookup(key({ mark: 1 }), 10), undefined);
    assert.equal(c.stats().waiting, 1);
    assert.equal(c.lookup(key(), 10), undefined, 'would overtake the waiting packet');
    assert.equal(c.lookup(key({ hook: 4 }), 10), undefined, 'the same flow at another hook waits too');
    assert.equal(c.stats().waiting, 3);
    assert.equal(c.lookup(key({ dir: 1 }), 10), undefined, 'nothing stored for the reply direction');
    c.settle(key({ dir: 1 }), undefined, c.generation());
    c.settle(key({ mark: 1 }), undefined, c.generation());
    assert.equal(c.lookup(key(), 10), undefined, 'two packets still wait');
    c.settle(key(), undefined, c.generation());
    c.settle(key({ hook: 4 }), undefined, c.generation());
    c.settle(key(), undefined, c.generation());
    assert.equal(c.stats().waiting, 0);
    assert.deepEqual(c.lookup(key(), 10), decision(), 'nothing waits: the stored decision applies again');
  });

  it('setEnabled(false) stops lookups and stores; enabling again starts a new generation', () => {
    const c = new FlowCache();
    teach(c, key(), decision());
    const g = c.generation();
    c.setEnabled(false);
    assert.equal(c.stats().enabled, false);
    assert.equal(c.lookup(key(), 10), undefined);
    assert.equal(c.settle(key(), decision(), g), false, 'no store while off');
    assert.equal(c.stats().misses, 1, 'no lookup while off: not a miss');
    assert.equal(c.generation(), g, 'turning it off keeps the generation');
    c.setEnabled(true);
    assert.equal(c.generation(), g + 1);
    assert.equal(c.lookup(key(), 10), undefined, 'the old decisions are stale');
    c.settle(key(), undefined, c.generation());
    c.setEnabled(true);
    assert.equal(c.generation(), g + 1, 'already on: same generation');
    assert.equal(c.stats().waiting, 0);
  });

  it('overwrites the oldest decision when full, and ignores path ids beyond maxPaths', () => {
    const c = new FlowCache({ capacity: 4, maxPaths: 10 });
    for (let h = 1; h <= 4; h++) teach(c, key({ handle: h }), decision({ pathId: h }));
    assert.equal(c.stats().entries, 4);
    teach(c, key({ handle: 5 }), decision({ pathId: 5 }));
    const s = c.stats();
    assert.equal(s.evictions, 1);
    assert.equal(s.entries, 4);
    assert.equal(c.lookup(key({ handle: 1 }), 1), undefined, 'the oldest went');
    c.settle(key({ handle: 1 }), undefined, c.generation());
    for (let h = 2; h <= 5; h++) assert.equal(c.lookup(key({ handle: h }), 1)?.pathId, h);
    assert.equal(c.lookup(key({ handle: 6 }), 1), undefined);
    assert.equal(c.settle(key({ handle: 6 }), decision({ pathId: 10 }), c.generation()), false, 'pathId >= maxPaths');
    assert.equal(c.settle(key({ handle: 6 }), decision({ pathId: 9 }), c.generation()), true);
  });

  it('refuses bad options and arguments', () => {
    assert.throws(() => new FlowCache({ capacity: 0 }), RangeError);
    assert.throws(() => new FlowCache({ maxPaths: 1.5 }), RangeError);
    assert.throws(() => new FlowCache({ capacity: 'big' as unknown as number }), TypeError);
    const c = new FlowCache();
    assert.throws(() => c.setEnabled(1 as unknown as boolean), TypeError);
    assert.throws(() => c.lookup(key({ hook: 5 }), 1), RangeError);
    assert.throws(() => c.lookup(key(), 'x' as unknown as number), TypeError);
    assert.throws(() => c.settle(key(), decision(), undefined as unknown as number), TypeError);
  });
});
