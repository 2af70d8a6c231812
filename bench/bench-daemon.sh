#!/usr/bin/env bash
# ibcryptd request rate: requests answered per second on one connection
# (ping, status, key_list with 100 keys, key_show) and with 4 connections
# at once (status), against a fresh daemon with no agents.
#   usage: bench/bench-daemon.sh [BUILD_DIR]   (env: COUNT, default 20000)
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
count=${COUNT:-20000}
D=$build/daemon/ibcryptd
RAW=$build/tests/ibc-ctl-raw
for f in "$D" "$RAW"; do
  [ -x "$f" ] || { echo "bench: $f is not built" >&2; exit 77; }
done

tmp=$(mktemp -d /tmp/ibc-bench-daemon.XXXXXX)
dpid=
cleanup () {
  [ -z "$dpid" ] || { kill "$dpid" 2>/dev/null || true; wait "$dpid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT

sock=$tmp/ctl.sock
"$D" --socket "$sock" --state-dir "$tmp/state" 2>"$tmp/daemon.log" &
dpid=$!
for ((i = 0; i < 100; i++)); do
  grep -q "ready on" "$tmp/daemon.log" && break
  sleep 0.1
done

# rate NAME REQUEST: requests/s of COUNT requests on one connection.
rate ()
{
  local r
  r=$("$RAW" -c "$count" "$sock" "$2" 2>&1 >/dev/null | sed -n 's/.*: \([0-9]*\) requests\/s/\1/p')
  printf '%-28s %8s requests/s\n' "$1" "$r"
}

for ((i = 0; i < 100; i++)); do
  "$RAW" "$sock" "{\"op\":\"key_add\",\"name\":\"k$i\",\"cipher\":\"aes-xts-plain64\",\"generate\":true}" >/dev/null
done
echo "ibcryptd, $count requests per connection, $(nproc) CPUs"
rate ping '{"op":"ping"}'
rate "status (100 keys)" '{"op":"status"}'
rate "key_list (100 keys)" '{"op":"key_list"}'
rate key_show '{"op":"key_show","name":"k50"}'

# Four connections at once.
start=$(date +%s.%N)
clients=()
for ((i = 0; i < 4; i++)); do
  "$RAW" -c "$count" "$sock" '{"op":"ping"}' >/dev/null 2>&1 &
  clients+=($!)
done
wait "${clients[@]}"
end=$(date +%s.%N)
awk -v n=$((4 * count)) -v s="$start" -v e="$end" \
  'BEGIN { printf "%-28s %8.0f requests/s\n", "ping, 4 connections", n / (e - s) }'
