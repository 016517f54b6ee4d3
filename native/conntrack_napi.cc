// The thin N-API wrapper of ct::ConnTable (native/index.d.ts: ConnTable), for tests and `nfqwall conntrack -L`.
// The receive thread uses the C++ API directly; this wrapper is one call per packet and is not the fast path.
#include <arpa/inet.h>
#include <napi.h>

#include <cstring>
#include <memory>
#include <string>

#include "conntrack.h"
#include "conntrack_napi.h"

namespace nfqwall {

namespace {

using ct::Classification;
using ct::ConnTable;

const char* stateName(uint8_t s) {
  static const char* const n[] = {"INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED"};
  return s < 5 ? n[s] : "INVALID";
}

std::string addrString(const uint8_t* a, uint8_t family) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(family == 4 ? AF_INET : AF_INET6, a, buf, sizeof buf);
  return buf;
}

bool parseAddr(const std::string& s, uint8_t family, uint8_t* out) {
  std::memset(out, 0, 16);
  return inet_pton(family == 4 ? AF_INET : AF_INET6, s.c_str(), out) == 1;
}

Napi::Object tupleObject(Napi::Env env, const pkt::Tuple& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("family", Napi::Number::New(env, t.family));
  o.Set("src", Napi::String::New(env, addrString(t.src, t.family)));
  o.Set("dst", Napi::String::New(env, addrString(t.dst, t.family)));
  o.Set("proto", Napi::Number::New(env, t.proto));
  o.Set("sport", Napi::Number::New(env, t.sport));
  o.Set("dport", Napi::Number::New(env, t.dport));
  o.Set("zone", Napi::Number::New(env, t.zone));
  return o;
}

uint32_t u32Opt(Napi::Object o, const char* name, uint32_t dflt, uint32_t hi = 0xffffffffu) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("ConnTable: ") + name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= hi) || d != double(uint64_t(d)))
    throw Napi::RangeError::New(o.Env(), std::string("ConnTable: ") + name + " must be an integer from 0 to " +
                                             std::to_string(hi));
  return uint32_t(d);
}

bool boolOpt(Napi::Object o, const char* name, bool dflt) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return dflt;
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string("ConnTable: ") + name + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

uint8_t familyArg(const Napi::Value& v) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), "ConnTable: family must be 4 or 6");
  int f = v.As<Napi::Number>().Int32Value();
  if (f != 4 && f != 6) throw Napi::TypeError::New(v.Env(), "ConnTable: family must be 4 or 6");
  return uint8_t(f);
}

uint8_t hookArg(const Napi::Value& v) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), "ConnTable: hook must be a number from 0 to 4");
  int h = v.As<Napi::Number>().Int32Value();
  if (h < 0 || h > 4) throw Napi::RangeError::New(v.Env(), "ConnTable: hook must be a number from 0 to 4");
  return uint8_t(h);
}

Napi::Uint8Array bytesArg(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(v.Env(), std::string("ConnTable: ") + what + " must be a Uint8Array");
  return v.As<Napi::Uint8Array>();
}

// Marks ConnTable objects, so a Queue can tell one from any other wrapped object it is given.
constexpr napi_type_tag kConnTableTag = {0x6e6671776c6c6374ull, 0x436f6e6e5461626cull};

// The classification travels through JavaScript as plain fields plus an opaque copy of the C++ struct.
Classification clsArg(const Napi::Value& v) {
  Napi::Env env = v.Env();
  if (!v.IsObject()) throw Napi::TypeError::New(env, "ConnTable: expected a classification from classify()");
  Napi::Value c = v.As<Napi::Object>().Get("cookie");
  Napi::Uint8Array a = bytesArg(c, "classification.cookie");
  if (a.ByteLength() != sizeof(Classification))
    throw Napi::TypeError::New(env, "ConnTable: classification.cookie is not from classify()");
  Classification out;
  std::memcpy(&out, a.Data(), sizeof out);
  return out;
}

// One CtNatRequest object (native/index.d.ts) as struct nf_nat_range2; `where` prefixes error messages.
void natRequestArg(Napi::Object r, nat::Request& q, const std::string& where) {
  Napi::Env env = r.Env();
  q = nat::Request{};
  std::string manip = r.Get("manip").ToString().Utf8Value();
  if (manip == "SRC") q.manip = nat::kManipSrc;
  else if (manip == "DST") q.manip = nat::kManipDst;
  else throw Napi::TypeError::New(env, where + "nat.manip must be 'SRC' or 'DST'");
  Napi::Value mn = r.Get("minAddr");
  if (!mn.IsUndefined()) {
    std::string lo = mn.ToString().Utf8Value();
    Napi::Value mx = r.Get("maxAddr");
    std::string hi = mx.IsUndefined() ? lo : mx.ToString().Utf8Value();
    uint8_t family = lo.find(':') != std::string::npos ? 6 : 4;
    if (!parseAddr(lo, family, q.minAddr) || !parseAddr(hi, family, q.maxAddr))
      throw Napi::TypeError::New(env, where + "nat address " + lo + "/" + hi + " is not an IP address");
    q.flags |= nat::kMapIps;
  }
  if (!r.Get("minPort").IsUndefined()) {
    q.minPort = uint16_t(u32Opt(r, "minPort", 0, 65535));
    q.maxPort = uint16_t(u32Opt(r, "maxPort", q.minPort, 65535));
    q.flags |= nat::kProtoSpecified;
  }
  if (!r.Get("basePort").IsUndefined()) {
    q.basePort = uint16_t(u32Opt(r, "basePort", 0, 65535));
    q.flags |= nat::kProtoOffset;
  }
  if (boolOpt(r, "random", false)) q.flags |= nat::kProtoRandom;
  if (boolOpt(r, "randomFully", false)) q.flags |= nat::kProtoRandomFully;
  if (boolOpt(r, "persistent", false)) q.flags |= nat::kPersistent;
  if (boolOpt(r, "netmap", false)) q.flags |= nat::kNetmap;
  q.masqIfindex = u32Opt(r, "masqIfindex", 0);
}

class ConnTableWrap : public Napi::ObjectWrap<ConnTableWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ConnTable",
                       {InstanceMethod<&ConnTableWrap::Classify>("classify"),
                        InstanceMethod<&ConnTableWrap::Commit>("commit"),
                        InstanceMethod<&ConnTableWrap::Finish>("finish"),
                        InstanceMethod<&ConnTableWrap::Bind>("bind"),
                        InstanceMethod<&ConnTableWrap::Translate>("translate"),
                        InstanceMethod<&ConnTableWrap::List>("list"),
                        InstanceMethod<&ConnTableWrap::Entry>("entry"),
                        InstanceMethod<&ConnTableWrap::FlushInterface>("flushInterface"),
                        InstanceMethod<&ConnTableWrap::FlushAddress>("flushAddress"),
                        InstanceMethod<&ConnTableWrap::Flush>("flush"),
                        InstanceMethod<&ConnTableWrap::Sweep>("sweep"),
                        InstanceMethod<&ConnTableWrap::SetNow>("setNow"),
                        InstanceMethod<&ConnTableWrap::Stats>("stats")});
  }

  explicit ConnTableWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ConnTableWrap>(info) {
    ct::Config cfg;
    if (info.Length() >= 1 && !info[0].IsUndefined()) {
      if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "ConnTable(options): options must be an object");
      Napi::Object o = info[0].As<Napi::Object>();
      cfg.maxEntries = u32Opt(o, "maxEntries", cfg.maxEntries, 1u << 26);
      if (cfg.maxEntries == 0) throw Napi::RangeError::New(info.Env(), "ConnTable: maxEntries must be at least 1");
      cfg.buckets = u32Opt(o, "buckets", 0, 1u << 26);
      cfg.seed = u32Opt(o, "seed", uint32_t(cfg.seed));
      cfg.manualClock = boolOpt(o, "manualClock", false);
      cfg.tcpLoose = boolOpt(o, "tcpLoose", true);
    }
    table_ = std::make_shared<ConnTable>(cfg);
    napi_type_tag_object(info.Env(), info.This(), &kConnTableTag);
  }

  std::shared_ptr<ConnTable> table() const { return table_; }

 private:
  Napi::Value Classify(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3) throw Napi::TypeError::New(env, "classify(packet, family, hook, options?)");
    Napi::Uint8Array p = bytesArg(info[0], "packet");
    uint8_t family = familyArg(info[1]);
    uint8_t hook = hookArg(info[2]);
    uint32_t flags = ct::kCtPoint;
    uint16_t zone = 0;
    if (info.Length() >= 4 && info[3].IsObject()) {
      Napi::Object o = info[3].As<Napi::Object>();
      if (!boolOpt(o, "ctPoint", true)) flags &= ~ct::kCtPoint;
      if (boolOpt(o, "checksumUnverified", false)) flags |= ct::kCsumUnverified;
      zone = uint16_t(u32Opt(o, "zone", 0, 0xffff));
    }
    Classification c = table_->classify(p.Data(), p.ByteLength(), family, hook, flags, zone);
    Napi::Object o = Napi::Object::New(env);
    o.Set("state", Napi::String::New(env, stateName(c.state)));
    o.Set("direction", Napi::String::New(env, c.dir ? "REPLY" : "ORIGINAL"));
    o.Set("status", Napi::Number::New(env, c.status));
    o.Set("mark", Napi::Number::New(env, c.mark));
    o.Set("zone", Napi::Number::New(env, c.zone));
    o.Set("tcpState", Napi::String::New(env, c.handle ? ct::tcpStateName(c.tcpState) : ""));
    o.Set("handle", Napi::Number::New(env, c.handle));
    o.Set("created", Napi::Boolean::New(env, (c.flags & ct::kClsCreated) != 0));
    o.Set("dropped", Napi::Boolean::New(env, (c.flags & ct::kClsDrop) != 0));
    o.Set("fragment", Napi::Boolean::New(env, (c.flags & ct::kClsFragment) != 0));
    Napi::Uint8Array cookie = Napi::Uint8Array::New(env, sizeof c);
    std::memcpy(cookie.Data(), &c, sizeof c);
    o.Set("cookie", cookie);
    return o;
  }

  Napi::Value Commit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[1].IsObject()) throw Napi::TypeError::New(env, "commit(classification, update)");
    Classification c = clsArg(info[0]);
    Napi::Object o = info[1].As<Napi::Object>();
    Napi::Value acc = o.Get("accept");
    if (!acc.IsBoolean()) throw Napi::TypeError::New(env, "commit: update.accept must be a boolean");
    ct::Update u = updateArg(o);
    u.accept = acc.As<Napi::Boolean>().Value();
    return Napi::Boolean::New(env, table_->commit(c, u));
  }

  Napi::Value Finish(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[1].IsObject())
      throw Napi::TypeError::New(env, "finish(classification, update, packet, family, hook)");
    Classification c = clsArg(info[0]);
    Napi::Object o = info[1].As<Napi::Object>();
    Napi::Value acc = o.Get("accept");
    if (!acc.IsBoolean()) throw Napi::TypeError::New(env, "finish: update.accept must be a boolean");
    ct::Update u = updateArg(o);
    u.accept = acc.As<Napi::Boolean>().Value();
    Napi::Uint8Array p = bytesArg(info[2], "packet");
    uint8_t family = familyArg(info[3]);
    uint8_t hook = hookArg(info[4]);
    Napi::Uint8Array out = Napi::Uint8Array::New(env, p.ByteLength());
    std::memcpy(out.Data(), p.Data(), p.ByteLength());
    bool changed = false;
    bool ok = table_->finish(c, u, out.Data(), out.ByteLength(), family, hook, changed);
    Napi::Object r = Napi::Object::New(env);
    r.Set("ok", Napi::Boolean::New(env, ok));
    if (changed) r.Set("packet", out);
    return r;
  }

  Napi::Value Bind(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[1].IsObject()) throw Napi::TypeError::New(env, "bind(classification, {natRan, nat})");
    Classification c = clsArg(info[0]);
    ct::Update u = updateArg(info[1].As<Napi::Object>());
    return Napi::Boolean::New(env, table_->bind(c, u));
  }

  static ct::Update updateArg(Napi::Object o) {
    Napi::Env env = o.Env();
    ct::Update u;
    u.final = boolOpt(o, "final", false);
    u.notrack = boolOpt(o, "notrack", false);
    u.replied = boolOpt(o, "replied", false);
    u.looped = boolOpt(o, "looped", false);
    Napi::Value cm = o.Get("connmark");
    if (!cm.IsUndefined()) {
      u.setMark = true;
      u.mark = u32Opt(o, "connmark", 0);
    }
    Napi::Value ran = o.Get("natRan");
    if (!ran.IsUndefined()) {
      if (!ran.IsArray()) throw Napi::TypeError::New(env, "commit: update.natRan must be an array of 'SRC' | 'DST'");
      Napi::Array a = ran.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) {
        std::string s = a.Get(i).ToString().Utf8Value();
        if (s == "SRC") u.natRan |= 1u << nat::kManipSrc;
        else if (s == "DST") u.natRan |= 1u << nat::kManipDst;
        else throw Napi::TypeError::New(env, "commit: update.natRan entries must be 'SRC' or 'DST'");
      }
    }
    Napi::Value reqs = o.Get("nat");
    if (!reqs.IsUndefined()) {
      if (!reqs.IsArray()) throw Napi::TypeError::New(env, "commit: update.nat must be an array");
      Napi::Array a = reqs.As<Napi::Array>();
      if (a.Length() > 2) throw Napi::RangeError::New(env, "commit: at most one NAT request per manip type");
      for (uint32_t i = 0; i < a.Length(); i++) {
        if (!a.Get(i).IsObject()) throw Napi::TypeError::New(env, "commit: update.nat entries must be objects");
        Napi::Object r = a.Get(i).As<Napi::Object>();
        natRequestArg(r, u.nat[u.natCount++], "commit: ");
      }
    }
    return u;
  }

  Napi::Value Translate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4) throw Napi::TypeError::New(env, "translate(classification, packet, family, hook)");
    Classification c = clsArg(info[0]);
    Napi::Uint8Array p = bytesArg(info[1], "packet");
    uint8_t family = familyArg(info[2]);
    uint8_t hook = hookArg(info[3]);
    Napi::Uint8Array out = Napi::Uint8Array::New(env, p.ByteLength());
    std::memcpy(out.Data(), p.Data(), p.ByteLength());
    if (!table_->translate(c, out.Data(), out.ByteLength(), family, hook)) return env.Undefined();
    return out;
  }

  Napi::Value Entry(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1) throw Napi::TypeError::New(env, "entry(classification)");
    Classification c = clsArg(info[0]);
    ct::EntryView v;
    if (!table_->view(c, v)) return env.Undefined();
    return entryObject(env, v);
  }

 public:
  static Napi::Object entryObject(Napi::Env env, const ct::EntryView& e) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("orig", tupleObject(env, e.orig));
    o.Set("reply", tupleObject(env, e.reply));
    o.Set("status", Napi::Number::New(env, e.status));
    o.Set("mark", Napi::Number::New(env, e.mark));
    o.Set("zone", Napi::Number::New(env, e.zone));
    o.Set("tcpState", Napi::String::New(env, e.orig.proto == pkt::kProtoTcp ? ct::tcpStateName(e.tcpState) : ""));
    o.Set("expiresSeconds", Napi::Number::New(env, double(e.expiresMs > 0 ? e.expiresMs / 1000 : 0)));
    Napi::Array pk = Napi::Array::New(env, 2), by = Napi::Array::New(env, 2);
    for (uint32_t d = 0; d < 2; d++) {
      pk.Set(d, Napi::Number::New(env, double(e.packets[d])));
      by.Set(d, Napi::Number::New(env, double(e.bytes[d])));
    }
    o.Set("packets", pk);
    o.Set("bytes", by);
    o.Set("masqIfindex", Napi::Number::New(env, e.masqIfindex));
    o.Set("line", Napi::String::New(env, ConnTable::format(e)));
    return o;
  }

  Napi::Value List(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<ct::EntryView> v = table_->list();
    Napi::Array a = Napi::Array::New(env, v.size());
    for (uint32_t i = 0; i < v.size(); i++) a.Set(i, entryObject(env, v[i]));
    return a;
  }

  Napi::Value FlushInterface(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "flushInterface(ifindex)");
    return Napi::Number::New(env, double(table_->flushInterface(info[0].As<Napi::Number>().Uint32Value())));
  }

  Napi::Value FlushAddress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "flushAddress(address)");
    std::string s = info[0].As<Napi::String>().Utf8Value();
    uint8_t family = s.find(':') != std::string::npos ? 6 : 4;
    uint8_t a[16];
    if (!parseAddr(s, family, a)) throw Napi::TypeError::New(env, "flushAddress: " + s + " is not an IP address");
    return Napi::Number::New(env, double(table_->flushAddress(family, a)));
  }

  Napi::Value Flush(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(table_->flush()));
  }

  Napi::Value Sweep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t budget = info.Length() >= 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 1024;
    return Napi::Number::New(env, double(table_->sweep(budget)));
  }

  Napi::Value SetNow(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "setNow(ms)");
    table_->setNow(info[0].As<Napi::Number>().Int64Value());
    return env.Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ct::Stats s = table_->stats();
    Napi::Object o = Napi::Object::New(env);
    auto set = [&](const char* n, uint64_t v) { o.Set(n, Napi::Number::New(env, double(v))); };
    set("entries", s.entries);
    set("unconfirmed", s.unconfirmed);
    set("found", s.found);
    set("created", s.created);
    set("invalid", s.invalid);
    set("ignore", s.ignore);
    set("untracked", s.untracked);
    set("related", s.related);
    set("drop", s.drop);
    set("earlyDrop", s.earlyDrop);
    set("expired", s.expired);
    set("insertFailed", s.insertFailed);
    set("natFailed", s.natFailed);
    set("clashResolve", s.clashResolve);
    set("deleted", s.deleted);
    set("killed", s.killed);
    set("discarded", s.discarded);
    set("searched", s.searched);
    return o;
  }

  std::shared_ptr<ConnTable> table_;
};

}  // namespace

std::shared_ptr<ct::ConnTable> connTableOf(const Napi::Value& v) {
  if (!v.IsObject()) return nullptr;
  bool tagged = false;
  if (napi_check_object_type_tag(v.Env(), v, &kConnTableTag, &tagged) != napi_ok || !tagged) return nullptr;
  ConnTableWrap* w = ConnTableWrap::Unwrap(v.As<Napi::Object>());
  return w ? w->table() : nullptr;
}

void parseNatRequest(Napi::Object r, nat::Request& q, const std::string& where) { natRequestArg(r, q, where); }

Napi::Function entryLookup(Napi::Env env, const std::shared_ptr<ct::ConnTable>& t) {
  auto* held = new std::shared_ptr<ct::ConnTable>(t);
  Napi::Function fn = Napi::Function::New(
      env,
      [](const Napi::CallbackInfo& info) -> Napi::Value {
        Napi::Env env = info.Env();
        if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
          throw Napi::TypeError::New(env, "ctEntry(handle, gen)");
        auto* table = static_cast<std::shared_ptr<ct::ConnTable>*>(info.Data());
        ct::EntryView v;
        if (!(*table)->viewAt(info[0].As<Napi::Number>().Uint32Value(), info[1].As<Napi::Number>().Uint32Value(), v))
          return env.Undefined();
        return ConnTableWrap::entryObject(env, v);
      },
      "ctEntry", held);
  fn.AddFinalizer([](Napi::Env, std::shared_ptr<ct::ConnTable>* p) { delete p; }, held);
  return fn;
}

void registerConnTable(Napi::Env env, Napi::Object exports) { exports.Set("ConnTable", ConnTableWrap::Define(env)); }

}  // namespace nfqwall
