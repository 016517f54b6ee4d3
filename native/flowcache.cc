#include "flowcache.h"

#include <chrono>

namespace nfqwall {
namespace fc {

namespace {

uint32_t pow2AtLeast(uint64_t n) {
  uint64_t p = 1;
  while (p < n && p < (1ull << 31)) p <<= 1;
  return uint32_t(p);
}

uint32_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return uint32_t(x);
}

// NF_INET_* hooks, NF_ACCEPT, and the IPS_* NAT bits (the kernel's uapi values).
constexpr uint8_t kPreRouting = 0, kLocalIn = 1, kForward = 2, kPostRouting = 4;
constexpr uint32_t kAccept = 1;
constexpr uint32_t kSrcNat = 1u << 4, kDstNat = 1u << 5;
// Longer than any packet stays between two hooks, queue backlogs included: a count older than this was left by a
// packet the kernel dropped on the way (TTL, no route), and no longer holds its flow back.
constexpr uint32_t kTransitMs = 50;


// Status bits outside the mask are ones no rule in force reads (FlowCache::invalidate(statusMask)).
bool sameStatus(uint32_t a, uint32_t b, uint32_t statusMask) { return ((a ^ b) & statusMask) == 0; }

bool sameValues(const Values& a, const Values& b, uint32_t statusMask) {
  return sameStatus(a.status, b.status, statusMask) && a.mark == b.mark && a.connmark == b.connmark && a.zone == b.zone &&
         a.inIf == b.inIf && a.outIf == b.outIf && a.physInIf == b.physInIf && a.physOutIf == b.physOutIf;
}

}  // namespace

uint32_t FlowCache::clockMs() const {
  if (clock_) return clock_();
  return uint32_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

FlowCache::FlowCache(const Options& o) : clock_(o.clock) {
  uint32_t cap = pow2AtLeast(o.capacity < kWays ? kWays : o.capacity);
  slots_.resize(cap);
  bucketMask_ = cap / kWays - 1;
  // Twice the decisions, at least 4096: packets waiting in JavaScript are few (pending batches times their size), so
  // collisions, which only cost a miss, stay rare.
  uint32_t w = pow2AtLeast(uint64_t(cap) * 2 < 4096 ? 4096 : uint64_t(cap) * 2);
  waiting_.assign(w, 0);
  uncacheable_.assign(w, 0);  // 0 is never a generation
  parkMark_.assign(w, 0);
  parkList_.reserve(4096);
  transit_.assign(w, Transit{});
  held_.reserve(kMaxHeld);
  barrier_.reserve(kMaxHeld);
  waitMask_ = w - 1;
  maxPaths_ = o.maxPaths ? o.maxPaths : 1;
  pathPackets_.assign(maxPaths_, 0);
  pathBytes_.assign(maxPaths_, 0);
  touched_.reserve(maxPaths_);
}

uint32_t FlowCache::bucketOf(const Key& k) const {
  uint64_t x = (uint64_t(k.handle) << 32 | k.gen) ^ (uint64_t(k.hook) << 1 | k.dir) * 0x9e3779b97f4a7c15ull;
  return mix(x) & bucketMask_;
}

uint32_t FlowCache::waitIndex(const Key& k) const {
  uint64_t x = (uint64_t(k.handle) << 32 | k.gen) ^ (uint64_t(k.dir) + 1) * 0xc2b2ae3d27d4eb4full;
  return mix(x) & waitMask_;
}

FlowCache::Slot* FlowCache::find(const Key& k, uint32_t gen) {
  Slot* b = &slots_[size_t(bucketOf(k)) * kWays];
  for (uint32_t w = 0; w < kWays; w++) {
    Slot& s = b[w];
    if (s.handle == k.handle && s.gen == k.gen && s.hook == k.hook && s.dir == k.dir && s.generation == gen) return &s;
  }
  return nullptr;
}

uint32_t FlowCache::lookup(uint32_t n, Probe* probes, Decision* dec, bool park) {
  std::lock_guard<std::mutex> g(mu_);
  const bool on = enabled_.load(std::memory_order_relaxed);
  const uint32_t gen = generation_.load(std::memory_order_relaxed);
  const uint32_t now = skip_.mark ? clockMs() : 0;
  uint32_t hits = 0;
  parkList_.clear();
  for (uint32_t i = 0; i < n; i++) {
    Probe& p = probes[i];
    if (p.kind != kTracked && p.kind != kEligible) {
      if (p.kind != kHit && p.kind != kPark) p.kind = kUntracked;
      continue;
    }
    if (p.key.handle == 0) {
      p.kind = kUntracked;
      continue;
    }
    const uint32_t w = waitIndex(p.key);
    uint32_t& wait = waiting_[w];
    // A packet at a later hook than PREROUTING left PREROUTING before any packet of its flow parked there: it parks
    // only behind the flow's packets parked at later hooks (a packet held back from skipping waits for it).
    const uint8_t mine = p.key.hook == kPreRouting ? kParkedPre : kParkedLater;
    auto parkIt = [&] {
      p.kind = kPark;
      p.native = 0;  // looked up again from the lot as kTracked: the decision is not kept there
      if (!parkMark_[w]) parkList_.push_back(w);
      parkMark_[w] |= mine;
      st_.parked++;
    };
    if (park && (p.lotAhead || (parkMark_[w] & (mine == kParkedPre ? kParkedPre | kParkedLater : kParkedLater)))) {
      parkIt();
      continue;
    }
    if (p.native) {
      if (wait == 0) {
        p.kind = kHit;
        passLocked(p, w, now, 0);
        hits++;
        continue;
      }
      // Often the packet itself, back from JavaScript's verdict at the hook before, not yet released.
      if (park) {
        parkIt();
        continue;
      }
      p.native = 0;
    }
    if (p.kind == kEligible && on) {
      Slot* s = find(p.key, gen);
      bool match = s && sameValues(s->values, p.values, statusMask_);
      // A miss behind its flow's packet in JavaScript waits too: that verdict usually stores the decision it needs.
      if (wait != 0 && park && (match || uncacheable_[w] != gen)) {
        parkIt();
        continue;
      }
      if (match && wait == 0) {
        dec[i] = Decision{s->verdict, s->markOut, s->setMark != 0, s->pathId};
        const Skip sk = p.skip && skip_.mark && skip_.allowed ? skipLocked(p, dec[i], gen, w, now) : Skip::kNo;
        if (sk == Skip::kHold) holdLocked(w);
        if (sk == Skip::kHold && park) {
          // It could skip but for its flow's packets still between hooks: it waits for them in the lot rather than
          // take the trips itself, which would keep its flow's later packets from ever skipping under load.
          parkIt();
          continue;
        }
        p.kind = kHit;
        chargeLocked(s->pathId, p.wireLen);
        if (sk == Skip::kYes) {
          for (uint32_t k = 0; k < laterCount_; k++) chargeLocked(later_[k]->pathId, p.wireLen);
          st_.tripsSkipped += laterCount_;
        }
        passLocked(p, w, now, dec[i].skipped);
        st_.hits++;
        hits++;
        continue;
      }
      st_.misses++;
    }
    passLocked(p, w, now, 0);
    wait++;
    st_.waiting++;
  }
  for (uint32_t w : parkList_) parkMark_[w] = 0;
  return hits;
}

void FlowCache::chargeLocked(uint32_t pathId, uint32_t wireLen) {
  uint64_t& pk = pathPackets_[pathId];
  if (pk == 0) touched_.push_back(pathId);  // reserved: no allocation
  pk++;
  pathBytes_[pathId] += wireLen;
}

// The flow's stored decision at `hook` (FORWARD or POSTROUTING), when it repeats for this packet: it accepts and
// leaves the mark alone; its status bits, connection mark and zone are the packet's; the mark it was stored with is
// `mark`, what the earlier hooks leave; FORWARD's input interface is the packet's, and POSTROUTING's output interface
// is FORWARD's (`outIf`, 0: any); no bridge ports. The output interface is the one the flow last had: routing only
// changes with the routes, and a route change empties the cache. Null otherwise.
FlowCache::Slot* FlowCache::repeatsLocked(const Probe& p, uint8_t hook, uint32_t mark, uint32_t outIf, uint32_t gen) {
  Key k = p.key;
  k.hook = hook;
  Slot* s = find(k, gen);
  if (!s) return nullptr;
  const Values& v = s->values;
  if (!sameStatus(v.status, p.values.status, statusMask_) || v.connmark != p.values.connmark || v.zone != p.values.zone || v.mark != mark ||
      v.physInIf || v.physOutIf)
    return nullptr;
  if (hook == kForward && v.inIf != p.values.inIf) return nullptr;
  if (hook == kPostRouting && outIf && v.outIf != outIf) return nullptr;
  if (s->verdict != kAccept || (s->setMark && s->markOut != mark)) return nullptr;
  return s;
}

bool FlowCache::queued(uint8_t hook) const { return (skip_.queuedHooks & (1u << hook)) != 0; }

// The flow's packets still on their way: counts lapse kTransitMs after their last change (a packet the kernel dropped
// between hooks leaves its count behind).
FlowCache::Transit& FlowCache::transitLocked(uint32_t w, uint32_t now) {
  Transit& t = transit_[w];
  if ((t.toForward || t.toPost) && now - t.stamp > kTransitMs) {
    t.toForward = t.toPost = 0;
    transitsCleared_.fetch_add(1, std::memory_order_acq_rel);
    st_.transitsLapsed++;
  }
  return t;
}

void FlowCache::holdLocked(uint32_t w) {
  Transit& t = transit_[w];
  if (t.held || held_.size() == kMaxHeld || queues_ > 1) return;  // several queues: no barriers
  t.held = 1;
  held_.push_back(w);
  heldSince_.store(true, std::memory_order_release);
}

uint32_t FlowCache::beginBarrier() {
  std::lock_guard<std::mutex> g(mu_);
  if (held_.empty() || queues_ > 1) return 0;
  for (uint32_t w : held_) {
    transit_[w].held = 0;
    if (barrier_.size() < kMaxHeld) barrier_.push_back(w);
  }
  held_.clear();
  heldSince_.store(false, std::memory_order_release);
  if (++epoch_ == 0) ++epoch_;  // 0 means "no barrier"
  return epoch_;
}

void FlowCache::endBarrier(uint32_t barrier) {
  std::lock_guard<std::mutex> g(mu_);
  st_.barriers++;
  if (queues_ <= 1) {
    for (uint32_t w : barrier_) {
      Transit& t = transit_[w];
      // Raised or verdicted at or after the barrier began: those packets may be behind it.
      if (!(t.toForward || t.toPost) || int32_t(t.epoch - barrier) >= 0 || waiting_[w]) continue;
      t.toForward = t.toPost = 0;
      transitsCleared_.fetch_add(1, std::memory_order_acq_rel);
      st_.transitsDropped++;
    }
  }
  barrier_.clear();
}

void FlowCache::attachQueue() {
  std::lock_guard<std::mutex> g(mu_);
  queues_++;
}

void FlowCache::detachQueue() {
  std::lock_guard<std::mutex> g(mu_);
  if (queues_) queues_--;
}

// A packet leaving a hook's decision (a hit, or a packet going to JavaScript, which then counts as waiting) toward its
// next queued hook: from PREROUTING to FORWARD (or INPUT) unless it skipped FORWARD, else to POSTROUTING unless it
// skipped that too; from FORWARD to POSTROUTING. Leaving POSTROUTING (or INPUT) it is through.
void FlowCache::passLocked(const Probe& p, uint32_t w, uint32_t now, uint8_t skipped) {
  if (!skip_.mark) return;
  Transit& t = transitLocked(w, now);
  auto add = [&](uint32_t& c) {
    c++;
    t.stamp = now;
    t.epoch = epoch_;
  };
  auto take = [&](uint32_t& c) {
    if (!c) return;
    if (--c == 0) transitsCleared_.fetch_add(1, std::memory_order_acq_rel);
    t.stamp = now;
  };
  switch (p.key.hook) {
    case kPreRouting:
      if (queued(kForward) && !(skipped & (1u << kForward))) add(t.toForward);
      else if (queued(kPostRouting) && !(skipped & (1u << kPostRouting))) add(t.toPost);
      break;
    case kLocalIn:  // took what PREROUTING added
      take(queued(kForward) ? t.toForward : t.toPost);
      break;
    case kForward:
      take(t.toForward);
      if (queued(kPostRouting)) add(t.toPost);
      break;
    case kPostRouting:
      take(t.toPost);
      break;
    default:
      break;
  }
}

// A PREROUTING hit that accepts, of a forwarded flow: its FORWARD decision, and its POSTROUTING one unless that hook
// rewrites the source (SNAT, or the reply of a DNAT) or has no decision that repeats, are made now and charged to
// their paths, and the verdict sets the skip bits (the FORWARD bit, the POSTROUTING bit) that nfqwall's hook rules
// test to let the kernel pass those hooks without a trip. Never INPUT: a packet a route or address change not yet
// seen sends to this host must meet the INPUT rules, so INPUT only clears the bits; a flow with an INPUT decision
// held (its route changed) does not skip. One evicted is not known any more: the guard is as good as the cache's
// memory. A packet that would overtake its flow's packets still before a hook it skips is held (kHold).
FlowCache::Skip FlowCache::skipLocked(const Probe& p, Decision& d, uint32_t gen, uint32_t w, uint32_t now) {
  if (d.verdict != kAccept || p.key.hook != kPreRouting) return Skip::kNo;
  const uint32_t mark = (d.setMark ? d.mark : p.values.mark) & ~skip_.mark;
  Key in = p.key;
  in.hook = kLocalIn;
  if (find(in, gen)) return Skip::kNo;
  const bool qForward = queued(kForward), qPost = queued(kPostRouting);
  Slot* forward = qForward ? repeatsLocked(p, kForward, mark, 0, gen) : nullptr;
  if (qForward && !forward) return Skip::kNo;
  Slot* post = nullptr;
  if (qPost && !(p.values.status & (p.key.dir == 0 ? kSrcNat : kDstNat)))
    post = repeatsLocked(p, kPostRouting, mark, forward ? forward->values.outIf : 0, gen);
  if (!forward && !post) return Skip::kNo;
  // Skipping a hook overtakes the flow's packets still before it.
  const Transit& t = transitLocked(w, now);
  if (t.toForward || (post && t.toPost)) return Skip::kHold;
  laterCount_ = 0;
  d.skipped = 0;
  d.mark = mark;
  if (forward) {
    later_[laterCount_++] = forward;
    d.skipped |= 1u << kForward;
    d.mark |= forwardBit(skip_.mark);
  }
  if (post) {
    later_[laterCount_++] = post;
    d.skipped |= 1u << kPostRouting;
    d.mark |= postBit(skip_.mark);
  }
  d.setMark = true;
  return Skip::kYes;
}

bool skipForward(const uint8_t* p, size_t len, bool ipv6, bool truncated, bool gso, uint16_t peerMss, uint32_t maxLen) {
  if (truncated || (gso && peerMss == 0)) return false;
  // What the MTU check weighs: the packet, or the largest segment of a GSO one (RFC 6691: a sender takes its IP and
  // TCP options out of the MSS the receiver announced; IPv4 options are refused below, and a TCP GSO packet's protocol
  // is checked where its peerMss comes from).
  const size_t size = gso ? size_t(ipv6 ? 40 : 20) + 20 + peerMss : len;
  if (!ipv6) {
    if (len < 20 || (p[0] >> 4) != 4) return false;
    const bool df = (p[6] & 0x40) != 0;
    // ip_forward(): IPv4 options (router alert), TTL, then ip_exceeds_mtu() with DF set.
    return (p[0] & 0x0f) == 5 && p[8] > 1 && (size <= maxLen || !df);
  }
  if (len < 40 || (p[0] >> 4) != 6) return false;
  // ip6_forward(): a hop-by-hop header (router alert), the hop limit, then ip6_pkt_too_big().
  return p[6] != 0 && p[7] > 1 && size <= maxLen;
}

void FlowCache::setSkip(const SkipConfig& c) {
  std::lock_guard<std::mutex> g(mu_);
  skip_ = c;
}

SkipConfig FlowCache::skipConfig() {
  std::lock_guard<std::mutex> g(mu_);
  return skip_;
}

void FlowCache::storeLocked(const Key& k, const Values& v, const Decision& d, uint32_t gen) {
  Slot* b = &slots_[size_t(bucketOf(k)) * kWays];
  Slot* victim = nullptr;
  // The same decision's slot, else an empty or stale one, else the bucket's oldest.
  for (uint32_t w = 0; w < kWays && !victim; w++)
    if (b[w].handle == k.handle && b[w].gen == k.gen && b[w].hook == k.hook && b[w].dir == k.dir) victim = &b[w];
  for (uint32_t w = 0; w < kWays && !victim; w++)
    if (b[w].handle == 0 || b[w].generation != gen) victim = &b[w];
  if (!victim) {
    victim = b;
    for (uint32_t w = 1; w < kWays; w++)
      if (uint32_t(stamp_ - b[w].stamp) > uint32_t(stamp_ - victim->stamp)) victim = &b[w];
  }
  bool live = victim->handle != 0 && victim->generation == gen;
  bool same = victim->handle == k.handle && victim->gen == k.gen && victim->hook == k.hook && victim->dir == k.dir;
  if (!live) st_.entries++;
  else if (!same) st_.evictions++;
  victim->handle = k.handle;
  victim->gen = k.gen;
  victim->hook = k.hook;
  victim->dir = k.dir;
  victim->generation = gen;
  victim->stamp = ++stamp_;
  victim->values = v;
  victim->verdict = d.verdict;
  victim->markOut = d.mark;
  victim->setMark = d.setMark ? 1 : 0;
  victim->pathId = d.pathId;
  st_.stores++;
}

uint32_t FlowCache::release(uint32_t n, const Probe* probes, const Decision* store, const uint8_t* stored,
                            uint32_t generation) {
  std::lock_guard<std::mutex> g(mu_);
  const bool canStore = store && stored && enabled_.load(std::memory_order_relaxed) &&
                        generation == generation_.load(std::memory_order_relaxed);
  const uint32_t now = skip_.mark ? clockMs() : 0;
  uint32_t count = 0;
  for (uint32_t i = 0; i < n; i++) {
    const Probe& p = probes[i];
    if (p.kind != kTracked && p.kind != kEligible) continue;
    const uint32_t w = waitIndex(p.key);
    uint32_t& wait = waiting_[w];
    if (wait) {
      wait--;
      if (st_.waiting) st_.waiting--;
    }
    // JavaScript took its time, but the packet is alive: what waits for it keeps waiting.
    Transit& t = transit_[w];
    if (t.toForward || t.toPost) {
      t.stamp = now;
      t.epoch = epoch_;
    }
    if (!canStore || p.kind != kEligible || !p.key.handle) continue;
    if (stored[i] && store[i].pathId < maxPaths_) {
      storeLocked(p.key, p.values, store[i], generation);
      count++;
    } else if (uncacheable_[w] != generation) {
      uncacheable_[w] = generation;
      st_.uncacheable++;
    }
  }
  releases_.fetch_add(1, std::memory_order_acq_rel);
  return count;
}

void FlowCache::retireHitsLocked() {
  const uint32_t gen = generation_.load(std::memory_order_relaxed);
  for (uint32_t id : touched_) {
    old_.push_back(PathHits{gen, id, pathPackets_[id], pathBytes_[id]});
    pathPackets_[id] = 0;
    pathBytes_[id] = 0;
  }
  touched_.clear();
}

void FlowCache::invalidateLocked() {
  retireHitsLocked();
  uint32_t next = generation_.load(std::memory_order_relaxed) + 1;
  if (next == 0) next = 1;  // 0 is never a generation: JavaScript may use it for "none"
  generation_.store(next, std::memory_order_release);
  st_.entries = 0;
  st_.invalidations++;
}

uint32_t FlowCache::invalidate() {
  std::lock_guard<std::mutex> g(mu_);
  invalidateLocked();
  return generation_.load(std::memory_order_relaxed);
}

uint32_t FlowCache::invalidate(uint32_t statusMask) {
  std::lock_guard<std::mutex> g(mu_);
  invalidateLocked();
  statusMask_ = statusMask;
  return generation_.load(std::memory_order_relaxed);
}

void FlowCache::setEnabled(bool on) {
  std::lock_guard<std::mutex> g(mu_);
  bool was = enabled_.load(std::memory_order_relaxed);
  if (on && !was) invalidateLocked();
  enabled_.store(on, std::memory_order_release);
}

std::vector<PathHits> FlowCache::drain() {
  std::vector<PathHits> out;
  std::lock_guard<std::mutex> g(mu_);
  out.reserve(old_.size() + touched_.size());
  out.insert(out.end(), old_.begin(), old_.end());
  old_.clear();
  const uint32_t gen = generation_.load(std::memory_order_relaxed);
  for (uint32_t id : touched_) {
    out.push_back(PathHits{gen, id, pathPackets_[id], pathBytes_[id]});
    pathPackets_[id] = 0;
    pathBytes_[id] = 0;
  }
  touched_.clear();
  return out;
}

bool FlowCache::holds(const Key& k) {
  std::lock_guard<std::mutex> g(mu_);
  return find(k, generation_.load(std::memory_order_relaxed)) != nullptr;
}

Stats FlowCache::stats() {
  std::lock_guard<std::mutex> g(mu_);
  Stats s = st_;
  s.generation = generation_.load(std::memory_order_relaxed);
  s.enabled = enabled_.load(std::memory_order_relaxed);
  return s;
}

bool FlowCache::bindTable(const void* table) {
  std::lock_guard<std::mutex> g(mu_);
  if (!table_) table_ = table;
  return table_ == table;
}

}  // namespace fc
}  // namespace nfqwall
