#!/usr/bin/env bash
# ibcryptctl against a scripted stand-in for ibcryptd (Python, the framing
# of docs/PROTOCOL.md): exact human output of every command, --json, the
# frames ibcryptctl sends (key bytes only in the secret part, the table the
# map shorthand builds), daemon errors -> messages and exit codes, a
# refused hello, a version mismatch and a daemon that hangs up.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires_built "$IBCRYPTCTL"
requires /usr/bin/python3 -c 'import json, socket, struct'
make_tmpdir

cat >"$tmp/mockd.py" <<'PY'
import hashlib, json, os, socket, struct, sys

sock_path, log_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
KEY_ID = {"k1": "00112233445566778899aabbccddeeff"}
keys = {}
state = {"live": "0 8192 linear d0 0\n", "inactive": None, "map": None}
ERR = {"EEXIST": 17, "ENOENT": 2, "ENODEV": 19, "EBUSY": 16, "EACCES": 13,
       "EINVAL": 22, "EPROTO": 71, "ENOSPC": 28}

def profile(n, used):
    return {"num_keyslots": n, "modes": "aes-xts-plain64:512+4096,sm4-xts-plain64:4096",
            "max_dun_bytes": 8, "key_types": ["raw"],
            "stats": {"gets": 7, "hits": 5, "programs": 2},
            "keyslots": [{"slot": i, "key_id": KEY_ID["k1"] if i < used else None,
                          "in_flight": 0} for i in range(n)]}

DEVICES = [
    {"name": "disk0", "kind": "fallback", "instance": "disk0", "start": 0,
     "size": None, "profile": None, "counters": {"software_pieces": 3},
     "lower": ["disk0/dm0"]},
    {"name": "disk0/dm0", "kind": "passthrough", "instance": "disk0", "start": 0,
     "size": 8388608, "profile": dict(profile(0, 0), modes=
         "AES-256-XTS:" + "+".join(str(1 << i) for i in range(32))
         + ",aes-cbc-essiv:sha256:512+1024+4096,Adiantum:4096+8192+16384"),
     "counters": {},
     "lower": ["disk0/d0", "disk0/d1"]},
    {"name": "disk0/d0", "kind": "keyslot", "instance": "disk0", "start": 0,
     "size": 4194304, "profile": profile(4, 2),
     "counters": {"crypt_requests": 10, "resets": 0}, "lower": []},
    {"name": "disk0/d1", "kind": "keyslot", "instance": "disk0", "start": 4194304,
     "size": None, "profile": profile(4, 0),
     "counters": {"crypt_requests": 0, "resets": 1}, "lower": []},
]

def recv_exact(c, n):
    b = b""
    while len(b) < n:
        chunk = c.recv(n - len(b))
        if not chunk:
            return None
        b += chunk
    return b

def send(c, obj):
    h = json.dumps(obj).encode()
    c.sendall(b"IBC1" + struct.pack(">II", len(h), 0) + h)

def err(i, name, msg, **extra):
    r = {"id": i, "error": {"errno": ERR[name], "name": name, "message": msg}}
    r.update(extra)
    return r

def key_obj(name):
    k = dict(keys[name])
    k["bindings"] = ([{"device": "disk0", "start": 1048576, "length": 2097152}]
                     if name == "k1" else [])
    k["instances"] = ["disk0"] if name == "k1" else []
    return k

def device(i, name):
    for d in DEVICES:
        if d["name"] == name:
            return None, d
    return err(i, "ENODEV", "no device '%s'" % name), None

def handle(req, secret):
    i, op = req["id"], req["op"]
    ok = {"id": i, "ok": True}
    if op == "key_add":
        n = req["name"]
        if n in keys:
            return err(i, "EEXIST", "key exists")
        if n == "full":
            return err(i, "ENOSPC", "too many keys (1024)")
        if req.get("generate") and secret:
            return err(i, "EINVAL", "secret with generate")
        size = len(secret) if secret else 64
        keys[n] = {"name": n, "cipher": req["cipher"], "key_type": req["key_type"],
                   "key_id": KEY_ID.get(n, "ffeeddccbbaa99887766554433221100"),
                   "size": size}
        ok["key"] = keys[n]
        return ok
    if op == "key_list":
        ok["keys"] = [key_obj(n) for n in sorted(keys)]
        ok["unknown"] = [{"instance": "disk0", "name": "old", "key_id": "ab" * 16}]
        if "e" in keys:
            ok["unknown"].append({"instance": "disk0", "name": "ev\x1b[2Jil",
                                  "key_id": "cd" * 16})
        return ok
    if op in ("key_show", "key_evict", "key_remove"):
        n = req["name"]
        if n not in keys:
            return err(i, "ENOENT", "no key '%s'" % n)
        if op == "key_show":
            ok["key"] = key_obj(n)
        elif op == "key_evict":
            if n == "busy":
                return err(i, "EBUSY", "key 'busy' is in use on disk0/d0")
            ok["evicted"] = [req.get("device", "disk0/d0")]
            ok["busy"] = []
        else:
            if n == "k1" and not req.get("force"):
                return err(i, "EBUSY", "key 'k1' is mapped on disk0; use --force")
            del keys[n]
            ok["bindings_lost"] = ["disk0"] if n == "k1" else []
        return ok
    if op == "status":
        ok["daemon"] = {"pid": 17, "version": "0.1.0", "state_dir": "/var/lib/ibcrypt"}
        ok["instances"] = [{"name": "disk0", "pid": 4242, "connected": True, "layers": []},
                           {"name": "empty", "pid": 4343, "connected": False, "layers": []}]
        ok["keys"] = [keys[n] for n in sorted(keys)]
        return ok
    if op == "device_list":
        ok["devices"] = DEVICES
        return ok
    if op in ("device_show", "device_caps", "device_reset", "table_show",
              "table_load", "table_resume", "map"):
        e, d = device(i, req["device"])
        if e:
            return e
        if op == "device_show":
            ok["device"] = d
        elif op == "device_caps":
            p = d["profile"]
            ok["caps"] = {k: p[k] for k in ("modes", "max_dun_bytes", "key_types",
                                            "num_keyslots")}
            if "check" in req:
                c = req["check"]
                ok["supported"] = (c["cipher"] == "aes-xts-plain64"
                                   and c["data_unit_size"] in (512, 4096)
                                   and c["dun_bytes"] <= 8 and c["key_type"] == "raw")
        elif op == "table_show":
            ok["live"], ok["inactive"] = state["live"], state["inactive"]
        elif op == "table_load":
            if "bogus" in req["table"]:
                return err(i, "EINVAL", "line 1: unknown target 'bogus'")
            state["inactive"] = req["table"]
        elif op == "table_resume":
            if state["inactive"] is None:
                return err(i, "ENOENT", "no table loaded")
            state["live"], state["inactive"] = state["inactive"], None
        elif op == "map":
            state["map"] = req["table"]
        return ok
    if op == "stats":
        if "device" in req:
            e, d = device(i, req["device"])
            if e:
                return e
            devs = [d]
        else:
            devs = DEVICES[2:]
        ok["devices"] = [{"name": d["name"], "counters": d["counters"],
                          "profile": {"stats": d["profile"]["stats"]}} for d in devs]
        return ok
    return {"id": i, "error": {"errno": 38, "name": "ENOSYS", "message": "unknown op"}}

srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sock_path)
srv.listen(8)
log = open(log_path, "a")
while True:
    c, _ = srv.accept()
    while True:
        pre = recv_exact(c, 12)
        if pre is None:
            break
        assert pre[:4] == b"IBC1"
        h, s = struct.unpack(">II", pre[4:])
        req = json.loads(recv_exact(c, h))
        secret = recv_exact(c, s) if s else b""
        rec = dict(req)
        rec.pop("pid", None)
        if secret:
            rec["secret_sha256"] = hashlib.sha256(secret).hexdigest()
            rec["secret_len"] = len(secret)
        log.write(json.dumps(rec, sort_keys=True) + "\n")
        log.flush()
        if req["op"] == "hello":
            if mode == "eacces":
                send(c, err(req["id"], "EACCES", "uid 1000 is not in group 'ibcrypt'"))
                break
            if mode == "version":
                send(c, err(req["id"], "EPROTO", "version", version=7))
                break
            send(c, {"id": req["id"], "ok": True, "version": 1, "pid": 17})
            continue
        if mode == "hangup":
            break
        send(c, handle(req, secret))
    c.close()
PY

# start_mock NAME MODE: a mock daemon on $tmp/NAME.sock logging requests to
# $tmp/NAME.log; sets SOCK and LOG.
start_mock ()
{
  SOCK=$tmp/$1.sock
  LOG=$tmp/$1.log
  : >"$LOG"
  /usr/bin/python3 "$tmp/mockd.py" "$SOCK" "$LOG" "$2" 2>"$tmp/$1.err" &
  local pid=$!
  cleanup_fn kill "$pid"
  show_log_on_failure "$tmp/$1.err"
  wait_for "the mock daemon" 10 test -S "$SOCK"
}

# run_ctl WANT_STATUS ARGS...: ibcryptctl against $SOCK; stdout in $out,
# stderr in $err.
run_ctl ()
{
  local want=$1 status=0
  shift
  "$IBCRYPTCTL" --socket "$SOCK" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null ||
    status=$?
  out=$(cat "$tmp/out")
  err=$(cat "$tmp/err")
  [ "$status" -eq "$want" ] ||
    fail "'ibcryptctl $*' exited $status, want $want (stderr: $err)"
}

# same WHAT GOT WANT: exact text comparison with a diff on failure.
same ()
{
  [ "$2" = "$3" ] || fail "$1 differs:$(diff <(echo "$3") <(echo "$2") || true)"
}

# last_request: the last request the mock received (JSON, one line).
last_request ()
{
  tail -n 1 "$LOG"
}

start_mock m ok
key=$tmp/key
make_key "$key" 64
key_hex=$(od -An -tx1 -v "$key" | tr -d ' \n')
key_sha=$(sha256sum "$key" | cut -d' ' -f1)

# ---- keys ---------------------------------------------------------------

run_ctl 0 key add k1 --cipher aes-xts-plain64 --key-file "$key"
same "key add output" "$out$err" ""
req=$(last_request)
/usr/bin/python3 - "$req" "$key_sha" <<'PY'
import json, sys
r, sha = json.loads(sys.argv[1]), sys.argv[2]
assert r["op"] == "key_add", r
assert (r["name"], r["cipher"], r["key_type"], r["generate"]) == \
    ("k1", "aes-xts-plain64", "raw", False), r
assert r["secret_len"] == 64 and r["secret_sha256"] == sha, r
PY
grep -q "$key_hex" "$LOG" && fail "key bytes appeared in a JSON header"
# The hello came first on the connection, with role cli and version 1.
grep -q '"op": "hello", "role": "cli", "version": 1' "$LOG" ||
  fail "no hello with role cli: $(cat "$LOG")"

# Key from stdin, by its sysfs name; EEXIST is exit 5 with the daemon's text.
"$IBCRYPTCTL" --socket "$SOCK" key add k1 --cipher AES-256-XTS --key-file - \
  <"$key" 2>"$tmp/err" && fail "duplicate key add succeeded" || status=$?
[ "$status" -eq 5 ] || fail "EEXIST: exit $status, want 5"
same "EEXIST message" "$(cat "$tmp/err")" "ibcryptctl: adding key 'k1': key exists"

run_ctl 3 key add full --cipher sm4-xts-plain64 --generate
same "ENOSPC message" "$err" "ibcryptctl: adding key 'full': too many keys (1024)"
run_ctl 0 key add gen --cipher sm4-xts-plain64 --generate
/usr/bin/python3 - "$(last_request)" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
assert r["generate"] is True and "secret_len" not in r and r["cipher"] == "sm4-xts-plain64", r
PY

run_ctl 0 key list
same "key list" "$out" "NAME  CIPHER           TYPE  KEY ID                            BINDINGS  INSTANCES
gen   sm4-xts-plain64  raw   ffeeddccbbaa99887766554433221100  0         -
k1    aes-xts-plain64  raw   00112233445566778899aabbccddeeff  1         disk0

Keys instances hold that ibcryptd lost (add them again with 'ibcryptctl key add'):
INSTANCE  NAME  KEY ID
disk0     old   abababababababababababababababab"

run_ctl 0 key show k1
same "key show" "$out" "key: k1
  cipher: aes-xts-plain64
  key type: raw
  size: 64 bytes
  key id: 00112233445566778899aabbccddeeff
  bindings:
    disk0: offset 1048576, 2097152 bytes (2 MiB)
  instances: disk0"

run_ctl 0 --json=short key show k1
same "key show --json=short" "$out" '{"key":{"name":"k1","cipher":"aes-xts-plain64","key_type":"raw","key_id":"00112233445566778899aabbccddeeff","size":64,"bindings":[{"device":"disk0","start":1048576,"length":2097152}],"instances":["disk0"]}}'
run_ctl 0 key list --json=pretty
/usr/bin/python3 -c '
import json, sys
o = json.load(sys.stdin)
assert sorted(o) == ["keys", "unknown"], o
assert [k["name"] for k in o["keys"]] == ["gen", "k1"], o' <<<"$out"
[ "$(wc -l <<<"$out")" -gt 1 ] || fail "--json=pretty printed one line"

run_ctl 4 key show nope
same "ENOENT message" "$err" "ibcryptctl: showing key 'nope': no key 'nope'"

# Busy and forced removal; eviction.
run_ctl 5 key remove k1
same "EBUSY message" "$err" "ibcryptctl: removing key 'k1': key 'k1' is mapped on disk0; use --force"
run_ctl 0 key evict k1 disk0/d1
same "evict request" "$(last_request)" '{"device": "disk0/d1", "id": 2, "name": "k1", "op": "key_evict"}'
run_ctl 0 key remove k1 --force
same "forced removal warning" "$err" "ibcryptctl: warning: removed key 'k1' was mapped on disk0: I/O to those ranges now fails with EIO"
run_ctl 4 key remove k1 --force
run_ctl 0 key add k1 --cipher aes-xts-plain64 --key-file "$key"

# ---- devices ------------------------------------------------------------

run_ctl 0 device list
same "device list" "$out" "NAME       KIND         INSTANCE  START    SIZE     KEYSLOTS
disk0      fallback     disk0     0        -        no inline crypto
disk0/dm0  passthrough  disk0     0        8388608  no keyslots
disk0/d0   keyslot      disk0     0        4194304  2/4 slots
disk0/d1   keyslot      disk0     4194304  -        0/4 slots"

run_ctl 0 device show disk0/d0
same "device show" "$out" "device: disk0/d0
  kind: keyslot
  instance: disk0
  start: 0
  size: 4194304 bytes (4 MiB)
  modes: aes-xts-plain64:512+4096 sm4-xts-plain64:4096
  max dun bytes: 8
  key types: raw
  keyslots: 2/4 slots
    slot 0: 00112233445566778899aabbccddeeff (in flight 0)
    slot 1: 00112233445566778899aabbccddeeff (in flight 0)
  keyslot stats:
    gets: 7
    hits: 5
    programs: 2
  counters:
    crypt_requests: 10
    resets: 0"
run_ctl 4 device show disk9
same "ENODEV message" "$err" "ibcryptctl: showing device 'disk9': no device 'disk9'"

run_ctl 0 device caps disk0/d0
same "device caps" "$out" "modes: aes-xts-plain64:512+4096 sm4-xts-plain64:4096
max dun bytes: 8
key types: raw
keyslots: 4"
# Runs of three or more powers of two are shortened in human output only.
run_ctl 0 device caps disk0/dm0
same "device caps, shortened modes" "$out" "modes: AES-256-XTS:1..2147483648 aes-cbc-essiv:sha256:512+1024+4096 Adiantum:4096..16384
max dun bytes: 8
key types: raw
keyslots: 0"
run_ctl 0 --json=short device caps disk0/dm0
grep -qF '"modes":"AES-256-XTS:1+2+4+8+' <<<"$out" || fail "JSON modes altered: $out"
run_ctl 0 device caps disk0/d0 --check aes-xts-plain64:4096:8
same "supported" "$out" "supported"
same "check request" "$(last_request)" '{"check": {"cipher": "aes-xts-plain64", "data_unit_size": 4096, "dun_bytes": 8, "key_type": "raw"}, "device": "disk0/d0", "id": 2, "op": "device_caps"}'
run_ctl 1 device caps disk0/d0 --check aes-cbc-essiv:sha256:4096:8:hw-wrapped
same "not supported" "$out" "not supported"
/usr/bin/python3 -c '
import json, sys
c = json.loads(sys.argv[1])["check"]
assert c == {"cipher": "aes-cbc-essiv:sha256", "data_unit_size": 4096,
             "dun_bytes": 8, "key_type": "hw-wrapped"}, c' "$(last_request)"
run_ctl 1 device caps disk0/d0 --check aes-xts-plain64:4096
same "bad --check" "$err" "ibcryptctl: device caps: invalid --check 'aes-xts-plain64:4096' (CIPHER:DUS:DUN_BYTES[:KEY_TYPE], e.g. aes-xts-plain64:4096:8)
See 'ibcryptctl device caps --help'."

run_ctl 0 device reset disk0/d0
same "reset request" "$(last_request)" '{"device": "disk0/d0", "id": 2, "op": "device_reset"}'

# ---- status and stats -----------------------------------------------------

run_ctl 0 status
same "status" "$out" "ibcryptd 0.1.0 (pid 17, state directory /var/lib/ibcrypt)
instance disk0 (pid 4242, connected)
  disk0  fallback  to the end  no inline crypto
  \`- disk0/dm0  passthrough  8388608 bytes (8 MiB)  no keyslots
     |- disk0/d0  keyslot  4194304 bytes (4 MiB)  2/4 slots
     \`- disk0/d1  keyslot  to the end  0/4 slots
instance empty (pid 4343, disconnected)
  no devices
keys:
  gen  sm4-xts-plain64  raw  ffeeddccbbaa99887766554433221100
  k1  aes-xts-plain64  raw  00112233445566778899aabbccddeeff"

run_ctl 0 stats disk0/d0
same "stats" "$out" "disk0/d0:
  crypt_requests: 10
  resets: 0
  keyslot gets: 7
  keyslot hits: 5
  keyslot programs: 2"

# ---- passthrough tables ---------------------------------------------------

run_ctl 0 table show disk0/dm0
same "table show" "$out" "0 8192 linear d0 0"
same "table show request" "$(last_request)" '{"device": "disk0/dm0", "id": 2, "op": "table_show"}'
run_ctl 4 table show disk0/dm0 --inactive
same "no inactive table" "$err" "ibcryptctl: showing the inactive table of 'disk0/dm0': no table loaded"
printf '0 8192 linear d1 0\n' >"$tmp/dm"
run_ctl 0 table load disk0/dm0 "$tmp/dm"
"$IBCRYPTCTL" --socket "$SOCK" table load disk0/dm0 <<<"0 8192 bogus" 2>"$tmp/err" &&
  fail "bogus table loaded" || status=$?
[ "$status" -eq 1 ] || fail "EINVAL table: exit $status"
same "table error" "$(cat "$tmp/err")" "ibcryptctl: loading table into 'disk0/dm0': line 1: unknown target 'bogus'"
run_ctl 0 table resume disk0/dm0
run_ctl 0 table show disk0/dm0
same "table after resume" "$out" "0 8192 linear d1 0"
run_ctl 4 table resume disk0/dm0
same "resume without table" "$err" "ibcryptctl: resuming 'disk0/dm0': no table loaded"

# ---- map ------------------------------------------------------------------

# Shorthand: a range in the middle, plain around it.  The fallback device
# has no size (null): its lower device ends at 8 MiB = 16384 sectors.
run_ctl 0 map disk0 k1 --cipher aes-xts-plain64 --start 2048 --length 4096 \
  --sector-size 4096 --iv-offset 7
/usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
assert r["op"] == "map" and r["device"] == "disk0", r
want = ("0 2048 plain\n"
        "2048 4096 crypt aes-xts-plain64 :k1 7 2 sector_size:4096 iv_large_sectors\n"
        "6144 10240 plain\n")
assert r["table"] == want, repr(r["table"])' "$(last_request)"
# Default range: the whole device; --dry-run prints and sends nothing.
lines=$(wc -l <"$LOG")
run_ctl 0 map disk0 :k1 --cipher aes-xts-plain64 --dry-run
same "dry run" "$out" "0 16384 crypt aes-xts-plain64 :k1 0"
grep -q '"op": "map"' <(tail -n +"$((lines + 1))" "$LOG") && fail "--dry-run sent a map"
run_ctl 1 map disk0 k1 --cipher aes-xts-plain64 --start 4 --sector-size 4096
same "misaligned start" "$err" "ibcryptctl: mapping 'disk0': --start and --length must be multiples of the 4096-byte sector size (8 sectors)"
run_ctl 1 map disk0 k1 --cipher aes-xts-plain64 --start 16000 --length 1000
same "range too long" "$err" "ibcryptctl: mapping 'disk0': sectors 16000+1000 run past the device's 16384 sectors"
run_ctl 4 map disk0 nokey --cipher aes-xts-plain64
same "map with unknown key" "$err" "ibcryptctl: mapping 'disk0' with key 'nokey': no key 'nokey'"
run_ctl 1 map disk0 k1 --start 8
# From a file.
printf '0 16384 plain\n' >"$tmp/crypt"
run_ctl 0 map disk0 "$tmp/crypt"
same "map from file" "$(last_request)" '{"device": "disk0", "id": 2, "op": "map", "table": "0 16384 plain\n"}'

# ---- confirmation on a terminal ---------------------------------------------

# on_tty ANSWER ARGS...: ibcryptctl ARGS with stdin a pseudo-terminal fed
# ANSWER; prints "STATUS|STDERR".
on_tty ()
{
  /usr/bin/python3 - "$@" <<'PY'
import os, subprocess, sys
answer, argv = sys.argv[1], sys.argv[2:]
m, s = os.openpty()
p = subprocess.Popen(argv, stdin=s, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE)
os.close(s)
if answer:
    os.write(m, answer.encode() + b"\n")
_, err = p.communicate(timeout=20)
print("%d|%s" % (p.returncode, err.decode()), end="")
PY
}
lines=$(wc -l <"$LOG")
got=$(on_tty n "$IBCRYPTCTL" --socket "$SOCK" key remove gen)
same "declined removal" "$got" "1|Remove key 'gen' from ibcryptd and every instance? [y/N] ibcryptctl: removing key 'gen': not confirmed"
grep -q key_remove <(tail -n +"$((lines + 1))" "$LOG") && fail "declined removal was sent"
got=$(on_tty "" "$IBCRYPTCTL" --socket "$SOCK" --yes device reset disk0/d1)
same "--yes on a terminal" "$got" "0|"
got=$(on_tty yes "$IBCRYPTCTL" --socket "$SOCK" key remove gen)
same "confirmed removal" "$got" "0|Remove key 'gen' from ibcryptd and every instance? [y/N] "
same "confirmed removal request" "$(last_request)" '{"force": false, "id": 2, "name": "gen", "op": "key_remove"}'
got=$(on_tty "" "$IBCRYPTCTL" --socket "$SOCK" key add t --cipher aes-xts-plain64 --key-file -)
same "key from a terminal" "$got" "1|ibcryptctl: reading key 't' from '-': standard input is a terminal"

# ---- hostile daemon text, refused hello, version mismatch, hang-up -------

"$IBCRYPTCTL" --socket "$SOCK" key add 'e' --cipher aes-xts-plain64 --generate
run_ctl 0 --json=off key list
case $out in *$'\e'*) fail "escape character reached the terminal" ;; esac
grep -qF 'disk0     ev\x1b[2Jil  cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd' <<<"$out" ||
  fail "hostile name not escaped: $out"

start_mock acc eacces
run_ctl 2 key list
same "EACCES hello" "$err" "ibcryptctl: connecting to ibcryptd at '$SOCK': uid 1000 is not in group 'ibcrypt'"
start_mock ver version
run_ctl 1 status
same "version mismatch" "$err" "ibcryptctl: connecting to ibcryptd at '$SOCK': daemon speaks protocol version 7, this client speaks 1"
start_mock hup hangup
run_ctl 6 key list
same "hang-up" "$err" "ibcryptctl: listing keys: ibcryptd closed the connection"
echo "PASS: $_ibc_name"
