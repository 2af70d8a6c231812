#!/usr/bin/env bash
# ibcrypt-passthrough over ibcrypt-keyslot, plain I/O: writes, zeroes and
# trims land at the mapped offsets of the backing file (linear, striped),
# zero targets read zeros and discard writes, error targets fail with EIO,
# extents are translated.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

py=/usr/bin/python3
requires nbdkit --version
requires $py --version
requires_built "$PASSTHROUGH" "$KEYSLOT" "$NBDIO"
make_tmpdir
M=1048576
n=0

# serve TABLE PLUGIN ARGS...: the stack with devices d0 = [0, 32M) and
# d1 = [32M, 64M) of the plugin's export; sets $uri.
serve ()
{
  local table=$1
  shift
  n=$((n + 1))
  printf '%b' "$table" >"$tmp/table$n"
  start_nbdkit "$tmp/s$n.sock" "$tmp/s$n.pid" \
    --filter="$PASSTHROUGH" --filter="$KEYSLOT" "$@" \
    keyslot-device=d0,start=0,size=32M keyslot-device=d1,start=32M,size=32M \
    passthrough-table="$tmp/table$n"
  uri=$(nbd_uri "$tmp/s$n.sock")
}

# ---- 1. writes, zeroes and trims onto a file ----
head -c $((64 * M)) /dev/zero | tr '\0' '\252' >"$tmp/disk"
head -c $((5 * M)) /dev/urandom >"$tmp/src"
serve '0 2048 linear d1 4096\n2048 4096 striped 2 8 d0 0 d1 0\n6144 2048 zero\n8192 2048 linear d0 8192\n' \
  file "$tmp/disk"
[ "$("$NBDIO" "$uri" size)" = $((5 * M)) ] || fail "size"
"$NBDIO" "$uri" write 0 5M <"$tmp/src"
# Zero across two stripe chunks (d1 then d0) and inside the linear target;
# trim (the file plugin punches a hole) in the first linear target.
"$NBDIO" "$uri" zero $((M + 4096)) 8192 zero $((4 * M + 65536)) 65536 \
  trim 131072 65536
"$NBDIO" "$uri" read 0 5M >"$tmp/out"
stop_nbdkit "$NBDKIT_PID"

(cd "$tmp" && $py - <<'EOF') || fail "data not at the mapped offsets"
import sys
M = 1 << 20
src = bytearray(open("src", "rb").read())
src[M + 4096:M + 12288] = bytes(8192)                 # the zeroes and trim
src[4 * M + 65536:4 * M + 131072] = bytes(65536)
src[131072:196608] = bytes(65536)
disk = open("disk", "rb").read()
out = open("out", "rb").read()
exp = bytearray(b"\xaa" * (64 * M))
exp[34 * M:35 * M] = src[0:M]                         # linear d1 4096
for c in range(512):                                  # striped 2 8 d0 0 d1 0
    row = (c // 2) * 4096
    dst = row if c % 2 == 0 else 32 * M + row
    exp[dst:dst + 4096] = src[M + c * 4096:M + (c + 1) * 4096]
exp[4 * M:5 * M] = src[4 * M:5 * M]                   # linear d0 8192
if bytes(exp) != disk:
    bad = next(i for i in range(len(disk)) if disk[i] != exp[i])
    sys.exit("backing file differs at byte %d" % bad)
want = bytes(src[:3 * M]) + bytes(M) + bytes(src[4 * M:])  # zero target
if out != want:
    bad = next(i for i in range(len(out)) if out[i] != want[i])
    sys.exit("read-back differs at byte %d" % bad)
EOF
echo "ok: linear, striped, zero target, zero and trim mapped"

# ---- 2. error target: EIO for every data operation, neighbours fine ----
serve '0 2048 linear d0 0\n2048 2048 error\n' memory 64M
"$NBDIO" "$uri" pattern-write 0 1M 5 pattern-check 0 1M 5
expect_fail EIO "$NBDIO" "$uri" read $M 4096
expect_fail EIO "$NBDIO" "$uri" read $((M - 4096)) 8192
expect_fail EIO "$NBDIO" "$uri" write $M 4096 < <(head -c 4096 /dev/zero)
expect_fail EIO "$NBDIO" "$uri" zero $((M + 8192)) 4096
expect_fail EIO "$NBDIO" "$uri" trim $((M + 8192)) 4096
"$NBDIO" "$uri" pattern-check 0 1M 5
stop_nbdkit "$NBDKIT_PID"
echo "ok: error target fails with EIO"

# ---- 3. extents: translated from the lower device; zero = hole, error = data ----
truncate -s $((64 * M)) "$tmp/sparse"
# 64 KiB of data at d1 + 4 KiB + 64 KiB, which the table shows at 64 KiB.
dd if=/dev/urandom of="$tmp/sparse" bs=4096 count=16 conv=notrunc status=none \
  seek=$(((32 * M + 4096 + 65536) / 4096))
serve '0 2048 linear d1 8\n2048 2048 error\n4096 2048 zero\n' file "$tmp/sparse"
"$NBDIO" "$uri" extents 0 3M >"$tmp/map"
stop_nbdkit "$NBDKIT_PID"
printf '%s\n' "0 65536 3" "65536 65536 0" "131072 917504 3" \
  "1048576 1048576 0" "2097152 1048576 3" >"$tmp/want"
diff -u "$tmp/want" "$tmp/map" || fail "extents"
echo "ok: extents"
