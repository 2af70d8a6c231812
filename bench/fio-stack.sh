#!/usr/bin/env bash
# fio (nbd engine, Unix socket) over 1 GiB: plain nbdkit file, nbdkit's luks
# filter, ibcrypt fallback-only and the full ibcrypt stack (AES-256-XTS,
# 4096-byte data units).  Prints MB/s and ratios measured in this run.
#   usage: bench/fio-stack.sh [BUILD_DIR]   (env: SIZE_MB, RUNTIME, REPEAT)
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
F=$build/plugins
size_mb=${SIZE_MB:-1024}
runtime=${RUNTIME:-5}
repeat=${REPEAT:-3}
for cmd in nbdkit fio cryptsetup; do
  command -v $cmd >/dev/null || { echo "bench: $cmd is missing" >&2; exit 77; }
done

tmp=$(mktemp -d /tmp/ibc-fio.XXXXXX)
pids=()
cleanup () {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

bytes=$((size_mb * 1024 * 1024))
sectors=$((bytes / 512))
head -c 64 /dev/urandom > "$tmp/key"
printf 'bench-passphrase' > "$tmp/pass"
truncate -s $bytes "$tmp/plain.img" "$tmp/ibc1.img" "$tmp/ibc2.img"
truncate -s $((bytes + 2 * 1024 * 1024)) "$tmp/luks.img"
cryptsetup luksFormat --batch-mode --type luks1 --pbkdf-force-iterations 1000 \
  --key-file "$tmp/pass" "$tmp/luks.img" >/dev/null
echo "0 $sectors crypt aes-xts-plain64 @$tmp/key 0 2 sector_size:4096 iv_large_sectors" \
  > "$tmp/crypt"
half=$((sectors / 2))
printf '0 %d linear d0 0\n%d %d linear d1 0\n' $half $half $half > "$tmp/dm"

start () { # NAME ARGS...: an nbdkit on $tmp/NAME.sock
  local name=$1; shift
  nbdkit -f -U "$tmp/$name.sock" -P "$tmp/$name.pid" "$@" &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$tmp/$name.sock" ] && return; sleep 0.1; done
  echo "bench: nbdkit $name did not start" >&2; exit 1
}
start plain file "$tmp/plain.img"
start luks --filter=luks file "$tmp/luks.img" passphrase=+"$tmp/pass"
start fallback --filter="$F/nbdkit-ibcrypt-fallback-filter.so" \
  file "$tmp/ibc1.img" fallback-table="$tmp/crypt"
start stack --filter="$F/nbdkit-ibcrypt-fallback-filter.so" \
  --filter="$F/nbdkit-ibcrypt-passthrough-filter.so" \
  --filter="$F/nbdkit-ibcrypt-keyslot-filter.so" \
  file "$tmp/ibc2.img" fallback-table="$tmp/crypt" passthrough-table="$tmp/dm" \
  keyslot-device=d0,start=0,size=$((bytes / 2)),slots=8,modes=aes-xts-plain64:4096,dun-bytes=8 \
  keyslot-device=d1,start=$((bytes / 2)),size=$((bytes / 2)),slots=8,modes=aes-xts-plain64:4096,dun-bytes=8

run_fio () { # NAME RW BS -> MB/s (median of $repeat)
  local uri="nbd+unix:///?socket=$tmp/$1.sock" results=() extra=()
  if [ "$3" = 4k ]; then extra=(--time_based --runtime="$runtime"); fi
  for _ in $(seq "$repeat"); do
    results+=("$(fio --name=b --ioengine=nbd --uri="$uri" --rw="$2" --bs="$3" \
      --iodepth=16 --size=${size_mb}M "${extra[@]}" --output-format=json |
      /usr/bin/python3 -c 'import json,sys; t=sys.stdin.read(); j=json.loads(t[t.index("{"):])["jobs"][0]
print(int((j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 1e6))')")
  done
  printf '%s\n' "${results[@]}" | sort -n | sed -n "$(( (repeat + 1) / 2 ))p"
}

ratio () { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b ? a / b : 0 }'; }

# Fill every image once so reads hit allocated blocks and writes overwrite.
for n in plain luks fallback stack; do
  fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$tmp/$n.sock" \
    --rw=write --bs=1M --iodepth=16 --size=${size_mb}M >/dev/null
done

printf '%-22s %8s %8s %10s %8s %10s %10s\n' test plain luks fallback stack \
  fb/plain stack/plain
for t in "read 1M" "write 1M" "randread 4k" "randwrite 4k"; do
  set -- $t
  declare -A r=()
  for n in plain luks fallback stack; do r[$n]=$(run_fio $n "$1" "$2"); done
  printf '%-22s %8s %8s %10s %8s %10.2f %10.2f   stack/luks %.1f\n' "$1 $2 QD16" \
    "${r[plain]}" "${r[luks]}" "${r[fallback]}" "${r[stack]}" \
    "$(ratio "${r[fallback]}" "${r[plain]}")" \
    "$(ratio "${r[stack]}" "${r[plain]}")" "$(ratio "${r[stack]}" "${r[luks]}")"
done
echo "MB/s = fio bw_bytes / 1e6, median of $repeat; targets: sequential >= 0.8x plain and >= 6x luks, 4k >= 0.85x plain"
