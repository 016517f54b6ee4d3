// The daemon's view of a packet's connection (src/daemon/conntrack.ts): --ctorig*/--ctrepl*/--ctexpire read the
// table's entry (the tuples NAT rewrote, the time left), and only when a rule asks.
import assert from 'node:assert/strict';
import type { CtEntry } from '../../native/index';
import { connFromBatch } from '../../src/daemon/conntrack';
import type { PacketBatch } from '../../src/native';
import { formatIpAddr } from '../../src/rules/addr';
import { udp } from './helpers';

// A reply from the DNAT target 198.19.0.3:53 to the SNAT address 198.19.0.1:7000, as PREROUTING sees it.
const PACKET = udp('198.19.0.3', 53, '198.19.0.1', 7000);

const ENTRY: CtEntry = {
  orig: { family: 4, src: '198.18.0.2', dst: '198.19.0.2', proto: 17, sport: 40001, dport: 8053, zone: 0 },
  reply: { family: 4, src: '198.19.0.3', dst: '198.19.0.1', proto: 17, sport: 53, dport: 7000, zone: 0 },
  status: 2 | 8 | 16 | 32,
  mark: 0,
  zone: 0,
  tcpState: '',
  expiresSeconds: 29,
  packets: [1, 1],
  bytes: [32, 32],
  masqIfindex: 0,
  line: '',
};

function batch(withEntry: boolean, calls: { handle: number; gen: number }[]): PacketBatch {
  const b: Record<string, unknown> = {
    count: 1,
    ctState: new Uint8Array([2]),
    ctDir: new Uint8Array([1]),
    ctStatus: new Uint32Array([ENTRY.status]),
    ctMark: new Uint32Array([0]),
    ctZone: new Uint16Array([0]),
    ctHandle: new Uint32Array([7]),
    ctGen: new Uint32Array([3]),
  };
  if (withEntry)
    b['ctEntry'] = (handle: number, gen: number): CtEntry | undefined => {
      calls.push({ handle, gen });
      return ENTRY;
    };
  return b as unknown as PacketBatch;
}

describe('conntrack: a batch packet\'s connection', () => {
  it('reads the tuples and the time left from the entry, once, and only when asked', () => {
    const calls: { handle: number; gen: number }[] = [];
    const ct = connFromBatch(batch(true, calls), 0, PACKET, 4);
    assert.ok(ct);
    assert.equal(ct.state, 'ESTABLISHED');
    assert.equal(calls.length, 0, 'nothing is read for a rule that does not ask');
    assert.equal(formatIpAddr(ct.orig.dst), '198.19.0.2', 'the address the client asked for, not the packet\'s');
    assert.equal(ct.orig.dport, 8053);
    assert.equal(formatIpAddr(ct.orig.src), '198.18.0.2');
    assert.equal(formatIpAddr(ct.reply.dst), '198.19.0.1');
    assert.equal(ct.reply.sport, 53);
    assert.equal(ct.expiresSeconds, 29);
    assert.deepEqual(calls, [{ handle: 7, gen: 3 }]);
  });

  it('without an entry to read, the packet stands for its direction and its inverse for the other', () => {
    const ct = connFromBatch(batch(false, []), 0, PACKET, 4);
    assert.ok(ct);
    assert.equal(formatIpAddr(ct.reply.src), '198.19.0.3');
    assert.equal(formatIpAddr(ct.orig.dst), '198.19.0.3', 'the inverse of the reply: NAT unknown');
    assert.equal(ct.expiresSeconds, 0);
  });
});
