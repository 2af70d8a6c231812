#!/usr/bin/env bash
# Passthrough tables through ibcryptctl: loading a table whose inline
# encryption capabilities are narrower than the live table's is refused
# (exit code and message pinned); loading a wider one and resuming makes
# the wider capabilities visible in `device caps`.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires nbdkit --version
make_tmpdir
requires_built "$FALLBACK" "$PASSTHROUGH" "$KEYSLOT" "$IBCRYPTD" "$IBCRYPTCTL"

start_ibcryptd "$tmp"
# d0 takes AES-256-XTS at 512 and 4096 bytes, d1 only at 4096.
echo "0 16384 linear d1 0" >"$tmp/live"
truncate -s 16M "$tmp/disk.img"
start_nbdkit "$tmp/nbd.sock" "$tmp/nbd.pid" --filter="$FALLBACK" \
  --filter="$PASSTHROUGH" --filter="$KEYSLOT" file "$tmp/disk.img" \
  passthrough-table="$tmp/live" \
  keyslot-device=d0,start=0,size=8M,slots=2,modes=aes-xts-plain64:512+4096 \
  keyslot-device=d1,start=8M,size=8M,slots=2,modes=aes-xts-plain64:4096 \
  ibcrypt-socket="$CTL_SOCK" ibcrypt-name=disk0
wait_for "disk0 to register" 10 ctl device show disk0/dm0

modes () {
  ctl_json device caps disk0/dm0 | /usr/bin/python3 -c '
import json, sys; print(json.load(sys.stdin)["caps"]["modes"])'
}
[ "$(modes)" = "AES-256-XTS:4096" ] || fail "live caps: $(modes)"

# Narrower: 1-sector stripes over d0 and d1 keep only 512-byte units, which
# d1 lacks: no inline encryption at all.
echo "0 16384 striped 2 1 d0 0 d1 0" >"$tmp/narrow"
status=0
ctl table load disk0/dm0 "$tmp/narrow" 2>"$tmp/load.err" || status=$?
[ $status -eq 1 ] || fail "narrowing table load exited $status, not 1"
grep -qx "ibcryptctl: loading table into 'disk0/dm0': Inline encryption capabilities of new table are more restrictive than the live table's" \
  "$tmp/load.err" || { cat "$tmp/load.err" >&2; fail "wrong refusal message"; }
[ "$(modes)" = "AES-256-XTS:4096" ] || fail "a refused load changed the caps"
echo "ok: a table load that narrows capabilities is refused"

# Wider: all of d0 (512 and 4096).
echo "0 16384 linear d0 0" >"$tmp/wide"
ctl table load disk0/dm0 "$tmp/wide" || fail "widening table load failed"
[ "$(modes)" = "AES-256-XTS:4096" ] || fail "load alone changed the live caps"
ctl table resume disk0/dm0 --yes || fail "resume failed"
[ "$(modes)" = "AES-256-XTS:512+4096" ] || fail "caps after resume: $(modes)"
ctl table show disk0/dm0 | grep -q "linear d0 0" || fail "table show does not show the new table"
echo "ok: a table resume that widens capabilities is visible in device caps"
