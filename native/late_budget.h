// What the late queues of one daemon may be holding (docs/flow-cache.md, Late queue): packets through PREROUTING whose
// later trips are not answered yet. A late queue that fills drops packets already judged, so a receive thread reads its
// own queue, where packets enter, only while every late queue has room for what that read can send on. The kernel's
// balance may send a packet on to any pair's late queue, so the pairs of a daemon share one budget.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace nfqwall {

struct Counters;

// One queue and the late queue its thread serves, as the budget sees them. Owned by that queue.
struct LatePair {
  const Counters* main = nullptr;
  const Counters* late = nullptr;
  int lateFd = -1;
  uint32_t lateMaxLen = 0;
  // LateBudget::answered() as read before the late queue was last found empty: whatever it holds unread since came
  // from verdicts counted after that.
  std::atomic<uint64_t> emptyAt{0};

  void foundEmpty(uint64_t answeredBefore);
};

class LateBudget {
 public:
  void join(LatePair* p);
  void leave(LatePair* p);
  // Verdicts sent so far by every member's queue and late queue.
  uint64_t answered();
  // Room for `n` more packets read from a member's queue: reserved until release(n), after the read counted them.
  bool reserve(uint32_t n);
  void release(uint32_t n);

  // The counters are read one after another while other threads move packets: this covers a few packets moving
  // between two reads.
  static constexpr uint64_t kSlack = 512;

 private:
  uint64_t answeredLocked() const;
  // Packets the late queues may hold, at most, plus what is reserved.
  uint64_t boundLocked() const;
  // Looks whether each late queue is empty now, without reading it: a member thread asleep in poll() leaves its
  // emptyAt behind while the others' verdicts count on.
  void refreshLocked();

  std::mutex m_;
  std::vector<LatePair*> pairs_;
  uint64_t reserved_ = 0;
};

}  // namespace nfqwall
