#!/usr/bin/env bash
# Builds the libFuzzer target for the packet parser and the connection table (native/conntrack_fuzz.cc) with
# AddressSanitizer and UndefinedBehaviorSanitizer, and runs it for a bounded time.
#   scripts/fuzz.sh [seconds]      default 60; FUZZ_JOBS=n runs n workers; FUZZ_DIR holds binary, corpus, crashes
# clang is not part of the bootstrap: this script installs it on demand (root), as only fuzzing needs it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
say() { printf 'fuzz: %s\n' "$*" >&2; }

# clang and its sanitizer/fuzzer runtimes (libclang-rt-dev: libclang_rt.fuzzer, .asan, .ubsan).
need=()
command -v clang++ >/dev/null 2>&1 || need+=(clang)
dpkg-query -W -f='${Status}' libclang-rt-dev 2>/dev/null | grep -q 'install ok installed' || need+=(libclang-rt-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing: ${need[*]} (run as root, or: apt-get install ${need[*]})"
    exit 1
  fi
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Outside build/ (node-gyp rebuild deletes it) and outside the tree: the corpus grows and is never committed.
out=${FUZZ_DIR:-${TMPDIR:-/tmp}/nfqwall-fuzz}
mkdir -p "$out/corpus" "$out/artifacts"
bin="$out/conntrack_fuzz"
srcs=(native/packet.cc native/nat.cc native/conntrack.cc native/conntrack_fuzz.cc)
if [ ! -x "$bin" ] || [ -n "$(find "${srcs[@]}" native/*.h -newer "$bin" -print -quit)" ]; then
  say "building $bin"
  clang++ -std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -Inative "${srcs[@]}" -o "$bin"
fi

# Seeds: operation headers followed by real packets (IPv4 TCP SYN, its SYN-ACK, a UDP datagram and an ICMP error
# quoting it), so the run starts from tracked connections instead of searching for an IP header.
seed="$out/corpus/seed-handshake"
if [ ! -f "$seed" ]; then
  python3 - "$seed" <<'PY'
import struct, sys
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def ip4(src, dst, proto, l4):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, bytes(src), bytes(dst))
    h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    return h + l4
def tcp(sp, dp, flags):
    return struct.pack('!HHIIBBHHH', sp, dp, 1, 0, 0x50, flags, 64240, 0, 0)
def udp(sp, dp):
    return struct.pack('!HHHH', sp, dp, 12, 0) + b'abcd'
C, S = [198, 18, 0, 1], [198, 18, 0, 2]
pkts = [
    (bytes([0x31, 0x05, 0, 0, 1, 0, 0, 0]), ip4(C, S, 6, tcp(40000, 80, 0x02))),
    (bytes([0x31, 0x00, 0, 0, 0, 0, 0, 0]), ip4(S, C, 6, tcp(80, 40000, 0x12))),
    (bytes([0x71, 0x03, 0x10, 0x20, 3, 1, 0, 1]), ip4(C, S, 17, udp(5000, 53))),
]
err = ip4(S, C, 1, struct.pack('!BBHI', 3, 3, 0, 0) + pkts[2][1][:28])
pkts.append((bytes([0x71, 0, 0, 0, 0, 0, 0, 0xfd]), err))
with open(sys.argv[1], 'wb') as f:
    for hdr, p in pkts:
        f.write(hdr + struct.pack('!H', len(p)) + p)
PY
fi

say "running for ${seconds}s"
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
  -artifact_prefix="$out/artifacts/" ${FUZZ_JOBS:+-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"} "$out/corpus"
