import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IpsetStore } from '../../src/engine/sets';
import { hashlimitStore } from '../../src/extensions/util/b-hashlimit-store';
import { recentStore } from '../../src/extensions/util/b-recent-store';
import { RuleErrors } from '../../src/rules/errors';
import type { Ruleset } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { ParseCache } from '../../src/rules/line-cache';
import { kubeProxyRules } from '../../bench/parse';
import {
  carryCounters,
  checkSetNames,
  loadIpsetFiles,
  ReloadCoalescer,
  retainStores,
  storeNames,
  type ReloadOutcome,
} from '../../src/daemon/reload';
import { zeroCounters } from '../../src/rules/counters';
import { runSync } from '../../src/steps';
import { Rng } from '../rng';

const rs = (text: string, family: 4 | 6 = 4): Ruleset => parseRuleset(text, 'test.rules', { family });

const OLD = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:user - [0:0]
-A INPUT -p tcp --dport 22 -j ACCEPT
-A INPUT -p udp --dport 53 -j ACCEPT
-A FORWARD -j user
-A user -s 10.0.0.0/8 -j ACCEPT
COMMIT
`;

const NEW = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:user - [0:0]
-A INPUT -p udp --dport 53 -j ACCEPT
-A INPUT -p tcp --dport 22 -j ACCEPT
-A INPUT -p tcp --dport 80 -j ACCEPT
-A FORWARD -j user
-A user -s 10.0.0.0/8 -j DROP
COMMIT
`;

function rule(r: Ruleset, chain: string, i: number) {
  const c = r.tables.get('filter')!.chains.get(chain)!;
  return c.rules[i]!;
}

describe('daemon/reload: counters carry over by rule id', () => {
  it('copies counters of unchanged rules wherever they moved, and chain policy counters', () => {
    const a = rs(OLD);
    rule(a, 'INPUT', 0).counters = { packets: 5, bytes: 500 }; // tcp 22
    rule(a, 'INPUT', 1).counters = { packets: 7, bytes: 700 }; // udp 53
    rule(a, 'FORWARD', 0).counters = { packets: 3, bytes: 300 };
    rule(a, 'user', 0).counters = { packets: 9, bytes: 900 };
    a.tables.get('filter')!.chains.get('FORWARD')!.counters = { packets: 11, bytes: 1100 };
    const b = rs(NEW);
    const carried = runSync(carryCounters(a, b));
    assert.equal(carried, 3);
    assert.deepEqual(rule(b, 'INPUT', 0).counters, { packets: 7, bytes: 700 });
    assert.deepEqual(rule(b, 'INPUT', 1).counters, { packets: 5, bytes: 500 });
    assert.deepEqual(rule(b, 'INPUT', 2).counters, { packets: 0, bytes: 0 }, 'new rule starts at 0');
    assert.deepEqual(rule(b, 'FORWARD', 0).counters, { packets: 3, bytes: 300 });
    assert.deepEqual(rule(b, 'user', 0).counters, { packets: 0, bytes: 0 }, 'changed target: a different rule');
    assert.deepEqual(b.tables.get('filter')!.chains.get('FORWARD')!.counters, { packets: 11, bytes: 1100 });
    // Shared objects, not copies: what the old rules count until the swap is the new rules' count too.
    rule(a, 'INPUT', 1).counters.packets++;
    assert.equal(rule(b, 'INPUT', 0).counters.packets, 8);
    a.tables.get('filter')!.chains.get('FORWARD')!.counters.bytes += 10;
    assert.equal(b.tables.get('filter')!.chains.get('FORWARD')!.counters.bytes, 1110);
  });

  it('does not carry a rule to another chain with the same text', () => {
    const a = rs('*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n');
    a.tables.get('filter')!.chains.get('INPUT')!.rules[0]!.counters = { packets: 1, bytes: 1 };
    const b = rs('*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j ACCEPT\nCOMMIT\n');
    assert.equal(runSync(carryCounters(a, b)), 0);
    assert.equal(runSync(carryCounters(undefined, b)), 0);
  });

  it('finds each chain by name wherever the chains were dropped, added or moved', () => {
    const rng = new Rng(11);
    const text = (names: readonly string[]) =>
      ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ...names.map((n) => `:${n} - [0:0]`)]
        .concat(names.flatMap((n, k) => [`-A ${n} -s 198.18.0.${k % 200}/32`, `-A ${n} -j ACCEPT`]), ['-A INPUT -j ACCEPT', 'COMMIT', ''])
        .join('\n');
    let fresh = 0;
    let carriedAll = 0;
    for (let round = 0; round < 30; round++) {
      const before = Array.from({ length: rng.int(1, 40) }, () => `c${fresh++}`);
      const after = before.filter(() => !rng.chance(0.2));
      for (let k = rng.int(0, 6); k > 0; k--) after.splice(rng.int(0, after.length), 0, rng.chance(0.5) ? `c${fresh++}` : before[rng.int(0, before.length - 1)]);
      for (let k = rng.int(0, 3); k > 0 && after.length > 1; k--) after.splice(rng.int(0, after.length - 1), 0, ...after.splice(rng.int(0, after.length - 1), 1));
      const uniq = [...new Set(after)];
      const a = rs(text(before));
      const b = rs(text(uniq));
      let n = 0;
      for (const c of a.tables.get('filter')!.chains.values()) for (const r of c.rules) r.counters = { packets: ++n, bytes: n };
      const carried = runSync(carryCounters(a, b));
      let want = 0;
      for (const c of b.tables.get('filter')!.chains.values())
        for (const r of c.rules) {
          const old = a.tables.get('filter')!.chains.get(c.name)?.rules.find((o) => o.id === r.id);
          if (old !== undefined) want++;
          assert.equal(r.counters, old?.counters ?? r.counters, `round ${round}: ${c.name} ${r.id}`);
          if (old === undefined) assert.deepEqual(r.counters, { packets: 0, bytes: 0 });
        }
      assert.equal(carried, want);
      carriedAll += carried;
    }
    assert.ok(carriedAll > 300, `${carriedAll} carried`);
  });

  it('a chain whose rules are made of the same objects takes the rules in force; one changed line keeps it apart', () => {
    // The kube-proxy shape: a service chain's lines are spread over the file, so the parser copies them (ParseCache)
    // without sharing; carryCounters finds the chain unchanged and gives it the array in force.
    const cache = new ParseCache();
    const parse = (text: string) => parseRuleset(text, 'test.rules', { family: 4, cache, zeroCounters: true });
    const base = kubeProxyRules(6, 2);
    const from = parse(base);
    const text = kubeProxyRules(6, 2, { replaced: new Set([4]) });
    const to = parse(text);
    for (const t of from.tables.values()) for (const c of t.chains.values()) for (const r of c.rules) r.counters.packets = 5;
    const fromArrays = new Map([...from.tables.get('nat')!.chains].map(([n, c]) => [n, c.rules]));
    const carried = runSync(carryCounters(from, to));
    let shared = 0;
    for (const c of to.tables.get('nat')!.chains.values()) {
      const old = fromArrays.get(c.name);
      if (old !== undefined && c.rules === old) shared++;
      // Service 4's chain jumps to new endpoint chains; KUBE-SERVICES lists it with a rule of the same text.
      if (c.name === 'KUBE-SVC-0000000000000004') assert.notEqual(c.rules, old);
    }
    assert.ok(to.tables.get('nat')!.chains.get('KUBE-SERVICES')!.rules === fromArrays.get('KUBE-SERVICES'), 'KUBE-SERVICES is unchanged');
    // Every chain but service 4's and its new endpoint chains, and the built-in chains (their rules are the same).
    assert.equal(shared, to.tables.get('nat')!.chains.size - 1 - 2);
    // The changed service chain's unchanged rules still got their counters.
    const svc4 = to.tables.get('nat')!.chains.get('KUBE-SVC-0000000000000004')!;
    assert.ok(carried > 0 && svc4.rules.some((r) => r.counters.packets === 5) && svc4.rules.some((r) => r.counters.packets === 0));
  });

  it('zeroCounters zeroes rules and chains', () => {
    const a = rs(OLD);
    rule(a, 'INPUT', 0).counters = { packets: 5, bytes: 500 };
    a.tables.get('filter')!.chains.get('INPUT')!.counters = { packets: 2, bytes: 20 };
    assert.equal(zeroCounters([a, undefined]), 4 + 4);
    assert.deepEqual(rule(a, 'INPUT', 0).counters, { packets: 0, bytes: 0 });
    assert.deepEqual(a.tables.get('filter')!.chains.get('INPUT')!.counters, { packets: 0, bytes: 0 });
  });
});

describe('daemon/reload: global match stores', () => {
  afterEach(() => {
    recentStore.reset();
    hashlimitStore.reset();
  });

  it('retains recent lists and hashlimit tables still named, drops the rest', () => {
    const v4 = rs(`*filter
:INPUT ACCEPT [0:0]
-A INPUT -m recent --set --name keep
-A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-name hl4
COMMIT
`);
    const v6 = rs(`*filter
:INPUT ACCEPT [0:0]
-A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-name hl6
COMMIT
`, 6);
    assert.deepEqual(storeNames([v4, v6]), { recent: new Set(['keep']), hashlimit: new Set(['4:hl4', '6:hl6']) });
    const mask = new Uint8Array(4).fill(0xff);
    recentStore.table('keep', mask).add(new Uint8Array([1, 2, 3, 4]), 4, 64, 0);
    recentStore.table('gone', mask);
    const cfg = { max: 10, gcInterval: 1000, expire: 10000 };
    hashlimitStore.table(4, 'hl4', cfg, 0);
    hashlimitStore.table(6, 'hl4', cfg, 0);
    hashlimitStore.table(6, 'hl6', cfg, 0);
    retainStores([v4, v6]);
    assert.deepEqual(recentStore.names(), ['keep']);
    assert.ok(recentStore.get('keep')!.lookup(new Uint8Array([1, 2, 3, 4]), 4, 0) !== undefined, 'contents kept');
    assert.ok(hashlimitStore.get(4, 'hl4'));
    assert.equal(hashlimitStore.get(6, 'hl4'), undefined);
    assert.ok(hashlimitStore.get(6, 'hl6'));
  });
});

describe('daemon/reload: ipset files', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-ipset-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('loads several files into one store', () => {
    fs.writeFileSync(path.join(dir, 'a.ipset'), 'create blockA hash:ip family inet\nadd blockA 198.18.0.9\n');
    fs.writeFileSync(path.join(dir, 'b.ipset'), 'create nets hash:net family inet\nadd nets 198.19.0.0/24\n');
    const store = loadIpsetFiles([path.join(dir, 'a.ipset'), path.join(dir, 'b.ipset')]);
    assert.deepEqual(store.names().sort(), ['blockA', 'nets']);
  });

  it('reports file:line:column for a broken line and an unreadable file', () => {
    fs.writeFileSync(path.join(dir, 'bad.ipset'), 'create s hash:ip family inet\nadd s 198.18.0.1\nadd s not-an-address\n');
    assert.throws(
      () => loadIpsetFiles([path.join(dir, 'bad.ipset'), path.join(dir, 'missing.ipset')]),
      (err: unknown) => {
        assert.ok(err instanceof RuleErrors);
        assert.equal(err.errors.length, 2);
        assert.match(err.errors[0]!.message, new RegExp(`^${dir}/bad\\.ipset:3:1: ipset: `));
        assert.match(err.errors[1]!.message, new RegExp(`^${dir}/missing\\.ipset:0:0: cannot read ipset file`));
        return true;
      },
    );
  });

  it('a rule naming a set no file defines is refused at its location', () => {
    const r = rs(`*filter
:INPUT ACCEPT [0:0]
-A INPUT -m set --match-set known src -j DROP
-A INPUT -m set --match-set unknown src -j DROP
COMMIT
`);
    const store = IpsetStore.parse('create known hash:ip family inet\n');
    assert.throws(() => checkSetNames([r], store), /^RuleErrors: test\.rules:4:\d+: set: set "unknown" does not exist/);
    assert.throws(() => checkSetNames([r], undefined), /no --ipset file is loaded/);
    store.load('create unknown hash:ip family inet\n');
    checkSetNames([r], store);
  });
});

describe('daemon/reload: one at a time, triggers coalesce', () => {
  it('runs at most one job at once and folds triggers during a run into one more', async () => {
    let active = 0;
    let maxActive = 0;
    const seen: string[] = [];
    const release: (() => void)[] = [];
    const c = new ReloadCoalescer(async (trigger): Promise<ReloadOutcome> => {
      active++;
      maxActive = Math.max(maxActive, active);
      seen.push(trigger);
      await new Promise<void>((r) => release.push(r));
      active--;
      return { ok: trigger !== 'bad', trigger, errors: [], durationMs: 0 };
    });
    const first = c.request('a');
    const second = c.request('b');
    const third = c.request('c');
    assert.equal(second, third, 'triggers during a run share the next run');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, ['a']);
    release.shift()!();
    assert.equal((await first).trigger, 'a');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, ['a', 'b+c']);
    const fourth = c.request('d'); // arrives during b+c: one more run after it
    release.shift()!();
    assert.equal((await second).trigger, 'b+c');
    await new Promise((r) => setImmediate(r));
    release.shift()!();
    assert.equal((await fourth).trigger, 'd');
    await c.idle();
    assert.equal(maxActive, 1);
    assert.equal(c.runs, 3);
  });

  it('a run asks only for changed files when every trigger it serves does', async () => {
    const seen: string[] = [];
    const release: (() => void)[] = [];
    const c = new ReloadCoalescer(async (trigger, onlyIfChanged): Promise<ReloadOutcome> => {
      seen.push(`${trigger}:${onlyIfChanged}`);
      await new Promise<void>((r) => release.push(r));
      return { ok: true, trigger, errors: [], durationMs: 0 };
    });
    const tick = () => new Promise((r) => setImmediate(r));
    const first = c.request('watch-1', true);
    const mixed = c.request('watch-2', true);
    c.request('control');
    await tick();
    release.shift()!();
    await first;
    await tick();
    const watched = c.request('watch-3', true);
    c.request('watch-4', true);
    release.shift()!();
    await mixed;
    await tick();
    release.shift()!();
    await watched;
    assert.deepEqual(seen, ['watch-1:true', 'watch-2+control:false', 'watch-3+watch-4:true']);
  });

  it('a failing job does not stop the next one', async () => {
    let n = 0;
    const c = new ReloadCoalescer(async (trigger) => {
      n++;
      if (trigger === 'x') throw new Error('boom');
      return { ok: true, trigger, errors: [], durationMs: 0 };
    });
    const a = c.request('x');
    const b = c.request('y');
    await assert.rejects(a, /boom/);
    assert.equal((await b).ok, true);
    assert.equal(n, 2);
  });
});
