// NAT bindings: what the engine asks for when a new connection meets DNAT/SNAT/MASQUERADE/REDIRECT/NETMAP, and the
// packet rewrites that apply a binding (nf_nat_core.c, nf_nat_proto.c). The choice of a unique tuple lives in
// ConnTable (it needs the table); this file holds the request shape and the byte-level manipulation.
#pragma once

#include <cstddef>
#include <cstdint>

#include "packet.h"

namespace nfqwall {
namespace nat {

// enum nf_nat_manip_type.
constexpr uint8_t kManipSrc = 0;
constexpr uint8_t kManipDst = 1;

// NF_NAT_RANGE_* (include/uapi/linux/netfilter/nf_nat.h).
constexpr uint32_t kMapIps = 1;
constexpr uint32_t kProtoSpecified = 2;
constexpr uint32_t kProtoRandom = 4;
constexpr uint32_t kPersistent = 8;
constexpr uint32_t kProtoRandomFully = 16;
constexpr uint32_t kProtoOffset = 32;
constexpr uint32_t kNetmap = 64;
constexpr uint32_t kProtoRandomAll = kProtoRandom | kProtoRandomFully;

// One binding request, as struct nf_nat_range2 plus what MASQUERADE needs to be forgotten with its interface.
// The engine resolves the address: MASQUERADE's outgoing interface address, REDIRECT's incoming interface address or
// the loopback, NETMAP's mapped address (a one-address range, or kNetmap with the prefix in minAddr/maxAddr as the
// kernel's netmap does: new = (old & ~mask) | (minAddr & mask), mask = ~(minAddr ^ maxAddr)).
struct Request {
  uint8_t manip = kManipDst;
  uint32_t flags = 0;
  uint8_t minAddr[16] = {};
  uint8_t maxAddr[16] = {};
  uint16_t minPort = 0, maxPort = 0, basePort = 0;
  // MASQUERADE: the interface whose address was used (0 otherwise); flushByInterface forgets these bindings.
  uint32_t masqIfindex = 0;
};

// Writes the `manip` part of `target` into the packet whose headers `h` describes: for kManipSrc the source address
// and source port (or ICMP id), for kManipDst the destination address and destination port (ICMP id for echo).
// Updates the IPv4 header checksum and the transport checksum incrementally (SCTP: recomputed CRC32c). A transport
// header cut short (an ICMP error's quote) gets its ports changed and its checksum left alone, as the kernel does.
// Returns false when the packet is too short for the change.
bool manipPacket(uint8_t* p, size_t len, const pkt::Parsed& h, const pkt::Tuple& target, uint8_t manip,
                 uint32_t ipOff = 0);

}  // namespace nat
}  // namespace nfqwall
