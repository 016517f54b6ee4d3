#include "rawsend.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace nfqwall {
namespace {

// One IPPROTO_RAW socket per family for the life of the process: with IPPROTO_RAW the kernel takes our header as is
// (IP_HDRINCL for IPv4, implied for IPv6 too). Used from the JS thread only.
int fds[2] = {-1, -1};

int& slot(int family) { return fds[family == AF_INET6 ? 1 : 0]; }

int rawSocket(int family) { return openRawSocket(family); }

}  // namespace

int openRawSocket(int family) {
  int& fd = slot(family);
  if (fd < 0) fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  return fd < 0 ? -errno : fd;
}

int rawSocketFd(int family) { return slot(family); }

std::string adoptRawSocket(int family, int fd) {
  const char* name = family == AF_INET6 ? "IPv6" : "IPv4";
  int domain = 0, type = 0, proto = 0;
  socklen_t len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
    return std::string(name) + " raw socket " + std::to_string(fd) + ": " + std::strerror(errno);
  len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) return std::string(name) + ": SO_TYPE: " + std::strerror(errno);
  len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0)
    return std::string(name) + ": SO_PROTOCOL: " + std::strerror(errno);
  if (domain != family || type != SOCK_RAW || proto != IPPROTO_RAW)
    return std::string("descriptor ") + std::to_string(fd) + " is not an " + name + " IPPROTO_RAW socket";
  // Inherited without it (for the exec); no later child may have it.
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
    return std::string(name) + " raw socket: FD_CLOEXEC: " + std::strerror(errno);
  int& cur = slot(family);
  if (cur >= 0 && cur != fd) close(cur);
  cur = fd;
  return "";
}

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
