#!/usr/bin/env bash
# Ciphertext compatibility with cryptsetup/LUKS: a LUKS1 image made by
# cryptsetup (aes-xts-plain64, 512-byte sectors) whose master key
# cryptsetup dumps; data written through nbdkit's own luks filter (GnuTLS,
# an independent implementation) reads back through ibcrypt with a crypt
# table over the payload, and the other way round, for the software
# fallback and for an emulated keyslot device.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires nbdkit --version
requires nbdkit --filter=luks null --version
requires cryptsetup --version
requires_built "$FALLBACK" "$KEYSLOT" "$NBDIO"
make_tmpdir

printf 'ibcrypt-test' >"$tmp/pass"
truncate -s 34M "$tmp/luks.img"
cryptsetup luksFormat --batch-mode --type luks1 --cipher aes-xts-plain64 \
  --key-size 512 --pbkdf-force-iterations 1000 --key-file "$tmp/pass" \
  "$tmp/luks.img"
cryptsetup luksDump --batch-mode --dump-master-key --key-file "$tmp/pass" \
  "$tmp/luks.img" >"$tmp/dump"
payload=$(awk '/^Payload offset:/ { print $3 }' "$tmp/dump")
# The master key: the hex bytes after "MK dump:" and on the lines below.
awk '/^MK dump:/ { on = 1; sub(/^MK dump:/, "") } /^[A-Za-z]/ && !/^MK dump/ { on = 0 }
     on { print }' "$tmp/dump" | tr -d ' \t\n' |
  /usr/bin/python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read()))' >"$tmp/mk"
[ "$(stat -c %s "$tmp/mk")" -eq 64 ] || fail "could not read the 64-byte master key"
size=$((34 * 1024 * 1024 - payload * 512))
sectors=$((size / 512))
echo "0 $sectors crypt aes-xts-plain64 @$tmp/mk 0 1 sector_size:512" >"$tmp/crypt"
head -c $size /dev/urandom >"$tmp/plain"

luks () { # NBDIO-ARGS...: through nbdkit's luks filter
  nbdkit -U - --filter=luks file "$tmp/luks.img" passphrase=+"$tmp/pass" \
    --run "\"$NBDIO\" \"\$uri\" $*"
}
ibc () { # STACK NBDIO-ARGS...: ibcrypt over the payload (offset filter)
  local stack=$1 filters=(--filter="$FALLBACK") params=()
  shift
  if [ "$stack" = keyslot ]; then
    filters+=(--filter="$KEYSLOT")
    params+=(keyslot-device=d0,slots=2,modes=aes-xts-plain64:512,dun-bytes=8)
  fi
  nbdkit -U - "${filters[@]}" --filter=offset file "$tmp/luks.img" \
    offset=$((payload * 512)) fallback-table="$tmp/crypt" "${params[@]}" \
    --run "\"$NBDIO\" \"\$uri\" $*"
}

luks write 0 $size <"$tmp/plain"
for stack in fallback keyslot; do
  ibc $stack read 0 $size | cmp - "$tmp/plain" ||
    fail "$stack: data written by the luks filter does not decrypt"
done
echo "ok: LUKS1 written by nbdkit-luks reads back through ibcrypt"

head -c $size /dev/urandom >"$tmp/plain2"
ibc keyslot write 0 $size <"$tmp/plain2"
luks read 0 $size | cmp - "$tmp/plain2" ||
  fail "data written by ibcrypt does not decrypt with the luks filter"
cryptsetup isLuks "$tmp/luks.img" || fail "the LUKS header was damaged"
echo "ok: data written by ibcrypt reads back through nbdkit-luks"
