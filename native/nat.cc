// See nat.h. The rewrite follows nf_nat_ipv4_manip_pkt / nf_nat_ipv6_manip_pkt and the l4 manip functions of
// nf_nat_proto.c: addresses first with the IPv4 header checksum, then the transport part with its checksum.
#include "nat.h"

#include <cstring>

namespace nfqwall {
namespace nat {

namespace {

using pkt::rd16;
using pkt::wr16;

bool icmpEchoLike(uint8_t family, uint8_t type) {
  if (family == 4) return type == 0 || type == 8 || type == 13 || type == 14 || type == 15 || type == 16 || type == 17 || type == 18;
  return type == 128 || type == 129;
}

}  // namespace

bool manipPacket(uint8_t* p, size_t len, const pkt::Parsed& h, const pkt::Tuple& target, uint8_t manip,
                 uint32_t ipOff) {
  const bool v4 = h.family == 4;
  const size_t alen = v4 ? 4 : 16;
  const size_t aoff = ipOff + (v4 ? (manip == kManipSrc ? 12 : 16) : (manip == kManipSrc ? 8 : 24));
  if (aoff + alen > len) return false;
  uint8_t* addr = p + aoff;
  const uint8_t* naddr = manip == kManipSrc ? target.src : target.dst;
  uint8_t old[16];
  std::memcpy(old, addr, alen);
  const bool addrChanged = std::memcmp(old, naddr, alen) != 0;

  // Transport part: ports, or the ICMP echo identifier.
  const bool l4 = !h.fragment && h.l4len > 0 && h.l4off < len;
  uint8_t* t = l4 ? p + h.l4off : nullptr;
  const size_t tlen = l4 ? len - h.l4off : 0;
  if (l4 && pkt::hasPorts(h.proto) && tlen >= 4) {
    uint8_t* port = t + (manip == kManipSrc ? 0 : 2);
    uint16_t op = rd16(port);
    uint16_t np = manip == kManipSrc ? target.sport : target.dport;
    if (h.proto == pkt::kProtoSctp) {
      wr16(port, np);
    } else {
      int co = pkt::l4ChecksumOffset(h.proto, h.family);
      bool csum = co >= 0 && size_t(co) + 2 <= tlen;
      // UDP over IPv4 may carry no checksum (0): it stays absent.
      if (csum && h.proto == pkt::kProtoUdp && v4 && rd16(t + co) == 0) csum = false;
      if (csum) {
        if (addrChanged) pkt::csumReplace(t + co, old, naddr, alen);
        if (op != np) pkt::csumReplace16(t + co, op, np);
        if (h.proto == pkt::kProtoUdp && rd16(t + co) == 0) wr16(t + co, 0xffff);  // CSUM_MANGLED_0
      }
      wr16(port, np);
    }
  } else if (l4 && pkt::isIcmpProto(h.proto, h.family) && tlen >= 8) {
    bool csum = true;
    if (icmpEchoLike(h.family, t[0])) {
      uint16_t oid = rd16(t + 4);
      if (oid != target.sport) {
        pkt::csumReplace16(t + 2, oid, target.sport);
        wr16(t + 4, target.sport);
      }
    }
    // ICMPv6 covers a pseudo-header; ICMP does not.
    if (!v4 && addrChanged && csum) pkt::csumReplace(t + 2, old, naddr, alen);
  }

  if (addrChanged) {
    if (v4) pkt::csumReplace(p + ipOff + 10, old, naddr, alen);
    std::memcpy(addr, naddr, alen);
  }
  // SCTP's CRC32c covers no pseudo-header but does cover the ports: recompute it when the whole chunk data is here.
  if (l4 && h.proto == pkt::kProtoSctp && ipOff == 0 && tlen >= 12) pkt::fixSctpChecksum(t, tlen);
  return true;
}

}  // namespace nat
}  // namespace nfqwall
