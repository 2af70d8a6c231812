#!/usr/bin/env bash
# nbdcopy of an encrypted export over a sparse backing file gives the same
# bytes with and without extents: holes below the cipher must not reach
# the client as zeros (never-written ranges decrypt to noise, not zeros).
#
# Stacks (IBC_COPY_STACKS, default "fallback full"): fallback alone over
# file, and fallback + passthrough + keyslot over file.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

requires nbdcopy --version
requires_built "$NBDIO"

size=$((64 << 20))
make_tmpdir
make_key "$tmp/key" 64

copy_test ()
{
  local kind=$1 d=$tmp/$1 uri img
  mkdir "$d"
  img=$d/backing.img
  echo "== stack: $kind"

  truncate -s "$size" "$img"
  ibc_stack "$kind" "$size" "$tmp/key" "$d"
  start_nbdkit "$d/s.sock" "$d/nbdkit.pid" "${STACK_FILTERS[@]}" \
    file "$img" "${STACK_PARAMS[@]}"
  local nbdkit_pid=$NBDKIT_PID
  uri=$(nbd_uri "$d/s.sock")

  # Written: random data (one piece across the d0/d1 boundary at 32 MiB),
  # NBD zeroes, plaintext zeros.  Everything else is never written.
  "$NBDIO" "$uri" pattern-write 0 1M 1 pattern-write 8M 3M 2 \
    pattern-write 31M 2M 3 zero 40M 1M ||
    fail "$kind: writing the test data failed"
  head -c 1M /dev/zero | "$NBDIO" "$uri" write 48M 1M ||
    fail "$kind: writing plaintext zeros failed"

  # Preconditions that make the comparison meaningful: the backing file
  # is sparse, and a never-written range reads as noise.
  local allocated=$(($(stat -c '%b * %B' "$img")))
  [ "$allocated" -lt $((size / 4)) ] ||
    fail "$kind: backing file is not sparse ($allocated bytes allocated)"
  "$NBDIO" "$uri" read 16M 64K >"$d/unwritten" ||
    fail "$kind: reading a never-written range failed"
  ! is_all_zero "$d/unwritten" ||
    fail "$kind: a never-written range reads as zeros: is the export encrypted?"

  # Block status must never claim ZERO (bit 1) on an encrypted range.
  "$NBDIO" "$uri" extents 0 "$size" >"$d/extents" ||
    fail "$kind: block status failed"
  if awk '{ if (int($3 / 2) % 2) bad = 1 } END { exit !bad }' "$d/extents"; then
    fail "$kind: extents report ZERO: $(tr '\n' ';' <"$d/extents")"
  fi

  nbdcopy "$uri" "$d/with-extents.img" ||
    fail "$kind: nbdcopy $uri failed"
  nbdcopy --no-extents "$uri" "$d/no-extents.img" ||
    fail "$kind: nbdcopy --no-extents $uri failed"
  cmp "$d/with-extents.img" "$d/no-extents.img" ||
    fail "$kind: nbdcopy with extents differs from nbdcopy --no-extents"

  # And the copy holds what was written.
  nbdkit -U - file "$d/with-extents.img" --run "
    '$NBDIO' \"\$uri\" pattern-check 0 1M 1 pattern-check 8M 3M 2 \
      pattern-check 31M 2M 3" ||
    fail "$kind: the copy does not hold the written data"
  is_all_zero "$d/with-extents.img" $((40 << 20)) $((1 << 20)) ||
    fail "$kind: the zeroed range is not zero in the copy"
  is_all_zero "$d/with-extents.img" $((48 << 20)) $((1 << 20)) ||
    fail "$kind: the zero-written range is not zero in the copy"

  stop_nbdkit "$nbdkit_pid" || fail "$kind: nbdkit did not stop cleanly on SIGTERM"
  echo "== stack: $kind: OK"
}

for kind in ${IBC_COPY_STACKS:-fallback full}; do
  copy_test "$kind"
done
