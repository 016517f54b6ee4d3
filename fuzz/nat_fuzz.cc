// libFuzzer target for the NAT rewrite (native/nat.cc manipPacket), built by scripts/fuzz.sh.
// Input: a 40-byte header (byte 0: bit 0 family, bit 1 manip, bit 2 rewrite the quote of an ICMP error instead;
// bytes 1-4: new ports, bytes 8-39: new source and destination addresses), then the packet, in a buffer of exactly
// its length. Checks: no read or write past the packet, the rewritten address is in place afterwards, nothing before
// the IP header's address fields moves, and an IPv4 header checksum that was right stays right.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "nat.h"
#include "packet.h"

using namespace nfqwall;

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

bool ipv4HeaderSumOk(const uint8_t* p, size_t len, uint32_t off) {
  if (off + 20 > len) return false;
  uint32_t ihl = uint32_t(p[off] & 0x0f) * 4;
  if (ihl < 20 || off + ihl > len) return false;
  return pkt::fold(pkt::sum16(p + off, ihl)) == 0xffff;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kHdr = 40;
  if (size < kHdr) return 0;
  const uint8_t family = (data[0] & 1) ? 6 : 4;
  const uint8_t manip = (data[0] & 2) ? nat::kManipDst : nat::kManipSrc;
  const bool quote = (data[0] & 4) != 0;
  pkt::Tuple target{};
  target.family = family;
  target.sport = uint16_t(data[1] << 8 | data[2]);
  target.dport = uint16_t(data[3] << 8 | data[4]);
  const size_t alen = family == 4 ? 4 : 16;
  std::memcpy(target.src, data + 8, alen);
  std::memcpy(target.dst, data + 24, alen);

  const size_t len = size - kHdr;
  std::unique_ptr<uint8_t[]> p(new uint8_t[len ? len : 1]);
  std::memcpy(p.get(), data + kHdr, len);

  pkt::Parsed h = pkt::parse(p.get(), len, family);
  if (!h.ok) return 0;
  pkt::Parsed which = h;
  uint32_t ipOff = 0;
  if (quote) {
    pkt::Inner in;
    if (!pkt::parseIcmpErrorInner(p.get(), len, h, in)) return 0;
    which = in.hdr;
    ipOff = in.ipOff;
  }
  const bool sumWasOk = family == 4 && ipv4HeaderSumOk(p.get(), len, ipOff);
  std::unique_ptr<uint8_t[]> before(new uint8_t[len ? len : 1]);
  std::memcpy(before.get(), p.get(), len);

  if (!nat::manipPacket(p.get(), len, which, target, manip, ipOff)) return 0;

  const size_t aoff = ipOff + (family == 4 ? (manip == nat::kManipSrc ? 12 : 16) : (manip == nat::kManipSrc ? 8 : 24));
  require(aoff + alen <= len);
  require(std::memcmp(p.get() + aoff, manip == nat::kManipSrc ? target.src : target.dst, alen) == 0);
  // Version, lengths, protocol: bytes 0-9 of an IPv4 header (but the checksum), 0-7 of IPv6 are never rewritten.
  require(std::memcmp(p.get() + ipOff, before.get() + ipOff, family == 4 ? 10 : 8) == 0);
  if (sumWasOk) require(ipv4HeaderSumOk(p.get(), len, ipOff));
  // Parsing the result must still work and find the new address.
  pkt::Parsed r = pkt::parse(p.get(), len, family);
  require(r.ok);
  if (!quote) require(std::memcmp(manip == nat::kManipSrc ? r.tuple.src : r.tuple.dst, manip == nat::kManipSrc ? target.src : target.dst, alen) == 0);
  return 0;
}
