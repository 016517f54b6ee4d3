// Header parsing for the connection table: the tuple of a packet, where its transport header and checksum sit, and
// the internet checksum helpers NAT rewrites use. The TypeScript reference is src/engine/packet.ts; this parser reads
// no byte past `len` on hostile input, and what it cannot read it reports instead of guessing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace nfqwall {
namespace pkt {

constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoDccp = 33;
constexpr uint8_t kProtoIcmpv6 = 58;
constexpr uint8_t kProtoSctp = 132;
constexpr uint8_t kProtoUdplite = 136;

// TCP flag bits (byte 13 of the header).
constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08, kTcpAck = 0x10, kTcpUrg = 0x20;

// A connection tuple as nf_conntrack_tuple holds it. Addresses are 16 bytes; IPv4 uses the first 4 and zeros the rest.
// For TCP/UDP/UDP-Lite/SCTP/DCCP `sport`/`dport` are the ports. For ICMP/ICMPv6 echo-like messages `sport` is the
// identifier and `dport` is (type << 8) | code, as the kernel keeps src.u.icmp.id and dst.u.icmp.{type,code}. For any
// other protocol both are 0 (the kernel's generic tracker keys on addresses only).
struct Tuple {
  uint8_t src[16];
  uint8_t dst[16];
  uint16_t sport;
  uint16_t dport;
  uint8_t proto;
  uint8_t family;  // 4 or 6
  uint16_t zone;

  bool operator==(const Tuple& o) const {
    return proto == o.proto && family == o.family && zone == o.zone && sport == o.sport && dport == o.dport &&
           std::memcmp(src, o.src, 16) == 0 && std::memcmp(dst, o.dst, 16) == 0;
  }
  bool operator!=(const Tuple& o) const { return !(*this == o); }
};

bool isIcmpProto(uint8_t proto, uint8_t family);
bool hasPorts(uint8_t proto);

// Fields of one packet that the table and NAT read. Offsets index the packet.
struct Parsed {
  bool ok = false;          // an IP header of the given family was read
  bool truncated = false;   // a header the tracker needs is cut short
  bool fragment = false;    // a fragment other than the first: no transport header
  bool isFirstFragment = false;  // more fragments follow (offset 0): ports present, payload incomplete
  uint8_t family = 0;
  uint8_t proto = 0;
  uint32_t l3len = 0;       // bytes of IP header including IPv6 extension headers
  uint32_t l4off = 0;       // offset of the transport header (valid when l4len > 0)
  uint32_t l4len = 0;       // bytes of the packet from l4off on (within len)
  uint32_t ipLen = 0;       // IP total length (IPv4) or 40 + payload length (IPv6), as the header says
  Tuple tuple{};
  uint8_t tcpFlags = 0;
  uint8_t icmpType = 0, icmpCode = 0;
  uint32_t tcpSeq = 0, tcpAck = 0;
  uint8_t sctpChunk = 0xff;  // type of the first SCTP chunk, 0xff when none
  // Stable across NAT and forwarding (no addresses, ports, TTL or checksums): recognises the same packet at a later hook.
  uint32_t fingerprint = 0;
};

Parsed parse(const uint8_t* p, size_t len, uint8_t family);

// The tuple of the packet an ICMP error quotes, with the offset of the quoted IP header. False when the error quotes
// nothing the tracker can use (too short, a non-first fragment, a nested error).
struct Inner {
  Parsed hdr;          // l4off relative to the packet; l3len relative to the quoted header
  uint32_t ipOff = 0;  // offset of the quoted IP header in the packet
};
bool parseIcmpErrorInner(const uint8_t* p, size_t len, const Parsed& outer, Inner& out);
bool isIcmpError(uint8_t family, uint8_t type);

// One's-complement arithmetic.
uint32_t sum16(const uint8_t* d, size_t n, uint32_t init = 0);
uint16_t fold(uint32_t s);
inline uint16_t rd16(const uint8_t* d) { return uint16_t((d[0] << 8) | d[1]); }
inline void wr16(uint8_t* d, uint16_t v) {
  d[0] = uint8_t(v >> 8);
  d[1] = uint8_t(v);
}
inline uint32_t rd32(const uint8_t* d) {
  return (uint32_t(d[0]) << 24) | (uint32_t(d[1]) << 16) | (uint32_t(d[2]) << 8) | d[3];
}
// RFC 1624 eqn. 3 for the 16-bit checksum at `check`: `n` bytes (even) changed from `from` to `to`.
void csumReplace(uint8_t* check, const uint8_t* from, const uint8_t* to, size_t n);
void csumReplace16(uint8_t* check, uint16_t from, uint16_t to);
// Recomputes the IPv4 header checksum.
void fixIpv4Checksum(uint8_t* p);
// Full transport checksum (TCP/UDP/UDP-Lite/DCCP/ICMPv6 with pseudo-header, ICMP without), written in place.
void fixTransportChecksum(uint8_t* p, size_t len, const Parsed& h);
// Offset within the transport header of the checksum field with a pseudo-header, or -1.
int l4ChecksumOffset(uint8_t proto, uint8_t family);

// What the kernel's tcp_error and udp_error refuse before any state (nf_conntrack_proto_tcp.c, _udp.c): a TCP data
// offset under 5 words or past the segment, a UDP length under 8 or past the datagram. Lengths are the IP header's.
bool transportHeaderValid(const uint8_t* p, size_t len, const Parsed& h);

// The MSS option of a TCP header (kind 2, length 4), or 0 when it has none or its options are cut short or malformed.
uint16_t tcpMssOption(const uint8_t* p, size_t len, const Parsed& h);

// Whether the TCP, UDP, ICMP or ICMPv6 checksum of a whole packet is right (nf_ip_checksum / nf_ip6_checksum; an
// UDP checksum of 0 is taken as none, in both families, as conntrack does). True for other protocols and for packets not held whole.
bool transportChecksumOk(const uint8_t* p, size_t len, const Parsed& h);
// CRC32c over the SCTP packet with its checksum field zeroed (RFC 4960 appendix B), written in place.
void fixSctpChecksum(uint8_t* l4, size_t n);
uint32_t crc32c(const uint8_t* d, size_t n);

}  // namespace pkt
}  // namespace nfqwall
