#!/usr/bin/env bash
# ibcryptctl without a daemon: help generated from the command table,
# usage errors, key-file length rules (exact messages, checked before any
# connection), and the exit status of an unreachable daemon.
source "$(dirname "$0")/functions.sh"
set -euo pipefail
requires_built "$IBCRYPTCTL"
make_tmpdir

NOSOCK=/nonexistent/sock
export IBCRYPT_SOCKET=$NOSOCK

# check WANT_STATUS WANT_STDERR ARGS...: ibcryptctl ARGS (stdin /dev/null)
# must exit WANT_STATUS with exactly WANT_STDERR on stderr.
check ()
{
  local want=$1 want_err=$2 status=0 got
  shift 2
  "$IBCRYPTCTL" "$@" </dev/null >"$tmp/out" 2>"$tmp/err" || status=$?
  got=$(cat "$tmp/err")
  [ "$status" -eq "$want" ] ||
    fail "'ibcryptctl $*' exited $status, want $want (stderr: $got)"
  [ "$got" = "$want_err" ] ||
    fail "'ibcryptctl $*' stderr:$(diff <(echo "$want_err") <(echo "$got") || true)"
}

# ---- help, generated from the table ---------------------------------------

"$IBCRYPTCTL" help >"$tmp/help"
commands=$(grep -E '^  [a-z]' "$tmp/help")
want='  status
  key add NAME --cipher CIPHER (--key-file PATH|- | --generate) [--hw-wrapped]
  key list
  key show NAME
  key evict NAME [DEVICE]
  key remove NAME [--force]
  key import DEVICE --key-file PATH|- [--output FILE]
  key generate DEVICE [--output FILE]
  key prepare DEVICE LTBLOB_FILE [--output FILE]
  device list
  device show DEVICE
  device caps DEVICE [--check CIPHER:DUS:DUN_BYTES[:KEY_TYPE]]
  device reset DEVICE
  table show DEVICE [--inactive]
  table load DEVICE [FILE|-]
  table resume DEVICE
  map INSTANCE (FILE|- | KEY --cipher CIPHER [RANGE OPTIONS] [--dry-run])
  stats [DEVICE]'
[ "$commands" = "$want" ] ||
  fail "help commands:$(diff <(echo "$want") <(echo "$commands") || true)"
grep -qx '6 ibcryptd unreachable.' "$tmp/help" || fail "help lacks the exit status table"
cmp -s "$tmp/help" <("$IBCRYPTCTL" --help) || fail "'--help' differs from 'help'"
"$IBCRYPTCTL" key add --help >"$tmp/h1"
"$IBCRYPTCTL" help key add >"$tmp/h2"
cmp -s "$tmp/h1" "$tmp/h2" || fail "'help key add' differs from 'key add --help'"
[ "$(head -n 1 "$tmp/h1")" = "Usage: ibcryptctl [OPTIONS] key add NAME --cipher CIPHER (--key-file PATH|- | --generate) [--hw-wrapped]" ] ||
  fail "key add --help: $(head -n 1 "$tmp/h1")"
# --help anywhere wins over running the command (no connection attempt).
"$IBCRYPTCTL" key remove k1 --help >"$tmp/h3"
grep -q '^Usage: ibcryptctl \[OPTIONS\] key remove NAME \[--force\]$' "$tmp/h3" ||
  fail "key remove k1 --help"
"$IBCRYPTCTL" help device >"$tmp/h4"
[ "$(grep -cE '^  device ' "$tmp/h4")" -eq 4 ] || fail "help device: $(cat "$tmp/h4")"
"$IBCRYPTCTL" --version | grep -qE '^ibcryptctl [0-9]+\.[0-9]+\.[0-9]+$' ||
  fail "--version: $("$IBCRYPTCTL" --version)"

# ---- usage errors: exit 1 ----------------------------------------------------

check 1 "Usage: ibcryptctl [--socket PATH] [--json[=short|pretty|off]] [--yes] COMMAND [ARGS...]
See 'ibcryptctl help'."
check 1 "ibcryptctl: unknown command 'frobnicate'
See 'ibcryptctl --help'." frobnicate
check 1 "ibcryptctl: unknown command 'key frob'
See 'ibcryptctl key --help'." key frob
check 1 "ibcryptctl: key show: missing argument (key show NAME)
See 'ibcryptctl key show --help'." key show
check 1 "ibcryptctl: key show: unexpected argument 'b'
See 'ibcryptctl key show --help'." key show a b
check 1 "ibcryptctl: key list: unrecognized option '--bogus'
See 'ibcryptctl key list --help'." key list --bogus
check 1 "ibcryptctl: invalid --json mode 'yaml' (short, pretty or off)
See 'ibcryptctl --help'." --json=yaml status
check 1 "ibcryptctl: key add: option '--cipher' requires an argument
See 'ibcryptctl key add --help'." key add k1 --cipher
check 1 "ibcryptctl: key add: --cipher is required
See 'ibcryptctl key add --help'." key add k1 --generate
check 1 "ibcryptctl: key add: one of --key-file or --generate is required
See 'ibcryptctl key add --help'." key add k1 --cipher aes-xts-plain64
check 1 "ibcryptctl: key add: --key-file and --generate exclude each other
See 'ibcryptctl key add --help'." key add k1 --cipher aes-xts-plain64 --generate --key-file /dev/null
check 1 "ibcryptctl: adding key 'k1': unknown cipher 'aes-foo'" \
  key add k1 --cipher aes-foo --generate
check 1 "ibcryptctl: adding key 'a/b': invalid key name (1 to 64 of A-Z a-z 0-9 . _ -)" \
  key add a/b --cipher aes-xts-plain64 --generate
check 1 "ibcryptctl: device caps: invalid --check 'aes-xts-plain64:x:8' (CIPHER:DUS:DUN_BYTES[:KEY_TYPE], e.g. aes-xts-plain64:4096:8)
See 'ibcryptctl device caps --help'." device caps disk0/d0 --check aes-xts-plain64:x:8
check 1 "ibcryptctl: map: --start, --length, --iv-offset and --sector-size need --cipher (map INSTANCE KEY --cipher CIPHER)
See 'ibcryptctl map --help'." map disk0 k1 --start 8
check 1 "ibcryptctl: map: invalid --length '-5'
See 'ibcryptctl map --help'." map disk0 k1 --cipher aes-xts-plain64 --length -5
check 1 "ibcryptctl: map: KEY is the name of a key ibcryptd holds, not a key file ('@/etc/key')
See 'ibcryptctl map --help'." map disk0 @/etc/key --cipher aes-xts-plain64

# ---- key files: exact sizes, read before connecting --------------------------

make_key "$tmp/k64" 64
make_key "$tmp/k65" 65
make_key "$tmp/k10" 10
make_key "$tmp/k16" 16
make_key "$tmp/k129" 129
: >"$tmp/empty"

check 1 "ibcryptctl: reading key 'k1' from '$tmp/k65': key file is longer than the 64 bytes aes-xts-plain64 takes" \
  key add k1 --cipher aes-xts-plain64 --key-file "$tmp/k65"
check 1 "ibcryptctl: reading key 'k1' from '$tmp/k10': key file is shorter than the 64 bytes aes-xts-plain64 takes (it has 10)" \
  key add k1 --cipher aes-xts-plain64 --key-file "$tmp/k10"
check 1 "ibcryptctl: reading key 'k1' from '$tmp/empty': key file is empty" \
  key add k1 --cipher aes-xts-plain64 --key-file "$tmp/empty"
check 1 "ibcryptctl: reading key 'k1' from '$tmp/k64': key file is longer than the 16 bytes aes-cbc-essiv:sha256 takes" \
  key add k1 --cipher aes-cbc-essiv:sha256 --key-file "$tmp/k64"
check 4 "ibcryptctl: reading key 'k1' from '$tmp/missing': No such file or directory" \
  key add k1 --cipher aes-xts-plain64 --key-file "$tmp/missing"
check 1 "ibcryptctl: reading key 'k1' from '$tmp': Is a directory" \
  key add k1 --cipher aes-xts-plain64 --key-file "$tmp"
# Standard input, with the same limits.
status=0
"$IBCRYPTCTL" key add k1 --cipher adiantum --key-file - <"$tmp/k64" 2>"$tmp/err" || status=$?
[ "$status" -eq 1 ] || fail "long key on stdin: exit $status"
[ "$(cat "$tmp/err")" = "ibcryptctl: reading key 'k1' from '-': key file is longer than the 32 bytes xchacha12,aes-adiantum-plain64 takes" ] ||
  fail "long key on stdin: $(cat "$tmp/err")"
# Hardware-wrapped blobs: security strength .. 128 bytes.
check 1 "ibcryptctl: reading key 'k1' from '$tmp/k10': a hardware-wrapped aes-xts-plain64 key has at least 32 bytes (it has 10)" \
  key add k1 --cipher aes-xts-plain64 --hw-wrapped --key-file "$tmp/k10"
check 1 "ibcryptctl: reading key 'k1' from '$tmp/k129': key file is longer than the 128 bytes aes-xts-plain64 allows" \
  key add k1 --cipher aes-xts-plain64 --hw-wrapped --key-file "$tmp/k129"

# A key of the right size gets as far as connecting: exit 6.
check 6 "ibcryptctl: connecting to ibcryptd at '$NOSOCK': No such file or directory" \
  key add k1 --cipher aes-cbc-essiv:sha256 --key-file "$tmp/k16"
status=0
"$IBCRYPTCTL" key add k1 --cipher aes-xts-plain64 --key-file - <"$tmp/k64" 2>"$tmp/err" || status=$?
[ "$status" -eq 6 ] || fail "64-byte key on stdin: exit $status ($(cat "$tmp/err"))"

# ---- an unreachable daemon: exit 6 ---------------------------------------------

check 6 "ibcryptctl: connecting to ibcryptd at '/nonexistent/sock': No such file or directory" \
  --socket /nonexistent/sock key list
# From $IBCRYPT_SOCKET, with global options after the command.
check 6 "ibcryptctl: connecting to ibcryptd at '$NOSOCK': No such file or directory" \
  status --json
check 6 "ibcryptctl: connecting to ibcryptd at '$tmp/other': No such file or directory" \
  key list --socket "$tmp/other"
# Destructive commands do not ask when stdin is not a terminal.
check 6 "ibcryptctl: connecting to ibcryptd at '$NOSOCK': No such file or directory" \
  key remove k1
check 6 "ibcryptctl: connecting to ibcryptd at '$NOSOCK': No such file or directory" \
  device reset disk0/d0
# A socket file nobody listens on: connection refused, still 6.
/usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])' "$tmp/stale.sock"
check 6 "ibcryptctl: connecting to ibcryptd at '$tmp/stale.sock': Connection refused" \
  --socket "$tmp/stale.sock" stats
# A regular file where the socket should be.
: >"$tmp/notsock"
check 6 "ibcryptctl: connecting to ibcryptd at '$tmp/notsock': Connection refused" \
  --socket "$tmp/notsock" stats
echo "PASS: $_ibc_name"
