#!/usr/bin/env bash
# ibcryptd against malformed input: truncated, oversized, non-JSON and
# ill-typed frames, requests out of order, unknown ops and garbage
# connections get the error replies of PROTOCOL.md (or a closed
# connection) and the daemon keeps answering.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires jq --version
requires /usr/bin/python3 --version
D=$IBC_BUILD_DIR/daemon/ibcryptd
RAW=$IBC_BUILD_DIR/tests/ibc-ctl-raw
requires_built "$D" "$RAW"
make_tmpdir
sock=$tmp/ctl.sock

stop_daemon ()
{
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  wait_pid_exit "$pid" 10 || { kill -KILL "$pid"; return 1; }
  [ "$EXIT_STATUS" -eq 0 ] || { echo "ibcryptd exited with $EXIT_STATUS" >&2; return 1; }
}
"$D" --socket "$sock" --state-dir "$tmp/state" -v 2>"$tmp/daemon.log" &
DPID=$!
show_log_on_failure "$tmp/daemon.log"
cleanup_fn stop_daemon "$DPID"
for ((i = 0; i < 100; i++)); do
  [ -S "$sock" ] && grep -q "ready on" "$tmp/daemon.log" && break
  _ibc_exited "$DPID" && fail "ibcryptd exited during startup"
  sleep 0.1
done

# frame HEADER [SECRET-BYTES]: one frame on stdout (any header text).
frame ()
{
  /usr/bin/python3 -c '
import struct, sys
h = sys.argv[1].encode("utf-8", "surrogateescape")
n = int(sys.argv[2]) if len(sys.argv) > 2 else 0
sys.stdout.buffer.write(b"IBC1" + struct.pack(">II", len(h), n) + h + b"k" * n)
' "$@"
}

# prefix MAGIC H S: a bare prefix.
prefix ()
{
  /usr/bin/python3 -c '
import struct, sys
sys.stdout.buffer.write(sys.argv[1].encode() + struct.pack(">II", int(sys.argv[2]), int(sys.argv[3])))
' "$@"
}

# send FILE [ibc-ctl-raw options]: FILE's bytes (after hello unless -n);
# the frames received, one per line, then "closed: ..." in $OUT.
n=0
send ()
{
  local f=$1
  shift
  OUT=$("$RAW" -t 3000 "$@" --raw "$f" "$sock") || fail "ibc-ctl-raw failed on $f"
}

# line N: the N-th line of $OUT.
line ()
{
  sed -n "${1}p" <<<"$OUT"
}

# expect_line N FILTER: jq FILTER is true of line N.
expect_line ()
{
  jq -e "$2" <<<"$(line "$1")" >/dev/null || fail "case $n: line $1 is not $2: $OUT"
}

alive ()
{
  local out
  out=$("$RAW" "$sock" '{"op":"status"}') || fail "case $n: no status after it"
  [ "$(jq -r .daemon.pid <<<"$out")" = "$DPID" ] || fail "case $n: status: $out"
}

ping='{"id":7,"op":"ping"}'

# Framing lost: error reply with id 0, then closed.
n=bad-magic
prefix XXXX 2 0 >"$tmp/f"
send "$tmp/f"
expect_line 1 '.id == 0 and .error.name == "EPROTO"'
[[ $(line 2) == closed:* ]] || fail "$n: not closed: $OUT"
alive

n=zero-header
prefix IBC1 0 0 >"$tmp/f"
send "$tmp/f"
expect_line 1 '.error.name == "EPROTO"'
alive

n=oversized-header
prefix IBC1 $((2 << 20)) 0 >"$tmp/f"
send "$tmp/f"
expect_line 1 '.id == 0 and .error.name == "EMSGSIZE"'
[[ $(line 2) == closed:* ]] || fail "$n: not closed: $OUT"
alive

n=oversized-secret
prefix IBC1 20 5000 >"$tmp/f"
send "$tmp/f"
expect_line 1 '.error.name == "EMSGSIZE"'
alive

# Truncated: the daemon sees the end mid-frame and closes without a reply.
n=truncated
frame "$ping" | head -c 20 >"$tmp/f"
send "$tmp/f"
[[ $(line 1) == closed:* ]] || fail "$n: expected a silent close: $OUT"
alive

n=truncated-secret
frame '{"id":3,"op":"key_add","name":"t","cipher":"aes-xts-plain64"}' 64 | head -c 100 >"$tmp/f"
send "$tmp/f"
[[ $(line 1) == closed:* ]] || fail "$n: expected a silent close: $OUT"
alive

# A rejected header (EBADMSG, id 0) keeps the stream: the ping after it
# is answered.
for hdr in 'not json' '[1,2]' '{"id":3}' '{"id":"3","op":"ping"}' \
  '{"id":3,"op":"Bad Op"}' '{"id":0,"op":"ping"}' '{"id":3,"op":"ping",}' \
  '{"id":3,"op":"ping"} trailing' $'{"id":3,"op":"ping","x":"\xff"}' \
  "$(printf '%0.s[' {1..40})"; do
  n="badmsg: $hdr"
  { frame "$hdr"; frame "$ping"; } >"$tmp/f"
  send "$tmp/f"
  expect_line 1 '.id == 0 and .error.name == "EBADMSG"'
  expect_line 2 '.id == 7 and .ok == true'
done
alive

# Valid envelopes, bad content: an error reply with the request's id.
n=unknown-op
{ frame '{"id":3,"op":"frobnicate"}'; frame "$ping"; } >"$tmp/f"
send "$tmp/f"
expect_line 1 '.id == 3 and .error.name == "ENOSYS"'
expect_line 2 '.id == 7 and .ok == true'

for hdr in '{"id":3,"op":"key_show","name":42}' '{"id":3,"op":"key_show"}' \
  '{"id":3,"op":"key_show","name":"a/b"}' \
  '{"id":3,"op":"key_add","name":"k","cipher":"aes-xts-plain64","generate":"yes"}' \
  '{"id":3,"op":"key_add","name":"k","cipher":7,"generate":true}' \
  '{"id":3,"op":"key_remove","name":"k","force":1}' \
  '{"id":3,"op":"map","device":["x"],"table":"0 8 plain"}' \
  '{"id":3,"op":"table_load","device":"x/y","table":null}' \
  '{"id":3,"op":"device_caps","device":"x","check":"aes"}' \
  '{"id":3,"op":"key_evict","name":"k","device":5}'; do
  n="einval: $hdr"
  frame "$hdr" >"$tmp/f"
  send "$tmp/f"
  expect_line 1 '.id == 3 and (.error.name == "EINVAL" or .error.name == "ENODEV")'
done
n=einval-named
frame '{"id":3,"op":"key_show","name":42}' >"$tmp/f"
send "$tmp/f"
expect_line 1 '.error.message == "member '"'name'"' must be a string"'

n=secret-on-ping
frame '{"id":3,"op":"ping"}' 16 >"$tmp/f"
send "$tmp/f"
expect_line 1 '.id == 3 and .error.name == "EINVAL"'
n=too-many-lines
table=$(/usr/bin/python3 -c 'print("\\n".join("%d 8 plain" % (8 * i) for i in range(5000)))')
frame "{\"id\":3,\"op\":\"map\",\"device\":\"disk0\",\"table\":\"$table\"}" >"$tmp/f"
send "$tmp/f"
expect_line 1 '.id == 3 and (.error.name == "EINVAL" or .error.name == "ENODEV")'

# A reply sent to the daemon is never answered.
n=stray-reply
{ frame '{"id":9,"ok":true}'; frame '{"id":0,"error":{"errno":5,"name":"EIO","message":""}}'; frame "$ping"; } >"$tmp/f"
send "$tmp/f"
expect_line 1 '.id == 7 and .ok == true'
[[ $(line 2) == closed:* ]] || fail "$n: $OUT"

# hello rules: first, once, right version, known role.
n=no-hello
frame "$ping" >"$tmp/f"
send "$tmp/f" -n
expect_line 1 '.id == 7 and .error.name == "EPROTO"'
[[ $(line 2) == closed:* ]] || fail "$n: not closed: $OUT"
n=bad-version
{ frame '{"id":1,"op":"hello","version":2,"role":"cli"}'; frame "$ping"; } >"$tmp/f"
send "$tmp/f" -n
expect_line 1 '.error.name == "EPROTO" and .version == 1'
[[ $(line 2) == closed:* ]] || fail "$n: not closed: $OUT"
n=no-version
frame '{"id":1,"op":"hello","role":"cli"}' >"$tmp/f"
send "$tmp/f" -n
expect_line 1 '.error.name == "EPROTO" and .version == 1'
n=bad-role
frame '{"id":1,"op":"hello","version":1,"role":"admin"}' >"$tmp/f"
send "$tmp/f" -n
expect_line 1 '.id == 1 and .error.name == "EINVAL"'
n=second-hello
{ frame '{"id":2,"op":"hello","version":1,"role":"cli"}'; frame "$ping"; } >"$tmp/f"
send "$tmp/f"
expect_line 1 '.id == 2 and .error.name == "EPROTO"'
[[ $(line 2) == closed:* ]] || fail "$n: not closed: $OUT"
n=cli-register
frame '{"id":3,"op":"register","instance":"x"}' >"$tmp/f"
send "$tmp/f"
expect_line 1 '.id == 3 and .error.name == "ENOSYS"'
alive

# At most 64 CLI connections at once: the 65th hello gets EUSERS.
n=cli-limit
/usr/bin/python3 - "$sock" <<'PY' || fail "$n"
import json, socket, struct, sys
def hello(i):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    h = json.dumps({"id": 1, "op": "hello", "version": 1, "role": "cli", "pid": i}).encode()
    s.sendall(b"IBC1" + struct.pack(">II", len(h), 0) + h)
    p = s.recv(12, socket.MSG_WAITALL)
    n = struct.unpack(">I", p[4:8])[0]
    return s, json.loads(s.recv(n, socket.MSG_WAITALL))
conns = [hello(i) for i in range(65)]
ok = [r for _, r in conns if r.get("ok")]
assert len(ok) == 64, len(ok)
assert conns[64][1]["error"]["name"] == "EUSERS", conns[64][1]
for s, _ in conns:
    s.close()
PY
sleep 0.2 # the daemon notices the closes
alive

# 50 garbage connections in a row, with and without hello, and 20 that
# close at once.
n=garbage
for ((i = 0; i < 50; i++)); do
  head -c $((RANDOM % 300 + 1)) /dev/urandom >"$tmp/g"
  if ((i % 2)); then
    "$RAW" -t 2000 --raw "$tmp/g" "$sock" >/dev/null || true
  else
    "$RAW" -t 2000 -n --raw "$tmp/g" "$sock" >/dev/null || true
  fi
done
for ((i = 0; i < 20; i++)); do
  /usr/bin/python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.close()' "$sock"
done
alive
_ibc_exited "$DPID" && fail "ibcryptd died"
echo ok
