#!/usr/bin/env bash
# Configure and build ibcrypt into build/ (extra arguments go to cmake).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DIBC_WERROR=ON "$@"
cmake --build build -j"$(nproc)"
