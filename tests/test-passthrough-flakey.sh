#!/usr/bin/env bash
# ibcrypt-passthrough flakey target: up for 2 s, then reads and writes fail
# with EIO for 2 s, then up again (timed from when the table went live);
# the linear target next to it never fails.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

requires nbdkit --version
requires_built "$PASSTHROUGH" "$KEYSLOT" "$NBDIO"
make_tmpdir
now () { date +%s%3N; }

printf '0 2048 flakey d0 0 2 2\n2048 2048 linear d0 2048\n' >"$tmp/table"
t_launch=$(now)
start_nbdkit "$tmp/s.sock" "$tmp/s.pid" \
  --filter="$PASSTHROUGH" --filter="$KEYSLOT" memory 64M \
  keyslot-device=d0,start=0,size=32M passthrough-table="$tmp/table"
t_ready=$(now)
uri=$(nbd_uri "$tmp/s.sock")

conclusive=0
# check AT OP: AT ms after the server was ready, run OP on the flakey
# target (pattern-write or pattern-check of its first 64 KiB) and compare
# with what flakey must do.  The table went live between t_launch and
# t_ready, so the elapsed time is only known within bounds: when they
# straddle an interval edge the check is inconclusive.
check ()
{
  local at=$1 op=$2 a b lo hi got=up want=up status=0
  while (($(now) < t_ready + at)); do sleep 0.02; done
  a=$(now)
  "$NBDIO" "$uri" "$op" 0 64K 9 2>"$tmp/err" || status=$?
  b=$(now)
  case $status in
  0) ;;
  15) got=down ;; # EIO
  *) cat "$tmp/err" >&2; fail "$op: exit status $status" ;;
  esac
  lo=$((a - t_ready))
  hi=$((b - t_launch))
  if ((lo / 2000 != hi / 2000)); then
    echo "inconclusive: $op between $lo and $hi ms"
    return
  fi
  (((lo / 2000) % 2 == 0)) || want=down
  [ "$got" = "$want" ] || fail "$op at $lo..$hi ms: $got, expected $want"
  conclusive=$((conclusive + 1))
  echo "ok: $op at $lo..$hi ms: $got"
}

check 0 pattern-write
check 100 pattern-check
check 2300 pattern-check
check 2400 pattern-write
"$NBDIO" "$uri" pattern-write 1M 64K 9 pattern-check 1M 64K 9 # linear: up
check 4300 pattern-check
stop_nbdkit "$NBDKIT_PID"
((conclusive >= 4)) || skip "machine too slow for the timing checks"
