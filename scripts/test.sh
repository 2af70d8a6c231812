#!/usr/bin/env bash
# Build ibcrypt and run every test: format, -Werror build, ctest, then the
# unit tests again under AddressSanitizer+UBSan and under valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
echo "== format check"
scripts/check-format.sh

echo "== build (warnings are errors)"
cmake -S . -B build -DIBC_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"

echo "== unit tests under ASan+UBSan"
cmake -S . -B build-asan -DIBC_WERROR=ON -DCMAKE_BUILD_TYPE=Debug \
  -DIBC_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$(nproc)"
ctest --test-dir build-asan -L unit --output-on-failure -j2

echo "== unit tests under valgrind"
scripts/valgrind-unit.sh build

echo "== all tests"
ctest --test-dir build --output-on-failure -j2
