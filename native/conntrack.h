// nfqwall's connection table: tuples in both directions, states, status bits, the TCP state machine, timeouts, NAT
// bindings, connmark, zones and a size limit, after the kernel's nf_conntrack_core.c, nf_conntrack_proto_*.c and
// nf_nat_core.c. No N-API here: queue.cc (receive thread) and addon.cc (JS thread) both call it; every public method
// takes the table's mutex. docs/conntrack-table.md describes the semantics and the integration.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "nat.h"
#include "packet.h"

namespace nfqwall {
namespace ct {

// What xt_conntrack's --ctstate sees.
enum State : uint8_t { kInvalid = 0, kNew = 1, kEstablished = 2, kRelated = 3, kUntracked = 4 };

// IPS_* status bits (include/uapi/linux/netfilter/nf_conntrack_common.h).
constexpr uint32_t kExpected = 1u << 0;
constexpr uint32_t kSeenReply = 1u << 1;
constexpr uint32_t kAssured = 1u << 2;
constexpr uint32_t kConfirmed = 1u << 3;
constexpr uint32_t kSrcNat = 1u << 4;
constexpr uint32_t kDstNat = 1u << 5;
constexpr uint32_t kNatMask = kSrcNat | kDstNat;
constexpr uint32_t kSrcNatDone = 1u << 7;
constexpr uint32_t kDstNatDone = 1u << 8;
constexpr uint32_t kDying = 1u << 9;
constexpr uint32_t kFixedTimeout = 1u << 10;
// IPS_NAT_CLASH (= IPS_UNTRACKED_BIT): a connection that lost the confirmation race with a different NAT result and
// was inserted by nf_ct_resolve_clash_harder under its reply tuple only, for one second.
constexpr uint32_t kNatClash = 1u << 12;

// enum tcp_conntrack.
enum TcpState : uint8_t {
  kTcpNone = 0,
  kTcpSynSent,
  kTcpSynRecv,
  kTcpEstablished,
  kTcpFinWait,
  kTcpCloseWait,
  kTcpLastAck,
  kTcpTimeWait,
  kTcpClose,
  kTcpSynSent2,
  kTcpMax,     // sIV
  kTcpIgnore,  // sIG
};
const char* tcpStateName(uint8_t s);

// NF_INET_* hooks.
enum Hook : uint8_t { kPreRouting = 0, kLocalIn = 1, kForward = 2, kLocalOut = 3, kPostRouting = 4 };

// Timeouts in seconds: the kernel's defaults (nf_conntrack_tcp_timeout_*, _udp_timeout, _udp_timeout_stream,
// _icmp_timeout, _icmpv6_timeout, _generic_timeout, _sctp_timeout_*).
struct Timeouts {
  uint32_t tcp[kTcpMax] = {0, 120, 60, 432000, 120, 60, 30, 120, 10, 120};
  uint32_t udp = 30, udpStream = 120;
  uint32_t icmp = 30;
  uint32_t generic = 600;
  uint32_t sctpNew = 3, sctpEstablished = 210;
  // An entry whose first packet was accepted at its conntrack point but never reached its confirmation point (the
  // kernel routed it nowhere, or the daemon does not queue that hook) is forgotten after this long.
  uint32_t unconfirmed = 10;
};

struct Config {
  uint32_t maxEntries = 262144;  // nf_conntrack_max
  uint32_t buckets = 0;          // 0: the next power of two >= maxEntries
  uint64_t seed = 0x6e66717761;  // hashing and NAT port choice; tests fix it
  bool manualClock = false;      // tests set the time with setNow()
  bool tcpLoose = true;          // nf_conntrack_tcp_loose: pick up connections from a mid-stream ACK
  Timeouts timeouts;
};

// classify() flags.
constexpr uint32_t kCtPoint = 1;  // this trip is the packet's conntrack hook (nf_conntrack_in): track it here
// NFQA_SKB_CSUM_NOTVERIFIED: nobody has checked the transport checksum (not CHECKSUM_UNNECESSARY, not PARTIAL).
constexpr uint32_t kCsumUnverified = 2;

// Classification flags (Classification::flags).
constexpr uint8_t kClsCreated = 1;   // this packet created the (unconfirmed) entry
constexpr uint8_t kClsDrop = 2;      // the table is full: the kernel drops the packet (NF_DROP), counted in `drop`
constexpr uint8_t kClsFragment = 4;  // a non-first fragment: not tracked (no reassembly here)
constexpr uint8_t kClsIgnored = 8;   // TCP: the packet did not move the state machine (sIG)
// The packet holds its entry the way an skb holds its nf_conn: the RST that killed it (nf_ct_kill_acct unhashes the
// entry, the packet keeps it for its later hooks) or a REJECT reply attached to it (nf_ct_attach). Its last trip
// releases the hold.
constexpr uint8_t kClsHolder = 16;

// What the table says about one packet. Copy it around freely; `handle`/`gen` name the entry (0 = none).
struct Classification {
  uint8_t state = kInvalid;
  uint8_t dir = 0;  // 0 ORIGINAL, 1 REPLY
  uint8_t flags = 0;
  uint8_t tcpState = 0;
  uint8_t hook = 0;
  uint16_t zone = 0;
  uint32_t status = 0;
  uint32_t mark = 0;
  uint32_t handle = 0;  // entry index + 1
  uint32_t gen = 0;
  uint32_t fingerprint = 0;
  uint64_t tupleHash = 0;  // of the packet as classified (for the no-entry memo)
};

// What the verdict of one trip records in the table (the engine's connection-table updates).
struct Update {
  bool accept = false;   // the trip's verdict lets the packet continue (NF_ACCEPT, NF_REPEAT, NF_QUEUE)
  bool final = false;    // the trip is the packet's confirmation point (last queued hook on its path)
  bool notrack = false;  // CT --notrack / NOTRACK matched in raw: the packet is UNTRACKED, nothing is created
  bool setMark = false;  // CONNMARK wrote the connection mark
  // The trip sent REJECT replies (nf_send_reset, icmp_send: both nf_ct_attach their packet to this one's connection)
  // before its verdict: a dropped first packet's entry stays attachable until the reply is classified.
  bool replied = false;
  // The trip is POSTROUTING out of the loopback device: the packet comes back in through PREROUTING and INPUT with
  // the connection it has (the kernel keeps a looped skb's nf_conn), so a hold it has on a dying entry lasts.
  bool looped = false;
  uint32_t mark = 0;
  // Manip types (bit 1 << kManipSrc, 1 << kManipDst) whose nat chains ran for this new connection in this trip: each
  // gets the request below if there is one, else the null binding (nf_nat_alloc_null_binding).
  uint8_t natRan = 0;
  uint8_t natCount = 0;
  nat::Request nat[2];
};

struct Stats {
  uint64_t entries = 0, unconfirmed = 0;
  uint64_t found = 0, created = 0, invalid = 0, ignore = 0, untracked = 0, related = 0;
  uint64_t drop = 0, earlyDrop = 0, expired = 0, insertFailed = 0, natFailed = 0, deleted = 0;
  // nf_ct_resolve_clash: a packet whose connection clashed at confirmation and was attached to the winner, or
  // inserted as a reply-only NAT_CLASH entry, instead of dropped (the kernel's clash_resolve).
  uint64_t clashResolve = 0;
  // Removals the kernel counts nowhere (conntrack -S has no field for them), so that every removal moves one counter:
  // created == entries + expired + earlyDrop + deleted + killed + discarded.
  // killed: connections the TCP tracker ended (nf_ct_kill: an RST before any reply, a SYN reopening a TIME_WAIT or
  // CLOSE connection). discarded: unconfirmed entries freed with their packet (dropped, NOTRACK, INVALID for the
  // tracker, or attached to / dropped for another connection at confirmation: nf_ct_resolve_clash, insert_failed).
  uint64_t killed = 0, discarded = 0;
  uint64_t searched = 0;
};

// One entry as `conntrack -L` shows it.
struct EntryView {
  uint32_t handle = 0, gen = 0;
  pkt::Tuple orig{}, reply{};
  uint32_t status = 0, mark = 0;
  uint16_t zone = 0;
  uint8_t tcpState = 0;
  int64_t expiresMs = 0;  // remaining
  uint64_t packets[2] = {0, 0}, bytes[2] = {0, 0};
  uint32_t masqIfindex = 0;
};

class ConnTable {
 public:
  explicit ConnTable(const Config& cfg);
  ConnTable(const ConnTable&) = delete;
  ConnTable& operator=(const ConnTable&) = delete;

  // Looks the packet up. With kCtPoint it is tracked as nf_conntrack_in does: the state machine runs, a new
  // connection gets an unconfirmed entry, an ICMP error is related to the connection it quotes. Without it the packet
  // was tracked at an earlier hook of its path (possibly rewritten there): the entry is found from any of its
  // translated forms and the state reported is the one the packet got at its conntrack point.
  Classification classify(const uint8_t* p, size_t len, uint8_t family, uint8_t hook, uint32_t flags,
                          uint16_t zone = 0);
  // Records the verdict of the trip: confirmation at the final trip, removal of an unconfirmed entry whose first
  // packet was dropped, NAT bindings, connmark, notrack. Returns false when confirmation found another connection
  // with one of the entry's tuples and nf_ct_resolve_clash could not resolve it (the kernel drops such a packet and
  // counts insert_failed: give it NF_DROP). A resolved clash attaches the packet to the winning connection (finish()
  // then translates it by that one) or inserts the entry under its reply tuple only (IPS_NAT_CLASH).
  bool commit(const Classification& c, const Update& u);
  // commit() and, for an accepted packet with `p`, translate() under one lock: an entry the commit releases (a dropped
  // first packet's, one an RST killed) goes only after the packet is translated, as the kernel frees an nf_conn after
  // the last skb holding it. `changed` tells whether bytes changed. The queue's verdict path uses this.
  bool finish(const Classification& c, const Update& u, uint8_t* p, size_t len, uint8_t family, uint8_t hook,
              bool& changed);
  // Installs only the NAT bindings of `u` (natRan/nat) for a new connection, at once: for the engine, when a later
  // table of the same trip must see the rewritten packet (nat OUTPUT before filter OUTPUT). commit() then skips the
  // manip types already bound. Returns true: a binding is always made (nf_nat_setup_info); uniqueness is checked at
  // confirmation.
  bool bind(const Classification& c, const Update& u);
  // Applies the connection's NAT binding for this hook's manip type (PREROUTING/OUTPUT: destination, INPUT/
  // POSTROUTING: source) to the packet in place, including an ICMP error's quoted header. Returns true when bytes
  // changed. Call after commit() of the same trip.
  bool translate(const Classification& c, uint8_t* p, size_t len, uint8_t family, uint8_t hook);

  // Forget MASQUERADE bindings made on an interface (NETDEV_DOWN) or with an address (inetaddr going away).
  size_t flushInterface(uint32_t ifindex);
  size_t flushAddress(uint8_t family, const uint8_t* addr);
  size_t flush();
  // Deletes expired entries, visiting at most `budget` slots from where the last sweep stopped.
  size_t sweep(size_t budget);

  void setNow(int64_t ms);
  int64_t now() const;
  Stats stats();
  std::vector<EntryView> list();
  // The entry a classification names (tuples for --ctorig*/--ctrepl*, expiry), false when it is gone.
  bool view(const Classification& c, EntryView& out);
  // The same by handle and generation (a batch's ctHandle/ctGen columns).
  bool viewAt(uint32_t handle, uint32_t gen, EntryView& out);
  // TCP: the MSS option of the SYN the other direction sent, the largest seen (0: none, or the entry is gone), which
  // bounds the segments of the classified packet's direction (RFC 6691: a sender's data shrinks by the options it
  // adds). Asked only for offloaded packets, whose segments the flow cache sizes by it (fc::skipForward).
  uint16_t peerMss(const Classification& c);
  static std::string format(const EntryView& e);  // one `conntrack -L` line

 private:
  // One connection. Kept small (issue #6: a million of them in well under 512 MiB): the kernel's two tuples and no
  // more (the forms between the manips are derived, midOf), IPv4 addresses inline and IPv6 ones in v6_, 32-bit chain
  // links, times relative to the table's epoch, 32-bit counters whose rare overflow goes to wide_, small fields in
  // bits. docs/conntrack-table.md, "Memory".
  struct Entry {
    // The original (0) and reply (1) tuples, read with tup() and written with setTuples(): one protocol, family and
    // zone for both; the four addresses (src, dst of each) inline when they are IPv4 (`pooled` clear), else addr[0] is
    // their slot in v6_.
    uint32_t addr[4] = {0, 0, 0, 0};
    uint16_t port[4] = {0, 0, 0, 0};  // sport, dport of each
    uint8_t proto = 0, family = 0;
    uint16_t zone = 0;
    int32_t next[4] = {-1, -1, -1, -1};  // chain of key k (tuple 0, tuple 1, midOf 0, midOf 1) in its bucket
    uint32_t mark = 0;
    uint32_t gen = 0;
    uint32_t pending = 0;      // packets classified and not committed yet
    uint32_t pendingOrig = 0;  // those of them in the original direction (not RELATED): they can still confirm it
    uint32_t holdFp = 0;       // the fingerprint of the last holder, so its later hooks find the dying entry
    // The fingerprint of the packet that created the entry: each new packet gets its own unconfirmed entry (the
    // kernel's per-skb nf_conn), and its later hooks find that one even when another packet's entry has its tuple.
    uint32_t ownerFp = 0;
    uint32_t lastFp[2] = {0, 0};
    uint32_t masqIfindex = 0;
    uint32_t timeoutMs = 0;  // to apply at confirmation
    uint32_t packets[2] = {0, 0}, bytes[2] = {0, 0};  // low 32 bits; the high ones in wide_ when `wide`
    int32_t created = 0;     // ms after epoch_
    uint32_t expiresLo = 0;  // ms after epoch_: a signed 40-bit value with expiresHi (expiresOf)
    uint16_t status = 0;  // IPS_* bits (all below 1 << 16)
    uint16_t holds = 0;   // packets in flight holding the entry after it died (kClsHolder)
    uint32_t tcpState : 4;
    uint32_t keys : 4;        // bit k: key k is in the hash
    uint32_t lastState0 : 3;  // the state the last packet of each direction got at its conntrack point
    uint32_t lastState1 : 3;
    uint32_t attachOpen : 1;  // a dropped first packet's REJECT reply may still attach to it (Update::replied)
    uint32_t used : 1;
    uint32_t bysource : 1;
    uint32_t wide : 1;  // wide_ holds the high halves of the counters
    uint32_t gone : 3;  // why a dying entry dies (Gone), counted when it is destroyed
    uint32_t expiresHi : 8;  // bits 32-39 of expires (two's complement)
    uint32_t pooled : 1;     // the addresses are in v6_
    Entry()
        : tcpState(0), keys(0), lastState0(0), lastState1(0), attachOpen(0), used(0), bysource(0), wide(0), gone(0),
          expiresHi(0), pooled(0) {}
    uint8_t lastState(uint8_t d) const { return d ? lastState1 : lastState0; }
    void setLastState(uint8_t d, uint8_t s) {
      if (d)
        lastState1 = s & 7;
      else
        lastState0 = s & 7;
    }
  };
  // The high halves of an entry's counters, for the few that pass 2^32.
  struct Wide {
    uint32_t packets[2] = {0, 0}, bytes[2] = {0, 0};
  };
  // A million connections must fit well under the 512 MiB goal with a large ruleset beside them (bench/memory.ts).
  static_assert(sizeof(Entry) <= 116, "the connection entry grew: see docs/conntrack-table.md, Memory");
  // Why an entry was removed: each removal moves exactly one counter of Stats (created == entries + expired +
  // earlyDrop + deleted + killed + discarded).
  enum Gone : uint8_t { kGoneMarked = 0, kGoneKilled, kGoneDiscarded, kGoneExpired, kGoneEarlyDrop, kGoneDeleted };

  struct MemoSlot {
    uint64_t key = 0;
    uint8_t state = 0;
    int64_t at = 0;
  };

  // What a lookup may return besides live entries: a dying entry the packet with fingerprint *holderFp holds (its
  // later hooks), or a doomed unconfirmed entry whose REJECT reply may still attach (`attach`, reply keys only).
  struct Want {
    const uint32_t* holderFp = nullptr;
    bool attach = false;
    // A conntrack-point lookup (resolve_normal_ct): unconfirmed entries are not in the kernel's hash, so none is found
    // by its original tuple; by its reply tuple one is found only when no confirmed entry has it.
    bool ctPoint = false;
    // A later hook's lookup: the unconfirmed entry this packet created comes first.
    const uint32_t* ownerFp = nullptr;
    // The tuple looked up is the inverse of the packet's (its key's direction is the packet's opposite).
    bool inverted = false;
  };
  // What __nf_conntrack_confirm did with an unconfirmed entry.
  enum class Confirm : uint8_t { kInserted, kAttached, kDropped };

  uint64_t hashTuple(const pkt::Tuple& t) const;
  // rankOut: how good the match is (8 a dying entry this packet holds, 6 the packet's own unconfirmed entry, 4 a
  // confirmed one, 2 another packet's unconfirmed one; +1 when the entry's conntrack point saw this packet), to choose
  // between the lookups of a packet's two forms.
  int32_t find(const pkt::Tuple& t, uint8_t maxKey, uint8_t* keyOut, Want w, int* rankOut = nullptr);
  int32_t find(const pkt::Tuple& t, uint8_t maxKey, uint8_t* keyOut) { return find(t, maxKey, keyOut, Want()); }
  void hold(uint32_t idx, uint32_t fp, Classification& c);
  void doom(uint32_t idx, bool attachable);
  bool commitLocked(const Classification& c, const Update& u, int32_t& reap, int32_t* attachedTo = nullptr);
  Confirm confirmLocked(uint32_t idx, int32_t& winner);
  int32_t findClash(const pkt::Tuple& t, uint32_t self);
  bool canMerge(uint32_t winner, uint32_t loser) const;
  static bool allowClash(const pkt::Tuple& t);
  bool usedTupleNew(const pkt::Tuple& t, uint32_t self);
  bool translateLocked(const Classification& c, uint8_t* p, size_t len, uint8_t family, uint8_t hook);
  void link(uint32_t idx, uint8_t k);
  void unlinkAll(uint32_t idx);
  void rehashKeys(uint32_t idx);
  void destroy(uint32_t idx, uint8_t why);  // why: a Gone; kGoneMarked counts the reason a dying entry carries
  void die(Entry& e, uint8_t why) {  // nf_ct_kill or the end of an unconfirmed entry: out of the hash for lookups
    e.status |= kDying;
    e.gone = why & 7;
  }
  pkt::Tuple tup(const Entry& e, uint8_t d) const;
  void setTuples(Entry& e, const pkt::Tuple& orig, const pkt::Tuple& reply);
  void freeAddrs(Entry& e);
  // Whether tuple d of e is t, without building it when the ports or protocol already differ.
  bool tupIs(const Entry& e, uint8_t d, const pkt::Tuple& t) const {
    return e.port[2 * d] == t.sport && e.port[2 * d + 1] == t.dport && e.proto == t.proto && tup(e, d) == t;
  }
  pkt::Tuple keyOf(const Entry& e, uint8_t k) const { return k < 2 ? tup(e, k) : midOf(e, uint8_t(k - 2)); }
  // The form of direction d after its destination manip, before its source manip (what FORWARD sees).
  pkt::Tuple midOf(const Entry& e, uint8_t d) const;
  int64_t expiresOf(const Entry& e) const {
    return epoch_ + int64_t(int8_t(uint8_t(e.expiresHi))) * 4294967296LL + int64_t(e.expiresLo);
  }
  void setExpires(Entry& e, int64_t ms);
  int64_t createdOf(const Entry& e) const { return epoch_ + e.created; }
  void rebase(int64_t epoch);
  void addCount(uint32_t idx, uint8_t dir, uint64_t packets, uint64_t bytes);
  uint64_t packetsOf(uint32_t idx, uint8_t dir) const;
  uint64_t bytesOf(uint32_t idx, uint8_t dir) const;
  void unconfirmedGone(const Entry& e);  // an unconfirmed entry is confirmed or destroyed
  bool expired(const Entry& e, int64_t now) const { return expiresOf(e) <= now; }
  int32_t allocate(const pkt::Tuple& orig, int64_t now);
  bool earlyDrop(const pkt::Tuple& t);
  size_t sweepLocked(size_t budget, int64_t now);
  void fill(Classification& c, uint32_t idx, uint8_t dir, uint8_t state);
  uint8_t tcpTrack(Entry& e, uint8_t dir, const pkt::Parsed& h, uint32_t& timeoutMs, bool& kill, bool& ignored);
  uint32_t refresh(Entry& e, uint8_t dir, const pkt::Parsed& h, bool& invalid, bool& kill, bool& ignored);
  bool newAllowed(const pkt::Parsed& h) const;
  bool relate(const uint8_t* p, size_t len, const pkt::Parsed& h, bool ctPoint, Classification& c);
  bool setupNat(uint32_t idx, const nat::Request* r, uint8_t manip);
  EntryView viewOf(uint32_t idx) const;
  bool bindLocked(uint32_t idx, const Classification& c, const Update& u);
  bool appropriateSrc(const pkt::Tuple& orig, pkt::Tuple& out, const nat::Request& r, uint32_t self);
  uint64_t srcKey(const pkt::Tuple& t) const;
  bool usedTuple(const pkt::Tuple& t, uint32_t self);
  void pickAddress(pkt::Tuple& t, const nat::Request& r, uint8_t manip, const pkt::Tuple& orig);
  void uniquePort(pkt::Tuple& t, const nat::Request& r, uint8_t manip, uint32_t self);
  uint32_t random32();
  void memoPut(uint64_t key, uint8_t state, int64_t now);
  bool memoGet(uint64_t key, uint8_t& state, int64_t now);
  Entry* live(const Classification& c);
  int64_t nowLocked() const;
  void tick();

  Config cfg_;
  std::mutex mu_;
  std::vector<Entry> entries_;
  // Beside each entry, not in it (the Entry keeps its size): the MSS option each direction's SYN announced, the
  // largest seen (low 16 bits: original, high 16: reply; 0: none). peerMss().
  std::vector<uint32_t> mss_;
  std::vector<uint32_t> free_;
  std::vector<int32_t> buckets_;  // node = idx * 4 + key
  std::unordered_map<uint32_t, Wide> wide_;
  // The addresses of entries whose tuples are not plain IPv4: src and dst of tuple 0, then of tuple 1.
  std::vector<std::array<uint8_t, 64>> v6_;
  std::vector<uint32_t> v6Free_;
  // Entries' times are ms after this; tick() moves it when the clock gets far from it (rebase).
  int64_t epoch_ = 0;
  uint64_t mask_ = 0;
  uint64_t count_ = 0, unconfirmed_ = 0;
  size_t sweepCursor_ = 0;
  uint32_t classifyTick_ = 0;
  int64_t manualNow_ = 0;
  int64_t cur_ = 0;
  uint64_t rng_;
  std::vector<MemoSlot> memo_;
  // Unconfirmed entries by the fingerprint of the packet that created them (slot = fingerprint mod kOwnerSlots), so a
  // later hook's lookup knows when no packet-owned entry can beat the confirmed one it found.
  static constexpr uint32_t kOwnerSlots = 1024;
  std::vector<uint32_t> owners_ = std::vector<uint32_t>(kOwnerSlots, 0);
  // nf_nat_bysource: source-NATed connections by original source (address, port, protocol, zone), so a client keeps
  // its mapping across connections (find_appropriate_src).
  std::unordered_multimap<uint64_t, uint32_t> bysource_;
  Stats st_;
};

// ---- helpers for the receive thread (queue.cc) ----

// Whether a trip at `hook` is the packet's conntrack point, for a daemon that queues the hooks in `queued`
// (bit 1 << hook) and, with the table in use, always queues PREROUTING, OUTPUT, INPUT and POSTROUTING: then the
// conntrack points are PREROUTING and OUTPUT, as in the kernel. Without PREROUTING queued, INPUT/FORWARD take over for
// received packets; without OUTPUT, POSTROUTING for local ones (inIf == 0 there).
// A packet received on the loopback device (ifindex 1 in every namespace) was sent by this host and tracked at OUTPUT
// (or POSTROUTING): nf_conntrack_in leaves a looped skb's connection alone, so it is no conntrack point there.
constexpr uint32_t kLoopbackIfindex = 1;

inline uint32_t ctPointFlags(uint8_t hook, uint32_t inIf, uint32_t queued) {
  auto q = [queued](uint8_t h) { return (queued & (1u << h)) != 0; };
  const bool looped = inIf == kLoopbackIfindex && (q(kLocalOut) || q(kPostRouting));
  switch (hook) {
    case kPreRouting:
      return looped ? 0 : kCtPoint;
    case kLocalOut:
      return kCtPoint;
    case kLocalIn:
      return (q(kPreRouting) || looped) ? 0 : kCtPoint;
    case kForward:
      return q(kPreRouting) ? 0 : kCtPoint;
    default:  // POSTROUTING
      if (inIf == 0) return q(kLocalOut) ? 0 : kCtPoint;
      return (q(kPreRouting) || q(kForward)) ? 0 : kCtPoint;
  }
}

// Whether a trip at `hook` is the packet's confirmation point (ipv4_confirm: the last hook, INPUT or POSTROUTING).
inline bool isFinalTrip(uint8_t hook, uint32_t queued) {
  auto q = [queued](uint8_t h) { return (queued & (1u << h)) != 0; };
  switch (hook) {
    case kLocalIn:
    case kPostRouting:
      return true;
    case kForward:
      return !q(kPostRouting);
    default:  // PREROUTING, OUTPUT: final only when nothing later is queued
      return !q(kLocalIn) && !q(kForward) && !q(kPostRouting);
  }
}

// Per-packet columns the receive thread attaches to a batch before JavaScript sees it.
struct BatchColumns {
  std::vector<Classification> cls;
  std::vector<uint8_t> state, dir;
  std::vector<uint32_t> status, mark, handle, gen;
  void resize(size_t n) {
    cls.resize(n);
    gen.resize(n);
    state.resize(n);
    dir.resize(n);
    status.resize(n);
    mark.resize(n);
    handle.resize(n);
  }
};

// Classifies the n packets data[offsets[i], offsets[i+1]) (ethertype protos[i], hook hooks[i], input interface
// inIf[i]; pktFlags[i] & csumUnverifiedBit when the kernel has not verified its checksum) into `out`.
void classifyBatch(ConnTable& t, uint32_t n, const uint8_t* data, const uint32_t* offsets, const uint16_t* protos,
                   const uint8_t* hooks, const uint32_t* inIf, const uint8_t* pktFlags, uint8_t csumUnverifiedBit,
                   uint32_t queued, BatchColumns& out);

pkt::Tuple invert(const pkt::Tuple& t);
// t with the `manip` part taken from target (as nf_nat_manip_pkt writes it).
pkt::Tuple manipTuple(const pkt::Tuple& t, const pkt::Tuple& target, uint8_t manip);

}  // namespace ct
}  // namespace nfqwall
