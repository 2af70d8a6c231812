#!/usr/bin/env bash
# ibcryptd basics: keys (add, list, errors, generate, remove) never leave
# as bytes; crypt maps are validated, pushed to an agent and persisted
# atomically without key bytes; a restart keeps maps and loses keys, and
# pushes the persisted map to a returning agent.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires jq --version
requires /usr/bin/python3 --version
D=$IBC_BUILD_DIR/daemon/ibcryptd
RAW=$IBC_BUILD_DIR/tests/ibc-ctl-raw
requires_built "$D" "$RAW"
make_tmpdir
sock=$tmp/ctl.sock
state=$tmp/state

# ---- helpers: the daemon, by PID ------------------------------------------

nstart=0
start_daemon ()
{
  local log i
  nstart=$((nstart + 1))
  log=$tmp/daemon.$nstart.log
  "$D" --socket "$sock" --state-dir "$state" -v 2>"$log" &
  DPID=$!
  _ibc_live[daemon:$DPID]=1
  show_log_on_failure "$log"
  cleanup_fn stop_daemon "$DPID"
  for ((i = 0; i < 100; i++)); do
    [ -S "$sock" ] && grep -q "ready on" "$log" && return 0
    _ibc_exited "$DPID" && fail "ibcryptd exited during startup"
    sleep 0.1
  done
  fail "ibcryptd did not become ready within 10 s"
}

# stop_daemon PID: SIGTERM must give a clean exit 0.
stop_daemon ()
{
  local pid=$1
  [ -n "${_ibc_live[daemon:$pid]:-}" ] || return 0
  unset "_ibc_live[daemon:$pid]"
  kill -TERM "$pid" 2>/dev/null || true
  if wait_pid_exit "$pid" 10; then
    [ "$EXIT_STATUS" -eq 0 ] && return 0
    echo "ibcryptd $pid exited with status $EXIT_STATUS" >&2
    return 1
  fi
  kill -KILL "$pid" 2>/dev/null || true
  wait_pid_exit "$pid" 5 || true
  return 1
}

# req [ibc-ctl-raw args]: the reply line of one request.
req ()
{
  "$RAW" "$sock" "$@" | tail -n 1
}

# expect_error NAME [args]: the request fails with errno NAME; the reply
# in $OUT.
expect_error ()
{
  local want=$1
  shift
  OUT=$(req "$@") || true
  [ "$(jq -r '.error.name // "ok"' <<<"$OUT")" = "$want" ] ||
    fail "expected $want from '$*', got: $OUT"
}

# expect_ok [args]: the request succeeds; its reply in $OUT.
expect_ok ()
{
  OUT=$(req "$@") || fail "no reply to '$*'"
  [ "$(jq -r '.ok' <<<"$OUT")" = true ] || fail "'$*' failed: $OUT"
}

# contains FILE NEEDLE-FILE: FILE contains the bytes of NEEDLE-FILE, or
# their hex or base64.
contains ()
{
  /usr/bin/python3 - "$1" "$2" <<'PY'
import base64, sys
hay = open(sys.argv[1], "rb").read()
k = open(sys.argv[2], "rb").read()
forms = [k, k.hex().encode(), k.hex().upper().encode(), base64.b64encode(k)]
sys.exit(0 if any(f in hay for f in forms) else 1)
PY
}

# start_agent NAME OUT N: a fake agent (ibc-ctl-raw) registers instance
# NAME with a fallback, passthrough and keyslot layer and no crypt table,
# then answers N daemon requests with ok; its frames go to OUT.
layers='[{"kind":"fallback","name":"fallback","devices":[{"name":"crypt0","start":0,"size":1048576,"profile":null}]},
{"kind":"passthrough","name":"passthrough","devices":[{"name":"dm0","start":0,"size":1048576,"profile":{"num_keyslots":0,"modes":"aes-xts-plain64:512+4096","max_dun_bytes":8,"key_types":["raw"]}}]},
{"kind":"keyslot","name":"keyslot","devices":[{"name":"d0","start":0,"size":1048576,"profile":{"num_keyslots":4,"modes":"aes-xts-plain64:512+4096","max_dun_bytes":8,"key_types":["raw"]}}]}]'
start_agent ()
{
  local name=$1 out=$2 n=$3 i
  "$RAW" -r agent -a "$n" -t 20000 "$sock" \
    "{\"op\":\"register\",\"instance\":\"$name\",\"pid\":$$,\"layers\":$layers,\"keys\":[],\"table\":null}" \
    >"$out" 2>&1 &
  APID=$!
  for ((i = 0; i < 100; i++)); do
    # Registered (it may already be gone again when told to serve few).
    [ "$(req '{"op":"status"}' | jq -r ".instances[] | select(.name == \"$name\") | .name")" = "$name" ] && return 0
    sleep 0.1
  done
  fail "fake agent $name did not register"
}

# ---- keys ------------------------------------------------------------------

start_daemon
[ "$(stat -c %a "$state")" = 700 ] || fail "state dir mode is $(stat -c %a "$state")"
expect_ok '{"op":"status"}'
[ "$(jq -r .daemon.pid <<<"$OUT")" = "$DPID" ] || fail "status: wrong pid: $OUT"
[ "$(jq -c '[.instances, .keys]' <<<"$OUT")" = '[[],[]]' ] || fail "status not empty: $OUT"

start_agent disk0 "$tmp/agent1.out" 100
agent1=$APID

make_key "$tmp/k1" 64
make_key "$tmp/k63" 63
make_key "$tmp/k3" 32
make_key "$tmp/k16" 16
expect_ok -s "$tmp/k1" '{"op":"key_add","name":"k1","cipher":"aes-xts-plain64"}'
kid=$(jq -r .key.key_id <<<"$OUT")
[[ $kid =~ ^[0-9a-f]{32}$ ]] || fail "bad key id '$kid'"
[ "$(jq -c '.key | [.name, .cipher, .key_type, .size, .instances]' <<<"$OUT")" = \
  '["k1","aes-xts-plain64","raw",64,["disk0"]]' ] || fail "key_add reply: $OUT"

expect_error EEXIST -s "$tmp/k1" '{"op":"key_add","name":"k1","cipher":"aes-xts-plain64"}'
expect_error EINVAL -s "$tmp/k63" '{"op":"key_add","name":"k2","cipher":"aes-xts-plain64"}'
expect_error EINVAL -s "$tmp/k16" '{"op":"key_add","name":"k2","cipher":"aes-xts-plain64","key_type":"hw-wrapped"}'
expect_error EINVAL '{"op":"key_add","name":"k2","cipher":"aes-xts-plain64"}'
expect_error EINVAL -s "$tmp/k1" '{"op":"key_add","name":"k/2","cipher":"aes-xts-plain64"}'
expect_error EINVAL -s "$tmp/k1" '{"op":"key_add","name":"k2","cipher":"rot13"}'
expect_error EINVAL -s "$tmp/k1" '{"op":"key_add","name":"k2","cipher":"aes-xts-plain64","generate":true}'
expect_error EINVAL -s "$tmp/k1" '{"op":"key_add","name":"k2","cipher":"aes-xts-plain64","generate":"yes"}'
expect_error EINVAL -s "$tmp/k1" '{"op":"key_list"}'

expect_ok '{"op":"key_add","name":"gen","cipher":"xchacha12,aes-adiantum-plain64","generate":true}'
[ "$(jq -r .key.size <<<"$OUT")" = 32 ] || fail "generated key: $OUT"
expect_ok -s "$tmp/k3" '{"op":"key_add","name":"k3","cipher":"SM4-XTS"}'
[ "$(jq -r .key.cipher <<<"$OUT")" = sm4-xts-plain64 ] || fail "sysfs cipher name: $OUT"

expect_ok '{"op":"key_list"}'
echo "$OUT" >"$tmp/key_list.json"
[ "$(jq -c '[.keys[] | .name]' <<<"$OUT")" = '["k1","gen","k3"]' ] || fail "key_list: $OUT"
[ "$(jq -r '.keys[0].key_id' <<<"$OUT")" = "$kid" ] || fail "key_list key id: $OUT"
[ "$(jq -c .unknown <<<"$OUT")" = '[]' ] || fail "key_list unknown: $OUT"
! contains "$tmp/key_list.json" "$tmp/k1" || fail "key_list shows key bytes"
expect_ok '{"op":"key_show","name":"k3"}'
expect_error ENOENT '{"op":"key_show","name":"nope"}'

# ---- maps ------------------------------------------------------------------

xts="0 2048 crypt aes-xts-plain64 :k1 0 2 sector_size:4096 iv_large_sectors"
expect_error ENODEV "{\"op\":\"map\",\"device\":\"disk9\",\"table\":\"$xts\"}"
expect_error EINVAL '{"op":"map","device":"disk0","table":"0 2048 crypt aes-xts-plain64 :nokey 0"}'
expect_error EINVAL "{\"op\":\"map\",\"device\":\"disk0\",\"table\":\"0 2048 crypt aes-xts-plain64 @$tmp/k1 0\"}"
expect_error EINVAL '{"op":"map","device":"disk0","table":"0 2048 crypt aes-xts-plain64 :k3 0"}'
expect_error EINVAL '{"op":"map","device":"disk0","table":"0 2048 linear"}'
expect_error EINVAL '{"op":"map","device":"disk0","table":"0 2048 crypt aes-xts-plain64 00112233 0"}'
expect_error EINVAL '{"op":"map","device":"disk0"}'
[ ! -e "$state/state.json" ] || fail "a refused map was persisted"

expect_ok "{\"op\":\"map\",\"device\":\"disk0\",\"table\":\"$xts\n2048 2048 plain\n\"}"
[ "$(jq -r .pushed <<<"$OUT")" = true ] || fail "map not pushed: $OUT"
[ -f "$state/state.json" ] || fail "no state.json"
[ "$(stat -c %a "$state/state.json")" = 600 ] || fail "state.json mode"
[ ! -e "$state/state.json.tmp" ] || fail "temporary state file left"
jq -e --arg t "$xts"$'\n2048 2048 plain\n' '.maps.disk0 == $t' "$state/state.json" >/dev/null ||
  fail "state.json map: $(cat "$state/state.json")"
for k in k1 k3; do
  ! contains "$state/state.json" "$tmp/$k" || fail "state.json contains key $k"
done

expect_ok '{"op":"key_show","name":"k1"}'
[ "$(jq -c .key.bindings <<<"$OUT")" = '[{"device":"disk0","start":0,"length":1048576}]' ] ||
  fail "key_show bindings: $OUT"

# The state is replaced by rename, never rewritten in place.
ino=$(stat -c %i "$state/state.json")
expect_ok "{\"op\":\"map\",\"device\":\"disk0\",\"table\":\"$xts\n\"}"
[ "$(stat -c %i "$state/state.json")" != "$ino" ] || fail "state.json rewritten in place"

# ---- key_remove ------------------------------------------------------------

expect_error EBUSY '{"op":"key_remove","name":"k1"}'
[ "$(jq -c .bindings <<<"$OUT")" = '["disk0"]' ] ||
  fail "key_remove EBUSY without the bound device: $OUT"
expect_ok '{"op":"key_remove","name":"gen"}'
expect_error ENOENT '{"op":"key_show","name":"gen"}'
expect_error ENOENT '{"op":"key_remove","name":"gen"}'

# What the agent got: keys with their bytes in the secret part only.
expect_ok '{"op":"ping"}'
sleep 0.2
jq -e -s '[.[] | select(.op == "key_add") | [.name, .secret_len]] == [["k1",64],["gen",32],["k3",32]]' \
  "$tmp/agent1.out" >/dev/null || fail "agent key_add pushes: $(cat "$tmp/agent1.out")"
jq -e -s '[.[] | select(.op == "key_remove") | [.name, .force]] == [["gen",true]]' \
  "$tmp/agent1.out" >/dev/null || fail "agent key_remove: $(cat "$tmp/agent1.out")"
jq -e -s "[.[] | select(.op == \"map\") | .table] | length == 2" \
  "$tmp/agent1.out" >/dev/null || fail "agent maps: $(cat "$tmp/agent1.out")"
! contains "$tmp/agent1.out" "$tmp/k1" || fail "key bytes in the agent's JSON"

# ---- restart: maps persist, keys do not ------------------------------------

stop_daemon "$DPID"
[ ! -e "$sock" ] || fail "socket left after stop"
wait "$agent1" || true # it saw the daemon go away
start_daemon
expect_ok '{"op":"status"}'
[ "$(jq -c .keys <<<"$OUT")" = '[]' ] || fail "keys survived a restart: $OUT"
expect_ok -s "$tmp/k1" '{"op":"key_add","name":"k1","cipher":"aes-xts-plain64"}'
[ "$(jq -r .key.key_id <<<"$OUT")" = "$kid" ] || fail "key id changed across restart"
[ "$(jq -c .key.bindings <<<"$OUT")" = '[{"device":"disk0","start":0,"length":1048576}]' ] ||
  fail "map lost across restart: $OUT"

# A returning agent without a table gets the key and the persisted map.
start_agent disk0 "$tmp/agent2.out" 2
wait "$APID" || fail "fake agent 2: $(cat "$tmp/agent2.out")"
jq -e -s "[.[] | select(.op and .op != \"status\") | .op] == [\"key_add\", \"map\"] and
  ([.[] | select(.op == \"map\") | .table][0] == \"$xts\n\")" "$tmp/agent2.out" >/dev/null ||
  fail "pushes to a registering agent: $(cat "$tmp/agent2.out")"

# At most 1024 keys (k1 is one), over one connection.
reqs=()
for ((i = 2; i <= 1024; i++)); do
  reqs+=("{\"op\":\"key_add\",\"name\":\"n$i\",\"cipher\":\"aes-cbc-essiv:sha256\",\"generate\":true}")
done
"$RAW" "$sock" "${reqs[@]}" >"$tmp/many.out"
[ "$(jq -s '[.[] | select(.ok)] | length' "$tmp/many.out")" = 1023 ] || fail "adding 1023 keys"
expect_error ENOSPC '{"op":"key_add","name":"one-more","cipher":"aes-xts-plain64","generate":true}'
expect_ok '{"op":"key_list"}'
[ "$(jq '.keys | length' <<<"$OUT")" = 1024 ] || fail "key_list of 1024 keys"
expect_ok '{"op":"key_remove","name":"n2"}'
expect_ok '{"op":"key_add","name":"one-more","cipher":"aes-xts-plain64","generate":true}'

# A corrupt state file: refuse to start, with the reason.
stop_daemon "$DPID"
echo '{"version": 1, "maps": {"disk0": 42}}' >"$state/state.json"
"$D" --socket "$sock" --state-dir "$state" 2>"$tmp/corrupt.log" && fail "started on a corrupt state"
grep -q "state.json is corrupt.*maps.disk0 is not a string" "$tmp/corrupt.log" ||
  fail "corrupt state message: $(cat "$tmp/corrupt.log")"
echo "ok"
