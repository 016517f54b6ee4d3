#include "flowcache.h"

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

bool sameValues(const Values& a, const Values& b) {
  return a.status == b.status && a.mark == b.mark && a.connmark == b.connmark && a.zone == b.zone &&
         a.inIf == b.inIf && a.outIf == b.outIf && a.physInIf == b.physInIf && a.physOutIf == b.physOutIf;
}

}  // namespace

FlowCache::FlowCache(const Options& o) {
  uint32_t cap = pow2AtLeast(o.capacity < kWays ? kWays : o.capacity);
  slots_.resize(cap);
  bucketMask_ = cap / kWays - 1;
  // Twice the decisions, at least 4096: packets waiting in JavaScript are few (pending batches times their size), so
  // collisions, which only cost a miss, stay rare.
  uint32_t w = pow2AtLeast(uint64_t(cap) * 2 < 4096 ? 4096 : uint64_t(cap) * 2);
  waiting_.assign(w, 0);
  parkMark_.assign(w, 0);
  parkList_.reserve(4096);
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
    auto parkIt = [&] {
      p.kind = kPark;
      if (!parkMark_[w]) {
        parkMark_[w] = 1;
        parkList_.push_back(w);
      }
      st_.parked++;
    };
    if (park && (p.lotAhead || parkMark_[w])) {
      parkIt();
      continue;
    }
    if (p.kind == kEligible && on) {
      Slot* s = find(p.key, gen);
      bool match = s && sameValues(s->values, p.values);
      if (match && wait != 0 && park) {
        parkIt();
        continue;
      }
      if (match && wait == 0) {
        dec[i] = Decision{s->verdict, s->markOut, s->setMark != 0, s->pathId};
        p.kind = kHit;
        uint64_t& pk = pathPackets_[s->pathId];
        if (pk == 0) touched_.push_back(s->pathId);  // reserved: no allocation
        pk++;
        pathBytes_[s->pathId] += p.wireLen;
        st_.hits++;
        hits++;
        continue;
      }
      st_.misses++;
    }
    wait++;
    st_.waiting++;
  }
  for (uint32_t w : parkList_) parkMark_[w] = 0;
  return hits;
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
  uint32_t count = 0;
  for (uint32_t i = 0; i < n; i++) {
    const Probe& p = probes[i];
    if (p.kind != kTracked && p.kind != kEligible) continue;
    uint32_t& wait = waiting_[waitIndex(p.key)];
    if (wait) {
      wait--;
      if (st_.waiting) st_.waiting--;
    }
    if (canStore && stored[i] && p.kind == kEligible && p.key.handle && store[i].pathId < maxPaths_) {
      storeLocked(p.key, p.values, store[i], generation);
      count++;
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
