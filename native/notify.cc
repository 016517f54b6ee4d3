// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET.
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace nfqwall {

int sdNotify(const std::string& state) {
  const char* path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) return 0;
  size_t len = strlen(path);
  if (path[0] != '/' && path[0] != '@') return -EAFNOSUPPORT;
  sockaddr_un addr{};
  if (len >= sizeof(addr.sun_path)) return -ENAMETOOLONG;
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path, len);
  bool abstract = path[0] == '@';
  if (abstract) addr.sun_path[0] = '\0';  // Linux abstract namespace: the name is not NUL-terminated
  socklen_t alen = socklen_t(offsetof(sockaddr_un, sun_path) + len + (abstract ? 0 : 1));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  ssize_t n;
  do n = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), alen);
  while (n < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  return n < 0 ? -err : 1;
}

}  // namespace nfqwall
