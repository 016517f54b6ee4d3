/*
 * A bounded UDP flood: sends COUNT datagrams of SIZE bytes to ADDR:PORT with sendmmsg, stopping early after SECONDS.
 * Prints "sent N seconds S" when done. With SOURCES (a comma list of local addresses), one socket per source sends
 * in turn, a burst each, so the flood is several address pairs (flows the kernel's --queue-balance hash can spread).
 * With SPORT (not 0), every socket sends from that port and first opens its flow: one 1-byte datagram, then it waits
 * for the server's reply (up to 3 tries of 1 s), so a connection tracker in between has seen both directions and
 * the flood is ESTABLISHED traffic; it fails if a flow gets no reply. The handshake is not part of COUNT or SECONDS.
 * Without SPORT each socket has a fresh ephemeral port: new flows that never see a reply.
 * With PORTS (above 1; SPORT must be 0), each datagram goes to the next of PORTS consecutive ports from PORT, and one
 * socket sends a whole round of the ports before the next takes over: every datagram is a new connection (a new
 * address and port pair) for the first PORTS x sources datagrams, as a flood of connection attempts is. (A socket per
 * burst, as without PORTS, sent about half of the ports from the same socket again in every later round.)
 *
 * usage: udp-flood ADDR PORT COUNT SECONDS SIZE [SOURCES [SPORT [PORTS]]]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64
#define MAX_SOURCES 16

static double now(void) {
  struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 6 || argc > 9) { fprintf(stderr, "usage: %s ADDR PORT COUNT SECONDS SIZE [SOURCES [SPORT [PORTS]]]\n", argv[0]); return 2; }
  const char *addr = argv[1];
  int port = atoi(argv[2]);
  unsigned long count = strtoul(argv[3], NULL, 10);
  double seconds = atof(argv[4]);
  size_t size = strtoul(argv[5], NULL, 10);
  if (size < 1 || size > 1400 || seconds <= 0 || seconds > 60) { fprintf(stderr, "bad size or seconds\n"); return 2; }

  struct sockaddr_storage ss; memset(&ss, 0, sizeof ss);
  socklen_t sslen;
  int fam;
  struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) { fam = AF_INET; s4->sin_family = AF_INET; s4->sin_port = htons(port); sslen = sizeof *s4; }
  else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) { fam = AF_INET6; s6->sin6_family = AF_INET6; s6->sin6_port = htons(port); sslen = sizeof *s6; }
  else { fprintf(stderr, "bad address %s\n", addr); return 2; }

  int sport = argc >= 8 ? atoi(argv[7]) : 0;
  if (sport < 0 || sport > 65535) { fprintf(stderr, "bad source port %s\n", argv[7]); return 2; }
  int ports = argc == 9 ? atoi(argv[8]) : 1;
  if (ports < 1 || port + ports - 1 > 65535 || (ports > 1 && sport != 0)) { fprintf(stderr, "bad port count %s\n", argv[8]); return 2; }
  int fds[MAX_SOURCES];
  int nfds = 0;
  char *sources = argc >= 7 && argv[6][0] != '\0' ? strdup(argv[6]) : NULL;
  char *save = NULL;
  char *src = sources != NULL ? strtok_r(sources, ",", &save) : NULL;
  do {
    if (nfds == MAX_SOURCES) { fprintf(stderr, "more than %d sources\n", MAX_SOURCES); return 2; }
    int fd = socket(fam, SOCK_DGRAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    if (src != NULL || sport != 0) {
      struct sockaddr_storage ls; memset(&ls, 0, sizeof ls);
      struct sockaddr_in *l4 = (struct sockaddr_in *)&ls;
      struct sockaddr_in6 *l6 = (struct sockaddr_in6 *)&ls;
      if (fam == AF_INET) { l4->sin_family = AF_INET; l4->sin_port = htons(sport); }
      else { l6->sin6_family = AF_INET6; l6->sin6_port = htons(sport); }
      if (src != NULL) {
        int ok = fam == AF_INET ? inet_pton(AF_INET, src, &l4->sin_addr) : inet_pton(AF_INET6, src, &l6->sin6_addr);
        if (ok != 1) { fprintf(stderr, "bad source %s\n", src); return 2; }
      }
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (bind(fd, (struct sockaddr *)&ls, fam == AF_INET ? sizeof *l4 : sizeof *l6) < 0) { perror("bind"); return 1; }
    }
    if (ports == 1 && connect(fd, (struct sockaddr *)&ss, sslen) < 0) { perror("connect"); return 1; }
    if (sport != 0) {
      /* The 1-byte datagram is the only size the server answers (its other datagrams are dropped unread). */
      int answered = 0;
      for (int tries = 0; tries < 3 && !answered; tries++) {
        char hello = 'h', reply[2048];
        if (send(fd, &hello, 1, 0) < 0 && errno != ECONNREFUSED) { perror("send"); return 1; }
        struct pollfd p = {fd, POLLIN, 0};
        while (!answered && poll(&p, 1, 1000) > 0) {
          ssize_t r = recv(fd, reply, sizeof reply, 0);
          if (r == 1) answered = 1;
          else if (r < 0 && errno != ECONNREFUSED && errno != EINTR) { perror("recv"); return 1; }
        }
      }
      if (!answered) { fprintf(stderr, "no reply to the handshake from source %s port %d\n", src != NULL ? src : "(any)", sport); return 1; }
    }
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
    fds[nfds++] = fd;
    src = src != NULL ? strtok_r(NULL, ",", &save) : NULL;
  } while (src != NULL);

  char *payload = calloc(1, size);
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  struct sockaddr_storage to[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = payload; iov[i].iov_len = size;
    msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
    if (ports > 1) { to[i] = ss; msgs[i].msg_hdr.msg_name = &to[i]; msgs[i].msg_hdr.msg_namelen = sslen; }
  }
  unsigned next = 0;

  double start = now(), deadline = start + seconds;
  unsigned long sent = 0;
  unsigned turn = 0;
  while (sent < count) {
    if (now() >= deadline) break;
    unsigned want = count - sent < BATCH ? (unsigned)(count - sent) : BATCH;
    // A burst does not cross the end of a round of the ports: the round's socket sends all of it.
    if (ports > 1 && want > (unsigned)ports - next % (unsigned)ports) want = (unsigned)ports - next % (unsigned)ports;
    for (unsigned i = 0; ports > 1 && i < want; i++) {
      uint16_t p = htons((uint16_t)(port + (next + i) % (unsigned)ports));
      if (fam == AF_INET) ((struct sockaddr_in *)&to[i])->sin_port = p;
      else ((struct sockaddr_in6 *)&to[i])->sin6_port = p;
    }
    int fd = ports > 1 ? fds[(next / (unsigned)ports) % (unsigned)nfds] : fds[turn++ % nfds];
    int n = sendmmsg(fd, msgs, want, 0);
    if (n < 0) {
      if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) continue;
      perror("sendmmsg"); return 1;
    }
    sent += (unsigned)n;
    next += (unsigned)n;
  }
  printf("sent %lu seconds %.6f\n", sent, now() - start);
  return 0;
}
