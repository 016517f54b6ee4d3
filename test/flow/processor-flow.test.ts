// The processor's side of the flow cache: which packets it asks the native cache to store (VerdictOptions.cachePaths,
// cacheGeneration), with a real engine and fake batches.
import assert from 'node:assert/strict';
import { craftPacket } from '../../src/engine/craft';
import { Engine } from '../../src/engine/engine';
import { StaticHost } from '../../src/engine/host';
import { EmptySets } from '../../src/engine/sets';
import { FlowPaths } from '../../src/daemon/flow-paths';
import { FakeCache } from './fake-cache';
import { BatchProcessor, type Tracer } from '../../src/daemon/processor';
import type { PacketBatch } from '../../src/native';
import { parseRuleset } from '../../src/rules/parse';
import type { Ruleset } from '../../src/rules/model';

interface Pkt {
  dport?: number;
  proto?: number;
  /** ctState column: 1 NEW, 2 ESTABLISHED. */
  state?: number;
  /** ctStatus column (IPS_*): SEEN_REPLY, ASSURED and CONFIRMED unless given. */
  status?: number;
  handle?: number;
  ctFlags?: number;
  inIf?: number;
  hook?: number;
}

const names = { name: (i: number): string | undefined => (i === 1 ? 'eth0' : i === 2 ? 'eth1' : undefined) };

function batch(pkts: Pkt[]): PacketBatch {
  const datas = pkts.map((p) =>
    craftPacket({ family: 4, src: Uint8Array.of(198, 18, 0, 2), dst: Uint8Array.of(198, 18, 0, 1), proto: p.proto ?? 6, sport: 40000, dport: p.dport ?? 80, tcpFlags: 0x10 }),
  );
  const n = pkts.length;
  const offsets = new Uint32Array(n + 1);
  let off = 0;
  datas.forEach((d, i) => {
    offsets[i] = off;
    off += d.length;
  });
  offsets[n] = off;
  const data = new Uint8Array(off);
  datas.forEach((d, i) => data.set(d, offsets[i]));
  return {
    seq: 1,
    count: n,
    ids: Uint32Array.from(pkts, (_, i) => i + 1),
    hooks: Uint8Array.from(pkts, (p) => p.hook ?? 1),
    protos: new Uint16Array(n).fill(0x0800),
    marks: new Uint32Array(n),
    inIf: Uint32Array.from(pkts, (p) => p.inIf ?? 1),
    outIf: new Uint32Array(n),
    physInIf: new Uint32Array(n),
    physOutIf: new Uint32Array(n),
    uids: new Uint32Array(n).fill(0xffffffff),
    gids: new Uint32Array(n).fill(0xffffffff),
    origLens: Uint32Array.from(datas, (d) => d.length),
    flags: new Uint8Array(n),
    hwAddrs: new Uint8Array(n * 6),
    hwLens: new Uint8Array(n),
    offsets,
    data,
    ctState: Uint8Array.from(pkts, (p) => p.state ?? 2),
    ctDir: new Uint8Array(n),
    ctStatus: Uint32Array.from(pkts, (p) => p.status ?? 0xe),
    ctMark: new Uint32Array(n),
    ctZone: new Uint16Array(n),
    ctHandle: Uint32Array.from(pkts, (p, i) => p.handle ?? i + 1),
    ctGen: new Uint32Array(n).fill(1),
    ctFlags: Uint8Array.from(pkts, (p) => p.ctFlags ?? 0),
  };
}

const RULES = `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 7000 -j TTL --ttl-set 9
-A INPUT -p tcp -m tcp --dport 7001 -j MARK --set-mark 0x11
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j LOG --log-prefix "ssh "
-A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp -m tcp --dport 24 -j CONNMARK --set-mark 0x5
-A INPUT -p tcp -m tcp --dport 25 -m limit --limit 1/sec -j ACCEPT
-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 7001 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 7000 -j ACCEPT
COMMIT
`;

function setup(opts: { tracer?: Tracer; noFlow?: boolean } = {}): { p: BatchProcessor; paths: FlowPaths; cache: FakeCache; rs: Ruleset } {
  const rs = parseRuleset(RULES, 'flow.rules', { family: 4 });
  const engine = new Engine({ rules4: rs, host: new StaticHost(), sets: new EmptySets() });
  const cache = new FakeCache(3);
  const paths = new FlowPaths(cache);
  const p = new BatchProcessor(engine, names, {
    failOpen: false,
    sendReply: () => undefined,
    tracer: opts.tracer,
    ...(opts.noFlow === true ? {} : { flow: paths }),
  });
  return { p, paths, cache, rs };
}

describe('flow cache: processor', () => {
  it('asks to store stable ESTABLISHED decisions, one path per counter list, in the current generation', () => {
    const { p } = setup();
    const v = p.process(batch([{ dport: 80 }, { dport: 443 }, { dport: 80, handle: 9 }, { dport: 81 }]));
    assert.equal(v.cacheGeneration, 3);
    const paths = [...v.cachePaths!];
    assert.ok(paths.every((x) => x !== 0), `all four stored: ${paths.join(',')}`);
    assert.equal(paths[0], paths[2], 'the same rules counted: the same path');
    assert.notEqual(paths[0], paths[1]);
    assert.notEqual(paths[0], paths[3]);
  });

  it('stores nothing for unconfirmed NEW packets, RELATED ones, packets without an entry, created or fragment packets', () => {
    const { p } = setup();
    const v = p.process(batch([{ state: 1, status: 0 }, { handle: 0 }, { ctFlags: 1 }, { ctFlags: 4 }, { state: 3 }]));
    assert.equal(v.cachePaths, undefined);
  });

  it('stores the decisions of a confirmed connection still NEW (a one-way flow before any reply)', () => {
    const { p } = setup();
    // CONFIRMED without SEEN_REPLY: the entry's first packet has left, none has come back.
    const v = p.process(batch([{ state: 1, status: 0x8 }, { state: 1, status: 0x8, handle: 9 }]));
    assert.ok([...v.cachePaths!].every((x) => x !== 0), `both stored: ${[...v.cachePaths!].join(',')}`);
  });

  it('stores nothing for a log line, a REJECT reply, a CONNMARK update, an unstable match or a rewrite', () => {
    const { p } = setup();
    const v = p.process(batch([{ dport: 22 }, { dport: 23 }, { dport: 24 }, { dport: 25 }, { dport: 7000 }, { dport: 80 }]));
    assert.deepEqual([...v.cachePaths!].map((x) => x !== 0), [false, false, false, false, false, true]);
    assert.ok(v.payloads?.[4] !== undefined, 'the TTL rewrite went out as a payload');
  });

  it('stores a decision that sets the packet mark (the cache replays the mark)', () => {
    const { p } = setup();
    const v = p.process(batch([{ dport: 7001 }]));
    assert.notEqual(v.cachePaths?.[0] ?? 0, 0);
    assert.equal(v.setMark?.[0], 1);
    assert.equal(v.marks?.[0], 0x11);
  });

  it('stores nothing without a path table, or while someone traces', () => {
    assert.equal(setup({ noFlow: true }).p.process(batch([{ dport: 80 }])).cachePaths, undefined);
    const tracer: Tracer = { active: true, wants: () => false, publish: () => undefined };
    assert.equal(setup({ tracer }).p.process(batch([{ dport: 80 }])).cachePaths, undefined);
  });

  it('a drain of the stored path moves exactly the counters the JavaScript decision moved', () => {
    const { p, paths, cache, rs } = setup();
    const all = (): number[] => {
      const out: number[] = [];
      for (const t of rs.tables.values())
        for (const c of t.chains.values()) {
          out.push(c.counters.packets);
          for (const r of c.rules) out.push(r.counters.packets);
        }
      return out;
    };
    const c0 = all();
    const v = p.process(batch([{ dport: 7001 }]));
    const c1 = all();
    const id = v.cachePaths![0]! - 1;
    cache.pending.push(v.cacheGeneration!, id, 5, 5 * 40);
    assert.equal(paths.drain(), 5);
    const c2 = all();
    const moved1 = c1.map((x, i) => x - c0[i]!);
    const moved2 = c2.map((x, i) => x - c1[i]!);
    assert.deepEqual(moved2, moved1.map((x) => x * 5));
    assert.ok(moved1.some((x) => x > 0));
  });
});
