#!/usr/bin/env bash
# Control-plane latency, end to end through ibcryptctl (process start
# included, as an admin sees it): key add + map until the first read
# succeeds, and key evict / key remove with 1, 10 and 100 emulated devices
# registered (one nbdkit instance with N keyslot devices under a crypt
# table that binds the key on every one of them).
#   usage: bench/control-latency.sh [BUILD_DIR]   (env: ROUNDS)
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
rounds=${ROUNDS:-20}
F=$build/plugins
CTL=$build/cli/ibcryptctl
NBDIO=$build/tests/ibc-nbdio
tmp=$(mktemp -d /tmp/ibc-ctl-bench.XXXXXX)
pids=()
cleanup () {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

now_us () { echo $(($(date +%s%N) / 1000)); }
median () { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ctl () { "$CTL" --socket "$tmp/ctl.sock" "$@"; }

"$build/daemon/ibcryptd" --socket "$tmp/ctl.sock" --state-dir "$tmp/state" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do [ -S "$tmp/ctl.sock" ] && break; sleep 0.05; done
head -c 64 /dev/urandom >"$tmp/k1"

# The reference: a round trip that does nothing (ibcryptctl status).
base=()
for ((r = 0; r < rounds; r++)); do
  t0=$(now_us); ctl status >/dev/null; base+=($(($(now_us) - t0)))
done
base_ms=$(printf '%s\n' "${base[@]}" | median | awk '{print $1/1000}')
echo "reference: ibcryptctl status round trip ${base_ms} ms (median of $rounds)"
printf '%-8s %14s %12s %12s\n' devices "add+map->read" "evict" "remove"
for n in 1 10 100; do
  inst=bench$n
  devs=()
  for ((i = 0; i < n; i++)); do
    devs+=(keyslot-device=d$i,start=$((i << 20)),size=1M,slots=4,modes=aes-xts-plain64:4096)
  done
  truncate -s $((n << 20)) "$tmp/$inst.img"
  echo "0 $((n * 2048)) crypt aes-xts-plain64 :k1 0 2 sector_size:4096 iv_large_sectors" \
    >"$tmp/$inst.table"
  nbdkit -f -U "$tmp/$inst.sock" --filter="$F/nbdkit-ibcrypt-fallback-filter.so" \
    --filter="$F/nbdkit-ibcrypt-keyslot-filter.so" file "$tmp/$inst.img" \
    "${devs[@]}" ibcrypt-socket="$tmp/ctl.sock" ibcrypt-name=$inst 2>/dev/null &
  pids+=($!)
  uri="nbd+unix:///?socket=$tmp/$inst.sock"
  for _ in $(seq 200); do ctl device show $inst >/dev/null 2>&1 && break; sleep 0.05; done

  # key add + map -> first successful read
  t0=$(now_us)
  ctl key add k1 --cipher aes-xts-plain64 --key-file "$tmp/k1" >/dev/null
  ctl map $inst "$tmp/$inst.table" >/dev/null
  until "$NBDIO" "$uri" read 0 4096 >/dev/null 2>&1; do :; done
  first=$(($(now_us) - t0))

  # Touch every device so the key sits in a keyslot of each, then evict.
  evicts=()
  for ((r = 0; r < rounds; r++)); do
    for ((i = 0; i < n; i++)); do echo "read $((i << 20)) 4096"; done |
      xargs -n 3 "$NBDIO" "$uri" >/dev/null
    t0=$(now_us)
    ctl key evict k1 >/dev/null
    evicts+=($(($(now_us) - t0)))
  done
  removes=()
  for ((r = 0; r < rounds / 4 + 1; r++)); do
    t0=$(now_us)
    ctl --yes key remove k1 --force >/dev/null 2>&1
    removes+=($(($(now_us) - t0)))
    ctl key add k1 --cipher aes-xts-plain64 --key-file "$tmp/k1" >/dev/null
  done
  ctl --yes key remove k1 --force >/dev/null 2>&1
  printf '%-8s %11.1f ms %9.1f ms %9.1f ms\n' "$n" "$(echo "$first" | awk '{print $1/1000}')" \
    "$(printf '%s\n' "${evicts[@]}" | median | awk '{print $1/1000}')" \
    "$(printf '%s\n' "${removes[@]}" | median | awk '{print $1/1000}')"
done
echo "(ratios to the reference: divide by ${base_ms} ms)"
echo "medians of $rounds evictions and $((rounds / 4 + 1)) removals; each includes starting ibcryptctl"
