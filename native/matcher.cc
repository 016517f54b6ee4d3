// The native rule matcher (matcher.h, docs/matcher.md): the loader that checks a program's words completely and
// builds its hash indexes, and the interpreter that walks it for one packet as Engine.decide walks the ruleset
// (src/engine/engine.ts), with an explicit jump stack, no recursion and no allocation. Every op mirrors its
// TypeScript module (src/extensions/*.ts) line by line; wherever the module would hotdrop, or reads something the
// matcher is not given, run() returns false and JavaScript decides.
#include "matcher.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <tuple>

namespace nfqwall {
namespace mt {

namespace {

// The format (src/compile/ops/format.ts).
constexpr uint32_t kMagic = 0x4d51464e;
constexpr uint32_t kVersion = 2;
constexpr uint32_t kNone = 0xffffffffu;
constexpr uint32_t kAllPorts = 0xfffffffeu;  // index key: every port-keyed rule of a destination and protocol
constexpr uint32_t kHeaderWords = 6;

enum : uint32_t {
  F_SRC = 1u << 0,
  F_SRC_NEG = 1u << 1,
  F_DST = 1u << 2,
  F_DST_NEG = 1u << 3,
  F_IN = 1u << 4,
  F_IN_NEG = 1u << 5,
  F_IN_PLUS = 1u << 6,
  F_OUT = 1u << 7,
  F_OUT_NEG = 1u << 8,
  F_OUT_PLUS = 1u << 9,
  F_PROTO = 1u << 10,
  F_PROTO_NEG = 1u << 11,
  F_FRAG = 1u << 12,
  F_FRAG_NEG = 1u << 13,
  F_SLOW = 1u << 14,
  F_ALL = (1u << 15) - 1,
};

enum : uint32_t {
  OP_SLOW = 0,
  OP_TCP = 1,
  OP_UDP = 2,
  OP_MULTIPORT = 3,
  OP_MARK = 4,
  OP_CONNMARK = 5,
  OP_CONNTRACK = 6,
  OP_STATE = 7,
  OP_ICMP = 8,
  OP_IPRANGE = 9,
  OP_ADDRTYPE = 10,
  OP_TTL = 11,
  OP_RT = 12,
  OP_PHYSDEV = 13,
  OP_STATISTIC = 14,
  OP_COUNT = 15,
};

// Payload words per opcode; multiport's is 3 + 2 * items.
constexpr uint32_t kOpWords[OP_COUNT] = {0, 10, 7, kNone, 3, 3, 7, 2, 6, 20, 4, 2, 0, 20, 2};

enum : uint32_t { T_NONE = 0, T_ACCEPT, T_DROP, T_RETURN, T_JUMP, T_GOTO, T_MARK, T_QUEUE, T_SLOW, T_NAT, T_COUNT };

// T_NAT: a = what resolves the address, b = kNatWords, then the request: [manip (0 SRC, 1 DST, 2 by hook), flags
// (nat::k*), minAddr x4, maxAddr x4, minPort, maxPort, basePort].
enum : uint32_t { NAT_RANGE = 0, NAT_MASQUERADE = 1, NAT_REDIRECT = 2, NAT_COUNT = 3 };
constexpr uint32_t kNatWords = 13;
constexpr uint32_t kNatFlags = 127;  // every NF_NAT_RANGE_* bit nat.h names

enum : uint32_t { ST_INVALID = 1, ST_NEW = 2, ST_RELATED = 4, ST_ESTABLISHED = 8, ST_UNTRACKED = 16, ST_SNAT = 32, ST_DNAT = 64 };

// ct::State values (conntrack.h), repeated so this file needs nothing but matcher.h.
constexpr uint8_t kCtInvalid = 0, kCtNew = 1, kCtEstablished = 2, kCtRelated = 3, kCtUntracked = 4;
constexpr uint32_t kIpsSrcNat = 0x10, kIpsDstNat = 0x20, kIpsSrcNatDone = 0x80, kIpsDstNatDone = 0x100;
constexpr uint8_t kManipSrc = 0, kManipDst = 1;  // nat.h

constexpr uint32_t kNfDrop = 0, kNfAccept = 1, kNfQueue = 3;
constexpr int64_t kMaxSteps = 1000000;  // engine.ts MAX_STEPS
constexpr uint32_t kStackFrames = 64;   // deeper jump nesting goes to JavaScript

constexpr int NO = 0, YES = 1, SLOW = 2;

struct Key {
  uint32_t a[4];
  uint32_t proto, port;
  bool operator==(const Key& o) const {
    return a[0] == o.a[0] && a[1] == o.a[1] && a[2] == o.a[2] && a[3] == o.a[3] && proto == o.proto && port == o.port;
  }
};

// The packet as src/engine/packet.ts parses it, for the fields the ops read.
struct View {
  const uint8_t* d = nullptr;
  uint32_t len = 0;
  uint8_t family = 4;
  uint32_t src[4] = {}, dst[4] = {};
  uint32_t proto = 0;
  uint32_t fragOff = 0;
  uint32_t l3len = 0;
  int64_t l4off = -1;
  bool truncated = false;
  int icmpType = -1, icmpCode = -1;

  // util/ports.ts transportStart.
  int64_t transportStart(uint32_t need) const {
    if (fragOff != 0) return -1;
    int64_t off = l4off >= 0 ? l4off : int64_t(l3len);
    if (off <= 0 || off + need > len) return -1;
    return off;
  }
  uint16_t at16(int64_t off) const { return uint16_t((d[off] << 8) | d[off + 1]); }
};

uint32_t l4HeaderNeed(uint32_t proto) {
  switch (proto) {
    case 6:
      return 20;
    case 17:
    case 136:
    case 1:
    case 58:
      return 8;
    case 132:
    case 33:
      return 12;
    default:
      return 0;
  }
}

bool isExtHeader(uint32_t nh) { return nh == 0 || nh == 43 || nh == 44 || nh == 51 || nh == 59 || nh == 60; }

void words(const uint8_t* p, uint32_t n, uint32_t out[4]) {
  for (uint32_t i = 0; i < 4; i++) out[i] = 0;
  for (uint32_t i = 0; i < n; i++) out[i >> 2] |= uint32_t(p[i]) << (24 - 8 * (i & 3));
}

void parseL4(View& v, uint32_t off) {
  uint32_t avail = v.len - off;
  if (avail < l4HeaderNeed(v.proto)) {
    v.truncated = true;
    return;
  }
  v.l4off = off;
  if ((v.proto == 1 && v.family == 4) || (v.proto == 58 && v.family == 6)) {
    v.icmpType = v.d[off];
    v.icmpCode = v.d[off + 1];
  }
}

// False: a packet the matcher leaves to JavaScript (no IP header of its family, IPv6 extension headers).
bool parseView(const Input& in, View& v) {
  v.d = in.data;
  v.len = in.len;
  v.family = in.family;
  if (in.data == nullptr) return false;
  if (in.family == 4) {
    if (v.len < 20 || (v.d[0] >> 4) != 4) return false;
    uint32_t ihl = uint32_t(v.d[0] & 0x0f) * 4;
    if (ihl < 20 || v.len < ihl) return false;
    words(v.d + 12, 4, v.src);
    words(v.d + 16, 4, v.dst);
    v.fragOff = uint32_t(((v.d[6] << 8) | v.d[7]) & 0x1fff) * 8;
    v.proto = v.d[9];
    v.l3len = ihl;
    if (v.fragOff == 0) parseL4(v, ihl);
    return true;
  }
  if (in.family != 6) return false;
  if (v.len < 40 || (v.d[0] >> 4) != 6) return false;
  words(v.d + 8, 16, v.src);
  words(v.d + 24, 16, v.dst);
  uint32_t nh = v.d[6];
  // ipv6_find_hdr's walk (and the hotdrop of a broken chain) is left to JavaScript.
  if (isExtHeader(nh) && nh != 59) return false;
  v.proto = nh;
  v.l3len = 40;
  parseL4(v, 40);
  return true;
}

// The connection as one table sees it.
struct Conn {
  bool present = false;
  uint8_t state = kCtInvalid;
  uint8_t dir = 0;
  uint32_t status = 0, mark = 0;
  // util/ctstate.ts trackedConn.
  bool tracked() const { return present && state != kCtInvalid && state != kCtUntracked; }
  uint32_t states() const {
    if (!tracked()) return present && state == kCtInvalid ? ST_INVALID : ST_UNTRACKED;
    uint32_t s = state == kCtNew ? ST_NEW : state == kCtEstablished ? ST_ESTABLISHED : ST_RELATED;
    if (status & kIpsSrcNat) s |= ST_SNAT;
    if (status & kIpsDstNat) s |= ST_DNAT;
    return s;
  }
};

bool inRange(uint32_t min, uint32_t max, uint32_t p, bool invert) { return (p >= min && p <= max) != invert; }
bool allPorts(uint32_t min, uint32_t max) { return min == 0 && max == 65535; }

// util/ports.ts nftPortsMatch; w: [smin, smax, sinv, dmin, dmax, dinv].
bool nftPorts(const uint32_t* w, uint32_t sport, uint32_t dport) {
  bool sOn = !allPorts(w[0], w[1]), dOn = !allPorts(w[3], w[4]);
  bool sInv = w[2] != 0, dInv = w[5] != 0;
  if (sOn && dOn && w[0] == w[1] && w[3] == w[4] && sInv == dInv) return (sport == w[0] && dport == w[3]) != sInv;
  if (sOn && !inRange(w[0], w[1], sport, sInv)) return false;
  if (dOn && !inRange(w[3], w[4], dport, dInv)) return false;
  return true;
}

int cmpAddr(const uint32_t* a, const uint32_t* b, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

// host.ts RouteHost.addressType(...) === 'LOCAL', for the host given.
bool isLocal(const Host& h, uint8_t family, const uint32_t* a) {
  if (family == 4) {
    uint32_t x = a[0];
    if ((x >> 24) == 0 || x == 0xffffffffu) return false;  // BROADCAST
    if ((x >> 28) == 0xe) return false;                     // MULTICAST
    if (std::binary_search(h.local4.begin(), h.local4.end(), x)) return true;
    for (const Host::Net& n : h.nets4) {
      uint32_t na = (uint32_t(n.addr[0]) << 24) | (uint32_t(n.addr[1]) << 16) | (uint32_t(n.addr[2]) << 8) | n.addr[3];
      uint32_t mask = n.prefix == 0 ? 0 : n.prefix >= 32 ? 0xffffffffu : ~((1u << (32 - n.prefix)) - 1);
      if ((x & mask) == (na & mask)) return n.local;
    }
    return false;
  }
  if ((a[0] >> 24) == 0xff) return false;
  std::array<uint8_t, 16> b;
  for (int i = 0; i < 16; i++) b[i] = uint8_t(a[i >> 2] >> (24 - 8 * (i & 3)));
  if (std::binary_search(h.local6.begin(), h.local6.end(), b)) return true;
  for (const Host::Net& n : h.nets6) {
    bool cover = true;
    for (int i = 0; i < 16 && cover; i++) {
      int bits = int(n.prefix) - 8 * i;
      uint8_t m = bits >= 8 ? 0xff : bits <= 0 ? 0 : uint8_t(0xff << (8 - bits));
      if ((b[i] & m) != (n.addr[i] & m)) cover = false;
    }
    if (cover) return n.local;
  }
  return false;
}

}  // namespace

// Interface names are read in place from the program's words, whose bytes the compiler packs low byte first.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the program's name words are read as bytes in memory order");

struct Program::Impl {
  // The words: `own` (a copy) or a block sealed for this program, which it unseals when it goes.
  const uint32_t* W = nullptr;
  size_t n = 0;
  std::vector<uint32_t> own;
  std::shared_ptr<WordBlock> block;
  ~Impl() {
    if (block) block->unseal();
  }
  struct HookTable {
    uint32_t table, chain, stackLimit;
  };
  std::vector<HookTable> hooks[5];
  // The base fields stay in `w` and are read there: a record per rule of 110,000 stays small (docs/matcher.md, memory).
  struct Rule {
    uint32_t counter = 0, flags = 0;
    uint32_t src = 0, dst = 0;    // word offsets in w of the address and its mask (4 + 4 words)
    uint32_t in = 0, out = 0;     // word offsets in w of the NUL-padded name (4 words: its bytes, in order)
    uint8_t inLen = 0, outLen = 0;
    uint16_t proto = 0;
    uint32_t ops = 0, nOps = 0;  // word offset of the first op in w
    uint32_t tKind = 0, tA = 0, tB = 0;
    bool tUnstable = false;  // the target is not flow-stable
    uint32_t tNat = 0;       // T_NAT: word offset of the request in w
  };
  // A keyed chain's rules by destination address first, then by protocol and port. Flat arrays, not a map of
  // vectors: a packet to an address no rule names (most of what crosses a kube-proxy KUBE-SERVICES) costs one probe
  // of one table, where a node-based map cost three lookups of two or three cache misses each, which grew with the
  // table (the rule-count benchmark's CPU per new connection rose 23% from 10 to 100,000 services).
  struct Index {
    std::vector<uint32_t> wild;
    // Open addressing with linear probing, a power of two at least twice the addresses; an empty slot has count 0.
    struct AddrSlot {
      uint32_t a[4];
      uint32_t first, count;  // into subs
    };
    struct Sub {
      uint32_t proto, port;   // kNone: any (a port only with a protocol; kAllPorts: every rule with a port)
      uint32_t first, count;  // into ids, ascending
    };
    std::vector<AddrSlot> slots;
    std::vector<Sub> subs;
    std::vector<uint32_t> ids;

    static size_t hash(const uint32_t a[4]) {
      uint64_t h = 0x9e3779b97f4a7c15ull;
      for (int j = 0; j < 4; j++) {
        h ^= a[j];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
      }
      return size_t(h);
    }
    const AddrSlot* find(const uint32_t a[4]) const {
      if (slots.empty()) return nullptr;
      const size_t mask = slots.size() - 1;
      for (size_t i = hash(a) & mask;; i = (i + 1) & mask) {
        const AddrSlot& s = slots[i];
        if (s.count == 0) return nullptr;
        if (s.a[0] == a[0] && s.a[1] == a[1] && s.a[2] == a[2] && s.a[3] == a[3]) return &s;
      }
    }
    // From each keyed rule's key and index, in rule order.
    void build(std::vector<std::pair<Key, uint32_t>>& keyed) {
      auto addrLess = [](const Key& x, const Key& y) { return std::lexicographical_compare(x.a, x.a + 4, y.a, y.a + 4); };
      std::sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
        if (addrLess(x.first, y.first)) return true;
        if (addrLess(y.first, x.first)) return false;
        return std::tie(x.first.proto, x.first.port, x.second) < std::tie(y.first.proto, y.first.port, y.second);
      });
      auto sameAddr = [](const Key& x, const Key& y) { return std::equal(x.a, x.a + 4, y.a); };
      size_t addrs = 0;
      for (size_t k = 0; k < keyed.size(); k++)
        if (k == 0 || !sameAddr(keyed[k].first, keyed[k - 1].first)) addrs++;
      size_t size = 2;
      while (size < 2 * addrs) size <<= 1;
      slots.assign(size, AddrSlot{});
      ids.reserve(keyed.size());
      for (size_t k = 0; k < keyed.size();) {
        const Key& a = keyed[k].first;
        size_t i = hash(a.a) & (size - 1);
        while (slots[i].count != 0) i = (i + 1) & (size - 1);
        AddrSlot& s = slots[i];
        std::copy(a.a, a.a + 4, s.a);
        s.first = uint32_t(subs.size());
        while (k < keyed.size() && sameAddr(keyed[k].first, a)) {
          const Key& sub = keyed[k].first;
          Sub u{sub.proto, sub.port, uint32_t(ids.size()), 0};
          for (; k < keyed.size() && keyed[k].first == sub; k++) ids.push_back(keyed[k].second);
          u.count = uint32_t(ids.size()) - u.first;
          subs.push_back(u);
        }
        s.count = uint32_t(subs.size()) - s.first;
      }
    }
  };
  struct Chain {
    uint32_t table = 0, builtin = 0, policy = 0, policyCounter = kNone;
    uint32_t first = 0, n = 0;  // into rules
    int32_t index = -1;         // into indexes
  };
  std::vector<Chain> chains;
  std::vector<Rule> rules;
  std::vector<Index> indexes;
};

Program::~Program() = default;

namespace {

struct Reader {
  const uint32_t* w;
  size_t n;
  size_t pos;
  size_t end;
  std::string& err;
  bool take(uint32_t& out, const char* what) {
    if (pos >= end) {
      err = std::string("truncated at word ") + std::to_string(pos) + " (" + what + ")";
      return false;
    }
    out = w[pos++];
    return true;
  }
  bool fail(const std::string& m) {
    err = m + " at word " + std::to_string(pos);
    return false;
  }
};

}  // namespace

std::shared_ptr<Program> Program::load(const uint32_t* words, size_t n, std::string& err) {
  auto impl = std::make_unique<Impl>();
  if (words != nullptr) impl->own.assign(words, words + n);
  impl->W = impl->own.data();
  impl->n = n;
  return build(std::move(impl), err);
}

std::shared_ptr<Program> Program::load(std::shared_ptr<WordBlock> block, size_t offset, size_t n, std::string& err) {
  if (!block || offset > block->words() || n > block->words() - offset) {
    err = "the words lie outside their block";
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  // Sealed before it is read: what is checked below is what the receive threads will run.
  if (!block->seal(err)) return nullptr;
  impl->W = block->data() + offset;
  impl->n = n;
  impl->block = std::move(block);
  return build(std::move(impl), err);
}

std::shared_ptr<Program> Program::build(std::unique_ptr<Impl> impl, std::string& err) {
  const uint32_t* w = impl->W;
  size_t n = impl->n;
  if (w == nullptr || n < kHeaderWords) {
    err = "program too short";
    return nullptr;
  }
  if (w[0] != kMagic) {
    err = "not a matcher program (bad magic)";
    return nullptr;
  }
  if (w[1] != kVersion) {
    err = "unsupported program version " + std::to_string(w[1]);
    return nullptr;
  }
  if (w[2] != 4 && w[2] != 6) {
    err = "bad family " + std::to_string(w[2]);
    return nullptr;
  }
  if (w[5] != n) {
    err = "word count " + std::to_string(w[5]) + " does not match the " + std::to_string(n) + " words given";
    return nullptr;
  }
  uint32_t nCounters = w[3], nChains = w[4];
  if (nCounters > n || nChains > n) {
    err = "counter or chain count out of range";
    return nullptr;
  }
  Reader r{w, n, kHeaderWords, n, err};
  const uint32_t* W = w;
  // The tables each hook passes through, in the kernel's priority order (engine.ts HOOK_TABLES; raw 0, mangle 1,
  // nat 2, filter 3, security 4): a hook lists a subsequence of its own, so no table runs twice or out of order.
  static const std::vector<uint32_t> kHookTables[5] = {{0, 1, 2}, {1, 3, 4, 2}, {1, 3, 4}, {0, 1, 2, 3, 4}, {1, 2}};
  for (int h = 0; h < 5; h++) {
    uint32_t cnt;
    if (!r.take(cnt, "hook table count")) return nullptr;
    if (cnt > 5) return r.fail("hook " + std::to_string(h) + " has " + std::to_string(cnt) + " tables"), nullptr;
    size_t next = 0;  // where in kHookTables[h] the next listed table may start
    for (uint32_t k = 0; k < cnt; k++) {
      Impl::HookTable t;
      if (!r.take(t.table, "hook table") || !r.take(t.chain, "hook chain") || !r.take(t.stackLimit, "stack limit"))
        return nullptr;
      if (t.table > 4) return r.fail("bad table id " + std::to_string(t.table)), nullptr;
      const std::vector<uint32_t>& order = kHookTables[h];
      while (next < order.size() && order[next] != t.table) next++;
      if (next == order.size())
        return r.fail("hook " + std::to_string(h) + ": table " + std::to_string(t.table) +
                      " is not one of its tables, or comes twice or out of order"),
               nullptr;
      next++;
      if (t.chain >= nChains) return r.fail("hook chain " + std::to_string(t.chain) + " out of range"), nullptr;
      if (t.stackLimit > nChains + 1) return r.fail("stack limit out of range"), nullptr;
      impl->hooks[h].push_back(t);
    }
  }
  size_t dir = r.pos;
  if (dir + nChains > n) {
    err = "chain directory runs past the end";
    return nullptr;
  }
  r.pos += nChains;
  impl->chains.resize(nChains);
  for (uint32_t c = 0; c < nChains; c++) {
    Impl::Chain& ch = impl->chains[c];
    uint32_t off = W[dir + c];
    if (off < kHeaderWords || off >= n) {
      err = "chain " + std::to_string(c) + " offset out of range";
      return nullptr;
    }
    Reader cr{W, n, off, n, err};
    uint32_t nRules, keyed;
    if (!cr.take(ch.table, "chain table") || !cr.take(ch.builtin, "builtin") || !cr.take(ch.policy, "policy") ||
        !cr.take(ch.policyCounter, "policy counter") || !cr.take(nRules, "rule count") || !cr.take(keyed, "keyed"))
      return nullptr;
    if (ch.table > 4 || ch.builtin > 1 || ch.policy > 2 || keyed > 1) return cr.fail("bad chain header"), nullptr;
    if (ch.builtin ? ch.policyCounter >= nCounters : ch.policyCounter != kNone)
      return cr.fail("bad policy counter"), nullptr;
    if (nRules > n - cr.pos || (keyed && uint64_t(nRules) * 8 > n - cr.pos))
      return cr.fail("rule count out of range"), nullptr;
    ch.first = uint32_t(impl->rules.size());
    ch.n = nRules;
    size_t offs = cr.pos;
    cr.pos += nRules;
    if (keyed) {
      Impl::Index ix;
      std::vector<std::pair<Key, uint32_t>> keyedRules;
      for (uint32_t i = 0; i < nRules; i++) {
        const uint32_t* k = W + cr.pos + size_t(i) * 7;
        if (k[0] > 1) return cr.fail("bad key kind"), nullptr;
        if (k[0] == 0) {
          ix.wild.push_back(i);
          continue;
        }
        Key key{{k[3], k[4], k[5], k[6]}, k[1], k[2]};
        if (key.port == kAllPorts || (key.port != kNone && key.proto == kNone))
          return cr.fail("bad key"), nullptr;
        keyedRules.emplace_back(key, i);
        if (key.port != kNone) {
          key.port = kAllPorts;
          keyedRules.emplace_back(key, i);
        }
      }
      ix.build(keyedRules);
      ch.index = int32_t(impl->indexes.size());
      impl->indexes.push_back(std::move(ix));
    }
    for (uint32_t i = 0; i < nRules; i++) {
      uint32_t ro = W[offs + i];
      if (ro < kHeaderWords || ro >= n || W[ro] < 2 || W[ro] > n - ro) {
        err = "rule " + std::to_string(i) + " of chain " + std::to_string(c) + ": offset or length out of range";
        return nullptr;
      }
      Reader rr{W, n, size_t(ro) + 1, size_t(ro) + W[ro], err};
      Impl::Rule ru;
      if (!rr.take(ru.counter, "rule counter") || !rr.take(ru.flags, "rule flags")) return nullptr;
      if (ru.counter >= nCounters) return rr.fail("rule counter out of range"), nullptr;
      if (ru.flags & ~uint32_t(F_ALL)) return rr.fail("bad rule flags"), nullptr;
      // Skips `words` words of the record, giving their offset in w.
      auto skip = [&](uint32_t words, uint32_t& at, const char* what) {
        if (rr.end - rr.pos < words) return rr.fail(std::string(what) + " runs past its rule"), false;
        at = uint32_t(rr.pos);
        rr.pos += words;
        return true;
      };
      if ((ru.flags & F_SRC) && !skip(8, ru.src, "-s")) return nullptr;
      if ((ru.flags & F_DST) && !skip(8, ru.dst, "-d")) return nullptr;
      for (int side = 0; side < 2; side++) {
        if (!(ru.flags & (side == 0 ? F_IN : F_OUT))) continue;
        uint32_t& at = side == 0 ? ru.in : ru.out;
        if (!skip(4, at, side == 0 ? "-i" : "-o")) return nullptr;
        const char* name = reinterpret_cast<const char*>(W + at);
        if (name[15] != 0) return rr.fail("interface name not terminated"), nullptr;
        (side == 0 ? ru.inLen : ru.outLen) = uint8_t(strnlen(name, 16));
      }
      uint32_t proto = 0;
      if ((ru.flags & F_PROTO) && !rr.take(proto, "-p")) return nullptr;
      if (proto > 0xffff) return rr.fail("-p out of range"), nullptr;
      ru.proto = uint16_t(proto);
      if (!rr.take(ru.nOps, "op count")) return nullptr;
      ru.ops = uint32_t(rr.pos);
      for (uint32_t k = 0; k < ru.nOps; k++) {
        uint32_t code, len;
        if (!rr.take(code, "opcode") || !rr.take(len, "op length")) return nullptr;
        if ((code >> 16) > 1) return rr.fail("bad op flags"), nullptr;
        code &= 0xffff;
        if (code >= OP_COUNT) return rr.fail("bad opcode " + std::to_string(code)), nullptr;
        if (len > rr.end - rr.pos) return rr.fail("op runs past its rule"), nullptr;
        uint32_t want = kOpWords[code];
        if (code == OP_MULTIPORT) {
          if (len < 3 || W[rr.pos + 2] > 15) return rr.fail("bad multiport op"), nullptr;
          want = 3 + 2 * W[rr.pos + 2];
        }
        if (len != want) return rr.fail("op " + std::to_string(code) + " has " + std::to_string(len) + " words"), nullptr;
        rr.pos += len;
      }
      if (!rr.take(ru.tKind, "target") || !rr.take(ru.tA, "target") || !rr.take(ru.tB, "target")) return nullptr;
      if ((ru.tKind >> 16) > 1) return rr.fail("bad target flags"), nullptr;
      ru.tUnstable = (ru.tKind >> 16) != 0;
      ru.tKind &= 0xffff;
      if (ru.tKind >= T_COUNT) return rr.fail("bad target kind"), nullptr;
      if (ru.tKind == T_NAT) {
        if (ru.tA >= NAT_COUNT || ru.tB != kNatWords || rr.end - rr.pos < kNatWords) return rr.fail("bad NAT target"), nullptr;
        const uint32_t* q = W + rr.pos;
        if (q[0] > 2 || (q[1] & ~kNatFlags) != 0 || q[10] > 0xffff || q[11] > 0xffff || q[12] > 0xffff)
          return rr.fail("bad NAT request"), nullptr;
        ru.tNat = uint32_t(rr.pos);
        rr.pos += kNatWords;
      }
      if (rr.pos != rr.end) return rr.fail("rule length does not match its contents"), nullptr;
      impl->rules.push_back(ru);
    }
  }
  // Jumps stay in their table; hooks name built-in chains of their table.
  for (const Impl::Rule& ru : impl->rules)
    if (ru.tKind == T_JUMP || ru.tKind == T_GOTO) {
      if (ru.tA >= nChains) {
        err = "jump to chain " + std::to_string(ru.tA) + " out of range";
        return nullptr;
      }
    }
  for (const Impl::Chain& ch : impl->chains)
    for (uint32_t i = 0; i < ch.n; i++) {
      const Impl::Rule& ru = impl->rules[ch.first + i];
      if ((ru.tKind == T_JUMP || ru.tKind == T_GOTO) && impl->chains[ru.tA].table != ch.table) {
        err = "jump across tables";
        return nullptr;
      }
    }
  for (int h = 0; h < 5; h++)
    for (const Impl::HookTable& t : impl->hooks[h]) {
      const Impl::Chain& ch = impl->chains[t.chain];
      if (!ch.builtin || ch.table != t.table) {
        err = "hook " + std::to_string(h) + " names a chain that is not a built-in chain of its table";
        return nullptr;
      }
    }
  std::shared_ptr<Program> p(new Program());
  p->family_ = uint8_t(w[2]);
  p->packets_ = std::vector<std::atomic<uint64_t>>(nCounters);
  p->bytes_ = std::vector<std::atomic<uint64_t>>(nCounters);
  p->dirty_ = std::vector<std::atomic<uint64_t>>((nCounters + 63) / 64);
  for (auto& d : p->dirty_) d.store(0, std::memory_order_relaxed);
  for (uint32_t k = 0; k < nCounters; k++) {
    p->packets_[k].store(0, std::memory_order_relaxed);
    p->bytes_[k].store(0, std::memory_order_relaxed);
  }
  p->impl_ = std::move(impl);
  return p;
}

namespace {

struct Cursor {
  bool on = false;
  uint32_t count = 0;
  const uint32_t* l[4];
  uint32_t n[4];
  uint32_t pos[4];
  void add(const uint32_t* ids, uint32_t len) {
    if (len == 0) return;
    l[count] = ids;
    n[count] = len;
    count++;
  }
  void seek(uint32_t from) {
    for (uint32_t k = 0; k < count; k++) pos[k] = uint32_t(std::lower_bound(l[k], l[k] + n[k], from) - l[k]);
  }
  int64_t next() {
    int64_t best = -1;
    uint32_t bestK = 0;
    for (uint32_t k = 0; k < count; k++)
      if (pos[k] < n[k] && (best < 0 || l[k][pos[k]] < best)) {
        best = l[k][pos[k]];
        bestK = k;
      }
    if (best >= 0) pos[bestK]++;
    return best;
  }
};

struct Frame {
  uint32_t chain, next;
};

// Input::random31's default: xorshift64* per thread, seeded once from the clock and the thread's own address.
uint32_t defaultRandom31() {
  static thread_local uint64_t s = 0;
  if (s == 0) {
    s = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^ uint64_t(uintptr_t(&s)) ^
        0x9e3779b97f4a7c15ull;
    if (s == 0) s = 1;
  }
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return uint32_t((s * 0x2545f4914f6cdd1dull) >> 33) & 0x7fffffffu;
}

void addrBytes(const uint32_t* w, uint8_t* out) {
  for (int i = 0; i < 16; i++) out[i] = uint8_t(w[i >> 2] >> (24 - 8 * (i & 3)));
}

// Every byte an op reads lies below l3len + 20 (the largest transport header an op reads; IPv4 options at most 60).
constexpr uint32_t kViewBytes = 128;

bool hasPorts(uint32_t proto) { return proto == 6 || proto == 17 || proto == 136 || proto == 132 || proto == 33; }

// engine.ts natView with setAddress/setPort: the view's headers copied to `buf` and the destination address and port
// rewritten there (checksums are not: no op reads them). False when the headers do not fit.
bool natView(View& v, uint8_t* buf, const nat::Request& q) {
  if (v.l3len + 20 > kViewBytes) return false;
  std::memcpy(buf, v.d, std::min(v.len, kViewBytes));
  v.d = buf;
  if (q.flags & nat::kMapIps) {
    uint32_t n = v.family == 4 ? 4 : 16;
    std::memcpy(buf + (v.family == 4 ? 16 : 24), q.minAddr, n);
    words(q.minAddr, n, v.dst);
  }
  if ((q.flags & nat::kProtoSpecified) && hasPorts(v.proto) && v.l4off >= 0) {
    buf[v.l4off + 2] = uint8_t(q.minPort >> 8);
    buf[v.l4off + 3] = uint8_t(q.minPort);
  }
  return true;
}

// engine.ts natView: whether OUTPUT's later tables would see the packet rewritten by this request.
bool natViewChanges(const nat::Request& q) {
  if (q.manip != kManipDst || (q.flags & nat::kNetmap)) return false;
  bool hasAddr = q.flags & nat::kMapIps, hasPort = q.flags & nat::kProtoSpecified;
  bool addrFixed = hasAddr && std::memcmp(q.minAddr, q.maxAddr, 16) == 0;
  bool portFixed = hasPort && q.minPort == q.maxPort && !(q.flags & nat::kProtoOffset);
  if (!(addrFixed || !hasAddr) || !(portFixed || !hasPort)) return false;
  return hasAddr || hasPort;
}

struct Run {
  const Program::Impl& p;
  const Host& host;
  const Input& in;
  const View& v;
  Conn ct;
  uint32_t mark;
  const char* inName;  // null: the ifindex has no known name
  const char* outName;
  const char* physInName;  // the bridge ports (physdev), null when unnamed
  const char* physOutName;
  Result& out;
  bool unstable = false;  // Engine.unstable: something evaluated was not flow-stable
  bool natTable = false;  // the table walked is nat (a NAT target elsewhere goes to JavaScript)
  bool natPending = false;  // ctx.nat: a NAT target ran in this table's walk
  nat::Request natReq;

  uint32_t draw() const { return in.random31 ? in.random31(in.randomCtx) : defaultRandom31(); }

  // The NAT targets' apply() (DNAT.ts, SNAT.ts, MASQUERADE.ts, REDIRECT.ts, NETMAP.ts): the request into natReq and
  // NF_ACCEPT, or NF_DROP when the interface has no address. SLOW when the host view cannot say.
  int natTarget(const Program::Impl::Rule& r, uint32_t& verdict) {
    if (!natTable) return SLOW;
    const uint32_t* q = p.W + r.tNat;
    nat::Request req;
    req.manip = q[0] == 2 ? ((in.hook == 0 || in.hook == 3) ? kManipDst : kManipSrc) : uint8_t(q[0]);
    req.flags = q[1];
    addrBytes(q + 2, req.minAddr);
    addrBytes(q + 6, req.maxAddr);
    req.minPort = uint16_t(q[10]);
    req.maxPort = uint16_t(q[11]);
    req.basePort = uint16_t(q[12]);
    if (r.tA != NAT_RANGE) {
      const std::array<uint8_t, 16>* addr = nullptr;
      std::array<uint8_t, 16> loop{};
      if (r.tA == NAT_REDIRECT && in.hook == 3) {  // nf_nat_redirect: loopback for locally generated packets
        if (v.family == 4) loop[0] = 127, loop[3] = 1;
        else loop[15] = 1;
        addr = &loop;
      } else {
        uint32_t ifindex = r.tA == NAT_MASQUERADE ? in.outIf : in.inIf;
        if (ifindex == 0) {  // no interface: the module drops
          verdict = kNfDrop;
          return YES;
        }
        const char* name = r.tA == NAT_MASQUERADE ? outName : inName;
        if (name == nullptr || !host.primariesKnown) return SLOW;
        const std::vector<Host::Primary>& ps = v.family == 4 ? host.primary4 : host.primary6;
        if (ifindex >= ps.size() || !ps[ifindex].has) {
          verdict = kNfDrop;
          return YES;
        }
        addr = &ps[ifindex].addr;
      }
      std::memcpy(req.minAddr, addr->data(), 16);
      std::memcpy(req.maxAddr, addr->data(), 16);
      req.flags |= nat::kMapIps;
      if (r.tA == NAT_MASQUERADE) req.masqIfindex = in.outIf;
    }
    natReq = req;
    natPending = true;
    verdict = kNfAccept;
    return YES;
  }

  bool iface(uint32_t flags, uint32_t onF, uint32_t negF, uint32_t plusF, const char* spec, uint32_t specLen,
             const char* name, int& res) const {
    if (!(flags & onF)) return true;
    if (name == nullptr) {
      res = SLOW;
      return false;
    }
    bool eq = (flags & plusF) ? strncmp(name, spec, specLen) == 0 : strncmp(name, spec, 16) == 0;
    if (eq == bool(flags & negF)) {
      res = NO;
      return false;
    }
    return true;
  }

  // Engine.baseMatches.
  int base(const Program::Impl::Rule& r) const {
    uint32_t f = r.flags;
    if (f & F_SLOW) return SLOW;
    uint32_t nw = v.family == 4 ? 1 : 4;
    const uint32_t* W = p.W;
    if (f & F_SRC) {
      const uint32_t *a = W + r.src, *m = a + 4;
      bool eq = true;
      for (uint32_t i = 0; i < nw; i++)
        if ((v.src[i] & m[i]) != a[i]) eq = false;
      if (eq == bool(f & F_SRC_NEG)) return NO;
    }
    if (f & F_DST) {
      const uint32_t *a = W + r.dst, *m = a + 4;
      bool eq = true;
      for (uint32_t i = 0; i < nw; i++)
        if ((v.dst[i] & m[i]) != a[i]) eq = false;
      if (eq == bool(f & F_DST_NEG)) return NO;
    }
    int res = YES;
    if ((f & F_IN) && !iface(f, F_IN, F_IN_NEG, F_IN_PLUS, reinterpret_cast<const char*>(W + r.in), r.inLen, inName, res))
      return res;
    if ((f & F_OUT) && !iface(f, F_OUT, F_OUT_NEG, F_OUT_PLUS, reinterpret_cast<const char*>(W + r.out), r.outLen, outName, res))
      return res;
    if (f & F_PROTO) {
      bool neg = f & F_PROTO_NEG;
      if (v.family == 4) {
        if (r.proto != 0 && (v.proto != r.proto) != neg) return NO;
      } else if (v.proto == r.proto) {
        if (neg) return NO;
      } else if (r.proto != 0 && !neg) {
        return NO;
      }
    }
    if ((f & F_FRAG) && v.family == 4 && (v.fragOff != 0) == bool(f & F_FRAG_NEG)) return NO;
    return YES;
  }

  int op(uint32_t code, const uint32_t* a) const {
    switch (code) {
      case OP_TCP: {  // tcp.ts
        if (v.proto != 6) return NO;
        uint32_t mask = a[7], cmp = a[8];
        bool fInv = a[9] != 0;
        if (a[0] == 0) {  // xtMatch, no --tcp-option
          if (v.fragOff != 0) return v.fragOff == 8 ? SLOW : NO;
          int64_t off = v.transportStart(20);
          if (off < 0) return SLOW;
          if (!inRange(a[1], a[2], v.at16(off), a[3] != 0)) return NO;
          if (!inRange(a[4], a[5], v.at16(off + 2), a[6] != 0)) return NO;
          if (((v.d[off + 13] & mask) == cmp) == fInv) return NO;
          return YES;
        }
        bool ports = !allPorts(a[1], a[2]) || !allPorts(a[4], a[5]);
        if (!ports && mask == 0) return YES;
        int64_t off = v.transportStart(mask ? 14 : 4);
        if (off < 0) return NO;
        if (ports && !nftPorts(a + 1, v.at16(off), v.at16(off + 2))) return NO;
        if (mask && ((v.d[off + 13] & mask) == cmp) == fInv) return NO;
        return YES;
      }
      case OP_UDP: {  // udp.ts
        if (v.proto != a[0]) return NO;
        const uint32_t* t = a + 1;
        if (allPorts(t[0], t[1]) && allPorts(t[3], t[4]) && !t[2] && !t[5]) {
          if (v.fragOff != 0) return NO;
          if (v.transportStart(8) < 0) return SLOW;
          return YES;
        }
        if (allPorts(t[0], t[1]) && allPorts(t[3], t[4])) return YES;
        int64_t off = v.transportStart(4);
        if (off < 0) return NO;
        return nftPorts(t, v.at16(off), v.at16(off + 2)) ? YES : NO;
      }
      case OP_MULTIPORT: {  // multiport.ts
        if (v.fragOff != 0) return NO;
        int64_t off = v.transportStart(4);
        if (off < 0) return SLOW;
        uint32_t sp = v.at16(off), dp = v.at16(off + 2);
        auto any = [&](uint32_t p) {
          for (uint32_t k = 0; k < a[2]; k++)
            if (p >= a[3 + 2 * k] && p <= a[4 + 2 * k]) return true;
          return false;
        };
        bool hit = a[0] == 0 ? any(sp) : a[0] == 1 ? any(dp) : (any(sp) || any(dp));
        return hit != (a[1] != 0) ? YES : NO;
      }
      case OP_MARK:
        return ((mark & a[1]) == a[0]) != (a[2] != 0) ? YES : NO;
      case OP_CONNMARK:
        if (!in.tracked) return SLOW;
        return ct.tracked() && (((ct.mark & a[1]) == a[0]) != (a[2] != 0)) ? YES : NO;
      case OP_CONNTRACK: {  // conntrack.ts, --ctstate --ctstatus --ctdir
        if (!in.tracked) return SLOW;
        if (a[0]) {
          bool hit = (ct.states() & a[1]) != 0;
          if (hit == (a[2] != 0)) return NO;
        }
        if (!ct.tracked()) return a[0] ? YES : NO;
        if (a[3] != 0 && ct.dir != a[3] - 1) return NO;
        if (a[4] && ((a[5] & ct.status) != 0) == (a[6] != 0)) return NO;
        return YES;
      }
      case OP_STATE:
        if (!in.tracked) return SLOW;
        return ((ct.states() & a[0]) != 0) != (a[1] != 0) ? YES : NO;
      case OP_ICMP: {  // icmp.ts, icmp6.ts
        if (v.proto != a[0] || v.fragOff != 0) return NO;
        if (v.truncated || v.icmpType < 0) return SLOW;
        bool hit = a[5] != 0 || (uint32_t(v.icmpType) == a[1] && uint32_t(v.icmpCode) >= a[2] && uint32_t(v.icmpCode) <= a[3]);
        return hit != (a[4] != 0) ? YES : NO;
      }
      case OP_IPRANGE: {  // iprange.ts
        uint32_t nw = v.family == 4 ? 1 : 4;
        for (int side = 0; side < 2; side++) {
          const uint32_t* q = a + 10 * side;
          if (!q[0]) continue;
          const uint32_t* addr = side == 0 ? v.src : v.dst;
          bool inside = cmpAddr(addr, q + 2, nw) >= 0 && cmpAddr(addr, q + 6, nw) <= 0;
          if (inside == (q[1] != 0)) return NO;
        }
        return YES;
      }
      case OP_ADDRTYPE:  // addrtype.ts, LOCAL only
        if (a[0] && isLocal(host, v.family, v.src) == (a[1] != 0)) return NO;
        if (a[2] && isLocal(host, v.family, v.dst) == (a[3] != 0)) return NO;
        return YES;
      case OP_TTL: {  // util/ttlhl.ts
        uint32_t t = v.family == 4 ? v.d[8] : v.d[7];
        switch (a[0]) {
          case 0:
            return t == a[1] ? YES : NO;
          case 1:
            return t != a[1] ? YES : NO;
          case 2:
            return t < a[1] ? YES : NO;
          case 3:
            return t > a[1] ? YES : NO;
          default:
            return SLOW;
        }
      }
      case OP_PHYSDEV: {  // physdev.ts; a: in [on, inv, plus, name x4], out [same], isIn, isOut, isBridged [on, inv]
        bool hasIn = physInName != nullptr && physInName[0] != 0, hasOut = physOutName != nullptr && physOutName[0] != 0;
        if (in.physInIf == 0 && in.physOutIf == 0) {
          if ((a[14] && !a[15]) || (a[16] && !a[17]) || (a[18] && !a[19]) || (a[0] && !a[1]) || (a[7] && !a[8])) return NO;
          return YES;
        }
        // A port the host view has no name for: its name cannot be compared, nor can absent be told from unnamed.
        if ((in.physInIf != 0 && !hasIn) || (in.physOutIf != 0 && !hasOut)) return SLOW;
        if (a[18] && hasOut == (a[19] != 0)) return NO;
        if (a[14] && hasIn == (a[15] != 0)) return NO;
        if (a[16] && hasOut == (a[17] != 0)) return NO;
        auto named = [](const uint32_t* q, const char* dev) {
          char spec[16];
          for (int j = 0; j < 16; j++) spec[j] = char((q[3 + (j >> 2)] >> (8 * (j & 3))) & 0xff);
          spec[15] = 0;
          return q[2] ? strncmp(dev, spec, strnlen(spec, 16)) == 0 : strncmp(dev, spec, 16) == 0;
        };
        if (a[0] && hasIn && named(a, physInName) == (a[1] != 0)) return NO;
        if (!a[7] || !hasOut) return YES;
        return named(a + 7, physOutName) != (a[8] != 0) ? YES : NO;
      }
      case OP_STATISTIC: {  // statistic.ts, --mode random: one draw per evaluation
        uint32_t x = draw() & 0x7fffffffu;
        return (x < a[0]) != (a[1] != 0) ? YES : NO;
      }
      case OP_RT:  // rt.ts: no routing header in a packet without extension headers (parseView)
        return v.family == 6 ? NO : SLOW;
      default:
        return SLOW;
    }
  }

  void lookup(const Program::Impl::Chain& ch, Cursor& c) const {
    c.on = false;
    c.count = 0;
    if (ch.index < 0) return;
    const Program::Impl::Index& ix = p.indexes[size_t(ch.index)];
    c.on = true;
    c.add(ix.wild.data(), uint32_t(ix.wild.size()));
    const Program::Impl::Index::AddrSlot* s = ix.find(v.dst);
    if (s == nullptr) return;
    // The keys a packet meets: its address alone, with its protocol, and with its destination port (chain-index.ts
    // portList: PORT_PROTOCOLS and their header needs; an SCTP header too short for its port meets every rule with
    // a port, kAllPorts).
    uint32_t port = kNone;
    uint32_t need = v.proto == 6 || v.proto == 17 || v.proto == 136 ? 4 : v.proto == 132 ? 12 : 0;
    if (need != 0) {
      int64_t off = v.transportStart(need);
      if (off >= 0) port = v.at16(off + 2);
      else if (v.proto == 132) port = kAllPorts;
    }
    for (uint32_t j = s->first; j < s->first + s->count; j++) {
      const Program::Impl::Index::Sub& u = ix.subs[j];
      if (u.proto == kNone || (u.proto == v.proto && (u.port == kNone || (port != kNone && u.port == port))))
        c.add(ix.ids.data() + u.first, u.count);
    }
  }

  // Engine.walk for one table. YES: `verdict` set; SLOW: JavaScript decides.
  int walk(uint32_t baseIdx, uint32_t stackLimit, uint32_t& verdict) {
    const Program::Impl::Chain& baseCh = p.chains[baseIdx];
    Frame stack[kStackFrames];
    uint32_t depth = 0;
    uint32_t chainIdx = baseIdx;
    const Program::Impl::Chain* ch = &baseCh;
    uint32_t i = 0;
    int64_t steps = -1;
    Cursor cur;
    auto advance = [&](uint32_t from) {
      if (!cur.on) {
        i = from;
        return;
      }
      int64_t nx = cur.next();
      uint32_t to = nx < 0 ? ch->n : uint32_t(nx);
      if (int64_t(to) - from >= kMaxSteps - steps) {
        i = from + uint32_t(std::max<int64_t>(0, kMaxSteps - steps));
        steps = kMaxSteps;
        return;
      }
      steps += int64_t(to) - from;
      i = to;
    };
    auto enter = [&](uint32_t from) {
      lookup(*ch, cur);
      if (cur.on) cur.seek(from);
      advance(from);
    };
    auto push = [&](uint32_t id) {
      if (out.pathLen >= kMaxPath) return false;
      out.path[out.pathLen++] = id;
      return true;
    };
    auto policy = [&]() {
      if (!push(baseCh.policyCounter)) return SLOW;
      verdict = baseCh.policy == 1 ? kNfDrop : kNfAccept;
      return YES;
    };
    auto doReturn = [&]() {
      if (depth == 0) return false;
      depth--;
      chainIdx = stack[depth].chain;
      ch = &p.chains[chainIdx];
      enter(stack[depth].next);
      return true;
    };
    enter(0);
    for (;;) {
      steps++;
      if (steps > kMaxSteps) return SLOW;  // the engine's loop guard drops: JavaScript says so
      if (i >= ch->n) {
        if (ch->builtin) return policy();
        if (!doReturn()) return policy();
        continue;
      }
      const Program::Impl::Rule& r = p.rules[ch->first + i];
      int b = base(r);
      if (b == SLOW) return SLOW;
      if (b == NO) {
        advance(i + 1);
        continue;
      }
      bool ok = true;
      const uint32_t* w = p.W + r.ops;
      for (uint32_t k = 0; k < r.nOps; k++) {
        uint32_t code = w[0] & 0xffff, len = w[1];
        // Engine.walk: a match past the rule's leading flow-stable ones ran (flowInfo), whatever it returns.
        if (w[0] >> 16) unstable = true;
        int m = code == OP_SLOW ? SLOW : op(code, w + 2);
        if (m == SLOW) return SLOW;
        if (m == NO) {
          ok = false;
          break;
        }
        w += 2 + len;
      }
      if (!ok) {
        advance(i + 1);
        continue;
      }
      if (!push(r.counter)) return SLOW;
      if (r.tUnstable) unstable = true;
      switch (r.tKind) {
        case T_NONE:
          advance(i + 1);
          continue;
        case T_JUMP:
          if (depth >= stackLimit || depth >= kStackFrames) return SLOW;  // the engine drops past the kernel's limit
          stack[depth++] = Frame{chainIdx, i + 1};
          // fallthrough
        case T_GOTO:
          chainIdx = r.tA;
          ch = &p.chains[chainIdx];
          enter(0);
          continue;
        case T_MARK:
          mark = (mark & ~r.tB) ^ r.tA;
          enter(i + 1);
          continue;
        case T_RETURN:
          if (!doReturn()) return policy();
          continue;
        case T_ACCEPT:
          verdict = kNfAccept;
          return YES;
        case T_DROP:
          verdict = kNfDrop;
          return YES;
        case T_QUEUE:
          verdict = kNfQueue | (r.tA << 16);
          return YES;
        case T_NAT:
          return natTarget(r, verdict);
        default:
          return SLOW;
      }
    }
  }
};

const char* ifName(const Host& h, uint32_t ifindex) {
  if (ifindex == 0) return "";
  if (ifindex >= h.names.size() || h.names[ifindex][0] == 0) return nullptr;
  return h.names[ifindex].data();
}

}  // namespace

bool Program::run(const Input& in, const Host& host, Result& out) const {
  if (!impl_ || in.family != family_ || in.hook > 4) return false;
  View v;
  if (!parseView(in, v)) return false;
  uint8_t viewBuf[kViewBytes];  // natView's copy of the headers
  const Impl& p = *impl_;
  Run run{p, host, in, v, Conn{}, in.mark, ifName(host, in.inIf), ifName(host, in.outIf), ifName(host, in.physInIf),
          ifName(host, in.physOutIf), out};
  out.pathLen = 0;
  out.natRan = 0;
  out.natCount = 0;
  Conn conn;
  conn.present = in.tracked;
  conn.state = in.ctState;
  conn.dir = in.ctDir;
  conn.status = in.ctStatus;
  conn.mark = in.ctMark;
  uint32_t verdict = kNfAccept;
  for (const Impl::HookTable& t : p.hooks[in.hook]) {
    int manip = -1;
    if (t.table == 2) {  // Engine.natManip
      if (!conn.present) continue;
      if (in.hook == 0 || in.hook == 3)
        manip = kManipDst;
      else if (in.hook == 1 || in.hook == 4)
        manip = kManipSrc;
      else
        continue;
      bool icmp = v.proto == (v.family == 4 ? 1u : 58u);
      bool first = (conn.state == kCtNew && conn.dir == 0) || (conn.state == kCtRelated && !icmp);
      if (!first) continue;
      if (conn.status & (manip == kManipSrc ? kIpsSrcNatDone : kIpsDstNatDone)) continue;
    }
    run.ct = conn;
    if (t.table == 0 && conn.present) {  // raw: before conntrack
      run.ct.state = kCtInvalid;
      run.ct.status = 0;
      run.ct.mark = 0;
    }
    uint32_t tv = kNfAccept;
    run.natTable = t.table == 2;
    run.natPending = false;
    if (run.walk(t.chain, t.stackLimit, tv) != YES) return false;
    if (manip >= 0) {
      out.natRan |= uint8_t(1u << manip);
      run.unstable = true;  // a connection's first packet: nothing after it repeats this
      if (run.natPending && tv == kNfAccept) {
        if (!in.takesNat) return false;
        out.nat[out.natCount++] = run.natReq;
        // OUTPUT's filter and security see the packet as the request rewrites it (engine.ts natView).
        if (in.hook == 3 && natViewChanges(run.natReq) && !natView(v, viewBuf, run.natReq)) return false;
      }
    }
    if (tv != kNfAccept) {
      verdict = tv;
      break;
    }
  }
  out.verdict = verdict;
  out.mark = run.mark;
  out.setMark = run.mark != in.mark;
  out.flowStable = !run.unstable;
  return true;
}

void Program::count(const Result& r, uint32_t wireLen) {
  uint32_t n = std::min(r.pathLen, kMaxPath);
  for (uint32_t k = 0; k < n; k++) {
    uint32_t id = r.path[k];
    if (id >= packets_.size()) continue;
    packets_[id].fetch_add(1, std::memory_order_relaxed);
    bytes_[id].fetch_add(wireLen, std::memory_order_relaxed);
  }
  // With drain()'s fence: either this sees the bit a drain cleared (and sets it again, for the next drain), or that
  // drain's exchanges of the counters, after its fence, see the adds above. A bit seen set is only written when clear.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (uint32_t k = 0; k < n; k++) {
    uint32_t id = r.path[k];
    if (id >= packets_.size()) continue;
    std::atomic<uint64_t>& d = dirty_[id >> 6];
    uint64_t bit = uint64_t(1) << (id & 63);
    if ((d.load(std::memory_order_relaxed) & bit) == 0) d.fetch_or(bit, std::memory_order_relaxed);
  }
}

void Program::drain(std::vector<Hits>& out) {
  for (size_t w = 0; w < dirty_.size(); w++) {
    if (dirty_[w].load(std::memory_order_relaxed) == 0) continue;
    uint64_t bits = dirty_[w].exchange(0, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // count()'s other half
    while (bits != 0) {
      uint32_t k = uint32_t(w * 64 + uint32_t(__builtin_ctzll(bits)));
      bits &= bits - 1;
      uint64_t pk = packets_[k].exchange(0, std::memory_order_relaxed);
      uint64_t by = bytes_[k].exchange(0, std::memory_order_relaxed);
      // Zero when a count after the last drain's exchange set the bit again: its adds went into that drain.
      if (pk != 0 || by != 0) out.push_back(Hits{k, pk, by});
    }
  }
}

void Matcher::setProgram(uint8_t family, std::shared_ptr<Program> p, uint32_t serial) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = family == 6 ? v6_ : v4_;
  if (e.program) retired_.push_back(e);
  e.program = std::move(p);
  e.serial = serial;
}

std::shared_ptr<Program> Matcher::program(uint8_t family) const {
  std::lock_guard<std::mutex> lock(mu_);
  return family == 6 ? v6_.program : v4_.program;
}

std::shared_ptr<Program> Matcher::program(uint8_t family, uint32_t& serial) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Entry& e = family == 6 ? v6_ : v4_;
  serial = e.program ? e.serial : 0;
  return e.program;
}

void Matcher::setHost(std::shared_ptr<const Host> h) {
  std::lock_guard<std::mutex> lock(mu_);
  host_ = h ? std::move(h) : std::make_shared<Host>();
}

std::shared_ptr<const Host> Matcher::host() const {
  std::lock_guard<std::mutex> lock(mu_);
  return host_;
}

void Matcher::drain(std::vector<Drained>& out, std::vector<uint32_t>& done) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Program::Hits> hits;
  auto one = [&](Entry& e) {
    hits.clear();
    e.program->drain(hits);
    for (const Program::Hits& h : hits) out.push_back(Drained{e.serial, h});
  };
  if (v4_.program) one(v4_);
  if (v6_.program) one(v6_);
  for (size_t k = 0; k < retired_.size();) {
    // Nobody else holds it: no batch can count on it any more, so this drain is its last.
    bool last = retired_[k].program.use_count() == 1;
    one(retired_[k]);
    if (last) {
      done.push_back(retired_[k].serial);
      retired_.erase(retired_.begin() + long(k));
    } else {
      k++;
    }
  }
}

}  // namespace mt
}  // namespace nfqwall
