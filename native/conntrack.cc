// See conntrack.h. Kernel references: nf_conntrack_core.c (nf_conntrack_in, resolve_normal_ct, __nf_conntrack_confirm,
// early_drop), nf_conntrack_proto_tcp.c (tcp_conntracks, nf_conntrack_tcp_packet), nf_conntrack_proto_udp.c,
// nf_conntrack_proto_icmp.c / _icmpv6.c (valid_new, noct_valid_new, nf_conntrack_inet_error), nf_nat_core.c
// (nf_nat_setup_info, get_unique_tuple, find_best_ips_proto, nf_nat_l4proto_unique_tuple, nf_nat_packet,
// nf_nat_icmp_reply_translation).
#include "conntrack.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace nfqwall {
namespace ct {

using pkt::Parsed;
using pkt::Tuple;

namespace {

constexpr uint8_t sNO = kTcpNone, sSS = kTcpSynSent, sSR = kTcpSynRecv, sES = kTcpEstablished, sFW = kTcpFinWait,
                  sCW = kTcpCloseWait, sLA = kTcpLastAck, sTW = kTcpTimeWait, sCL = kTcpClose, sS2 = kTcpSynSent2,
                  sIV = kTcpMax, sIG = kTcpIgnore;

// tcp_conntracks[dir][index][state], nf_conntrack_proto_tcp.c.
const uint8_t kTcpTable[2][6][kTcpMax] = {
    {
        /*           sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2 */
        /* syn */ {sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2},
        /* synack */ {sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR},
        /* fin */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
        /* ack */ {sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV},
        /* rst */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        /* none */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
    },
    {
        /* syn */ {sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2},
        /* synack */ {sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR},
        /* fin */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
        /* ack */ {sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG},
        /* rst */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        /* none */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
    },
};

enum { kSynSet = 0, kSynAckSet, kFinSet, kAckSet, kRstSet, kNoneSet };

// How long a dying entry waits for the packets holding it (kClsHolder) to finish their trips through the queue, should
// one of them never come back (routed nowhere, a hook not queued, a reply that could not be sent).
constexpr int64_t kHoldMs = 2000;

// Whether a classification counts among an entry's original-direction packets in flight (Entry::pendingOrig).
bool countsOrig(uint8_t dir, uint8_t state) { return dir == 0 && state != kRelated; }

uint8_t tcpIndex(uint8_t f) {
  if (f & pkt::kTcpRst) return kRstSet;
  if (f & pkt::kTcpSyn) return (f & pkt::kTcpAck) ? kSynAckSet : kSynSet;
  if (f & pkt::kTcpFin) return kFinSet;
  if (f & pkt::kTcpAck) return kAckSet;
  return kNoneSet;
}

// tcp_error(): the flag combinations tcp_valid_flags accepts, PSH, ECE and CWR aside. Anything else is INVALID,
// whether it opens a connection or belongs to one (a SYN|FIN, a bare FIN, no flags at all).
bool tcpFlagsValid(uint8_t f) {
  switch (f & (pkt::kTcpFin | pkt::kTcpSyn | pkt::kTcpRst | pkt::kTcpAck | pkt::kTcpUrg)) {
    case pkt::kTcpSyn:
    case pkt::kTcpSyn | pkt::kTcpUrg:
    case pkt::kTcpSyn | pkt::kTcpAck:
    case pkt::kTcpRst:
    case pkt::kTcpRst | pkt::kTcpAck:
    case pkt::kTcpFin | pkt::kTcpAck:
    case pkt::kTcpFin | pkt::kTcpAck | pkt::kTcpUrg:
    case pkt::kTcpAck:
    case pkt::kTcpAck | pkt::kTcpUrg:
      return true;
    default:
      return false;
  }
}

// ICMP types with an inverse (invmap in nf_conntrack_proto_icmp.c / icmpv6.c); -1 when none.
int icmpInverse(uint8_t family, uint8_t type) {
  if (family == 4) {
    switch (type) {
      case 8: return 0;
      case 0: return 8;
      case 13: return 14;
      case 14: return 13;
      case 15: return 16;
      case 16: return 15;
      case 17: return 18;
      case 18: return 17;
      default: return -1;
    }
  }
  switch (type) {
    case 128: return 129;
    case 129: return 128;
    case 139: return 140;
    case 140: return 139;
    default: return -1;
  }
}

// valid_new[]: the ICMP types that may open a connection.
bool icmpValidNew(uint8_t family, uint8_t type) {
  if (family == 4) return type == 8 || type == 13 || type == 15 || type == 17;
  return type == 128 || type == 139;
}

// noct_valid_new[] of nf_conntrack_proto_icmpv6.c: MLD and neighbour discovery are never tracked.
bool icmpv6Untracked(uint8_t type) {
  return (type >= 130 && type <= 136) || type == 143;
}

uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

int64_t monotonicMs() {
  // Timeouts count in seconds: the coarse clock (jiffies resolution) is enough and costs a few nanoseconds.
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool addrInRange(const uint8_t* a, const uint8_t* lo, const uint8_t* hi, size_t n) {
  return std::memcmp(a, lo, n) >= 0 && std::memcmp(a, hi, n) <= 0;
}

}  // namespace

const char* tcpStateName(uint8_t s) {
  static const char* const names[] = {"NONE",      "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
                                      "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",      "SYN_SENT2"};
  return s < kTcpMax ? names[s] : "INVALID";
}

Tuple invert(const Tuple& t) {
  Tuple r = t;
  std::memcpy(r.src, t.dst, 16);
  std::memcpy(r.dst, t.src, 16);
  if (pkt::isIcmpProto(t.proto, t.family)) {
    int inv = icmpInverse(t.family, uint8_t(t.dport >> 8));
    r.dport = uint16_t(((inv < 0 ? 0xff : inv) << 8) | (t.dport & 0xff));
    r.sport = t.sport;
  } else {
    r.sport = t.dport;
    r.dport = t.sport;
  }
  return r;
}

Tuple manipTuple(const Tuple& t, const Tuple& target, uint8_t manip) {
  Tuple r = t;
  bool icmp = pkt::isIcmpProto(t.proto, t.family);
  if (manip == nat::kManipSrc) {
    std::memcpy(r.src, target.src, 16);
    r.sport = target.sport;
  } else {
    std::memcpy(r.dst, target.dst, 16);
    if (icmp)
      r.sport = target.sport;
    else
      r.dport = target.dport;
  }
  return r;
}

ConnTable::ConnTable(const Config& cfg) : cfg_(cfg), rng_(cfg.seed ? cfg.seed : 1) {
  if (cfg_.maxEntries == 0) cfg_.maxEntries = 1;
  uint64_t b = cfg_.buckets ? cfg_.buckets : cfg_.maxEntries;
  uint64_t n = 16;
  while (n < b) n <<= 1;
  buckets_.assign(n, -1);
  mask_ = n - 1;
  memo_.resize(4096);
  entries_.reserve(std::min<uint32_t>(cfg_.maxEntries, 65536));
  mss_.reserve(entries_.capacity());
  epoch_ = now();
  cur_ = epoch_;
}

// The time of the current call, read once when the call took the lock.
int64_t ConnTable::nowLocked() const { return cur_; }

// Entries keep `created` in 32 bits after epoch_ (and `expires` in 40): the epoch moves to the clock whenever the two
// are 2^29 ms apart (a quarter of created's range), so a time written now always fits.
constexpr int64_t kRebaseMs = int64_t(1) << 29;

void ConnTable::tick() {
  cur_ = cfg_.manualClock ? manualNow_ : monotonicMs();
  if (cur_ - epoch_ > kRebaseMs || epoch_ - cur_ > kRebaseMs) rebase(cur_);
}

void ConnTable::setExpires(Entry& e, int64_t ms) {
  constexpr int64_t kMax = (int64_t(1) << 39) - 1;
  int64_t r = std::min(std::max(ms - epoch_, -kMax), kMax);
  e.expiresLo = uint32_t(uint64_t(r));
  e.expiresHi = uint32_t(uint64_t(r) >> 32) & 0xff;
}

// Re-expresses every entry's times after a new epoch. Only times far in the past can be clamped, and they stay as far
// past as any test of them needs (an entry that had expired stays expired, one created long ago stays old).
void ConnTable::rebase(int64_t epoch) {
  const int64_t old = epoch_;
  for (Entry& e : entries_) {
    if (!e.used) continue;
    epoch_ = old;
    const int64_t expires = expiresOf(e), created = createdOf(e);
    epoch_ = epoch;
    e.created = int32_t(std::min<int64_t>(std::max<int64_t>(created - epoch, INT32_MIN), INT32_MAX));
    setExpires(e, expires);
  }
  epoch_ = epoch;
}

void ConnTable::addCount(uint32_t idx, uint8_t dir, uint64_t packets, uint64_t bytes) {
  Entry& e = entries_[idx];
  const uint64_t p = uint64_t(e.packets[dir]) + uint32_t(packets), b = uint64_t(e.bytes[dir]) + uint32_t(bytes);
  e.packets[dir] = uint32_t(p);
  e.bytes[dir] = uint32_t(b);
  const uint32_t pHi = uint32_t((p >> 32) + (packets >> 32)), bHi = uint32_t((b >> 32) + (bytes >> 32));
  if (pHi == 0 && bHi == 0) return;
  Wide& w = wide_[idx];
  e.wide = 1;
  w.packets[dir] += pHi;
  w.bytes[dir] += bHi;
}

uint64_t ConnTable::packetsOf(uint32_t idx, uint8_t dir) const {
  const Entry& e = entries_[idx];
  uint64_t hi = 0;
  if (e.wide) hi = wide_.at(idx).packets[dir];
  return (hi << 32) | e.packets[dir];
}

uint64_t ConnTable::bytesOf(uint32_t idx, uint8_t dir) const {
  const Entry& e = entries_[idx];
  uint64_t hi = 0;
  if (e.wide) hi = wide_.at(idx).bytes[dir];
  return (hi << 32) | e.bytes[dir];
}

int64_t ConnTable::now() const { return cfg_.manualClock ? manualNow_ : monotonicMs(); }

void ConnTable::setNow(int64_t ms) {
  std::lock_guard<std::mutex> g(mu_);
  tick();
  manualNow_ = ms;
}

uint32_t ConnTable::random32() {
  // xorshift64*: reproducible from the seed, which tests fix.
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return uint32_t((rng_ * 0x2545F4914F6CDD1DULL) >> 32);
}

uint64_t ConnTable::hashTuple(const Tuple& t) const {
  // One multiply per word, one full mix at the end: seeded, so crafted tuples cannot aim at one bucket.
  constexpr uint64_t K = 0x9E3779B97F4A7C15ULL;
  uint64_t h = cfg_.seed;
  h = (h ^ load64(t.src)) * K;
  h = (h ^ (h >> 29) ^ load64(t.src + 8)) * K;
  h = (h ^ (h >> 29) ^ load64(t.dst)) * K;
  h = (h ^ (h >> 29) ^ load64(t.dst + 8)) * K;
  h ^= uint64_t(t.sport) | (uint64_t(t.dport) << 16) | (uint64_t(t.proto) << 32) | (uint64_t(t.family) << 40) |
       (uint64_t(t.zone) << 48);
  return mix64(h);
}

Tuple ConnTable::midOf(const Entry& e, uint8_t d) const {
  return manipTuple(tup(e, d), invert(tup(e, uint8_t(1 - d))), nat::kManipDst);
}

Tuple ConnTable::tup(const Entry& e, uint8_t d) const {
  Tuple t{};
  if (e.pooled) {
    const uint8_t* a = v6_[e.addr[0]].data() + 32 * d;
    std::memcpy(t.src, a, 16);
    std::memcpy(t.dst, a + 16, 16);
  } else {
    std::memcpy(t.src, &e.addr[2 * d], 4);
    std::memcpy(t.dst, &e.addr[2 * d + 1], 4);
  }
  t.sport = e.port[2 * d];
  t.dport = e.port[2 * d + 1];
  t.proto = e.proto;
  t.family = e.family;
  t.zone = e.zone;
  return t;
}

namespace {
bool zeroTail(const uint8_t* a) {
  static const uint8_t z[12] = {};
  return std::memcmp(a + 4, z, 12) == 0;
}
}  // namespace

// Both tuples of a connection share protocol, family and zone (invert and the NAT manips keep them). Addresses are
// kept inline only when nothing is lost: an IPv4 tuple has zeros past its first 4 bytes.
void ConnTable::setTuples(Entry& e, const Tuple& o, const Tuple& r) {
  e.proto = o.proto;
  e.family = o.family;
  e.zone = o.zone;
  e.port[0] = o.sport;
  e.port[1] = o.dport;
  e.port[2] = r.sport;
  e.port[3] = r.dport;
  const bool inl = o.family == 4 && zeroTail(o.src) && zeroTail(o.dst) && zeroTail(r.src) && zeroTail(r.dst);
  if (inl) {
    freeAddrs(e);
    std::memcpy(&e.addr[0], o.src, 4);
    std::memcpy(&e.addr[1], o.dst, 4);
    std::memcpy(&e.addr[2], r.src, 4);
    std::memcpy(&e.addr[3], r.dst, 4);
    return;
  }
  if (!e.pooled) {
    uint32_t slot;
    if (!v6Free_.empty()) {
      slot = v6Free_.back();
      v6Free_.pop_back();
    } else {
      slot = uint32_t(v6_.size());
      v6_.emplace_back();
    }
    std::memset(e.addr, 0, sizeof e.addr);
    e.addr[0] = slot;
    e.pooled = 1;
  }
  uint8_t* a = v6_[e.addr[0]].data();
  std::memcpy(a, o.src, 16);
  std::memcpy(a + 16, o.dst, 16);
  std::memcpy(a + 32, r.src, 16);
  std::memcpy(a + 48, r.dst, 16);
}

void ConnTable::freeAddrs(Entry& e) {
  if (!e.pooled) return;
  v6Free_.push_back(e.addr[0]);
  e.pooled = 0;
  std::memset(e.addr, 0, sizeof e.addr);
}

// A key's bucket is recomputed from its tuple when it is unlinked: an entry's tuples never change while it is linked
// (setupNat unlinks before it rewrites the reply tuple).
void ConnTable::link(uint32_t idx, uint8_t k) {
  Entry& e = entries_[idx];
  uint64_t b = hashTuple(keyOf(e, k)) & mask_;
  e.next[k] = buckets_[b];
  buckets_[b] = int32_t(idx * 4 + k);
  e.keys |= uint8_t(1u << k);
}

void ConnTable::unlinkAll(uint32_t idx) {
  Entry& e = entries_[idx];
  for (uint8_t k = 0; k < 4; k++) {
    if (!(e.keys & (1u << k))) continue;
    uint64_t b = hashTuple(keyOf(e, k)) & mask_;
    int32_t node = int32_t(idx * 4 + k);
    int32_t* at = &buckets_[b];
    while (*at >= 0 && *at != node) at = &entries_[uint32_t(*at) >> 2].next[*at & 3];
    if (*at == node) *at = e.next[k];
    e.next[k] = -1;
  }
  e.keys = 0;
}

// The hash holds both directions' tuples, and for a connection whose destination is rewritten, the form each direction
// has between its destination manip and its source manip (what FORWARD sees), so later hooks find the entry.
void ConnTable::rehashKeys(uint32_t idx) {
  unlinkAll(idx);
  Entry& e = entries_[idx];
  // A NAT_CLASH entry is hashed by its reply tuple only (hlist_nulls_add_fake for the original direction): the
  // original direction's packets belong to the connection that won.
  const bool orig = !(e.status & kNatClash);
  if (orig) link(idx, 0);
  const Tuple t[2] = {tup(e, 0), tup(e, 1)};
  if (t[1] != t[0] || !orig) link(idx, 1);
  for (uint8_t d = 0; d < 2; d++) {
    if (d == 0 && !orig) continue;
    Tuple full = invert(t[1 - d]);
    Tuple mid = manipTuple(t[d], full, nat::kManipDst);
    if (mid != t[d] && mid != full && mid != t[1 - d]) link(idx, uint8_t(2 + d));
  }
}

int32_t ConnTable::find(const Tuple& t, uint8_t maxKey, uint8_t* keyOut, Want w, int* rankOut) {
  int64_t now = nowLocked();
  uint64_t b = hashTuple(t) & mask_;
  int32_t reap = -1, alive = -1, other = -1;
  uint8_t aliveKey = 0, otherKey = 0;
  int aliveRank = 0;
  for (int32_t node = buckets_[b]; node >= 0;) {
    uint32_t idx = uint32_t(node) >> 2;
    uint8_t k = uint8_t(node & 3);
    Entry& e = entries_[idx];
    st_.searched++;
    if (k <= maxKey && (k < 2 ? tupIs(e, k, t) : midOf(e, uint8_t(k - 2)) == t)) {
      if (expired(e, now)) {
        if (e.pending == 0) reap = int32_t(idx);
      } else if (!(e.status & kDying)) {
        // Several packets of one new flow each have their own unconfirmed entry (the kernel's per-skb nf_conn, not in
        // its hash until confirmed): the packet's own entry first, then the confirmed connection, then another
        // packet's unconfirmed one. A conntrack point never finds an unconfirmed entry by its original tuple. Between
        // equals, the entry whose conntrack point saw this very packet (a reply whose tuple is also another
        // connection's translated form, after a clash made that one unique).
        int rank;
        if (e.status & kConfirmed)
          rank = 4;
        else if (w.ctPoint && k == 0)
          rank = 0;
        else if (w.ownerFp && e.ownerFp == *w.ownerFp)
          rank = 6;
        else
          rank = 2;
        const uint8_t pdir = w.inverted ? uint8_t(1 - (k & 1)) : uint8_t(k & 1);
        if (rank && w.ownerFp && e.lastFp[pdir] == *w.ownerFp) rank++;
        if (rank > aliveRank) {
          alive = int32_t(idx);
          aliveKey = k;
          aliveRank = rank;
        }
      } else if ((w.holderFp && e.holds && e.holdFp == *w.holderFp) || (w.attach && e.attachOpen && (k & 1) == 1)) {
        // A dying entry is out of the hash for everyone but the packets that hold it (and, while a REJECT reply is
        // on its way, that reply).
        if (other < 0) {
          other = int32_t(idx);
          otherKey = k;
        }
      }
    }
    node = e.next[k];
  }
  // Lazy expiry: an expired entry met on the way is removed now.
  if (reap >= 0 && reap != alive && reap != other) {
    destroy(uint32_t(reap), (entries_[uint32_t(reap)].status & kDying) ? kGoneMarked : kGoneExpired);
  }
  // The holder of a dying entry gets it even when a new connection with the same tuple exists: the packet belongs to
  // the old one. A reply may attach only when no live connection has the tuple.
  if (other >= 0 && (w.holderFp || alive < 0)) {
    *keyOut = otherKey;
    if (rankOut) *rankOut = 8;
    return other;
  }
  if (alive >= 0) *keyOut = aliveKey;
  if (rankOut) *rankOut = alive >= 0 ? aliveRank : 0;
  return alive;
}

// The packet keeps a dying entry alive for its later hooks (kClsHolder), as an skb keeps its nf_conn.
void ConnTable::hold(uint32_t idx, uint32_t fp, Classification& c) {
  Entry& e = entries_[idx];
  e.holds++;
  e.holdFp = fp;
  setExpires(e, std::max(expiresOf(e), nowLocked() + kHoldMs));
  c.flags |= kClsHolder;
}

// The connection is gone for new lookups (nf_ct_kill, or an unconfirmed one whose first packet was dropped); the
// packets holding it keep it until their last trip. `attachable`: a REJECT reply sent for the dropped packet has not
// been classified yet and will attach to it.
void ConnTable::doom(uint32_t idx, bool attachable) {
  Entry& e = entries_[idx];
  die(e, kGoneDiscarded);
  e.attachOpen = attachable ? 1 : 0;
  int64_t now = nowLocked();
  // kHoldMs from now, not the unconfirmed entry's own ten seconds: a dying entry waits only for its holders.
  setExpires(e, (e.holds || e.attachOpen) ? now + kHoldMs : now);
}

void ConnTable::unconfirmedGone(const Entry& e) {
  unconfirmed_--;
  uint32_t& n = owners_[e.ownerFp & (kOwnerSlots - 1)];
  if (n) n--;
}

void ConnTable::destroy(uint32_t idx, uint8_t why) {
  Entry& e = entries_[idx];
  if (!e.used) return;
  if (why == kGoneMarked) why = e.gone ? e.gone : uint8_t(kGoneDiscarded);
  switch (why) {
    case kGoneKilled: st_.killed++; break;
    case kGoneExpired: st_.expired++; break;
    case kGoneEarlyDrop: st_.earlyDrop++; break;
    case kGoneDeleted: st_.deleted++; break;
    default: st_.discarded++; break;
  }
  if (e.wide) {
    wide_.erase(idx);
    e.wide = 0;
  }
  unlinkAll(idx);
  if (e.bysource) {
    auto range = bysource_.equal_range(srcKey(tup(e, 0)));
    for (auto it = range.first; it != range.second; ++it)
      if (it->second == idx) {
        bysource_.erase(it);
        break;
      }
    e.bysource = false;
  }
  if (!(e.status & kConfirmed)) unconfirmedGone(e);
  freeAddrs(e);  // last: unlinking and bysource read the tuples
  e.used = false;
  e.gen++;
  count_--;
  free_.push_back(idx);
}

bool ConnTable::earlyDrop(const Tuple& t) {
  // early_drop(): look at a few buckets from the new tuple's for a confirmed connection not yet ASSURED.
  uint64_t b0 = hashTuple(t) & mask_;
  for (uint64_t i = 0; i < 8; i++) {
    for (int32_t node = buckets_[(b0 + i) & mask_]; node >= 0;) {
      uint32_t idx = uint32_t(node) >> 2;
      Entry& e = entries_[idx];
      // Also an unconfirmed entry whose packet left a second ago and never reached its confirmation point (the
      // kernel would have freed it with the packet), so a flood of such packets cannot hold the table.
      bool stale = !(e.status & kConfirmed) && nowLocked() - createdOf(e) > 1000;
      if (!(e.status & (kAssured | kDying)) && ((e.status & kConfirmed) || stale) && e.pending == 0) {
        destroy(idx, kGoneEarlyDrop);
        return true;
      }
      node = e.next[node & 3];
    }
  }
  return false;
}

int32_t ConnTable::allocate(const Tuple& orig, int64_t now) {
  if (count_ >= cfg_.maxEntries) {
    sweepLocked(64, now);
    if (count_ >= cfg_.maxEntries && !earlyDrop(orig)) return -1;
  }
  uint32_t idx;
  if (!free_.empty()) {
    idx = free_.back();
    free_.pop_back();
  } else {
    idx = uint32_t(entries_.size());
    entries_.emplace_back();
    mss_.resize(entries_.size());
  }
  mss_[idx] = 0;
  Entry& e = entries_[idx];
  uint32_t gen = e.gen + 1;
  e = Entry();
  e.gen = gen;
  e.used = true;
  setTuples(e, orig, invert(orig));
  e.created = int32_t(now - epoch_);
  setExpires(e, now + int64_t(cfg_.timeouts.unconfirmed) * 1000);
  count_++;
  unconfirmed_++;
  rehashKeys(idx);
  return int32_t(idx);
}

bool ConnTable::newAllowed(const Parsed& h) const {
  if (h.proto == pkt::kProtoTcp) {
    uint8_t s = kTcpTable[0][tcpIndex(h.tcpFlags)][sNO];
    if (s == sIV) return false;
    if (s == sES && !cfg_.tcpLoose) return false;
    return true;
  }
  if (pkt::isIcmpProto(h.proto, h.family)) return icmpValidNew(h.family, h.icmpType);
  if (h.proto == pkt::kProtoSctp) return h.sctpChunk == 1;  // INIT
  return true;
}

uint8_t ConnTable::tcpTrack(Entry& e, uint8_t dir, const Parsed& h, uint32_t& timeoutMs, bool& kill, bool& ignored) {
  uint8_t index = tcpIndex(h.tcpFlags);
  uint8_t old = e.tcpState;
  uint8_t ns = kTcpTable[dir][index][old];
  if (ns == sIV) return sIV;
  if (ns == sIG) {
    // Ignored: the state and the timer stay (the kernel's window checks are not modelled).
    ignored = true;
    return old;
  }
  e.tcpState = ns & 15;
  if (!(e.status & kSeenReply)) {
    // An RST before any reply: the kernel deletes the connection at once (nf_ct_kill_acct).
    if (h.tcpFlags & pkt::kTcpRst) kill = true;
  } else if (!(e.status & kAssured) && (old == sSR || old == sES) && ns == sES) {
    e.status |= kAssured;
  }
  uint32_t secs = index == kRstSet ? cfg_.timeouts.tcp[sCL] : cfg_.timeouts.tcp[ns];
  timeoutMs = secs * 1000;
  return ns;
}

uint32_t ConnTable::refresh(Entry& e, uint8_t dir, const Parsed& h, bool& invalid, bool& kill, bool& ignored) {
  const Timeouts& to = cfg_.timeouts;
  int64_t now = nowLocked();
  uint32_t ms = 0;
  if (h.proto == pkt::kProtoTcp) {
    if (tcpTrack(e, dir, h, ms, kill, ignored) == sIV) {
      invalid = true;
      return 0;
    }
    if (ignored) return 0;
  } else if (h.proto == pkt::kProtoUdp || h.proto == pkt::kProtoUdplite || h.proto == pkt::kProtoDccp) {
    if (e.status & kSeenReply) {
      // Still active two seconds after it started: a stream, assured, with the longer timeout.
      if (now > createdOf(e) + 2000) {
        ms = to.udpStream * 1000;
        // Never ASSURED for IPS_NAT_CLASH: it times out soon and may always be evicted.
        if (!(e.status & kNatClash)) e.status |= kAssured;
      } else {
        ms = to.udp * 1000;
      }
    } else {
      ms = to.udp * 1000;
    }
  } else if (pkt::isIcmpProto(h.proto, h.family)) {
    ms = to.icmp * 1000;
  } else if (h.proto == pkt::kProtoSctp) {
    if (e.status & kSeenReply || dir == 1) {
      ms = to.sctpEstablished * 1000;
      if (e.status & kSeenReply) e.status |= kAssured;
    } else {
      ms = to.sctpNew * 1000;
    }
  } else {
    ms = to.generic * 1000;
  }
  return ms;
}

void ConnTable::fill(Classification& c, uint32_t idx, uint8_t dir, uint8_t state) {
  Entry& e = entries_[idx];
  c.handle = idx + 1;
  c.gen = e.gen;
  c.dir = dir;
  c.state = state;
  c.status = e.status;
  c.mark = e.mark;
  c.tcpState = e.tcpState;
  c.zone = e.zone;
  e.pending++;
  if (countsOrig(dir, state)) e.pendingOrig++;
}

ConnTable::Entry* ConnTable::live(const Classification& c) {
  if (c.handle == 0 || c.handle > entries_.size()) return nullptr;
  Entry& e = entries_[c.handle - 1];
  if (!e.used || e.gen != c.gen) return nullptr;
  return &e;
}

void ConnTable::memoPut(uint64_t key, uint8_t state, int64_t now) {
  MemoSlot& s = memo_[key & (memo_.size() - 1)];
  s.key = key;
  s.state = state;
  s.at = now;
}

bool ConnTable::memoGet(uint64_t key, uint8_t& state, int64_t now) {
  MemoSlot& s = memo_[key & (memo_.size() - 1)];
  if (s.key != key || s.at + 2000 < now) return false;
  state = s.state;
  return true;
}

bool ConnTable::relate(const uint8_t* p, size_t len, const Parsed& h, bool ctPoint, Classification& c) {
  pkt::Inner in;
  if (!pkt::parseIcmpErrorInner(p, len, h, in)) return false;
  Tuple q = in.hdr.tuple;
  q.zone = h.tuple.zone;
  uint8_t k = 0;
  int32_t idx;
  uint8_t dir;
  const uint32_t fp = h.fingerprint;
  if (ctPoint) {
    // nf_conntrack_inet_error(): the quoted packet went the other way; its inverse is a tuple of the connection.
    Want w;
    w.attach = true;
    w.ctPoint = true;
    idx = find(invert(q), 1, &k, w);
    if (idx < 0) return false;
    dir = k;
    // The error must go to the quoted packet's sender.
    Entry& e = entries_[uint32_t(idx)];
    if (std::memcmp(h.tuple.dst, tup(e, dir).dst, 16) != 0) return false;
    if (!(e.status & kConfirmed)) {
      // Only an error nfqwall's REJECT sends can meet an unconfirmed connection (a real one answers a packet that
      // left, so was confirmed): icmp_send attached it to the rejected packet's connection (nf_ct_attach), which it
      // keeps even after that packet is dropped.
      if (e.attachOpen) e.attachOpen--;
      hold(uint32_t(idx), fp, c);
    }
  } else {
    Want w;
    w.holderFp = &fp;
    int rank = 0, rank2 = 0;
    uint8_t k2 = 0;
    idx = find(q, 3, &k, w, &rank);
    dir = uint8_t(1 - (k & 1));
    int32_t idx2 = rank >= 6 ? -1 : find(invert(q), 1, &k2, w, &rank2);
    if (idx2 >= 0 && rank2 > rank) {
      idx = idx2;
      dir = k2;
    }
    if (idx < 0) return false;
    const Entry& e = entries_[uint32_t(idx)];
    if (e.holds && e.holdFp == fp) c.flags |= kClsHolder;
  }
  fill(c, uint32_t(idx), dir, kRelated);
  return true;
}

Classification ConnTable::classify(const uint8_t* p, size_t len, uint8_t family, uint8_t hook, uint32_t flags,
                                   uint16_t zone) {
  std::lock_guard<std::mutex> g(mu_);
  tick();
  Classification c;
  c.hook = hook;
  c.zone = zone;
  const bool ctPoint = (flags & kCtPoint) != 0;
  int64_t now = nowLocked();
  // Amortised expiry: a couple of slots per packet keeps the sweep off the per-packet critical path.
  if ((++classifyTick_ & 7) == 0) sweepLocked(16, now);

  Parsed h = pkt::parse(p, len, family);
  if (!h.ok || h.truncated) {
    st_.invalid++;
    return c;
  }
  h.tuple.zone = zone;
  c.fingerprint = h.fingerprint;
  c.tupleHash = hashTuple(h.tuple);
  if (h.fragment) {
    c.flags |= kClsFragment;
    st_.invalid++;
    return c;
  }
  if (h.proto == pkt::kProtoTcp && !tcpFlagsValid(h.tcpFlags)) {
    if (ctPoint) st_.invalid++;
    return c;
  }
  // tcp_error, udp_error, icmp_error: a malformed transport header is INVALID; so is a bad checksum of a received
  // packet nobody has verified yet (nf_conntrack_checksum, checked at PREROUTING, the conntrack point of received
  // packets, never for locally generated ones). IPv6 "no next header" has no protocol to track (ipv6_skip_exthdr).
  const bool received = hook == kPreRouting || hook == kLocalIn || hook == kForward;
  if (!pkt::transportHeaderValid(p, len, h) || (h.family == 6 && h.proto == 59) ||
      (ctPoint && received && (flags & kCsumUnverified) && !pkt::transportChecksumOk(p, len, h))) {
    if (ctPoint) st_.invalid++;
    return c;
  }
  const uint64_t memoKey = c.tupleHash ^ (uint64_t(h.fingerprint) * 0x9E3779B97F4A7C15ULL);
  const bool icmp = pkt::isIcmpProto(h.proto, h.family);

  if (icmp && h.family == 6 && icmpv6Untracked(h.icmpType)) {
    c.state = kUntracked;
    st_.untracked++;
    return c;
  }
  if (icmp && pkt::isIcmpError(h.family, h.icmpType)) {
    bool found = relate(p, len, h, ctPoint, c);
    if (ctPoint) (found ? st_.related : st_.invalid)++;
    return c;
  }
  if (icmp && icmpInverse(h.family, h.icmpType) < 0) {
    st_.invalid++;
    return c;
  }

  if (!ctPoint) {
    uint8_t ms;
    if (memoGet(memoKey, ms, now)) {
      c.state = ms;
      return c;
    }
    uint8_t k = 0, k2 = 0;
    Want w;
    w.holderFp = &h.fingerprint;
    w.ownerFp = &h.fingerprint;
    // The packet as its conntrack point saw it, or already rewritten by its connection's NAT (the inverse of the other
    // direction's tuple): the better match of the two, so a DNATed packet finds its own entry rather than another
    // connection that has its rewritten form as original tuple.
    int rank = 0, rank2 = 0;
    int32_t idx = find(h.tuple, 3, &k, w, &rank);
    uint8_t dir = k & 1;
    Want wi = w;
    wi.inverted = true;
    // A confirmed entry whose conntrack point saw this packet (5) can only lose to the packet's own unconfirmed entry
    // (fingerprints are not unique): when no unconfirmed entry has a creator with this fingerprint's slot, one lookup
    // is enough.
    const bool enough = rank >= 6 || (rank == 5 && owners_[h.fingerprint & (kOwnerSlots - 1)] == 0);
    int32_t idx2 = enough ? -1 : find(invert(h.tuple), 1, &k2, wi, &rank2);
    if (idx2 >= 0 && rank2 > rank) {
      idx = idx2;
      dir = uint8_t(1 - k2);
    }
    if (idx < 0) {
      st_.invalid++;
      return c;
    }
    Entry& e = entries_[uint32_t(idx)];
    if (e.holds && e.holdFp == h.fingerprint) c.flags |= kClsHolder;
    uint8_t state;
    if (e.lastFp[dir] == h.fingerprint)
      state = e.lastState(dir);
    else
      state = dir == 0 ? ((e.status & kSeenReply) ? kEstablished : kNew) : kEstablished;
    fill(c, uint32_t(idx), dir, state);
    return c;
  }

  // nf_conntrack_in(): resolve_normal_ct, then the protocol's packet function.
  uint8_t k = 0;
  const bool rst = h.proto == pkt::kProtoTcp && (h.tcpFlags & pkt::kTcpRst);
  Want w;
  w.attach = rst;  // a REJECT's reset may still attach to the connection its rejected first packet left behind
  w.ctPoint = true;
  int32_t idx = find(h.tuple, 1, &k, w);
  uint8_t dir = k;
  bool created = false;
  if (idx >= 0 && dir == 1 && rst &&
      !(entries_[uint32_t(idx)].status & kConfirmed) &&
      (entries_[uint32_t(idx)].pendingOrig || entries_[uint32_t(idx)].attachOpen)) {
    // A reset in the reply direction of an unconfirmed connection whose first packet is being decided (or was just
    // dropped after sending replies): the tcp-reset of nfqwall's REJECT, since a real reply answers a packet that left,
    // so was confirmed. nf_send_reset attaches it to the rejected packet's connection as RELATED_REPLY (nf_ct_attach)
    // and nf_conntrack_in leaves it alone: no state change, no counters. (Only a reset: a crafted reply that overtakes
    // a first packet still in the queue is tracked as the kernel would track it once that packet had left.)
    Entry& e = entries_[uint32_t(idx)];
    if (e.attachOpen) e.attachOpen--;
    e.lastFp[1] = h.fingerprint;
    e.setLastState(1, kRelated);
    hold(uint32_t(idx), h.fingerprint, c);
    st_.found++;
    fill(c, uint32_t(idx), 1, kRelated);
    return c;
  }
  if (idx >= 0 && h.proto == pkt::kProtoTcp && dir == 0 && tcpIndex(h.tcpFlags) == kSynSet) {
    Entry& e = entries_[uint32_t(idx)];
    if (e.tcpState == sTW || e.tcpState == sCL) {
      // A SYN reopening a closed connection: the old entry goes and the SYN starts a new one (-NF_REPEAT).
      die(e, kGoneKilled);
      setExpires(e, now);
      if (e.pending == 0) destroy(uint32_t(idx), kGoneMarked);
      idx = -1;
    }
  }
  if (idx < 0) {
    if (!newAllowed(h)) {
      st_.invalid++;
      memoPut(memoKey, kInvalid, now);
      return c;
    }
    idx = allocate(h.tuple, now);
    if (idx < 0) {
      st_.drop++;
      c.flags |= kClsDrop;
      return c;
    }
    dir = 0;
    created = true;
    entries_[uint32_t(idx)].ownerFp = h.fingerprint;
    owners_[h.fingerprint & (kOwnerSlots - 1)]++;
    st_.created++;
  } else {
    st_.found++;
  }
  Entry& e = entries_[uint32_t(idx)];
  const uint8_t state = dir == 0 ? ((e.status & kSeenReply) ? kEstablished : kNew) : kEstablished;
  bool invalid = false, kill = false, ignored = false;
  uint32_t ms = refresh(e, dir, h, invalid, kill, ignored);
  e.lastFp[dir] = h.fingerprint;
  if (invalid) {
    st_.invalid++;
    e.setLastState(dir, kInvalid);
    if (created) {
      destroy(uint32_t(idx), kGoneDiscarded);
      memoPut(memoKey, kInvalid, now);
      return c;
    }
    // The connection stays; this packet has none (INVALID) but is remembered for its later hooks.
    memoPut(memoKey, kInvalid, now);
    return c;
  }
  if (ignored) st_.ignore++;
  if (h.proto == pkt::kProtoTcp && (h.tcpFlags & pkt::kTcpSyn)) {
    const uint16_t mss = pkt::tcpMssOption(p, len, h);
    const uint32_t shift = dir ? 16 : 0;
    if (mss > uint16_t(mss_[uint32_t(idx)] >> shift))
      mss_[uint32_t(idx)] = (mss_[uint32_t(idx)] & ~(0xffffu << shift)) | (uint32_t(mss) << shift);
  }
  e.setLastState(dir, state);
  addCount(uint32_t(idx), dir, 1, h.ipLen);
  if (ms) {
    if (!(e.status & kConfirmed))
      e.timeoutMs = ms;
    else if (!(e.status & kFixedTimeout))
      setExpires(e, now + ms);
  }
  if (dir == 1) e.status |= kSeenReply;
  if (kill) {
    // nf_ct_kill_acct(): out of the hash now; this packet keeps it for its later hooks, where it is still translated.
    die(e, kGoneKilled);
    setExpires(e, now);
    hold(uint32_t(idx), h.fingerprint, c);
  }
  fill(c, uint32_t(idx), dir, state);
  if (created) c.flags |= kClsCreated;
  if (ignored) c.flags |= kClsIgnored;
  return c;
}

bool ConnTable::usedTuple(const Tuple& t, uint32_t self) {
  // nf_nat_used_tuple() / nf_conntrack_tuple_taken(): a connection in the hash (confirmed) already expects replies to
  // this tuple. Not when its original tuple is this connection's: the same flow, a second packet that lost the race
  // to confirm (nf_ct_resolve_clash deals with it).
  Tuple reply = invert(t);
  uint64_t b = hashTuple(reply) & mask_;
  int64_t now = nowLocked();
  const Tuple own = tup(entries_[self], 0);
  for (int32_t node = buckets_[b]; node >= 0;) {
    uint32_t idx = uint32_t(node) >> 2;
    uint8_t k = uint8_t(node & 3);
    const Entry& e = entries_[idx];
    if (k < 2 && idx != self && tupIs(e, k, reply) && (e.status & kConfirmed) && !(e.status & kDying) &&
        !expired(e, now) && !tupIs(e, 0, own))
      return true;
    node = e.next[k];
  }
  return false;
}

// nf_nat_used_tuple_new(), for the original tuple of get_unique_tuple's first step: a clash with a connection in the
// reverse direction (both sides opened the flow at once) is left to clash resolution when neither is NATed and the
// protocol allows clashes, instead of taking another source port.
bool ConnTable::usedTupleNew(const Tuple& t, uint32_t self) {
  if (!usedTuple(t, self)) return false;
  const Entry& me = entries_[self];
  if (!allowClash(tup(me, 0))) return true;
  if (me.status & kNatMask) return true;
  int32_t o = findClash(t, self);
  if (o < 0) o = findClash(invert(t), self);
  if (o < 0) return false;
  const Entry& other = entries_[uint32_t(o)];
  if (other.status & kNatMask) return true;
  return !tupIs(other, 0, tup(me, 1));
}

void ConnTable::pickAddress(Tuple& t, const nat::Request& r, uint8_t manip, const Tuple& orig) {
  if (!(r.flags & nat::kMapIps)) return;
  uint8_t* var = manip == nat::kManipSrc ? t.src : t.dst;
  const size_t n = t.family == 4 ? 4 : 16;
  if (r.flags & nat::kNetmap) {
    for (size_t i = 0; i < n; i++) {
      uint8_t m = uint8_t(~(r.minAddr[i] ^ r.maxAddr[i]));
      var[i] = uint8_t((var[i] & ~m) | (r.minAddr[i] & m));
    }
    return;
  }
  if (std::memcmp(r.minAddr, r.maxAddr, n) == 0) {
    std::memcpy(var, r.minAddr, n);
    return;
  }
  // find_best_ips_proto(): a hash of the source (and, unless --persistent, the destination) picks the address, so a
  // client keeps its address across connections.
  uint64_t j = mix64(cfg_.seed ^ load64(orig.src) ^ (load64(orig.src + 8) << 1));
  if (!(r.flags & nat::kPersistent)) j = mix64(j ^ load64(orig.dst) ^ (load64(orig.dst + 8) << 1) ^ orig.zone);

  // The span of the range over its low 64 bits (IPv6 ranges wider than that use the low 64 bits of the minimum).
  size_t hi = n > 8 ? n - 8 : 0;
  uint64_t lo = 0, hiv = 0;
  for (size_t i = hi; i < n; i++) {
    lo = (lo << 8) | r.minAddr[i];
    hiv = (hiv << 8) | r.maxAddr[i];
  }
  bool sameTop = std::memcmp(r.minAddr, r.maxAddr, hi) == 0;
  uint64_t dist = (sameTop && hiv >= lo) ? hiv - lo : 0;
  uint64_t pick = lo;
  if (dist && dist < 0xffffffffULL)
    pick = lo + ((uint64_t(uint32_t(j)) * (dist + 1)) >> 32);  // reciprocal_scale(), as the kernel scales
  else if (dist)
    pick = lo + (dist == ~0ULL ? j : j % (dist + 1));
  std::memcpy(var, r.minAddr, n);
  for (size_t i = n; i > hi; i--) {
    var[i - 1] = uint8_t(pick);
    pick >>= 8;
  }
}

// nf_nat_l4proto_unique_tuple(): when every candidate is in use the last one stays (the clash is found at confirmation).
void ConnTable::uniquePort(Tuple& t, const nat::Request& r, uint8_t manip, uint32_t self) {
  const bool icmp = pkt::isIcmpProto(t.proto, t.family);
  // Protocols without ports have nothing to change: such a connection stays a clash.
  if (!icmp && !pkt::hasPorts(t.proto)) return;
  uint16_t* key = icmp ? &t.sport : (manip == nat::kManipSrc ? &t.sport : &t.dport);
  uint32_t min, size;
  if (icmp) {
    if (r.flags & nat::kProtoSpecified) {
      min = std::min(r.minPort, r.maxPort);
      size = uint32_t(std::max(r.minPort, r.maxPort)) - min + 1;
    } else {
      min = 0;
      size = 65536;
    }
  } else if (!(r.flags & nat::kProtoSpecified)) {
    // A destination rewrite without ports keeps the port.
    if (manip == nat::kManipDst) return;
    if (*key < 1024) {
      if (*key < 512) {
        min = 1;
        size = 511;
      } else {
        min = 600;
        size = 1023 - 600 + 1;
      }
    } else {
      min = 1024;
      size = 65535 - 1024 + 1;
    }
  } else {
    min = std::min(r.minPort, r.maxPort);
    size = uint32_t(std::max(r.minPort, r.maxPort)) - min + 1;
  }
  uint32_t off;
  if (r.flags & nat::kProtoOffset)
    off = uint16_t(*key - r.basePort);
  else if ((r.flags & nat::kProtoRandomAll) || manip != nat::kManipDst)
    off = random32() & 0xffff;
  else
    off = 0;
  uint32_t attempts = std::min<uint32_t>(size, 128);
  for (;;) {
    for (uint32_t i = 0; i < attempts; i++, off++) {
      *key = uint16_t(min + off % size);
      if (!usedTuple(t, self)) return;
    }
    if (attempts >= size || attempts < 16) return;
    attempts /= 2;
    off = random32() & 0xffff;
  }
}

uint64_t ConnTable::srcKey(const Tuple& t) const {
  uint64_t h = mix64(cfg_.seed ^ 0x5352434b4559ULL ^ load64(t.src));
  h = mix64(h ^ load64(t.src + 8));
  return mix64(h ^ (uint64_t(t.sport) | (uint64_t(t.proto) << 16) | (uint64_t(t.family) << 24) | (uint64_t(t.zone) << 32)));
}

namespace {

// nf_nat_inet_in_range() + l4proto_in_range() for the source part of a tuple.
bool srcInRange(const Tuple& t, const nat::Request& r) {
  const size_t n = t.family == 4 ? 4 : 16;
  if ((r.flags & nat::kMapIps) && !addrInRange(t.src, r.minAddr, r.maxAddr, n)) return false;
  if (!(r.flags & nat::kProtoSpecified)) return true;
  if (!pkt::hasPorts(t.proto) && !pkt::isIcmpProto(t.proto, t.family)) return true;
  return t.sport >= std::min(r.minPort, r.maxPort) && t.sport <= std::max(r.minPort, r.maxPort);
}

}  // namespace

bool ConnTable::appropriateSrc(const Tuple& orig, Tuple& out, const nat::Request& r, uint32_t self) {
  // find_appropriate_src(): another connection from the same source already has a mapping in this range: reuse it.
  auto range = bysource_.equal_range(srcKey(orig));
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second == self) continue;
    const Entry& o = entries_[it->second];
    const Tuple ot = tup(o, 0);
    if (std::memcmp(ot.src, orig.src, 16) != 0 || ot.sport != orig.sport || ot.proto != orig.proto ||
        ot.family != orig.family || ot.zone != orig.zone)
      continue;
    Tuple cand = invert(tup(o, 1));
    std::memcpy(cand.dst, orig.dst, 16);
    cand.dport = orig.dport;
    if (srcInRange(cand, r)) {
      out = cand;
      return true;
    }
  }
  return false;
}

bool ConnTable::setupNat(uint32_t idx, const nat::Request* r, uint8_t manip) {
  Entry& e = entries_[idx];
  const Tuple curr = invert(tup(e, 1));
  Tuple nt = curr;
  if (r) {
    const size_t n = curr.family == 4 ? 4 : 16;
    bool done = false;
    if (manip == nat::kManipSrc && !(r->flags & nat::kProtoRandomAll)) {
      // get_unique_tuple() 1): keep the original source when it is in the range and unused.
      bool in = true;
      if ((r->flags & nat::kMapIps) && !(r->flags & nat::kNetmap) && !addrInRange(curr.src, r->minAddr, r->maxAddr, n))
        in = false;
      if ((r->flags & nat::kNetmap)) in = false;
      if (in && (r->flags & nat::kProtoSpecified)) {
        bool ports = pkt::hasPorts(curr.proto) || pkt::isIcmpProto(curr.proto, curr.family);
        uint16_t key = curr.sport;
        if (ports && (key < std::min(r->minPort, r->maxPort) || key > std::max(r->minPort, r->maxPort))) in = false;
      }
      if (in && !usedTupleNew(curr, idx)) {
        done = true;
      } else if (!in) {
        Tuple cand;
        if (appropriateSrc(curr, cand, *r, idx) && !usedTuple(cand, idx)) {
          nt = cand;
          done = true;
        }
      }
    }
    if (!done) {
      pickAddress(nt, *r, manip, curr);
      bool fine = false;
      if (!(r->flags & nat::kProtoRandomAll)) {
        if (r->flags & nat::kProtoSpecified) {
          const bool icmp = pkt::isIcmpProto(nt.proto, nt.family);
          uint16_t key = icmp ? nt.sport : (manip == nat::kManipSrc ? nt.sport : nt.dport);
          bool inRange = key >= std::min(r->minPort, r->maxPort) && key <= std::max(r->minPort, r->maxPort);
          if (!(r->flags & nat::kProtoOffset) && inRange && (r->minPort == r->maxPort || !usedTuple(nt, idx)))
            fine = true;
          if (!icmp && !pkt::hasPorts(nt.proto) && !usedTuple(nt, idx)) fine = true;
        } else if (!usedTuple(nt, idx)) {
          fine = true;
        }
      }
      if (!fine) uniquePort(nt, *r, manip, idx);
    }
  }
  // nf_nat_setup_info() makes the binding even when the tuple is still in use (a DNAT to where another connection
  // already is, a port range with every port taken): __nf_conntrack_confirm finds the clash and decides.
  if (!(nt == curr)) {
    unlinkAll(idx);  // its buckets are found from the tuples it was linked with
    setTuples(e, tup(e, 0), invert(nt));
    e.status |= manip == nat::kManipSrc ? kSrcNat : kDstNat;
    rehashKeys(idx);
  }
  e.status |= manip == nat::kManipSrc ? kSrcNatDone : kDstNatDone;
  if (manip == nat::kManipSrc && !e.bysource) {
    bysource_.emplace(srcKey(tup(e, 0)), idx);
    e.bysource = true;
  }
  if (r && manip == nat::kManipSrc && r->masqIfindex) e.masqIfindex = r->masqIfindex;
  return true;
}

bool ConnTable::bindLocked(uint32_t idx, const Classification& c, const Update& u) {
  Entry& e = entries_[idx];
  // nf_nat_inet_fn(): the nat chains bind only a new connection, or a non-ICMP RELATED packet (a REJECT's TCP reset,
  // helpers' expectations), once per manip type.
  const bool first = c.state == kNew && c.dir == 0 && !(e.status & kConfirmed);
  if (!first && c.state != kRelated) return true;
  bool ok = true;
  for (uint8_t m = 0; m < 2; m++) {
    if (!(u.natRan & (1u << m))) continue;
    uint32_t doneBit = m == nat::kManipSrc ? kSrcNatDone : kDstNatDone;
    if (e.status & doneBit) continue;
    const nat::Request* r = nullptr;
    for (uint8_t i = 0; i < u.natCount && i < 2; i++)
      if (u.nat[i].manip == m) r = &u.nat[i];
    // nf_nat_alloc_null_binding(): the address as it stands (the reply tuple's, in case it was mangled), the
    // protocol part left to get_unique_tuple, so a tuple another connection uses gets a new source port.
    nat::Request null;
    if (!r) {
      null.manip = m;
      null.flags = nat::kMapIps;
      const Tuple reply = tup(e, 1);
      const uint8_t* a = m == nat::kManipSrc ? reply.dst : reply.src;
      std::memcpy(null.minAddr, a, 16);
      std::memcpy(null.maxAddr, a, 16);
      r = &null;
    }
    if (!setupNat(idx, r, m)) ok = false;
  }
  return ok;
}

bool ConnTable::bind(const Classification& c, const Update& u) {
  std::lock_guard<std::mutex> g(mu_);
  tick();
  Entry* e = live(c);
  if (!e || (e->status & kDying)) return true;
  return bindLocked(c.handle - 1, c, u);
}

bool ConnTable::commit(const Classification& c, const Update& u) {
  std::lock_guard<std::mutex> g(mu_);
  tick();
  int32_t reap = -1;
  bool ok = commitLocked(c, u, reap);
  if (reap >= 0) destroy(uint32_t(reap), kGoneMarked);
  return ok;
}

bool ConnTable::finish(const Classification& c, const Update& u, uint8_t* p, size_t len, uint8_t family, uint8_t hook,
                       bool& changed) {
  std::lock_guard<std::mutex> g(mu_);
  tick();
  int32_t reap = -1, attached = -1;
  bool ok = commitLocked(c, u, reap, &attached);
  if (attached >= 0) {
    // nf_ct_set(skb, winner): the packet leaves as the connection it was attached to translates it.
    Classification w = c;
    w.handle = uint32_t(attached) + 1;
    w.gen = entries_[uint32_t(attached)].gen;
    changed = ok && u.accept && p && translateLocked(w, p, len, family, hook);
  } else {
    changed = ok && u.accept && p && translateLocked(c, p, len, family, hook);
  }
  if (reap >= 0) destroy(uint32_t(reap), kGoneMarked);
  return ok;
}

bool ConnTable::commitLocked(const Classification& c, const Update& u, int32_t& reap, int32_t* attachedTo) {
  int64_t now = nowLocked();
  const uint64_t memoKey = c.tupleHash ^ (uint64_t(c.fingerprint) * 0x9E3779B97F4A7C15ULL);
  Entry* e = live(c);
  if (u.notrack && (c.tupleHash || c.fingerprint)) memoPut(memoKey, kUntracked, now);
  if (!e) return true;
  uint32_t idx = c.handle - 1;
  if (e->pending) e->pending--;
  if (countsOrig(c.dir, c.state) && e->pendingOrig) e->pendingOrig--;
  // The packet's last trip (its confirmation point, or a drop) releases a hold it has on the entry.
  if ((c.flags & kClsHolder) && ((u.final && !u.looped) || !u.accept) && e->holds) e->holds--;
  // A dying entry goes once nothing holds it and no packet of it is in the queue (the last nf_ct_put).
  auto release = [&]() {
    if (!(e->status & kDying)) return;
    if (!e->holds && !e->attachOpen && expiresOf(*e) > now) setExpires(*e, now);
    if (e->pending == 0 && expired(*e, now)) reap = int32_t(idx);
  };
  if (!u.accept || (u.notrack && (c.flags & kClsCreated))) {
    // The kernel frees an unconfirmed connection with the packet that made it, unless a duplicate of that packet is
    // still in flight (it may yet confirm it). A REJECT reply attached to it keeps it for its own trips.
    if (!(e->status & (kConfirmed | kDying)) && countsOrig(c.dir, c.state) && e->pendingOrig == 0)
      doom(idx, u.replied && !u.notrack && e->holds == 0);
    release();
    return true;
  }
  if (e->status & kDying) {
    // nf_nat_inet_fn() runs the nat chains for a RELATED packet whose manip type is unbound, even when its connection
    // is on its way out (a REJECT reply attached to a rejected first packet's connection).
    if (c.state == kRelated) bindLocked(idx, c, u);
    release();
    return true;
  }
  if (u.setMark) e->mark = u.mark;
  bindLocked(idx, c, u);
  // __nf_conntrack_confirm() confirms only from the original direction: a REJECT reply attached to an unconfirmed
  // connection (RELATED_REPLY) passes its last hook without confirming it.
  if (u.final && c.dir == 0 && !(e->status & kConfirmed)) {
    int32_t winner = -1;
    switch (confirmLocked(idx, winner)) {
      case Confirm::kInserted:
        break;
      case Confirm::kAttached:
        // The packet now belongs to the connection that won; its own entry goes with this trip.
        if (attachedTo) *attachedTo = winner;
        die(*e, kGoneDiscarded);
        setExpires(*e, now);
        if (e->pending == 0) reap = int32_t(idx);
        break;
      case Confirm::kDropped:
        die(*e, kGoneDiscarded);
        setExpires(*e, now);
        if (e->pending == 0) reap = int32_t(idx);
        return false;
    }
  }
  return true;
}

bool ConnTable::allowClash(const Tuple& t) {
  // l4proto->allow_clash: UDP, UDP-Lite, GRE and the generic tracker (the last since "Add allow_clash to generic
  // protocol handler", in the 6.18 stable series); not TCP, SCTP, DCCP, ICMP or ICMPv6.
  if (pkt::isIcmpProto(t.proto, t.family)) return false;
  return t.proto != pkt::kProtoTcp && t.proto != pkt::kProtoSctp && t.proto != pkt::kProtoDccp;
}

// A confirmed, live connection (other than `self`) that has `t` as one of its tuples: what __nf_conntrack_confirm's
// hash walk (nf_ct_key_equal, confirmed entries only) finds.
int32_t ConnTable::findClash(const Tuple& t, uint32_t self) {
  int64_t now = nowLocked();
  uint64_t b = hashTuple(t) & mask_;
  for (int32_t node = buckets_[b]; node >= 0;) {
    uint32_t idx = uint32_t(node) >> 2;
    uint8_t k = uint8_t(node & 3);
    const Entry& e = entries_[idx];
    if (k < 2 && idx != self && tupIs(e, k, t) && (e.status & kConfirmed) && !(e.status & kDying) && !expired(e, now))
      return int32_t(idx);
    node = e.next[k];
  }
  return -1;
}

// nf_ct_can_merge(): the two connections are the same flow, in the same direction (nf_ct_match) or in opposite ones
// (nf_ct_match_reverse). Tuples include the zone.
bool ConnTable::canMerge(uint32_t w, uint32_t l) const {
  const Entry& a = entries_[w];
  const Entry& b = entries_[l];
  const Tuple a0 = tup(a, 0), a1 = tup(a, 1), b0 = tup(b, 0), b1 = tup(b, 1);
  return (a0 == b0 && a1 == b1) || (a0 == b1 && a1 == b0);
}

// __nf_conntrack_confirm() and nf_ct_resolve_clash(): insert the entry unless a confirmed connection already has its
// original or its reply tuple; then, for a protocol that allows clashes, attach the packet to that connection when it
// is the same flow (__nf_ct_resolve_clash), or insert the entry by its reply tuple only when that one is unique
// (nf_ct_resolve_clash_harder: IPS_NAT_CLASH, a fixed one-second timeout); otherwise the packet is dropped.
ConnTable::Confirm ConnTable::confirmLocked(uint32_t idx, int32_t& winner) {
  Entry& l = entries_[idx];
  const int64_t now = nowLocked();
  const Tuple lt[2] = {tup(l, 0), tup(l, 1)};
  int32_t h = findClash(lt[0], idx);
  if (h < 0) h = findClash(lt[1], idx);
  auto attach = [&](int32_t w) {
    // nf_ct_acct_merge(): the winner counts the packet.
    addCount(uint32_t(w), 0, 1, bytesOf(idx, 0));
    st_.clashResolve++;
    winner = w;
    return Confirm::kAttached;
  };
  auto drop = [&]() {
    st_.drop++;
    st_.insertFailed++;
    if (l.status & kNatMask) st_.natFailed++;
    return Confirm::kDropped;
  };
  if (h < 0) {
    l.status |= kConfirmed;
    unconfirmedGone(l);
    setExpires(l, now + (l.timeoutMs ? int64_t(l.timeoutMs) : int64_t(cfg_.timeouts.generic) * 1000));
    return Confirm::kInserted;
  }
  if (!allowClash(lt[0])) return drop();
  if (canMerge(uint32_t(h), idx)) return attach(h);
  // nf_ct_resolve_clash_harder(): the reply direction must not clash, unless it is the same flow.
  int32_t r = findClash(lt[1], idx);
  if (r >= 0) return canMerge(uint32_t(r), idx) ? attach(r) : drop();
  l.status |= kConfirmed | kNatClash | kFixedTimeout;
  unconfirmedGone(l);
  setExpires(l, now + 1000);
  rehashKeys(idx);
  st_.clashResolve++;
  return Confirm::kInserted;
}

bool ConnTable::translate(const Classification& c, uint8_t* p, size_t len, uint8_t family, uint8_t hook) {
  std::lock_guard<std::mutex> g(mu_);
  tick();
  return translateLocked(c, p, len, family, hook);
}

bool ConnTable::translateLocked(const Classification& c, uint8_t* p, size_t len, uint8_t family, uint8_t hook) {
  if (c.state != kNew && c.state != kEstablished && c.state != kRelated) return false;
  Entry* e = live(c);
  if (!e) return false;
  uint8_t m;
  if (hook == kPreRouting || hook == kLocalOut)
    m = nat::kManipDst;
  else if (hook == kLocalIn || hook == kPostRouting)
    m = nat::kManipSrc;
  else
    return false;
  // nf_nat_packet(): the reply direction undoes the other manip type.
  uint32_t bit = m == nat::kManipSrc ? kSrcNat : kDstNat;
  if (c.dir == 1) bit ^= kNatMask;
  if (!(e->status & bit)) return false;
  Parsed h = pkt::parse(p, len, family);
  if (!h.ok || h.truncated || h.fragment) return false;
  const Tuple other = tup(*e, uint8_t(1 - c.dir));
  if (c.state == kRelated && pkt::isIcmpProto(h.proto, h.family) && pkt::isIcmpError(h.family, h.icmpType)) {
    // nf_nat_icmp_reply_translation(): the quoted packet gets the opposite manip, the outer header the usual one,
    // and the ICMP checksum is recomputed over the result.
    pkt::Inner in;
    if (!pkt::parseIcmpErrorInner(p, len, h, in)) return false;
    if (h.ipLen > len) return false;  // a truncated copy: the checksum cannot be recomputed
    if (!nat::manipPacket(p, len, in.hdr, other, uint8_t(1 - m), in.ipOff)) return false;
    Tuple target = invert(other);
    if (!nat::manipPacket(p, len, h, target, m)) return false;
    pkt::fixTransportChecksum(p, len, h);
    return true;
  }
  return nat::manipPacket(p, len, h, invert(other), m);
}

size_t ConnTable::sweepLocked(size_t budget, int64_t now) {
  size_t n = entries_.size(), removed = 0;
  if (n == 0) return 0;
  for (size_t i = 0; i < budget && i < n; i++) {
    if (sweepCursor_ >= n) sweepCursor_ = 0;
    uint32_t idx = uint32_t(sweepCursor_++);
    Entry& e = entries_[idx];
    // A dying entry's expiry is when its last holder lets go (kHoldMs at most): until then it stays.
    if (e.used && e.pending == 0 && expired(e, now)) {
      destroy(idx, (e.status & kDying) ? kGoneMarked : kGoneExpired);
      removed++;
    }
  }
  return removed;
}

size_t ConnTable::sweep(size_t budget) {
  std::lock_guard<std::mutex> g(mu_);
  tick();
  return sweepLocked(budget, nowLocked());
}

size_t ConnTable::flushInterface(uint32_t ifindex) {
  std::lock_guard<std::mutex> g(mu_);
  tick();
  size_t n = 0;
  for (uint32_t i = 0; i < entries_.size(); i++) {
    Entry& e = entries_[i];
    if (e.used && e.masqIfindex == ifindex && ifindex != 0) {
      destroy(i, kGoneDeleted);
      n++;
    }
  }
  return n;
}

size_t ConnTable::flushAddress(uint8_t family, const uint8_t* addr) {
  std::lock_guard<std::mutex> g(mu_);
  tick();
  uint8_t a[16] = {};
  std::memcpy(a, addr, family == 4 ? 4 : 16);
  size_t n = 0;
  for (uint32_t i = 0; i < entries_.size(); i++) {
    Entry& e = entries_[i];
    // masq_inet_event(): the masqueraded connections whose translated source was that address.
    if (e.used && e.masqIfindex && e.family == family && std::memcmp(tup(e, 1).dst, a, 16) == 0) {
      destroy(i, kGoneDeleted);
      n++;
    }
  }
  return n;
}

size_t ConnTable::flush() {
  std::lock_guard<std::mutex> g(mu_);
  tick();
  size_t n = 0;
  for (uint32_t i = 0; i < entries_.size(); i++)
    if (entries_[i].used) {
      destroy(i, kGoneDeleted);
      n++;
    }
  return n;
}

Stats ConnTable::stats() {
  std::lock_guard<std::mutex> g(mu_);
  tick();
  Stats s = st_;
  s.entries = count_;
  s.unconfirmed = unconfirmed_;
  return s;
}

bool ConnTable::view(const Classification& c, EntryView& v) {
  std::lock_guard<std::mutex> g(mu_);
  tick();
  const Entry* e = live(c);
  if (!e) return false;
  v = viewOf(c.handle - 1);
  return true;
}

uint16_t ConnTable::peerMss(const Classification& c) {
  std::lock_guard<std::mutex> g(mu_);
  if (!live(c)) return 0;
  const uint32_t both = mss_[c.handle - 1];
  return uint16_t(c.dir ? both : both >> 16);
}

bool ConnTable::viewAt(uint32_t handle, uint32_t gen, EntryView& v) {
  Classification c;
  c.handle = handle;
  c.gen = gen;
  return view(c, v);
}

EntryView ConnTable::viewOf(uint32_t i) const {
  const Entry& e = entries_[i];
  int64_t now = nowLocked();
  EntryView v;
  v.handle = i + 1;
  v.gen = e.gen;
  v.orig = tup(e, 0);
  v.reply = tup(e, 1);
  v.status = e.status;
  v.mark = e.mark;
  v.zone = e.zone;
  v.tcpState = e.tcpState;
  v.expiresMs = expiresOf(e) - now;
  for (uint8_t d = 0; d < 2; d++) {
    v.packets[d] = packetsOf(i, d);
    v.bytes[d] = bytesOf(i, d);
  }
  v.masqIfindex = e.masqIfindex;
  return v;
}

std::vector<EntryView> ConnTable::list() {
  std::lock_guard<std::mutex> g(mu_);
  tick();
  int64_t now = nowLocked();
  std::vector<EntryView> out;
  for (uint32_t i = 0; i < entries_.size(); i++) {
    const Entry& e = entries_[i];
    // conntrack -L does not show NAT_CLASH entries (their original direction is not in the hash).
    if (!e.used || (e.status & (kDying | kNatClash)) || expired(e, now)) continue;
    out.push_back(viewOf(i));
  }
  return out;
}

namespace {

std::string addrText(const uint8_t* a, uint8_t family) {
  char buf[64];
  if (family == 4) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
    return buf;
  }
  // RFC 5952: the longest run of two or more zero groups becomes "::".
  uint16_t w[8];
  for (int i = 0; i < 8; i++) w[i] = uint16_t((a[2 * i] << 8) | a[2 * i + 1]);
  int best = -1, bestLen = 0;
  for (int i = 0; i < 8;) {
    if (w[i] != 0) {
      i++;
      continue;
    }
    int j = i;
    while (j < 8 && w[j] == 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  std::string s;
  for (int i = 0; i < 8; i++) {
    if (i == best) {
      s += "::";
      i += bestLen - 1;
      continue;
    }
    if (!s.empty() && s.back() != ':') s += ':';
    std::snprintf(buf, sizeof buf, "%x", w[i]);
    s += buf;
  }
  return s;
}

std::string tupleText(const Tuple& t) {
  std::string s = "src=" + addrText(t.src, t.family) + " dst=" + addrText(t.dst, t.family) + " ";
  char buf[64];
  if (pkt::isIcmpProto(t.proto, t.family)) {
    std::snprintf(buf, sizeof buf, "type=%u code=%u id=%u ", t.dport >> 8, t.dport & 0xff, t.sport);
    s += buf;
  } else if (pkt::hasPorts(t.proto)) {
    std::snprintf(buf, sizeof buf, "sport=%u dport=%u ", t.sport, t.dport);
    s += buf;
  }
  return s;
}

const char* protoName(uint8_t proto) {
  switch (proto) {
    case pkt::kProtoTcp: return "tcp";
    case pkt::kProtoUdp: return "udp";
    case pkt::kProtoIcmp: return "icmp";
    case pkt::kProtoIcmpv6: return "icmpv6";
    case pkt::kProtoSctp: return "sctp";
    case pkt::kProtoDccp: return "dccp";
    case pkt::kProtoUdplite: return "udplite";
    default: return "unknown";
  }
}

}  // namespace

std::string ConnTable::format(const EntryView& e) {
  // conntrack-tools' default output: "tcp      6 431999 ESTABLISHED src=... [UNREPLIED] src=... [ASSURED] mark=0 use=1".
  char head[96];
  const char* name = protoName(e.orig.proto);
  std::snprintf(head, sizeof head, "%-8s %u %lld ", name, e.orig.proto,
                static_cast<long long>(e.expiresMs > 0 ? e.expiresMs / 1000 : 0));
  std::string s = head;
  if (e.orig.proto == pkt::kProtoTcp) {
    s += tcpStateName(e.tcpState);
    s += ' ';
  }
  s += tupleText(e.orig);
  if (!(e.status & kSeenReply)) s += "[UNREPLIED] ";
  s += tupleText(e.reply);
  if (e.status & kAssured) s += "[ASSURED] ";
  if (!(e.status & kConfirmed)) s += "[UNCONFIRMED] ";
  char tail[64];
  std::snprintf(tail, sizeof tail, "mark=%u ", e.mark);
  s += tail;
  if (e.zone) {
    std::snprintf(tail, sizeof tail, "zone=%u ", e.zone);
    s += tail;
  }
  s += "use=1";
  return s;
}

void classifyBatch(ConnTable& t, uint32_t n, const uint8_t* data, const uint32_t* offsets, const uint16_t* protos,
                   const uint8_t* hooks, const uint32_t* inIf, const uint8_t* pktFlags, uint8_t csumUnverifiedBit,
                   uint32_t queued, BatchColumns& out) {
  out.resize(n);
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t family = protos[i] == 0x86dd ? 6 : 4;
    const uint32_t flags = ctPointFlags(hooks[i], inIf[i], queued) | ((pktFlags[i] & csumUnverifiedBit) ? kCsumUnverified : 0);
    Classification c = t.classify(data + offsets[i], offsets[i + 1] - offsets[i], family, hooks[i], flags);
    out.cls[i] = c;
    out.state[i] = c.state;
    out.dir[i] = c.dir;
    out.status[i] = c.status;
    out.mark[i] = c.mark;
    out.handle[i] = c.handle;
    out.gen[i] = c.gen;
  }
}

}  // namespace ct
}  // namespace nfqwall
