import assert from 'node:assert/strict';
import { flowStatusMask, FlowPaths } from '../../src/daemon/flow-paths';
import { parseRuleset } from '../../src/rules/parse';
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

describe('flow cache: the status bits a cached decision depends on', () => {
  const ASSURED = 4;
  const rules = (extra: string) =>
    parseRuleset(`*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n${extra}COMMIT\n`, 'f.rules');

  it('leaves ASSURED out unless a rule of a ruleset in force reads the status with --ctstatus', () => {
    assert.equal(flowStatusMask({ rules4: rules('') }), (~ASSURED) >>> 0);
    assert.equal(flowStatusMask({ rules4: rules(''), rules6: parseRuleset('*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n', 'f6.rules', { family: 6 }) }), (~ASSURED) >>> 0);
    assert.equal(flowStatusMask({}), (~ASSURED) >>> 0);
    const reads = rules('-A FORWARD -m conntrack --ctstatus ASSURED -j ACCEPT\n');
    assert.equal(flowStatusMask({ rules4: reads }), 0xffffffff);
    assert.equal(flowStatusMask({ rules4: rules(''), rules6: reads }), 0xffffffff, 'either family');
    assert.equal(flowStatusMask({ rules4: rules('-A INPUT -m conntrack ! --ctstatus CONFIRMED -j DROP\n') }), 0xffffffff, 'any status bit');
  });

  it('keeps every bit for a ruleset the parser did not make (what its rules read is not known)', () => {
    const built = rules('');
    const copy = { ...built, tables: new Map(built.tables) };
    assert.equal(flowStatusMask({ rules4: copy }), 0xffffffff);
  });
});
