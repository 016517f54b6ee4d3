import assert from 'node:assert/strict';
import { decodeFrame, linktypeFromCap, type Frame } from '../../src/shadow/frame';
import { LINKTYPE } from '../../src/shadow/pcap';
import { FW_MAC, PEER_MAC, eth, packet, sll } from './helpers';

function frame(r: ReturnType<typeof decodeFrame>): Frame {
  if ('skip' in r) assert.fail(`skipped: ${r.skip}`);
  return r;
}

describe('shadow: link-layer decoding', () => {
  const l3 = packet('198.18.0.2', '198.19.0.2');

  it('strips Ethernet and trims the minimum-frame padding to the IP length', () => {
    assert.ok(l3.length < 46);
    const f = frame(decodeFrame(LINKTYPE.ETHERNET, eth(PEER_MAC, FW_MAC, l3, { pad: 46 - l3.length })));
    assert.equal(f.family, 4);
    assert.deepEqual([...f.l3], [...l3]);
    assert.equal(f.l3Length, l3.length);
    assert.deepEqual([...(f.srcMac ?? [])], [...PEER_MAC]);
    assert.equal(f.pktType, 'unicast');
  });

  it('skips VLAN tags, reads IPv6, classes broadcast and multicast destinations', () => {
    const v6 = packet('2001:db8::2', '2001:db8:1::2');
    const f = frame(decodeFrame(LINKTYPE.ETHERNET, eth(PEER_MAC, FW_MAC, v6, { vlan: 7 })));
    assert.equal(f.family, 6);
    assert.equal(f.l3.length, v6.length);
    const b = frame(decodeFrame(LINKTYPE.ETHERNET, eth(PEER_MAC, new Uint8Array(6).fill(0xff), l3)));
    assert.equal(b.pktType, 'broadcast');
    const m = frame(decodeFrame(LINKTYPE.ETHERNET, eth(PEER_MAC, Uint8Array.from([0x33, 0x33, 0, 0, 0, 1]), v6)));
    assert.equal(m.pktType, 'multicast');
  });

  it('keeps the wire length of a truncated capture', () => {
    const big = packet('198.18.0.2', '198.19.0.2', { payload: new Uint8Array(1000) });
    const whole = eth(PEER_MAC, FW_MAC, big);
    const f = frame(decodeFrame(LINKTYPE.ETHERNET, whole.subarray(0, 96), whole.length));
    assert.equal(f.l3.length, 96 - 14);
    assert.equal(f.l3Length, big.length);
  });

  it('reads direction and packet type from Linux cooked headers', () => {
    assert.equal(frame(decodeFrame(LINKTYPE.LINUX_SLL, sll(4, FW_MAC, l3))).direction, 'out');
    const inb = frame(decodeFrame(LINKTYPE.LINUX_SLL, sll(0, PEER_MAC, l3)));
    assert.equal(inb.direction, 'in');
    assert.equal(inb.otherHost, false);
    assert.equal(frame(decodeFrame(LINKTYPE.LINUX_SLL, sll(3, PEER_MAC, l3))).otherHost, true);
    assert.equal(frame(decodeFrame(LINKTYPE.LINUX_SLL, sll(1, PEER_MAC, l3))).pktType, 'broadcast');
    const v2 = Uint8Array.from([0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 4, 6, ...FW_MAC, 0, 0, ...l3]);
    const f2 = frame(decodeFrame(LINKTYPE.LINUX_SLL2, v2));
    assert.equal(f2.direction, 'out');
    assert.deepEqual([...f2.l3], [...l3]);
  });

  it('reads raw IP and BSD loopback frames', () => {
    assert.equal(frame(decodeFrame(LINKTYPE.RAW, l3)).family, 4);
    const lo = frame(decodeFrame(LINKTYPE.NULL, Uint8Array.from([2, 0, 0, 0, ...l3])));
    assert.deepEqual([...lo.l3], [...l3]);
  });

  it('skips what is not IP, malformed headers and unknown link types', () => {
    const arp = Uint8Array.from([...FW_MAC, ...PEER_MAC, 0x08, 0x06, ...new Array<number>(28).fill(0)]);
    assert.deepEqual(decodeFrame(LINKTYPE.ETHERNET, arp), { skip: 'not IPv4 or IPv6' });
    assert.deepEqual(decodeFrame(LINKTYPE.ETHERNET, eth(PEER_MAC, FW_MAC, l3.subarray(0, 10))), { skip: 'malformed IPv4 header' });
    assert.deepEqual(decodeFrame(147, l3), { skip: 'link type 147 not supported' });
  });

  it('maps cap link type names', () => {
    assert.equal(linktypeFromCap('ETHERNET'), 1);
    assert.equal(linktypeFromCap('LINKTYPE_LINUX_SLL'), 113);
    assert.equal(linktypeFromCap('IEEE802_11_RADIO'), undefined);
  });
});
