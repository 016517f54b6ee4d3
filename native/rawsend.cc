#include "rawsend.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace nfqwall {
namespace {

// One IPPROTO_RAW socket per family for the life of the process: with IPPROTO_RAW the kernel takes our header as is
// (IP_HDRINCL for IPv4, implied for IPv6 too). Opened on first use, from the JS thread only.
int rawSocket(int family) {
  static int fds[2] = {-1, -1};
  int& fd = fds[family == AF_INET6 ? 1 : 0];
  if (fd < 0) fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  return fd < 0 ? -errno : fd;
}

}  // namespace

int sendRawPacket(const uint8_t* data, size_t len) {
  if (len < 1) return -EINVAL;
  const int version = data[0] >> 4;
  sockaddr_storage to{};
  socklen_t toLen;
  int family;
  if (version == 4 && len >= 20) {
    family = AF_INET;
    auto* sin = reinterpret_cast<sockaddr_in*>(&to);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, data + 16, 4);
    toLen = sizeof(sockaddr_in);
  } else if (version == 6 && len >= 40) {
    family = AF_INET6;
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&to);
    sin6->sin6_family = AF_INET6;
    std::memcpy(&sin6->sin6_addr, data + 24, 16);
    toLen = sizeof(sockaddr_in6);
  } else {
    return -EINVAL;
  }
  int fd = rawSocket(family);
  if (fd < 0) return fd;
  ssize_t n = sendto(fd, data, len, 0, reinterpret_cast<sockaddr*>(&to), toLen);
  if (n < 0) return -errno;
  return n == static_cast<ssize_t>(len) ? 0 : -EMSGSIZE;
}

}  // namespace nfqwall
