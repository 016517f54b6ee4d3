// The real rulesets of ../shared/corpus, with packets aimed at each of their rules (and the same packets nudged off
// them), through the engine with and without the chain index: identical decisions, traces, counters and state.
// Chains the file declares but no built-in chain reaches (fragments of a larger ruleset) get a jump from a built-in
// chain that may call them, so their rules are exercised too.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { craftPacket } from '../../src/engine/craft';
import type { PacketInput } from '../../src/engine/decision';
import type { ConnInfo, CtState } from '../../src/extensions/types';
import { type Hook, type MatchUse, type Rule, type Ruleset } from '../../src/rules/model';
import { parseIpAddr } from '../../src/rules/addr';
import { reachEverything } from './corpus-reach';
import { parseRuleset } from '../../src/rules/parse';
import { reachingHooks } from '../../src/rules/validate';
import { CORPUS } from '../paths';
import { declareChains, parsePrereq } from '../differential/harness';
import { ruleKey } from '../../src/compile/keys';
import { assertSame, runSide } from './compare';
import { Rng } from './gen';

function files(): string[] {
  if (!fs.existsSync(CORPUS)) return [];
  return fs.readdirSync(CORPUS).filter((f) => f.endsWith('.rules')).sort();
}

function addrOf(s: string, family: 4 | 6): Uint8Array {
  const a = parseIpAddr(s, family);
  if (!a) throw new Error(`bad address ${s}`);
  return a;
}

/** The destination port a protocol match asks for, if any. */
function portOf(m: MatchUse): number | undefined {
  const o = m.opts as { dport?: { min: number; max: number } };
  if (!['tcp', 'udp', 'sctp'].includes(m.ext.name) || !o.dport) return undefined;
  return o.dport.min;
}

function markOf(m: MatchUse): number | undefined {
  if (m.ext.name !== 'mark') return undefined;
  return (m.opts as { mark: number }).mark;
}

function ifaceName(spec: string): string {
  return spec.endsWith('+') ? `${spec.slice(0, -1)}0` : spec;
}

/** A packet that passes the rule's base fields and key matches (other matches may still refuse it). */
function aimedAt(rng: Rng, rule: Rule, hook: Hook, family: 4 | 6, nudge: boolean): PacketInput {
  const dst = rule.dst && !rule.dst.negated ? rule.dst.value.addr : addrOf(family === 4 ? '198.18.7.7' : '2001:db8:7::7', family);
  const src = rule.src && !rule.src.negated ? rule.src.value.addr : addrOf(family === 4 ? '198.19.7.7' : '2001:db8:8::7', family);
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
    icmpType: 8,
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
  const state: CtState = rng.pick(['NEW', 'NEW', 'ESTABLISHED', 'RELATED']);
  const ct: ConnInfo = { state, status: 0, mark: 0, direction: 'ORIGINAL', orig: t, reply: t, expiresSeconds: 60, zone: 0 };
  return { family, data, meta, ct };
}


function packetsFor(rules: Ruleset, seed: number): PacketInput[] {
  const rng = new Rng(seed);
  const out: PacketInput[] = [];
  for (const t of rules.tables.values()) {
    const reach = reachingHooks(t);
    for (const c of t.chains.values()) {
      const hooks = [...(reach.get(c.name) ?? [])];
      if (hooks.length === 0) continue;
      for (const r of c.rules) {
        const hook = rng.pick(hooks);
        out.push(aimedAt(rng, r, hook, rules.family, false), aimedAt(rng, r, hook, rules.family, true));
      }
    }
  }
  return out;
}

describe('chain index: the corpus, indexed against walked', () => {
  const list = files();
  /** Keyed rules (those the index may skip) that packets matched, over all files. */
  let keyedHits = 0;
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
    it(`${file}: every packet decides identically`, () => {
      const rules = parseRuleset(text, full, { family });
      const packets = packetsFor(rules, file.length * 131);
      assert.ok(packets.length > 0, 'no rule reachable from a hook');
      const walked = runSide(text, family, packets, false);
      const indexed = runSide(text, family, packets, true);
      assertSame(walked, indexed, packets, file);
      for (const t of indexed.rules.tables.values())
        for (const c of t.chains.values())
          for (const r of c.rules) if (r.counters.packets > 0 && ruleKey(r).kind !== 'wild') keyedHits++;
    });
  }
  it('the packets matched keyed rules (so the comparison exercised the index)', function () {
    assert.ok(list.length > 0, `no corpus rule files at ${CORPUS}`);
    assert.ok(keyedHits >= 50, `only ${keyedHits} keyed rules matched a packet`);
  });
});
