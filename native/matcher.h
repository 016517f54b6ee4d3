// The native rule matcher (docs/matcher.md): runs the program src/compile/program.ts compiles from a ruleset, for one
// packet at one hook, through every table of that hook in the kernel's order, and decides it as Engine.decide would,
// or says it cannot (an extension the program marks slow, an effect it does not repeat): that packet then goes to
// JavaScript for this hook, whole. A program is immutable once loaded; its rule counters are atomics that receive
// threads add to after a decision is committed and JavaScript drains. No N-API here: matcher_napi.cc and queue.cc
// call it, and the fuzz target too. Nothing allocates per packet.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "nat.h"
#include "program_words.h"

namespace nfqwall {
namespace mt {

// The most counters one decision may increment (rules matched and policies reached, every table of the hook): a
// longer path goes to JavaScript.
constexpr uint32_t kMaxPath = 64;

// One packet at one hook, as classified by the connection table.
struct Input {
  const uint8_t* data = nullptr;  // from the IP header on
  uint32_t len = 0;               // bytes at data
  uint32_t wireLen = 0;           // the packet's length (more than len when the copy was cut short)
  uint8_t family = 4;             // 4 or 6
  uint8_t hook = 0;               // NF_INET_*
  uint32_t mark = 0;
  uint32_t inIf = 0, outIf = 0, physInIf = 0, physOutIf = 0;  // ifindexes, 0: none
  // The connection as the queue classified it (ct::Classification); tracked false: the queue tracks nothing.
  bool tracked = false;
  uint8_t ctState = 0;  // ct::State
  uint8_t ctDir = 0;    // 0 ORIGINAL, 1 REPLY
  uint32_t ctStatus = 0;
  uint32_t ctMark = 0;
  uint16_t zone = 0;
  // Added: where `-m statistic --mode random` draws its 31-bit numbers (the kernel's prandom_u32() & 0x7fffffff, the
  // engine's ctx.random31()). Null: a per-thread xorshift generator. Called once per statistic op evaluated.
  uint32_t (*random31)(void* ctx) = nullptr;
  void* randomCtx = nullptr;
  // Added: the caller commits Result::nat[] (copies it into ct::Update). False: a trip whose NAT target binds goes to
  // JavaScript, as before the matcher knew NAT targets; a caller that drops the requests must leave it false.
  bool takesNat = false;
};

// A decision: what Engine.decide's Decision says, for the parts the matcher repeats.
struct Result {
  uint32_t verdict = 0;  // NF_ACCEPT, NF_DROP, or NF_QUEUE | queue << 16
  uint32_t mark = 0;     // the packet mark after the hook
  bool setMark = false;  // mark differs from Input::mark
  uint8_t natRan = 0;    // bit 1 << nat::kManipSrc / kManipDst: the nat chains ran and bound nothing (null binding)
  // Added: Decision.flowStable (docs/flow-cache.md): everything evaluated was flow-stable and nat did not run, so every
  // packet of the connection with the same cache key gets this decision.
  bool flowStable = false;
  uint32_t pathLen = 0;
  uint32_t path[kMaxPath];  // counter ids incremented, in order (Decision.counted)
  // Added: Decision.ct.nat, the binding requests of a NAT target (DNAT, SNAT, MASQUERADE, REDIRECT, NETMAP) in the
  // connection table's form, as nativeNatRequest + parseNatRequest make them (masqIfindex: Input::outIf). At most one
  // per trip (one nat table per hook); a request's manip is its chains' natRan bit, already set in natRan.
  uint8_t natCount = 0;
  nat::Request nat[2];
};

// What the host looks like to the matches that ask (interface names, addrtype). Immutable once built; replaced whole.
struct Host {
  // Interface names by ifindex (empty: unknown), NUL-padded as the kernel's IFNAMSIZ names.
  std::vector<std::array<char, 16>> names;
  // The host's own addresses (addrtype LOCAL), sorted: IPv4 as host-order numbers, IPv6 as 16 bytes.
  std::vector<uint32_t> local4;
  std::vector<std::array<uint8_t, 16>> local6;
  // Added: the other routes addrtype's LOCAL depends on (a LOCAL prefix such as 127.0.0.0/8, a BROADCAST or other
  // route inside one), as src/engine/host.ts's longest-prefix lookup sees them. Sorted by prefix, longest first; an
  // address in local4/local6 is LOCAL before any of these is asked. IPv4 addresses use the first 4 bytes.
  struct Net {
    std::array<uint8_t, 16> addr{};
    uint8_t prefix = 0;
    bool local = false;
  };
  std::vector<Net> nets4, nets6;
  // Added: every interface's primary address by ifindex (HostView.primaryAddress: the first address `ip addr` lists),
  // for MASQUERADE (out interface) and REDIRECT (in interface). primariesKnown false: those targets go to JavaScript;
  // true: an ifindex with a name but no entry (has false) has no address of that family, and the target drops.
  struct Primary {
    bool has = false;
    std::array<uint8_t, 16> addr{};  // IPv4 in the first 4 bytes
  };
  bool primariesKnown = false;
  std::vector<Primary> primary4, primary6;
};

class Program {
 public:
  // Checks the words completely (every offset, count and chain reference in range, jump depth within the stack) and
  // builds the indexes. Null with `err` set when the words are not a valid program.
  static std::shared_ptr<Program> load(const uint32_t* words, size_t n, std::string& err);
  // The same without a copy: the `n` words from `offset` of `block` stay sealed while the program lives.
  static std::shared_ptr<Program> load(std::shared_ptr<WordBlock> block, size_t offset, size_t n, std::string& err);
  ~Program();

  uint8_t family() const { return family_; }
  uint32_t counterCount() const { return uint32_t(packets_.size()); }

  // Decides `in` into `out` and returns true, or returns false (slow path). Counts nothing: the caller commits.
  bool run(const Input& in, const Host& host, Result& out) const;
  // Adds one packet of wireLen bytes to every counter of a committed decision's path.
  void count(const Result& r, uint32_t wireLen);
  // Packets and bytes per counter id since the last drain, zeroed as read; only ids counted since are appended.
  struct Hits {
    uint32_t id;
    uint64_t packets, bytes;
  };
  void drain(std::vector<Hits>& out);

  // The loaded form (matcher.cc); public so the interpreter there can name it.
  struct Impl;

 private:
  Program() = default;
  static std::shared_ptr<Program> build(std::unique_ptr<Impl> impl, std::string& err);
  std::unique_ptr<Impl> impl_;
  uint8_t family_ = 4;
  std::vector<std::atomic<uint64_t>> packets_, bytes_;
  // A bit per counter set after a count, cleared by the drain that takes it: a drain reads the counters counted since
  // the last one, not all of them (1.1 million at 100,000 services, and JavaScript drains after every batch).
  std::vector<std::atomic<uint64_t>> dirty_;
};

// What the queues share: the programs in force (one per family), the host view, and the programs replaced but not yet
// drained for the last time. Swaps are single atomic stores; a receive thread takes the program and the host once per
// batch, so a batch runs on one program throughout, and an old program lives while a batch or JavaScript holds it.
class Matcher {
 public:
  // Puts `p` in force for its family (null: none, every packet of that family goes to JavaScript) under the serial
  // JavaScript gave it; the program it replaces is drained until nobody holds it any more.
  void setProgram(uint8_t family, std::shared_ptr<Program> p, uint32_t serial);
  std::shared_ptr<Program> program(uint8_t family) const;
  // The same, with the serial it was put in force under (0 and null when none is).
  std::shared_ptr<Program> program(uint8_t family, uint32_t& serial) const;
  void setHost(std::shared_ptr<const Host> h);
  std::shared_ptr<const Host> host() const;
  void setEnabled(bool on) { enabled_.store(on, std::memory_order_release); }
  bool enabled() const { return enabled_.load(std::memory_order_acquire); }

  struct Drained {
    uint32_t serial;
    Program::Hits hits;
  };
  // Every program's hits since the last drain. `done`: serials of replaced programs drained for the last time (nobody
  // else held them), whose counters JavaScript may forget.
  void drain(std::vector<Drained>& out, std::vector<uint32_t>& done);

  // Receive-thread statistics: packets the matcher decided (committed), and packets it sent to JavaScript.
  std::atomic<uint64_t> decided{0}, slow{0};

 private:
  struct Entry {
    std::shared_ptr<Program> program;
    uint32_t serial = 0;
  };
  mutable std::mutex mu_;
  Entry v4_, v6_;
  std::vector<Entry> retired_;
  std::shared_ptr<const Host> host_ = std::make_shared<Host>();
  std::atomic<bool> enabled_{true};
};

}  // namespace mt
}  // namespace nfqwall
