// The N-API surface described by native/index.d.ts: the Queue class and notify(). Thin: queue.cc does the work.
#include <napi.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "caps.h"
#include "conntrack_napi.h"
#include "flowcache_napi.h"
#include "heapguard.h"
#include "matcher_napi.h"
#include "notify.h"
#include "rawsend.h"
#include "queue.h"

namespace {

using nfqwall::Batch;

struct Bridge;
void callJs(Napi::Env env, Napi::Function onBatch, Bridge* bridge, void* data);
using Tsfn = Napi::TypedThreadSafeFunction<Bridge, void, callJs>;

// Shared by the JS object and the thread-safe function, so whichever goes last frees the core.
struct Bridge {
  std::shared_ptr<nfqwall::Queue> core;
  Tsfn tsfn;
  bool tsfnAlive = false;  // JS thread only
  bool released = false;   // JS thread only

  // Closes the core (joins the thread, defaults what is pending, unbinds) and lets the event loop go.
  void close() {
    core->close();
    if (tsfnAlive && !released) {
      released = true;
      tsfn.Release();
    }
  }
};

// Queues still open per environment, closed by the environment's cleanup hook at exit.
std::mutex registryMutex;
std::vector<std::pair<napi_env, std::weak_ptr<nfqwall::Queue>>> registry;

void cleanupEnv(void* arg) {
  napi_env env = static_cast<napi_env>(arg);
  std::vector<std::shared_ptr<nfqwall::Queue>> open;
  {
    std::lock_guard<std::mutex> g(registryMutex);
    for (auto it = registry.begin(); it != registry.end();) {
      if (it->first == env) {
        if (auto q = it->second.lock()) open.push_back(std::move(q));
        it = registry.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Only the core: Node finalizes the thread-safe functions of a dying environment itself.
  for (auto& q : open) q->close();
}

void reportError(Napi::Env env, const Napi::Value& err, const char* fallback) {
  try {
    Napi::Object process = env.Global().Get("process").As<Napi::Object>();
    Napi::Function emit = process.Get("emitWarning").As<Napi::Function>();
    emit.Call(process, {err});
  } catch (...) {
    std::fprintf(stderr, "nfqwall: onBatch threw: %s\n", fallback);
  }
}

template <typename T, typename Arr>
Arr column(Napi::Env env, Napi::ArrayBuffer& ab, size_t& off, const std::vector<T>& v, size_t n) {
  Arr a = Arr::New(env, n, ab, off);
  if (n) std::memcpy(static_cast<uint8_t*>(ab.Data()) + off, v.data(), n * sizeof(T));
  off += (n * sizeof(T) + 7) & ~size_t(7);
  return a;
}

// The connection table's columns (native/index.d.ts PacketBatch.ct*), in the batch's ArrayBuffer after the others.
void ctColumns(Napi::Env env, Napi::Object o, Napi::ArrayBuffer& ab, size_t& off, const Batch& b) {
  size_t n = b.count;
  const nfqwall::ct::BatchColumns& c = b.ct;
  o.Set("ctState", column<uint8_t, Napi::Uint8Array>(env, ab, off, c.state, n));
  o.Set("ctDir", column<uint8_t, Napi::Uint8Array>(env, ab, off, c.dir, n));
  o.Set("ctStatus", column<uint32_t, Napi::Uint32Array>(env, ab, off, c.status, n));
  o.Set("ctMark", column<uint32_t, Napi::Uint32Array>(env, ab, off, c.mark, n));
  o.Set("ctHandle", column<uint32_t, Napi::Uint32Array>(env, ab, off, c.handle, n));
  o.Set("ctGen", column<uint32_t, Napi::Uint32Array>(env, ab, off, c.gen, n));
  Napi::Uint16Array zone = Napi::Uint16Array::New(env, n, ab, off);
  off += (n * 2 + 7) & ~size_t(7);
  Napi::Uint8Array flags = Napi::Uint8Array::New(env, n, ab, off);
  off += (n + 7) & ~size_t(7);
  for (size_t i = 0; i < n; i++) {
    zone[i] = c.cls[i].zone;
    flags[i] = c.cls[i].flags;
  }
  o.Set("ctZone", zone);
  o.Set("ctFlags", flags);
}

// One ArrayBuffer per batch holds every column, so JavaScript can keep the views as long as it likes.
Napi::Object batchObject(Napi::Env env, const Batch& b) {
  size_t n = b.count;
  auto al = [](size_t x) { return (x + 7) & ~size_t(7); };
  size_t total = 9 * al(n * 4) + al((n + 1) * 4) + al(n * 2) + 3 * al(n) + al(n * 6) + al(b.data.size());
  bool ct = b.classified && b.ct.cls.size() >= n;
  if (ct) total += 3 * al(n) + 4 * al(n * 4) + al(n * 2);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, total ? total : 8);
  size_t off = 0;
  Napi::Object o = Napi::Object::New(env);
  o.Set("seq", Napi::Number::New(env, double(b.seq)));
  o.Set("count", Napi::Number::New(env, double(n)));
  o.Set("ids", column<uint32_t, Napi::Uint32Array>(env, ab, off, b.ids, n));
  o.Set("hooks", column<uint8_t, Napi::Uint8Array>(env, ab, off, b.hooks, n));
  o.Set("protos", column<uint16_t, Napi::Uint16Array>(env, ab, off, b.protos, n));
  o.Set("marks", column<uint32_t, Napi::Uint32Array>(env, ab, off, b.marks, n));
  o.Set("inIf", column<uint32_t, Napi::Uint32Array>(env, ab, off, b.inIf, n));
  o.Set("outIf", column<uint32_t, Napi::Uint32Array>(env, ab, off, b.outIf, n));
  o.Set("physInIf", column<uint32_t, Napi::Uint32Array>(env, ab, off, b.physInIf, n));
  o.Set("physOutIf", column<uint32_t, Napi::Uint32Array>(env, ab, off, b.physOutIf, n));
  o.Set("uids", column<uint32_t, Napi::Uint32Array>(env, ab, off, b.uids, n));
  o.Set("gids", column<uint32_t, Napi::Uint32Array>(env, ab, off, b.gids, n));
  o.Set("origLens", column<uint32_t, Napi::Uint32Array>(env, ab, off, b.origLens, n));
  o.Set("flags", column<uint8_t, Napi::Uint8Array>(env, ab, off, b.flags, n));
  o.Set("hwAddrs", column<uint8_t, Napi::Uint8Array>(env, ab, off, b.hwAddrs, n * 6));
  o.Set("hwLens", column<uint8_t, Napi::Uint8Array>(env, ab, off, b.hwLens, n));
  o.Set("offsets", column<uint32_t, Napi::Uint32Array>(env, ab, off, b.offsets, n + 1));
  o.Set("data", column<uint8_t, Napi::Uint8Array>(env, ab, off, b.data, b.data.size()));
  if (ct) ctColumns(env, o, ab, off, b);
  return o;
}

void callJs(Napi::Env env, Napi::Function onBatch, Bridge* bridge, void* data) {
  if (env == nullptr || bridge == nullptr || onBatch.IsEmpty()) return;  // environment teardown: close() defaults
  uint64_t seq = uint64_t(reinterpret_cast<uintptr_t>(data));
  nfqwall::Queue& q = *bridge->core;
  const Batch* b = q.pendingBatch(seq);
  if (!b) return;  // defaulted by close() while it waited in the queue
  try {
    Napi::Object obj = batchObject(env, *b);
    if (q.config().table && b->classified) obj.Set("ctEntry", nfqwall::entryLookup(env, q.config().table));
    onBatch.Call({obj});
  } catch (const Napi::Error& e) {
    if (auto taken = q.takePending(seq)) q.defaultBatch(std::move(taken));
    reportError(env, e.Value(), e.what());
  } catch (const std::exception& e) {
    if (auto taken = q.takePending(seq)) q.defaultBatch(std::move(taken));
    std::fprintf(stderr, "nfqwall: batch %llu: %s\n", static_cast<unsigned long long>(seq), e.what());
  }
}

uint32_t optU32(Napi::Object o, const char* name, uint32_t dflt, uint32_t lo, uint32_t hi) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("Queue: options.") + name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != double(uint64_t(d)))
    throw Napi::RangeError::New(o.Env(), std::string("Queue: options.") + name + " must be an integer from " +
                                             std::to_string(lo) + " to " + std::to_string(hi));
  return uint32_t(d);
}

bool optBool(Napi::Object o, const char* name, bool dflt) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return dflt;
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string("Queue: options.") + name + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// Tags a Queue object, so options.late can tell one from any other object.
const napi_type_tag kQueueTag = {0x6e667177616c6c51ULL, 0x7565756557726170ULL};

class QueueWrap : public Napi::ObjectWrap<QueueWrap> {
 public:
  // The core behind a Queue object, or null.
  static std::shared_ptr<nfqwall::Queue> coreOf(const Napi::Value& v) {
    if (!v.IsObject()) return nullptr;
    bool tagged = false;
    if (napi_check_object_type_tag(v.Env(), v, &kQueueTag, &tagged) != napi_ok || !tagged) return nullptr;
    QueueWrap* w = Unwrap(v.As<Napi::Object>());
    return w && w->bridge_ ? w->bridge_->core : nullptr;
  }

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Queue",
                       {InstanceMethod<&QueueWrap::Verdict>("verdict"), InstanceMethod<&QueueWrap::Stats>("stats"),
                        InstanceMethod<&QueueWrap::Close>("close")});
  }

  explicit QueueWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<QueueWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction())
      throw Napi::TypeError::New(env, "Queue(options, onBatch): options must be an object and onBatch a function");
    Napi::Object o = info[0].As<Napi::Object>();
    if (o.Get("queue").IsUndefined()) throw Napi::TypeError::New(env, "Queue: options.queue is required");
    nfqwall::QueueConfig cfg;
    cfg.queue = uint16_t(optU32(o, "queue", 0, 0, 65535));
    cfg.copyRange = optU32(o, "copyRange", 0xffff, 0, 0xffff);
    cfg.maxLen = optU32(o, "maxLen", 4096, 1, 0x7fffffff);
    cfg.rcvbuf = optU32(o, "rcvbuf", 8u << 20, 4096, 0x7fffffff);
    cfg.failOpen = optBool(o, "failOpen", false);
    cfg.gso = optBool(o, "gso", true);
    cfg.uidGid = optBool(o, "uidGid", true);
    cfg.maxPendingBatches = optU32(o, "maxPendingBatches", 64, 1, 1u << 20);
    cfg.maxBatch = optU32(o, "maxBatch", 256, 1, 65536);
    cfg.driven = optBool(o, "driven", false);
    std::shared_ptr<nfqwall::Queue> late;
    if (!o.Get("late").IsUndefined()) {
      late = coreOf(o.Get("late"));
      if (!late || !late->config().driven || late->closed() || late->hasDriver())
        throw Napi::TypeError::New(env, "Queue: options.late must be an open Queue made with driven: true that no other queue serves");
      if (cfg.driven) throw Napi::TypeError::New(env, "Queue: a driven queue cannot drive another (options.late)");
    }
    if (!o.Get("lateShare").IsUndefined()) {
      // The kernel's balance sends a packet on to any of a daemon's late queues: their pairs read within one budget.
      std::shared_ptr<nfqwall::Queue> peer = coreOf(o.Get("lateShare"));
      if (!late || !peer || !peer->config().lateBudget)
        throw Napi::TypeError::New(env, "Queue: options.lateShare must be a Queue that serves a late queue, given options.late");
      cfg.lateBudget = peer->config().lateBudget;
    }
    Napi::Value ctv = o.Get("conntrack");
    if (!ctv.IsUndefined()) {
      cfg.table = nfqwall::connTableOf(ctv);
      if (!cfg.table) throw Napi::TypeError::New(env, "Queue: options.conntrack must be a ConnTable");
      // The plan docs/conntrack-table.md asks of a daemon with a table: PREROUTING, INPUT, OUTPUT, POSTROUTING.
      cfg.queuedHooks = optU32(o, "queuedHooks", 0x1b, 1, 0x1f);
    } else if (!o.Get("queuedHooks").IsUndefined()) {
      throw Napi::TypeError::New(env, "Queue: options.queuedHooks needs options.conntrack");
    }
    Napi::Value fcv = o.Get("flowCache");
    if (!fcv.IsUndefined()) {
      cfg.cache = nfqwall::flowCacheOf(fcv);
      if (!cfg.cache) throw Napi::TypeError::New(env, "Queue: options.flowCache must be a FlowCache");
      if (!cfg.table) throw Napi::TypeError::New(env, "Queue: options.flowCache needs options.conntrack");
      // Its decisions name connections by handle: one table's handles only.
      if (!cfg.cache->bindTable(cfg.table.get()))
        throw Napi::TypeError::New(env, "Queue: options.flowCache serves the queues of one ConnTable, not another");
      cfg.parkLimit = optU32(o, "parkLimit", 4096, 0, 1u << 20);
    } else if (!o.Get("parkLimit").IsUndefined()) {
      throw Napi::TypeError::New(env, "Queue: options.parkLimit needs options.flowCache");
    }
    Napi::Value mv = o.Get("matcher");
    if (!mv.IsUndefined()) {
      cfg.matcher = nfqwall::matcherOf(mv);
      if (!cfg.matcher) throw Napi::TypeError::New(env, "Queue: options.matcher must be a Matcher");
      // The cache keeps a flow's packets in order; the matcher's decisions go through it.
      if (!cfg.cache) throw Napi::TypeError::New(env, "Queue: options.matcher needs options.flowCache");
    }
    Napi::Value ov = o.Get("overloadVerdict");
    if (!ov.IsUndefined()) {
      std::string s = ov.IsString() ? ov.As<Napi::String>().Utf8Value() : "";
      if (s == "accept")
        cfg.overloadVerdict = 1;
      else if (s == "drop")
        cfg.overloadVerdict = 0;
      else
        throw Napi::TypeError::New(env, "Queue: options.overloadVerdict must be 'accept' or 'drop'");
    }

    bridge_ = std::make_shared<Bridge>();
    try {
      bridge_->core = std::make_shared<nfqwall::Queue>(cfg);
      if (late) bridge_->core->drive(late);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    napi_type_tag_object(env, info.This(), &kQueueTag);
    auto* keep = new std::shared_ptr<Bridge>(bridge_);
    bridge_->tsfn = Tsfn::New(env, info[1].As<Napi::Function>(), "nfqwall.Queue", cfg.maxPendingBatches, 1,
                              bridge_.get(), [](Napi::Env, std::shared_ptr<Bridge>* k, Bridge* b) {
                                b->tsfnAlive = false;
                                delete k;
                              },
                              keep);
    bridge_->tsfnAlive = true;
    {
      std::lock_guard<std::mutex> g(registryMutex);
      registry.emplace_back(napi_env(env), bridge_->core);
    }
    Tsfn tsfn = bridge_->tsfn;
    bridge_->core->start([tsfn](uint64_t seq) mutable {
      return tsfn.NonBlockingCall(reinterpret_cast<void*>(uintptr_t(seq))) == napi_ok;
    });
  }

  // Collected without close(): same cleanup, from the finalizer.
  ~QueueWrap() override {
    if (bridge_ && bridge_->core) bridge_->close();
  }

 private:
  Napi::Value Verdict(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsObject())
      throw Napi::TypeError::New(env, "verdict(batch, {verdicts, marks?, setMark?, payloads?})");
    Napi::Value seqV = info[0].As<Napi::Object>().Get("seq");
    if (!seqV.IsNumber()) throw Napi::TypeError::New(env, "verdict: batch.seq must be a number");
    double seqD = seqV.As<Napi::Number>().DoubleValue();
    nfqwall::Queue& q = *bridge_->core;
    const Batch* b = seqD >= 1 ? q.pendingBatch(uint64_t(seqD)) : nullptr;
    if (!b)
      throw Napi::TypeError::New(env, "verdict: batch " + std::to_string(uint64_t(seqD < 0 ? 0 : seqD)) +
                                          " has no pending verdict (already verdicted, defaulted, or the queue closed)");
    uint64_t seq = b->seq;
    uint32_t n = b->count;
    // A batch of another Queue can carry the same seq: its count and first id tell them apart.
    Napi::Object jb = info[0].As<Napi::Object>();
    Napi::Value cv = jb.Get("count");
    Napi::Value iv = jb.Get("ids");
    if (!cv.IsNumber() || cv.As<Napi::Number>().DoubleValue() != double(n) || !iv.IsTypedArray() ||
        iv.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array || iv.As<Napi::Uint32Array>().ElementLength() < n ||
        (n && iv.As<Napi::Uint32Array>()[0] != b->ids[0]))
      throw Napi::TypeError::New(env, "verdict: batch " + std::to_string(seq) + " does not belong to this queue");
    Napi::Object v = info[1].As<Napi::Object>();

    Napi::Value vv = v.Get("verdicts");
    if (!vv.IsTypedArray() || vv.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
      throw Napi::TypeError::New(env, "verdict: verdicts must be a Uint32Array");
    Napi::Uint32Array verdicts = vv.As<Napi::Uint32Array>();
    if (verdicts.ElementLength() < n)
      throw Napi::TypeError::New(env, "verdict: verdicts has " + std::to_string(verdicts.ElementLength()) +
                                          " entries for a batch of " + std::to_string(n));
    const uint32_t* marks = nullptr;
    const uint8_t* setMark = nullptr;
    Napi::Value mv = v.Get("marks");
    if (!mv.IsUndefined()) {
      if (!mv.IsTypedArray() || mv.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
          mv.As<Napi::Uint32Array>().ElementLength() < n)
        throw Napi::TypeError::New(env, "verdict: marks must be a Uint32Array with one entry per packet");
      marks = mv.As<Napi::Uint32Array>().Data();
    }
    Napi::Value sv = v.Get("setMark");
    if (!sv.IsUndefined()) {
      if (!sv.IsTypedArray() || sv.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
          sv.As<Napi::Uint8Array>().ElementLength() < n)
        throw Napi::TypeError::New(env, "verdict: setMark must be a Uint8Array with one entry per packet");
      if (!marks) throw Napi::TypeError::New(env, "verdict: setMark needs marks");
      setMark = sv.As<Napi::Uint8Array>().Data();
    }
    Napi::Array payloads;
    Napi::Value pv = v.Get("payloads");
    if (!pv.IsUndefined()) {
      if (!pv.IsArray()) throw Napi::TypeError::New(env, "verdict: payloads must be an array");
      payloads = pv.As<Napi::Array>();
    }

    pv_.resize(n);
    for (uint32_t i = 0; i < n; i++) {
      nfqwall::PacketVerdict& p = pv_[i];
      p = nfqwall::PacketVerdict{};
      p.verdict = verdicts[i];
      uint32_t base = p.verdict & 0xff;
      bool valid = (base == 0 || base == 1 || base == 4) ? (p.verdict >> 8) == 0 : base == 3;
      if (!valid)
        throw Napi::TypeError::New(env, "verdict: packet " + std::to_string(i) + " has an invalid verdict " +
                                            std::to_string(p.verdict) + " (NF_DROP 0, NF_ACCEPT 1, NF_REPEAT 4, " +
                                            "or (queue << 16) | 3)");
      if (marks && (!setMark || setMark[i])) {
        p.setMark = true;
        p.mark = marks[i];
      }
      if (!payloads.IsEmpty() && i < payloads.Length()) {
        Napi::Value e = payloads.Get(i);
        if (e.IsUndefined() || e.IsNull()) continue;
        if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
          throw Napi::TypeError::New(env, "verdict: payloads[" + std::to_string(i) + "] must be a Uint8Array");
        Napi::Uint8Array a = e.As<Napi::Uint8Array>();
        // A netlink attribute holds at most 0xffff bytes including its 4-byte header.
        if (a.ElementLength() > 0xffff - 4)
          throw Napi::RangeError::New(env, "verdict: payloads[" + std::to_string(i) + "] is longer than 65531 bytes");
        if (a.ElementLength() == 0)
          throw Napi::RangeError::New(env, "verdict: payloads[" + std::to_string(i) + "] is empty");
        p.payload = a.Data();
        p.payloadLen = uint32_t(a.ElementLength());
      }
    }
    const nfqwall::ct::Update* ctu = ctUpdates(v, n);
    const uint32_t* cachePaths = nullptr;
    uint32_t cacheGeneration = 0;
    Napi::Value cpv = v.Get("cachePaths");
    if (!cpv.IsUndefined()) {
      if (!cpv.IsTypedArray() || cpv.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
          cpv.As<Napi::Uint32Array>().ElementLength() < n)
        throw Napi::TypeError::New(env, "verdict: cachePaths must be a Uint32Array with one entry per packet");
      Napi::Value gv = v.Get("cacheGeneration");
      if (!gv.IsNumber()) throw Napi::TypeError::New(env, "verdict: cachePaths needs cacheGeneration (a number)");
      // A queue without a flow cache has nowhere to store: the hint is dropped, the verdicts are not.
      if (q.config().cache) {
        cachePaths = cpv.As<Napi::Uint32Array>().Data();
        cacheGeneration = gv.As<Napi::Number>().Uint32Value();
      }
    }
    auto taken = q.takePending(seq);
    if (!taken) throw Napi::TypeError::New(env, "verdict: batch " + std::to_string(seq) + " has no pending verdict");
    if (!q.verdictBatch(std::move(taken), pv_.data(), ctu, cachePaths, cacheGeneration))
      throw Napi::Error::New(env, "verdict: sending the verdicts of batch " + std::to_string(seq) + " failed: " +
                                      std::strerror(errno));
    return env.Undefined();
  }

  // VerdictOptions.ctFlags / ctMarks / ctNat as one ct::Update per packet, or null when none is given.
  const nfqwall::ct::Update* ctUpdates(Napi::Object v, uint32_t n) {
    Napi::Env env = v.Env();
    Napi::Value fv = v.Get("ctFlags"), mv = v.Get("ctMarks"), nv = v.Get("ctNat");
    if (fv.IsUndefined() && mv.IsUndefined() && nv.IsUndefined()) return nullptr;
    if (!bridge_->core->config().table)
      throw Napi::TypeError::New(env, "verdict: ctFlags, ctMarks and ctNat need a queue bound with options.conntrack");
    const uint8_t* flags = nullptr;
    const uint32_t* marks = nullptr;
    if (!fv.IsUndefined()) {
      if (!fv.IsTypedArray() || fv.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
          fv.As<Napi::Uint8Array>().ElementLength() < n)
        throw Napi::TypeError::New(env, "verdict: ctFlags must be a Uint8Array with one entry per packet");
      flags = fv.As<Napi::Uint8Array>().Data();
    }
    if (!mv.IsUndefined()) {
      if (!mv.IsTypedArray() || mv.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
          mv.As<Napi::Uint32Array>().ElementLength() < n)
        throw Napi::TypeError::New(env, "verdict: ctMarks must be a Uint32Array with one entry per packet");
      marks = mv.As<Napi::Uint32Array>().Data();
    }
    Napi::Array nat;
    if (!nv.IsUndefined()) {
      if (!nv.IsArray()) throw Napi::TypeError::New(env, "verdict: ctNat must be an array");
      nat = nv.As<Napi::Array>();
    }
    ctu_.assign(n, nfqwall::ct::Update{});
    for (uint32_t i = 0; i < n; i++) {
      nfqwall::ct::Update& u = ctu_[i];
      uint8_t f = flags ? flags[i] : 0;
      u.notrack = (f & kCtNotrack) != 0;
      u.replied = (f & kCtReplied) != 0;
      if (f & kCtSetMark) {
        if (!marks) throw Napi::TypeError::New(env, "verdict: ctFlags asks to set a connmark without ctMarks");
        u.setMark = true;
        u.mark = marks[i];
      }
      if (f & kCtNatSrcRan) u.natRan |= 1u << nfqwall::nat::kManipSrc;
      if (f & kCtNatDstRan) u.natRan |= 1u << nfqwall::nat::kManipDst;
      if (nat.IsEmpty() || i >= nat.Length()) continue;
      Napi::Value e = nat.Get(i);
      if (e.IsUndefined() || e.IsNull()) continue;
      std::string where = "verdict: ctNat[" + std::to_string(i) + "]: ";
      Napi::Array reqs;
      if (e.IsArray()) {
        reqs = e.As<Napi::Array>();
      } else if (e.IsObject()) {
        reqs = Napi::Array::New(env, 1);
        reqs.Set(uint32_t(0), e);
      } else {
        throw Napi::TypeError::New(env, where + "must be a CtNatRequest or an array of them");
      }
      if (reqs.Length() > 2) throw Napi::RangeError::New(env, where + "at most one request per manip type");
      for (uint32_t k = 0; k < reqs.Length(); k++) {
        Napi::Value r = reqs.Get(k);
        if (!r.IsObject()) throw Napi::TypeError::New(env, where + "requests must be objects");
        nfqwall::nat::Request& req = u.nat[u.natCount++];
        nfqwall::parseNatRequest(r.As<Napi::Object>(), req, where);
        u.natRan |= uint8_t(1u << req.manip);  // a binding request means its manip type's chains ran
      }
    }
    return ctu_.data();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    nfqwall::Queue& q = *bridge_->core;
    const nfqwall::Counters& c = q.counters();
    nfqwall::KernelQueueInfo k = q.kernelInfo();
    Napi::Object o = Napi::Object::New(env);
    auto set = [&](const char* name, uint64_t v) { o.Set(name, Napi::Number::New(env, double(v))); };
    set("queue", q.config().queue);
    set("maxLen", q.config().maxLen);
    set("received", c.received);
    set("accepted", c.accepted);
    set("dropped", c.dropped);
    set("bytes", c.bytes);
    set("batches", c.batches);
    set("errors", c.errors);
    set("enobufs", c.enobufs);
    set("overload", c.overload);
    set("defaulted", c.defaulted);
    set("kernelQueueTotal", k.total);
    set("kernelQueueDropped", k.dropped);
    set("kernelUserDropped", k.userDropped);
    set("kernelIdSequence", k.idSequence);
    set("pendingBatches", q.pendingCount());
    set("threadIdleMs", q.threadIdleMs());
    o.Set("closed", Napi::Boolean::New(env, q.closed()));
    if (q.config().table) set("ctDropped", c.ctDropped);
    if (q.config().cache) set("cached", c.cached);
    if (q.config().cache) set("batchVerdicts", c.batchVerdicts);
    if (q.config().matcher) set("matched", c.matched);
    if (q.config().lateBudget) set("lateWaits", c.lateWaits);
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    bridge_->close();
    return info.Env().Undefined();
  }

  // VerdictOptions.ctFlags bits.
  static constexpr uint8_t kCtNotrack = 1, kCtSetMark = 2, kCtNatSrcRan = 4, kCtNatDstRan = 8, kCtReplied = 16;

  std::shared_ptr<Bridge> bridge_;
  std::vector<nfqwall::PacketVerdict> pv_;
  std::vector<nfqwall::ct::Update> ctu_;
};

Napi::Value Notify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "notify(state): state must be a string");
  int r = nfqwall::sdNotify(info[0].As<Napi::String>().Utf8Value());
  if (r < 0) throw Napi::Error::New(env, std::string("notify: cannot send to NOTIFY_SOCKET: ") + std::strerror(-r));
  return Napi::Boolean::New(env, r > 0);
}

Napi::Value SendRaw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, "sendRaw(packet): packet must be a Uint8Array holding an IPv4 or IPv6 packet");
  Napi::Uint8Array pkt = info[0].As<Napi::Uint8Array>();
  int r = nfqwall::sendRawPacket(pkt.Data(), pkt.ByteLength());
  if (r < 0) throw Napi::Error::New(env, std::string("sendRaw: cannot send the packet: ") + std::strerror(-r));
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Queue", QueueWrap::Define(env));
  exports.Set("notify", Napi::Function::New(env, Notify, "notify"));
  exports.Set("sendRaw", Napi::Function::New(env, SendRaw, "sendRaw"));
  nfqwall::registerConnTable(env, exports);
  nfqwall::registerCaps(env, exports);
  nfqwall::registerFlowCache(env, exports);
  nfqwall::registerMatcher(env, exports);
  nfqwall::registerHeapGuard(env, exports);
  napi_add_env_cleanup_hook(env, cleanupEnv, static_cast<napi_env>(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(nfqwall, Init)
