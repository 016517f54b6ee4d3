// The N-API wrapper of mt::Matcher (native/index.d.ts: Matcher). The receive threads use the C++ object directly;
// run() here decides one packet for tests, drain() hands the counters to JavaScript.
#include <arpa/inet.h>
#include <napi.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "matcher.h"
#include "matcher_napi.h"

namespace nfqwall {

namespace {

const napi_type_tag kMatcherTag = {0x6e6671776d617463ull, 0x6865722d72756c65ull};

uint32_t u32Field(Napi::Object o, const char* name, uint32_t dflt, uint32_t lo, uint32_t hi) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("Matcher: ") + name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != double(uint64_t(d)))
    throw Napi::RangeError::New(o.Env(), std::string("Matcher: ") + name + " must be an integer from " +
                                             std::to_string(lo) + " to " + std::to_string(hi));
  return uint32_t(d);
}

uint8_t familyArg(const Napi::Value& v) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), "Matcher: family must be 4 or 6");
  double f = v.As<Napi::Number>().DoubleValue();
  if (f != 4 && f != 6) throw Napi::RangeError::New(v.Env(), "Matcher: family must be 4 or 6");
  return uint8_t(f);
}

std::vector<std::string> strings(Napi::Object o, const char* name) {
  std::vector<std::string> out;
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(o.Env(), std::string("Matcher: host.") + name + " must be an array");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (!e.IsString()) throw Napi::TypeError::New(o.Env(), std::string("Matcher: host.") + name + " holds a non-string");
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

// "addr" or "addr/prefix" of `family` into 16 bytes and a prefix; false when it is not one.
bool parseNet(const std::string& s, uint8_t family, std::array<uint8_t, 16>& addr, uint8_t& prefix) {
  size_t slash = s.find('/');
  std::string a = s.substr(0, slash);
  int max = family == 4 ? 32 : 128;
  int pfx = max;
  if (slash != std::string::npos) {
    std::string p = s.substr(slash + 1);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos) return false;
    pfx = std::stoi(p);
    if (pfx > max) return false;
  }
  addr.fill(0);
  if (inet_pton(family == 4 ? AF_INET : AF_INET6, a.c_str(), addr.data()) != 1) return false;
  prefix = uint8_t(pfx);
  return true;
}

// Matcher.run's `random`: the 31-bit numbers statistic draws, in order (cycling), and how many it drew.
struct Draws {
  std::vector<uint32_t> values;
  uint32_t drawn = 0;
  static uint32_t next(void* ctx) {
    Draws* d = static_cast<Draws*>(ctx);
    uint32_t v = d->values.empty() ? 0 : d->values[d->drawn % d->values.size()];
    d->drawn++;
    return v;
  }
};

std::string addrText(const uint8_t* a, uint8_t family) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(family == 4 ? AF_INET : AF_INET6, a, buf, sizeof buf);
  return buf;
}

// nat::Request as a CtNatRequest (native/index.d.ts), the inverse of parseNatRequest.
Napi::Object natObject(Napi::Env env, const nat::Request& q, uint8_t family) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("manip", q.manip == nat::kManipSrc ? "SRC" : "DST");
  if (q.flags & nat::kMapIps) {
    o.Set("minAddr", addrText(q.minAddr, family));
    o.Set("maxAddr", addrText(q.maxAddr, family));
  }
  if (q.flags & nat::kProtoSpecified) {
    o.Set("minPort", Napi::Number::New(env, q.minPort));
    o.Set("maxPort", Napi::Number::New(env, q.maxPort));
  }
  if (q.flags & nat::kProtoOffset) o.Set("basePort", Napi::Number::New(env, q.basePort));
  if (q.flags & nat::kProtoRandom) o.Set("random", true);
  if (q.flags & nat::kProtoRandomFully) o.Set("randomFully", true);
  if (q.flags & nat::kPersistent) o.Set("persistent", true);
  if (q.flags & nat::kNetmap) o.Set("netmap", true);
  if (q.masqIfindex != 0) o.Set("masqIfindex", Napi::Number::New(env, q.masqIfindex));
  return o;
}

const napi_type_tag kBuiltTag = {0x6e6671776275696cull, 0x742d70726f677261ull};

// The words a program is loaded from: a view of a block of programWords() (run in place), or a copy of any others.
struct WordsArg {
  std::shared_ptr<mt::WordBlock> block;
  size_t offset = 0, n = 0;
  std::vector<uint32_t> copy;

  std::shared_ptr<mt::Program> load(std::string& err) {
    return block ? mt::Program::load(std::move(block), offset, n, err) : mt::Program::load(copy.data(), copy.size(), err);
  }
};

WordsArg wordsArg(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    throw Napi::TypeError::New(v.Env(), std::string(what) + ": words must be a Uint32Array");
  Napi::Uint32Array words = v.As<Napi::Uint32Array>();
  WordsArg out;
  out.block = mt::WordBlock::find(words.ArrayBuffer().Data());
  out.n = words.ElementLength();
  if (out.block) out.offset = words.ByteOffset() / sizeof(uint32_t);
  else out.copy.assign(words.Data(), words.Data() + out.n);
  return out;
}

// Matcher.build's work: Program::load off the main thread. Nothing thrown leaves Execute (the pool's thread).
class BuildWorker : public Napi::AsyncWorker {
 public:
  BuildWorker(Napi::Env env, WordsArg words, uint8_t family)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), words_(std::move(words)), family_(family) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      std::string err;
      program_ = words_.load(err);
      if (!program_) SetError("Matcher.build: " + err);
      else if (program_->family() != family_) SetError("Matcher.build: the program is for IPv" + std::to_string(program_->family()));
    } catch (const std::exception& e) {
      program_.reset();
      SetError(std::string("Matcher.build: ") + e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    auto held = new std::shared_ptr<mt::Program>(std::move(program_));
    auto ext = Napi::External<std::shared_ptr<mt::Program>>::New(env, held, [](Napi::Env, std::shared_ptr<mt::Program>* h) { delete h; });
    ext.TypeTag(&kBuiltTag);
    deferred_.Resolve(ext);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  WordsArg words_;
  uint8_t family_;
  std::shared_ptr<mt::Program> program_;
};

class MatcherWrap : public Napi::ObjectWrap<MatcherWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Matcher",
                       {InstanceMethod<&MatcherWrap::Load>("load"), InstanceMethod<&MatcherWrap::Build>("build"),
                        InstanceMethod<&MatcherWrap::Clear>("clear"),
                        InstanceMethod<&MatcherWrap::SetHost>("setHost"), InstanceMethod<&MatcherWrap::Run>("run"),
                        InstanceMethod<&MatcherWrap::Drain>("drain"), InstanceMethod<&MatcherWrap::Time>("time"),
                        InstanceMethod<&MatcherWrap::SetEnabled>("setEnabled"),
                        InstanceMethod<&MatcherWrap::Serial>("serial"),
                        InstanceMethod<&MatcherWrap::ProgramWords>("programWords"),
                        InstanceMethod<&MatcherWrap::Stats>("stats")});
  }

  explicit MatcherWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<MatcherWrap>(info), m_(std::make_shared<mt::Matcher>()) {
    info.This().As<Napi::Object>().TypeTag(&kMatcherTag);
  }

  std::shared_ptr<mt::Matcher> matcher() const { return m_; }

 private:
  // Puts a program in force: words (checked here) or what build() checked.
  Napi::Value Load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t family = familyArg(info[0]);
    if (!info[2].IsNumber()) throw Napi::TypeError::New(env, "Matcher.load: serial must be a number");
    uint32_t serial = info[2].As<Napi::Number>().Uint32Value();
    std::shared_ptr<mt::Program> p;
    if (info[1].IsExternal() && info[1].As<Napi::Object>().CheckTypeTag(&kBuiltTag)) {
      // Taken, not shared: the program (and the block it seals) must go when the matcher lets go of it, not when the
      // collector gets to the JavaScript object.
      std::shared_ptr<mt::Program>& built = *info[1].As<Napi::External<std::shared_ptr<mt::Program>>>().Data();
      if (!built) throw Napi::Error::New(env, "Matcher.load: this program was loaded already");
      p = std::move(built);
    } else {
      WordsArg words = wordsArg(info[1], "Matcher.load");
      std::string err;
      p = words.load(err);
      if (!p) throw Napi::Error::New(env, "Matcher.load: " + err);
    }
    if (p->family() != family)
      throw Napi::Error::New(env, "Matcher.load: the program is for IPv" + std::to_string(p->family()));
    m_->setProgram(family, std::move(p), serial);
    return env.Undefined();
  }

  // Checks words as load() does, on a thread of the pool: a promise of the checked program, for load() to put in
  // force without more work. Words in a block of programWords() are sealed from the call on.
  Napi::Value Build(const Napi::CallbackInfo& info) {
    uint8_t family = familyArg(info[0]);
    WordsArg words = wordsArg(info[1], "Matcher.build");
    auto* worker = new BuildWorker(info.Env(), std::move(words), family);
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  }

  Napi::Value Serial(const Napi::CallbackInfo& info) {
    uint32_t serial = 0;
    m_->program(familyArg(info[0]), serial);
    return Napi::Number::New(info.Env(), serial);
  }

  // A Uint32Array of at least `length` words (zero) in a block load() runs in place: the whole of `reuse`'s block when
  // `reuse` is a view of one, long enough, that no program runs on any more; else a new block.
  Napi::Value ProgramWords(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "Matcher.programWords: length must be a number");
    double len = info[0].As<Napi::Number>().DoubleValue();
    if (!(len >= 0 && len <= double(UINT32_MAX)) || len != double(uint64_t(len)))
      throw Napi::RangeError::New(env, "Matcher.programWords: length must be an integer from 0 to 2^32-1");
    size_t words = size_t(len);
    if (info.Length() > 1 && info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_uint32_array) {
      Napi::Uint32Array reuse = info[1].As<Napi::Uint32Array>();
      std::shared_ptr<mt::WordBlock> b = mt::WordBlock::find(reuse.ArrayBuffer().Data());
      if (b && b->words() >= words && b->recycle()) return Napi::Uint32Array::New(env, b->words(), reuse.ArrayBuffer(), 0);
    }
    std::string err;
    std::shared_ptr<mt::WordBlock> b = mt::WordBlock::allocate(words, err);
    if (!b) throw Napi::Error::New(env, "Matcher.programWords: " + err);
    // The ArrayBuffer holds the block as long as JavaScript does; a program on it holds it too.
    auto hold = std::make_unique<std::shared_ptr<mt::WordBlock>>(b);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, b->data(), b->words() * sizeof(uint32_t),
                                                  [](Napi::Env, void*, std::shared_ptr<mt::WordBlock>* h) { delete h; }, hold.get());
    hold.release();  // the finalizer's now
    return Napi::Uint32Array::New(env, b->words(), ab, 0);
  }

  Napi::Value Clear(const Napi::CallbackInfo& info) {
    m_->setProgram(familyArg(info[0]), nullptr, 0);
    return info.Env().Undefined();
  }

  Napi::Value SetHost(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Matcher.setHost: host must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    auto h = std::make_shared<mt::Host>();
    Napi::Value names = o.Get("names");
    if (!names.IsUndefined()) {
      if (!names.IsArray()) throw Napi::TypeError::New(env, "Matcher: host.names must be an array");
      Napi::Array a = names.As<Napi::Array>();
      h->names.resize(a.Length());
      for (uint32_t i = 0; i < a.Length(); i++) {
        Napi::Value e = a.Get(i);
        h->names[i].fill(0);
        if (e.IsUndefined() || e.IsNull()) continue;
        if (!e.IsString()) throw Napi::TypeError::New(env, "Matcher: host.names holds a non-string");
        std::string s = e.As<Napi::String>().Utf8Value();
        if (s.size() > 15) throw Napi::RangeError::New(env, "Matcher: interface name longer than 15 bytes: " + s);
        std::memcpy(h->names[i].data(), s.data(), s.size());
      }
    }
    for (uint8_t family : {uint8_t(4), uint8_t(6)}) {
      for (const std::string& s : strings(o, family == 4 ? "local4" : "local6")) {
        std::array<uint8_t, 16> a;
        uint8_t prefix;
        if (!parseNet(s, family, a, prefix) || prefix != (family == 4 ? 32 : 128))
          throw Napi::Error::New(env, "Matcher: not an IPv" + std::to_string(family) + " address: " + s);
        if (family == 4)
          h->local4.push_back((uint32_t(a[0]) << 24) | (uint32_t(a[1]) << 16) | (uint32_t(a[2]) << 8) | a[3]);
        else
          h->local6.push_back(a);
      }
    }
    // routes: [{ dst: 'addr/prefix', local: boolean }], every route of the host's tables that addrtype consults.
    Napi::Value routes = o.Get("routes");
    if (!routes.IsUndefined()) {
      if (!routes.IsArray()) throw Napi::TypeError::New(env, "Matcher: host.routes must be an array");
      Napi::Array a = routes.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) {
        Napi::Value e = a.Get(i);
        if (!e.IsObject()) throw Napi::TypeError::New(env, "Matcher: host.routes holds a non-object");
        Napi::Object r = e.As<Napi::Object>();
        std::string dst = r.Get("dst").ToString().Utf8Value();
        uint8_t family = dst.find(':') != std::string::npos ? 6 : 4;
        mt::Host::Net n;
        if (!parseNet(dst, family, n.addr, n.prefix)) throw Napi::Error::New(env, "Matcher: bad route " + dst);
        n.local = r.Get("local").ToBoolean().Value();
        (family == 4 ? h->nets4 : h->nets6).push_back(n);
      }
    }
    // primary4/primary6: [ifindex] -> the interface's primary address (HostView.primaryAddress), or undefined.
    for (uint8_t family : {uint8_t(4), uint8_t(6)}) {
      const char* key = family == 4 ? "primary4" : "primary6";
      Napi::Value pv = o.Get(key);
      if (pv.IsUndefined()) continue;
      if (!pv.IsArray()) throw Napi::TypeError::New(env, std::string("Matcher: host.") + key + " must be an array");
      h->primariesKnown = true;
      Napi::Array a = pv.As<Napi::Array>();
      std::vector<mt::Host::Primary>& out = family == 4 ? h->primary4 : h->primary6;
      out.resize(a.Length());
      for (uint32_t i = 0; i < a.Length(); i++) {
        Napi::Value e = a.Get(i);
        if (e.IsUndefined() || e.IsNull()) continue;
        std::string s = e.ToString().Utf8Value();
        uint8_t prefix;
        if (!parseNet(s, family, out[i].addr, prefix) || prefix != (family == 4 ? 32 : 128))
          throw Napi::Error::New(env, std::string("Matcher: host.") + key + ": not an address: " + s);
        out[i].has = true;
      }
    }
    std::sort(h->local4.begin(), h->local4.end());
    std::sort(h->local6.begin(), h->local6.end());
    for (auto* v : {&h->nets4, &h->nets6})
      std::stable_sort(v->begin(), v->end(), [](const mt::Host::Net& x, const mt::Host::Net& y) { return x.prefix > y.prefix; });
    m_->setHost(h);
    return env.Undefined();
  }

  // Benchmarks: runs `input` `iterations` times on the receive thread's code path (no N-API per run) and returns the
  // mean nanoseconds per run, or -1 when the matcher leaves the packet to JavaScript.
  Napi::Value Time(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    mt::Input in = inputArg(info);
    uint32_t iterations = info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 1;
    std::shared_ptr<mt::Program> p = m_->program(in.family);
    std::shared_ptr<const mt::Host> host = m_->host();
    mt::Result r;
    if (!p || iterations == 0 || !p->run(in, *host, r)) return Napi::Number::New(env, -1);
    auto t0 = std::chrono::steady_clock::now();
    uint32_t ok = 0;
    for (uint32_t k = 0; k < iterations; k++) ok += p->run(in, *host, r) ? 1 : 0;
    auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    return Napi::Number::New(env, ok == iterations ? ns / iterations : -1);
  }

  static mt::Input inputArg(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Matcher.run: input must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    Napi::Value data = o.Get("data");
    if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, "Matcher.run: data must be a Uint8Array");
    Napi::Uint8Array bytes = data.As<Napi::Uint8Array>();
    mt::Input in;
    in.data = bytes.Data();
    in.len = uint32_t(bytes.ElementLength());
    in.family = familyArg(o.Get("family"));
    in.hook = uint8_t(u32Field(o, "hook", 0, 0, 4));
    in.mark = u32Field(o, "mark", 0, 0, 0xffffffffu);
    in.inIf = u32Field(o, "inIf", 0, 0, 0xffffffffu);
    in.outIf = u32Field(o, "outIf", 0, 0, 0xffffffffu);
    in.physInIf = u32Field(o, "physInIf", 0, 0, 0xffffffffu);
    in.physOutIf = u32Field(o, "physOutIf", 0, 0, 0xffffffffu);
    in.wireLen = u32Field(o, "wireLen", in.len, 0, 0xffffffffu);
    in.takesNat = o.Get("takesNat").IsUndefined() || o.Get("takesNat").ToBoolean().Value();
    Napi::Value ctv = o.Get("ct");
    if (!ctv.IsUndefined() && !ctv.IsNull()) {
      if (!ctv.IsObject()) throw Napi::TypeError::New(env, "Matcher.run: ct must be an object");
      Napi::Object c = ctv.As<Napi::Object>();
      in.tracked = true;
      in.ctState = uint8_t(u32Field(c, "state", 0, 0, 4));
      in.ctDir = uint8_t(u32Field(c, "dir", 0, 0, 1));
      in.ctStatus = u32Field(c, "status", 0, 0, 0xffffffffu);
      in.ctMark = u32Field(c, "mark", 0, 0, 0xffffffffu);
      in.zone = uint16_t(u32Field(c, "zone", 0, 0, 0xffff));
    }
    return in;
  }

  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    mt::Input in = inputArg(info);
    std::shared_ptr<mt::Program> p = m_->program(in.family);
    std::shared_ptr<const mt::Host> host = m_->host();
    mt::Result r;
    // random: the numbers statistic draws for this packet, in order (tests give the engine the same).
    Draws draws;
    Napi::Value rv = info[0].As<Napi::Object>().Get("random");
    if (!rv.IsUndefined()) {
      if (!rv.IsArray()) throw Napi::TypeError::New(env, "Matcher.run: random must be an array of numbers");
      Napi::Array a = rv.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) draws.values.push_back(a.Get(i).ToNumber().Uint32Value());
      in.random31 = &Draws::next;
      in.randomCtx = &draws;
    }
    // commit: what a receive thread does after the verdict (counts the path, keeps the statistics), for tests.
    bool commit = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
    if (!p || !m_->enabled() || !p->run(in, *host, r)) {
      if (commit) m_->slow.fetch_add(1, std::memory_order_relaxed);
      return env.Null();
    }
    if (commit) {
      p->count(r, in.wireLen);
      m_->decided.fetch_add(1, std::memory_order_relaxed);
    }
    Napi::Object res = Napi::Object::New(env);
    res.Set("verdict", Napi::Number::New(env, r.verdict));
    res.Set("mark", Napi::Number::New(env, r.mark));
    res.Set("setMark", Napi::Boolean::New(env, r.setMark));
    res.Set("natRan", Napi::Number::New(env, r.natRan));
    res.Set("flowStable", Napi::Boolean::New(env, r.flowStable));
    Napi::Array path = Napi::Array::New(env, r.pathLen);
    for (uint32_t k = 0; k < r.pathLen; k++) path.Set(k, Napi::Number::New(env, r.path[k]));
    res.Set("path", path);
    if (r.natCount > 0) {
      Napi::Array nat = Napi::Array::New(env, r.natCount);
      for (uint32_t k = 0; k < r.natCount; k++) nat.Set(k, natObject(env, r.nat[k], in.family));
      res.Set("nat", nat);
    }
    res.Set("draws", Napi::Number::New(env, draws.drawn));
    return res;
  }

  Napi::Value Drain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<mt::Matcher::Drained> hits;
    std::vector<uint32_t> done;
    m_->drain(hits, done);
    size_t n = hits.size();
    Napi::Uint32Array serials = Napi::Uint32Array::New(env, n);
    Napi::Uint32Array ids = Napi::Uint32Array::New(env, n);
    Napi::Float64Array packets = Napi::Float64Array::New(env, n);
    Napi::Float64Array bytes = Napi::Float64Array::New(env, n);
    for (size_t k = 0; k < n; k++) {
      serials[k] = hits[k].serial;
      ids[k] = hits[k].hits.id;
      packets[k] = double(hits[k].hits.packets);
      bytes[k] = double(hits[k].hits.bytes);
    }
    Napi::Array d = Napi::Array::New(env, done.size());
    for (size_t k = 0; k < done.size(); k++) d.Set(uint32_t(k), Napi::Number::New(env, done[k]));
    Napi::Object o = Napi::Object::New(env);
    o.Set("serials", serials);
    o.Set("ids", ids);
    o.Set("packets", packets);
    o.Set("bytes", bytes);
    o.Set("done", d);
    return o;
  }

  Napi::Value SetEnabled(const Napi::CallbackInfo& info) {
    if (!info[0].IsBoolean()) throw Napi::TypeError::New(info.Env(), "Matcher.setEnabled: on must be a boolean");
    m_->setEnabled(info[0].As<Napi::Boolean>().Value());
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("decided", Napi::Number::New(env, double(m_->decided.load(std::memory_order_relaxed))));
    o.Set("slow", Napi::Number::New(env, double(m_->slow.load(std::memory_order_relaxed))));
    return o;
  }

  std::shared_ptr<mt::Matcher> m_;
};

}  // namespace

void registerMatcher(Napi::Env env, Napi::Object exports) { exports.Set("Matcher", MatcherWrap::Define(env)); }

std::shared_ptr<mt::Matcher> matcherOf(const Napi::Value& v) {
  if (!v.IsObject()) return nullptr;
  Napi::Object o = v.As<Napi::Object>();
  if (!o.CheckTypeTag(&kMatcherTag)) return nullptr;
  MatcherWrap* w = MatcherWrap::Unwrap(o);
  return w ? w->matcher() : nullptr;
}

}  // namespace nfqwall
