#pragma once
#include <cstddef>
#include <cstdint>

namespace nfqwall {
// Sends a complete IPv4 or IPv6 packet (header included) as a locally generated packet of this network namespace,
// the way the kernel's REJECT sends its ICMP errors and resets: it goes through the OUTPUT hook and routing.
// Returns 0, or -errno.
int sendRawPacket(const uint8_t* data, size_t len);
}  // namespace nfqwall
