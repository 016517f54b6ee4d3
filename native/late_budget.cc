#include "late_budget.h"

#include <poll.h>

#include <algorithm>

#include "queue.h"

namespace nfqwall {

void LatePair::foundEmpty(uint64_t answeredBefore) {
  uint64_t seen = emptyAt.load();
  while (seen < answeredBefore && !emptyAt.compare_exchange_weak(seen, answeredBefore)) {
  }
}

void LateBudget::join(LatePair* p) {
  std::lock_guard<std::mutex> g(m_);
  p->emptyAt.store(answeredLocked());
  pairs_.push_back(p);
}

void LateBudget::leave(LatePair* p) {
  std::lock_guard<std::mutex> g(m_);
  pairs_.erase(std::remove(pairs_.begin(), pairs_.end(), p), pairs_.end());
}

uint64_t LateBudget::answered() {
  std::lock_guard<std::mutex> g(m_);
  return answeredLocked();
}

uint64_t LateBudget::answeredLocked() const {
  uint64_t n = 0;
  for (const LatePair* p : pairs_)
    n += p->main->accepted.load() + p->main->dropped.load() + p->late->accepted.load() + p->late->dropped.load();
  return n;
}

uint64_t LateBudget::boundLocked() const {
  // emptyAt first, then verdicts, then packets received: a packet unread in a late queue came through a verdict
  // counted after its queue's emptyAt, so it is in the answered sum below or, not counted yet, still held.
  uint64_t emptyAt = 0;
  for (const LatePair* p : pairs_) emptyAt += p->emptyAt.load();
  const uint64_t answered = answeredLocked();
  uint64_t received = 0;
  for (const LatePair* p : pairs_) received += p->main->received.load() + p->late->received.load();
  const uint64_t held = received > answered ? received - answered : 0;
  const uint64_t sinceEmpty = answered * pairs_.size();
  const uint64_t unread = sinceEmpty > emptyAt ? sinceEmpty - emptyAt : 0;
  return held + unread + reserved_ + kSlack;
}

void LateBudget::refreshLocked() {
  const uint64_t answered = answeredLocked();
  for (LatePair* p : pairs_) {
    pollfd f{p->lateFd, POLLIN, 0};
    if (poll(&f, 1, 0) == 0) p->foundEmpty(answered);  // error or readable: leave it as it was
  }
}

bool LateBudget::reserve(uint32_t n) {
  std::lock_guard<std::mutex> g(m_);
  uint64_t limit = UINT64_MAX;
  for (const LatePair* p : pairs_) limit = std::min<uint64_t>(limit, p->lateMaxLen);
  if (boundLocked() + n > limit) {
    refreshLocked();
    if (boundLocked() + n > limit) return false;
  }
  reserved_ += n;
  return true;
}

void LateBudget::release(uint32_t n) {
  std::lock_guard<std::mutex> g(m_);
  reserved_ -= std::min<uint64_t>(reserved_, n);
}

}  // namespace nfqwall
