#!/usr/bin/env bash
# ibcryptd under systemd conventions: it serves a socket passed by socket
# activation (sd_listen_fds) instead of creating its own, notifies
# READY=1 when serving and STOPPING=1 on SIGTERM, and exits 0.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires jq --version
requires /usr/bin/python3 --version
requires systemd-socket-activate --version
D=$IBC_BUILD_DIR/daemon/ibcryptd
RAW=$IBC_BUILD_DIR/tests/ibc-ctl-raw
requires_built "$D" "$RAW"
make_tmpdir

# A notify socket that records what the daemon says.
/usr/bin/python3 - "$tmp/notify.sock" "$tmp/notify.out" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
with open(sys.argv[2], "w") as out:
    try:
        while True:
            msg = s.recv(4096).decode()
            out.write(msg + "\n")
            out.flush()
            if "STOPPING=1" in msg:
                break
    except socket.timeout:
        pass
PY
npid=$!
# stop_if_alive PID: stop a process of ours that may have exited already.
stop_if_alive ()
{
  _ibc_exited "$1" || kill "$1" 2>/dev/null || true
}
cleanup_fn stop_if_alive "$npid"
for ((i = 0; i < 50; i++)); do
  [ -S "$tmp/notify.sock" ] && break
  sleep 0.1
done

# systemd-socket-activate listens, and execs the daemon (same pid) with
# the socket when the first client connects.
systemd-socket-activate -E NOTIFY_SOCKET="$tmp/notify.sock" -l "$tmp/act.sock" \
  "$D" --socket "$tmp/unused.sock" --state-dir "$tmp/state" 2>"$tmp/daemon.log" &
dpid=$!
show_log_on_failure "$tmp/daemon.log"
cleanup_fn stop_if_alive "$dpid"
for ((i = 0; i < 100; i++)); do
  [ -S "$tmp/act.sock" ] && break
  sleep 0.1
done
out=$("$RAW" -t 10000 "$tmp/act.sock" '{"op":"status"}') || fail "no status: $out"
[ "$(jq -r .daemon.pid <<<"$out")" = "$dpid" ] || fail "status over the activated socket: $out"
for ((i = 0; i < 50; i++)); do
  grep -q READY=1 "$tmp/notify.out" && break
  sleep 0.1
done
grep -q READY=1 "$tmp/notify.out" || fail "no READY=1"
grep -q "ready on the socket passed by systemd" "$tmp/daemon.log" || fail "activation not used"
[ ! -e "$tmp/unused.sock" ] || fail "created its own socket despite activation"

kill -TERM "$dpid"
wait_pid_exit "$dpid" 10 || fail "no exit after SIGTERM"
[ "$EXIT_STATUS" -eq 0 ] || fail "exit status $EXIT_STATUS after SIGTERM"
wait "$npid" || true
grep -q STOPPING=1 "$tmp/notify.out" || fail "no STOPPING=1: $(cat "$tmp/notify.out")"
echo ok
