// src/daemon/matcher-programs.ts without the addon: what the native side drains lands on the counter objects of the
// program that counted it, a replaced program's counters stay until the native side says it drained it for the last
// time, and a program the addon refuses leaves its family to JavaScript.
import assert from 'node:assert/strict';
import { MatcherPrograms, hostView, type MatcherLike, type PreparedProgram } from '../../src/daemon/matcher-programs';
import type { BuiltProgram } from '../../src/native';
import { ParseCache } from '../../src/rules/line-cache';
import type { Counters, Family, Ruleset } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { runSync } from '../../src/steps';
import { kubeProxyRules } from '../../bench/parse';

class FakeMatcher implements MatcherLike {
  loaded = new Map<Family, number>();
  cleared: Family[] = [];
  refuse = false;
  pending: [number, number, number, number][] = [];
  done: number[] = [];
  load(family: Family, _words: Uint32Array, serial: number): void {
    if (this.refuse) throw new Error('program: chain 3 jumps to chain 9 of 4');
    this.loaded.set(family, serial);
  }
  clear(family: Family): void {
    this.cleared.push(family);
    this.loaded.delete(family);
  }
  serial(family: Family): number {
    return this.loaded.get(family) ?? 0;
  }
  drain(): { serials: Uint32Array; ids: Uint32Array; packets: Float64Array; bytes: Float64Array; done: number[] } {
    const p = this.pending;
    this.pending = [];
    const done = this.done;
    this.done = [];
    return {
      serials: Uint32Array.from(p.map((x) => x[0])),
      ids: Uint32Array.from(p.map((x) => x[1])),
      packets: Float64Array.from(p.map((x) => x[2])),
      bytes: Float64Array.from(p.map((x) => x[3])),
      done,
    };
  }
}

const counters = (n: number): Counters[] => Array.from({ length: n }, () => ({ packets: 0, bytes: 0 }));
const EMPTY = (family: Family): Ruleset => parseRuleset('*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n', 'empty.rules', { family });
/** A prepared program whose words the fake matcher takes as they are. */
const prepared = (family: Family, cs: Counters[]): PreparedProgram => ({ family, words: new Uint32Array(1), counters: cs, rules: EMPTY(family), reusedChains: 0 });

describe('matcher programs: the daemon side of the native matcher', () => {
  it('adds drained hits to the counters of the program that counted them, old and new alike', () => {
    const m = new FakeMatcher();
    const p = new MatcherPrograms(m);
    const a = counters(3);
    p.commit(prepared(4, a), 4);
    const s1 = m.loaded.get(4)!;
    const b = [a[0]!, ...counters(2)]; // the reload kept rule 0's counter object, as carryCounters does
    p.commit(prepared(4, b), 4);
    const s2 = m.loaded.get(4)!;
    assert.notEqual(s1, s2);
    m.pending.push([s1, 0, 2, 200], [s1, 2, 1, 60], [s2, 0, 3, 300], [s2, 1, 4, 400]);
    assert.equal(p.drain(), 10);
    assert.deepEqual(a, [{ packets: 5, bytes: 500 }, { packets: 0, bytes: 0 }, { packets: 1, bytes: 60 }]);
    assert.deepEqual(b.slice(1), [{ packets: 4, bytes: 400 }, { packets: 0, bytes: 0 }]);
    assert.deepEqual(p.serials(), [s1, s2]);
    // Drained for the last time: its counters are forgotten, and a hit for it after that is counted as unknown.
    m.done.push(s1);
    p.drain();
    assert.deepEqual(p.serials(), [s2]);
    m.pending.push([s1, 0, 7, 700]);
    assert.equal(p.drain(), 0);
    assert.equal(p.stats.unknownHits, 7);
    assert.equal(a[0]!.packets, 5);
  });

  it('a program the addon refuses leaves the family to JavaScript and says why', () => {
    const m = new FakeMatcher();
    const p = new MatcherPrograms(m);
    p.commit(prepared(6, counters(1)), 6);
    m.refuse = true;
    p.commit(prepared(6, counters(1)), 6);
    assert.deepEqual(m.cleared, [6]);
    assert.equal(m.loaded.get(6), undefined);
    assert.match(p.lastError ?? '', /^IPv6: .*chain 3 jumps to chain 9/);
    assert.equal(p.serials().length, 1, 'the refused program keeps no counters');
    p.commit(undefined, 4);
    assert.deepEqual(m.cleared, [6, 4]);
    // A later program the addon takes puts the family back in the matcher's hands.
    m.refuse = false;
    p.commit(prepared(6, counters(1)), 6);
    assert.equal(p.lastError, undefined);
    assert.notEqual(m.loaded.get(6), undefined);
  });

  it('a program the check refuses (build, off the main thread) is committed as none, with the reason; one it took, as built', async () => {
    const m = new FakeMatcher();
    const built: (Uint32Array | BuiltProgram)[] = [];
    const load = m.load.bind(m);
    const checking: MatcherLike = {
      load: (family, words, serial) => {
        built.push(words);
        load(family, words as Uint32Array, serial);
      },
      build: (_family, words) => (words[0] === 0 ? Promise.resolve({ words } as unknown as BuiltProgram) : Promise.reject(new Error('Matcher.build: bad rule flags'))),
      clear: (family) => m.clear(family),
      serial: (family) => m.serial(family),
      drain: () => m.drain(),
    };
    const p = new MatcherPrograms(checking);
    const good = prepared(4, counters(1));
    await p.check(good);
    p.commit(good, 4);
    assert.equal(m.loaded.get(4), 1);
    assert.deepEqual(built, [good.built], 'load() is given what build() checked, not the words');
    const bad = prepared(4, counters(1));
    bad.words[0] = 1;
    await p.check(bad);
    assert.equal(bad.refused, 'Matcher.build: bad rule flags');
    p.commit(bad, 4);
    assert.equal(built.length, 1, 'a refused program is not loaded');
    assert.deepEqual(m.cleared, [4]);
    assert.match(p.lastError ?? '', /^IPv4: Matcher\.build: bad rule flags$/);
    assert.equal(p.serials().length, 1, 'the refused program keeps no counters');
  });

  it('a reload compiles against the program in force: the unchanged chains copied, only from the serial it loaded', () => {
    const m = new FakeMatcher();
    const p = new MatcherPrograms(m);
    const cache = new ParseCache();
    const parse = (text: string): Ruleset => parseRuleset(text, 'kube.rules', { family: 4, cache });
    const first = runSync(p.prepare(parse(kubeProxyRules(50, 2))))!;
    assert.equal(first.reusedChains, 0, 'nothing in force yet');
    p.commit(first, 4);
    const again = runSync(p.prepare(parse(kubeProxyRules(50, 2, { replaced: new Set([7]) }))))!;
    assert.ok(again.reusedChains > 90, `the chains of the 49 other services copied: ${again.reusedChains}`);
    // The native side holds another program than the one this table put in force: nothing to copy from.
    m.loaded.set(4, 999);
    assert.equal(runSync(p.prepare(parse(kubeProxyRules(50, 2))))!.reusedChains, 0);
    p.commit(undefined, 4);
    assert.equal(runSync(p.prepare(parse(kubeProxyRules(50, 2))))!.reusedChains, 0, 'none in force after a clear');
  });

  it('hostView gives names by index, the host\'s own addresses, and the other routes longest first', () => {
    const names = { entries: (): [number, string][] => [[1, 'lo'], [7, 'veth-fw']] };
    const route = (a: number[], prefix: number, type: 'LOCAL' | 'BROADCAST') => ({ family: a.length === 4 ? (4 as const) : (6 as const), addr: Uint8Array.from(a), prefix, type });
    const host = {
      primaryAddress: (family: 4 | 6, iface: string) => (family === 4 && iface === 'veth-fw' ? Uint8Array.of(198, 18, 0, 1) : undefined),
      routeList: () => [
        route([127, 0, 0, 0], 8, 'LOCAL'),
        route([198, 18, 0, 1], 32, 'LOCAL'),
        route([198, 18, 0, 255], 32, 'BROADCAST'),
        route([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 128, 'LOCAL'),
      ],
    };
    const v = hostView(names, host);
    assert.equal(v.names?.[1], 'lo');
    assert.equal(v.names?.[7], 'veth-fw');
    assert.equal(v.names?.[3], undefined);
    assert.deepEqual(v.local4, ['198.18.0.1']);
    assert.deepEqual(v.local6, ['2001:db8::1']);
    assert.deepEqual(v.routes, [
      { dst: '198.18.0.255/32', local: false },
      { dst: '127.0.0.0/8', local: true },
    ]);
    assert.equal(v.primary4?.[7], '198.18.0.1');
    assert.equal(v.primary4?.[1], undefined);
    assert.equal(v.primary6?.[7], undefined);
  });
});
