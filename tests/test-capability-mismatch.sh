#!/usr/bin/env bash
# When the device below lacks a key's configuration (no Adiantum, a DUN
# wider than the hardware takes, an integrity device), the fallback does
# the work (visible in the counters) and the data and ciphertext are still
# right; with fallback-enabled=no such a table is refused at start.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires nbdkit --version
requires_built "$FALLBACK" "$KEYSLOT" "$NBDIO"
CRYPT=$IBC_BUILD_DIR/tests/ibc-crypt
make_tmpdir

size=$((4 << 20))
sectors=$((size / 512))
head -c $size /dev/urandom >"$tmp/plain"

check () { # NAME CIPHER KEYBYTES TABLE-OPTS DEVICE-SPEC
  local name=$1 cipher=$2 keybytes=$3 opts=$4 dev=$5 sock=$tmp/$1.sock
  make_key "$tmp/$name.key" "$keybytes"
  echo "0 $sectors crypt $cipher @$tmp/$name.key 0 $opts" >"$tmp/$name.crypt"
  truncate -s $size "$tmp/$name.img"
  start_nbdkit "$sock" "$tmp/$name.pid" --filter="$FALLBACK" \
    --filter="$KEYSLOT" file "$tmp/$name.img" \
    fallback-table="$tmp/$name.crypt" \
    fallback-status-file="$tmp/$name.json" keyslot-device="$dev"
  "$NBDIO" "$(nbd_uri "$sock")" write 0 $size <"$tmp/plain"
  "$NBDIO" "$(nbd_uri "$sock")" read 0 $size | cmp - "$tmp/plain" ||
    fail "$name: data read back differs"
  stop_nbdkit "$NBDKIT_PID"
  "$CRYPT" enc "$cipher" 4096 0 "$tmp/$name.key" <"$tmp/plain" |
    cmp - "$tmp/$name.img" || fail "$name: backing file is not the expected ciphertext"
  /usr/bin/python3 - "$tmp/$name.json" "$size" <<'PY' || fail "$name: the fallback did not do the work"
import json, sys
layers = json.load(open(sys.argv[1]))["layers"]
fb = layers[0]["devices"][0]
dev = layers[1]["devices"][0]
size = int(sys.argv[2])
# Written once and read once, all of it in software, none by the device.
assert fb["software_bytes"] == 2 * size, fb
assert fb["native_pieces"] == 0, fb
assert dev["crypt_bytes"] == 0, dev
PY
  echo "ok: $name: fallback did the work"
}

check no-adiantum xchacha12,aes-adiantum-plain64 32 \
  "2 sector_size:4096 iv_large_sectors" \
  "d0,slots=4,modes=aes-xts-plain64:512+4096,dun-bytes=8"
check narrow-dun aes-xts-plain64 64 \
  "3 sector_size:4096 iv_large_sectors dun_bytes:8" \
  "d0,slots=4,modes=aes-xts-plain64:4096,dun-bytes=4"
check integrity aes-xts-plain64 64 "2 sector_size:4096 iv_large_sectors" \
  "d0,slots=4,modes=aes-xts-plain64:4096,dun-bytes=8,integrity=yes"
check dus-missing aes-xts-plain64 64 "2 sector_size:4096 iv_large_sectors" \
  "d0,slots=4,modes=aes-xts-plain64:512,dun-bytes=8"

# fallback-enabled=no: the same unsupported table is refused at start.
status=0
nbdkit -U "$tmp/refused.sock" --filter="$FALLBACK" --filter="$KEYSLOT" \
  file "$tmp/no-adiantum.img" fallback-table="$tmp/no-adiantum.crypt" \
  fallback-enabled=no keyslot-device=d0,modes=aes-xts-plain64:4096 \
  --run true 2>"$tmp/refused.err" || status=$?
[ $status -ne 0 ] || fail "fallback-enabled=no accepted an unsupported binding"
grep -q "binding 1: xchacha12,aes-adiantum-plain64 raw keys with 4096-byte data units and 2 DUN bytes are not supported by the device below and the fallback is disabled" \
  "$tmp/refused.err" || { cat "$tmp/refused.err" >&2; fail "wrong refusal message"; }
echo "ok: fallback-enabled=no refuses the binding"
