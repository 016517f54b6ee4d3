// One bound NFQUEUE: the netlink socket, its configuration, the receive thread, batching, verdicts and counters.
// No N-API here: addon.cc bridges a Queue to JavaScript through the Handoff callback.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "conntrack.h"
#include "flowcache.h"
#include "late_budget.h"
#include "matcher.h"

struct mnl_socket;
struct nlmsghdr;

namespace nfqwall {

struct QueueConfig {
  uint16_t queue = 0;
  uint32_t copyRange = 0xffff;
  uint32_t maxLen = 4096;
  uint32_t rcvbuf = 8u << 20;
  bool failOpen = false;
  bool gso = true;
  bool uidGid = true;
  uint32_t maxPendingBatches = 64;
  uint32_t overloadVerdict = 0;  // NF_DROP or NF_ACCEPT
  uint32_t maxBatch = 256;
  // The connection table (docs/conntrack-table.md), shared by every queue of the daemon; null: no tracking at all.
  std::shared_ptr<ct::ConnTable> table;
  // Bit 1 << NF_INET_* for every hook the daemon queues: decides conntrack and confirmation points.
  uint32_t queuedHooks = 0;
  // The flow cache (docs/flow-cache.md), shared by every queue of the daemon; needs `table`. Null: every packet goes
  // to JavaScript.
  std::shared_ptr<fc::FlowCache> cache;
  // The rule matcher (native/matcher.h), shared by every queue of the daemon; needs `cache`, whose ordering it keeps.
  // Null: packets the cache does not decide go to JavaScript.
  std::shared_ptr<mt::Matcher> matcher;
  // Packets parked behind their flow's packets in JavaScript beyond which the lot empties into JavaScript.
  uint32_t parkLimit = 4096;
  // No receive thread of its own: the thread of the queue that drive()s it serves it, ahead of its own packets.
  bool driven = false;
  // A queue that drives a late queue: the budget its late queue shares with the daemon's other pairs (null: a budget
  // of its own).
  std::shared_ptr<LateBudget> lateBudget;
};

// Bits of Batch::flags, as PACKET_FLAG_* in src/native.ts.
constexpr uint8_t kFlagCsumNotReady = 1;
constexpr uint8_t kFlagGso = 2;
constexpr uint8_t kFlagTruncated = 4;
constexpr uint8_t kFlagCsumNotVerified = 8;  // NFQA_SKB_CSUM_NOTVERIFIED

// Packets of one wakeup, in columns. Reused: clear() keeps every vector's capacity.
struct Batch {
  uint64_t seq = 0;
  uint32_t count = 0;
  std::vector<uint32_t> ids, marks, inIf, outIf, physInIf, physOutIf, uids, gids, origLens, offsets;
  std::vector<uint16_t> protos;
  std::vector<uint8_t> hooks, flags, hwLens, hwAddrs, data;
  // With a connection table: one classification per packet, made on the receive thread before the handoff.
  ct::BatchColumns ct;
  bool classified = false;
  // With a flow cache: one probe per packet, made after classification; waitCounted once the cache counts the
  // batch's tracked packets as waiting in JavaScript (verdicting the batch must release them).
  std::vector<fc::Probe> probes;
  bool waitCounted = false;

  void reserve(uint32_t packets);
  void clear();
};

// The kernel's line for one queue in /proc/net/netfilter/nfnetlink_queue.
struct KernelQueueInfo {
  bool found = false;
  uint64_t total = 0, dropped = 0, userDropped = 0, idSequence = 0;
};

struct Counters {
  std::atomic<uint64_t> received{0}, accepted{0}, dropped{0}, bytes{0}, batches{0}, errors{0}, enobufs{0},
      overload{0}, defaulted{0};
  // Packets the connection table made NF_DROP: table full (kClsDrop), no unique NAT tuple, or a truncated copy that
  // NAT would have had to rewrite.
  std::atomic<uint64_t> ctDropped{0};
  // Packets verdicted from the flow cache on the receive thread.
  std::atomic<uint64_t> cached{0};
  // Packets the rule matcher decided on the receive thread.
  std::atomic<uint64_t> matched{0};
  // NFQNL_MSG_VERDICT_BATCH messages sent: each answered a whole batch of the receive thread's decisions at once.
  std::atomic<uint64_t> batchVerdicts{0};
  // Times the receive thread left this queue unread because the late queues had no room for another batch.
  std::atomic<uint64_t> lateWaits{0};
};

// One packet's answer, as addon.cc reads it from JavaScript.
struct PacketVerdict {
  uint32_t verdict = 0;
  bool setMark = false;
  uint32_t mark = 0;
  const uint8_t* payload = nullptr;  // null: keep the packet
  uint32_t payloadLen = 0;
};

class Queue {
 public:
  // Hands a pending batch (by seq) to JavaScript. Returns false when it cannot (full, closing): the receive thread then
  // gives the batch the overload verdict. Called on the receive thread; must not block or throw.
  using Handoff = std::function<bool(uint64_t seq)>;

  // Binds and configures the queue; throws std::runtime_error with a message for the user.
  explicit Queue(const QueueConfig& cfg);
  ~Queue();
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  // Starts the receive thread; a driven queue only takes the handoff, its driver's thread serving it.
  void start(Handoff handoff);
  // Before start(): this queue's thread also serves `late` (bound with `driven`), the queue of the hooks a packet
  // reaches after this one's (docs/flow-cache.md, Late queue). It drains `late` before each of its own batches, so a
  // flood fills this queue and drops there, at its entrance, not packets already through a hook; and it sends the
  // barriers on `late`'s socket, where the packets its verdicts send on are queued again. Closing either closes both.
  void drive(std::shared_ptr<Queue> late);

  // The pending batch `seq`, or null. Only the thread that verdicts (JavaScript's) may use the result: nobody else
  // removes a batch that JavaScript was handed.
  const Batch* pendingBatch(uint64_t seq);
  // Takes the pending batch out of the table (the caller then verdicts it). Null when not pending.
  std::unique_ptr<Batch> takePending(uint64_t seq);
  // Sends one verdict per packet of `b` (v has b.count entries) and recycles the batch. Returns false on a send error.
  // With a table, `ct` (b.count entries, or null for no updates) carries each packet's connection-table update; the
  // table's outcome may turn a verdict into NF_DROP and v[i].payload into the NAT-translated bytes. With a flow
  // cache, `cachePaths` (b.count entries or null: pathId + 1, or 0) asks to store the decisions of `cacheGeneration`.
  bool verdictBatch(std::unique_ptr<Batch> b, PacketVerdict* v, const ct::Update* ct = nullptr,
                    const uint32_t* cachePaths = nullptr, uint32_t cacheGeneration = 0);
  // Gives every packet of `b` the overload verdict, counted as `defaulted`, and recycles the batch.
  void defaultBatch(std::unique_ptr<Batch> b);

  // Stops and joins the thread, defaults every pending batch, unbinds and closes. Idempotent.
  void close();
  bool closed() const { return closed_; }
  // Another queue's thread serves this one (drive()); `config().driven` says only that it was made to be.
  bool hasDriver() const { return driver_.load() != nullptr; }

  const QueueConfig& config() const { return cfg_; }
  const Counters& counters() const { return counters_; }
  size_t pendingCount();
  uint64_t threadIdleMs() const;
  KernelQueueInfo kernelInfo() const;

 private:
  void run();
  // Reads and dispatches at most `maxBatches` batches (fewer when the socket runs dry). A late queue is drained by
  // its `driver`, whose budget learns when the socket was found empty.
  void drain(int maxBatches, Queue* driver = nullptr);
  // One read of this queue with a late queue: when the late queues have room for it (false: none now).
  bool drainWithinBudget();
  // Looks at the lot again (scanLot), when it holds packets: at once when forced or when something it waits for
  // happened, else at most every kHoldRecheckMs.
  void lookAtLot();
  bool lotWaiting() const { return lot_ && lot_->count; }
  void recoverBatch();
  // Runs a receive-thread step (drain, dispatch) of this queue. Nothing may escape that thread: an allocation failure
  // costs the batch the overload verdict (recoverBatch), not the process.
  template <typename Step>
  void recovering(Step step) {
    try {
      step();
    } catch (const std::exception&) {
      counters_.errors++;
      recoverBatch();
    }
  }
  void dispatch();
  void parseBuffer(const char* buf, size_t len);
  void addPacket(const ::nlmsghdr* nlh);
  bool sendVerdicts(const Batch& b, const PacketVerdict* v, uint32_t sameVerdict, std::vector<char>& out);
  bool sendVerdicts(const uint32_t* ids, uint32_t n, const PacketVerdict* v, uint32_t sameVerdict,
                    std::vector<char>& out);
  bool sendAll(const char* buf, size_t len);
  std::unique_ptr<Batch> acquire();
  void recycle(std::unique_ptr<Batch> b);
  void countVerdict(uint32_t verdict);
  void classify(Batch& b);
  // Commits every packet of `b` with one verdict (overload, close): dropped first packets leave no entry.
  void commitSame(Batch& b, uint32_t verdict, std::vector<PacketVerdict>& pv);
  void applyTable(Batch& b, PacketVerdict* v, const ct::Update* cu);
  void finishTranslated(const Batch& b, uint32_t i, PacketVerdict& v, uint8_t* p, size_t len);
  // The flow cache's part of dispatch(): verdicts the batch's hits at once, parks the packets that must wait behind
  // their flow's packets in JavaScript, and leaves only the rest in the batch.
  void decideCached(Batch& b);
  // Looks the parked packets up again once JavaScript verdicted something (or all of them, `force`, when the lot is
  // full): hits are verdicted, the ones JavaScript must decide are handed over, the rest stay parked.
  void scanLot(bool force);
  void verdictHits(Batch& b);
  // The k verdicts in hitIds_/hitPv_ as one NFQNL_MSG_VERDICT_BATCH, when that reaches exactly those packets. False:
  // not possible, nothing sent.
  bool sendHitsAsBatch(uint32_t k);
  // After this thread's hits went out: a barrier for the flows held back from skipping (FlowCache::beginBarrier), one
  // at a time, again when its acknowledgement has not come in kBarrierRetryMs (lost to a full socket).
  void sendBarrier();
  void barrierAcked(uint32_t barrier);
  // Runs the matcher on the batch's tracked packets the cache cannot decide; marks the decided ones Probe::native.
  void matchBatch(Batch& b, uint32_t skipMark);
  // After the lookup: commits the counters of the native decisions that became hits; the ones parked are decided
  // again when the lot is looked at, the rest go to JavaScript.
  void commitMatched(Batch& b);
  // Keeps the rows that stay: the parked ones (keepParked) or the ones for JavaScript.
  void compactRows(Batch& b, bool keepParked);
  void handOff(std::unique_ptr<Batch> b);
  // The batch's packets stop waiting in JavaScript (after their verdicts went out), storing decisions when asked.
  void releaseWaiting(Batch& b, const fc::Decision* store = nullptr, const uint8_t* stored = nullptr,
                      uint32_t generation = 0);

  static constexpr bool accepts(uint32_t verdict) { return (verdict & 0xff) != 0; }

  QueueConfig cfg_;
  struct mnl_socket* nl_ = nullptr;
  int fd_ = -1;
  int stopFd_ = -1;
  uint32_t portid_ = 0;
  uint32_t cfgSeq_ = 0;
  int cfgError_ = 1;  // 1: no answer yet; 0: ok; <0: -errno

  Handoff handoff_;
  std::thread thread_;
  std::shared_ptr<Queue> late_;          // the queue this one's thread also serves (drive())
  LatePair latePair_;                    // it and late_, in cfg_.lateBudget
  std::atomic<Queue*> driver_{nullptr};  // the queue whose thread serves this one, until it closes
  bool attached_ = false;                // counted in the flow cache's queues (one per receive thread)
  bool started_ = false;
  bool closed_ = false;
  std::mutex closeMutex_;

  // Receive thread only: kRecvMsgs slots of one packet message each, and recvmmsg's headers for them.
  std::unique_ptr<char[]> recvBufs_;
  std::vector<iovec> recvIov_;
  std::vector<mmsghdr> recvMsgs_;
  // Receive thread only: a packet message that could not be read or a verdict the kernel refused. The kernel may then
  // hold a packet nobody will answer, which a batch verdict would take with it: no batch verdicts from then on.
  bool unaccounted_ = false;
  std::vector<char> threadSendBuf_; // receive thread only (overload verdicts)
  std::vector<char> jsSendBuf_;     // caller of verdictBatch/defaultBatch (the JS thread)
  std::vector<uint8_t> natScratch_; // verdictBatch: JS payloads translated by NAT (the JS thread)
  std::vector<PacketVerdict> threadPv_;  // commitSame's verdicts on the receive thread (overload)
  std::vector<PacketVerdict> jsPv_;      // commitSame's verdicts on the verdicting thread (close, a throwing onBatch)
  std::unique_ptr<Batch> current_;  // receive thread only (and the constructor, before it starts)
  uint32_t barrier_ = 0;            // receive thread only: the barrier in flight (0: none), sent at barrierMs_
  int64_t barrierMs_ = 0;
  // Flow cache scratch: the receive thread's hits, the verdicting thread's decisions to store.
  std::vector<fc::Decision> hitDec_;
  std::vector<PacketVerdict> hitPv_;
  std::vector<uint32_t> hitIds_;
  // The matcher's decisions by packet (receive thread only), and the programs the batch ran on.
  std::vector<mt::Result> matchRes_;
  std::vector<uint8_t> matched_;  // the matcher decided packet i (Probe::native before the lookup)
  std::shared_ptr<mt::Program> matchProg_[2];
  std::vector<fc::Decision> storeDec_;
  std::vector<uint8_t> storeWanted_;
  // Packets whose cached decision applies but whose flow has packets in JavaScript (receive thread only): they wait
  // here instead of joining them in JavaScript, in arrival order, and are looked up again after the next release.
  std::unique_ptr<Batch> lot_;
  std::vector<uint32_t> lotCount_;  // parked packets per flow (FlowCache::flowIndex)
  std::vector<uint32_t> lotPre_;    // of those, the ones parked at PREROUTING
  uint64_t lotReleases_ = 0;
  uint64_t lotCleared_ = 0;  // FlowCache::transitsCleared() at the last look at the lot
  int64_t lotLookMs_ = 0;    // when it was (nowMs)

  std::mutex tableMutex_;
  std::map<uint64_t, std::unique_ptr<Batch>> pending_;
  std::vector<std::unique_ptr<Batch>> pool_;
  uint64_t nextSeq_ = 1;

  Counters counters_;
  std::atomic<int64_t> lastLoopMs_{0};
};

}  // namespace nfqwall
