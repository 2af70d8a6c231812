# tests/functions.sh: shell helpers shared by the ibcrypt script tests.
#
# Source it from a test:  source "$(dirname "$0")/functions.sh"
# Modelled on nbdkit's tests/functions.sh: "requires" skips with exit 77,
# cleanup hooks run on every exit, servers are stopped by PID only.
# Cleanup hooks run in reverse order of registration (last registered,
# first run), so starting nbdkit, then nbdfuse, then losetup, then mount
# tears down in the right order: umount, losetup -d, fusermount3 -u, nbdkit.

# shellcheck disable=SC2034 # variables set here are used by the tests

: "${IBC_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${IBC_BUILD_DIR:=$IBC_SOURCE_DIR/build}"
export IBC_SOURCE_DIR IBC_BUILD_DIR

F=$IBC_BUILD_DIR/plugins
FALLBACK=$F/nbdkit-ibcrypt-fallback-filter.so
PASSTHROUGH=$F/nbdkit-ibcrypt-passthrough-filter.so
KEYSLOT=$F/nbdkit-ibcrypt-keyslot-filter.so
NBDIO=$IBC_BUILD_DIR/tests/ibc-nbdio

_ibc_name=$(basename "$0" .sh)

# ---- failing and skipping ---------------------------------------------

# fail MESSAGE...: the test failed.
fail ()
{
  echo "FAIL: $_ibc_name: $*" >&2
  exit 1
}

# skip MESSAGE...: the test cannot run here (ctest counts exit 77 as skip).
skip ()
{
  echo "SKIP: $_ibc_name: $*" >&2
  exit 77
}

# requires CMD [ARGS...]: skip unless CMD runs successfully.
requires ()
{
  "$@" </dev/null >/dev/null 2>&1 || skip "requires: $*"
}

requires_root ()
{
  [ "$(id -u)" -eq 0 ] || skip "must run as root"
}

requires_fuse ()
{
  [ -c /dev/fuse ] || skip "/dev/fuse is missing"
  requires fusermount3 --version
  requires nbdfuse --version
}

requires_loop ()
{
  [ -e /dev/loop-control ] || skip "/dev/loop-control is missing"
  requires losetup -f
}

# requires_built FILE...: a missing build product is a failure, not a skip.
requires_built ()
{
  local f
  for f in "$@"; do
    [ -e "$f" ] || fail "'$f' is not built (build the project in $IBC_BUILD_DIR)"
  done
}

# ---- cleanup hooks ----------------------------------------------------

_ibc_cleanup_hooks=()
_ibc_logs=()
declare -A _ibc_live=()

# cleanup_fn CMD [ARGS...]: run CMD ARGS when the script exits, however it
# exits.  Hooks run last-registered first; a failing hook fails the test.
cleanup_fn ()
{
  local q
  printf -v q '%q ' "$@"
  _ibc_cleanup_hooks+=("$q")
}

# show_log_on_failure FILE: print the tail of FILE if the test fails.
show_log_on_failure ()
{
  _ibc_logs+=("$1")
}

_ibc_tmp=

_ibc_on_exit ()
{
  local status=$? i log
  set +e
  trap - ERR
  for ((i = ${#_ibc_cleanup_hooks[@]} - 1; i >= 0; i--)); do
    if ! eval "${_ibc_cleanup_hooks[i]}"; then
      echo "FAIL: $_ibc_name: cleanup failed: ${_ibc_cleanup_hooks[i]}" >&2
      [ "$status" -ne 0 ] || status=1
    fi
  done
  if [ "$status" -ne 0 ] && [ "$status" -ne 77 ]; then
    for log in "${_ibc_logs[@]}"; do
      [ -s "$log" ] || continue
      echo "---- last 40 lines of $log ----" >&2
      tail -n 40 "$log" >&2
    done
  fi
  # Last, after the logs were shown.  --one-file-system: never descend
  # into something left mounted.
  [ -z "$_ibc_tmp" ] || rm -rf --one-file-system "$_ibc_tmp"
  exit "$status"
}

# Under set -e, say which command failed instead of exiting silently.
_ibc_on_err ()
{
  echo "FAIL: $_ibc_name: line $2: '$3' exited with status $1" >&2
}

set -E
trap '_ibc_on_err $? $LINENO "$BASH_COMMAND"' ERR
trap _ibc_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- temporary files --------------------------------------------------

# make_tmpdir: create $tmp under /tmp, removed at exit after everything
# else (kept when IBC_KEEP_TMP=1).
make_tmpdir ()
{
  tmp=$(mktemp -d /tmp/ibc-test.XXXXXX)
  if [ "${IBC_KEEP_TMP:-0}" = 1 ]; then
    echo "keeping $tmp" >&2
  else
    _ibc_tmp=$tmp
  fi
}

# make_key FILE BYTES: a random raw key file, readable by root only.
make_key ()
{
  (umask 077 && head -c "$2" /dev/urandom >"$1")
  [ "$(stat -c %s "$1")" -eq "$2" ] || fail "make_key: short key file $1"
}

# nbd_uri SOCKET: the NBD URI of a Unix socket.
nbd_uri ()
{
  echo "nbd+unix:///?socket=$1"
}

# ---- processes, by PID only -------------------------------------------

# _ibc_exited PID: true once PID is gone or a zombie (kill -0 succeeds on
# zombies, so it cannot tell).
_ibc_exited ()
{
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
  [ -z "$state" ] || [ "$state" = Z ]
}

# wait_pid_exit PID SECONDS: wait for a child to exit, reap it, and set
# EXIT_STATUS to its exit status.
wait_pid_exit ()
{
  local pid=$1 i
  for ((i = 0; i < $2 * 10; i++)); do
    if _ibc_exited "$pid"; then
      EXIT_STATUS=0
      wait "$pid" 2>/dev/null || EXIT_STATUS=$?
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# start_nbdkit SOCKET PIDFILE ARGS...: run "nbdkit -f -U SOCKET -P PIDFILE
# ARGS" in the background, wait until it serves, and register stop_nbdkit.
# Sets NBDKIT_PID.  stderr goes to PIDFILE's directory as nbdkit-*.log
# (add -v with IBC_NBDKIT_VERBOSE=1).
start_nbdkit ()
{
  local sock=$1 pidfile=$2 log i verbose=()
  shift 2
  log=$(dirname "$pidfile")/nbdkit-$(basename "$sock" .sock).log
  [ "${IBC_NBDKIT_VERBOSE:-0}" = 1 ] && verbose=(-v)
  nbdkit "${verbose[@]}" -f --exit-with-parent -U "$sock" -P "$pidfile" \
    "$@" 2>"$log" &
  NBDKIT_PID=$!
  _ibc_live[nbdkit:$NBDKIT_PID]=1
  show_log_on_failure "$log"
  cleanup_fn stop_nbdkit "$NBDKIT_PID"
  for ((i = 0; i < 300; i++)); do
    if [ -S "$sock" ] && [ -s "$pidfile" ]; then
      [ "$(cat "$pidfile")" = "$NBDKIT_PID" ] ||
        fail "nbdkit pidfile $pidfile does not hold $NBDKIT_PID"
      return 0
    fi
    _ibc_exited "$NBDKIT_PID" && fail "nbdkit exited during startup: nbdkit $*"
    sleep 0.1
  done
  fail "nbdkit did not start serving $sock within 30 s"
}

# stop_nbdkit PID: SIGTERM, then wait for exit status 0.  Having exited
# before (a crash no client noticed), a non-zero status or needing SIGKILL
# after 10 s are failures.
stop_nbdkit ()
{
  local pid=$1
  [ -n "${_ibc_live[nbdkit:$pid]:-}" ] || return 0
  unset "_ibc_live[nbdkit:$pid]"
  if _ibc_exited "$pid"; then
    wait_pid_exit "$pid" 1
    echo "nbdkit $pid had exited by itself with status $EXIT_STATUS" >&2
    return 1
  fi
  kill -TERM "$pid" 2>/dev/null || true
  if wait_pid_exit "$pid" 10; then
    [ "$EXIT_STATUS" -eq 0 ] && return 0
    echo "nbdkit $pid exited with status $EXIT_STATUS after SIGTERM" >&2
    return 1
  fi
  echo "nbdkit $pid ignored SIGTERM for 10 s: killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait_pid_exit "$pid" 10 || true
  return 1
}

# ---- the kernel block device: nbdfuse, loop, mount ---------------------

# start_nbdfuse MNTDIR SOCKET: serve SOCKET's export as MNTDIR/nbd and
# register stop_nbdfuse.  Sets NBDFUSE_PID.
start_nbdfuse ()
{
  local mnt=$1 sock=$2 pidfile log i
  pidfile=$mnt.pid
  log=$mnt.log
  mkdir -p "$mnt"
  nbdfuse -P "$pidfile" "$mnt" --unix "$sock" 2>"$log" &
  NBDFUSE_PID=$!
  _ibc_live[nbdfuse:$mnt]=$NBDFUSE_PID
  show_log_on_failure "$log"
  cleanup_fn stop_nbdfuse "$mnt"
  for ((i = 0; i < 300; i++)); do
    if [ -s "$pidfile" ] && mountpoint -q "$mnt" && [ -e "$mnt/nbd" ]; then
      return 0
    fi
    _ibc_exited "$NBDFUSE_PID" && fail "nbdfuse exited during startup"
    sleep 0.1
  done
  fail "nbdfuse did not mount $mnt within 30 s"
}

# stop_nbdfuse MNTDIR: unmount (nbdfuse then exits by itself) and wait for
# its PID.  nbdfuse must not be killed while mounted; SIGKILL only as a
# last resort, and that is a failure.
stop_nbdfuse ()
{
  local mnt=$1 pid i
  pid=${_ibc_live[nbdfuse:$mnt]:-}
  [ -n "$pid" ] || return 0
  unset "_ibc_live[nbdfuse:$mnt]"
  for ((i = 0; i < 50; i++)); do
    mountpoint -q "$mnt" || break
    fusermount3 -u "$mnt" 2>/dev/null && break
    sleep 0.2
  done
  if wait_pid_exit "$pid" 10 && ! mountpoint -q "$mnt"; then
    [ "$EXIT_STATUS" -eq 0 ] && return 0
    echo "nbdfuse $pid exited with status $EXIT_STATUS" >&2
    return 1
  fi
  echo "nbdfuse $pid did not exit after unmounting $mnt" >&2
  mountpoint -q "$mnt" && fusermount3 -uz "$mnt"
  kill -KILL "$pid" 2>/dev/null || true
  wait_pid_exit "$pid" 10 || true
  return 1
}

# attach_loop FILE [LOSETUP-OPTIONS...]: attach FILE to a free loop device,
# set LOOP, register detach_loop.
attach_loop ()
{
  local file=$1
  shift
  LOOP=$(losetup -f --show "$@" "$file") || fail "losetup $* $file failed"
  _ibc_live[loop:$LOOP]=$(realpath "$file")
  cleanup_fn detach_loop "$LOOP"
}

# detach_loop DEV: detach DEV if it is still ours, and wait until the
# kernel has let go of the backing file (else fusermount3 -u sees EBUSY).
detach_loop ()
{
  local dev=$1 file back i
  file=${_ibc_live[loop:$dev]:-}
  [ -n "$file" ] || return 0
  unset "_ibc_live[loop:$dev]"
  back=$(losetup -n -O BACK-FILE "$dev" 2>/dev/null | sed 's/ *$//') || true
  if [ "$back" != "$file" ]; then
    echo "$dev is no longer attached to $file: not detaching" >&2
    return 0
  fi
  losetup -d "$dev" || return 1
  for ((i = 0; i < 100; i++)); do
    back=$(losetup -n -O BACK-FILE "$dev" 2>/dev/null | sed 's/ *$//') || true
    [ "$back" = "$file" ] || return 0
    sleep 0.1
  done
  echo "$dev still attached to $file 10 s after losetup -d" >&2
  return 1
}

# mount_fs DEV DIR [MOUNT-OPTIONS...]: mount and register unmount_fs.
mount_fs ()
{
  local dev=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  mount "$@" "$dev" "$dir" || fail "mount $dev $dir failed"
  _ibc_live[mount:$dir]=1
  cleanup_fn unmount_fs "$dir"
}

unmount_fs ()
{
  local dir=$1
  [ -n "${_ibc_live[mount:$dir]:-}" ] || return 0
  unset "_ibc_live[mount:$dir]"
  mountpoint -q "$dir" || return 0
  umount "$dir"
}

# ---- ibcrypt stacks ---------------------------------------------------

# ibc_stack KIND SIZE KEYFILE DIR: set STACK_FILTERS and STACK_PARAMS (bash
# arrays) for an aes-xts-plain64 export of SIZE bytes (a multiple of
# 8192), writing table files into DIR.  Use as
#   nbdkit ... "${STACK_FILTERS[@]}" file IMG "${STACK_PARAMS[@]}"
# KIND: fallback (fallback over the plugin), full (fallback + passthrough
# + keyslot with two emulated devices d0, d1 of SIZE/2 each), or plain
# (keyslot alone: NO encryption; a control that tests must reject).
ibc_stack ()
{
  local kind=$1 size=$2 key=$3 dir=$4 sectors half dev
  sectors=$((size / 512))
  half=$((size / 2))
  printf '0 %d crypt aes-xts-plain64 @%s 0 2 sector_size:4096 iv_large_sectors\n' \
    "$sectors" "$key" >"$dir/crypt.table"
  printf '0 %d linear d0 0\n%d %d linear d1 0\n' \
    $((sectors / 2)) $((sectors / 2)) $((sectors / 2)) >"$dir/dm.table"
  dev="slots=4,modes=aes-xts-plain64:512+4096,dun-bytes=8"
  case $kind in
  fallback)
    STACK_FILTERS=(--filter="$FALLBACK")
    STACK_PARAMS=(fallback-table="$dir/crypt.table")
    ;;
  full)
    STACK_FILTERS=(--filter="$FALLBACK" --filter="$PASSTHROUGH"
      --filter="$KEYSLOT")
    STACK_PARAMS=(fallback-table="$dir/crypt.table"
      passthrough-table="$dir/dm.table"
      keyslot-device="d0,start=0,size=$half,$dev"
      keyslot-device="d1,start=$half,size=$half,$dev")
    ;;
  plain)
    STACK_FILTERS=(--filter="$KEYSLOT")
    STACK_PARAMS=()
    ;;
  *) fail "ibc_stack: unknown kind '$kind'" ;;
  esac
  requires_built "${STACK_FILTERS[@]#--filter=}"
}

# ---- assertions -------------------------------------------------------

# expect_fail ERRNO CMD [ARGS...]: CMD (an ibc-nbdio command) must fail
# with the exit status ibc-nbdio uses for ERRNO: 10 + (EPERM 1, EIO 5,
# EINVAL 22, ENOSPC 28, OTHER 99).  ERRNO is a name or the number.
expect_fail ()
{
  local want=$1 status=0
  shift
  case $want in
  EPERM) want=1 ;;
  EIO) want=5 ;;
  EINVAL) want=22 ;;
  ENOSPC) want=28 ;;
  OTHER) want=99 ;;
  esac
  "$@" || status=$?
  [ "$status" -eq $((10 + want)) ] ||
    fail "expected '$*' to fail with errno class $want (exit $((10 + want))), got exit $status"
}

# is_all_zero FILE [OFFSET LENGTH]: true if those bytes are all zero.  A
# block device is read with O_DIRECT, past the page cache.
is_all_zero ()
{
  local file=$1 off=${2:-0} len=${3:-} flags=skip_bytes,count_bytes
  [ -n "$len" ] || len=$(($(stat -c %s "$file") - off))
  [ -b "$file" ] && flags=$flags,direct
  cmp -s -n "$len" /dev/zero \
    <(dd if="$file" bs=1M iflag="$flags" skip="$off" count="$len" status=none)
}

# ---- the control plane ------------------------------------------------

IBCRYPTD=$IBC_BUILD_DIR/daemon/ibcryptd
IBCRYPTCTL=$IBC_BUILD_DIR/cli/ibcryptctl

# start_ibcryptd DIR [ARGS...]: run ibcryptd with its socket DIR/ctl.sock
# and state in DIR/state, log in DIR/ibcryptd.log; wait until it answers.
# Sets IBCRYPTD_PID and CTL_SOCK; registers a stop by PID.
start_ibcryptd ()
{
  local dir=$1 i
  shift
  CTL_SOCK=$dir/ctl.sock
  "$IBCRYPTD" --socket "$CTL_SOCK" --state-dir "$dir/state" "$@" \
    2>>"$dir/ibcryptd.log" &
  IBCRYPTD_PID=$!
  _ibc_live[ibcryptd:$IBCRYPTD_PID]=1
  show_log_on_failure "$dir/ibcryptd.log"
  cleanup_fn stop_ibcryptd "$IBCRYPTD_PID"
  for ((i = 0; i < 100; i++)); do
    [ -S "$CTL_SOCK" ] && ctl status >/dev/null 2>&1 && return 0
    _ibc_exited "$IBCRYPTD_PID" && fail "ibcryptd exited during startup"
    sleep 0.1
  done
  fail "ibcryptd did not answer on $CTL_SOCK within 10 s"
}

# stop_ibcryptd PID: SIGTERM and wait; a daemon killed on purpose (-9)
# before is fine.
stop_ibcryptd ()
{
  local pid=$1
  [ -n "${_ibc_live[ibcryptd:$pid]:-}" ] || return 0
  unset "_ibc_live[ibcryptd:$pid]"
  _ibc_exited "$pid" && { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  wait_pid_exit "$pid" 10 && return 0
  kill -KILL "$pid" 2>/dev/null || true
  return 1
}

# ctl ARGS...: ibcryptctl against this test's daemon.
ctl ()
{
  "$IBCRYPTCTL" --socket "$CTL_SOCK" "$@"
}

# ctl_json ARGS...: the JSON reply of a command (one object on stdout).
ctl_json ()
{
  "$IBCRYPTCTL" --socket "$CTL_SOCK" --json=short "$@"
}

# expect_exit CODE CMD...: CMD must exit with CODE.
expect_exit ()
{
  local want=$1 status=0
  shift
  "$@" || status=$?
  [ "$status" -eq "$want" ] || fail "expected '$*' to exit $want, got $status"
}

# wait_for DESC SECONDS CMD...: retry CMD until it succeeds.
wait_for ()
{
  local desc=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 10; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "timed out waiting for $desc"
}
