#!/usr/bin/env bash
# ibcrypt-passthrough table load/resume through the trigger files: rejected
# loads leave the live table and say why in PATH.err; a loaded table takes
# effect only on resume.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

requires nbdkit --version
requires_built "$PASSTHROUGH" "$KEYSLOT" "$NBDIO"
make_tmpdir
M=1048576

# d1 lacks AES-XTS at 512 bytes, which d0 has.
printf '0 2048 linear d0 0\n' >"$tmp/table"
start_nbdkit "$tmp/s.sock" "$tmp/s.pid" \
  --filter="$PASSTHROUGH" --filter="$KEYSLOT" memory 64M \
  keyslot-device=d0,start=0,size=32M \
  keyslot-device=d1,start=32M,size=32M,modes=aes-xts:4096 \
  passthrough-table="$tmp/table" passthrough-load-file="$tmp/load" \
  passthrough-resume-file="$tmp/resume"
uri=$(nbd_uri "$tmp/s.sock")

# trigger NAME [TEXT]: drop a trigger file (renamed into place, so never
# read half-written) and connect until the filter has consumed it.
trigger ()
{
  local i
  printf '%b' "${2-}" >"$tmp/$1.tmp"
  mv "$tmp/$1.tmp" "$tmp/$1"
  for ((i = 0; i < 50; i++)); do
    [ -e "$tmp/$1" ] || return 0
    "$NBDIO" "$uri" size >/dev/null
    sleep 0.15
  done
  fail "$1 was not consumed"
}

expect_err () # expect_err NAME MESSAGE
{
  [ -f "$tmp/$1.err" ] || fail "no $1.err"
  [ "$(cat "$tmp/$1.err")" = "$2" ] || fail "$1.err: $(cat "$tmp/$1.err")"
}

"$NBDIO" "$uri" pattern-write 0 1M 1

trigger load '0 2048 linear d1 0\n'
expect_err load "Inline encryption capabilities of new table are more restrictive than the live table's"
trigger load '0 2048 error\n'
expect_err load "Inline encryption capabilities of new table are more restrictive than the live table's"
trigger load '0 4096 linear d0 0\n'
expect_err load "the new table has 4096 sectors but the device has 2048: a table swap must keep the device size"
trigger load '0 2048 linear nosuch 0\n'
expect_err load "unknown device 'nosuch': no such device in the ibcrypt layer 'keyslot' below"
trigger load '0 2048 linear d0 65535\n'
expect_err load "target at sector 0 maps bytes [33553920, 34602496) of device 'd0', which has 33554432 bytes"
trigger resume
expect_err resume "no table loaded"
"$NBDIO" "$uri" pattern-check 0 1M 1
echo "ok: rejected loads leave the live table"

# A loaded table waits for resume.
trigger load '0 2048 linear d0 2048\n'
[ ! -e "$tmp/load.err" ] || fail "load.err left after a good load"
"$NBDIO" "$uri" pattern-check 0 1M 1
trigger resume
[ ! -e "$tmp/resume.err" ] || fail "resume.err after a good resume"
"$NBDIO" "$uri" read 0 1M >"$tmp/out"
is_all_zero "$tmp/out" || fail "the resumed table does not map d0 at 1 MiB"
"$NBDIO" "$uri" pattern-write 0 1M 2
# Back to the first mapping, loaded and resumed by one look.
printf '0 2048 linear d0 0\n' >"$tmp/load.tmp"
mv "$tmp/load.tmp" "$tmp/load"
trigger resume
[ ! -e "$tmp/load" ] || fail "load not consumed with resume"
"$NBDIO" "$uri" pattern-check 0 1M 1
trigger load '0 2048 linear d0 2048\n'
trigger resume
"$NBDIO" "$uri" pattern-check 0 1M 2
stop_nbdkit "$NBDKIT_PID"
echo "ok: load + resume swap the live table"
