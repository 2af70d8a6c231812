#!/usr/bin/env bash
# Killing ibcryptd (-9) during a fio run does not disturb the I/O; a new
# daemon on the same state directory sees the agents register again,
# reports the key they still hold by key id until it is added again, and
# then reconciles.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires nbdkit --version
requires fio --version
make_tmpdir
requires_built "$FALLBACK" "$PASSTHROUGH" "$KEYSLOT" "$NBDIO" "$IBCRYPTD" \
  "$IBCRYPTCTL"

start_ibcryptd "$tmp"
make_key "$tmp/k1" 64
ctl key add k1 --cipher aes-xts-plain64 --key-file "$tmp/k1"
size=$((64 << 20))
echo "0 $((size / 512)) crypt aes-xts-plain64 :k1 0 2 sector_size:4096 iv_large_sectors" >"$tmp/crypt"
echo "0 $((size / 512)) linear d0 0" >"$tmp/dm"
truncate -s $size "$tmp/disk.img"
start_nbdkit "$tmp/nbd.sock" "$tmp/nbd.pid" --filter="$FALLBACK" \
  --filter="$PASSTHROUGH" --filter="$KEYSLOT" file "$tmp/disk.img" \
  passthrough-table="$tmp/dm" keyslot-device=d0,modes=aes-xts-plain64:4096 \
  ibcrypt-socket="$CTL_SOCK" ibcrypt-name=disk0
uri=$(nbd_uri "$tmp/nbd.sock")
wait_for "disk0 to register" 10 ctl map disk0 "$tmp/crypt"
wait_for "the map" 10 "$NBDIO" "$uri" read 0 4096
"$NBDIO" "$uri" pattern-write 0 8M 7

# fio writes with verification over [8M, 64M) while the daemon dies.
fio --name=restart --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
  --iodepth=8 --offset=8M --size=56M --verify=crc32c --do_verify=1 \
  --verify_state_save=0 --directory="$tmp" \
  --output-format=json >"$tmp/fio.json" 2>"$tmp/fio.err" &
fio_pid=$!
sleep 1
kill -9 "$IBCRYPTD_PID"
wait "$IBCRYPTD_PID" 2>/dev/null || true
unset "_ibc_live[ibcryptd:$IBCRYPTD_PID]"
wait $fio_pid || { cat "$tmp/fio.err" >&2; fail "fio failed while the daemon died"; }
/usr/bin/python3 - "$tmp/fio.json" <<'PY' || fail "fio reported errors"
import json, sys
text = open(sys.argv[1]).read()  # fio's nbd engine prints a line first
job = json.loads(text[text.index("{"):])["jobs"][0]
assert job["error"] == 0, job["error"]
assert job["write"]["io_bytes"] > 0
PY
"$NBDIO" "$uri" pattern-check 0 8M 7 || fail "data written before the kill is wrong"
echo "ok: kill -9 of ibcryptd during fio: no I/O error"

start_ibcryptd "$tmp"
wait_for "disk0 to register again" 15 ctl device show disk0
ctl_json key list >"$tmp/keys.json"
/usr/bin/python3 - "$tmp/keys.json" <<'PY' || fail "the lost key is not reported as held by disk0"
import json, sys
kl = json.load(open(sys.argv[1]))
assert not kl["keys"], kl
assert any(u["instance"] == "disk0" and u["name"] == "k1" for u in kl["unknown"]), kl
PY
ctl key add k1 --cipher aes-xts-plain64 --key-file "$tmp/k1"
ctl_json key list | /usr/bin/python3 -c '
import json, sys
kl = json.load(sys.stdin)
assert [k["name"] for k in kl["keys"]] == ["k1"], kl
assert not kl["unknown"], kl
assert "disk0" in kl["keys"][0]["instances"], kl
' || fail "adding the key again did not reconcile"
"$NBDIO" "$uri" pattern-check 0 8M 7 || fail "data wrong after the restart"
echo "ok: restarted daemon: agents re-register, keys reconcile"
