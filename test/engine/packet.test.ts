import assert from 'node:assert/strict';
import { craftPacket } from '../../src/engine/craft';
import { ipv6HeaderChainBroken, parsePacket } from '../../src/engine/packet';
import type { ParsedPacket } from '../../src/extensions/types';
import { parseIpAddr } from '../../src/rules/addr';
import { v4 } from './build';

const S6 = parseIpAddr('2001:db8::1', 6)!;
const D6 = parseIpAddr('2001:db8::2', 6)!;

/** An IPv6 TCP packet behind hop-by-hop (8), routing (24), fragment (8, offset 0) and dstopts (16) headers. */
function v6WithChain(): Uint8Array {
  const base = craftPacket({ family: 6, src: S6, dst: D6, proto: 6, sport: 1234, dport: 443, tcpFlags: 0x12 });
  const ext = new Uint8Array(8 + 24 + 8 + 16);
  ext[0] = 43; // hbh → routing
  ext[1] = 0;
  ext[8] = 44; // routing → fragment
  ext[9] = 2; // (2+1)*8 = 24
  ext[32] = 60; // fragment → dstopts, offset 0, M=1
  ext[35] = 1;
  ext[40] = 6; // dstopts → tcp
  ext[41] = 1; // 16 bytes
  const out = new Uint8Array(base.length + ext.length);
  out.set(base.subarray(0, 40));
  out[6] = 0;
  out[5] = base[5] + ext.length;
  out.set(ext, 40);
  out.set(base.subarray(40), 40 + ext.length);
  return out;
}

function assertSane(p: ParsedPacket): void {
  const n = p.data.length;
  assert.ok(p.l4Offset === -1 || (p.l4Offset >= 0 && p.l4Offset <= n), `l4Offset ${p.l4Offset} of ${n}`);
  for (const h of p.extHeaders) assert.ok(h.offset >= 0 && h.offset < n, `ext at ${h.offset} of ${n}`);
  assert.ok(p.src.length === (p.family === 4 ? 4 : 16));
  if (p.sport >= 0) assert.ok(p.l4Offset >= 0 && p.l4Offset + 4 <= n);
}

describe('parsePacket', () => {
  it('IPv4 TCP: addresses, ports, flags, ttl, tos, id, DF', () => {
    const d = craftPacket({
      family: 4,
      src: v4('198.18.0.1'),
      dst: v4('198.18.1.1'),
      proto: 6,
      sport: 40000,
      dport: 22,
      tcpFlags: 0x12,
      ttl: 52,
      tos: 0x10,
      id: 4242,
      df: true,
    });
    const p = parsePacket(d, 4);
    assert.deepEqual([...p.src], [198, 18, 0, 1]);
    assert.deepEqual([...p.dst], [198, 18, 1, 1]);
    assert.equal(p.protocol, 6);
    assert.equal(p.sport, 40000);
    assert.equal(p.dport, 22);
    assert.equal(p.tcpFlags, 0x12);
    assert.equal(p.ttl, 52);
    assert.equal(p.tos, 0x10);
    assert.equal(p.ipId, 4242);
    assert.equal(p.dontFragment, true);
    assert.equal(p.moreFragments, false);
    assert.equal(p.fragOffset, 0);
    assert.equal(p.l3HeaderLength, 20);
    assert.equal(p.l4Offset, 20);
    assert.equal(p.length, d.length);
    assert.equal(p.truncated, false);
  });

  it('IPv4 with options and a later fragment: offset in bytes, no transport header', () => {
    const d0 = craftPacket({ family: 4, src: v4('198.18.0.1'), dst: v4('198.18.1.1'), proto: 17, sport: 1, dport: 2 });
    const d = new Uint8Array(d0.length + 4);
    d.set(d0.subarray(0, 20));
    d[0] = 0x46;
    d[20] = 1; // NOP options
    d[21] = 1;
    d[22] = 1;
    d[23] = 0;
    d.set(d0.subarray(20), 24);
    let p = parsePacket(d, 4);
    assert.equal(p.l3HeaderLength, 24);
    assert.equal(p.l4Offset, 24);
    assert.equal(p.dport, 2);
    d[6] = 0x20; // MF, offset 185*8
    d[7] = 185;
    p = parsePacket(d, 4);
    assert.equal(p.moreFragments, true);
    assert.equal(p.fragOffset, 1480);
    assert.equal(p.l4Offset, -1);
    assert.equal(p.sport, -1);
    assert.equal(p.truncated, false);
  });

  it('ICMP and ICMPv6 type/code', () => {
    const p4 = parsePacket(craftPacket({ family: 4, src: v4('1.2.3.4'), dst: v4('5.6.7.8'), proto: 1, icmpType: 3, icmpCode: 13 }), 4);
    assert.deepEqual([p4.icmpType, p4.icmpCode, p4.sport], [3, 13, -1]);
    const p6 = parsePacket(craftPacket({ family: 6, src: S6, dst: D6, proto: 58, icmpType: 135 }), 6);
    assert.deepEqual([p6.icmpType, p6.icmpCode], [135, 0]);
    // ICMP (1) inside IPv6 is not ICMPv6: no type.
    const p61 = parsePacket(craftPacket({ family: 6, src: S6, dst: D6, proto: 1 }), 6);
    assert.equal(p61.icmpType, -1);
  });

  it('SCTP, DCCP and UDP-Lite ports', () => {
    for (const proto of [132, 33, 136]) {
      const p = parsePacket(craftPacket({ family: 4, src: v4('1.2.3.4'), dst: v4('5.6.7.8'), proto, sport: 7, dport: 9 }), 4);
      assert.deepEqual([p.sport, p.dport, p.tcpFlags], [7, 9, -1], `proto ${proto}`);
    }
  });

  it('IPv6 extension header chain: protocol, offsets, the fragment header', () => {
    const d = v6WithChain();
    const p = parsePacket(d, 6);
    assert.equal(p.protocol, 6);
    assert.deepEqual(
      p.extHeaders.map((h) => [h.type, h.offset, h.length]),
      [
        [0, 40, 8],
        [43, 48, 24],
        [44, 72, 8],
        [60, 80, 16],
      ],
    );
    assert.equal(p.l3HeaderLength, 96);
    assert.equal(p.l4Offset, 96);
    assert.equal(p.moreFragments, true);
    assert.equal(p.fragOffset, 0);
    assert.equal(p.dport, 443);
    assert.equal(p.tcpFlags, 0x12);
    assert.equal(p.truncated, false);
  });

  it('IPv6 later fragment: protocol from the fragment header, no transport header', () => {
    const d = v6WithChain();
    d[74] = 0x01; // offset 256 bytes
    d[75] = 0x00;
    const p = parsePacket(d, 6);
    assert.equal(p.fragOffset, 256);
    assert.equal(p.protocol, 60, 'the next header of the fragment header (an extension header here)');
    assert.equal(p.l4Offset, -1);
    assert.equal(ipv6HeaderChainBroken(p), true, 'ipv6_find_hdr returns -ENOENT: -p rules hotdrop');
  });

  it('IPv6 no-next-header (59) ends the walk with protocol 59', () => {
    const d = craftPacket({ family: 6, src: S6, dst: D6, proto: 59 });
    const p = parsePacket(d, 6);
    assert.equal(p.protocol, 59);
    assert.equal(p.truncated, false);
    assert.equal(ipv6HeaderChainBroken(p), false);
  });

  it('every truncation point of an IPv6 TCP packet with extension headers: no throw, in bounds, truncated flagged', () => {
    const full = v6WithChain();
    for (let n = 0; n < full.length; n++) {
      const p = parsePacket(full.slice(0, n), 6);
      assertSane(p);
      assert.equal(p.truncated, true, `cut at ${n}`);
      assert.notEqual(p.tcpFlags, 0x12, `cut at ${n}: flags read past the end`);
    }
    assert.equal(parsePacket(full, 6).truncated, false);
  });

  it('every truncation point of an IPv4 TCP packet: no throw, truncated flagged', () => {
    const full = craftPacket({ family: 4, src: v4('198.18.0.1'), dst: v4('198.18.1.1'), proto: 6, sport: 1, dport: 2 });
    for (let n = 0; n < full.length; n++) {
      const p = parsePacket(full.slice(0, n), 4);
      assertSane(p);
      assert.equal(p.truncated, true, `cut at ${n}`);
    }
  });

  it('hostile input: random bytes and lying length fields never throw or read out of bounds', () => {
    let seed = 12345;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 3000; i++) {
      const n = rnd() % 120;
      const d = new Uint8Array(n);
      for (let j = 0; j < n; j++) d[j] = rnd() & 0xff;
      const family = i % 2 === 0 ? 4 : 6;
      if (n > 0) d[0] = (d[0] & 0x0f) | (family << 4);
      // Bias towards extension headers for v6.
      if (family === 6 && n > 6) d[6] = [0, 43, 44, 51, 60, 6][rnd() % 6];
      const p = parsePacket(d, family);
      assertSane(p);
    }
  });

  it('an AH chain with a self-referencing length still terminates', () => {
    const d = new Uint8Array(40 + 64 * 8);
    d[0] = 0x60;
    d[6] = 51;
    for (let o = 40; o < d.length; o += 8) {
      d[o] = 51; // AH → AH → ...
      d[o + 1] = 0; // (0+2)*4 = 8 bytes
    }
    const p = parsePacket(d, 6);
    assert.equal(p.truncated, true);
    assert.ok(p.extHeaders.length <= 64);
  });

  it('wrong version nibble is truncated, not parsed', () => {
    const d = craftPacket({ family: 4, src: v4('1.1.1.1'), dst: v4('2.2.2.2'), proto: 17, sport: 1, dport: 2 });
    const p = parsePacket(d, 6);
    assert.equal(p.truncated, true);
    assert.equal(p.l4Offset, -1);
  });
});
