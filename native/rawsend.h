#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace nfqwall {
// Sends a complete IPv4 or IPv6 packet (header included) as a locally generated packet of this network namespace,
// the way the kernel's REJECT sends its ICMP errors and resets: it goes through the OUTPUT hook and routing.
// Returns 0, or -errno.
int sendRawPacket(const uint8_t* data, size_t len);

// The daemon opens both raw sockets at start, while it still holds CAP_NET_RAW, and keeps them after dropping it
// (docs/robustness.md, Privilege). Without that, the first REJECT opens them (library use, tests).
// Opens the socket of `family` (AF_INET, AF_INET6) unless already open: its descriptor, or -errno.
int openRawSocket(int family);
// Takes over `fd` (a raw socket inherited across a re-exec) as the socket of `family`; "" or what is wrong with it.
std::string adoptRawSocket(int family, int fd);
// The socket of `family`, or -1.
int rawSocketFd(int family);
}  // namespace nfqwall
