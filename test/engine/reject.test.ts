import assert from 'node:assert/strict';
import type { PacketMeta } from '../../src/extensions/types';
import { parsePacket } from '../../src/engine/packet';
import { buildReject } from '../../src/engine/reject';
import type { Hook } from '../../src/rules/model';
import { VEC } from './vectors';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array | undefined): string | undefined => (b ? Buffer.from(b).toString('hex') : undefined);
const meta = (hook: Hook = 'INPUT', pktType: PacketMeta['pktType'] = 'unicast'): PacketMeta => ({
  hook,
  inIface: 'eth0',
  mark: 0,
  pktType,
});

describe('REJECT replies (nf_reject_ipv4/ipv6, icmp_send)', () => {
  it('tcp-reset to a SYN: seq 0, ack = seq + 1, RST|ACK, DF, id 0, TTL 64', () => {
    const p = parsePacket(hex(VEC.syn4), 4);
    assert.equal(toHex(buildReject(p, meta(), 'tcp-reset')), VEC.rst4syn);
  });

  it('tcp-reset to an ACK segment: seq = its ack, no ACK flag', () => {
    const p = parsePacket(hex(VEC.ack4), 4);
    assert.equal(toHex(buildReject(p, meta(), 'tcp-reset')), VEC.rst4ack);
  });

  it('tcp-reset to a FIN with data: ack = seq + FIN + payload length', () => {
    const p = parsePacket(hex(VEC.fin4), 4);
    assert.equal(toHex(buildReject(p, meta(), 'tcp-reset')), VEC.rst4fin);
  });

  it('no reset for a RST, a non-TCP packet, a later fragment, or a bad checksum', () => {
    const rst = hex(VEC.rst4syn);
    assert.equal(buildReject(parsePacket(rst, 4), meta(), 'tcp-reset'), undefined);
    assert.equal(buildReject(parsePacket(hex(VEC.udp4), 4), meta(), 'tcp-reset'), undefined);
    const later = hex(VEC.syn4);
    later[7] = 3; // offset 24 bytes: a later fragment
    assert.equal(buildReject(parsePacket(later, 4), meta(), 'tcp-reset'), undefined);
    const bad = hex(VEC.syn4);
    bad[bad.length - 1] ^= 0xff; // urgent pointer changed, checksum now wrong
    assert.equal(buildReject(parsePacket(bad, 4), meta(), 'tcp-reset'), undefined);
    // At OUTPUT the kernel does not check (CHECKSUM_PARTIAL).
    assert.notEqual(buildReject(parsePacket(bad, 4), meta('OUTPUT'), 'tcp-reset'), undefined);
  });

  it('icmp-port-unreachable quotes the whole packet, TOS = RT_TOS|0xc0, from the original destination', () => {
    const p = parsePacket(hex(VEC.udp4), 4);
    assert.equal(toHex(buildReject(p, meta(), 'icmp-port-unreachable')), VEC.unreach4);
  });

  it('an ICMP error is cut at 576 bytes', () => {
    const p = parsePacket(hex(VEC.bigudp4), 4);
    const r = buildReject(p, meta(), 'icmp-host-unreachable');
    assert.ok(r);
    assert.equal(r.length, 576);
    assert.equal(r[21], 1);
    assert.deepEqual(r.subarray(28), hex(VEC.bigudp4).subarray(0, 548));
  });

  it('the source of an ICMP error can be given (forwarded packets)', () => {
    const p = parsePacket(hex(VEC.udp4), 4);
    const r = buildReject(p, meta('FORWARD'), 'icmp-admin-prohibited', Uint8Array.of(198, 18, 9, 9));
    assert.ok(r);
    assert.deepEqual(Array.from(r.subarray(12, 16)), [198, 18, 9, 9]);
    assert.equal(r[21], 13);
    const ph = parsePacket(r, 4);
    assert.equal(ph.icmpType, 3);
  });

  it('no ICMP error about an ICMP error, a later fragment, a broadcast or a multicast', () => {
    const unreach = parsePacket(hex(VEC.unreach4), 4);
    assert.equal(buildReject(unreach, meta(), 'icmp-port-unreachable'), undefined);
    const frag = hex(VEC.udp4);
    frag[7] = 1; // offset 8 bytes
    assert.equal(buildReject(parsePacket(frag, 4), meta(), 'icmp-port-unreachable'), undefined);
    assert.equal(buildReject(parsePacket(hex(VEC.udp4), 4), meta('INPUT', 'broadcast'), 'icmp-port-unreachable'), undefined);
    const mc = hex(VEC.udp4);
    mc[16] = 224;
    assert.equal(buildReject(parsePacket(mc, 4), meta('OUTPUT'), 'icmp-port-unreachable'), undefined);
  });

  it('IPv6 tcp-reset', () => {
    const p = parsePacket(hex(VEC.syn6), 6);
    assert.equal(toHex(buildReject(p, meta(), 'tcp-reset')), VEC.rst6);
  });

  it('IPv6 port unreachable', () => {
    const p = parsePacket(hex(VEC.udp6), 6);
    assert.equal(toHex(buildReject(p, meta(), 'icmp6-port-unreachable')), VEC.unreach6);
  });

  it('no ICMPv6 error about an ICMPv6 error, nor from a multicast destination', () => {
    assert.equal(buildReject(parsePacket(hex(VEC.unreach6), 6), meta(), 'icmp6-port-unreachable'), undefined);
    const mc = hex(VEC.udp6);
    mc[24] = 0xff;
    assert.equal(buildReject(parsePacket(mc, 6), meta('OUTPUT'), 'icmp6-adm-prohibited'), undefined);
  });

  it('the kind must fit the family', () => {
    assert.equal(buildReject(parsePacket(hex(VEC.udp6), 6), meta(), 'icmp-port-unreachable'), undefined);
  });
});
