#!/usr/bin/env bash
# ext4 on a kernel block device (loop over nbdfuse) over an ibcrypt stack:
# data survives remount with cold caches, e2fsck is clean, the backing file
# holds no plaintext, and blkdiscard -z reads back as zeros.
#
# Stacks (IBC_E2E_STACKS, default "fallback full"): fallback alone over
# file, and fallback + passthrough + keyslot over file.  IBC_E2E_STACKS=plain
# (no encryption) must FAIL at the plaintext check: that shows the check
# can fail.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

requires_root
requires_fuse
requires_loop
requires mkfs.ext4 -V
requires e2fsck -V
requires blkdiscard -V

size=$((256 << 20))
# A string that must appear on the plaintext device and never in the backing
# file.  Random per run so no stale image can contain it.
marker="IBCRYPT-E2E-PLAINTEXT-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

make_tmpdir
make_key "$tmp/key" 64

# e2e STACK: the whole scenario on one stack; everything it starts is torn
# down (in order) before it returns.
e2e ()
{
  local kind=$1 d=$tmp/$1 img fs sums
  mkdir "$d"
  img=$d/backing.img
  fs=$d/fs
  sums=$d/sha256sums
  echo "== stack: $kind"

  truncate -s "$size" "$img"
  ibc_stack "$kind" "$size" "$tmp/key" "$d"
  start_nbdkit "$d/s.sock" "$d/nbdkit.pid" "${STACK_FILTERS[@]}" \
    file "$img" "${STACK_PARAMS[@]}"
  local nbdkit_pid=$NBDKIT_PID
  start_nbdfuse "$d/mnt" "$d/s.sock"
  attach_loop "$d/mnt/nbd" --sector-size 4096
  local loop=$LOOP
  [ "$(blockdev --getss "$loop")" -eq 4096 ] ||
    fail "$kind: $loop does not have 4096-byte sectors"

  mkfs.ext4 -q -F "$loop" || fail "$kind: mkfs.ext4 $loop failed"
  mount_fs "$loop" "$fs"

  # ~20 MiB of random data in a few files, a directory tree, the marker.
  head -c $((8 << 20)) /dev/urandom >"$fs/random-8M"
  head -c $((7 << 20)) /dev/urandom >"$fs/random-7M"
  head -c $((5 << 20 | 12345)) /dev/urandom >"$fs/random-5M-odd"
  local i j
  for i in 1 2 3; do
    for j in a b c d; do
      mkdir -p "$fs/tree/$i/$j"
      head -c $((i * 3000 + 17)) /dev/urandom >"$fs/tree/$i/$j/file"
      echo "small file $i/$j" >"$fs/tree/$i/$j/note.txt"
    done
  done
  for i in $(seq 1000); do echo "$marker"; done >"$fs/marker.txt"
  (cd "$fs" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$sums"
  [ "$(wc -l <"$sums")" -eq 28 ] || fail "$kind: expected 28 files, got $(wc -l <"$sums")"
  sync

  # Remount with cold caches: the data must come back through the stack.
  unmount_fs "$fs" || fail "$kind: umount $fs failed"
  sync
  echo 3 >/proc/sys/vm/drop_caches
  mount_fs "$loop" "$fs"
  (cd "$fs" && sha256sum -c --quiet "$sums") ||
    fail "$kind: file contents changed after remount"
  unmount_fs "$fs" || fail "$kind: umount $fs failed"
  e2fsck -fn "$loop" >"$d/e2fsck.log" 2>&1 ||
    fail "$kind: e2fsck -fn $loop is not clean: $(cat "$d/e2fsck.log")"

  # No plaintext in the backing file; the control: the device shows it.
  grep -qaF "$marker" "$loop" ||
    fail "$kind: marker not found on the plaintext device $loop"
  if grep -qaF "$marker" "$img"; then
    fail "$kind: the backing file $img contains the plaintext marker"
  fi

  # blkdiscard -z (WRITE_ZEROES through loop and nbdfuse) reads back as
  # zeros.  Fill the region with random data first so zeros mean something.
  local zoff=$((200 << 20)) zlen=$((8 << 20))
  dd if=/dev/urandom of="$loop" bs=1M seek=$((zoff >> 20)) count=$((zlen >> 20)) \
    oflag=direct conv=notrunc status=none ||
    fail "$kind: writing random data at $zoff to $loop failed"
  ! is_all_zero "$loop" "$zoff" "$zlen" ||
    fail "$kind: random data written to [$zoff, +$zlen) reads as zeros"
  blkdiscard -f -z -o "$zoff" -l "$zlen" "$loop" 2>"$d/blkdiscard.log" ||
    fail "$kind: blkdiscard -z -o $zoff -l $zlen $loop: $(cat "$d/blkdiscard.log")"
  echo 3 >/proc/sys/vm/drop_caches
  is_all_zero "$loop" "$zoff" "$zlen" ||
    fail "$kind: [$zoff, +$zlen) does not read back as zeros after blkdiscard -z"

  # Teardown in order, each step checked.
  detach_loop "$loop" || fail "$kind: losetup -d $loop failed"
  stop_nbdfuse "$d/mnt" || fail "$kind: nbdfuse did not exit cleanly after unmount"
  stop_nbdkit "$nbdkit_pid" || fail "$kind: nbdkit did not stop cleanly on SIGTERM"

  # Zeroing wrote encrypted zeros, not plaintext zeros.
  ! is_all_zero "$img" "$zoff" "$zlen" ||
    fail "$kind: blkdiscard -z left plaintext zeros in the backing file"
  echo "== stack: $kind: OK"
}

for kind in ${IBC_E2E_STACKS:-fallback full}; do
  e2e "$kind"
done
