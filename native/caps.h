#pragma once
// Capabilities of the daemon (docs/robustness.md, Privilege): read them, drop all but CAP_NET_ADMIN, re-execute so
// that every thread starts with what is left. Raw syscalls (capget/capset/prctl), no libcap.
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nfqwall {

struct CapSets {
  uint64_t effective = 0, permitted = 0, inheritable = 0, bounding = 0, ambient = 0;
};

// The calling thread's sets; "" or an error message.
std::string readCapabilities(CapSets& out);

// "net_admin", "cap_net_admin" or "CAP_NET_ADMIN" -> 12; -1 when unknown.
int capabilityNumber(const std::string& name);
// 12 -> "net_admin"; a number this table does not know -> "cap_41".
std::string capabilityName(int cap);

struct DropOutcome {
  CapSets before, after;
  // Bounding-set entries that could not go (no CAP_SETPCAP): a non-root process cannot regain them anyway.
  uint64_t boundingLeft = 0;
};

// Lowers the calling thread's effective, permitted and inheritable sets to `keep` (what of it is permitted), the
// ambient set to the same, and the bounding set to `keep` when CAP_SETPCAP allows. "" or the failing step and errno.
std::string dropCapabilities(uint64_t keep, DropOutcome& out);

// execve(path, argv, env) with `keepFds` inherited (FD_CLOEXEC cleared). Returns only on failure, with the reason.
std::string reexec(const std::string& path, const std::vector<std::string>& argv, const std::vector<std::string>& env,
                   const std::vector<int>& keepFds);

// capabilities(), dropCapabilities(), openRawSockets(), adoptRawSockets(), reexec() of native/index.d.ts.
void registerCaps(Napi::Env env, Napi::Object exports);

}  // namespace nfqwall
