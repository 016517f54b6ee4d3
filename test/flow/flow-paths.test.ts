import assert from 'node:assert/strict';
import { FlowPaths } from '../../src/daemon/flow-paths';
import { FakeCache } from './fake-cache';
import type { Counters } from '../../src/rules/model';

/** The native cache as FlowPaths sees it: a generation, and hits the test adds as the receive thread would. */
const counters = (n: number): Counters[] => Array.from({ length: n }, () => ({ packets: 0, bytes: 0 }));

describe('flow cache: paths and drain', () => {
  it('the same counter list gets the same id, another list another id', () => {
    const cache = new FakeCache();
    const p = new FlowPaths(cache);
    const [a, b, c] = counters(3);
    assert.equal(p.begin(), 1);
    const ab = p.intern([a!, b!]);
    const ba = p.intern([b!, a!]);
    const abc = p.intern([a!, b!, c!]);
    assert.equal(p.intern([a!, b!]), ab);
    assert.notEqual(ab, ba);
    assert.notEqual(ab, abc);
    assert.notEqual(ba, abc);
    assert.equal(p.size(1), 3);
  });

  it('interning copies the list (the engine reuses its array)', () => {
    const cache = new FakeCache();
    const p = new FlowPaths(cache);
    const [a, b] = counters(2);
    const list: Counters[] = [a!];
    const id = p.intern(list)!;
    list[0] = b!;
    cache.hit(1, id, 2, 200);
    p.drain();
    assert.deepEqual([a!.packets, b!.packets], [2, 0]);
  });

  it('drain adds packets and bytes to every counter of the path, twice for a counter listed twice', () => {
    const cache = new FakeCache();
    const p = new FlowPaths(cache);
    const [rule, policy, other] = counters(3);
    const id = p.intern([rule!, rule!, policy!])!;
    const id2 = p.intern([other!])!;
    cache.hit(1, id, 3, 300);
    cache.hit(1, id2, 1, 60);
    assert.equal(p.drain(), 4);
    assert.deepEqual(rule, { packets: 6, bytes: 600 });
    assert.deepEqual(policy, { packets: 3, bytes: 300 });
    assert.deepEqual(other, { packets: 1, bytes: 60 });
    assert.equal(p.drain(), 0);
    assert.deepEqual(rule, { packets: 6, bytes: 600 });
  });

  it('ids are per generation, and an old generation keeps its paths until a drain returns nothing for it', () => {
    const cache = new FakeCache();
    const p = new FlowPaths(cache);
    const [a, b] = counters(2);
    const old = p.intern([a!])!;
    assert.equal(p.invalidate(), 2);
    assert.equal(p.begin(), 2);
    // The new generation starts empty: b gets the first id, the one a had.
    const fresh = p.intern([b!])!;
    assert.equal(fresh, old);
    // Hits the old generation got before the reload arrive after it.
    cache.hit(1, old, 5, 500);
    cache.hit(2, fresh, 1, 100);
    p.drain();
    assert.deepEqual(a, { packets: 5, bytes: 500 });
    assert.deepEqual(b, { packets: 1, bytes: 100 });
    assert.deepEqual(p.generations().sort(), [1, 2]);
    // A drain with nothing for generation 1 retires it.
    p.drain();
    assert.deepEqual(p.generations(), [2]);
    cache.hit(1, old, 1, 1);
    p.drain();
    assert.deepEqual(a, { packets: 5, bytes: 500 }, 'a retired generation adds nothing');
    assert.equal(p.stats.unknownHits, 1);
  });

  it('follows a generation the cache started by itself (setEnabled(true) after a trace)', () => {
    const cache = new FakeCache();
    const p = new FlowPaths(cache);
    const [a] = counters(1);
    p.begin();
    p.intern([a!]);
    cache.gen = 7;
    assert.equal(p.begin(), 7);
    assert.equal(p.size(7), 0);
    const id = p.intern([a!])!;
    cache.hit(7, id, 2, 20);
    p.drain();
    assert.deepEqual(a, { packets: 2, bytes: 20 });
    assert.deepEqual(p.generations(), [7]);
  });

  it('stops interning at maxPaths', () => {
    const cache = new FakeCache();
    const p = new FlowPaths(cache, 2);
    const cs = counters(3);
    assert.equal(p.intern([cs[0]!]), 0);
    assert.equal(p.intern([cs[1]!]), 1);
    assert.equal(p.intern([cs[2]!]), undefined);
    assert.equal(p.intern([cs[1]!]), 1);
    assert.equal(p.stats.full, 1);
  });
});
