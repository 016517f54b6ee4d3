/*
 * The floor: the least work any NFQUEUE program can do per packet. Binds one queue (copy whole packets, GSO,
 * queue length 4096, the same settings nfqwall uses by default), drains every burst the socket holds, and answers
 * each burst with one NFQNL_MSG_VERDICT_BATCH (accept everything up to the burst's highest id).
 *
 * usage: minimal-nfq QUEUE   (prints "ready" once bound; on SIGTERM/SIGINT prints "packets N batches M" and exits)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

struct burst { uint32_t max_id; unsigned long count; };

static int on_packet(const struct nlmsghdr *nlh, void *data) {
  struct burst *b = data;
  struct nlattr *attr[NFQA_MAX + 1] = {0};
  if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == NULL) return MNL_CB_OK;
  struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
  uint32_t id = ntohl(ph->packet_id);
  if (id > b->max_id) b->max_id = id;
  b->count++;
  return MNL_CB_OK;
}

static void send_or_die(struct mnl_socket *nl, struct nlmsghdr *nlh) {
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) { perror("mnl_socket_sendto"); exit(1); }
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: %s QUEUE\n", argv[0]); return 2; }
  uint32_t queue = (uint32_t)strtoul(argv[1], NULL, 10);
  size_t bufsz = 0xffff + (MNL_SOCKET_BUFFER_SIZE / 2);
  char *buf = malloc(bufsz);
  char out[MNL_SOCKET_BUFFER_SIZE];

  struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL); sigaction(SIGINT, &sa, NULL);

  struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
  if (nl == NULL || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) { perror("mnl_socket"); return 1; }
  unsigned portid = mnl_socket_get_portid(nl);
  int fd = mnl_socket_get_fd(nl);
  int rcvbuf = 8 << 20, one = 1;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

  struct nlmsghdr *nlh = nfq_nlmsg_put(out, NFQNL_MSG_CONFIG, queue);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
  send_or_die(nl, nlh);
  nlh = nfq_nlmsg_put(out, NFQNL_MSG_CONFIG, queue);
  nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff);
  nfq_nlmsg_cfg_put_qmaxlen(nlh, 4096);
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_GSO));
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO));
  send_or_die(nl, nlh);
  printf("ready\n"); fflush(stdout);

  unsigned long packets = 0, batches = 0;
  while (!stop) {
    struct burst b = {0, 0};
    int flags = 0;
    for (;;) {
      ssize_t n = recv(fd, buf, bufsz, flags);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
        if (errno == ENOBUFS) continue;
        perror("recv"); return 1;
      }
      if (mnl_cb_run(buf, n, 0, portid, on_packet, &b) < 0 && errno != 0 && errno != ENOENT) { perror("mnl_cb_run"); return 1; }
      flags = MSG_DONTWAIT;
    }
    if (b.count == 0) continue;
    nlh = nfq_nlmsg_put(out, NFQNL_MSG_VERDICT_BATCH, queue);
    nfq_nlmsg_verdict_put(nlh, (int)b.max_id, NF_ACCEPT);
    send_or_die(nl, nlh);
    packets += b.count;
    batches++;
  }
  printf("packets %lu batches %lu\n", packets, batches);
  mnl_socket_close(nl);
  return 0;
}
