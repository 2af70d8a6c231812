#!/usr/bin/env bash
# ibcrypt-passthrough with crypto contexts: each piece reaches the keyslot
# device with the context remapped, so the ciphertext in the backing file is
# AES-256-XTS with the DUN of the *mapped device's* offset (checked with
# Python's cryptography), and encrypted I/O to a zero target fails with EIO.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

py=/usr/bin/python3
requires nbdkit --version
requires cc --version
requires $py -c 'import cryptography'
requires_built "$PASSTHROUGH" "$KEYSLOT" "$NBDIO" "$IBC_BUILD_DIR/lib/libibcrypt.so"
make_tmpdir
cd "$tmp"
M=1048576

# A stand-in for the fallback filter: every request carries one AES-256-XTS
# context with 4096-byte data units and DUN 0 at offset 0.
cat > ctxpush.c <<'EOF'
#include <stdio.h>
#include <string.h>
#include <nbdkit-filter.h>
#include "ibcrypt/ctx.h"
#include "ibcrypt/key.h"

static const char *keyfile;
static struct ibc_key *key;

static int
cp_config (nbdkit_next_config *next, nbdkit_backend *nx, const char *k,
           const char *v)
{
  if (strcmp (k, "ctxpush-key") == 0) {
    keyfile = v;
    return 0;
  }
  return next (nx, k, v);
}

static int
cp_get_ready (int tm)
{
  struct ibc_crypto_config cfg = { IBC_MODE_AES_256_XTS, 4096, 8,
                                   IBC_KEY_TYPE_RAW };
  unsigned char b[64];
  FILE *f = fopen (keyfile, "r");

  (void) tm;
  if (f == NULL || fread (b, 1, 64, f) != 64
      || ibc_key_new (&cfg, b, 64, &key) < 0) {
    nbdkit_error ("ctxpush: bad key");
    return -1;
  }
  fclose (f);
  return 0;
}

static void
push (void)
{
  struct ibc_crypt_ctx c = { .kind = IBC_CTX_CRYPTO, .key = key,
                             .dun0 = ibc_dun_from_u64 (0), .anchor = 0,
                             .data_unit_size = 4096, .lo = 0,
                             .hi = UINT64_MAX };
  ibc_ctx_push (&c);
}

static int
cp_pread (nbdkit_next *next, void *h, void *buf, uint32_t n, uint64_t off,
          uint32_t flags, int *err)
{
  int r;
  (void) h;
  push ();
  r = next->pread (next, buf, n, off, flags, err);
  ibc_ctx_pop ();
  return r;
}

static int
cp_pwrite (nbdkit_next *next, void *h, const void *buf, uint32_t n,
           uint64_t off, uint32_t flags, int *err)
{
  int r;
  (void) h;
  push ();
  r = next->pwrite (next, buf, n, off, flags, err);
  ibc_ctx_pop ();
  return r;
}

static int
cp_can_extents (nbdkit_next *next, void *h)
{
  (void) next, (void) h;
  return 0;
}

static int
cp_can_zero (nbdkit_next *next, void *h)
{
  (void) next, (void) h;
  return NBDKIT_ZERO_EMULATE;
}

static int
cp_can_trim (nbdkit_next *next, void *h)
{
  (void) next, (void) h;
  return 0;
}

static struct nbdkit_filter filter = {
  .name = "ctxpush", .config = cp_config, .get_ready = cp_get_ready,
  .pread = cp_pread, .pwrite = cp_pwrite, .can_extents = cp_can_extents,
  .can_zero = cp_can_zero, .can_trim = cp_can_trim,
};
NBDKIT_REGISTER_FILTER (filter)
EOF
cc -std=gnu11 -shared -fPIC -o ctxpush.so ctxpush.c \
  -I"$IBC_SOURCE_DIR/lib/include" $(pkg-config nbdkit --cflags 2>/dev/null) \
  -L"$IBC_BUILD_DIR/lib" -libcrypt -Wl,-rpath,"$IBC_BUILD_DIR/lib" ||
  fail "cannot build the test filter"

make_key key 64
head -c $((2 * M)) /dev/urandom >plain
truncate -s $((64 * M)) disk
# [0, 1M) striped over d0 and d1 (4 KiB into it) with 4 KiB chunks,
# [1M, 2M) linear on d0 at 2M, then a zero target.
printf '0 2048 striped 2 8 d0 0 d1 8\n2048 2048 linear d0 4096\n4096 8 zero\n' >table
start_nbdkit "$tmp/s.sock" "$tmp/s.pid" \
  --filter="$tmp/ctxpush.so" --filter="$PASSTHROUGH" --filter="$KEYSLOT" \
  file "$tmp/disk" ctxpush-key="$tmp/key" passthrough-table="$tmp/table" \
  keyslot-device=d0,start=0,size=32M,modes=aes-xts:4096 \
  keyslot-device=d1,start=32M,size=32M,modes=aes-xts:4096
uri=$(nbd_uri "$tmp/s.sock")
"$NBDIO" "$uri" write 0 2M <plain
"$NBDIO" "$uri" read 0 2M >back
cmp plain back || fail "read-back differs"

# Encrypted I/O must not reach a zero target.
expect_fail EIO "$NBDIO" "$uri" read 2M 4096
expect_fail EIO "$NBDIO" "$uri" write 2M 4096 < <(head -c 4096 /dev/zero)
stop_nbdkit "$NBDKIT_PID"
grep -q "encrypted request \[2097152, +4096) refused: zero target" nbdkit-s.log ||
  fail "the refusal is not logged"
echo "ok: encrypted I/O to a zero target fails with EIO"

# check_disk FILE: the ciphertext of plain at the offsets of the striped +
# linear mapping, with the DUNs of the mapped device.
check_disk ()
{
DISK=$1 $py - <<'PY' || fail "wrong ciphertext in $1"
import os, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
M = 1 << 20
key = open("key", "rb").read()
plain = open("plain", "rb").read()
disk = open(os.environ["DISK"], "rb").read()

def xts(dun, data):
    enc = Cipher(algorithms.AES(key), modes.XTS(dun.to_bytes(16, "little"))).encryptor()
    return enc.update(data) + enc.finalize()

# Control: the plaintext must not be on the disk.
if plain[:4096] in disk:
    sys.exit("plaintext found in the backing file")
exp = bytearray(64 * M)
for c in range(256):                       # striped: DUN = chunk index
    row = (c // 2) * 4096
    dst = row if c % 2 == 0 else 32 * M + 4096 + row
    exp[dst:dst + 4096] = xts(c, plain[c * 4096:(c + 1) * 4096])
for i in range(256):                       # linear: the DUNs go on
    exp[2 * M + i * 4096:2 * M + (i + 1) * 4096] = \
        xts(256 + i, plain[M + i * 4096:M + (i + 1) * 4096])
if bytes(exp) != disk:
    bad = next(i for i in range(len(disk)) if disk[i] != exp[i])
    sys.exit("ciphertext differs at byte %d" % bad)
PY
}
check_disk disk
echo "ok: ciphertext at the mapped offsets with the device's DUNs"

# The same through the real fallback filter with software encryption off:
# the binding starts only if the passthrough profile offers AES-XTS at 4096
# bytes, and then every piece goes down with a context.
printf '0 2048 striped 2 8 d0 0 d1 8\n2048 2048 linear d0 4096\n' >table2
printf '0 4096 crypt aes-xts-plain64 @%s 0 2 sector_size:4096 iv_large_sectors\n' \
  "$tmp/key" >crypt
truncate -s $((64 * M)) disk2
requires_built "$FALLBACK"
fallback_stack ()  # fallback_stack DMTABLE: the filter arguments
{
  STACK=(--filter="$FALLBACK" --filter="$PASSTHROUGH" --filter="$KEYSLOT"
    file "$tmp/disk2" fallback-table="$tmp/crypt" fallback-enabled=no
    passthrough-table="$tmp/$1"
    keyslot-device=d0,start=0,size=32M,modes=aes-xts:4096
    keyslot-device=d1,start=32M,size=32M,modes=aes-xts:4096)
}
# Control: a stripe 512 bytes into d1 drops 4096-byte data units, so the
# binding is refused.
printf '0 2048 striped 2 8 d0 0 d1 1\n2048 2048 linear d0 4096\n' >table3
fallback_stack table3
if nbdkit -U - "${STACK[@]}" --run true 2>refused.log; then
  fail "fallback-enabled=no started over a passthrough without AES-XTS/4096"
fi
grep -q 'with 4096-byte data units and 2 DUN bytes are not supported by the device below' refused.log ||
  fail "unexpected refusal: $(cat refused.log)"
fallback_stack table2
start_nbdkit "$tmp/f.sock" "$tmp/f.pid" "${STACK[@]}"
uri=$(nbd_uri "$tmp/f.sock")
"$NBDIO" "$uri" write 0 2M <plain
"$NBDIO" "$uri" read 0 2M >back2
stop_nbdkit "$NBDKIT_PID"
cmp plain back2 || fail "read-back through the fallback differs"
check_disk disk2
echo "ok: fallback -> passthrough -> keyslot, hardware path only"
