#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/: a few crafted packets per target, so a short run starts from
well-formed headers (every protocol the tracker knows, IPv6 extension headers, fragments, ICMP errors quoting a
connection) instead of searching for an IP header. Run it again after changing it; the files are committed."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def ip4(src, dst, proto, l4, frag=0):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(l4), 1, frag, 64, proto, 0, bytes(src), bytes(dst))
    return h[:10] + struct.pack('!H', csum(h)) + h[12:] + l4


def ip6(src, dst, nh, payload):
    return struct.pack('!IHBB16s16s', 0x60000000, len(payload), nh, 64, bytes(src), bytes(dst)) + payload


def tcp(sp, dp, flags):
    return struct.pack('!HHIIBBHHH', sp, dp, 1000, 0, 0x50, flags, 64240, 0, 0)


def udp(sp, dp, data=b'abcd'):
    return struct.pack('!HHHH', sp, dp, 8 + len(data), 0) + data


def icmp(t, c, rest=b'\0\x01\0\x01', data=b''):
    return struct.pack('!BBH', t, c, 0) + rest + data


def sctp(sp, dp):
    return struct.pack('!HHII', sp, dp, 0x1234, 0) + struct.pack('!BBH', 1, 0, 20) + b'\0' * 16


def dccp(sp, dp):
    return struct.pack('!HHBBHI', sp, dp, 3, 0, 0, 0) + b'\0' * 8


C4, S4 = [198, 18, 0, 1], [198, 18, 0, 2]
C6 = [0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [1]
S6 = [0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [2]

udp4 = ip4(C4, S4, 17, udp(5000, 53))
udp6 = ip6(C6, S6, 17, udp(5000, 53))
P4 = {
    'tcp-syn': ip4(C4, S4, 6, tcp(40000, 80, 0x02)),
    'tcp-synack': ip4(S4, C4, 6, tcp(80, 40000, 0x12)),
    'udp': udp4,
    'icmp-echo': ip4(C4, S4, 1, icmp(8, 0)),
    'icmp-unreach': ip4(S4, C4, 1, icmp(3, 3, b'\0' * 4, udp4[:28])),
    'sctp-init': ip4(C4, S4, 132, sctp(3000, 3868)),
    'dccp': ip4(C4, S4, 33, dccp(4000, 5000)),
    'fragment': ip4(C4, S4, 17, b'later bytes', frag=0x00b9),
    'gre': ip4(C4, S4, 47, b'\0\0\x08\0'),
}
P6 = {
    'tcp-syn': ip6(C6, S6, 6, tcp(40000, 443, 0x02)),
    'udp': udp6,
    'icmp6-echo': ip6(C6, S6, 58, icmp(128, 0)),
    'icmp6-unreach': ip6(S6, C6, 58, icmp(1, 4, b'\0' * 4, udp6[:48])),
    'hop-by-hop': ip6(C6, S6, 0, bytes([17, 0, 1, 4, 0, 0, 0, 0]) + udp(5000, 53)),
    'fragment-hdr': ip6(C6, S6, 44, bytes([17, 0, 0, 1, 0, 0, 0, 7]) + udp(5000, 53)),
    'sctp': ip6(C6, S6, 132, sctp(3000, 3868)),
}


def write(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


for fam, pkts in ((4, P4), (6, P6)):
    for name, p in pkts.items():
        write('packet', f'v{fam}-{name}', bytes([0 if fam == 4 else 1]) + p)
        # nat: source rewrite to .9 port 1024, destination rewrite to .7 port 8080, and the ICMP errors' quotes.
        new = bytearray(40)
        new[0] = 0 if fam == 4 else 1
        new[1:5] = struct.pack('!HH', 1024, 8080)
        if fam == 4:
            new[8:12] = bytes([198, 18, 0, 9])
            new[24:28] = bytes([198, 18, 0, 7])
        else:
            new[8:24] = bytes(C6[:15] + [9])
            new[24:40] = bytes(C6[:15] + [7])
        write('nat', f'v{fam}-{name}-src', bytes(new) + p)
        new[0] |= 2
        write('nat', f'v{fam}-{name}-dst', bytes(new) + p)
        if 'unreach' in name:
            new[0] |= 4
            write('nat', f'v{fam}-{name}-quote', bytes(new) + p)

# conntrack (native/conntrack_fuzz.cc): operation headers then packets: a handshake, a UDP flow with a NAT request and
# an ICMP error quoting it, then a listing.
ops = [
    (bytes([0x31, 0x05, 0, 0, 1, 0, 0, 0]), P4['tcp-syn']),
    (bytes([0x31, 0x00, 0, 0, 0, 0, 0, 0]), P4['tcp-synack']),
    (bytes([0x71, 0x03, 0x10, 0x20, 3, 1, 0, 1]), P4['udp']),
    (bytes([0x71, 0, 0, 0, 0, 0, 0, 0xfd]), P4['icmp-unreach']),
]
write('conntrack', 'v4-handshake', b''.join(h + struct.pack('!H', len(p)) + p for h, p in ops))
ops6 = [
    (bytes([0x31 | 1, 0x05, 0, 0, 1, 0, 0, 0]), P6['tcp-syn']),
    (bytes([0x71 | 1, 0x03, 0x10, 0x20, 3, 1, 0, 1]), P6['udp']),
    (bytes([0x71 | 1, 0, 0, 0, 0, 0, 0, 0xfd]), P6['icmp6-unreach']),
    (bytes([0x71 | 1, 0, 0, 0, 0, 0, 0, 0xfe]), P6['hop-by-hop']),
]
write('conntrack', 'v6-flows', b''.join(h + struct.pack('!H', len(p)) + p for h, p in ops6))
