import assert from 'node:assert/strict';
import { craftPacket } from '../../src/engine/craft';
import { formatLogLine } from '../../src/engine/logformat';
import { parsePacket } from '../../src/engine/packet';
import type { PacketMeta } from '../../src/extensions/types';
import { parseIpAddr } from '../../src/rules/addr';
import { v4 } from './build';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));

describe('formatLogLine (nf_log_syslog.c)', () => {
  const meta: PacketMeta = { hook: 'INPUT', inIface: 'eth0', mark: 0, pktType: 'unicast' };

  it('IPv4 TCP SYN, as the kernel prints it', () => {
    const d = craftPacket({
      family: 4,
      src: v4('203.0.113.7'),
      dst: v4('192.0.2.10'),
      proto: 6,
      sport: 51514,
      dport: 22,
      ttl: 52,
      id: 4242,
      df: true,
      tcpFlags: 0x02,
      tcpOptions: hex('020405b4'),
    });
    const line = formatLogLine(parsePacket(d, 4), meta, { prefix: 'nfqwall-drop: ' });
    assert.equal(
      line,
      'nfqwall-drop: IN=eth0 OUT= MAC= SRC=203.0.113.7 DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=52 ID=4242 DF ' +
        'PROTO=TCP SPT=51514 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 ',
    );
  });

  it('TCP sequence and options, TOS/PREC split, MARK, UID', () => {
    const d = craftPacket({
      family: 4,
      src: v4('10.0.0.1'),
      dst: v4('10.0.0.2'),
      proto: 6,
      sport: 1,
      dport: 2,
      seq: 7,
      ack: 9,
      tos: 0xb8,
      tcpFlags: 0xd1, // CWR ECE ACK FIN
      tcpOptions: hex('0101080a'),
    });
    const line = formatLogLine(
      parsePacket(d, 4),
      { hook: 'OUTPUT', outIface: 'eth1', mark: 0x4000, uid: 1000, gid: 100, pktType: 'unicast' },
      { prefix: '', tcpSequence: true, tcpOptions: true, uid: true },
    );
    assert.equal(
      line,
      'IN= OUT=eth1 SRC=10.0.0.1 DST=10.0.0.2 LEN=44 TOS=0x18 PREC=0xA0 TTL=64 ID=0 PROTO=TCP SPT=1 DPT=2 SEQ=7 ACK=9 ' +
        'WINDOW=64240 RES=0x00 CWR ECE ACK FIN URGP=0 OPT (0101080A) UID=1000 GID=100 MARK=0x4000 ',
    );
  });

  it('UDP, and an ICMP error with the quoted packet in brackets', () => {
    const udp = craftPacket({ family: 4, src: v4('10.0.0.1'), dst: v4('10.0.0.2'), proto: 17, sport: 5353, dport: 53, payload: hex('00') });
    assert.equal(
      formatLogLine(parsePacket(udp, 4), { ...meta, inIface: undefined }, { prefix: 'p ' }),
      'p IN= OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=29 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=UDP SPT=5353 DPT=53 LEN=9 ',
    );
    const icmp = craftPacket({ family: 4, src: v4('10.0.0.2'), dst: v4('10.0.0.1'), proto: 1, icmpType: 3, icmpCode: 3, payload: udp });
    assert.equal(
      formatLogLine(parsePacket(icmp, 4), { ...meta, inIface: undefined }, { prefix: '' }),
      'IN= OUT= SRC=10.0.0.2 DST=10.0.0.1 LEN=57 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=ICMP TYPE=3 CODE=3 ' +
        '[SRC=10.0.0.1 DST=10.0.0.2 LEN=29 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=UDP SPT=5353 DPT=53 LEN=9 ] ',
    );
  });

  it('ICMP echo and a truncated TCP header', () => {
    const echo = craftPacket({ family: 4, src: v4('1.1.1.1'), dst: v4('2.2.2.2'), proto: 1, icmpType: 8, icmpRest: 0x00070009 });
    assert.match(formatLogLine(parsePacket(echo, 4), { ...meta, inIface: undefined }, { prefix: '' }), /PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=9 $/);
    const t = craftPacket({ family: 4, src: v4('1.1.1.1'), dst: v4('2.2.2.2'), proto: 6, sport: 1, dport: 2 }).slice(0, 30);
    t[3] = 30;
    assert.match(formatLogLine(parsePacket(t, 4), { ...meta, inIface: undefined, mark: 5 }, { prefix: '' }), /PROTO=TCP INCOMPLETE \[10 bytes\] $/);
  });

  it('IPv6 with full-length address groups, a fragment header, ICMPv6 echo', () => {
    const src = parseIpAddr('2001:db8::1', 6)!;
    const dst = parseIpAddr('2001:db8::2', 6)!;
    const d = craftPacket({ family: 6, src, dst, proto: 58, icmpType: 128, icmpRest: 0x00010002, ttl: 255 });
    d[1] |= 0x0b; // flow label 0xb0000 >> ... bits 19-16
    assert.equal(
      formatLogLine(parsePacket(d, 6), { ...meta, inIface: undefined }, { prefix: '' }),
      'IN= OUT= SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0002 LEN=48 TC=0 ' +
        'HOPLIMIT=255 FLOWLBL=720896 PROTO=ICMPv6 TYPE=128 CODE=0 ID=1 SEQ=2 ',
    );
    const u = craftPacket({ family: 6, src, dst, proto: 17, sport: 1, dport: 2 });
    const f = new Uint8Array(u.length + 8);
    f.set(u.subarray(0, 40));
    f[6] = 44;
    f[5] = u[5] + 8;
    f[40] = 17;
    f[42] = 0x00;
    f[43] = 0x01; // offset 0, M
    f.set(hex('0000abcd'), 44);
    f.set(u.subarray(40), 48);
    assert.equal(
      formatLogLine(parsePacket(f, 6), { ...meta, inIface: undefined }, { prefix: '', ipOptions: true }),
      'IN= OUT= SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0002 LEN=56 TC=0 ' +
        'HOPLIMIT=64 FLOWLBL=0 OPT ( FRAG:0 INCOMPLETE ID:0000abcd ) PROTO=UDP SPT=1 DPT=2 LEN=8 ',
    );
  });
});
