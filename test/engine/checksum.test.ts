import assert from 'node:assert/strict';
import {
  crc32c,
  csumUpdate16,
  internetChecksum,
  ipv4HeaderChecksum,
  transportChecksum,
  transportChecksumValid,
} from '../../src/engine/checksum';
import { craftPacket } from '../../src/engine/craft';
import { parsePacket } from '../../src/engine/packet';
import { setAddress, setPort, setTcpMss, setTos, setTtl } from '../../src/engine/rewrite';
import type { ParsedPacket } from '../../src/extensions/types';
import { parseIpAddr } from '../../src/rules/addr';
import { v4 } from './build';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));

function ipv4HeaderOk(d: Uint8Array): boolean {
  return internetChecksum(d, 0, (d[0] & 0x0f) * 4) === 0;
}

function l4Ok(p: ParsedPacket): boolean {
  return transportChecksumValid(p.family, p.src, p.dst, p.protocol, p.data, p.l4Offset);
}

describe('checksums', () => {
  it('RFC 1071 example and an odd-length tail', () => {
    // 0001 f203 f4f5 f6f7 sums to 0xddf2; the checksum is its complement.
    assert.equal(internetChecksum(hex('0001f203f4f5f6f7')), 0x220d);
    assert.equal(internetChecksum(hex('01')), ~0x0100 & 0xffff);
  });

  it('a known IPv4 header checksum', () => {
    // The classic example header, checksum 0xb861.
    assert.equal(ipv4HeaderChecksum(hex('450000730000400040110000c0a80001c0a800c7')), 0xb861);
    assert.ok(ipv4HeaderOk(hex('45000073000040004011b861c0a80001c0a800c7')));
  });

  it('RFC 1624 incremental update equals a full recompute', () => {
    const h = hex('45000073000040004011b861c0a80001c0a800c7');
    const old = (h[8] << 8) | h[9];
    h[8] = 63; // TTL 64 → 63
    const inc = csumUpdate16(0xb861, old, (h[8] << 8) | h[9]);
    assert.equal(inc, ipv4HeaderChecksum(h));
  });

  it('CRC32c check value (RFC 3720 / iSCSI: "123456789")', () => {
    assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  });

  it('crafted TCP/UDP/ICMP/ICMPv6 packets verify', () => {
    const s6 = parseIpAddr('2001:db8::1', 6)!;
    const d6 = parseIpAddr('2001:db8::2', 6)!;
    const pkts = [
      parsePacket(craftPacket({ family: 4, src: v4('198.18.0.1'), dst: v4('198.18.1.1'), proto: 6, sport: 1, dport: 2, payload: hex('0102030405') }), 4),
      parsePacket(craftPacket({ family: 4, src: v4('198.18.0.1'), dst: v4('198.18.1.1'), proto: 17, sport: 1, dport: 2 }), 4),
      parsePacket(craftPacket({ family: 4, src: v4('198.18.0.1'), dst: v4('198.18.1.1'), proto: 1 }), 4),
      parsePacket(craftPacket({ family: 6, src: s6, dst: d6, proto: 58, icmpType: 128, payload: hex('aabbcc') }), 6),
    ];
    for (const p of pkts) assert.ok(l4Ok(p), `proto ${p.protocol}`);
  });
});

describe('rewrite helpers keep checksums right', () => {
  const s4 = v4('198.18.0.1');
  const d4 = v4('198.18.1.1');
  const s6 = parseIpAddr('2001:db8::1', 6)!;
  const d6 = parseIpAddr('2001:db8::2', 6)!;

  it('setTtl / setTos on IPv4 fix the header checksum; on IPv6 set hop limit and traffic class', () => {
    const p = parsePacket(craftPacket({ family: 4, src: s4, dst: d4, proto: 6, sport: 1, dport: 2, ttl: 64, tos: 0 }), 4);
    setTtl(p, 3);
    setTos(p, 0xb8);
    assert.equal(p.data[8], 3);
    assert.equal(p.data[1], 0xb8);
    assert.ok(ipv4HeaderOk(p.data));
    const re = parsePacket(p.data, 4);
    assert.deepEqual([re.ttl, re.tos], [3, 0xb8]);
    const q = parsePacket(craftPacket({ family: 6, src: s6, dst: d6, proto: 17, sport: 1, dport: 2 }), 6);
    q.data[1] |= 0x0a; // flow label bits must survive
    setTos(q, 0xb8);
    setTtl(q, 9);
    const r = parsePacket(q.data, 6);
    assert.deepEqual([r.tos, r.ttl, q.data[0] >> 4, q.data[1] & 0x0f], [0xb8, 9, 6, 0x0a]);
  });

  it('setAddress + setPort on TCP (v4 and v6) equal a full recompute', () => {
    for (const [family, src, dst, nsrc] of [
      [4, s4, d4, v4('203.0.113.9')],
      [6, s6, d6, parseIpAddr('2001:db8:ffff::77', 6)!],
    ] as const) {
      const p = parsePacket(craftPacket({ family, src, dst, proto: 6, sport: 1000, dport: 80, payload: hex('00ff00ff11') }), family);
      setAddress(p, 'src', nsrc);
      setPort(p, 'dst', 8080);
      setAddress(p, 'dst', src);
      setPort(p, 'src', 65535);
      const re = parsePacket(p.data, family);
      assert.deepEqual([...re.src], [...nsrc]);
      assert.deepEqual([re.sport, re.dport], [65535, 8080]);
      if (family === 4) assert.ok(ipv4HeaderOk(p.data));
      assert.ok(l4Ok(re), `family ${family}`);
      const stored = (p.data[re.l4Offset + 16] << 8) | p.data[re.l4Offset + 17];
      const full = transportChecksum(family, re.src, re.dst, 6, p.data, re.l4Offset);
      assert.equal(stored === 0xffff ? 0 : stored, full === 0xffff ? 0 : full);
    }
  });

  it('UDP: a zero checksum stays zero on IPv4; a computed zero becomes 0xffff', () => {
    const p = parsePacket(craftPacket({ family: 4, src: s4, dst: d4, proto: 17, sport: 1, dport: 2, udpNoChecksum: true }), 4);
    setAddress(p, 'dst', v4('10.9.8.7'));
    setPort(p, 'dst', 99);
    assert.equal((p.data[26] << 8) | p.data[27], 0);
    assert.ok(ipv4HeaderOk(p.data));
    // Search a port that makes the incremental result 0 and check it is sent as 0xffff, and still verifies.
    const q0 = craftPacket({ family: 4, src: s4, dst: d4, proto: 17, sport: 1, dport: 2 });
    let found = false;
    for (let port = 0; port < 65536 && !found; port++) {
      const q = parsePacket(q0.slice(), 4);
      setPort(q, 'src', port);
      const c = (q.data[26] << 8) | q.data[27];
      assert.notEqual(c, 0);
      if (c === 0xffff) {
        found = true;
        assert.ok(l4Ok(q));
      }
    }
    assert.ok(found, 'some port yields a checksum of 0xffff');
  });

  it('ICMPv6 checksum follows an address change (pseudo-header)', () => {
    const p = parsePacket(craftPacket({ family: 6, src: s6, dst: d6, proto: 58, icmpType: 128 }), 6);
    setAddress(p, 'dst', parseIpAddr('2001:db8::99', 6)!);
    assert.ok(l4Ok(parsePacket(p.data, 6)));
  });

  it('SCTP port change recomputes the CRC32c', () => {
    const p = parsePacket(craftPacket({ family: 4, src: s4, dst: d4, proto: 132, sport: 5, dport: 6, payload: hex('0011223344556677') }), 4);
    setPort(p, 'dst', 7777);
    const o = p.l4Offset;
    const stored = p.data[o + 8] | (p.data[o + 9] << 8) | (p.data[o + 10] << 16) | (p.data[o + 11] << 24);
    const copy = p.data.slice(o);
    copy.fill(0, 8, 12);
    assert.equal(stored >>> 0, crc32c(copy));
  });

  it('setTcpMss lowers an MSS option, never raises it', () => {
    const opts = hex('020405b4'); // MSS 1460
    const p = parsePacket(craftPacket({ family: 4, src: s4, dst: d4, proto: 6, sport: 1, dport: 2, tcpOptions: opts }), 4);
    assert.equal(setTcpMss(p, 1500), false);
    assert.equal(setTcpMss(p, 1400), true);
    assert.equal((p.data[42] << 8) | p.data[43], 1400);
    assert.ok(l4Ok(parsePacket(p.data, 4)));
  });

  it('setTcpMss finds an MSS option at an odd offset after NOPs', () => {
    const opts = hex('01020405b4000000'); // NOP, MSS 1460, EOL padding
    const p = parsePacket(craftPacket({ family: 6, src: s6, dst: d6, proto: 6, sport: 1, dport: 2, tcpOptions: opts }), 6);
    assert.equal(setTcpMss(p, 1220), true);
    assert.equal((p.data[40 + 23] << 8) | p.data[40 + 24], 1220);
    assert.ok(l4Ok(parsePacket(p.data, 6)));
  });

  it('setTcpMss inserts an option (capped at 536 for IPv4) when there is none and no payload', () => {
    const p = parsePacket(craftPacket({ family: 4, src: s4, dst: d4, proto: 6, sport: 1, dport: 2 }), 4);
    assert.equal(setTcpMss(p, 1400), true);
    const re = parsePacket(p.data, 4);
    assert.equal(p.data.length, 44);
    assert.equal(re.length, 44);
    assert.equal((p.data[2] << 8) | p.data[3], 44);
    assert.equal(p.data[32] >> 4, 6);
    assert.deepEqual([...p.data.subarray(40, 44)], [2, 4, 0x02, 0x18]);
    assert.ok(ipv4HeaderOk(p.data));
    assert.ok(l4Ok(re));
    const withData = parsePacket(craftPacket({ family: 4, src: s4, dst: d4, proto: 6, sport: 1, dport: 2, payload: hex('00') }), 4);
    assert.equal(setTcpMss(withData, 1400), false, 'payload after the header: unchanged');
  });
});
