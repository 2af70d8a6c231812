#!/usr/bin/env bash
# ibcryptctl with ibcryptd and a registered nbdkit stack (fallback over a
# passthrough over two keyslot devices): the status tree, device list,
# capability checks, the map shorthand (the fallback's own size is not
# known, so it comes from the devices below), the binding it creates, and
# key removal refused while bound (exit 5) then forced.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
[ -x "$IBCRYPTD" ] || skip "ibcryptd is not built ($IBCRYPTD)"
requires nbdkit --version
requires_built "$IBCRYPTCTL" "$FALLBACK" "$PASSTHROUGH" "$KEYSLOT" "$NBDIO"
make_tmpdir

start_ibcryptd "$tmp"
make_key "$tmp/k1" 64
key_hex=$(od -An -tx1 -v "$tmp/k1" | tr -d ' \n')
ctl key add k1 --cipher aes-xts-plain64 --key-file "$tmp/k1"
truncate -s 8M "$tmp/disk.img"
printf '0 8192 linear d0 0\n8192 8192 linear d1 0\n' >"$tmp/dm"
dev=slots=4,modes=aes-xts-plain64:4096,dun-bytes=8
start_nbdkit "$tmp/nbd.sock" "$tmp/nbd.pid" --filter="$FALLBACK" \
  --filter="$PASSTHROUGH" --filter="$KEYSLOT" file "$tmp/disk.img" \
  passthrough-table="$tmp/dm" keyslot-device="d0,start=0,size=4M,$dev" \
  keyslot-device="d1,start=4M,size=4M,$dev" \
  ibcrypt-socket="$CTL_SOCK" ibcrypt-name=disk0
uri=$(nbd_uri "$tmp/nbd.sock")
wait_for "disk0 to register" 10 ctl device show disk0/d1

same ()
{
  [ "$2" = "$3" ] || fail "$1 differs:$(diff <(echo "$3") <(echo "$2") || true)"
}

out=$(ctl device list)
same "device list" "$out" "NAME       KIND         INSTANCE  START    SIZE     KEYSLOTS
disk0      fallback     disk0     0        -        0/100 slots
disk0/dm0  passthrough  disk0     0        8388608  no keyslots
disk0/d0   keyslot      disk0     0        4194304  0/4 slots
disk0/d1   keyslot      disk0     4194304  4194304  0/4 slots"

[ "$(ctl device caps disk0/d0 --check aes-xts-plain64:4096:8)" = supported ] ||
  fail "aes-xts 4096 on d0 should be supported"
expect_exit 1 ctl device caps disk0/d0 --check aes-xts-plain64:512:8

# Shorthand map of sectors [2048, 6144) with 4096-byte data units.
out=$(ctl map disk0 k1 --cipher aes-xts-plain64 --sector-size 4096 \
  --start 2048 --length 4096 --dry-run)
same "dry-run table" "$out" "0 2048 plain
2048 4096 crypt aes-xts-plain64 :k1 0 2 sector_size:4096 iv_large_sectors
6144 10240 plain"
ctl map disk0 k1 --cipher aes-xts-plain64 --sector-size 4096 --start 2048 \
  --length 4096
ctl_json key show k1 | /usr/bin/python3 -c '
import json, sys
k = json.load(sys.stdin)["key"]
assert k["bindings"] == [{"device": "disk0", "start": 1048576, "length": 2097152}], k
assert k["instances"] == ["disk0"], k' || fail "binding after map"

# I/O through the mapped range programs a keyslot on d0: status shows it.
head -c 4096 /dev/urandom >"$tmp/block"
wait_for "the map to reach the agent" 10 "$NBDIO" "$uri" read $((1 << 20)) 4096
"$NBDIO" "$uri" write $((1 << 20)) 4096 <"$tmp/block"
out=$(ctl status | sed -e 's/pid [0-9]*/pid N/g' -e 's/state directory .*)/state directory D)/')
id=$(ctl_json key show k1 | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["key"]["key_id"])')
same "status" "$out" "ibcryptd $(sed -n 's/^ibcryptd \([^ ]*\) .*/\1/p' <<<"$out") (pid N, state directory D)
instance disk0 (pid N, connected)
  disk0  fallback  to the end  0/100 slots
  \`- disk0/dm0  passthrough  8388608 bytes (8 MiB)  no keyslots
     |- disk0/d0  keyslot  4194304 bytes (4 MiB)  1/4 slots
     \`- disk0/d1  keyslot  4194304 bytes (4 MiB)  0/4 slots
keys:
  k1  aes-xts-plain64  raw  $id"

expect_exit 5 ctl key remove k1
ctl key remove k1 --force 2>"$tmp/err"
same "forced removal" "$(cat "$tmp/err")" "ibcryptctl: warning: removed key 'k1' was mapped on disk0: I/O to those ranges now fails with EIO"
expect_fail EIO "$NBDIO" "$uri" read $((1 << 20)) 4096
grep -qi "$key_hex" "$tmp/ibcryptd.log" "$tmp"/nbdkit-*.log && fail "key hex in a log"
echo "PASS: $_ibc_name"
