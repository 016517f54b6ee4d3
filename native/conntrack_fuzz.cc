// libFuzzer target for the packet parser and the connection table (scripts/fuzz.sh builds and runs it).
// One input is a sequence of operations on one long-lived table, so state built by earlier packets (NAT bindings,
// half-open connections, ICMP errors about them) meets later hostile packets. Each packet sits in a buffer of exactly
// its length, so AddressSanitizer sees any read or write past it.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "conntrack.h"
#include "packet.h"

using namespace nfqwall;

namespace {

ct::ConnTable& table() {
  static ct::ConnTable* t = [] {
    ct::Config cfg;
    cfg.maxEntries = 64;  // small, so eviction and the full-table path run too
    cfg.manualClock = true;
    cfg.seed = 1;
    return new ct::ConnTable(cfg);
  }();
  return *t;
}

// Operation header (8 bytes) then a 2-byte length and the packet:
//  b0: bit0 family (0: 4, 1: 6), bits1-3 hook (mod 5), bit4 ctPoint, bit5 accept, bit6 final, bit7 notrack
//  b1: natRan bits (0-1), request count (2-3), random flags (4-7)
//  b2-b3: port min / max low bytes, b4: address pick, b5: time step, b6: connmark (its bits also: 2 bind first, 4 hold
//  the packet undecided (up to 4), 8 commit then translate instead of finish, 16 decide the held ones, 32 newest first),
//  b7: masq ifindex
struct Held {
  ct::Classification c;
  ct::Update u;
  std::vector<uint8_t> p;
  uint8_t family, hook;
};
std::vector<Held> held;

// Commits the held packets, newest first or oldest first.
void release(ct::ConnTable& t, bool newestFirst) {
  auto one = [&t](Held& x) {
    bool changed = false;
    (void)t.finish(x.c, x.u, x.p.empty() ? nullptr : x.p.data(), x.p.size(), x.family, x.hook, changed);
  };
  if (newestFirst)
    for (size_t i = held.size(); i > 0; i--) one(held[i - 1]);
  else
    for (auto& x : held) one(x);
  held.clear();
}

void run(const uint8_t* d, size_t n) {
  ct::ConnTable& t = table();
  static int64_t now = 0;
  while (n >= 10) {
    const uint8_t* h = d;
    size_t len = size_t(d[8]) << 8 | d[9];
    d += 10;
    n -= 10;
    if (len > n) len = n;
    std::unique_ptr<uint8_t[]> p(new uint8_t[len ? len : 1]);
    std::memcpy(p.get(), d, len);
    d += len;
    n -= len;
    uint8_t family = (h[0] & 1) ? 6 : 4;
    uint8_t hook = uint8_t(((h[0] >> 1) & 7) % 5);
    now += int64_t(h[5]) * 997;
    t.setNow(now);

    pkt::Parsed ph = pkt::parse(p.get(), len, family);
    pkt::Inner in;
    (void)pkt::parseIcmpErrorInner(p.get(), len, ph, in);

    ct::Classification c = t.classify(p.get(), len, family, hook, (h[0] & 0x10) ? ct::kCtPoint : 0, 0);
    ct::Update u;
    u.accept = (h[0] & 0x20) != 0;
    u.final = (h[0] & 0x40) != 0;
    u.notrack = (h[0] & 0x80) != 0;
    u.setMark = h[6] & 1;
    u.mark = h[6];
    u.natRan = h[1] & 3;
    u.natCount = (h[1] >> 2) & 3;
    if (u.natCount > 2) u.natCount = 2;
    for (uint8_t i = 0; i < u.natCount; i++) {
      nat::Request& r = u.nat[i];
      r.manip = i;
      r.flags = uint32_t(h[1] >> 4) << 2 | ((h[4] & 1) ? nat::kMapIps : 0) | ((h[4] & 2) ? nat::kProtoSpecified : 0);
      if (h[4] & 4) r.flags |= nat::kNetmap;
      if (h[4] & 8) r.flags |= nat::kProtoOffset;
      std::memset(r.minAddr, 0, 16);
      std::memset(r.maxAddr, 0, 16);
      r.minAddr[0] = r.maxAddr[0] = family == 4 ? 198 : 0x20;
      r.minAddr[3] = h[4];
      r.maxAddr[3] = uint8_t(h[4] | h[7]);
      r.minPort = uint16_t(h[2] << 4);
      r.maxPort = uint16_t(h[3] << 8 | h[2]);
      r.basePort = h[7];
      r.masqIfindex = h[7] & 3;
    }
    if (h[6] & 2) (void)t.bind(c, u);
    if ((h[6] & 4) && held.size() < 4) {
      // Decided later: packets of one flow classified before the first is decided (per-packet entries, clashes).
      held.push_back(Held{c, u, std::vector<uint8_t>(p.get(), p.get() + len), family, hook});
    } else if (h[6] & 8) {
      if (t.commit(c, u) && len) t.translate(c, p.get(), len, family, hook);
    } else {
      bool changed = false;
      (void)t.finish(c, u, len ? p.get() : nullptr, len, family, hook, changed);
    }
    if (h[6] & 16) release(t, h[6] & 32);
    ct::EntryView v;
    if (t.view(c, v)) (void)ct::ConnTable::format(v);
    if (h[7] == 0xff) t.flushInterface(h[6] & 3);
    if (h[7] == 0xfe) t.sweep(h[6]);
    if (h[7] == 0xfd) {
      for (const auto& e : t.list()) (void)ct::ConnTable::format(e);
    }
  }
  release(t, false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  run(data, size);
  return 0;
}
