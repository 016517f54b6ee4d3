// libFuzzer target for the packet parser (native/packet.cc), built by scripts/fuzz.sh.
// Input: byte 0 picks the family (bit 0: IPv6), the rest is the packet, in a buffer of exactly its length so
// AddressSanitizer sees any read past it. Besides "no crash", it checks what the parser promises its callers:
// offsets stay inside the packet, parsing is deterministic, and the checksum writers touch only what they own.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "packet.h"

using namespace nfqwall;

namespace {

void require(bool ok) {
  if (!ok) std::abort();  // libFuzzer reports the abort with the input that caused it
}

// l3len of a truncated IPv6 header chain is where the next header would start, which may lie past the packet (the
// callers read l4off/l4len only); every offset of a complete parse lies inside it.
void checkBounds(const pkt::Parsed& h, size_t len) {
  if (!h.ok) return;
  if (!h.truncated) require(h.l3len <= len);
  if (h.l4len > 0) require(size_t(h.l4off) + h.l4len <= len);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t family = (data[0] & 1) ? 6 : 4;
  const size_t len = size - 1;
  std::unique_ptr<uint8_t[]> p(new uint8_t[len ? len : 1]);
  std::memcpy(p.get(), data + 1, len);

  pkt::Parsed h = pkt::parse(p.get(), len, family);
  checkBounds(h, len);
  pkt::Parsed again = pkt::parse(p.get(), len, family);
  require(again.ok == h.ok && again.tuple == h.tuple && again.fingerprint == h.fingerprint && again.l4off == h.l4off);

  pkt::Inner in;
  if (pkt::parseIcmpErrorInner(p.get(), len, h, in)) {
    require(in.ipOff < len);
    checkBounds(in.hdr, len);
  }
  if (h.ok) (void)pkt::tcpMssOption(p.get(), len, h);  // its walk over the options stays within the header
  (void)pkt::crc32c(p.get(), len);
  (void)pkt::sum16(p.get(), len);

  // The checksum writers: in place on a copy; the IP header (and for IPv4 its checksum) must come out as it went in
  // apart from the checksum field, and parsing the result gives the same tuple.
  if (h.ok) {
    std::unique_ptr<uint8_t[]> q(new uint8_t[len ? len : 1]);
    std::memcpy(q.get(), p.get(), len);
    pkt::fixTransportChecksum(q.get(), len, h);
    if (family == 4) {
      pkt::fixIpv4Checksum(q.get());
      require(pkt::fold(pkt::sum16(q.get(), h.l3len)) == 0xffff || pkt::fold(pkt::sum16(q.get(), h.l3len)) == 0);
    }
    require(std::memcmp(q.get() + (family == 4 ? 12 : 8), p.get() + (family == 4 ? 12 : 8), family == 4 ? 8 : 32) == 0);
    pkt::Parsed r = pkt::parse(q.get(), len, family);
    require(r.ok && r.tuple == h.tuple);
  }
  return 0;
}
