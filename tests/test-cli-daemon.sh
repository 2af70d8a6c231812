#!/usr/bin/env bash
# ibcryptctl against the real ibcryptd (no nbdkit): key add/list/show/
# remove round trip with exact human output and --json parsed by Python,
# EEXIST -> exit 5, ENOENT/ENODEV -> exit 4, and the key bytes never in
# any output, log or state file.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
[ -x "$IBCRYPTD" ] || skip "ibcryptd is not built ($IBCRYPTD)"
requires_built "$IBCRYPTCTL"
make_tmpdir

start_ibcryptd "$tmp"
make_key "$tmp/k1" 64
key_hex=$(od -An -tx1 -v "$tmp/k1" | tr -d ' \n')
: >"$tmp/all-output"

# run WANT_STATUS ARGS...: ctl ARGS; stdout in $out, stderr in $err, both
# appended to all-output for the secrets check at the end.
run ()
{
  local want=$1 status=0
  shift
  ctl "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || status=$?
  out=$(cat "$tmp/out")
  err=$(cat "$tmp/err")
  cat "$tmp/out" "$tmp/err" >>"$tmp/all-output"
  [ "$status" -eq "$want" ] ||
    fail "'ibcryptctl $*' exited $status, want $want (stderr: $err)"
}

same ()
{
  [ "$2" = "$3" ] || fail "$1 differs:$(diff <(echo "$3") <(echo "$2") || true)"
}

run 0 key list
same "empty key list" "$out" "No keys."

run 0 key add k1 --cipher aes-xts-plain64 --key-file "$tmp/k1"
same "key add output" "$out$err" ""
run 5 key add k1 --cipher aes-xts-plain64 --key-file "$tmp/k1"
case $err in
"ibcryptctl: adding key 'k1': "*exists*) ;;
*) fail "EEXIST message: $err" ;;
esac
run 0 key add gen --cipher sm4-xts-plain64 --generate

run 0 --json=short key show k1
/usr/bin/python3 -c '
import json, re, sys
o = json.loads(sys.argv[1])
k = o["key"]
assert k["name"] == "k1" and k["cipher"] == "aes-xts-plain64", k
assert k["key_type"] == "raw" and k["size"] == 64, k
assert re.fullmatch("[0-9a-f]{32}", k["key_id"]), k
assert k["bindings"] == [] and k["instances"] == [], k
assert "id" not in o and "ok" not in o, o
' "$out" || fail "key show --json: $out"
id=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["key"]["key_id"])' "$out")
run 0 --json=short key show gen
gid=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["key"]["key_id"])' "$out")

run 0 key show k1
same "key show" "$out" "key: k1
  cipher: aes-xts-plain64
  key type: raw
  size: 64 bytes
  key id: $id
  bindings: none
  instances: none"

run 0 key list
same "key list" "$out" "NAME  CIPHER           TYPE  KEY ID                            BINDINGS  INSTANCES
gen   sm4-xts-plain64  raw   $gid  0         -
k1    aes-xts-plain64  raw   $id  0         -"
run 0 --json=pretty key list
/usr/bin/python3 -c '
import json, sys
o = json.loads(sys.argv[1])
assert sorted(k["name"] for k in o["keys"]) == ["gen", "k1"], o
assert o.get("unknown", []) == [], o' "$out" || fail "key list --json: $out"

run 4 key show nope
same "ENOENT message" "$err" "ibcryptctl: showing key 'nope': no key 'nope'"
run 4 key remove nope
run 4 device show nope
case $err in "ibcryptctl: showing device 'nope': "*) ;; *) fail "ENODEV message: $err" ;; esac

run 0 status
[ "$(head -n 1 <<<"$out")" != "" ] || fail "empty status"
grep -qE '^ibcryptd .* \(pid [0-9]+, state directory .*\)$' <<<"$out" ||
  fail "status header: $out"
grep -qx "  k1  aes-xts-plain64  raw  $id" <<<"$out" || fail "status keys: $out"

run 0 key remove k1
same "key remove output" "$out$err" ""
run 4 key show k1
run 0 key remove gen
run 0 key list
same "key list after removal" "$out" "No keys."

# Secrets: not in anything ibcryptctl printed, the daemon logged or stored.
for f in "$tmp/all-output" "$tmp/ibcryptd.log" $(find "$tmp/state" -type f 2>/dev/null); do
  if od -An -tx1 -v "$f" | tr -d ' \n' | grep -q "$key_hex"; then
    fail "key bytes found in $f"
  fi
  grep -qi "$key_hex" "$f" && fail "key hex found in $f"
done
echo "PASS: $_ibc_name"
