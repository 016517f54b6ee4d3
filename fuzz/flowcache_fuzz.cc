// libFuzzer target for the flow cache (native/flowcache.*; scripts/fuzz.sh builds and runs it). One input is a
// sequence of lookups (batches of probes with arbitrary keys), verdicts (settle, with or without a decision, of the
// current or a stale generation), invalidations, on/off switches and drains, on a small cache so that buckets
// overflow. A reference model checks what the cache may not get wrong whatever it evicted:
//  - a hit returns the decision last stored for exactly that key and key values in the current generation, but for
//    status bits outside the mask the last invalidate() set;
//  - no hit while a packet of the same connection and direction waits in JavaScript, nor earlier in the same batch;
//  - with parking, a packet behind parked packets of its flow (lotAhead, or earlier in the batch at its own or a later
//    hook than PREROUTING; any hook for one at PREROUTING) parks, and a packet parks otherwise only when its stored
//    decision applies but its flow waits in JavaScript, or it is held back from skipping, or it is eligible with no
//    decision that applies while its flow waits in JavaScript and JavaScript stored every decision it was given for
//    the flow in this generation; such a packet always parks (it never goes to JavaScript);
//  - a hit that skips (hook skipping, setSkip) is a PREROUTING hit that accepts, while skipping is allowed, for a
//    packet that may skip, with no INPUT decision for its flow; it skips FORWARD whenever that is queued, and
//    POSTROUTING only on a connection with no source rewrite there; each hook it skips has a stored decision that
//    accepts and keeps the mark; it sets each skipped hook's bit, and their paths are charged; a hit that does not
//    skip returns exactly the stored decision;
//  - the waiting count equals the packets looked up and not settled (whatever barriers clear);
//  - drain() reports exactly the hits' packets and bytes per generation and path, once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <tuple>
#include <vector>

#include "flowcache.h"

using namespace nfqwall;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// The cache's clock (in-transit counts lapse after 50 ms): moved by the input, so lapses happen.
uint32_t fakeNow = 0;
uint32_t fakeClock() { return fakeNow; }

using KeyT = std::tuple<uint32_t, uint32_t, uint8_t, uint8_t>;
using FlowT = std::tuple<uint32_t, uint32_t, uint8_t>;
using ValT = std::tuple<uint32_t, uint32_t, uint32_t, uint16_t, uint32_t, uint32_t, uint32_t, uint32_t>;

KeyT keyOf(const fc::Key& k) { return {k.handle, k.gen, k.hook, k.dir}; }
FlowT flowOf(const fc::Key& k) { return {k.handle, k.gen, k.dir}; }
ValT valOf(const fc::Values& v) {
  return {v.status, v.mark, v.connmark, v.zone, v.inIf, v.outIf, v.physInIf, v.physOutIf};
}

// Values the cache takes for the same key: equal, but for status bits outside the mask the last invalidate() set.
bool sameUnder(uint32_t statusMask, const ValT& a, const ValT& b) {
  ValT x = a, y = b;
  std::get<0>(x) &= statusMask;
  std::get<0>(y) &= statusMask;
  return x == y;
}

struct Stored {
  ValT values;
  fc::Decision d;
  uint32_t generation;
};

struct Reader {
  const uint8_t* d;
  size_t n;
  uint8_t byte() {
    if (!n) return 0;
    n--;
    return *d++;
  }
};

// Small ranges: collisions, repeats and near-misses are what matter.
fc::Probe probe(Reader& r) {
  fc::Probe p;
  uint8_t a = r.byte(), b = r.byte(), c = r.byte();
  p.key.handle = a & 7;  // 0 is "no connection"
  p.key.gen = (a >> 3) & 1;
  p.key.hook = uint8_t(((a >> 4) & 7) % 5);
  p.key.dir = a >> 7;
  static constexpr uint32_t kStatus[] = {0, 2, 1u << 4, 1u << 5};  // none, SEEN_REPLY, SRC_NAT, DST_NAT
  p.values.status = kStatus[b & 3];
  p.values.mark = (b >> 2) & 1;
  p.values.connmark = (b >> 3) & 1;
  p.values.zone = (b >> 4) & 1;
  p.values.inIf = (b >> 5) & 1;
  p.values.outIf = (b >> 6) & 1;
  p.values.physInIf = b >> 7;
  p.values.physOutIf = c & 1;
  p.wireLen = c;
  uint8_t kind = (c >> 1) & 3;
  p.kind = !p.key.handle ? fc::kUntracked : kind == 0 ? fc::kTracked : fc::kEligible;
  p.base = p.kind;
  p.lotAhead = (c >> 3) & 1;
  p.skip = (c >> 4) & 1;
  if ((c >> 5) & 1) {
    // A packet of the flow as it looks at each hook of a forwarded path: what a skip needs to find.
    p.values = fc::Values{};
    p.values.status = kStatus[(p.key.handle + p.key.dir) & 3];
    p.values.inIf = p.key.hook == 4 ? 0 : 1;
    p.values.outIf = p.key.hook == 0 ? 0 : 2;
  }
  if ((c >> 6) & 1) p.values.status |= 4;  // ASSURED, which a status mask may leave out of the key
  return p;
}

void run(const uint8_t* data, size_t size) {
  Reader r{data, size};
  fc::Options o;
  // Small, so that buckets overflow; or room for a flow's decisions at every hook, so that packets skip.
  o.capacity = (r.byte() & 1) ? 64 : 8;
  o.maxPaths = 6;
  o.clock = fakeClock;
  fakeNow = 0;
  fc::FlowCache cache(o);
  std::map<KeyT, Stored> stored;
  std::map<FlowT, uint32_t> waiting;
  std::map<uint32_t, uint32_t> uncacheable;  // per cache.flowIndex(): the generation of its last verdict not stored
  std::vector<fc::Probe> pending;  // handed to JavaScript, not settled
  std::map<std::pair<uint32_t, uint32_t>, std::pair<uint64_t, uint64_t>> hits;
  uint64_t waitingTotal = 0;
  uint32_t statusMask = ~0u;  // the cache's, as the last invalidate() set it
  bool enabled = true;
  fc::SkipConfig skip;
  uint32_t barrier = 0;

  while (r.n) {
    uint8_t op = r.byte();
    switch (op % 8) {
      case 0:
      case 1: {  // a batch of up to 8 packets
        uint32_t n = 1 + (op >> 3) % 8;
        std::vector<fc::Probe> probes;
        for (uint32_t i = 0; i < n; i++) probes.push_back(probe(r));
        std::vector<fc::Probe> before = probes;
        std::vector<fc::Decision> dec(n);
        const bool park = (op >> 6) & 1;
        uint32_t got = cache.lookup(n, probes.data(), dec.data(), park);
        uint32_t count = 0;
        const uint32_t gen = cache.generation();
        std::map<FlowT, bool> parkedPre, parkedLater;
        for (uint32_t i = 0; i < n; i++) {
          const fc::Probe& p = probes[i];
          if (before[i].kind == fc::kUntracked) {
            check(p.kind == fc::kUntracked);
            continue;
          }
          const bool pre = p.key.hook == 0;
          const bool mustPark =
              park && (p.lotAhead || parkedLater[flowOf(p.key)] || (pre && parkedPre[flowOf(p.key)]));
          if (mustPark) check(p.kind == fc::kPark);
          auto it = stored.find(keyOf(p.key));
          const bool applies =
              it != stored.end() && it->second.generation == gen && sameUnder(statusMask, it->second.values, valOf(p.values));
          // No decision for it (or one the cache evicted) but JavaScript is expected to store one.
          const bool expected = uncacheable[cache.flowIndex(p.key)] != gen;
          if (p.kind == fc::kPark) {
            if (!mustPark) {
              check(park && before[i].kind == fc::kEligible && enabled);
              // Waiting behind its flow in JavaScript, or held back from skipping.
              if (applies) check(waiting[flowOf(p.key)] > 0 || (pre && p.skip && skip.mark && skip.allowed));
              else check(waiting[flowOf(p.key)] > 0 && expected);
            }
            (pre ? parkedPre : parkedLater)[flowOf(p.key)] = true;
            continue;
          }
          if (p.kind == fc::kHit) {
            count++;
            check(before[i].kind == fc::kEligible && enabled);
            check(waiting[flowOf(p.key)] == 0);
            auto it = stored.find(keyOf(p.key));
            check(it != stored.end());
            check(it->second.generation == gen && sameUnder(statusMask, it->second.values, valOf(p.values)));
            const fc::Decision& want = it->second.d;
            check(dec[i].verdict == want.verdict && dec[i].pathId == want.pathId);
            auto& h = hits[{gen, want.pathId}];
            h.first++;
            h.second += p.wireLen;
            if (!dec[i].skipped) {
              check(dec[i].mark == want.mark && dec[i].setMark == want.setMark);
              continue;
            }
            check(p.key.hook == 0 && p.skip && skip.mark && skip.allowed && want.verdict == 1);
            const uint32_t mark = (want.setMark ? want.mark : p.values.mark) & ~skip.mark;
            uint32_t bits = 0;
            for (uint8_t hook : {uint8_t(2), uint8_t(4)}) {
              const bool queued = skip.queuedHooks & (1u << hook), skipped = dec[i].skipped & (1u << hook);
              check(queued || !skipped);
              // FORWARD, when queued, is always skipped when anything is.
              if (hook == 2) check(skipped == queued);
              if (!skipped) continue;
              if (hook == 4) check((p.values.status & (p.key.dir == 0 ? 1u << 4 : 1u << 5)) == 0);
              fc::Key k = p.key;
              k.hook = hook;
              auto s = stored.find(keyOf(k));
              check(s != stored.end() && s->second.generation == gen && s->second.d.verdict == 1);
              check(!s->second.d.setMark || s->second.d.mark == mark);
              check(std::get<1>(s->second.values) == mark);
              auto& lh = hits[{gen, s->second.d.pathId}];
              lh.first++;
              lh.second += p.wireLen;
              bits |= hook == 2 ? fc::forwardBit(skip.mark) : fc::postBit(skip.mark);
            }
            check(dec[i].setMark && dec[i].mark == (mark | bits));
            // No skip while the cache holds an INPUT decision of the flow (one a bucket's overflow took is forgotten).
            fc::Key in = p.key;
            in.hook = 1;
            auto s = stored.find(keyOf(in));
            check(s == stored.end() || s->second.generation != gen || !cache.holds(in));
          } else {
            check(p.kind == before[i].kind);
            check(!(park && p.kind == fc::kEligible && enabled && waiting[flowOf(p.key)] > 0 && !applies && expected));
            waiting[flowOf(p.key)]++;
            waitingTotal++;
            pending.push_back(p);
          }
        }
        check(got == count);
        break;
      }
      case 2: {  // JavaScript verdicts one waiting packet
        if (pending.empty()) break;
        uint8_t a = r.byte(), b = r.byte();
        size_t idx = a % pending.size();
        fc::Probe p = pending[idx];
        pending.erase(pending.begin() + long(idx));
        fc::Decision d{uint32_t(b & 1), uint32_t(b >> 4), (b & 2) != 0, uint32_t((b >> 2) & 7)};
        uint8_t want = (a & 0x80) ? 0 : 1;
        uint32_t gen = cache.generation() - ((a & 0x40) ? 1 : 0);
        uint32_t n = cache.release(1, &p, &d, &want, gen);
        uint32_t& w = waiting[flowOf(p.key)];
        check(w > 0);
        w--;
        waitingTotal--;
        const bool current = enabled && gen == cache.generation() && p.kind == fc::kEligible;
        bool expect = want && current && d.pathId < o.maxPaths;
        check(n == (expect ? 1u : 0u));
        if (expect) stored[keyOf(p.key)] = Stored{valOf(p.values), d, gen};
        else if (current) uncacheable[cache.flowIndex(p.key)] = gen;
        break;
      }
      case 3: {  // invalidate, keeping the status mask or setting one with or without ASSURED
        uint32_t before = cache.generation();
        if ((op >> 3) & 1) {
          statusMask = (op >> 4) & 1 ? ~4u : ~0u;
          check(cache.invalidate(statusMask) == before + 1);
        } else {
          check(cache.invalidate() == before + 1);
        }
        break;
      }
      case 4: {
        bool on = (op >> 3) & 1;
        uint32_t before = cache.generation();
        cache.setEnabled(on);
        check(cache.generation() == ((on && !enabled) ? before + 1 : before));
        enabled = on;
        break;
      }
      case 6: {  // hook skipping on or off, another bit, other queued hooks
        uint8_t a = r.byte();
        const uint8_t b2 = r.byte();
        const uint32_t lo = 1u << ((a >> 1) & 31), hi = 1u << (b2 & 31);
        skip.mark = (a & 1) && lo != hi ? lo | hi : 0;  // two bits, or off
        skip.allowed = (a >> 6) & 1;
        skip.maxLen = 1500;
        skip.queuedHooks = r.byte() & 31;
        cache.setSkip(skip);
        break;
      }
      case 7:
        if ((op >> 3) & 1) {
          // A barrier's acknowledgement comes in and the next one begins (Queue::sendBarrier/barrierAcked): it clears
          // counts between hooks, which only ever lets a packet hit, never changes what the hit returns.
          if (barrier) cache.endBarrier(barrier);
          barrier = cache.beginBarrier();
        } else {  // time passes
          fakeNow += r.byte();
        }
        break;
      case 5: {
        std::vector<fc::PathHits> d = cache.drain();
        std::map<std::pair<uint32_t, uint32_t>, std::pair<uint64_t, uint64_t>> got;
        for (const auto& h : d) {
          auto& g = got[{h.generation, h.pathId}];
          g.first += h.packets;
          g.second += h.bytes;
          check(h.packets > 0);
        }
        check(got == hits);
        hits.clear();
        break;
      }
    }
    fc::Stats s = cache.stats();
    check(s.waiting == waitingTotal);
    check(s.entries <= o.capacity);
    check(s.enabled == enabled);
  }
  // Whatever is left to drain is exactly what was hit since the last drain.
  std::map<std::pair<uint32_t, uint32_t>, std::pair<uint64_t, uint64_t>> got;
  for (const auto& h : cache.drain()) {
    auto& g = got[{h.generation, h.pathId}];
    g.first += h.packets;
    g.second += h.bytes;
  }
  check(got == hits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  run(data, size);
  return 0;
}
