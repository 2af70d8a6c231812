#!/usr/bin/env bash
# The key lifecycle through ibcryptd and ibcryptctl with a live nbdkit
# stack: add a key, map it, I/O; evicting it with I/O in flight is refused
# (EBUSY, exit 5) and corrupts nothing; removing it while bound needs
# --force, after which I/O on its range fails with EIO and nothing is
# written; adding the same key again makes the data readable again.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires nbdkit --version
make_tmpdir
requires_built "$FALLBACK" "$PASSTHROUGH" "$KEYSLOT" "$NBDIO" "$IBCRYPTD" \
  "$IBCRYPTCTL"
CRYPT=$IBC_BUILD_DIR/tests/ibc-crypt

start_ibcryptd "$tmp"
make_key "$tmp/k1" 64
ctl key add k1 --cipher aes-xts-plain64 --key-file "$tmp/k1" ||
  fail "key add failed"

size=$((16 << 20))
echo "0 $((size / 512)) crypt aes-xts-plain64 :k1 0 2 sector_size:4096 iv_large_sectors" \
  >"$tmp/crypt"
echo "0 $((size / 512)) linear d0 0" >"$tmp/dm"
truncate -s $size "$tmp/disk.img"
# A slow inline engine (5 ms per request) keeps keyslots busy during I/O.
start_nbdkit "$tmp/nbd.sock" "$tmp/nbd.pid" --filter="$FALLBACK" \
  --filter="$PASSTHROUGH" --filter="$KEYSLOT" file "$tmp/disk.img" \
  passthrough-table="$tmp/dm" keyslot-crypt-delay=5000 \
  keyslot-device=d0,slots=2,modes=aes-xts-plain64:4096,dun-bytes=8 \
  ibcrypt-socket="$CTL_SOCK" ibcrypt-name=disk0
uri=$(nbd_uri "$tmp/nbd.sock")

registered () {
  ctl_json status | /usr/bin/python3 -c '
import json, sys
st = json.load(sys.stdin)
sys.exit(0 if any(i["name"] == "disk0" and i["connected"]
                  for i in st["instances"]) else 1)'
}
wait_for "disk0 to register" 10 registered
ctl map disk0 "$tmp/crypt" || fail "map failed"

"$NBDIO" "$uri" pattern-write 0 $size 5
"$NBDIO" "$uri" pattern-check 0 $size 5 || fail "data read back differs"
"$NBDIO" "$uri" read 0 $size >"$tmp/plain"
"$CRYPT" enc aes-xts-plain64 4096 0 "$tmp/k1" <"$tmp/plain" | cmp - "$tmp/disk.img" ||
  fail "the backing file is not k1's ciphertext"
echo "ok: key add + map + I/O"

# Evict with I/O in flight: EBUSY (exit 5), verified I/O still correct.
"$NBDIO" --connections 4 "$uri" parallel-check 4 60 $((size / 4)) 6 &
io=$!
busy=0
for _ in $(seq 200); do
  status=0
  ctl key evict k1 >"$tmp/evict.out" 2>"$tmp/evict.err" || status=$?
  if [ $status -eq 5 ]; then busy=1; break; fi
  [ $status -eq 0 ] || { cat "$tmp/evict.err" >&2; fail "key evict exited $status"; }
done
wait $io || fail "I/O during evictions returned wrong data"
[ $busy = 1 ] || fail "evicting a key with I/O in flight never reported EBUSY"
grep -q "k1" "$tmp/evict.err" || fail "EBUSY message does not name the key"
# Idle: evicting works.
expect_exit 0 ctl key evict k1
echo "ok: key evict with I/O in flight -> EBUSY (exit 5)"

"$NBDIO" "$uri" read 0 $size >"$tmp/before-remove"
# Bound: remove needs --force.
expect_exit 5 ctl key remove k1
ctl key remove k1 --force --yes || fail "key remove --force failed"
cp "$tmp/disk.img" "$tmp/disk.before"
expect_fail EIO "$NBDIO" "$uri" read 0 4096
head -c 1M /dev/urandom | expect_fail EIO "$NBDIO" "$uri" write 0 1M
cmp -s "$tmp/disk.img" "$tmp/disk.before" || fail "a write reached the disk without its key"
echo "ok: key remove --force -> EIO, nothing written"

ctl key add k1 --cipher aes-xts-plain64 --key-file "$tmp/k1" || fail "re-adding the key failed"
wait_for "the key to reach disk0" 10 "$NBDIO" "$uri" read 0 4096
"$NBDIO" "$uri" read 0 $size | cmp - "$tmp/before-remove" ||
  fail "data differs after adding the key again"
echo "ok: the same key added again -> data readable"
