// libFuzzer target for the rule matcher (native/matcher.cc), built by scripts/fuzz.sh.
// Input: a 21-byte header (family, hook, connection state/direction, mark, status, connmark, in/out ifindex,
// tracked, program length in words), then that many little-endian program words, then the packet, copied into a
// buffer of exactly its length so AddressSanitizer sees any read past it. The seeds are real compiled programs
// (fuzz/matcher-seeds.ts). Besides "no crash", it checks what the matcher promises: load() refuses with a reason or
// accepts; an accepted program decides deterministically, with a path of known counter ids, and counts and drains
// what it decided.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "matcher.h"

using namespace nfqwall;

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

uint32_t le32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

const mt::Host& host() {
  static mt::Host h = [] {
    mt::Host x;
    x.names.resize(4);
    std::memcpy(x.names[1].data(), "eth0", 4);
    std::memcpy(x.names[2].data(), "eth1", 4);
    std::memcpy(x.names[3].data(), "veth1", 5);
    x.local4 = {0x7f000001u, 0xc6120001u};
    std::array<uint8_t, 16> a{};
    a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8, a[15] = 1;
    x.local6 = {a};
    mt::Host::Net n;
    n.addr[0] = 127, n.prefix = 8, n.local = true;
    x.nets4 = {n};
    // MASQUERADE/REDIRECT: eth0 and eth1 have IPv4 addresses, eth0 an IPv6 one, veth1 none.
    x.primariesKnown = true;
    x.primary4.resize(4);
    x.primary6.resize(4);
    x.primary4[1].has = true, x.primary4[1].addr = {198, 18, 0, 1};
    x.primary4[2].has = true, x.primary4[2].addr = {198, 18, 1, 7};
    x.primary6[1].has = true, x.primary6[1].addr = a;
    return x;
  }();
  return h;
}

bool sameRequest(const nat::Request& a, const nat::Request& b) {
  return a.manip == b.manip && a.flags == b.flags && std::memcmp(a.minAddr, b.minAddr, 16) == 0 &&
         std::memcmp(a.maxAddr, b.maxAddr, 16) == 0 && a.minPort == b.minPort && a.maxPort == b.maxPort &&
         a.basePort == b.basePort && a.masqIfindex == b.masqIfindex;
}

bool sameResult(const mt::Result& a, const mt::Result& b) {
  if (a.natCount != b.natCount) return false;
  for (uint32_t k = 0; k < a.natCount && k < 2; k++)
    if (!sameRequest(a.nat[k], b.nat[k])) return false;
  return a.verdict == b.verdict && a.mark == b.mark && a.setMark == b.setMark && a.natRan == b.natRan &&
         a.pathLen == b.pathLen && std::memcmp(a.path, b.path, sizeof(uint32_t) * a.pathLen) == 0;
}

// statistic's numbers: a sequence from the input (the connection mark word), the same for a run and its repeat.
struct Draws {
  uint32_t x = 1;
  static uint32_t next(void* ctx) {
    Draws* d = static_cast<Draws*>(ctx);
    d->x = d->x * 1103515245u + 12345u;
    return d->x;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kHeader = 21;
  if (size < kHeader) return 0;
  mt::Input in;
  in.family = (data[0] & 1) ? 6 : 4;
  in.hook = data[1] % 6;  // 5: out of range, refused by run()
  in.ctState = data[2] % 5;
  in.ctDir = data[3] & 1;
  in.mark = le32(data + 4);
  in.ctStatus = le32(data + 8);
  in.ctMark = le32(data + 12);
  in.inIf = data[16] % 5;
  in.outIf = data[17] % 5;
  in.tracked = data[18] & 1;
  size_t n = (size_t(data[19]) | size_t(data[20]) << 8) & 0x7ff;
  n = std::min(n, (size - kHeader) / 4);
  std::vector<uint32_t> words(n);
  for (size_t k = 0; k < n; k++) words[k] = le32(data + kHeader + 4 * k);
  // The word count is the one field mutations break every time; agreeing with it lets them reach the rest.
  if (n > 5) words[5] = uint32_t(n);
  size_t off = kHeader + 4 * n;
  size_t len = size - off;
  std::unique_ptr<uint8_t[]> pkt(new uint8_t[len ? len : 1]);
  std::memcpy(pkt.get(), data + off, len);
  in.data = pkt.get();
  in.len = uint32_t(len);
  in.wireLen = uint32_t(len);
  in.takesNat = (data[18] & 2) == 0;

  std::string err;
  std::shared_ptr<mt::Program> p = mt::Program::load(words.data(), words.size(), err);
  if (!p) {
    require(!err.empty());
    return 0;
  }
  mt::Matcher m;
  m.setProgram(p->family(), p, 7);
  uint32_t decided = 0;
  for (int hook = 0; hook < 6; hook++) {
    mt::Input h = in;
    h.hook = uint8_t(hook == 5 ? in.hook : hook);
    mt::Result r, again;
    Draws draws;
    h.random31 = &Draws::next;
    h.randomCtx = &draws;
    draws.x = in.ctMark;
    bool ok = p->run(h, host(), r);
    draws.x = in.ctMark;
    require(ok == p->run(h, host(), again));
    if (!ok) continue;
    require(sameResult(r, again));
    require(r.pathLen <= mt::kMaxPath);
    for (uint32_t k = 0; k < r.pathLen; k++) require(r.path[k] < p->counterCount());
    uint32_t v = r.verdict & 0xffff;
    require(v == 0 || v == 1 || (v == 3 && (r.verdict >> 16) <= 0xffff));
    require(r.setMark == (r.mark != h.mark));
    require(r.natRan <= 3);
    // A request comes from the nat table that ran (its bit set); one per trip. (A later table may still drop.)
    require(r.natCount <= 1);
    require(h.takesNat || r.natCount == 0);
    if (r.natCount == 1) {
      require(r.natRan != 0);
      require(r.nat[0].manip <= 1 && (r.nat[0].flags & ~127u) == 0);
      require(r.nat[0].masqIfindex == 0 || r.nat[0].masqIfindex == h.outIf);
    }
    // The thread's own generator when none is given: decides too, without crashing.
    mt::Input dflt = h;
    dflt.random31 = nullptr;
    mt::Result other;
    (void)p->run(dflt, host(), other);
    p->count(r, h.wireLen);
    decided += r.pathLen;
  }
  std::vector<mt::Matcher::Drained> hits;
  std::vector<uint32_t> done;
  m.drain(hits, done);
  uint64_t total = 0;
  for (const auto& d : hits) {
    require(d.serial == 7 && d.hits.id < p->counterCount());
    total += d.hits.packets;
  }
  require(total == decided);
  return 0;
}
