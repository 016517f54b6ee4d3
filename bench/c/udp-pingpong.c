/*
 * UDP ping-pong with one datagram in flight, for round-trip latency through the lab's fw.
 *
 * usage: udp-pingpong echo ADDR PORT           echoes every datagram back (prints "ready" once bound)
 *        udp-pingpong ping ADDR PORT COUNT WARMUP
 *          sends WARMUP unmeasured, then COUNT measured round trips of a 16-byte datagram, each after the previous
 *          reply (or after a 200 ms timeout, counted as lost); prints
 *          "count N lost L min_us A p50_us B p99_us C p999_us D max_us E"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static uint64_t now_ns(void) {
  struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The smallest sample with at least fraction p of the samples at or below it. */
static double pct_us(const uint64_t *sorted, size_t n, double p) {
  size_t k = (size_t)(p * (double)n + 0.999999);
  if (k < 1) k = 1;
  if (k > n) k = n;
  return (double)sorted[k - 1] / 1000.0;
}

static int parse_addr(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) { s4->sin_family = AF_INET; s4->sin_port = htons(port); *len = sizeof *s4; return AF_INET; }
  if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) { s6->sin6_family = AF_INET6; s6->sin6_port = htons(port); *len = sizeof *s6; return AF_INET6; }
  return -1;
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: %s echo ADDR PORT | ping ADDR PORT COUNT WARMUP\n", argv[0]); return 2; }
  struct sockaddr_storage ss; socklen_t sslen;
  int fam = parse_addr(argv[2], atoi(argv[3]), &ss, &sslen);
  if (fam < 0) { fprintf(stderr, "bad address %s\n", argv[2]); return 2; }
  int fd = socket(fam, SOCK_DGRAM, 0);
  if (fd < 0) { perror("socket"); return 1; }

  if (strcmp(argv[1], "echo") == 0) {
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) { perror("bind"); return 1; }
    printf("ready\n"); fflush(stdout);
    char buf[2048];
    for (;;) {
      struct sockaddr_storage from; socklen_t flen = sizeof from;
      ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
      if (n < 0) { if (errno == EINTR) continue; perror("recvfrom"); return 1; }
      sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, flen);
    }
  }

  if (strcmp(argv[1], "ping") != 0 || argc != 6) { fprintf(stderr, "bad arguments\n"); return 2; }
  size_t count = strtoul(argv[4], NULL, 10), warmup = strtoul(argv[5], NULL, 10);
  if (count < 1 || count > 10000000) { fprintf(stderr, "bad count\n"); return 2; }
  if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) { perror("connect"); return 1; }
  uint64_t *rtt = calloc(count, sizeof *rtt);
  size_t got = 0, lost = 0;
  for (uint64_t seq = 0; seq < warmup + count; seq++) {
    uint64_t msg[2] = {seq, 0};
    uint64_t t0 = now_ns();
    if (send(fd, msg, sizeof msg, 0) < 0) { if (errno == ECONNREFUSED) { lost++; continue; } perror("send"); return 1; }
    int done = 0;
    uint64_t t1 = 0;
    while (!done) {
      uint64_t elapsed = now_ns() - t0;
      if (elapsed >= 200000000u) break;
      struct pollfd p = {fd, POLLIN, 0};
      int r = poll(&p, 1, (int)((200000000u - elapsed) / 1000000u) + 1);
      if (r < 0) { if (errno == EINTR) continue; perror("poll"); return 1; }
      if (r == 0) break;
      uint64_t reply[2];
      ssize_t n = recv(fd, reply, sizeof reply, 0);
      if (n == (ssize_t)sizeof reply && reply[0] == seq) { t1 = now_ns(); done = 1; } /* a late reply to an earlier ping is skipped */
    }
    if (seq < warmup) continue;
    if (done) rtt[got++] = t1 - t0;
    else lost++;
  }
  if (got == 0) { printf("count 0 lost %zu\n", lost); return 1; }
  qsort(rtt, got, sizeof *rtt, cmp_u64);
  printf("count %zu lost %zu min_us %.1f p50_us %.1f p99_us %.1f p999_us %.1f max_us %.1f\n", got, lost,
         (double)rtt[0] / 1000.0, pct_us(rtt, got, 0.50), pct_us(rtt, got, 0.99), pct_us(rtt, got, 0.999),
         (double)rtt[got - 1] / 1000.0);
  return 0;
}
