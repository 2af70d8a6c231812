#!/usr/bin/env bash
# Eight keys over a device with two keyslots, eight connections doing
# parallel verified I/O: keyslots are reprogrammed (LRU) and requests wait
# for idle slots, yet every read returns what was written and every
# binding's ciphertext is exactly its own key's.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires nbdkit --version
requires_built "$FALLBACK" "$PASSTHROUGH" "$KEYSLOT" "$NBDIO"
CRYPT=$IBC_BUILD_DIR/tests/ibc-crypt
make_tmpdir

nkeys=8
span=$((1 << 20))
size=$((nkeys * span))
: >"$tmp/crypt"
for i in $(seq 0 $((nkeys - 1))); do
  make_key "$tmp/k$i" 64
  start=$((i * span / 512))
  echo "$start $((span / 512)) crypt aes-xts-plain64 @$tmp/k$i $start 2 sector_size:4096 iv_large_sectors" >>"$tmp/crypt"
done
echo "0 $((size / 512)) linear d0 0" >"$tmp/dm"
truncate -s $size "$tmp/disk.img"

# A slow key loader makes getters pile up behind the two slots.
start_nbdkit "$tmp/s.sock" "$tmp/s.pid" --filter="$FALLBACK" \
  --filter="$PASSTHROUGH" --filter="$KEYSLOT" file "$tmp/disk.img" \
  fallback-table="$tmp/crypt" fallback-status-file="$tmp/status.json" \
  passthrough-table="$tmp/dm" keyslot-program-delay=2000 \
  keyslot-device=d0,slots=2,modes=aes-xts-plain64:4096,dun-bytes=8
uri=$(nbd_uri "$tmp/s.sock")
# parallel-check: thread t owns [t*span, (t+1)*span), i.e. binding t.
"$NBDIO" "$uri" parallel-check $nkeys 40 $span 7 ||
  fail "parallel I/O over $nkeys keys and 2 keyslots returned wrong data"
"$NBDIO" "$uri" read 0 $size >"$tmp/plain"
stop_nbdkit "$NBDKIT_PID"

for i in $(seq 0 $((nkeys - 1))); do
  dun=$(printf '%x' $((i * span / 4096)))
  dd if="$tmp/plain" bs=$span skip=$i count=1 status=none |
    "$CRYPT" enc aes-xts-plain64 4096 "$dun" "$tmp/k$i" |
    cmp - <(dd if="$tmp/disk.img" bs=$span skip=$i count=1 status=none) ||
    fail "binding $i: ciphertext is not key $i's"
done

/usr/bin/python3 - "$tmp/status.json" <<'PY' || fail "keyslot counters do not show LRU reprogramming"
import json, sys
layers = json.load(open(sys.argv[1]))["layers"]
dev = [l for l in layers if l["kind"] == "keyslot"][0]["devices"][0]
st = dev["profile"]["stats"]
print("keyslot stats:", st)
assert dev["profile"]["num_keyslots"] == 2
# More distinct keys than slots: far more programs than slots, and getters
# had to wait for a slot to go idle.
assert st["programs"] >= 8, st
assert st["waits"] > 0, st
assert st["program_errors"] == 0, st
assert st["gets"] == st["hits"] + st["programs"], st
PY
echo "ok: $nkeys keys over 2 keyslots, parallel I/O verified"
