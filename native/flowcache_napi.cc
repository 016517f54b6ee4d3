// The N-API wrapper of fc::FlowCache (native/index.d.ts: FlowCache). The receive threads use the C++ object directly;
// lookup() and settle() here are the same steps one packet at a time, for tests.
#include <napi.h>

#include <memory>
#include <string>

#include "flowcache.h"
#include "flowcache_napi.h"

namespace nfqwall {

namespace {

const napi_type_tag kFlowCacheTag = {0x6e66717766636163ull, 0x68652d666c6f7731ull};

uint32_t u32Field(Napi::Object o, const char* what, const char* name, uint32_t dflt, uint32_t lo, uint32_t hi) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("FlowCache: ") + what + name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != double(uint64_t(d)))
    throw Napi::RangeError::New(o.Env(), std::string("FlowCache: ") + what + name + " must be an integer from " +
                                             std::to_string(lo) + " to " + std::to_string(hi));
  return uint32_t(d);
}

fc::Probe probeArg(const Napi::Value& v, uint32_t wireLen) {
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), "FlowCache: key must be an object");
  Napi::Object o = v.As<Napi::Object>();
  const char* w = "key.";
  constexpr uint32_t kMax = 0xffffffffu;
  fc::Probe p;
  p.key.handle = u32Field(o, w, "handle", 0, 0, kMax);
  p.key.gen = u32Field(o, w, "gen", 0, 0, kMax);
  p.key.hook = uint8_t(u32Field(o, w, "hook", 0, 0, 4));
  p.key.dir = uint8_t(u32Field(o, w, "dir", 0, 0, 1));
  p.values.status = u32Field(o, w, "status", 0, 0, kMax);
  p.values.mark = u32Field(o, w, "mark", 0, 0, kMax);
  p.values.connmark = u32Field(o, w, "connmark", 0, 0, kMax);
  p.values.zone = uint16_t(u32Field(o, w, "zone", 0, 0, 0xffff));
  p.values.inIf = u32Field(o, w, "inIf", 0, 0, kMax);
  p.values.outIf = u32Field(o, w, "outIf", 0, 0, kMax);
  p.values.physInIf = u32Field(o, w, "physInIf", 0, 0, kMax);
  p.values.physOutIf = u32Field(o, w, "physOutIf", 0, 0, kMax);
  Napi::Value skip = o.Get("skip");
  if (!skip.IsUndefined() && !skip.IsBoolean()) throw Napi::TypeError::New(v.Env(), "FlowCache: key.skip must be a boolean");
  p.skip = skip.IsBoolean() && skip.As<Napi::Boolean>().Value() ? 1 : 0;
  p.wireLen = wireLen;
  p.kind = p.key.handle ? fc::kEligible : fc::kUntracked;
  return p;
}

class FlowCacheWrap : public Napi::ObjectWrap<FlowCacheWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FlowCache",
                       {InstanceMethod<&FlowCacheWrap::Invalidate>("invalidate"),
                        InstanceMethod<&FlowCacheWrap::Generation>("generation"),
                        InstanceMethod<&FlowCacheWrap::SetEnabled>("setEnabled"),
                        InstanceMethod<&FlowCacheWrap::SetSkip>("setSkip"),
                        InstanceMethod<&FlowCacheWrap::Drain>("drain"),
                        InstanceMethod<&FlowCacheWrap::Stats>("stats"),
                        InstanceMethod<&FlowCacheWrap::Lookup>("lookup"),
                        InstanceMethod<&FlowCacheWrap::Settle>("settle"),
                        InstanceMethod<&FlowCacheWrap::BeginBarrier>("beginBarrier"),
                        InstanceMethod<&FlowCacheWrap::EndBarrier>("endBarrier")});
  }

  explicit FlowCacheWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FlowCacheWrap>(info) {
    fc::Options o;
    if (info.Length() >= 1 && !info[0].IsUndefined()) {
      if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "FlowCache(options): options must be an object");
      Napi::Object opt = info[0].As<Napi::Object>();
      o.capacity = u32Field(opt, "options.", "capacity", o.capacity, 1, 1u << 24);
      o.maxPaths = u32Field(opt, "options.", "maxPaths", o.maxPaths, 1, 1u << 24);
    }
    cache_ = std::make_shared<fc::FlowCache>(o);
    napi_type_tag_object(info.Env(), info.This(), &kFlowCacheTag);
  }

  std::shared_ptr<fc::FlowCache> cache() const { return cache_; }

 private:
  // invalidate([statusMask]): FlowCache::invalidate, with the status bits stored decisions may depend on from now on.
  Napi::Value Invalidate(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || info[0].IsUndefined()) return Napi::Number::New(info.Env(), cache_->invalidate());
    if (!info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "FlowCache.invalidate(statusMask): statusMask must be a number");
    const double m = info[0].As<Napi::Number>().DoubleValue();
    if (!(m >= 0 && m <= double(UINT32_MAX)) || m != double(uint64_t(m)))
      throw Napi::RangeError::New(info.Env(), "FlowCache.invalidate(statusMask): statusMask must be an integer from 0 to 2^32-1");
    return Napi::Number::New(info.Env(), cache_->invalidate(uint32_t(m)));
  }

  Napi::Value Generation(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cache_->generation()); }

  Napi::Value SetEnabled(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsBoolean())
      throw Napi::TypeError::New(info.Env(), "FlowCache.setEnabled(on): on must be a boolean");
    cache_->setEnabled(info[0].As<Napi::Boolean>().Value());
    return info.Env().Undefined();
  }

  Napi::Value SetSkip(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsObject())
      throw Napi::TypeError::New(info.Env(), "FlowCache.setSkip(config): config must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    fc::SkipConfig c;
    c.mark = u32Field(o, "config.", "mark", 0, 0, 0xffffffffu);
    if (c.mark && __builtin_popcount(c.mark) != 2)
      throw Napi::RangeError::New(info.Env(), "FlowCache.setSkip: config.mark must be two bits (or 0: off)");
    c.maxLen = u32Field(o, "config.", "maxLen", 0, 0, 0xffffffffu);
    Napi::Value allowed = o.Get("allowed");
    if (!allowed.IsBoolean())
      throw Napi::TypeError::New(info.Env(), "FlowCache.setSkip: config.allowed must be a boolean");
    c.allowed = allowed.As<Napi::Boolean>().Value();
    c.queuedHooks = u32Field(o, "config.", "queuedHooks", 0, 0, 31);
    cache_->setSkip(c);
    return info.Env().Undefined();
  }

  Napi::Value Drain(const Napi::CallbackInfo& info) {
    std::vector<fc::PathHits> h = cache_->drain();
    Napi::Float64Array a = Napi::Float64Array::New(info.Env(), h.size() * 4);
    for (size_t i = 0; i < h.size(); i++) {
      a[i * 4] = double(h[i].generation);
      a[i * 4 + 1] = double(h[i].pathId);
      a[i * 4 + 2] = double(h[i].packets);
      a[i * 4 + 3] = double(h[i].bytes);
    }
    return a;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    fc::Stats s = cache_->stats();
    Napi::Object o = Napi::Object::New(env);
    auto set = [&](const char* name, uint64_t v) { o.Set(name, Napi::Number::New(env, double(v))); };
    set("hits", s.hits);
    set("misses", s.misses);
    set("stores", s.stores);
    set("uncacheable", s.uncacheable);
    set("evictions", s.evictions);
    set("invalidations", s.invalidations);
    set("generation", s.generation);
    set("entries", s.entries);
    set("waiting", s.waiting);
    set("parked", s.parked);
    set("tripsSkipped", s.tripsSkipped);
    set("barriers", s.barriers);
    set("transitsDropped", s.transitsDropped);
    set("transitsLapsed", s.transitsLapsed);
    o.Set("enabled", Napi::Boolean::New(env, s.enabled));
    return o;
  }

  // lookup(key, wireLen): the receive thread's step for one ESTABLISHED packet.
  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[1].IsNumber())
      throw Napi::TypeError::New(env, "FlowCache.lookup(key, wireLen): wireLen must be a number");
    fc::Probe p = probeArg(info[0], info[1].As<Napi::Number>().Uint32Value());
    fc::Decision d;
    if (!cache_->lookup(1, &p, &d)) return env.Undefined();
    Napi::Object o = Napi::Object::New(env);
    o.Set("verdict", Napi::Number::New(env, d.verdict));
    o.Set("mark", Napi::Number::New(env, d.mark));
    o.Set("setMark", Napi::Boolean::New(env, d.setMark));
    o.Set("pathId", Napi::Number::New(env, d.pathId));
    if (d.skipped) o.Set("skipped", Napi::Number::New(env, d.skipped));
    return o;
  }

  // settle(key, decision | undefined, generation): verdict() for one packet lookup() missed.
  Napi::Value Settle(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[2].IsNumber())
      throw Napi::TypeError::New(env, "FlowCache.settle(key, decision, generation): generation must be a number");
    fc::Probe p = probeArg(info[0], 0);
    fc::Decision d;
    uint8_t want = 0;
    if (!info[1].IsUndefined()) {
      if (!info[1].IsObject()) throw Napi::TypeError::New(env, "FlowCache.settle: decision must be an object");
      Napi::Object o = info[1].As<Napi::Object>();
      d.verdict = u32Field(o, "decision.", "verdict", 0, 0, 0xffffffffu);
      d.mark = u32Field(o, "decision.", "mark", 0, 0, 0xffffffffu);
      Napi::Value sm = o.Get("setMark");
      if (!sm.IsUndefined() && !sm.IsBoolean())
        throw Napi::TypeError::New(env, "FlowCache: decision.setMark must be a boolean");
      d.setMark = sm.IsBoolean() && sm.As<Napi::Boolean>().Value();
      d.pathId = u32Field(o, "decision.", "pathId", 0, 0, 0xffffffffu);
      want = 1;
    }
    uint32_t stored = cache_->release(1, &p, &d, &want, info[2].As<Napi::Number>().Uint32Value());
    return Napi::Boolean::New(env, stored != 0);
  }

  // beginBarrier() / endBarrier(barrier): the receive thread's steps around a barrier's acknowledgement, for tests.
  Napi::Value BeginBarrier(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), cache_->beginBarrier());
  }

  Napi::Value EndBarrier(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber())
      throw Napi::TypeError::New(info.Env(), "FlowCache.endBarrier(barrier): barrier must be a number");
    cache_->endBarrier(info[0].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
  }

  std::shared_ptr<fc::FlowCache> cache_;
};

}  // namespace

std::shared_ptr<fc::FlowCache> flowCacheOf(const Napi::Value& v) {
  if (!v.IsObject()) return nullptr;
  bool tagged = false;
  if (napi_check_object_type_tag(v.Env(), v, &kFlowCacheTag, &tagged) != napi_ok || !tagged) return nullptr;
  FlowCacheWrap* w = FlowCacheWrap::Unwrap(v.As<Napi::Object>());
  return w ? w->cache() : nullptr;
}

void registerFlowCache(Napi::Env env, Napi::Object exports) { exports.Set("FlowCache", FlowCacheWrap::Define(env)); }

}  // namespace nfqwall
