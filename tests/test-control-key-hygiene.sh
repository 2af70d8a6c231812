#!/usr/bin/env bash
# After `ibcryptctl key remove`, no piece of the key is left anywhere: not
# in /proc/PID/cmdline or the memory of ibcryptd and nbdkit (both its
# emulated keyslots and the software fallback had used it), not in the
# daemon's log or its state directory.  Before removal the same scan finds
# it, so the scan works.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires nbdkit --version
requires_root
make_tmpdir
MEMSCAN=$IBC_BUILD_DIR/tests/ibc-memscan
requires_built "$FALLBACK" "$KEYSLOT" "$NBDIO" "$IBCRYPTD" "$IBCRYPTCTL" \
  "$MEMSCAN"

start_ibcryptd "$tmp" -v
make_key "$tmp/k1" 64
keyhex=$(od -An -tx1 -v "$tmp/k1" | tr -d ' \n')
ctl key add k1 --cipher aes-xts-plain64 --key-file "$tmp/k1"

# [0, 4M) on d0 natively; [4M, 8M) with 8-byte DUNs that d1 (4-byte DUN
# hardware) lacks: the software fallback.
cat >"$tmp/crypt" <<T
0 8192 crypt aes-xts-plain64 :k1 0 2 sector_size:4096 iv_large_sectors
8192 8192 crypt aes-xts-plain64 :k1 8192 3 sector_size:4096 iv_large_sectors dun_bytes:8
T
truncate -s 8M "$tmp/disk.img"
start_nbdkit "$tmp/nbd.sock" "$tmp/nbd.pid" --filter="$FALLBACK" \
  --filter="$KEYSLOT" file "$tmp/disk.img" \
  keyslot-device=d0,start=0,size=4M,slots=2,modes=aes-xts-plain64:4096,dun-bytes=8 \
  keyslot-device=d1,start=4M,size=4M,slots=2,modes=aes-xts-plain64:4096,dun-bytes=4 \
  ibcrypt-socket="$CTL_SOCK" ibcrypt-name=disk0
uri=$(nbd_uri "$tmp/nbd.sock")
wait_for "disk0 to register" 10 ctl map disk0 "$tmp/crypt"
wait_for "the map to take effect" 10 "$NBDIO" "$uri" read 0 4096
"$NBDIO" "$uri" pattern-write 0 8M 3
"$NBDIO" "$uri" pattern-check 0 8M 3

# Positive control: the key is in both processes now.
"$MEMSCAN" "$IBCRYPTD_PID" "$tmp/k1" >/dev/null &&
  fail "the memory scan does not find the key in ibcryptd"
"$MEMSCAN" "$NBDKIT_PID" "$tmp/k1" >/dev/null &&
  fail "the memory scan does not find the key in nbdkit"

ctl key remove k1 --force --yes
# has_key FILE: any 16-byte chunk of the key, raw or as hex, in FILE.
has_key () {
  /usr/bin/python3 - "$1" "$tmp/k1" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
key = open(sys.argv[2], "rb").read()
for c in range(0, len(key) - 15, 16):
    chunk = key[c:c + 16]
    if chunk in data or chunk.hex().encode() in data.lower():
        sys.exit(0)
sys.exit(1)
PY
}
for pid in "$IBCRYPTD_PID" "$NBDKIT_PID"; do
  if ! "$MEMSCAN" "$pid" "$tmp/k1" >"$tmp/scan.$pid"; then
    cat "$tmp/scan.$pid" >&2
    fail "key material left in the memory of $(cat "/proc/$pid/comm") ($pid)"
  fi
  cp "/proc/$pid/cmdline" "$tmp/cmdline.$pid"
  has_key "$tmp/cmdline.$pid" && fail "key in the command line of $pid"
done
has_key "$tmp/ibcryptd.log" && fail "key in the daemon log"
while IFS= read -r -d '' f; do
  has_key "$f" && fail "key in the state file $f"
done < <(find "$tmp/state" -type f -print0)
# The key is really gone: I/O fails.
expect_fail EIO "$NBDIO" "$uri" read 0 4096
echo "ok: no trace of the key after key remove"
