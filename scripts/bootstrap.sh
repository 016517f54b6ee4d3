#!/usr/bin/env bash
# Installs what nfqwall needs and builds it; does nothing that is already done.
# Run by `npm test`, `npm run demo` and `npm run bench` before anything else, so a fresh clone needs no other step.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'bootstrap: %s\n' "$*" >&2; }

# System packages: headers for the addon (libnetfilter_queue, libmnl, libpcap), the tools the tests and the daemon
# drive (iptables, iproute2; ipset and nfacct for the corpus files whose .prereq creates sets and accounting objects),
# and the compiler chain node-gyp uses; clang and its sanitizer/fuzzer runtimes for the
# short libFuzzer run of the test suite (test/robust/fuzz.test.ts; about 10 s to install here).
APT_PACKAGES=(libnetfilter-queue-dev libmnl-dev libpcap-dev pkg-config iptables iproute2 iputils-ping tcpdump conntrack ipset nfacct ethtool man-db systemd g++ make python3 procps clang libclang-rt-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing system packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})"
    exit 1
  fi
  say "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages, and with them the addon (npm runs node-gyp for a package with a binding.gyp).
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat node_modules/.nfqwall-lock 2>/dev/null)" != "$lock_sum" ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.nfqwall-lock
fi

# The addon: rebuild when any native source is newer than the module.
addon=build/Release/nfqwall.node
if [ ! -f "$addon" ] || [ -n "$(find native binding.gyp -newer "$addon" -print -quit)" ]; then
  say "building the native addon"
  npm run --silent build:native
fi
[ -f "$addon" ] || { say "the native addon was not built ($addon missing)"; exit 1; }

# TypeScript: tsc is incremental enough for a project this size; it also type-checks everything.
say "compiling TypeScript"
npx --no-install tsc -p tsconfig.json
