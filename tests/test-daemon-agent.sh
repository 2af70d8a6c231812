#!/usr/bin/env bash
# ibcryptd's agent side, against fake agents (ibc-ctl-raw): device names
# and objects from registered layers, fresh counters, capabilities, resets,
# passthrough table load/resume/show persisted, key_add/evict/remove fanned
# out with busy devices, agent errors and timeouts aggregated, and a
# disconnected instance.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires jq --version
D=$IBC_BUILD_DIR/daemon/ibcryptd
RAW=$IBC_BUILD_DIR/tests/ibc-ctl-raw
requires_built "$D" "$RAW"
make_tmpdir
sock=$tmp/ctl.sock
state=$tmp/state

stop_pid ()
{
  local pid=$1
  _ibc_exited "$pid" && { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  wait_pid_exit "$pid" 10 || { kill -KILL "$pid"; return 1; }
}
"$D" --socket "$sock" --state-dir "$state" --agent-timeout 700 -v 2>"$tmp/daemon.log" &
DPID=$!
show_log_on_failure "$tmp/daemon.log"
cleanup_fn stop_pid "$DPID"
for ((i = 0; i < 100; i++)); do
  [ -S "$sock" ] && grep -q "ready on" "$tmp/daemon.log" && break
  _ibc_exited "$DPID" && fail "ibcryptd exited during startup"
  sleep 0.1
done

req ()
{
  "$RAW" "$sock" "$@" | tail -n 1
}
expect_error ()
{
  local want=$1
  shift
  OUT=$(req "$@") || true
  [ "$(jq -r '.error.name // "ok"' <<<"$OUT")" = "$want" ] ||
    fail "expected $want from '$*', got: $OUT"
}
expect_ok ()
{
  OUT=$(req "$@") || fail "no reply to '$*'"
  [ "$(jq -r '.ok' <<<"$OUT")" = true ] || fail "'$*' failed: $OUT"
}
# check FILTER: jq FILTER is true of $OUT.
check ()
{
  jq -e "$1" <<<"$OUT" >/dev/null || fail "not $1: $OUT"
}

prof='{"num_keyslots":0,"modes":"aes-xts-plain64:512+4096","max_dun_bytes":8,"key_types":["raw"],"stats":{"gets":1}}'
ks='{"num_keyslots":4,"modes":"aes-xts-plain64:512+4096","max_dun_bytes":8,"key_types":["raw"],"stats":{"gets":2},"keyslots":[]}'
layers () # RESETS
{
  echo "[{\"kind\":\"fallback\",\"name\":\"fallback\",\"devices\":[{\"name\":\"crypt0\",\"start\":0,\"size\":1048576,\"profile\":null}]},
{\"kind\":\"passthrough\",\"name\":\"passthrough\",\"devices\":[{\"name\":\"dm0\",\"start\":0,\"size\":1048576,\"profile\":$prof}]},
{\"kind\":\"keyslot\",\"name\":\"keyslot\",\"devices\":[{\"name\":\"d0\",\"start\":0,\"size\":524288,\"profile\":$ks,\"resets\":$1},{\"name\":\"d1\",\"start\":524288,\"size\":524288,\"profile\":$ks,\"resets\":$1}]}]"
}

# agent NAME [ibc-ctl-raw serve options]: a fake agent in the background.
declare -A apid
agent ()
{
  local name=$1
  shift
  "$RAW" -r agent -a 100 -t 30000 "$@" "$sock" \
    "{\"op\":\"register\",\"instance\":\"$name\",\"layers\":$(layers 0),\"table\":null}" \
    >"$tmp/$name.out" 2>&1 &
  apid[$name]=$!
  cleanup_fn stop_pid "${apid[$name]}"
}
agent disk0 -P "status={\"layers\":{\"layers\":$(layers 5)}}" \
  -P 'key_evict={"evicted":["d0"],"busy":["d1"],"error":{"errno":16,"name":"EBUSY","message":"busy"}}'
agent disk1 -P 'table_load={"error":{"errno":22,"name":"EINVAL","message":"Inline encryption capabilities of new table are more restrictive than the live table'"'"'s"}}'
agent disk2 --mute
for ((i = 0; i < 100; i++)); do
  [ "$(req '{"op":"status"}' | jq '.instances | length')" = 3 ] && break
  sleep 0.1
done

# ---- devices -----------------------------------------------------------------

expect_ok '{"op":"device_list"}'
check '[.devices[] | select(.instance == "disk0") | [.name, .kind]] ==
  [["disk0","fallback"],["disk0/dm0","passthrough"],["disk0/d0","keyslot"],["disk0/d1","keyslot"]]'
check '.devices[] | select(.name == "disk0") | .lower == ["disk0/dm0"] and .size == 1048576'
check '.devices[] | select(.name == "disk0/dm0") | .lower == ["disk0/d0","disk0/d1"]'
check '[.devices[].name] | length == 12'

# device_show asks the agent for fresh counters (its status says 5 resets).
expect_ok '{"op":"device_show","device":"disk0/d0"}'
check '.device | .counters.resets == 5 and .profile.num_keyslots == 4 and .start == 0 and .connected'
expect_error ENODEV '{"op":"device_show","device":"disk0/nope"}'
expect_error ENODEV '{"op":"device_show","device":"disk0//d0"}'

expect_ok '{"op":"device_caps","device":"disk0/d0","check":{"cipher":"aes-xts-plain64","data_unit_size":4096,"dun_bytes":8}}'
check '.supported == true and .caps.num_keyslots == 4 and .caps.modes == "aes-xts-plain64:512+4096" and .caps.key_types == ["raw"]'
expect_ok '{"op":"device_caps","device":"disk0/d0","check":{"cipher":"xchacha12,aes-adiantum-plain64","data_unit_size":4096}}'
check '.supported == false'
expect_ok '{"op":"device_caps","device":"disk0/d0","check":{"cipher":"aes-xts-plain64","data_unit_size":4096,"dun_bytes":16}}'
check '.supported == false'
expect_ok '{"op":"device_caps","device":"disk0/d0","check":{"cipher":"aes-xts-plain64","data_unit_size":4096,"key_type":"hw-wrapped"}}'
check '.supported == false'
expect_ok '{"op":"device_caps","device":"disk0","check":{"cipher":"aes-xts-plain64","data_unit_size":4096}}'
check '.supported == false and .caps.modes == "" and .caps.num_keyslots == 0'
expect_error EINVAL '{"op":"device_caps","device":"disk0/d0","check":{"cipher":"aes-xts-plain64","data_unit_size":4000}}'

expect_ok '{"op":"device_reset","device":"disk0/d0"}'
expect_error EOPNOTSUPP '{"op":"device_reset","device":"disk0/dm0"}'
expect_error ETIMEDOUT '{"op":"device_reset","device":"disk2/d0"}'

expect_ok '{"op":"stats","device":"disk0/d1"}'
check '.devices == [{"name":"disk0/d1","counters":{"resets":5},"stats":{"gets":2}}]'

# ---- passthrough tables ------------------------------------------------------

dm=$'0 1024 linear d0 0\n1024 1024 linear d1 0\n'
dmj=$(jq -Rs . <<<"${dm%$'\n'}")
expect_error ENODEV "{\"op\":\"table_load\",\"device\":\"disk0/d0\",\"table\":$dmj}"
expect_error EINVAL '{"op":"table_load","device":"disk0/dm0","table":"0 8 bogus"}'
expect_ok "{\"op\":\"table_load\",\"device\":\"disk0/dm0\",\"table\":$dmj}"
expect_ok '{"op":"table_show","device":"disk0/dm0"}'
check ".live == null and .inactive == $dmj"
expect_ok '{"op":"table_resume","device":"disk0/dm0"}'
expect_ok '{"op":"table_show","device":"disk0/dm0"}'
check ".live == $dmj and .inactive == null"
jq -e ".tables[\"disk0/dm0\"] == $dmj" "$state/state.json" >/dev/null ||
  fail "live table not persisted: $(cat "$state/state.json")"
expect_error EINVAL "{\"op\":\"table_load\",\"device\":\"disk1/dm0\",\"table\":$dmj}"
check '.error.message == "Inline encryption capabilities of new table are more restrictive than the live table'"'"'s"'

# ---- keys across instances ---------------------------------------------------

head -c 64 /dev/urandom >"$tmp/k1"
expect_ok -s "$tmp/k1" '{"op":"key_add","name":"k1","cipher":"aes-xts-plain64"}'
check '(.key.instances | sort) == ["disk0","disk1"] and ([.push_errors[] | [.instance, .name]] == [["disk2","ETIMEDOUT"]])'

expect_error EBUSY '{"op":"key_evict","name":"k1"}'
check '.evicted == ["disk0/d0"] and .busy == ["disk0/d1"] and ([.errors[].instance] == ["disk2"])'
check '.error.message | test("disk0/d1")'
expect_ok '{"op":"key_evict","name":"k1","device":"disk1/d0"}'
check '.evicted == [] and .busy == []'
expect_error ENODEV '{"op":"key_evict","name":"k1","device":"disk1/zz"}'
expect_error ENOENT '{"op":"key_evict","name":"k9"}'

# ---- a disconnected instance -------------------------------------------------

# A request pending on an agent that goes away fails with ENOTCONN at once
# (not when its 700 ms run out).
req '{"op":"device_reset","device":"disk2/d1"}' >"$tmp/pending.out" &
rpid=$!
sleep 0.2
stop_pid "${apid[disk2]}"
wait "$rpid" || true
OUT=$(cat "$tmp/pending.out")
check '.error.name == "ENOTCONN"'
for ((i = 0; i < 50; i++)); do
  [ "$(req '{"op":"status"}' | jq '.instances[] | select(.name == "disk2") | .connected')" = false ] && break
  sleep 0.1
done
expect_error ENOTCONN '{"op":"device_reset","device":"disk2/d0"}'
expect_ok '{"op":"map","device":"disk2","table":"0 2048 crypt aes-xts-plain64 :k1 0"}'
check '.pushed == false'
expect_error EBUSY '{"op":"key_remove","name":"k1"}'
expect_ok '{"op":"key_remove","name":"k1","force":true}'
check '.bindings_lost == ["disk2"]'
expect_ok '{"op":"key_list"}'
check '.keys == [] and .unknown == []'

# What disk0's agent was asked.
expect_ok '{"op":"ping"}'
jq -e -s '[.[] | select(.op and .op != "status") | .op] ==
  ["device_reset","table_load","table_show","table_resume","table_show","table_show",
   "key_add","key_evict","key_remove"]' \
  "$tmp/disk0.out" >/dev/null || fail "disk0 requests: $(cat "$tmp/disk0.out")"
jq -e -s --arg dm "$dm" '[.[] | select(.op == "table_load" or .op == "table_resume")] |
  all(.device == "disk0/dm0" and .table == $dm)' "$tmp/disk0.out" >/dev/null ||
  fail "disk0 table requests: $(cat "$tmp/disk0.out")"
jq -e -s '[.[] | select(.op == "device_reset")][0].device == "disk0/d0"' "$tmp/disk0.out" >/dev/null ||
  fail "device_reset request: $(cat "$tmp/disk0.out")"
echo ok
