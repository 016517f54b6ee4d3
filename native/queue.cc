#include "queue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

extern "C" {
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
}
#include <libnetfilter_queue/libnetfilter_queue.h>

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

namespace nfqwall {

namespace {

// One sendmsg carries at most this much; a larger verdict batch is split.
constexpr size_t kSendLimit = 256 * 1024;
// Room for one more message with the largest payload an attribute can carry.
constexpr size_t kSendBufSize = kSendLimit + 0x10000 + 1024;
// A packet message carries at most 0xffff payload bytes plus a few hundred bytes of attributes.
constexpr size_t kRecvBufSize = 0x10000 + 16384;
// Packet messages taken per recvmmsg. Under a flood a drain reads 10-20 at a time, and a recv each cost a syscall's
// entry and exit (some 180 ns here) per packet, more than the flow cache's own work on it.
constexpr unsigned kRecvMsgs = 16;
// Batches dispatched in one drain before the thread looks at its stop signal again.
constexpr int kMaxBatchesPerDrain = 64;
// Parked bytes (flow cache) beyond which the lot is looked up without parking, as beyond QueueConfig::parkLimit
// packets: what still cannot be decided from the cache goes to JavaScript, in order, behind its flow's packets there.
constexpr size_t kLotBytes = 16u << 20;
// A barrier whose acknowledgement has not come in this long was lost (ENOBUFS): another may go.
constexpr int64_t kBarrierRetryMs = 50;

// Room for `rows` more rows and `bytes` more packet bytes in every column, so appendRow() cannot throw.
void reserveRows(Batch& b, size_t rows, size_t bytes) {
  size_t n = b.count + rows;
  for (auto* v : {&b.ids, &b.marks, &b.inIf, &b.outIf, &b.physInIf, &b.physOutIf, &b.uids, &b.gids, &b.origLens,
                  &b.ct.status, &b.ct.mark, &b.ct.handle, &b.ct.gen})
    v->reserve(n);
  b.offsets.reserve(n + 1);
  b.protos.reserve(n);
  for (auto* v : {&b.hooks, &b.flags, &b.hwLens, &b.ct.state, &b.ct.dir}) v->reserve(n);
  b.hwAddrs.reserve(n * 6);
  b.data.reserve(b.data.size() + bytes);
  b.ct.cls.reserve(n);
  b.probes.reserve(n);
}

// Appends row i of `from` (classified) to `to`, every column.
void appendRow(Batch& to, const Batch& from, uint32_t i) {
  to.ids.push_back(from.ids[i]);
  to.marks.push_back(from.marks[i]);
  to.inIf.push_back(from.inIf[i]);
  to.outIf.push_back(from.outIf[i]);
  to.physInIf.push_back(from.physInIf[i]);
  to.physOutIf.push_back(from.physOutIf[i]);
  to.uids.push_back(from.uids[i]);
  to.gids.push_back(from.gids[i]);
  to.origLens.push_back(from.origLens[i]);
  to.protos.push_back(from.protos[i]);
  to.hooks.push_back(from.hooks[i]);
  to.flags.push_back(from.flags[i]);
  to.hwLens.push_back(from.hwLens[i]);
  to.hwAddrs.insert(to.hwAddrs.end(), from.hwAddrs.begin() + long(i) * 6, from.hwAddrs.begin() + long(i) * 6 + 6);
  to.data.insert(to.data.end(), from.data.begin() + from.offsets[i], from.data.begin() + from.offsets[i + 1]);
  to.offsets.push_back(uint32_t(to.data.size()));
  to.ct.cls.push_back(from.ct.cls[i]);
  to.ct.state.push_back(from.ct.state[i]);
  to.ct.dir.push_back(from.ct.dir[i]);
  to.ct.status.push_back(from.ct.status[i]);
  to.ct.mark.push_back(from.ct.mark[i]);
  to.ct.handle.push_back(from.ct.handle[i]);
  to.ct.gen.push_back(from.ct.gen[i]);
  to.probes.push_back(from.probes[i]);
  to.count++;
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string errnoText(int err) { return std::strerror(err); }

// A connection whose packets at a hook get the same decision from one to the next (docs/flow-cache.md): ESTABLISHED,
// or NEW once confirmed, i.e. a one-way stream's later packets before any reply (the status key tells them from the
// ESTABLISHED ones by SEEN_REPLY). An unconfirmed entry's packets may still bind NAT, as its first did. Never RELATED:
// an ICMP error carries its master's key. processor.ts asks the same of JavaScript's decisions.
bool flowSettled(const ct::Classification& c) {
  return c.state == ct::kEstablished || (c.state == ct::kNew && (c.status & ct::kConfirmed));
}

uint32_t attrU32(const nlattr* a) { return ntohl(mnl_attr_get_u32(a)); }

}  // namespace

void Batch::reserve(uint32_t n) {
  for (auto* v : {&ids, &marks, &inIf, &outIf, &physInIf, &physOutIf, &uids, &gids, &origLens}) v->reserve(n);
  offsets.reserve(n + 1);
  protos.reserve(n);
  hooks.reserve(n);
  flags.reserve(n);
  hwLens.reserve(n);
  hwAddrs.reserve(size_t(n) * 6);
  data.reserve(size_t(n) * 2048);
  ct.cls.reserve(n);
  probes.reserve(n);
  clear();
}

void Batch::clear() {
  seq = 0;
  count = 0;
  for (auto* v : {&ids, &marks, &inIf, &outIf, &physInIf, &physOutIf, &uids, &gids, &origLens}) v->clear();
  offsets.clear();
  offsets.push_back(0);
  protos.clear();
  hooks.clear();
  flags.clear();
  hwLens.clear();
  hwAddrs.clear();
  data.clear();
  ct.cls.clear();
  for (auto* v : {&ct.state, &ct.dir}) v->clear();
  for (auto* v : {&ct.status, &ct.mark, &ct.handle, &ct.gen}) v->clear();
  classified = false;
  probes.clear();
  waitCounted = false;
}

Queue::Queue(const QueueConfig& cfg) : cfg_(cfg) {
  // Not value-initialised: a slot's pages become resident only as far as the kernel writes messages into them.
  recvBufs_.reset(new char[kRecvMsgs * kRecvBufSize]);
  recvIov_.resize(kRecvMsgs);
  recvMsgs_.resize(kRecvMsgs);
  for (unsigned i = 0; i < kRecvMsgs; i++) {
    recvIov_[i] = {recvBufs_.get() + i * kRecvBufSize, kRecvBufSize};
    recvMsgs_[i] = {};
    recvMsgs_[i].msg_hdr.msg_iov = &recvIov_[i];
    recvMsgs_[i].msg_hdr.msg_iovlen = 1;
  }
  threadSendBuf_.resize(kSendBufSize);
  jsSendBuf_.resize(kSendBufSize);
  if (cfg_.cache) {
    hitDec_.resize(cfg_.maxBatch);
    hitPv_.resize(cfg_.maxBatch);
    hitIds_.resize(cfg_.maxBatch);
    storeDec_.resize(cfg_.maxBatch);
    storeWanted_.resize(cfg_.maxBatch);
    lot_ = std::make_unique<Batch>();
    lot_->reserve(cfg_.maxBatch);
    lot_->classified = true;
    lotCount_.assign(cfg_.cache->flowSlots(), 0);
    lotPre_.assign(cfg_.cache->flowSlots(), 0);
  }
  current_ = acquire();

  auto fail = [this](const std::string& what, int err) {
    std::string msg = what + ": " + errnoText(err);
    if (nl_) mnl_socket_close(nl_);
    nl_ = nullptr;
    fd_ = -1;
    if (stopFd_ >= 0) ::close(stopFd_);
    stopFd_ = -1;
    closed_ = true;
    return std::runtime_error(msg);
  };
  const std::string qn = "NFQUEUE " + std::to_string(cfg_.queue);

  // Close-on-exec: a child the daemon spawns (ip monitor, iptables) must not inherit the socket and keep the queue bound
  // after the daemon dies, which would stop traffic instead of letting --queue-bypass pass it.
  nl_ = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
  if (!nl_) {
    int err = errno;
    throw fail("cannot open the netfilter netlink socket for " + qn + " (needs CAP_NET_ADMIN)", err);
  }
  if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) throw fail("cannot bind the netlink socket for " + qn, errno);
  portid_ = mnl_socket_get_portid(nl_);
  fd_ = mnl_socket_get_fd(nl_);

  int rcv = int(cfg_.rcvbuf);
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv) < 0 &&
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv) < 0)
    throw fail("cannot set the receive buffer of " + qn + " to " + std::to_string(cfg_.rcvbuf) + " bytes", errno);
  // One verdict send is up to kSendBufSize bytes (several ~64 KiB rewritten packets), and netlink refuses with EMSGSIZE
  // a message longer than the send buffer less 32 bytes: the default buffer (wmem_default, 212992) is too small, and
  // the refused verdicts would leave their packets in the kernel queue. The kernel doubles what it is given.
  int snd = int(kSendBufSize);
  if (setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof snd) < 0 &&
      setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd) < 0)
    throw fail("cannot set the send buffer of " + qn + " to " + std::to_string(kSendBufSize) + " bytes", errno);
  int sndGot = 0;
  socklen_t sndLen = sizeof sndGot;
  if (getsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sndGot, &sndLen) < 0) throw fail("cannot read the send buffer of " + qn, errno);
  if (size_t(sndGot) < kSendBufSize + 32)
    throw fail("the send buffer of " + qn + " is " + std::to_string(sndGot) + " bytes, less than the " +
                   std::to_string(kSendBufSize + 32) + " one verdict send needs (raise net.core.wmem_max)",
               EMSGSIZE);
  // Error replies to verdicts then carry only the header, not the whole rewritten packet. Older kernels lack it.
  int one = 1;
  setsockopt(fd_, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);

  stopFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stopFd_ < 0) throw fail("cannot create an eventfd for " + qn, errno);

  // Bind, copy mode, maxlen and flags in one message, so no packet arrives while the copy mode is still NONE.
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nfq_nlmsg_put(buf.data(), NFQNL_MSG_CONFIG, cfg_.queue);
  nlh->nlmsg_flags |= NLM_F_ACK;
  cfgSeq_ = uint32_t(time(nullptr)) ^ (uint32_t(cfg_.queue) << 8);
  nlh->nlmsg_seq = cfgSeq_;
  nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
  nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, int(cfg_.copyRange));
  nfq_nlmsg_cfg_put_qmaxlen(nlh, cfg_.maxLen);
  uint32_t flags = (cfg_.failOpen ? NFQA_CFG_F_FAIL_OPEN : 0) | (cfg_.gso ? NFQA_CFG_F_GSO : 0) |
                   (cfg_.uidGid ? NFQA_CFG_F_UID_GID : 0);
  uint32_t mask = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO | NFQA_CFG_F_UID_GID;
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(mask));
  if (!sendAll(reinterpret_cast<char*>(nlh), nlh->nlmsg_len)) throw fail("cannot send the bind request for " + qn, errno);

  // Packets may already arrive before the acknowledgement; parseBuffer keeps them in current_.
  int64_t deadline = nowMs() + 5000;
  while (cfgError_ == 1) {
    int64_t left = deadline - nowMs();
    if (left <= 0) throw fail("no answer from the kernel to the bind request for " + qn, ETIMEDOUT);
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, int(left));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw fail("poll failed while binding " + qn, errno);
    }
    if (r == 0) continue;
    ssize_t n = recv(fd_, recvBufs_.get(), kRecvBufSize, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      if (errno == ENOBUFS) {
        counters_.enobufs++;
        continue;
      }
      throw fail("recv failed while binding " + qn, errno);
    }
    parseBuffer(recvBufs_.get(), size_t(n));
  }
  if (cfgError_ < 0) {
    int err = -cfgError_;
    std::string hint;
    if (err == EPERM || err == EBUSY || err == EEXIST) hint = " (another process holds it?)";
    if (err == EOPNOTSUPP) hint = " (the kernel does not support the requested queue flags)";
    std::string msg = "cannot bind " + qn + ": " + errnoText(err) + hint;
    if (nl_) mnl_socket_close(nl_);
    nl_ = nullptr;
    fd_ = -1;
    ::close(stopFd_);
    stopFd_ = -1;
    closed_ = true;
    throw std::runtime_error(msg);
  }
  if (cfg_.cache) {
    cfg_.cache->attachQueue();
    attached_ = true;
  }
}

Queue::~Queue() { close(); }

void Queue::start(Handoff handoff) {
  std::lock_guard<std::mutex> g(closeMutex_);
  if (closed_ || started_) return;
  handoff_ = std::move(handoff);
  if (cfg_.driven) return;  // served by its driver's thread, started after this
  lastLoopMs_ = nowMs();
  started_ = true;
  thread_ = std::thread([this] { run(); });
  // top -H, ps -L and perf show the thread by this name ("nfqw-q" and the queue number). A name is only a label:
  // pthread_setname_np fails only for a name over 15 bytes, which this cannot be, and a failure would change nothing.
  char name[16];
  std::snprintf(name, sizeof name, "nfqw-q%u", unsigned(cfg_.queue));
  (void)pthread_setname_np(thread_.native_handle(), name);
}

void Queue::drive(std::shared_ptr<Queue> late) {
  if (started_ || late_ || !late || !late->cfg_.driven || late->hasDriver() || late.get() == this)
    throw std::logic_error("Queue::drive: a driven queue, once, before start()");
  // Shorter, the budget would never let this queue be read (LateBudget::reserve).
  if (uint64_t(late->cfg_.maxLen) < cfg_.maxBatch + kRecvMsgs + LateBudget::kSlack)
    throw std::invalid_argument("a late queue must hold at least " +
                                std::to_string(cfg_.maxBatch + kRecvMsgs + LateBudget::kSlack) +
                                " packets (maxLen): one read of the queue it follows, and a margin");
  // One thread serves both: barriers on the late queue's socket see every packet re-queued there.
  if (late->attached_) {
    late->cfg_.cache->detachQueue();
    late->attached_ = false;
  }
  late->driver_.store(this);
  if (!cfg_.lateBudget) cfg_.lateBudget = std::make_shared<LateBudget>();
  latePair_.main = &counters_;
  latePair_.late = &late->counters_;
  latePair_.lateFd = late->fd_;
  latePair_.lateMaxLen = late->cfg_.maxLen;
  cfg_.lateBudget->join(&latePair_);
  late_ = std::move(late);
}

void Queue::run() {
  Queue* late = late_.get();
  pollfd fds[3] = {{fd_, POLLIN, 0}, {stopFd_, POLLIN, 0}, {late ? late->fd_ : -1, POLLIN, 0}};
  const nfds_t nfds = late ? 3 : 2;
  // The late queues had no room for a batch: this queue is left unread, and looked at again soon.
  bool waiting = false;
  if (late) late->dispatch();
  dispatch();  // packets that arrived with the bind acknowledgement
  for (;;) {
    fds[0].events = waiting ? 0 : POLLIN;
    const uint64_t answered = late ? cfg_.lateBudget->answered() : 0;
    // Parked packets wait for JavaScript's verdicts on other threads: look again soon.
    int r = poll(fds, nfds, waiting || lotWaiting() || (late && late->lotWaiting()) ? 1 : 200);
    lastLoopMs_ = nowMs();
    if (r < 0) {
      if (errno == EINTR) continue;
      counters_.errors++;
      usleep(10000);
      continue;
    }
    if (fds[1].revents) break;
    if (r == 0 && cfg_.table) cfg_.table->sweep(256);  // idle: expire a bounded slice of the table
    // Each queue looks at its lot when it dispatches a batch, and one queue's batches may come while the other's lot
    // waits: parked packets would wait on, their flows' counts between hooks lapse, and later packets overtake them.
    if (r == 0 || late) {
      lookAtLot();
      if (late) late->lookAtLot();
    }
    if (!late) {
      if (fds[0].revents & (POLLIN | POLLERR)) recovering([this] { drain(kMaxBatchesPerDrain); });
      if (cfg_.cache) sendBarrier();
      continue;
    }
    // The late queue is served first, so a flood waits in this queue, not in the late one.
    if (fds[2].revents & (POLLIN | POLLERR))
      late->recovering([this, late] { late->drain(kMaxBatchesPerDrain, this); });
    else
      latePair_.foundEmpty(answered);
    // With a late queue one batch at a time: its verdicts queue packets there, which go before the next batch.
    if (waiting || (fds[0].revents & (POLLIN | POLLERR))) {
      const bool read = drainWithinBudget();
      if (!read && !waiting) counters_.lateWaits++;
      waiting = !read;
    }
    if (cfg_.cache) late->sendBarrier();
  }
  for (Queue* q : {late, this}) {
    if (q) q->recovering([q] { q->dispatch(); });
  }
}

bool Queue::drainWithinBudget() {
  // What one drain(1) can read: a batch, and the rest of the recvmmsg that filled it.
  const uint32_t most = cfg_.maxBatch + kRecvMsgs;
  if (!cfg_.lateBudget->reserve(most)) return false;
  recovering([this] { drain(1); });
  cfg_.lateBudget->release(most);
  return true;
}

void Queue::lookAtLot() {
  if (!lotWaiting()) return;
  try {
    scanLot(lot_->count >= cfg_.parkLimit || lot_->data.size() >= kLotBytes);
  } catch (const std::exception&) {
    counters_.errors++;
  }
}

void Queue::recoverBatch() {
  if (!current_) return;
  // Columns may be uneven after a failed push_back: answer every id we took, then start clean.
  Batch& b = *current_;
  b.count = uint32_t(b.ids.size());
  if (b.count) {
    counters_.overload += b.count;
    if (cfg_.table && b.classified && b.ct.cls.size() >= b.count) {
      commitSame(b, cfg_.overloadVerdict, threadPv_);
      sendVerdicts(b, threadPv_.data(), 0, threadSendBuf_);
    } else {
      sendVerdicts(b, nullptr, cfg_.overloadVerdict, threadSendBuf_);
    }
    releaseWaiting(b);
  }
  b.clear();
}

void Queue::drain(int maxBatches, Queue* driver) {
  int dispatched = 0;
  for (;;) {
    const uint64_t answered = driver ? driver->cfg_.lateBudget->answered() : 0;
    // An error after the first message waits in the socket for the next call, which returns it.
    int got = recvmmsg(fd_, recvMsgs_.data(), kRecvMsgs, MSG_DONTWAIT | MSG_TRUNC, nullptr);
    // Fewer than asked for: the socket was empty (or holds an error for the next call, which poll reports).
    if (driver && ((got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) || (got >= 0 && got < int(kRecvMsgs))))
      driver->latePair_.foundEmpty(answered);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == ENOBUFS) {
        counters_.enobufs++;
        continue;
      }
      counters_.errors++;
      break;
    }
    uint64_t before = counters_.batches.load(std::memory_order_relaxed);
    for (int i = 0; i < got; i++) {
      size_t n = recvMsgs_[size_t(i)].msg_len;  // the whole message's length (MSG_TRUNC)
      if (n > kRecvBufSize) {
        counters_.errors++;  // larger than any packet message can be: not ours to parse
        unaccounted_ = true;
        continue;
      }
      parseBuffer(static_cast<const char*>(recvIov_[size_t(i)].iov_base), n);
    }
    dispatched += int(counters_.batches.load(std::memory_order_relaxed) - before);
    if (got < int(kRecvMsgs) || dispatched >= maxBatches) break;
  }
  dispatch();
}

void Queue::parseBuffer(const char* buf, size_t len) {
  const nlmsghdr* nlh = reinterpret_cast<const nlmsghdr*>(buf);
  int left = int(len);
  while (mnl_nlmsg_ok(nlh, left)) {
    if (nlh->nlmsg_type == NLMSG_ERROR) {
      if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(nlmsgerr))) {
        const nlmsgerr* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (cfgError_ == 1 && nlh->nlmsg_seq == cfgSeq_ && nlh->nlmsg_pid == portid_) {
          cfgError_ = e->error;
        } else if (e->error == 0 && e->msg.nlmsg_type == NLMSG_NOOP) {
          barrierAcked(nlh->nlmsg_seq);
        } else if (e->error != 0) {
          counters_.errors++;  // a verdict the kernel refused (ENOENT: unknown id, EINVAL: bad payload)
          // An unknown id is a packet the kernel no longer holds (its interface went down, say); anything else may
          // have left the packet queued.
          if (e->error != -ENOENT) unaccounted_ = true;
        }
      } else {
        counters_.errors++;
        unaccounted_ = true;
      }
    } else if (nlh->nlmsg_type == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) {
      addPacket(nlh);
    }
    nlh = mnl_nlmsg_next(nlh, &left);
  }
}

void Queue::addPacket(const nlmsghdr* nlh) {
  nlattr* attr[NFQA_MAX + 1] = {};
  if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR]) {
    counters_.errors++;
    unaccounted_ = true;
    return;
  }
  if (current_->count >= cfg_.maxBatch) dispatch();
  Batch& b = *current_;
  auto* ph = static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
  const uint8_t* payload = nullptr;
  uint32_t plen = 0;
  if (attr[NFQA_PAYLOAD]) {
    payload = static_cast<const uint8_t*>(mnl_attr_get_payload(attr[NFQA_PAYLOAD]));
    plen = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
  }
  uint32_t origLen = plen;
  uint8_t flags = 0;
  if (attr[NFQA_CAP_LEN]) {
    origLen = attrU32(attr[NFQA_CAP_LEN]);
    if (origLen > plen) flags |= kFlagTruncated;
  }
  if (attr[NFQA_SKB_INFO]) {
    uint32_t info = attrU32(attr[NFQA_SKB_INFO]);
    if (info & NFQA_SKB_CSUMNOTREADY) flags |= kFlagCsumNotReady;
    if (info & NFQA_SKB_GSO) flags |= kFlagGso;
    if (info & NFQA_SKB_CSUM_NOTVERIFIED) flags |= kFlagCsumNotVerified;
  }
  auto u32or = [&](int type, uint32_t dflt) { return attr[type] ? attrU32(attr[type]) : dflt; };

  b.ids.push_back(ntohl(ph->packet_id));
  b.protos.push_back(ntohs(ph->hw_protocol));
  b.hooks.push_back(ph->hook);
  b.marks.push_back(u32or(NFQA_MARK, 0));
  b.inIf.push_back(u32or(NFQA_IFINDEX_INDEV, 0));
  b.outIf.push_back(u32or(NFQA_IFINDEX_OUTDEV, 0));
  b.physInIf.push_back(u32or(NFQA_IFINDEX_PHYSINDEV, 0));
  b.physOutIf.push_back(u32or(NFQA_IFINDEX_PHYSOUTDEV, 0));
  b.uids.push_back(u32or(NFQA_UID, 0xffffffffu));
  b.gids.push_back(u32or(NFQA_GID, 0xffffffffu));
  b.origLens.push_back(origLen);
  b.flags.push_back(flags);
  uint8_t hw[6] = {};
  uint8_t hwLen = 0;
  if (attr[NFQA_HWADDR] && mnl_attr_get_payload_len(attr[NFQA_HWADDR]) >= sizeof(nfqnl_msg_packet_hw)) {
    auto* h = static_cast<const nfqnl_msg_packet_hw*>(mnl_attr_get_payload(attr[NFQA_HWADDR]));
    uint16_t l = ntohs(h->hw_addrlen);
    hwLen = uint8_t(l < 6 ? l : 6);
    std::memcpy(hw, h->hw_addr, hwLen);
  }
  b.hwLens.push_back(hwLen);
  b.hwAddrs.insert(b.hwAddrs.end(), hw, hw + 6);
  if (plen) b.data.insert(b.data.end(), payload, payload + plen);
  b.offsets.push_back(uint32_t(b.data.size()));
  b.count++;
  counters_.received++;
  counters_.bytes += origLen;
}

std::unique_ptr<Batch> Queue::acquire() {
  {
    std::lock_guard<std::mutex> g(tableMutex_);
    if (!pool_.empty()) {
      auto b = std::move(pool_.back());
      pool_.pop_back();
      return b;
    }
  }
  auto b = std::make_unique<Batch>();
  b->reserve(cfg_.maxBatch);
  return b;
}

void Queue::recycle(std::unique_ptr<Batch> b) {
  b->clear();
  std::lock_guard<std::mutex> g(tableMutex_);
  pool_.push_back(std::move(b));
}

void Queue::dispatch() {
  if (!current_ || current_->count == 0) return;
  std::unique_ptr<Batch> next = acquire();  // first, so a failure leaves current_ whole for recoverBatch()
  if (cfg_.table) classify(*current_);  // before the handoff: JavaScript reads the columns
  if (cfg_.cache) {
    // Older packets first: what the lot releases was queued before this batch.
    scanLot(lot_->count >= cfg_.parkLimit || lot_->data.size() >= kLotBytes);
    decideCached(*current_);
  }
  std::unique_ptr<Batch> b = std::move(current_);
  current_ = std::move(next);
  counters_.batches++;
  if (b->count == 0) {  // the cache decided (or parked) every packet
    recycle(std::move(b));
    return;
  }
  handOff(std::move(b));
}

void Queue::handOff(std::unique_ptr<Batch> b) {
  uint64_t seq = 0;
  {
    std::lock_guard<std::mutex> g(tableMutex_);
    if (handoff_ && pending_.size() < cfg_.maxPendingBatches) {
      seq = nextSeq_++;
      b->seq = seq;
      pending_.emplace(seq, std::move(b));
    }
  }
  if (seq) {
    if (handoff_(seq)) return;
    // JavaScript never saw this seq, so nobody else can have taken it.
    std::lock_guard<std::mutex> g(tableMutex_);
    auto it = pending_.find(seq);
    b = std::move(it->second);
    pending_.erase(it);
  }
  counters_.overload += b->count;
  if (cfg_.table) {
    commitSame(*b, cfg_.overloadVerdict, threadPv_);
    sendVerdicts(*b, threadPv_.data(), 0, threadSendBuf_);
  } else {
    sendVerdicts(*b, nullptr, cfg_.overloadVerdict, threadSendBuf_);
  }
  releaseWaiting(*b);
  recycle(std::move(b));
}

const Batch* Queue::pendingBatch(uint64_t seq) {
  std::lock_guard<std::mutex> g(tableMutex_);
  auto it = pending_.find(seq);
  return it == pending_.end() ? nullptr : it->second.get();
}

std::unique_ptr<Batch> Queue::takePending(uint64_t seq) {
  std::lock_guard<std::mutex> g(tableMutex_);
  auto it = pending_.find(seq);
  if (it == pending_.end()) return nullptr;
  auto b = std::move(it->second);
  pending_.erase(it);
  return b;
}

bool Queue::verdictBatch(std::unique_ptr<Batch> b, PacketVerdict* v, const ct::Update* cu, const uint32_t* cachePaths,
                         uint32_t cacheGeneration) {
  const uint32_t n = b->count;
  if (cfg_.cache) {
    // The skip bits are the flow cache's alone: a rule that sets one would let the packet pass later hooks unseen.
    const uint32_t skipMark = cfg_.cache->skipConfig().mark;
    for (uint32_t i = 0; skipMark && i < n; i++)
      if (v[i].setMark) v[i].mark &= ~skipMark;
  }
  bool store = cfg_.cache && b->waitCounted && cachePaths;
  if (store && storeDec_.size() < n) {
    storeDec_.resize(n);
    storeWanted_.resize(n);
  }
  if (store) {
    // JavaScript's own decision, before the table's outcome rewrites v: only a trip with no payload and no
    // connection-table update is a decision the receive thread can repeat.
    for (uint32_t i = 0; i < n; i++) {
      const ct::Update* u = cu ? &cu[i] : nullptr;
      bool plain = !u || (!u->notrack && !u->setMark && !u->replied && !u->natRan && !u->natCount);
      storeWanted_[i] = cachePaths[i] != 0 && !v[i].payload && plain;
      storeDec_[i] = fc::Decision{v[i].verdict, v[i].mark, v[i].setMark, cachePaths[i] - 1};
    }
  }
  if (cfg_.table) applyTable(*b, v, cu);
  if (store) {
    for (uint32_t i = 0; i < n; i++)
      if (v[i].verdict != storeDec_[i].verdict) storeWanted_[i] = 0;  // the table dropped it: not JavaScript's fate
  }
  bool ok = sendVerdicts(*b, v, 0, jsSendBuf_);
  // Only now may the receive thread verdict later packets of these flows: they must not overtake these.
  if (store)
    releaseWaiting(*b, storeDec_.data(), storeWanted_.data(), cacheGeneration);
  else
    releaseWaiting(*b);
  recycle(std::move(b));
  return ok;
}

void Queue::defaultBatch(std::unique_ptr<Batch> b) {
  counters_.defaulted += b->count;
  if (cfg_.table) {
    commitSame(*b, cfg_.overloadVerdict, jsPv_);
    sendVerdicts(*b, jsPv_.data(), 0, jsSendBuf_);
  } else {
    sendVerdicts(*b, nullptr, cfg_.overloadVerdict, jsSendBuf_);
  }
  releaseWaiting(*b);
  recycle(std::move(b));
}

void Queue::releaseWaiting(Batch& b, const fc::Decision* store, const uint8_t* stored, uint32_t generation) {
  if (!cfg_.cache || !b.waitCounted) return;
  cfg_.cache->release(b.count, b.probes.data(), store, stored, generation);
  b.waitCounted = false;
}

void Queue::decideCached(Batch& b) {
  const uint32_t n = b.count;
  b.probes.resize(n);
  if (hitDec_.size() < n) hitDec_.resize(n);
  const fc::SkipConfig skip = cfg_.cache->skipConfig();
  for (uint32_t i = 0; i < n; i++) {
    const ct::Classification& c = b.ct.cls[i];
    fc::Probe& p = b.probes[i];
    p.key = fc::Key{c.handle, c.gen, b.hooks[i], c.dir};
    p.values = fc::Values{c.status, b.marks[i], c.mark, c.zone, b.inIf[i], b.outIf[i], b.physInIf[i], b.physOutIf[i]};
    p.wireLen = b.origLens[i];
    // Anything unusual about the packet (it created its entry, holds a dying one, moved no TCP state, table full)
    // goes to JavaScript.
    p.kind = !c.handle ? fc::kUntracked : (flowSettled(c) && c.flags == 0) ? fc::kEligible : fc::kTracked;
    p.base = p.kind;
    // A packet past PREROUTING is older than its flow's packets parked there (FlowCache::lookup).
    if (p.kind != fc::kUntracked && lot_->count) {
      const uint32_t f = cfg_.cache->flowIndex(p.key);
      p.lotAhead = (b.hooks[i] == ct::kPreRouting ? lotCount_[f] : lotCount_[f] - lotPre_[f]) != 0;
    } else {
      p.lotAhead = 0;
    }
    p.skip = 0;
    p.native = 0;
    if (skip.mark && skip.allowed && p.kind == fc::kEligible && b.hooks[i] == ct::kPreRouting)
      p.skip = fc::skipForward(b.data.data() + b.offsets[i], b.offsets[i + 1] - b.offsets[i], b.protos[i] == 0x86dd,
                               (b.flags[i] & kFlagTruncated) != 0, (b.flags[i] & kFlagGso) != 0,
                               (b.flags[i] & kFlagGso) && cfg_.table ? cfg_.table->peerMss(c) : 0, skip.maxLen);
  }
  // Room for every packet in the lot first: nothing below throws once packets are verdicted or counted.
  reserveRows(*lot_, n, b.data.size());
  if (cfg_.matcher && cfg_.matcher->enabled()) matchBatch(b, skip.mark);
  uint32_t hits = cfg_.cache->lookup(n, b.probes.data(), hitDec_.data(), true);
  b.waitCounted = true;
  commitMatched(b);
  bool moved = hits != 0;
  for (uint32_t i = 0; i < n; i++) {
    if (b.probes[i].kind != fc::kPark) continue;
    appendRow(*lot_, b, i);
    const uint32_t f = cfg_.cache->flowIndex(b.probes[i].key);
    lotCount_[f]++;
    lotPre_[f] += b.hooks[i] == ct::kPreRouting;
    moved = true;
  }
  if (hits) verdictHits(b);
  if (moved) compactRows(b, false);  // after the send: the translated payloads point into b.data
}

void Queue::matchBatch(Batch& b, uint32_t skipMark) {
  mt::Matcher& m = *cfg_.matcher;
  matchProg_[0] = m.program(4);
  matchProg_[1] = m.program(6);
  if (!matchProg_[0] && !matchProg_[1]) return;
  const std::shared_ptr<const mt::Host> host = m.host();
  const uint32_t n = b.count;
  if (matchRes_.size() < n) {
    matchRes_.resize(n);
    matched_.resize(n);
  }
  uint64_t slow = 0;
  for (uint32_t i = 0; i < n; i++) {
    fc::Probe& p = b.probes[i];
    matched_[i] = 0;
    // Eligible packets go to JavaScript to be cached (and to skip hooks later); untracked ones have no flow to keep
    // in order, and a full table's packet is JavaScript's to drop.
    const ct::Classification& c = b.ct.cls[i];
    if (p.kind != fc::kTracked || (c.flags & ct::kClsDrop)) continue;
    const bool v6 = b.protos[i] == 0x86dd;
    const mt::Program* prog = matchProg_[v6].get();
    if (!prog) continue;
    mt::Input in;
    in.data = b.data.data() + b.offsets[i];
    in.len = b.offsets[i + 1] - b.offsets[i];
    in.wireLen = b.origLens[i];
    in.family = v6 ? 6 : 4;
    in.hook = b.hooks[i];
    in.mark = b.marks[i];
    in.inIf = b.inIf[i];
    in.outIf = b.outIf[i];
    in.physInIf = b.physInIf[i];
    in.physOutIf = b.physOutIf[i];
    in.tracked = true;
    in.ctState = c.state;
    in.ctDir = c.dir;
    in.ctStatus = c.status;
    in.ctMark = c.mark;
    in.zone = c.zone;
    in.takesNat = true;  // verdictHits hands the bindings to the table, as it would JavaScript's ctNat
    mt::Result& r = matchRes_[i];
    if (!prog->run(in, *host, r)) {
      slow++;
      continue;
    }
    // The skip bits are the flow cache's alone, as in verdictBatch.
    hitDec_[i] = fc::Decision{r.verdict, r.setMark ? r.mark & ~skipMark : r.mark, r.setMark, 0};
    p.native = 1;
    matched_[i] = 1;
  }
  if (slow) m.slow += slow;
}

void Queue::commitMatched(Batch& b) {
  if (!matchProg_[0] && !matchProg_[1]) return;
  uint64_t decided = 0, deferred = 0;
  for (uint32_t i = 0; i < b.count; i++) {
    if (!matched_[i]) continue;
    const fc::Probe& p = b.probes[i];
    if (p.kind != fc::kHit) {
      // Behind its flow's packets in JavaScript: parked (decided again from the lot) or decided there.
      if (p.kind != fc::kPark) deferred++;
      continue;
    }
    matchProg_[b.protos[i] == 0x86dd]->count(matchRes_[i], b.origLens[i]);
    decided++;
  }
  cfg_.matcher->decided += decided;
  if (deferred) cfg_.matcher->slow += deferred;
  matchProg_[0].reset();
  matchProg_[1].reset();
}

void Queue::scanLot(bool force) {
  Batch& l = *lot_;
  if (!l.count) return;
  const uint64_t releases = cfg_.cache->releases(), cleared = cfg_.cache->transitsCleared();
  const int64_t now = nowMs();
  // Nothing JavaScript held was verdicted and no flow's packets between hooks came through since the last look, and a
  // count left by a packet the kernel dropped between hooks is looked at again soon enough. Looking at every batch
  // re-parked the whole lot each time under a flood (two parkings per packet).
  if (!force && releases == lotReleases_ && cleared == lotCleared_ && now - lotLookMs_ < fc::FlowCache::kHoldRecheckMs) return;
  lotReleases_ = releases;
  lotCleared_ = cleared;
  lotLookMs_ = now;
  const uint32_t n = l.count;
  // Handed to JavaScript in batches of at most maxBatch, as every batch is.
  std::vector<std::unique_ptr<Batch>> out;
  for (uint32_t i = 0; i < n; i += cfg_.maxBatch) {
    out.push_back(acquire());
    reserveRows(*out.back(), cfg_.maxBatch, l.data.size());
    out.back()->classified = true;
  }
  if (hitDec_.size() < n) hitDec_.resize(n);
  for (uint32_t i = 0; i < n; i++) {
    fc::Probe& p = l.probes[i];
    p.kind = p.base;
    p.lotAhead = 0;
  }
  if (cfg_.matcher && cfg_.matcher->enabled()) matchBatch(l, cfg_.cache->skipConfig().mark);
  // Forced: nothing parks again, so the lot empties into hits and JavaScript.
  uint32_t hits = cfg_.cache->lookup(n, l.probes.data(), hitDec_.data(), !force);
  commitMatched(l);
  size_t fill = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint8_t k = l.probes[i].kind;
    if (k == fc::kPark) continue;
    if (k != fc::kUntracked) {
      const uint32_t f = cfg_.cache->flowIndex(l.probes[i].key);
      lotCount_[f]--;
      lotPre_[f] -= l.hooks[i] == ct::kPreRouting;
    }
    if (k == fc::kHit) continue;
    if (out[fill]->count == cfg_.maxBatch) fill++;
    appendRow(*out[fill], l, i);
  }
  if (hits) verdictHits(l);
  compactRows(l, true);
  for (auto& js : out) {
    if (!js->count) {
      recycle(std::move(js));
      continue;
    }
    js->waitCounted = true;
    counters_.batches++;
    handOff(std::move(js));
  }
}

void Queue::sendBarrier() {
  if (!cfg_.cache->barrierWanted()) return;  // the usual case: no lock, no clock
  const int64_t now = nowMs();
  if (barrier_ && now - barrierMs_ < kBarrierRetryMs) return;
  const uint32_t b = cfg_.cache->beginBarrier();
  if (!b) return;
  // NLMSG_NOOP: nfnetlink does nothing with it but acknowledge it, after the messages sent before it.
  nlmsghdr h{};
  h.nlmsg_len = sizeof h;
  h.nlmsg_type = NLMSG_NOOP;
  h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  h.nlmsg_seq = b;
  if (!sendAll(reinterpret_cast<const char*>(&h), sizeof h)) {
    counters_.errors++;  // its flows stay candidates for the next one, and lapse meanwhile
    return;
  }
  barrier_ = b;
  barrierMs_ = now;
}

void Queue::barrierAcked(uint32_t barrier) {
  if (!cfg_.cache) return;
  // The packets before the acknowledgement first: their lookups take what they counted between hooks.
  dispatch();
  cfg_.cache->endBarrier(barrier);
  if (barrier == barrier_) barrier_ = 0;
}

void Queue::verdictHits(Batch& b) {
  ct::ConnTable& t = *cfg_.table;
  if (hitPv_.size() < b.count) {
    hitPv_.resize(b.count);
    hitIds_.resize(b.count);
  }
  uint32_t k = 0, matched = 0;
  for (uint32_t i = 0; i < b.count; i++) {
    if (b.probes[i].kind != fc::kHit) continue;
    matched += b.probes[i].native;
    const ct::Classification& c = b.ct.cls[i];
    const fc::Decision& d = hitDec_[i];
    PacketVerdict& pv = hitPv_[k];
    pv = PacketVerdict{};
    pv.verdict = d.verdict;
    pv.setMark = d.setMark;
    pv.mark = d.mark;
    // As applyTable does for a packet JavaScript accepted or dropped with no update and no payload.
    ct::Update u;
    u.accept = accepts(d.verdict);
    u.final = ct::isFinalTrip(b.hooks[i], cfg_.queuedHooks);
    u.looped = b.hooks[i] == ct::kPostRouting && b.outIf[i] == ct::kLoopbackIfindex;
    // A new connection's first trip through the nat chains: the binding they asked for, or the null binding, as for
    // JavaScript's decisions (addon.cc: a request means its manip type's chains ran).
    if (b.probes[i].native) {
      const mt::Result& r = matchRes_[i];
      u.natRan = r.natRan;
      for (uint8_t j = 0; j < r.natCount && j < 2; j++) {
        u.nat[u.natCount++] = r.nat[j];
        u.natRan |= uint8_t(1u << r.nat[j].manip);
      }
    }
    uint8_t* p = u.accept ? b.data.data() + b.offsets[i] : nullptr;
    size_t len = u.accept ? b.offsets[i + 1] - b.offsets[i] : 0;
    bool changed = false;
    bool ok = t.finish(c, u, p, len, b.protos[i] == 0x86dd ? 6 : 4, b.hooks[i], changed);
    if (!ok) {
      pv.verdict = NF_DROP;
      counters_.ctDropped++;
    } else if (changed) {
      finishTranslated(b, i, pv, p, len);
    }
    hitIds_[k++] = b.ids[i];
  }
  if (!sendHitsAsBatch(k)) sendVerdicts(hitIds_.data(), k, hitPv_.data(), 0, threadSendBuf_);
  counters_.cached += k - matched;
  counters_.matched += matched;
}

// The kernel gives a batch verdict to every packet it holds with an id up to the batch's (nfqnl_recv_verdict_batch), so
// it may stand for the k hits only when every other packet received was answered already: none with JavaScript, none
// parked, none of another batch. Only this thread counts received packets, and verdicts are counted after their send
// returned, so received - (accepted + dropped) == k means exactly that. The hits arrived in id order; they must share
// verdict and mark and keep their bytes (a batch verdict carries no payload).
bool Queue::sendHitsAsBatch(uint32_t k) {
  if (k < 2 || unaccounted_) return false;
  const PacketVerdict& v = hitPv_[0];
  for (uint32_t j = 0; j < k; j++) {
    const PacketVerdict& w = hitPv_[j];
    if (w.payload || w.verdict != v.verdict || w.setMark != v.setMark || (v.setMark && w.mark != v.mark)) return false;
  }
  uint64_t answered = counters_.accepted.load() + counters_.dropped.load();
  if (counters_.received.load(std::memory_order_relaxed) - answered != k) return false;
  nlmsghdr* nlh = nfq_nlmsg_put(threadSendBuf_.data(), NFQNL_MSG_VERDICT_BATCH, cfg_.queue);
  nfq_nlmsg_verdict_put(nlh, int(hitIds_[k - 1]), int(v.verdict));
  if (v.setMark) nfq_nlmsg_verdict_put_mark(nlh, v.mark);
  if (!sendAll(threadSendBuf_.data(), nlh->nlmsg_len)) {
    counters_.errors++;  // as in sendVerdicts: the packets stay with the kernel, uncounted
    return true;
  }
  ((v.verdict & NF_VERDICT_MASK) == NF_DROP ? counters_.dropped : counters_.accepted) += k;
  counters_.batchVerdicts++;
  return true;
}

// Drops the rows that leave, keeping the order of the rest. Moves and shrinks only: nothing throws here, so a batch
// whose hits were verdicted never reaches recoverBatch() with them still in it.
void Queue::compactRows(Batch& b, bool keepParked) {
  const uint32_t n = b.count;
  uint32_t w = 0;
  uint32_t dataW = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t start = b.offsets[i], len = b.offsets[i + 1] - start;
    uint8_t k = b.probes[i].kind;
    if (keepParked ? k != fc::kPark : (k == fc::kHit || k == fc::kPark)) continue;
    if (w != i) {
      b.ids[w] = b.ids[i];
      b.marks[w] = b.marks[i];
      b.inIf[w] = b.inIf[i];
      b.outIf[w] = b.outIf[i];
      b.physInIf[w] = b.physInIf[i];
      b.physOutIf[w] = b.physOutIf[i];
      b.uids[w] = b.uids[i];
      b.gids[w] = b.gids[i];
      b.origLens[w] = b.origLens[i];
      b.protos[w] = b.protos[i];
      b.hooks[w] = b.hooks[i];
      b.flags[w] = b.flags[i];
      b.hwLens[w] = b.hwLens[i];
      std::memmove(b.hwAddrs.data() + size_t(w) * 6, b.hwAddrs.data() + size_t(i) * 6, 6);
      b.ct.cls[w] = b.ct.cls[i];
      b.ct.state[w] = b.ct.state[i];
      b.ct.dir[w] = b.ct.dir[i];
      b.ct.status[w] = b.ct.status[i];
      b.ct.mark[w] = b.ct.mark[i];
      b.ct.handle[w] = b.ct.handle[i];
      b.ct.gen[w] = b.ct.gen[i];
      b.probes[w] = b.probes[i];
    }
    if (dataW != start) std::memmove(b.data.data() + dataW, b.data.data() + start, len);
    b.offsets[w] = dataW;  // indexes <= i only: offsets[i + 1] is still the original for the next packet
    dataW += len;
    w++;
  }
  b.offsets[w] = dataW;
  b.offsets.resize(w + 1);
  b.data.resize(dataW);
  for (auto* v : {&b.ids, &b.marks, &b.inIf, &b.outIf, &b.physInIf, &b.physOutIf, &b.uids, &b.gids, &b.origLens,
                  &b.ct.status, &b.ct.mark, &b.ct.handle, &b.ct.gen})
    v->resize(w);
  b.protos.resize(w);
  for (auto* v : {&b.hooks, &b.flags, &b.hwLens, &b.ct.state, &b.ct.dir}) v->resize(w);
  b.hwAddrs.resize(size_t(w) * 6);
  b.ct.cls.resize(w);
  b.probes.resize(w);
  b.count = w;
}

void Queue::classify(Batch& b) {
  if (b.classified) return;
  ct::classifyBatch(*cfg_.table, b.count, b.data.data(), b.offsets.data(), b.protos.data(), b.hooks.data(),
                    b.inIf.data(), b.flags.data(), kFlagCsumNotVerified, cfg_.queuedHooks, b.ct);
  b.classified = true;
}

void Queue::commitSame(Batch& b, uint32_t verdict, std::vector<PacketVerdict>& pv) {
  classify(b);  // a batch closed before its dispatch was never classified
  pv.assign(b.count, PacketVerdict{});
  ct::ConnTable& t = *cfg_.table;
  for (uint32_t i = 0; i < b.count; i++) {
    const ct::Classification& c = b.ct.cls[i];
    ct::Update u;
    u.accept = accepts(verdict) && !(c.flags & ct::kClsDrop);
    u.final = ct::isFinalTrip(b.hooks[i], cfg_.queuedHooks);
    u.looped = b.hooks[i] == ct::kPostRouting && b.outIf[i] == ct::kLoopbackIfindex;
    // A NATed connection's packets must not pass untranslated, even by default.
    uint8_t* p = b.data.data() + b.offsets[i];
    size_t len = b.offsets[i + 1] - b.offsets[i];
    bool changed = false;
    bool ok = t.finish(c, u, c.handle ? p : nullptr, len, b.protos[i] == 0x86dd ? 6 : 4, b.hooks[i], changed);
    pv[i].verdict = verdict;
    if (c.flags & ct::kClsDrop || !ok) {
      pv[i].verdict = NF_DROP;
      counters_.ctDropped++;
      continue;
    }
    if (changed) finishTranslated(b, i, pv[i], p, len);
  }
}

// Sends the translated bytes of packet i as its verdict payload, or drops it when they cannot be sent whole.
void Queue::finishTranslated(const Batch& b, uint32_t i, PacketVerdict& v, uint8_t* p, size_t len) {
  if ((b.flags[i] & kFlagTruncated) || len > 0xffff - 4) {
    // Only part of the packet was copied: a payload would cut it short, and untranslated it would leak.
    v.verdict = NF_DROP;
    v.payload = nullptr;
    counters_.ctDropped++;
    return;
  }
  if (b.flags[i] & kFlagCsumNotReady) {
    // The kernel's checksum was only the pseudo-header sum (CHECKSUM_PARTIAL); the mangled packet is CHECKSUM_NONE,
    // so it needs the whole checksum.
    pkt::Parsed h = pkt::parse(p, len, b.protos[i] == 0x86dd ? 6 : 4);
    if (h.ok && !h.truncated && !h.fragment && h.l4len && h.ipLen == len &&
        (h.proto == pkt::kProtoTcp || h.proto == pkt::kProtoUdp || h.proto == pkt::kProtoUdplite ||
         h.proto == pkt::kProtoDccp))
      pkt::fixTransportChecksum(p, len, h);
  }
  v.payload = p;
  v.payloadLen = uint32_t(len);
}

void Queue::applyTable(Batch& b, PacketVerdict* v, const ct::Update* cu) {
  ct::ConnTable& t = *cfg_.table;
  classify(b);
  // JS payloads are copied before NAT rewrites them; sized first, so no pointer into the scratch moves later.
  size_t need = 0;
  for (uint32_t i = 0; i < b.count; i++)
    if (v[i].payload && b.ct.cls[i].handle && accepts(v[i].verdict)) need += v[i].payloadLen;
  if (natScratch_.size() < need) natScratch_.resize(need);
  size_t off = 0;
  for (uint32_t i = 0; i < b.count; i++) {
    const ct::Classification& c = b.ct.cls[i];
    ct::Update u = cu ? cu[i] : ct::Update{};
    if (c.flags & ct::kClsDrop) u.accept = false;
    else u.accept = accepts(v[i].verdict);
    u.final = ct::isFinalTrip(b.hooks[i], cfg_.queuedHooks);
    u.looped = b.hooks[i] == ct::kPostRouting && b.outIf[i] == ct::kLoopbackIfindex;
    // The bytes to translate are ready before the commit: commit and translation are one step of the table (an entry
    // the commit releases goes after its packet is translated).
    uint8_t* p = nullptr;
    size_t len = 0;
    bool fromJs = v[i].payload != nullptr;
    if (u.accept && c.handle && !(c.flags & ct::kClsDrop)) {
      if (fromJs) {
        p = natScratch_.data() + off;
        len = v[i].payloadLen;
        std::memcpy(p, v[i].payload, len);
        off += len;
      } else {
        p = b.data.data() + b.offsets[i];
        len = b.offsets[i + 1] - b.offsets[i];
      }
    }
    bool changed = false;
    bool ok = t.finish(c, u, p, len, b.protos[i] == 0x86dd ? 6 : 4, b.hooks[i], changed);
    if ((c.flags & ct::kClsDrop) || !ok) {
      v[i].verdict = NF_DROP;
      v[i].payload = nullptr;
      counters_.ctDropped++;
      continue;
    }
    if (!changed) continue;
    if (fromJs) {
      v[i].payload = p;  // the caller's checksums were complete, so the incremental update kept them right
    } else {
      finishTranslated(b, i, v[i], p, len);
    }
  }
}

void Queue::countVerdict(uint32_t verdict) {
  if ((verdict & NF_VERDICT_MASK) == NF_DROP)
    counters_.dropped++;
  else
    counters_.accepted++;
}

bool Queue::sendAll(const char* buf, size_t len) {
  for (int attempt = 0;; attempt++) {
    ssize_t n = sendto(fd_, buf, len, 0, nullptr, 0);
    if (n >= 0) return true;
    if (errno == EINTR || ((errno == ENOBUFS || errno == EAGAIN) && attempt < 100)) {
      if (errno != EINTR) usleep(1000);
      continue;
    }
    return false;
  }
}

bool Queue::sendVerdicts(const Batch& b, const PacketVerdict* v, uint32_t sameVerdict, std::vector<char>& out) {
  return sendVerdicts(b.ids.data(), b.count, v, sameVerdict, out);
}

bool Queue::sendVerdicts(const uint32_t* ids, uint32_t n, const PacketVerdict* v, uint32_t sameVerdict,
                         std::vector<char>& out) {
  if (fd_ < 0) return false;
  constexpr size_t kBase = MNL_ALIGN(sizeof(nlmsghdr)) + MNL_ALIGN(sizeof(nfgenmsg)) + MNL_ATTR_HDRLEN +
                           MNL_ALIGN(sizeof(nfqnl_msg_verdict_hdr));
  bool ok = true;
  size_t off = 0;
  uint32_t first = 0;  // the first packet of the messages in `out`
  // Verdicts are counted once sent: a refused send leaves its packets with the kernel, and received then exceeds
  // accepted + dropped by exactly them.
  auto flush = [&](uint32_t end) {
    if (off && !sendAll(out.data(), off)) {
      counters_.errors++;
      ok = false;
    } else {
      for (uint32_t j = first; j < end; j++) countVerdict(v ? v[j].verdict : sameVerdict);
    }
    off = 0;
    first = end;
  };
  for (uint32_t i = 0; i < n; i++) {
    uint32_t verdict = v ? v[i].verdict : sameVerdict;
    bool mark = v && v[i].setMark;
    bool pkt = v && v[i].payload;
    size_t need = kBase + (mark ? MNL_ATTR_HDRLEN + 4 : 0) + (pkt ? MNL_ATTR_HDRLEN + MNL_ALIGN(v[i].payloadLen) : 0);
    if (off + need > kSendLimit) flush(i);
    nlmsghdr* nlh = nfq_nlmsg_put(out.data() + off, NFQNL_MSG_VERDICT, cfg_.queue);
    nfq_nlmsg_verdict_put(nlh, int(ids[i]), int(verdict));
    if (mark) nfq_nlmsg_verdict_put_mark(nlh, v[i].mark);
    if (pkt) nfq_nlmsg_verdict_put_pkt(nlh, v[i].payload, v[i].payloadLen);
    off += MNL_ALIGN(nlh->nlmsg_len);
  }
  flush(n);
  return ok;
}

void Queue::close() {
  // The driver's thread may be serving this queue: the driver stops it, and closes this queue after it.
  if (Queue* d = driver_.exchange(nullptr)) {
    d->close();
    return;
  }
  std::lock_guard<std::mutex> g(closeMutex_);
  if (closed_) return;
  closed_ = true;
  if (started_) {
    uint64_t one = 1;
    if (write(stopFd_, &one, sizeof one) < 0) counters_.errors++;
    thread_.join();
  }
  if (late_) {
    cfg_.lateBudget->leave(&latePair_);
    late_->driver_.store(nullptr);
    late_->close();
  }
  if (attached_) cfg_.cache->detachQueue();
  std::vector<std::unique_ptr<Batch>> rest;
  {
    std::lock_guard<std::mutex> t(tableMutex_);
    for (auto& kv : pending_) rest.push_back(std::move(kv.second));
    pending_.clear();
  }
  if (current_ && current_->count) rest.push_back(std::move(current_));
  // Parked packets were never counted as waiting (waitCounted stays false): only their verdicts are owed.
  if (lot_ && lot_->count) rest.push_back(std::move(lot_));
  for (auto& b : rest) defaultBatch(std::move(b));

  // The kernel drops what is still queued when the socket closes; unbinding first frees the queue number at once.
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nfq_nlmsg_put(buf.data(), NFQNL_MSG_CONFIG, cfg_.queue);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_UNBIND);
  if (!sendAll(reinterpret_cast<char*>(nlh), nlh->nlmsg_len)) counters_.errors++;
  mnl_socket_close(nl_);
  nl_ = nullptr;
  fd_ = -1;
  ::close(stopFd_);
  stopFd_ = -1;
}

size_t Queue::pendingCount() {
  std::lock_guard<std::mutex> g(tableMutex_);
  return pending_.size();
}

uint64_t Queue::threadIdleMs() const {
  if (!started_ || closed_) return 0;
  int64_t d = nowMs() - lastLoopMs_.load();
  return d < 0 ? 0 : uint64_t(d);
}

KernelQueueInfo Queue::kernelInfo() const {
  KernelQueueInfo info;
  FILE* f = std::fopen("/proc/net/netfilter/nfnetlink_queue", "re");
  if (!f) return info;
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    unsigned long long c[8];
    if (std::sscanf(line, "%llu %llu %llu %llu %llu %llu %llu %llu", &c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6],
                    &c[7]) == 8 &&
        c[0] == cfg_.queue && c[1] == portid_) {
      info.found = true;
      info.total = c[2];
      info.dropped = c[5];
      info.userDropped = c[6];
      info.idSequence = c[7];
      break;
    }
  }
  std::fclose(f);
  return info;
}

}  // namespace nfqwall
