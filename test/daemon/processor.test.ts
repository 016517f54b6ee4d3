import assert from 'node:assert/strict';
import type { Decision, PacketInput } from '../../src/engine/decision';
import type { PacketBatch } from '../../src/native';
import { BatchProcessor, type Decider } from '../../src/daemon/processor';

interface FakePacket {
  proto?: number;
  hook?: number;
  mark?: number;
  inIf?: number;
  outIf?: number;
  uid?: number;
  gid?: number;
  mac?: number[];
  truncatedTo?: number;
  bytes: number[];
}

let seq = 0;
function makeBatch(pkts: FakePacket[]): PacketBatch {
  const n = pkts.length;
  const offsets = new Uint32Array(n + 1);
  const chunks: number[] = [];
  const hwAddrs = new Uint8Array(n * 6);
  const hwLens = new Uint8Array(n);
  const flags = new Uint8Array(n);
  const origLens = new Uint32Array(n);
  pkts.forEach((p, i) => {
    offsets[i] = chunks.length;
    chunks.push(...p.bytes);
    if (p.mac) {
      hwAddrs.set(p.mac, i * 6);
      hwLens[i] = 6;
    }
    origLens[i] = p.truncatedTo ?? p.bytes.length;
    if (p.truncatedTo !== undefined) flags[i] = 4;
  });
  offsets[n] = chunks.length;
  return {
    seq: seq++,
    count: n,
    ids: Uint32Array.from(pkts, (_, i) => 100 + i),
    hooks: Uint8Array.from(pkts, (p) => p.hook ?? 0),
    protos: Uint16Array.from(pkts, (p) => p.proto ?? 0x0800),
    marks: Uint32Array.from(pkts, (p) => p.mark ?? 0),
    inIf: Uint32Array.from(pkts, (p) => p.inIf ?? 0),
    outIf: Uint32Array.from(pkts, (p) => p.outIf ?? 0),
    physInIf: new Uint32Array(n),
    physOutIf: new Uint32Array(n),
    uids: Uint32Array.from(pkts, (p) => p.uid ?? 0xffffffff),
    gids: Uint32Array.from(pkts, (p) => p.gid ?? 0xffffffff),
    origLens,
    flags,
    hwAddrs,
    hwLens,
    offsets,
    data: Uint8Array.from(chunks),
  };
}

const names = { name: (i: number) => ({ 1: 'lo', 2: 'veth0' })[i] };

function decision(over: Partial<Decision>): Decision {
  return { hook: 'INPUT', verdict: 'accept', mark: 0, markChanged: false, replies: [], logs: [], ...over };
}

/** Decides by the first byte of the packet: 1 accept, 2 drop, 3 queue 9, 4 mark 0x77, 5 rewrite, 6 throws. */
class ByteEngine implements Decider {
  seen: PacketInput[] = [];
  decide(input: PacketInput): Decision {
    this.seen.push(input);
    switch (input.data[0]) {
      case 1:
        return decision({});
      case 2:
        return decision({ verdict: 'drop' });
      case 3:
        return decision({ verdict: 'queue', queue: 9 });
      case 4:
        return decision({ mark: 0x77, markChanged: true });
      case 5:
        return decision({ payload: Uint8Array.of(5, 5, 5) });
      default:
        throw new Error('engine bug');
    }
  }
}

describe('daemon/processor', () => {
  it('maps each decision to its verdict, mark and payload, in packet order', () => {
    const engine = new ByteEngine();
    const p = new BatchProcessor(engine, names, { failOpen: false });
    const v = p.process(makeBatch([1, 2, 3, 4, 5].map((b) => ({ bytes: [b, 0, 0] }))));
    assert.deepEqual([...v.verdicts], [1, 0, (9 << 16) | 3, 1, 1]);
    assert.deepEqual([...v.setMark!], [0, 0, 0, 1, 0]);
    assert.equal(v.marks![3], 0x77);
    assert.deepEqual(v.payloads, [undefined, undefined, undefined, undefined, Uint8Array.of(5, 5, 5)]);
    assert.deepEqual(
      { ...p.stats },
      { batches: 1, packets: 5, accepted: 3, dropped: 1, queued: 1, marked: 1, rewritten: 1, errors: 0, replies: 0, replyErrors: 0, logs: 0 },
    );
  });

  it('leaves marks and payloads out when no packet needs them', () => {
    const p = new BatchProcessor(new ByteEngine(), names, { failOpen: false });
    const v = p.process(makeBatch([{ bytes: [1] }, { bytes: [2] }]));
    assert.deepEqual([...v.verdicts], [1, 0]);
    assert.equal(v.marks, undefined);
    assert.equal(v.setMark, undefined);
    assert.equal(v.payloads, undefined);
  });

  for (const failOpen of [false, true]) {
    it(`gives a packet whose evaluation throws the fail-${failOpen ? 'open' : 'closed'} verdict and counts it`, () => {
      const errors: number[] = [];
      const p = new BatchProcessor(new ByteEngine(), names, { failOpen, onError: (_e, i) => errors.push(i) });
      const v = p.process(makeBatch([{ bytes: [6] }, { bytes: [2] }, { bytes: [6] }, { bytes: [1] }]));
      const fail = failOpen ? 1 : 0;
      assert.deepEqual([...v.verdicts], [fail, 0, fail, 1]);
      assert.deepEqual(errors, [0, 2]);
      assert.equal(p.stats.errors, 2);
      // A packet that is not IP, or at an unknown hook, is an error too, not a crash.
      const v2 = p.process(makeBatch([{ proto: 0x0806, bytes: [1] }, { hook: 9, bytes: [1] }, { bytes: [2] }]));
      assert.deepEqual([...v2.verdicts], [fail, fail, 0]);
      assert.equal(p.stats.errors, 4);
    });
  }

  it('builds the engine input from the batch columns', () => {
    const engine = new ByteEngine();
    const p = new BatchProcessor(engine, names, { failOpen: false });
    p.process(
      makeBatch([
        { bytes: [1, 9, 9], hook: 3, proto: 0x86dd, mark: 5, outIf: 2, uid: 1000, gid: 100 },
        { bytes: [1, 8], hook: 2, inIf: 1, outIf: 77, mac: [2, 0, 0, 0, 0, 1], truncatedTo: 1500 },
      ]),
    );
    const [a, b] = engine.seen;
    assert.equal(a!.family, 6);
    assert.deepEqual([...a!.data], [1, 9, 9]);
    assert.equal(a!.length, undefined);
    assert.deepEqual(a!.meta, { hook: 'OUTPUT', mark: 5, pktType: 'unicast', outIface: 'veth0', uid: 1000, gid: 100 });
    assert.equal(b!.family, 4);
    assert.deepEqual([...b!.data], [1, 8]);
    assert.equal(b!.length, 1500);
    assert.equal(b!.meta.hook, 'FORWARD');
    assert.equal(b!.meta.inIface, 'lo');
    assert.equal(b!.meta.outIface, undefined); // index 77 unknown
    assert.equal(b!.meta.uid, undefined);
    assert.deepEqual([...b!.meta.srcMac!], [2, 0, 0, 0, 0, 1]);
  });

  it('reuses its arrays across batches and grows them for large batches', () => {
    const p = new BatchProcessor(new ByteEngine(), names, { failOpen: false });
    const v1 = p.process(makeBatch([{ bytes: [1] }]));
    const v2 = p.process(makeBatch([{ bytes: [2] }, { bytes: [2] }]));
    assert.equal(v1.verdicts.buffer, v2.verdicts.buffer);
    const big = p.process(makeBatch(Array.from({ length: 1000 }, (_, i) => ({ bytes: [i % 2 === 0 ? 1 : 2] }))));
    assert.equal(big.verdicts.length, 1000);
    assert.equal(big.verdicts[998], 1);
    assert.equal(big.verdicts[999], 0);
    assert.deepEqual([...p.failAll(3).verdicts], [0, 0, 0]);
  });

  it('sends REJECT replies, counts the ones the send refused, and passes log records on', () => {
    const lines: string[] = [];
    const sent: number[] = [];
    const engine: Decider = {
      decide: (input) =>
        decision({
          verdict: 'drop',
          replies: [Uint8Array.of(input.data[0] ?? 0)],
          logs: [{ kind: 'LOG', line: 'IN=lo OUT= SRC=x' }],
        }),
    };
    const sendReply = (packet: Uint8Array): void => {
      if (packet[0] === 2) throw new Error('sendRaw: cannot send the packet: Network is unreachable');
      sent.push(packet[0] ?? -1);
    };
    const p = new BatchProcessor(engine, names, { failOpen: false, onLog: (r) => lines.push(r.line), sendReply });
    const v = p.process(makeBatch([{ bytes: [1] }, { bytes: [2] }]));
    assert.deepEqual([...v.verdicts], [0, 0], 'a reply that cannot be sent does not change the verdict');
    assert.deepEqual(sent, [1]);
    assert.equal(p.stats.replies, 1);
    assert.equal(p.stats.replyErrors, 1);
    assert.deepEqual(lines, ['IN=lo OUT= SRC=x', 'IN=lo OUT= SRC=x']);
  });

  it('counts replies as errors when there is no way to send them', () => {
    const engine: Decider = { decide: () => decision({ verdict: 'drop', replies: [Uint8Array.of(1)] }) };
    const p = new BatchProcessor(engine, names, { failOpen: false });
    p.process(makeBatch([{ bytes: [1] }]));
    assert.equal(p.stats.replyErrors, 1);
    assert.equal(p.stats.replies, 0);
  });
  // H16: the connection table's columns in, its updates out.
  describe('with a connection table', () => {
    const tracked = (b: PacketBatch, cols: { state: number[]; dir?: number[]; status?: number[]; mark?: number[]; flags?: number[] }): PacketBatch => {
      const n = b.count;
      const z = (a: number[] | undefined): number[] => a ?? new Array<number>(n).fill(0);
      return {
        ...b,
        ctState: Uint8Array.from(cols.state),
        ctDir: Uint8Array.from(z(cols.dir)),
        ctStatus: Uint32Array.from(z(cols.status)),
        ctMark: Uint32Array.from(z(cols.mark)),
        ctZone: new Uint16Array(n),
        ctHandle: Uint32Array.from(cols.state, (_, i) => i + 1),
        ctFlags: Uint8Array.from(z(cols.flags)),
      };
    };
    // 198.18.0.2:40000 -> 198.18.0.1:80, TCP.
    const TCP = [0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1, 0x9c, 0x40, 0, 80, ...new Array<number>(16).fill(0)];

    it('gives the engine ConnInfo from the columns, with tuples read from the packet for its direction', () => {
      const seen: PacketInput[] = [];
      const engine: Decider = { decide: (input) => (seen.push(input), decision({})) };
      const p = new BatchProcessor(engine, names, { failOpen: false });
      p.process(tracked(makeBatch([{ bytes: TCP }, { bytes: TCP }]), {
        state: [1, 2], dir: [0, 1], status: [0, 10], mark: [0, 7],
      }));
      const [a, b] = seen.map((i) => i.ct!);
      assert.deepEqual([a.state, a.direction, a.status, a.mark], ['NEW', 'ORIGINAL', 0, 0]);
      assert.deepEqual([b.state, b.direction, b.status, b.mark], ['ESTABLISHED', 'REPLY', 10, 7]);
      assert.deepEqual([...a.orig.dst, a.orig.dport, a.reply.sport], [198, 18, 0, 1, 80, 80]);
      assert.deepEqual([...b.orig.src, b.orig.sport], [198, 18, 0, 1, 80], 'a reply packet is the reply tuple');
    });

    it('drops table-full packets without evaluating them', () => {
      const engine = new ByteEngine();
      const p = new BatchProcessor(engine, names, { failOpen: false });
      const v = p.process(tracked(makeBatch([{ bytes: [1] }, { bytes: [1] }]), { state: [1, 1], flags: [2, 1] }));
      assert.deepEqual([...v.verdicts], [0, 1]);
      assert.equal(engine.seen.length, 1);
      assert.equal(p.stats.ctTableFull, 1);
    });

    it('turns the decision update into ctFlags, ctMarks and ctNat (MASQUERADE naming the out interface)', () => {
      const updates: Decision['ct'][] = [
        undefined,
        { notrack: true },
        { connmark: 0x55 },
        { natRan: ['DST'] },
        { natRan: ['SRC'], nat: [{ manip: 'SRC', minAddr: Uint8Array.of(198, 19, 0, 1), maxAddr: Uint8Array.of(198, 19, 0, 1), masquerade: true, randomFully: true }] },
      ];
      let k = 0;
      const engine: Decider = { decide: () => decision({ ct: updates[k++] }) };
      const p = new BatchProcessor(engine, names, { failOpen: false });
      const v = p.process(tracked(makeBatch(updates.map(() => ({ bytes: [1], outIf: 2 }))), { state: [1, 1, 1, 1, 1] }));
      assert.deepEqual([...v.ctFlags!], [0, 1, 2, 8, 4]);
      assert.equal(v.ctMarks![2], 0x55);
      assert.deepEqual(v.ctNat, [undefined, undefined, undefined, undefined, [
        { manip: 'SRC', minAddr: '198.19.0.1', maxAddr: '198.19.0.1', randomFully: true, masqIfindex: 2 },
      ]]);
    });

    it('sends no ct options when nothing changes, and none for queues without a table', () => {
      const p = new BatchProcessor(new ByteEngine(), names, { failOpen: false });
      const v = p.process(tracked(makeBatch([{ bytes: [1] }]), { state: [2] }));
      assert.equal(v.ctFlags, undefined);
      assert.equal(v.ctNat, undefined);
      const engine = new ByteEngine();
      new BatchProcessor(engine, names, { failOpen: false }).process(makeBatch([{ bytes: [1] }]));
      assert.equal(engine.seen[0].ct, undefined);
    });
  });
});
