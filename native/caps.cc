#include "caps.h"

#include <linux/capability.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "rawsend.h"

namespace nfqwall {
namespace {

// linux/capability.h's order, without the CAP_ prefix.
const char* const kNames[] = {
    "chown",        "dac_override",   "dac_read_search", "fowner",      "fsetid",       "kill",
    "setgid",       "setuid",         "setpcap",         "linux_immutable", "net_bind_service", "net_broadcast",
    "net_admin",    "net_raw",        "ipc_lock",        "ipc_owner",   "sys_module",   "sys_rawio",
    "sys_chroot",   "sys_ptrace",     "sys_pacct",       "sys_admin",   "sys_boot",     "sys_nice",
    "sys_resource", "sys_time",       "sys_tty_config",  "mknod",       "lease",        "audit_write",
    "audit_control", "setfcap",       "mac_override",    "mac_admin",   "syslog",       "wake_alarm",
    "block_suspend", "audit_read",    "perfmon",         "bpf",         "checkpoint_restore",
};
constexpr int kKnown = sizeof(kNames) / sizeof(kNames[0]);
constexpr int kSetpcap = 8;

std::string failed(const std::string& what) { return what + ": " + std::strerror(errno); }

// The highest capability the running kernel knows: PR_CAPBSET_READ says EINVAL past it.
int lastCap() {
  static int last = -1;
  if (last < 0) {
    int c = 0;
    while (c < 63 && prctl(PR_CAPBSET_READ, c + 1, 0, 0, 0) >= 0) c++;
    last = c;
  }
  return last;
}

std::string capget3(CapSets& out) {
  __user_cap_header_struct hdr{};
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) < 0) return failed("capget");
  auto join = [](uint32_t lo, uint32_t hi) { return static_cast<uint64_t>(hi) << 32 | lo; };
  out.effective = join(data[0].effective, data[1].effective);
  out.permitted = join(data[0].permitted, data[1].permitted);
  out.inheritable = join(data[0].inheritable, data[1].inheritable);
  return "";
}

std::string capset3(uint64_t eff, uint64_t prm, uint64_t inh) {
  __user_cap_header_struct hdr{};
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  __user_cap_data_struct data[2]{};
  for (int i = 0; i < 2; i++) {
    data[i].effective = static_cast<uint32_t>(eff >> (32 * i));
    data[i].permitted = static_cast<uint32_t>(prm >> (32 * i));
    data[i].inheritable = static_cast<uint32_t>(inh >> (32 * i));
  }
  if (syscall(SYS_capset, &hdr, data) < 0) return failed("capset");
  return "";
}

std::string names(uint64_t set) {
  std::string s;
  for (int c = 0; c < 64; c++)
    if (set >> c & 1) s += (s.empty() ? "" : ",") + capabilityName(c);
  return s.empty() ? "none" : s;
}

}  // namespace

int capabilityNumber(const std::string& name) {
  std::string n;
  for (char ch : name) n += static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
  if (n.rfind("cap_", 0) == 0) n = n.substr(4);
  for (int c = 0; c < kKnown; c++)
    if (n == kNames[c]) return c;
  return -1;
}

std::string capabilityName(int cap) {
  return cap >= 0 && cap < kKnown ? kNames[cap] : "cap_" + std::to_string(cap);
}

std::string readCapabilities(CapSets& out) {
  out = CapSets{};
  std::string err = capget3(out);
  if (!err.empty()) return err;
  const int last = lastCap();
  for (int c = 0; c <= last; c++) {
    int r = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
    if (r < 0) return failed("prctl(PR_CAPBSET_READ, " + capabilityName(c) + ")");
    if (r == 1) out.bounding |= uint64_t{1} << c;
  }
  for (int c = 0; c <= last; c++) {
    int r = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0);
    if (r < 0) {
      if (errno == EINVAL && c == 0) break;  // Before Linux 4.3: no ambient set, nothing in it.
      return failed("prctl(PR_CAP_AMBIENT_IS_SET, " + capabilityName(c) + ")");
    }
    if (r == 1) out.ambient |= uint64_t{1} << c;
  }
  return "";
}

std::string dropCapabilities(uint64_t keep, DropOutcome& out) {
  std::string err = readCapabilities(out.before);
  if (!err.empty()) return err;
  const uint64_t k = keep & out.before.permitted;
  // The bounding set first: lowering it needs CAP_SETPCAP in the effective set, which goes next.
  const uint64_t extra = out.before.bounding & ~keep;
  if (extra != 0 && (out.before.effective >> kSetpcap & 1)) {
    for (int c = 0; c < 64; c++) {
      if (!(extra >> c & 1)) continue;
      if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) return failed("prctl(PR_CAPBSET_DROP, " + capabilityName(c) + ")");
    }
  }
  err = capset3(k, k, k);
  if (!err.empty()) return err;
  // The ambient set carries `keep` to children that are not root (iptables under a service's own uid); for root the
  // bounding set does, and the ambient set then only says the same.
  if (out.before.ambient != 0 || k != 0) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) {
      if (!(errno == EINVAL && out.before.ambient == 0)) return failed("prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
    } else {
      for (int c = 0; c < 64; c++) {
        if (!(k >> c & 1)) continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
          return failed("prctl(PR_CAP_AMBIENT_RAISE, " + capabilityName(c) + ")");
      }
    }
  }
  err = readCapabilities(out.after);
  if (!err.empty()) return err;
  out.boundingLeft = out.after.bounding & ~keep;
  // Trust but verify: what the kernel now reports must be what was asked.
  if (out.after.effective != k || out.after.permitted != k || out.after.inheritable != k || (out.after.ambient & ~k) != 0)
    return "capabilities after dropping: effective " + names(out.after.effective) + ", permitted " +
           names(out.after.permitted) + ", inheritable " + names(out.after.inheritable) + ", ambient " +
           names(out.after.ambient) + "; wanted " + names(k);
  return "";
}

std::string reexec(const std::string& path, const std::vector<std::string>& argv, const std::vector<std::string>& env,
                   const std::vector<int>& keepFds) {
  std::vector<int> cleared;
  // Node marks even 0, 1 and 2 close-on-exec (its children get them by dup2): the new image would find them closed.
  std::vector<int> fds = {0, 1, 2};
  fds.insert(fds.end(), keepFds.begin(), keepFds.end());
  for (int fd : fds) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 && errno == EBADF && fd <= 2) continue;  // Not open: the new Node opens /dev/null there.
    if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) {
      std::string e = failed("descriptor " + std::to_string(fd));
      for (int c : cleared) fcntl(c, F_SETFD, fcntl(c, F_GETFD) | FD_CLOEXEC);
      return e;
    }
    cleared.push_back(fd);
  }
  std::vector<char*> av, ev;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  for (const auto& e : env) ev.push_back(const_cast<char*>(e.c_str()));
  ev.push_back(nullptr);
  execve(path.c_str(), av.data(), ev.data());
  std::string e = failed("execve " + path);
  for (int c : cleared) fcntl(c, F_SETFD, fcntl(c, F_GETFD) | FD_CLOEXEC);
  return e;
}

namespace {

Napi::Array nameArray(Napi::Env env, uint64_t set) {
  Napi::Array a = Napi::Array::New(env);
  uint32_t i = 0;
  for (int c = 0; c < 64; c++)
    if (set >> c & 1) a.Set(i++, Napi::String::New(env, capabilityName(c)));
  return a;
}

Napi::Object setsObject(Napi::Env env, const CapSets& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("effective", nameArray(env, s.effective));
  o.Set("permitted", nameArray(env, s.permitted));
  o.Set("inheritable", nameArray(env, s.inheritable));
  o.Set("bounding", nameArray(env, s.bounding));
  o.Set("ambient", nameArray(env, s.ambient));
  return o;
}

std::vector<std::string> stringArray(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, std::string(what) + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (!e.IsString()) throw Napi::TypeError::New(env, std::string(what) + " must be an array of strings");
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CapSets s;
  std::string err = readCapabilities(s);
  if (!err.empty()) throw Napi::Error::New(env, "capabilities: " + err);
  return setsObject(env, s);
}

Napi::Value DropCapabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t keep = 0;
  for (const auto& n : stringArray(env, info[0], "dropCapabilities(keep): keep")) {
    int c = capabilityNumber(n);
    if (c < 0) throw Napi::TypeError::New(env, "dropCapabilities: unknown capability \"" + n + "\"");
    keep |= uint64_t{1} << c;
  }
  DropOutcome out;
  std::string err = dropCapabilities(keep, out);
  if (!err.empty()) throw Napi::Error::New(env, "dropping capabilities: " + err);
  Napi::Object o = Napi::Object::New(env);
  o.Set("before", setsObject(env, out.before));
  o.Set("after", setsObject(env, out.after));
  o.Set("boundingLeft", nameArray(env, out.boundingLeft));
  return o;
}

Napi::Value OpenRawSockets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  Napi::Array errors = Napi::Array::New(env);
  uint32_t n = 0;
  for (int family : {AF_INET, AF_INET6}) {
    const char* key = family == AF_INET ? "ipv4" : "ipv6";
    int fd = openRawSocket(family);
    const std::string label = family == AF_INET ? "IPv4" : "IPv6";
    if (fd < 0) errors.Set(n++, Napi::String::New(env, label + " raw socket: " + std::strerror(-fd)));
    o.Set(key, Napi::Number::New(env, fd < 0 ? -1 : fd));
  }
  o.Set("errors", errors);
  return o;
}

Napi::Value AdoptRawSockets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "adoptRawSockets(ipv4, ipv6): two descriptors (-1: none)");
  int fds[2] = {info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value()};
  for (int i = 0; i < 2; i++) {
    if (fds[i] < 0) continue;
    std::string err = adoptRawSocket(i == 0 ? AF_INET : AF_INET6, fds[i]);
    if (!err.empty()) throw Napi::Error::New(env, "adoptRawSockets: " + err);
  }
  return env.Undefined();
}

Napi::Value Reexec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[3].IsArray())
    throw Napi::TypeError::New(env, "reexec(path, argv, env, keepFds)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::vector<std::string> argv = stringArray(env, info[1], "reexec: argv");
  std::vector<std::string> envv = stringArray(env, info[2], "reexec: env");
  Napi::Array a = info[3].As<Napi::Array>();
  std::vector<int> fds;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value v = a.Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, "reexec: keepFds must be descriptors");
    fds.push_back(v.As<Napi::Number>().Int32Value());
  }
  std::string err = reexec(path, argv, envv, fds);
  throw Napi::Error::New(env, "re-executing: " + err);
}

}  // namespace

void registerCaps(Napi::Env env, Napi::Object exports) {
  exports.Set("capabilities", Napi::Function::New(env, Capabilities, "capabilities"));
  exports.Set("dropCapabilities", Napi::Function::New(env, DropCapabilities, "dropCapabilities"));
  exports.Set("openRawSockets", Napi::Function::New(env, OpenRawSockets, "openRawSockets"));
  exports.Set("adoptRawSockets", Napi::Function::New(env, AdoptRawSockets, "adoptRawSockets"));
  exports.Set("reexec", Napi::Function::New(env, Reexec, "reexec"));
}

}  // namespace nfqwall
