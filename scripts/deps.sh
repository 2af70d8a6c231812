#!/usr/bin/env bash
# Install the Debian 12 packages ibcrypt needs to build, test and run (idempotent).
set -euo pipefail

packages=(
  # toolchain and checks
  build-essential cmake pkg-config clang-format valgrind
  # libraries
  libsodium-dev libssl-dev openssl libjson-c-dev check libsystemd-dev
  libfuse3-dev libnbd-dev
  # the NBD stack and block-device tests (libnbd-bin has nbdcopy, nbdfuse)
  nbdkit nbdkit-plugin-dev libnbd-bin fuse3 e2fsprogs util-linux
  # independent implementations and references for cross-checks/benchmarks
  python3 python3-cryptography cryptsetup-bin fio
  # systemd-analyze verify/security for the unit tests; setpriv, groupadd
  systemd passwd
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q "${missing[@]}"
