#pragma once
// The daemon's JavaScript heap budget (docs/robustness.md, Heap). V8 ends the process when its heap reaches the limit
// it chose at start (about 4 GB here, whatever the machine has), and two 100,000-service rulesets alive during a
// reload pass that. With a near-heap-limit callback the daemon sets its own budget instead: the limit grows to it on
// demand, and a reload that would pass it gets a reserve to reach its next step, where it gives up and the running
// rules stay. Main thread only: the callback runs inside that isolate's garbage collections.
#include <napi.h>

namespace nfqwall {

// heapBudget(), heapGuard(), heapSettle() of native/index.d.ts.
void registerHeapGuard(Napi::Env env, Napi::Object exports);

}  // namespace nfqwall
