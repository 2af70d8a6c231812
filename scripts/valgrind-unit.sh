#!/usr/bin/env bash
# Run every unit-test binary of build dir $1 under valgrind memcheck
# (no fork, so valgrind sees the tests themselves); fail on any error.
set -euo pipefail
build=${1:-build}
status=0
for t in "$build"/tests/test-*; do
  [ -x "$t" ] || continue
  # IBC_TEST_QUICK shortens the stress loops: valgrind serialises threads.
  if ! CK_FORK=no IBC_TEST_QUICK=1 timeout 600 valgrind -q --error-exitcode=99 \
      --leak-check=full --errors-for-leak-kinds=definite \
      "$t" >"$t.valgrind.log" 2>&1; then
    echo "valgrind: $t failed:"
    tail -40 "$t.valgrind.log"
    status=1
  else
    echo "valgrind: $(basename "$t") clean"
  fi
done
exit $status
