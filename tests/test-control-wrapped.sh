#!/usr/bin/env bash
# Hardware-wrapped keys end to end: ibcryptctl key import (on a keyslot
# device, and through a passthrough device to its first lower device) ->
# key prepare -> key add --hw-wrapped -> map -> I/O.  The data on disk is
# AES-256-XTS under the inline key derived from the imported raw key by the
# documented KDF (checked with python3-cryptography).  A long-term blob
# survives an nbdkit restart with the same wrapping-key file; the old
# ephemeral blob does not.  A range on a device without hw-wrapped keys is
# refused with EOPNOTSUPP although the fallback is enabled: the fallback
# never takes wrapped keys.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires nbdkit --version
requires /usr/bin/python3 -c 'import cryptography'
make_tmpdir
RAW=$IBC_BUILD_DIR/tests/ibc-ctl-raw
requires_built "$RAW" "$FALLBACK" "$PASSTHROUGH" "$KEYSLOT" "$NBDIO" "$IBCRYPTD" \
  "$IBCRYPTCTL"

start_ibcryptd "$tmp"
make_key "$tmp/raw" 32
make_key "$tmp/wk" 32
truncate -s 8M "$tmp/disk.img"
start_disk0 () {
  start_nbdkit "$tmp/$1.sock" "$tmp/$1.pid" --filter="$FALLBACK" \
    --filter="$KEYSLOT" file "$tmp/disk.img" \
    keyslot-device=d0,start=0,size=4M,slots=2,modes=aes-xts-plain64:4096,dun-bytes=8,key-types=raw+hw-wrapped,wrapping-key=@"$tmp/wk" \
    keyslot-device=d1,start=4M,size=4M,slots=2,modes=aes-xts-plain64:4096,dun-bytes=8 \
    ibcrypt-socket="$CTL_SOCK" ibcrypt-name=disk0
  wait_for "disk0 to register" 10 ctl device show disk0/d0
}
start_disk0 nbd
uri=$(nbd_uri "$tmp/nbd.sock")

ctl key import disk0/d0 --key-file "$tmp/raw" --output "$tmp/lt"
[ "$(stat -c %s "$tmp/lt")" -eq 72 ] || fail "long-term blob is not 72 bytes"
ctl key prepare disk0/d0 "$tmp/lt" --output "$tmp/eph"
[ "$(stat -c %s "$tmp/eph")" -eq 72 ] || fail "ephemeral blob is not 72 bytes"
cmp -s "$tmp/lt" "$tmp/eph" && fail "the ephemeral blob is the long-term one"
ctl key add kw --cipher aes-xts-plain64 --hw-wrapped --key-file "$tmp/eph"
printf '%s\n' \
  "0 8192 crypt aes-xts-plain64 :kw 0 3 sector_size:4096 iv_large_sectors keytype:hw-wrapped" \
  "8192 8192 plain" >"$tmp/crypt"
ctl map disk0 "$tmp/crypt"
wait_for "the map to take effect" 10 "$NBDIO" "$uri" read 0 4096
"$NBDIO" "$uri" pattern-write 0 4M 7
"$NBDIO" "$uri" pattern-check 0 4M 7
"$NBDIO" "$uri" read 0 8192 >"$tmp/plain"
/usr/bin/python3 - "$tmp/raw" "$tmp/disk.img" "$tmp/plain" <<'PY' ||
import hashlib, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
raw = open(sys.argv[1], "rb").read()
disk = open(sys.argv[2], "rb").read(8192)
plain = open(sys.argv[3], "rb").read()
# docs/CONTROL.md: inline key = BLAKE2b-512 keyed with the raw key.
k = hashlib.blake2b(b"ibcrypt-hwdev inline AES-256-XTS key", key=raw,
                    digest_size=64).digest()
for unit in range(2):
    tweak = unit.to_bytes(16, "little")
    d = Cipher(algorithms.AES(k), modes.XTS(tweak)).decryptor()
    got = d.update(disk[unit * 4096:(unit + 1) * 4096]) + d.finalize()
    if got != plain[unit * 4096:(unit + 1) * 4096]:
        sys.exit("data unit %d is not AES-256-XTS under the derived key" % unit)
PY
  fail "ciphertext check"
echo "ok: import -> prepare -> key add -> map -> I/O, ciphertext under the derived key"

# Errors: a tampered blob; devices that take no wrapped keys.
cp "$tmp/lt" "$tmp/bad"
printf '\xff' | dd of="$tmp/bad" bs=1 seek=40 conv=notrunc status=none
status=0
ctl key prepare disk0/d0 "$tmp/bad" --output "$tmp/x" 2>"$tmp/err" || status=$?
[ $status -eq 1 ] && grep -q "invalid long-term key blob" "$tmp/err" ||
  { cat "$tmp/err" >&2; fail "a tampered blob was not refused (exit $status)"; }
for dev in disk0/d1 disk0; do
  status=0
  ctl key generate "$dev" --output "$tmp/x" 2>"$tmp/err" || status=$?
  [ $status -eq 1 ] && grep -Eq "does not support hardware-wrapped|not a keyslot or passthrough" "$tmp/err" ||
    { cat "$tmp/err" >&2; fail "key generate on $dev: exit $status"; }
done
status=0
ctl key import disk0/d0 --key-file <(head -c 15 "$tmp/raw") --output "$tmp/x" \
  2>/dev/null || status=$?
[ $status -eq 1 ] || fail "a 15-byte raw key was imported (exit $status)"

# d1 lacks hw-wrapped keys; the fallback is enabled but takes raw keys only.
printf '%s\n' \
  "0 8192 crypt aes-xts-plain64 :kw 0 3 sector_size:4096 iv_large_sectors keytype:hw-wrapped" \
  "8192 8192 crypt aes-xts-plain64 :kw 0 3 sector_size:4096 iv_large_sectors keytype:hw-wrapped" \
  >"$tmp/crypt2"
status=0
ctl map disk0 "$tmp/crypt2" 2>"$tmp/err" || status=$?
[ $status -eq 1 ] && grep -q "the fallback takes raw keys only" "$tmp/err" ||
  { cat "$tmp/err" >&2; fail "a wrapped key on d1 was not refused (exit $status)"; }
# The errno on the wire: EOPNOTSUPP.
/usr/bin/python3 -c 'import json, sys
print(json.dumps({"op": "map", "device": "disk0", "table": open(sys.argv[1]).read()}))' \
  "$tmp/crypt2" >"$tmp/req"
"$RAW" -t 10000 "$CTL_SOCK" "$(cat "$tmp/req")" >"$tmp/out"
grep -q '"name": *"EOPNOTSUPP"' "$tmp/out" || { cat "$tmp/out" >&2; fail "map refusal is not EOPNOTSUPP"; }
"$NBDIO" "$uri" pattern-check 0 4M 7
echo "ok: wrapped keys refused where the hardware lacks them, fallback or not"

# A restart is a reboot: same wrapping-key file, new ephemeral key.
stop_nbdkit "$NBDKIT_PID"
start_disk0 nbd2
uri=$(nbd_uri "$tmp/nbd2.sock")
ctl key prepare disk0/d0 "$tmp/lt" --output "$tmp/eph2"
cmp -s "$tmp/eph" "$tmp/eph2" && fail "a new boot gave the same ephemeral blob"
# The daemon re-pushes kw (the old boot's blob): programming it fails.
status=0
for _ in $(seq 100); do
  status=0
  "$NBDIO" "$uri" read 0 4096 >/dev/null 2>&1 || status=$?
  [ $status -eq 15 ] && break
  sleep 0.1
done
[ $status -eq 15 ] || fail "the old ephemeral blob still works (exit $status)"
ctl key remove kw --force --yes
ctl key add kw --cipher aes-xts-plain64 --hw-wrapped --key-file "$tmp/eph2"
ctl map disk0 "$tmp/crypt"
wait_for "the new key to take effect" 10 "$NBDIO" "$uri" read 0 4096
"$NBDIO" "$uri" pattern-check 0 4M 7
echo "ok: the long-term blob survives a restart, the old ephemeral blob does not"

# Through a passthrough device: the ops go to the first lower device (d0).
stop_nbdkit "$NBDKIT_PID"
echo "0 16384 linear d0 0" >"$tmp/dm"
start_nbdkit "$tmp/nbd3.sock" "$tmp/nbd3.pid" --filter="$FALLBACK" \
  --filter="$PASSTHROUGH" --filter="$KEYSLOT" file "$tmp/disk.img" \
  passthrough-table="$tmp/dm" \
  keyslot-device=d0,start=0,size=8M,slots=2,modes=aes-xts-plain64:4096,dun-bytes=8,key-types=raw+hw-wrapped,wrapping-key=@"$tmp/wk" \
  ibcrypt-socket="$CTL_SOCK" ibcrypt-name=disk1
wait_for "disk1 to register" 10 ctl device show disk1/dm0
ctl key prepare disk1/dm0 "$tmp/lt" --output "$tmp/eph3"
[ "$(stat -c %s "$tmp/eph3")" -eq 72 ] || fail "passthrough prepare"
ctl key add kw3 --cipher aes-xts-plain64 --hw-wrapped --key-file "$tmp/eph3"
sed 's/:kw /:kw3 /' "$tmp/crypt" >"$tmp/crypt3"
ctl map disk1 "$tmp/crypt3"
uri=$(nbd_uri "$tmp/nbd3.sock")
wait_for "the map on disk1" 10 "$NBDIO" "$uri" read 0 4096
"$NBDIO" "$uri" pattern-check 0 4M 7
echo "ok: wrapped-key ops on a passthrough device reach its first lower device"
