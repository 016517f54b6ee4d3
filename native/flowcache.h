// The flow cache (docs/flow-cache.md): per connection, hook and direction, the decision JavaScript made for a settled
// packet, reused by the receive threads for the connection's later packets with the same key values, plus what keeps
// that correct: a generation that makes every decision stale at once, a count of packets per connection and direction
// still waiting in JavaScript (a cached packet must not overtake them), and per-path hit counters that JavaScript
// drains into its rule counters. No N-API and no Queue here: queue.cc and flowcache_napi.cc call it; the fuzz target
// too. Nothing allocates per packet: the tables are sized at construction.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace nfqwall {
namespace fc {

// Names a decision: the connection (ConnTable handle and generation), the hook and the direction.
struct Key {
  uint32_t handle = 0;  // entry index + 1; 0 never stores nor hits
  uint32_t gen = 0;
  uint8_t hook = 0;
  uint8_t dir = 0;
};

// What the decision may depend on besides the connection, hook and direction: a packet with other values misses.
struct Values {
  uint32_t status = 0;    // IPS_* bits as classified
  uint32_t mark = 0;      // the packet mark on entry to the hook
  uint32_t connmark = 0;
  uint16_t zone = 0;
  uint32_t inIf = 0, outIf = 0, physInIf = 0, physOutIf = 0;
};

// What JavaScript decided, and the path (the counters it incremented) to charge a hit to.
struct Decision {
  uint32_t verdict = 0;
  uint32_t mark = 0;
  bool setMark = false;
  uint32_t pathId = 0;
  // lookup(): the later hooks (bit 1 << NF_INET_*: FORWARD, POSTROUTING) the hit also decided (docs/flow-cache.md,
  // Trips); `mark` carries their skip bits.
  uint8_t skipped = 0;
};

// One packet as the receive thread sees it after classification.
struct Probe {
  Key key;
  Values values;
  uint32_t wireLen = 0;
  // kUntracked: no entry (never waits, never hits). kTracked: has an entry, goes to JavaScript (counted as waiting).
  // kEligible: ESTABLISHED (or NEW on a confirmed entry) with nothing unusual: looked up, and counted as waiting when
  // it misses. lookup() turns a hit into kHit and a parked packet into kPark, which release() skips: only what was
  // counted is uncounted.
  uint8_t kind = 0;
  uint8_t base = 0;      // the kind before lookup(), for looking a parked packet up again
  // The caller holds earlier packets of this flow parked, that this one must park behind: at any hook for a packet
  // at PREROUTING, at hooks after PREROUTING for the others (see lookup()).
  uint8_t lotAhead = 0;
  // At PREROUTING: nothing between there and FORWARD can drop the packet (skipForward()). 0: a hit decides this hook
  // only.
  uint8_t skip = 0;
  // The rule matcher decided this packet and dec[i] holds the decision (native/matcher.h): lookup() makes it a hit
  // when it overtakes nothing of its flow, else parks it (the caller runs the matcher again when it looks the packet
  // up from the lot) or sends it to JavaScript as kTracked, clearing this.
  uint8_t native = 0;
};
constexpr uint8_t kUntracked = 0, kTracked = 1, kEligible = 2, kHit = 3, kPark = 4;

struct Options {
  uint32_t capacity = 65536;
  uint32_t maxPaths = 65536;
  // Milliseconds on a monotonic clock, for the in-transit counts; null: steady_clock. The fuzz target sets its own.
  uint32_t (*clock)() = nullptr;
};

// Hook skipping (docs/flow-cache.md, Trips). mark: the two reserved packet mark bits the kernel's hook rules test to
// let a packet pass FORWARD (the lower bit) and POSTROUTING (the higher) without a trip; they are cleared from every
// verdict's mark but a skipping one, even while `allowed` is false (0: none installed). allowed: the host lets packets skip now (no routing rule reads the
// mark). maxLen: the largest packet no link or route MTU stops before FORWARD. queuedHooks: bit 1 << NF_INET_* for
// every hook the daemon queues.
struct SkipConfig {
  uint32_t mark = 0;
  bool allowed = false;
  uint32_t maxLen = 0;
  uint32_t queuedHooks = 0;
};
constexpr uint32_t forwardBit(uint32_t mark) { return mark & (0u - mark); }
constexpr uint32_t postBit(uint32_t mark) { return mark & ~forwardBit(mark); }

// For a packet at PREROUTING: whether the kernel drops nothing between there and FORWARD. Not when the TTL/hop limit
// runs out, the packet exceeds the MTU and may not be fragmented, IPv4 options or an IPv6 hop-by-hop header want the
// router's attention, or the copy is truncated: those keep their trips. A GSO packet is judged by its segments, as
// ip_exceeds_mtu() and ip6_pkt_too_big() judge it; the queue does not give their size, so only a TCP one whose
// receiver announced an MSS (`peerMss`, 0: none) qualifies, its segments at most the fixed IP and TCP headers plus that.
bool skipForward(const uint8_t* p, size_t len, bool ipv6, bool truncated, bool gso, uint16_t peerMss, uint32_t maxLen);

struct Stats {
  uint64_t hits = 0, misses = 0, stores = 0, evictions = 0, invalidations = 0;
  uint64_t uncacheable = 0;  // flows marked uncacheable_ for a generation by release()
  uint64_t tripsSkipped = 0;  // later hooks decided at a PREROUTING hit: queue trips the packet did not make
  uint32_t generation = 0;
  uint64_t entries = 0;
  uint64_t waiting = 0;  // packets handed to JavaScript and not verdicted yet (all queues)
  uint64_t parked = 0;   // lookups that parked a packet behind its flow's packets in JavaScript (kPark)
  uint64_t barriers = 0;         // endBarrier() calls: barriers the kernel acknowledged
  uint64_t transitsDropped = 0;  // flows whose counts between hooks a barrier showed were left by dropped packets
  uint64_t transitsLapsed = 0;   // flows whose counts lapsed after kTransitMs instead
  bool enabled = true;
};

// [generation, pathId, packets, bytes] per path with hits since the last drain.
struct PathHits {
  uint32_t generation = 0, pathId = 0;
  uint64_t packets = 0, bytes = 0;
};

class FlowCache {
 public:
  explicit FlowCache(const Options& o);
  FlowCache(const FlowCache&) = delete;
  FlowCache& operator=(const FlowCache&) = delete;

  // The receive thread, for one batch under one lock, in packet order. An eligible packet whose stored decision
  // matches (current generation, same key values) becomes kHit with dec[i] filled and its wire length charged to the
  // decision's path, when no packet of its connection and direction waits in JavaScript. When one does, it becomes
  // kPark if `park` (the caller keeps it and looks it up again later), else it goes to JavaScript. So does an eligible
  // packet with no decision that applies while its flow waits in JavaScript: the verdict it waits for usually stores
  // one (a new flow's first packets under a flood), unless JavaScript could not store one for an eligible packet of
  // the flow before in this generation (release()): then it goes to JavaScript, as waiting would take one verdict per
  // packet. A packet with lotAhead, or behind a packet of its flow parked earlier in this call, becomes kPark. Every
  // other tracked packet is counted as waiting (it goes to JavaScript) until release(): so a packet that goes to
  // JavaScript also blocks the later packets of its flow in the same call. A packet the matcher decided
  // (Probe::native) is a hit, parked or sent to JavaScript as an eligible packet with a stored decision would be, with
  // the decision the caller put in dec[i] and nothing charged (the matcher counts its own rules).
  // Returns the number of hits.
  uint32_t lookup(uint32_t n, Probe* probes, Decision* dec, bool park = false);

  // After the verdicts of packets that lookup() sent to JavaScript went out, under one lock: each tracked probe stops
  // waiting, and where store[i] (when given) has stored[i] set, its decision is stored if `generation` is current and
  // the cache enabled. An eligible probe whose decision is not stored although it could have been (stored[i] unset,
  // or a path id from maxPaths on, with store given, the generation current and the cache enabled) marks its flow
  // uncacheable for the generation. Returns the number stored.
  uint32_t release(uint32_t n, const Probe* probes, const Decision* store, const uint8_t* stored, uint32_t generation);

  uint32_t invalidate();
  // The same, and from then on a stored decision applies to packets whose status differs from the one it was stored
  // with only in bits outside `statusMask`: the bits no rule of the ruleset put in force with it can read (ASSURED,
  // unless a rule has -m conntrack --ctstatus). A UDP flow turns ASSURED about two seconds in; with the bit in its
  // key every packet of the flow missed until JavaScript had stored a decision for the new status.
  uint32_t invalidate(uint32_t statusMask);
  uint32_t generation() const { return generation_.load(std::memory_order_acquire); }
  void setEnabled(bool on);
  bool enabled() const { return enabled_.load(std::memory_order_acquire); }
  void setSkip(const SkipConfig& c);
  SkipConfig skipConfig();
  // Hits since the last drain (older generations' first), and resets them.
  std::vector<PathHits> drain();
  Stats stats();
  // Whether the decision stored for `k` in the current generation is still held (not evicted): for tests and the fuzz
  // target's model, which cannot tell which slots a bucket's overflow took.
  bool holds(const Key& k);
  uint32_t maxPaths() const { return maxPaths_; }
  // Where the waiting count of a packet's flow (connection and direction) lives: callers that park packets count
  // them per flow with the same index, in an array of flowSlots() entries.
  uint32_t flowIndex(const Key& k) const { return waitIndex(k); }
  uint32_t flowSlots() const { return waitMask_ + 1; }
  // Bumped by every release(): a parked packet can only move on after one.
  uint64_t releases() const { return releases_.load(std::memory_order_acquire); }
  // Bumped whenever a flow's count of packets between hooks comes down to zero (one reached its next hook), lapses or
  // is cleared by a barrier: a packet held back from skipping can only move on after one. Seen by lookups, not
  // releases. A count lapses when a lookup looks at it, so the queue looks at its lot every kHoldRecheckMs too.
  uint64_t transitsCleared() const { return transitsCleared_.load(std::memory_order_acquire); }
  static constexpr uint32_t kHoldRecheckMs = 10;

  // The queues that use this cache must share one connection table: handles name entries of that table. The first
  // caller binds it; a different table returns false.
  bool bindTable(const void* table);

  // Barriers (docs/flow-cache.md, Trips): tell a count between hooks left by a packet the kernel dropped (at its full
  // queue, TTL, no route) from one still on its way, without waiting kTransitMs. The receive thread, having sent its
  // hits, calls beginBarrier() and sends a netlink message whose acknowledgement the kernel queues behind every packet
  // the verdicts sent before it put back in the queue. Reading that acknowledgement after the packets before it were
  // looked up, it calls endBarrier(): a flow held back from skipping (kHold) whose count was last raised, or its
  // packet in JavaScript verdicted, before beginBarrier(), with nothing of it waiting in JavaScript, was passed by
  // every packet it counts that still exists: its count is cleared. Not with several queues on the cache (an
  // acknowledgement orders one socket's messages only). beginBarrier() returns 0 when no flow is held back (or the
  // cache has several queues), else the barrier's number.
  uint32_t beginBarrier();
  void endBarrier(uint32_t barrier);
  // Whether a flow was held back since the last beginBarrier(): read without the lock, so the receive thread takes it
  // only when there is a barrier to begin.
  bool barrierWanted() const { return heldSince_.load(std::memory_order_acquire); }
  // The queues that receive with this cache (Queue's constructor and close()).
  void attachQueue();
  void detachQueue();

 private:
  struct Slot {
    uint32_t handle = 0;  // 0: empty
    uint32_t gen = 0;
    uint8_t hook = 0, dir = 0, setMark = 0, pad = 0;
    uint32_t generation = 0;
    uint32_t stamp = 0;
    Values values;
    uint32_t verdict = 0, markOut = 0, pathId = 0;
  };
  static constexpr uint32_t kWays = 4;

  uint32_t bucketOf(const Key& k) const;
  uint32_t waitIndex(const Key& k) const;
  Slot* find(const Key& k, uint32_t gen);
  void storeLocked(const Key& k, const Values& v, const Decision& d, uint32_t gen);
  void chargeLocked(uint32_t pathId, uint32_t wireLen);
  Slot* repeatsLocked(const Probe& p, uint8_t hook, uint32_t mark, uint32_t outIf, uint32_t gen);
  bool queued(uint8_t hook) const;
  // kYes: `d` now skips, and later_[0..laterCount_) are the decisions to charge. kHold: it would, but it would
  // overtake packets of its flow still before a hook it skips.
  enum class Skip { kNo, kYes, kHold };
  Skip skipLocked(const Probe& p, Decision& d, uint32_t gen, uint32_t w, uint32_t now);
  void passLocked(const Probe& p, uint32_t w, uint32_t now, uint8_t skipped);
  void retireHitsLocked();
  void invalidateLocked();

  std::mutex mu_;
  std::vector<Slot> slots_;
  uint32_t bucketMask_ = 0;
  std::vector<uint32_t> waiting_;  // hashed by connection and direction: a collision only costs a miss
  // Hashed as waiting_: the generation in which JavaScript last could not store a decision for an eligible packet of
  // the flow (its path is not flow-stable). Such a flow's misses go to JavaScript instead of waiting for a store. A
  // collision only costs that wait.
  std::vector<uint32_t> uncacheable_;
  // lookup() scratch: flows that parked a packet in this call, at PREROUTING (kParkedPre) or a later hook.
  std::vector<uint8_t> parkMark_;
  static constexpr uint8_t kParkedPre = 1, kParkedLater = 2;
  std::vector<uint32_t> parkList_;
  std::atomic<uint64_t> releases_{0};
  uint32_t waitMask_ = 0;
  uint32_t maxPaths_ = 0;
  std::vector<uint64_t> pathPackets_, pathBytes_;
  std::vector<uint32_t> touched_;  // path ids with hits in the current generation
  std::vector<PathHits> old_;      // hits of generations invalidated before a drain
  std::atomic<uint32_t> generation_{1};
  uint32_t statusMask_ = ~0u;  // under mu_; set with the generation it holds for
  std::atomic<bool> enabled_{true};
  uint32_t stamp_ = 0;
  SkipConfig skip_;
  uint32_t (*clock_)() = nullptr;
  uint32_t clockMs() const;
  // Per flow (hashed as waiting_): its packets on their way to FORWARD (or INPUT), and to POSTROUTING, not yet past it.
  // A packet that skipped a hook would overtake those before it, so skipping waits for them; `stamp` (ms), the last
  // change, lets a count left by a packet the kernel dropped on the way lapse after kTransitMs.
  // `epoch`: epoch_ when a packet last raised a count or was verdicted by JavaScript (endBarrier()); `held`: in held_.
  struct Transit {
    uint32_t toForward = 0, toPost = 0, stamp = 0, epoch = 0;
    uint8_t held = 0;
  };
  void holdLocked(uint32_t w);
  Transit& transitLocked(uint32_t w, uint32_t now);
  std::vector<Transit> transit_;
  Slot* later_[2] = {};
  uint32_t laterCount_ = 0;
  std::atomic<uint64_t> transitsCleared_{0};
  // Barriers: the current epoch (the last barrier begun), the flows held back since the last beginBarrier(), and
  // those the barriers in flight may clear. Reserved: a flow beyond kMaxHeld waits for its count to lapse.
  static constexpr size_t kMaxHeld = 4096;
  uint32_t epoch_ = 0;
  std::vector<uint32_t> held_, barrier_;
  std::atomic<bool> heldSince_{false};  // !held_.empty(), for barrierWanted()
  uint32_t queues_ = 0;
  const void* table_ = nullptr;
  Stats st_;
};

}  // namespace fc
}  // namespace nfqwall
