/*
 * One TCP connection writing as fast as it can, for the bench's bulk transfer through the lab's fw: the traffic most
 * bytes on a real network are, which the kernel moves in segmentation-offloaded packets of up to 64 KiB.
 *
 * usage: tcp-bulk sink ADDR PORT          accepts connections one at a time and reads each to its end, discarding
 *                                         (prints "ready" once listening)
 *        tcp-bulk send ADDR PORT SECONDS  writes 256 KiB at a time for SECONDS, then shuts its side and waits for the
 *                                         sink to close, so every byte counted was read at the other end; prints
 *                                         "bytes N seconds S mss M" (M: the connection's segment size)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_addr(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof *a4;
    return AF_INET;
  }
  if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *len = sizeof *a6;
    return AF_INET6;
  }
  return -1;
}

static int sink(int family, const struct sockaddr_storage *ss, socklen_t len) {
  int l = socket(family, SOCK_STREAM, 0);
  int one = 1;
  if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(l, (const struct sockaddr *)ss, len) < 0 || listen(l, 4) < 0) {
    perror("tcp-bulk sink: listen");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  static char buf[CHUNK];
  for (;;) {
    int c = accept(l, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR) continue;
      perror("tcp-bulk sink: accept");
      return 1;
    }
    for (;;) {
      ssize_t n = read(c, buf, sizeof buf);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) perror("tcp-bulk sink: read");
      break;
    }
    close(c);
  }
}

static int send_for(int family, const struct sockaddr_storage *ss, socklen_t len, double seconds) {
  int s = socket(family, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (const struct sockaddr *)ss, len) < 0) {
    perror("tcp-bulk send: connect");
    return 1;
  }
  int mss = 0;
  socklen_t mssLen = sizeof mss;
  if (getsockopt(s, IPPROTO_TCP, TCP_MAXSEG, &mss, &mssLen) < 0) {
    perror("tcp-bulk send: TCP_MAXSEG");
    return 1;
  }
  static char buf[CHUNK];
  memset(buf, 0x5a, sizeof buf);
  uint64_t bytes = 0;
  double t0 = now_s();
  while (now_s() - t0 < seconds) {
    ssize_t n = write(s, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("tcp-bulk send: write");
      return 1;
    }
    bytes += (uint64_t)n;
  }
  if (shutdown(s, SHUT_WR) < 0) {
    perror("tcp-bulk send: shutdown");
    return 1;
  }
  // The sink closes once it has read everything: until then some of `bytes` may still be on the way.
  for (;;) {
    ssize_t n = read(s, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      perror("tcp-bulk send: read");
      return 1;
    }
  }
  printf("bytes %llu seconds %.3f mss %d\n", (unsigned long long)bytes, now_s() - t0, mss);
  close(s);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: tcp-bulk sink ADDR PORT | tcp-bulk send ADDR PORT SECONDS\n");
    return 2;
  }
  struct sockaddr_storage ss;
  socklen_t len;
  int family = parse_addr(argv[2], atoi(argv[3]), &ss, &len);
  if (family < 0) {
    fprintf(stderr, "tcp-bulk: bad address %s\n", argv[2]);
    return 2;
  }
  if (strcmp(argv[1], "sink") == 0) return sink(family, &ss, len);
  if (strcmp(argv[1], "send") == 0 && argc == 5) return send_for(family, &ss, len, atof(argv[4]));
  fprintf(stderr, "usage: tcp-bulk sink ADDR PORT | tcp-bulk send ADDR PORT SECONDS\n");
  return 2;
}
