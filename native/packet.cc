// See packet.h. Mirrors src/engine/packet.ts for the fields both read.
#include "packet.h"

namespace nfqwall {
namespace pkt {

namespace {

constexpr uint8_t kNextHop = 0, kNextRouting = 43, kNextFragment = 44, kNextAuth = 51, kNextNone = 59, kNextDest = 60;
constexpr int kMaxExtHeaders = 64;

bool isExt(uint8_t nh) {
  return nh == kNextHop || nh == kNextRouting || nh == kNextFragment || nh == kNextAuth || nh == kNextNone ||
         nh == kNextDest;
}

// Bytes of the transport header the tracker reads: what the kernel's pkt_to_tuple and state machine read.
uint32_t l4Need(uint8_t proto, bool inner) {
  switch (proto) {
    case kProtoTcp:
      return inner ? 8 : 20;
    case kProtoUdp:
    case kProtoUdplite:
    case kProtoIcmp:
    case kProtoIcmpv6:
      return 8;
    case kProtoSctp:
      return inner ? 8 : 12;
    case kProtoDccp:
      return inner ? 8 : 12;
    default:
      return 0;
  }
}

uint32_t mix(uint32_t h, uint32_t v) {
  h ^= v + 0x9e3779b9u + (h << 6) + (h >> 2);
  return h;
}

void parseL4(const uint8_t* p, size_t len, Parsed& h, uint32_t off, bool inner) {
  h.l4off = off;
  h.l4len = off <= len ? uint32_t(len - off) : 0;
  uint32_t need = l4Need(h.proto, inner);
  if (h.l4len < need) {
    h.truncated = true;
    return;
  }
  const uint8_t* l4 = p + off;
  Tuple& t = h.tuple;
  if (hasPorts(h.proto)) {
    t.sport = rd16(l4);
    t.dport = rd16(l4 + 2);
    if (h.proto == kProtoTcp && h.l4len >= 14) {
      h.tcpSeq = rd32(l4 + 4);
      h.tcpAck = rd32(l4 + 8);
      h.tcpFlags = l4[13];
    }
    if (h.proto == kProtoSctp && h.l4len >= 13) h.sctpChunk = l4[12];
  } else if (isIcmpProto(h.proto, h.family)) {
    h.icmpType = l4[0];
    h.icmpCode = l4[1];
    t.dport = uint16_t((l4[0] << 8) | l4[1]);
    // The identifier means something only for echo-like messages; errors are tracked through their quote.
    t.sport = isIcmpError(h.family, l4[0]) ? 0 : rd16(l4 + 4);
  }
}

void fingerprint(const uint8_t* p, size_t len, Parsed& h) {
  uint32_t f = mix(0x811c9dc5u, h.ipLen);
  f = mix(f, h.proto);
  if (h.family == 4 && len >= 6) f = mix(f, rd16(p + 4));
  if (h.family == 6 && len >= 4) f = mix(f, (uint32_t(p[1] & 0x0f) << 16) | rd16(p + 2));
  if (h.l4len > 0) {
    f = mix(f, h.tcpSeq);
    f = mix(f, h.tcpAck);
    f = mix(f, h.tcpFlags);
    if (isIcmpProto(h.proto, h.family) && h.l4len >= 8) f = mix(f, rd16(p + h.l4off + 6));  // echo sequence
    uint32_t hl = h.proto == kProtoTcp && h.l4len >= 13 ? uint32_t(p[h.l4off + 12] >> 4) * 4 : l4Need(h.proto, false);
    uint32_t start = h.l4off + hl;
    for (uint32_t i = 0; i < 8 && start + i < len; i++) f = mix(f, p[start + i]);
  }
  h.fingerprint = f;
}

Parsed parse4(const uint8_t* p, size_t len, bool inner) {
  Parsed h;
  h.family = 4;
  h.tuple.family = 4;
  if (len < 20 || (p[0] >> 4) != 4) return h;
  uint32_t ihl = uint32_t(p[0] & 0x0f) * 4;
  if (ihl < 20 || len < ihl) return h;
  h.ok = true;
  h.l3len = ihl;
  h.ipLen = rd16(p + 2);
  h.proto = p[9];
  h.tuple.proto = h.proto;
  std::memcpy(h.tuple.src, p + 12, 4);
  std::memcpy(h.tuple.dst, p + 16, 4);
  uint16_t frag = rd16(p + 6);
  if (frag & 0x1fff) {
    h.fragment = true;
    return h;
  }
  h.isFirstFragment = (frag & 0x2000) != 0;
  parseL4(p, len, h, ihl, inner);
  return h;
}

Parsed parse6(const uint8_t* p, size_t len, bool inner) {
  Parsed h;
  h.family = 6;
  h.tuple.family = 6;
  if (len < 40 || (p[0] >> 4) != 6) return h;
  h.ok = true;
  h.ipLen = 40u + rd16(p + 4);
  std::memcpy(h.tuple.src, p + 8, 16);
  std::memcpy(h.tuple.dst, p + 24, 16);
  uint8_t nh = p[6];
  uint32_t off = 40;
  for (int n = 0; isExt(nh) && nh != kNextNone; n++) {
    if (n >= kMaxExtHeaders || off + 8 > len) {
      h.truncated = true;
      h.proto = nh;
      h.l3len = off;
      return h;
    }
    uint32_t hl;
    if (nh == kNextFragment) {
      uint16_t fo = rd16(p + off + 2);
      if (fo & 0xfff8) {
        h.fragment = true;
        h.proto = p[off];
        h.tuple.proto = h.proto;
        h.l3len = off + 8;
        return h;
      }
      h.isFirstFragment = (fo & 1) != 0;
      hl = 8;
    } else if (nh == kNextAuth) {
      hl = (uint32_t(p[off + 1]) + 2) << 2;
    } else {
      hl = (uint32_t(p[off + 1]) + 1) << 3;
    }
    nh = p[off];
    off += hl;
  }
  if (off > len) {
    h.truncated = true;
    return h;
  }
  h.proto = nh;
  h.tuple.proto = nh;
  h.l3len = off;
  parseL4(p, len, h, off, inner);
  return h;
}

}  // namespace

bool isIcmpProto(uint8_t proto, uint8_t family) {
  return (proto == kProtoIcmp && family == 4) || (proto == kProtoIcmpv6 && family == 6);
}

bool hasPorts(uint8_t proto) {
  return proto == kProtoTcp || proto == kProtoUdp || proto == kProtoUdplite || proto == kProtoSctp ||
         proto == kProtoDccp;
}

bool isIcmpError(uint8_t family, uint8_t type) {
  // icmp_is_err(): destination unreachable, source quench, redirect, time exceeded, parameter problem. ICMPv6: < 128.
  if (family == 4) return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
  return type < 128;
}

Parsed parse(const uint8_t* p, size_t len, uint8_t family) {
  Parsed h = family == 4 ? parse4(p, len, false) : parse6(p, len, false);
  if (h.ok) fingerprint(p, len, h);
  return h;
}

bool parseIcmpErrorInner(const uint8_t* p, size_t len, const Parsed& outer, Inner& out) {
  if (!outer.ok || outer.truncated || outer.fragment || !isIcmpProto(outer.proto, outer.family)) return false;
  if (!isIcmpError(outer.family, outer.icmpType)) return false;
  uint32_t ioff = outer.l4off + 8;
  if (ioff >= len) return false;
  Parsed in = outer.family == 4 ? parse4(p + ioff, len - ioff, true) : parse6(p + ioff, len - ioff, true);
  if (!in.ok || in.truncated || in.fragment) return false;
  // An error about an error is never tracked (the kernel refuses to relate it).
  if (isIcmpProto(in.proto, in.family) && isIcmpError(in.family, in.icmpType)) return false;
  in.l4off += ioff;
  out.hdr = in;
  out.ipOff = ioff;
  return true;
}

uint32_t sum16(const uint8_t* d, size_t n, uint32_t init) {
  uint64_t s = init;
  size_t i = 0;
  for (; i + 1 < n; i += 2) s += uint32_t((d[i] << 8) | d[i + 1]);
  if (i < n) s += uint32_t(d[i] << 8);
  while (s >> 32) s = (s & 0xffffffffu) + (s >> 32);
  return uint32_t(s);
}

uint16_t fold(uint32_t s) {
  uint64_t x = s;
  while (x >> 16) x = (x & 0xffff) + (x >> 16);
  return uint16_t(x);
}

void csumReplace(uint8_t* check, const uint8_t* from, const uint8_t* to, size_t n) {
  uint32_t s = uint16_t(~rd16(check));
  for (size_t i = 0; i + 1 < n; i += 2) {
    s += uint16_t(~rd16(from + i));
    s += rd16(to + i);
  }
  wr16(check, uint16_t(~fold(s)));
}

void csumReplace16(uint8_t* check, uint16_t from, uint16_t to) {
  uint8_t a[2], b[2];
  wr16(a, from);
  wr16(b, to);
  csumReplace(check, a, b, 2);
}

void fixIpv4Checksum(uint8_t* p) {
  uint32_t ihl = uint32_t(p[0] & 0x0f) * 4;
  p[10] = p[11] = 0;
  wr16(p + 10, uint16_t(~fold(sum16(p, ihl))));
}

int l4ChecksumOffset(uint8_t proto, uint8_t family) {
  switch (proto) {
    case kProtoTcp:
      return 16;
    case kProtoUdp:
    case kProtoUdplite:
    case kProtoDccp:
      return 6;
    case kProtoIcmpv6:
      return family == 6 ? 2 : -1;
    default:
      return -1;
  }
}

void fixTransportChecksum(uint8_t* p, size_t len, const Parsed& h) {
  if (h.l4len == 0 || h.l4off >= len) return;
  uint8_t* l4 = p + h.l4off;
  size_t n = len - h.l4off;
  if (h.proto == kProtoIcmp && h.family == 4) {
    if (n < 4) return;
    l4[2] = l4[3] = 0;
    wr16(l4 + 2, uint16_t(~fold(sum16(l4, n))));
    return;
  }
  if (h.proto == kProtoSctp) {
    fixSctpChecksum(l4, n);
    return;
  }
  int co = l4ChecksumOffset(h.proto, h.family);
  if (co < 0 || size_t(co) + 2 > n) return;
  const uint8_t* src = h.family == 4 ? p + 12 : p + 8;
  const uint8_t* dst = h.family == 4 ? p + 16 : p + 24;
  size_t alen = h.family == 4 ? 4 : 16;
  uint32_t s = sum16(src, alen) ;
  s = sum16(dst, alen, s);
  s += h.proto;
  s += uint32_t(n & 0xffff) + uint32_t(n >> 16);
  l4[co] = l4[co + 1] = 0;
  uint16_t c = uint16_t(~fold(sum16(l4, n, s)));
  if (c == 0 && h.proto == kProtoUdp) c = 0xffff;
  wr16(l4 + co, c);
}

bool transportHeaderValid(const uint8_t* p, size_t len, const Parsed& h) {
  if (h.l4len == 0 || h.ipLen <= h.l4off) return true;
  const uint32_t segLen = h.ipLen - h.l4off;
  if (h.proto == kProtoTcp && h.l4len >= 13) {
    const uint32_t doff = uint32_t(p[h.l4off + 12] >> 4) * 4;
    return doff >= 20 && doff <= segLen;
  }
  if (h.proto == kProtoUdp && h.l4len >= 6) {
    const uint32_t ulen = rd16(p + h.l4off + 4);
    // A first fragment carries the whole datagram's length: it can only be checked after reassembly.
    return ulen >= 8 && (h.isFirstFragment || ulen <= segLen);
  }
  (void)len;
  return true;
}

uint16_t tcpMssOption(const uint8_t* p, size_t len, const Parsed& h) {
  if (h.proto != kProtoTcp || h.l4len < 20) return 0;
  const size_t doff = size_t(p[h.l4off + 12] >> 4) * 4;
  if (doff < 20 || h.l4off + doff > len) return 0;
  // As tcp_parse_options() walks them: END stops, NOP is one byte, every other kind carries its length.
  for (size_t i = h.l4off + 20, end = h.l4off + doff; i < end;) {
    const uint8_t kind = p[i];
    if (kind == 0) break;
    if (kind == 1) {
      i++;
      continue;
    }
    if (i + 1 >= end || p[i + 1] < 2 || i + p[i + 1] > end) return 0;
    if (kind == 2 && p[i + 1] == 4) return rd16(p + i + 2);
    i += p[i + 1];
  }
  return 0;
}

bool transportChecksumOk(const uint8_t* p, size_t len, const Parsed& h) {
  if (h.l4len == 0 || h.isFirstFragment || len < h.ipLen || h.ipLen <= h.l4off) return true;
  const uint8_t* l4 = p + h.l4off;
  const size_t n = h.ipLen - h.l4off;
  if (h.proto == kProtoIcmp && h.family == 4) return fold(sum16(l4, n)) == 0xffff;
  const bool pseudo = h.proto == kProtoTcp || h.proto == kProtoUdp || (h.proto == kProtoIcmpv6 && h.family == 6);
  if (!pseudo) return true;
  // udp_error and udp6_error alike skip a datagram without a checksum (0), which IPv6 forbids but conntrack passes.
  if (h.proto == kProtoUdp && n >= 8 && rd16(l4 + 6) == 0) return true;
  const uint8_t* src = h.family == 4 ? p + 12 : p + 8;
  const uint8_t* dst = h.family == 4 ? p + 16 : p + 24;
  const size_t alen = h.family == 4 ? 4 : 16;
  uint32_t s = sum16(src, alen);
  s = sum16(dst, alen, s);
  s += h.proto;
  s += uint32_t(n & 0xffff) + uint32_t(n >> 16);
  return fold(sum16(l4, n, s)) == 0xffff;
}

uint32_t crc32c(const uint8_t* d, size_t n) {
  struct Table {
    uint32_t v[256];
    Table() {
      for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        v[i] = c;
      }
    }
  };
  static const Table table;  // a function-local static: initialised once, thread-safe
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) c = table.v[(c ^ d[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

void fixSctpChecksum(uint8_t* l4, size_t n) {
  if (n < 12) return;
  std::memset(l4 + 8, 0, 4);
  uint32_t c = crc32c(l4, n);
  // The CRC goes on the wire least significant byte first (RFC 4960 appendix B).
  l4[8] = uint8_t(c);
  l4[9] = uint8_t(c >> 8);
  l4[10] = uint8_t(c >> 16);
  l4[11] = uint8_t(c >> 24);
}

}  // namespace pkt
}  // namespace nfqwall
