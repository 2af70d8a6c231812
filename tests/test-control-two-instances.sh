#!/usr/bin/env bash
# Two nbdkit processes with different capabilities under one ibcryptd:
# `status` shows both device trees, and evicting a key reaches both.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires nbdkit --version
make_tmpdir
requires_built "$FALLBACK" "$KEYSLOT" "$NBDIO" "$IBCRYPTD" "$IBCRYPTCTL"

start_ibcryptd "$tmp"
make_key "$tmp/k1" 64
ctl key add k1 --cipher aes-xts-plain64 --key-file "$tmp/k1"
echo "0 8192 crypt aes-xts-plain64 :k1 0 2 sector_size:4096 iv_large_sectors" >"$tmp/crypt"
truncate -s 4M "$tmp/a.img" "$tmp/b.img"
start_nbdkit "$tmp/a.sock" "$tmp/a.pid" --filter="$FALLBACK" --filter="$KEYSLOT" \
  file "$tmp/a.img" keyslot-device=d0,slots=4,modes=aes-xts-plain64:512+4096 \
  ibcrypt-socket="$CTL_SOCK" ibcrypt-name=disk0
start_nbdkit "$tmp/b.sock" "$tmp/b.pid" --filter="$FALLBACK" --filter="$KEYSLOT" \
  file "$tmp/b.img" keyslot-device=d0,slots=2,modes=aes-xts-plain64:4096/adiantum:4096,dun-bytes=4 \
  ibcrypt-socket="$CTL_SOCK" ibcrypt-name=disk1
for i in disk0 disk1; do
  wait_for "$i to register" 10 ctl map "$i" "$tmp/crypt"
done
for s in a b; do
  wait_for "the map on $s" 10 "$NBDIO" "$(nbd_uri "$tmp/$s.sock")" read 0 4096
  "$NBDIO" "$(nbd_uri "$tmp/$s.sock")" pattern-write 0 4M 1
done

ctl_json status >"$tmp/status.json"
/usr/bin/python3 - "$tmp/status.json" <<'PY' || fail "status does not show both device trees"
import json, sys
st = json.load(open(sys.argv[1]))
inst = {i["name"]: i for i in st["instances"]}
assert set(inst) >= {"disk0", "disk1"}, inst.keys()
def keyslot_dev(i):
    return [d for l in i["layers"] if l["kind"] == "keyslot" for d in l["devices"]][0]
a, b = keyslot_dev(inst["disk0"]), keyslot_dev(inst["disk1"])
assert a["profile"]["num_keyslots"] == 4 and b["profile"]["num_keyslots"] == 2
assert a["profile"]["modes"] == "AES-256-XTS:512+4096", a["profile"]["modes"]
assert b["profile"]["modes"] == "AES-256-XTS:4096,Adiantum:4096", b["profile"]["modes"]
assert a["profile"]["max_dun_bytes"] == 8 and b["profile"]["max_dun_bytes"] == 4
# The key sits in a keyslot of both devices.
for d in (a, b):
    assert any(s["key_id"] for s in d["profile"]["keyslots"]), d
PY
ctl status | grep -q "disk1" || fail "human status does not list disk1"
echo "ok: status shows both instances' device trees"

ctl_json key evict k1 >"$tmp/evict.json" || fail "key evict failed"
/usr/bin/python3 - "$tmp/evict.json" "$tmp" <<'PY' || fail "eviction did not reach both instances"
import json, sys
ev = json.load(open(sys.argv[1]))
assert {"disk0/d0", "disk1/d0"} <= set(ev["evicted"]), ev
assert not ev["busy"], ev
PY
ctl_json status | /usr/bin/python3 -c '
import json, sys
st = json.load(sys.stdin)
for i in st["instances"]:
    for l in i["layers"]:
        if l["kind"] == "keyslot":
            for d in l["devices"]:
                assert not any(s["key_id"] for s in d["profile"]["keyslots"]), d
' || fail "a keyslot still holds the key after key evict"
echo "ok: key evict reaches both instances"
