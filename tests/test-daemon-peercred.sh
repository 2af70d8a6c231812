#!/usr/bin/env bash
# ibcryptd admits root and members of its group only (SO_PEERCRED): anyone
# else gets EACCES in reply to the first frame and the connection closes
# before any op runs.  Membership counts by primary gid, by supplementary
# groups at connect time, and by the user's entry in the group database.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires_root
requires jq --version
requires setpriv --version
requires groupadd --help
D=$IBC_BUILD_DIR/daemon/ibcryptd
RAW=$IBC_BUILD_DIR/tests/ibc-ctl-raw
requires_built "$D" "$RAW"
make_tmpdir
chmod 755 "$tmp" # the unprivileged clients must reach the socket
sock=$tmp/ctl.sock
nobody=65534

group=ibct$$
groupadd "$group" || skip "groupadd failed"
cleanup_fn groupdel "$group"
gid=$(getent group "$group" | cut -d: -f3)

stop_daemon ()
{
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  wait_pid_exit "$pid" 10 || { kill -KILL "$pid"; return 1; }
  [ "$EXIT_STATUS" -eq 0 ] || { echo "ibcryptd exited with $EXIT_STATUS" >&2; return 1; }
}

# start_daemon GROUP: a daemon admitting GROUP, its socket opened to all
# (so that the daemon, not the file mode, decides).
nstart=0
start_daemon ()
{
  local log i
  nstart=$((nstart + 1))
  log=$tmp/daemon.$nstart.log
  "$D" --socket "$sock" --state-dir "$tmp/state" --group "$1" -v 2>"$log" &
  DPID=$!
  show_log_on_failure "$log"
  cleanup_fn stop_daemon "$DPID"
  for ((i = 0; i < 100; i++)); do
    [ -S "$sock" ] && grep -q "ready on" "$log" && break
    _ibc_exited "$DPID" && fail "ibcryptd exited during startup"
    sleep 0.1
  done
  chmod 0666 "$sock"
}

# as CREDS... -- REQUEST: run ibc-ctl-raw (showing the hello reply) with
# setpriv CREDS; its output in $OUT.
as ()
{
  local creds=()
  while [ "$1" != -- ]; do
    creds+=("$1")
    shift
  done
  shift
  OUT=$(setpriv "${creds[@]}" "$RAW" -H "$sock" "$@") || true
}

expect_refused ()
{
  [ "$(head -n 1 <<<"$OUT" | jq -r '[.id, .error.name] | join(" ")')" = "1 EACCES" ] ||
    fail "$1: expected EACCES to hello: $OUT"
  [[ $(sed -n 2p <<<"$OUT") == closed:* ]] || fail "$1: request ran after EACCES: $OUT"
}

expect_allowed ()
{
  [ "$(head -n 1 <<<"$OUT" | jq -r .ok)" = true ] || fail "$1: hello refused: $OUT"
  [ "$(sed -n 2p <<<"$OUT" | jq -r .daemon.pid)" = "$DPID" ] || fail "$1: no status: $OUT"
}

start_daemon "$group"
status='{"op":"status"}'

as --reuid=0 --regid=0 --clear-groups -- "$status"
expect_allowed root
as --reuid=$nobody --regid=$nobody --clear-groups -- "$status"
expect_refused "nobody"
grep -q "refused pid .* uid $nobody" "$tmp/daemon.1.log" || fail "refusal not logged"
# Refused whatever the first frame is.
as --reuid=$nobody --regid=$nobody --clear-groups -- -n '{"op":"key_list"}'
[ "$(head -n 1 <<<"$OUT" | jq -r .error.name)" = EACCES ] || fail "non-hello first frame: $OUT"
as --reuid=$nobody --regid=$nobody --groups=$nobody -- -r agent "$status"
expect_refused "nobody as agent"

as --reuid=$nobody --regid=$gid --clear-groups -- "$status"
expect_allowed "primary group"
as --reuid=$nobody --regid=$nobody --groups=$gid -- "$status"
expect_allowed "supplementary group"

# A user listed in the group database, running without its groups.
user=ibctu$$
if useradd -M -N -g "$nobody" -G "$group" -s /usr/sbin/nologin "$user" 2>/dev/null; then
  cleanup_fn userdel "$user"
  uid=$(id -u "$user")
  as --reuid="$uid" --regid=$nobody --clear-groups -- "$status"
  expect_allowed "group database member"
else
  echo "useradd failed: group database case not tested" >&2
fi

# Without the group, only root.
stop_daemon "$DPID"
start_daemon "nosuchgroup$$"
grep -q "group 'nosuchgroup$$' does not exist: only root may connect" "$tmp/daemon.2.log" ||
  fail "missing-group warning"
as --reuid=$nobody --regid=$gid --groups=$gid -- "$status"
expect_refused "no group configured"
as --reuid=0 --regid=0 --clear-groups -- "$status"
expect_allowed "root, no group"
echo ok
