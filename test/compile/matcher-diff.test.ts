// The native matcher against the reference engine (docs/matcher.md, "How it is tested"): seeded random rulesets and
// packets through Engine.decide(input, {flow: true}) and Matcher.run. Whenever the matcher decides, verdict, mark,
// setMark, natRan and the counters path must be the engine's; and on rulesets drawn from the subset it implements it
// must decide nearly every packet (coverage is asserted and printed).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { craftPacket } from '../../src/engine/craft';
import type { PacketInput } from '../../src/engine/decision';
import type { ConnInfo, CtState } from '../../src/extensions/types';
import { parseIpAddr } from '../../src/rules/addr';
import { reachEverything } from './corpus-reach';
import { type Hook, type MatchUse, type Rule } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { reachingHooks } from '../../src/rules/validate';
import { declareChains, parsePrereq } from '../differential/harness';
import { CORPUS } from '../paths';
import { Rng } from '../rng';
import { natRate, newTally, Pair, rate, type Tally } from './matcher-harness';
import { genMatcherPacket, genMatcherRuleset, IFACES } from './matcher-gen';

const SEEDS = Number(process.env['NFQW_MATCHER_SEEDS'] ?? 150);
const PACKETS = 400;

function runSeeds(family: 4 | 6, slow: number, odd: number, salt: number): Tally {
  const t = newTally();
  for (let seed = 1; seed <= SEEDS; seed++) {
    const text = genMatcherRuleset(seed * 7919 + family + salt, family, slow);
    const rules = parseRuleset(text, `random-${seed}.rules`, { family });
    const pair = new Pair(rules, IFACES);
    const rng = new Rng(seed * 104729 + family + salt);
    for (let k = 0; k < PACKETS; k++) {
      pair.check(genMatcherPacket(rng, family, odd), t, `seed ${seed} packet ${k}`);
      if (t.diffs.length > 0) assert.fail(`${t.diffs[0]}\n--- ruleset ---\n${text}`);
    }
  }
  return t;
}

describe('matcher: random rulesets, native against the engine', function () {
  this.timeout(600_000);
  for (const family of [4, 6] as const) {
    it(`IPv${family}: the supported subset, ${SEEDS} rulesets x ${PACKETS} packets: identical, and >= 95% decided natively`, () => {
      const t = runSeeds(family, 0, 0, 0);
      console.log(`      IPv${family} subset: ${rate(t)}; ${natRate(t)}`);
      assert.equal(t.diffs.length, 0);
      assert.ok(t.decided >= 0.95 * t.packets, `coverage ${rate(t)}`);
      // NAT targets and statistic are in the subset: they are reached, and decided natively.
      assert.ok(t.nat > 0.01 * t.packets && t.natDecided >= 0.9 * t.nat, natRate(t));
      assert.ok(t.drew > 0.01 * t.packets && t.drewDecided >= 0.9 * t.drew, natRate(t));
    });
    it(`IPv${family}: slow extensions, short, fragmented, extension-header and untracked packets mixed in: identical`, () => {
      const t = runSeeds(family, 0.15, 0.2, 1000);
      console.log(`      IPv${family} mixed: ${rate(t)}; ${natRate(t)}`);
      assert.equal(t.diffs.length, 0);
      // The slow paths are exercised, and the rest is still decided natively.
      assert.ok(t.slow > 0.05 * t.packets, `only ${t.slow} packets went slow: the generator no longer mixes in slow cases`);
      assert.ok(t.decided > 0.4 * t.packets, `coverage ${rate(t)}`);
    });
  }
});

// ---- the corpus: real rulesets, packets aimed at their rules ----

function corpusFiles(): string[] {
  if (!fs.existsSync(CORPUS)) return [];
  return fs.readdirSync(CORPUS).filter((f) => f.endsWith('.rules')).sort();
}

function portOf(m: MatchUse): number | undefined {
  const o = m.opts as { dport?: { min: number; max: number }; items?: { min: number }[]; dir?: string };
  if (['tcp', 'udp', 'sctp'].includes(m.ext.name) && o.dport) return o.dport.min;
  if (m.ext.name === 'multiport' && o.items && o.dir !== 'sports') return o.items[0]?.min;
  return undefined;
}

function markOf(m: MatchUse): number | undefined {
  return m.ext.name === 'mark' ? (m.opts as { mark: number }).mark : undefined;
}

const ifaceName = (spec: string): string => (spec.endsWith('+') ? `${spec.slice(0, -1)}0` : spec);
const CT_STATES: CtState[] = ['NEW', 'NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'UNTRACKED'];

/** A packet that passes the rule's base fields and port/mark matches (`nudge`: one of them missed on purpose). */
function aimedAt(rng: Rng, rule: Rule, hook: Hook, family: 4 | 6, nudge: boolean): PacketInput {
  const fallback = (s: string): Uint8Array => parseIpAddr(s, family)!;
  const dst = rule.dst && !rule.dst.negated ? rule.dst.value.addr : fallback(family === 4 ? '198.18.7.7' : '2001:db8:7::7');
  const src = rule.src && !rule.src.negated ? rule.src.value.addr : fallback(family === 4 ? '198.19.7.7' : '2001:db8:8::7');
  const proto = rule.proto && !rule.proto.negated && rule.proto.value !== 0 ? rule.proto.value : rng.pick([6, 17]);
  let dport = rule.matches.map(portOf).find((p) => p !== undefined) ?? rng.pick([53, 80, 443, 8080]);
  let mark = rule.matches.map(markOf).find((p) => p !== undefined) ?? 0;
  if (nudge) {
    if (rng.chance(0.5)) dport = (dport + 1) & 0xffff;
    else mark = (mark ^ 1) >>> 0;
  }
  const data = craftPacket({
    family,
    src: Uint8Array.from(src),
    dst: Uint8Array.from(dst),
    proto,
    sport: rng.int(1024, 65535),
    dport,
    tcpFlags: rng.pick([0x02, 0x10]),
    icmpType: family === 4 ? 8 : 128,
    payload: new Uint8Array(rng.int(0, 30)),
  });
  const inOk = hook === 'PREROUTING' || hook === 'INPUT' || hook === 'FORWARD';
  const outOk = hook === 'OUTPUT' || hook === 'POSTROUTING' || hook === 'FORWARD';
  const meta = {
    hook,
    inIface: inOk ? (rule.inIface && !rule.inIface.negated ? ifaceName(rule.inIface.value) : 'eth0') : undefined,
    outIface: outOk ? (rule.outIface && !rule.outIface.negated ? ifaceName(rule.outIface.value) : 'eth1') : undefined,
    mark,
    pktType: 'unicast' as const,
  };
  const t = { src: Uint8Array.from(src), dst: Uint8Array.from(dst), protocol: proto, sport: 1, dport };
  const ct: ConnInfo = {
    state: rng.pick(CT_STATES),
    status: rng.chance(0.3) ? rng.pick([0x2, 0x6, 0x10, 0x20, 0x80, 0x100, 0x180]) : 0,
    mark: rng.chance(0.2) ? rng.pick([1, 0x4000, 0x8000]) : 0,
    direction: rng.chance(0.8) ? 'ORIGINAL' : 'REPLY',
    orig: t,
    reply: t,
    expiresSeconds: 60,
    zone: 0,
  };
  return { family, data, meta, ct };
}


describe('matcher: the corpus, native against the engine', function () {
  this.timeout(600_000);
  const list = corpusFiles();
  const total = newTally();
  it('finds the corpus', () => {
    assert.ok(list.length > 0, `no *.rules in ${CORPUS}`);
  });
  for (const file of list) {
    const family = file.endsWith('-v6.rules') ? 6 : 4;
    const full = path.join(CORPUS, file);
    const prereqFile = full.replace(/\.rules$/, '.prereq');
    const prereq = fs.existsSync(prereqFile) ? parsePrereq(fs.readFileSync(prereqFile, 'utf8')) : undefined;
    let text = fs.readFileSync(full, 'utf8');
    if (prereq) text = declareChains(text, prereq.chains);
    let reason: string | undefined;
    try {
      text = reachEverything(text, full, family);
    } catch (e) {
      reason = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    }
    if (reason !== undefined) {
      it(`${file}: does not load on its own (${reason.slice(0, 100)})`);
      continue;
    }
    it(`${file}: every packet the matcher decides, it decides as the engine`, () => {
      const rules = parseRuleset(text, full, { family });
      const ifaces = new Set(['eth0', 'eth1']);
      for (const t of rules.tables.values())
        for (const c of t.chains.values())
          for (const r of c.rules)
            for (const s of [r.inIface, r.outIface]) if (s && ifaceName(s.value).length <= 15) ifaces.add(ifaceName(s.value));
      const pair = new Pair(rules, [...ifaces]);
      const rng = new Rng(file.length * 131);
      const t = newTally();
      for (const tb of rules.tables.values()) {
        const reach = reachingHooks(tb);
        for (const c of tb.chains.values()) {
          const hooks = [...(reach.get(c.name) ?? [])];
          if (hooks.length === 0) continue;
          for (const r of c.rules)
            for (const nudge of [false, true]) {
              pair.check(aimedAt(rng, r, rng.pick(hooks), family, nudge), t, file);
              if (t.diffs.length > 0) assert.fail(t.diffs[0]);
            }
        }
      }
      console.log(`      ${file}: ${rate(t)}`);
      total.packets += t.packets;
      total.decided += t.decided;
      total.slow += t.slow;
      assert.ok(t.packets > 0, 'no rule reachable from a hook');
    });
  }
  it('over the whole corpus, most packets are decided natively', () => {
    console.log(`      corpus: ${rate(total)}`);
    assert.ok(total.packets > 500, `only ${total.packets} packets`);
    assert.ok(total.decided > 0.5 * total.packets, rate(total));
  });
});
