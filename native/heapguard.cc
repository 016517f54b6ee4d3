#include "heapguard.h"

#include <v8.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace nfqwall {
namespace {

struct Guard {
  v8::Isolate* isolate = nullptr;
  size_t budget = 0;
  // Given beyond the budget once, so the code that passed it runs on to a point where it can let go of what it holds.
  size_t reserve = 0;
  bool inReserve = false;
  std::atomic<uint32_t> overruns{0};
  std::atomic<uint32_t> raises{0};
};
Guard guard;

// V8 calls this when a full collection leaves the heap near `current` (the old generation's limit). It must not
// allocate on the heap. Returning `current` unchanged lets V8 end the process.
size_t onNearHeapLimit(void*, size_t current, size_t) {
  if (current < guard.budget) {
    guard.raises.fetch_add(1, std::memory_order_relaxed);
    return guard.budget;
  }
  guard.overruns.fetch_add(1, std::memory_order_relaxed);
  if (guard.inReserve) return current;
  guard.inReserve = true;
  return current + guard.reserve;
}

// Where the limit starts under a budget above V8's own limit. Low, so that a ruleset that needs more passes it while it
// loads, at a cheap collection, and the callback raises the limit to the budget then (10,000 services pass it early;
// with 256 MiB they stayed under it, and V8 collected again and again near it: warm reloads took 2.5 s, not 0.3-0.5).
// Not the heap's own size at start, as it was: a small ruleset's heap never passed that, and V8, held near its limit,
// collected in full after every megabyte allocated (12-18 times a second under 400 status requests a second; none
// from 32 MiB up). A ruleset whose heap settles just under it pays more collections until its first reload.
constexpr size_t kRaiseFrom = size_t{64} << 20;

// The limit becomes max(limit, live size + a quarter) capped by V8's present maximum: it can lower it, not raise it.
void lowerLimitTo(size_t limit) {
  guard.isolate->RemoveNearHeapLimitCallback(onNearHeapLimit, limit);
  guard.isolate->AddNearHeapLimitCallback(onNearHeapLimit, nullptr);
}

Napi::Object state(Napi::Env env) {
  v8::HeapStatistics hs;
  guard.isolate->GetHeapStatistics(&hs);
  Napi::Object o = Napi::Object::New(env);
  o.Set("budget", static_cast<double>(guard.budget));
  o.Set("limit", static_cast<double>(hs.heap_size_limit()));
  o.Set("used", static_cast<double>(hs.used_heap_size()));
  o.Set("raises", guard.raises.load(std::memory_order_relaxed));
  o.Set("overruns", guard.overruns.load(std::memory_order_relaxed));
  o.Set("inReserve", guard.inReserve);
  return o;
}

Napi::Value HeapBudget(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < (64 << 20))
    throw Napi::TypeError::New(env, "heapBudget(bytes): bytes must be a number of at least 64 MiB");
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (guard.isolate != nullptr && guard.isolate != isolate)
    throw Napi::Error::New(env, "heapBudget: the heap guard belongs to another thread's isolate");
  size_t budget = static_cast<size_t>(info[0].As<Napi::Number>().DoubleValue());
  size_t reserve = std::min<size_t>(std::max<size_t>(budget / 16, size_t{128} << 20), size_t{1} << 30);
  v8::HeapStatistics hs;
  isolate->GetHeapStatistics(&hs);
  if (guard.isolate == nullptr) {
    guard.isolate = isolate;
    isolate->AddNearHeapLimitCallback(onNearHeapLimit, nullptr);
  }
  guard.budget = budget;
  guard.reserve = reserve;
  // heap_size_limit counts the young generation too; the callback's figure is the old generation's. A budget under
  // V8's own limit only needs the limit lowered: below it, the callback never runs. Above it, the limit is lowered to
  // kRaiseFrom, so the callback raises it to the budget at the first full collection past that: V8 plans its
  // collections by the limit, and one that reaches its own limit first collects again and again near it (seconds
  // of pauses at 4 GB) before it asks.
  lowerLimitTo(budget < hs.heap_size_limit() ? budget : kRaiseFrom);
  return state(env);
}

Napi::Value HeapGuardState(const Napi::CallbackInfo& info) {
  if (guard.isolate == nullptr) throw Napi::Error::New(info.Env(), "heapGuard: no budget set (heapBudget first)");
  return state(info.Env());
}

// After the code that overran the budget let go: the reserve is taken back, ready for the next overrun.
Napi::Value HeapSettle(const Napi::CallbackInfo& info) {
  if (guard.isolate == nullptr) throw Napi::Error::New(info.Env(), "heapSettle: no budget set (heapBudget first)");
  if (guard.inReserve) {
    guard.inReserve = false;
    lowerLimitTo(guard.budget);
  }
  return state(info.Env());
}

// Full collections now, until one frees nothing more (V8's low-memory notification: two at least), for a caller that
// has just let go of much, without --expose-gc. A critical memory-pressure notification collects once, but then
// starts a marking cycle that ran on into the first reloads at 100,000 services.
Napi::Value HeapCollect(const Napi::CallbackInfo& info) {
  v8::Isolate::GetCurrent()->LowMemoryNotification();
  return info.Env().Undefined();
}

}  // namespace

void registerHeapGuard(Napi::Env env, Napi::Object exports) {
  exports.Set("heapBudget", Napi::Function::New(env, HeapBudget, "heapBudget"));
  exports.Set("heapGuard", Napi::Function::New(env, HeapGuardState, "heapGuard"));
  exports.Set("heapSettle", Napi::Function::New(env, HeapSettle, "heapSettle"));
  exports.Set("heapCollect", Napi::Function::New(env, HeapCollect, "heapCollect"));
}

}  // namespace nfqwall
