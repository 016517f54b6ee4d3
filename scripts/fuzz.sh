#!/usr/bin/env bash
# Builds the libFuzzer targets with AddressSanitizer and UndefinedBehaviorSanitizer and runs each for a bounded time:
#   packet     the packet parser and checksum writers (fuzz/packet_fuzz.cc -> native/packet.cc)
#   nat        the NAT rewrite of packets and of ICMP errors' quotes (fuzz/nat_fuzz.cc -> native/nat.cc)
#   conntrack  the connection table's classify/commit/translate over sequences of packets (native/conntrack_fuzz.cc)
#   flowcache  the flow cache's lookups, stores, waiting counts and drains against a model (fuzz/flowcache_fuzz.cc)
#   matcher    the rule matcher's loader and interpreter on arbitrary programs and packets (fuzz/matcher_fuzz.cc)
# and, never by default, two canaries with known bugs (fuzz/canary_fuzz.cc): canary-ub (signed overflow, UBSan) and
# canary-asan (a read past the input, ASan); their seeds trigger the bug, so a run of either must exit 1.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     default 60 s, every target
#   FUZZ_JOBS=n       n workers per target
#   FUZZ_DIR=dir      binaries, the growing corpus and crash artifacts (default $TMPDIR/nfqwall-fuzz)
#   FUZZ_NO_INSTALL=1 never install clang: exit 2 when it is missing (the mocha test sets it)
# Seeds are fuzz/corpus/<target>/ (made by fuzz/seeds.py); libFuzzer reads them and writes what it finds to FUZZ_DIR.
# Exit status: 0 when no target found anything, 1 when one did (its crash file is printed), 2 when it could not build.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(packet nat conntrack flowcache matcher)
say() { printf 'fuzz: %s\n' "$*" >&2; }

# clang and its sanitizer/fuzzer runtimes (libclang-rt-dev: libclang_rt.fuzzer, .asan, .ubsan).
need=()
command -v clang++ >/dev/null 2>&1 || need+=(clang)
dpkg-query -W -f='${Status}' libclang-rt-dev 2>/dev/null | grep -q 'install ok installed' || need+=(libclang-rt-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ -n "${FUZZ_NO_INSTALL:-}" ] || [ "$(id -u)" -ne 0 ]; then
    say "missing: ${need[*]} (apt-get install ${need[*]})"
    exit 2
  fi
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Outside build/ (node-gyp rebuild deletes it) and outside the tree: the corpus grows and is never committed.
out=${FUZZ_DIR:-${TMPDIR:-/tmp}/nfqwall-fuzz}
mkdir -p "$out/obj" "$out/artifacts"
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -Inative)

# The library sources once, shared by every target; each rebuilt when it or a header is newer than its object.
objs=()
for src in native/packet.cc native/nat.cc native/conntrack.cc native/flowcache.cc native/matcher.cc native/program_words.cc; do
  obj="$out/obj/$(basename "$src" .cc).o"
  if [ ! -f "$obj" ] || [ -n "$(find "$src" native/*.h -newer "$obj" -print -quit)" ]; then
    say "compiling $src"
    # Built aside and renamed, so a run sharing FUZZ_DIR never sees half a file.
    clang++ "${flags[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj.$$" && mv -f "$obj.$$" "$obj" || exit 2
  fi
  objs+=("$obj")
done

target_src() {
  case $1 in
    packet) echo fuzz/packet_fuzz.cc ;;
    nat) echo fuzz/nat_fuzz.cc ;;
    conntrack) echo native/conntrack_fuzz.cc ;;
    flowcache) echo fuzz/flowcache_fuzz.cc ;;
    matcher) echo fuzz/matcher_fuzz.cc ;;
    canary-ub | canary-asan) echo fuzz/canary_fuzz.cc ;;
    *) say "unknown target $1 (packet, nat, conntrack, flowcache, matcher, canary-ub, canary-asan)"; exit 2 ;;
  esac
}

failed=()
for t in "${targets[@]}"; do
  src=$(target_src "$t")
  bin="$out/${t}_fuzz"
  if [ ! -x "$bin" ] || [ -n "$(find "$src" "${objs[@]}" native/*.h -newer "$bin" -print -quit)" ]; then
    say "building $bin"
    clang++ "${flags[@]}" -fsanitize=fuzzer "$src" "${objs[@]}" -o "$bin.$$" && mv -f "$bin.$$" "$bin" || exit 2
  fi
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  say "running $t for ${seconds}s"
  # The first corpus directory is where new inputs go; the committed seeds are read only.
  if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t/" ${FUZZ_JOBS:+-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"} \
    "$out/corpus/$t" "fuzz/corpus/$t"; then
    failed+=("$t")
    say "$t FOUND A PROBLEM; reproduce with: $bin $(ls -t "$out/artifacts/$t"/* 2>/dev/null | head -1)"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  say "failed: ${failed[*]}"
  exit 1
fi
say "no problem found in ${targets[*]} (${seconds}s each)"
