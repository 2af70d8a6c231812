/* Unit tests: the crypt table in force, key resolution, native vs software. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ibc-check.h"
#include "ibcrypt/fallback.h"
#include "ibcrypt/hwdev.h"
#include "ibcrypt/secmem.h"

static char keyfile[64], shortfile[64];
static char err[512];

static void
setup (void)
{
  uint8_t bytes[64];
  FILE *f;

  for (int i = 0; i < 64; i++)
    bytes[i] = (uint8_t) (0x40 + i);
  strcpy (keyfile, "/tmp/ibc-test-key-XXXXXX");
  close (mkstemp (keyfile));
  f = fopen (keyfile, "wb");
  fwrite (bytes, 1, 64, f);
  fclose (f);
  strcpy (shortfile, "/tmp/ibc-test-key-XXXXXX");
  close (mkstemp (shortfile));
  f = fopen (shortfile, "wb");
  fwrite (bytes, 1, 63, f);
  fclose (f);
}

static void
teardown (void)
{
  unlink (keyfile);
  unlink (shortfile);
}

/* A keyslot layer: d0 [0, 1M) AES-XTS 4096 with 8-byte DUNs, d1 [1M, 2M)
 * AES-XTS 4096 with 4-byte DUNs. */
static struct ibc_hwdev *d0, *d1;

static struct ibc_layer *
make_below (void)
{
  struct ibc_hwdev_spec s;
  struct ibc_layer *l;

  ck_assert_int_eq (ibc_hwdev_spec_parse ("d0,start=0,size=1M,slots=2,"
                                          "modes=aes-xts:4096,dun-bytes=8",
                                          &s, err, sizeof err),
                    0);
  ck_assert_int_eq (ibc_hwdev_new (&s, NULL, &d0), 0);
  ck_assert_int_eq (ibc_hwdev_spec_parse ("d1,start=1M,size=1M,slots=2,"
                                          "modes=aes-xts:4096,dun-bytes=4",
                                          &s, err, sizeof err),
                    0);
  ck_assert_int_eq (ibc_hwdev_new (&s, NULL, &d1), 0);
  ck_assert_int_eq (ibc_layer_new (IBC_LAYER_KEYSLOT, "ks", &l), 0);
  ck_assert_int_eq (
      ibc_layer_add_device (l, "d0", 0, 1 << 20, ibc_hwdev_profile (d0), d0),
      0);
  ck_assert_int_eq (ibc_layer_add_device (l, "d1", 1 << 20, 1 << 20,
                                          ibc_hwdev_profile (d1), d1),
                    0);
  ck_assert_int_eq (ibc_layer_publish (l), 0);
  return l;
}

static void
free_below (struct ibc_layer *l)
{
  ibc_layer_free (l);
  ibc_hwdev_free (d0);
  ibc_hwdev_free (d1);
}

/* Collect the actions of the pieces of [off, off+len). */
static int
pieces (struct ibc_fallback *fb, uint64_t off, uint64_t len,
        struct ibc_fallback_piece *out, int max)
{
  struct ibc_fallback_io io;
  int n = 0;

  ck_assert_int_eq (ibc_fallback_io_begin (fb, off, len, &io), 0);
  while (n < max && ibc_fallback_io_next (&io, &out[n]))
    n++;
  ibc_fallback_io_end (&io);
  return n;
}

START_TEST (test_native_and_software)
{
  struct ibc_layer *below = make_below ();
  struct ibc_fallback_opts opts = { .enabled = true };
  struct ibc_fallback *fb;
  struct ibc_fallback_piece p[8];
  char table[512];

  ck_assert_int_eq (ibc_fallback_new (&opts, below, &fb), 0);
  /* 2 MiB: XTS over both devices (8-byte DUNs: d1 lacks them), then the
   * same key region as Adiantum (no device has it), then plain. */
  snprintf (table, sizeof table,
            "0 3072 crypt aes-xts-plain64 @%s 0 3 sector_size:4096 "
            "iv_large_sectors dun_bytes:8\n"
            "3072 512 crypt xchacha12,aes-adiantum-plain64 @%s 0 2 "
            "sector_size:4096 iv_large_sectors\n"
            "3584 512 plain\n",
            keyfile, keyfile);
  /* The Adiantum key file must be 32 bytes: 64 is refused exactly. */
  ck_assert_int_eq (ibc_fallback_set_table (fb, table, 0, err, sizeof err),
                    -EINVAL);
  ck_assert_msg (strstr (err, "64 bytes is not a valid raw key for "
                              "xchacha12,aes-adiantum-plain64"),
                 "%s", err);
  snprintf (table, sizeof table,
            "0 3072 crypt aes-xts-plain64 @%s 0 3 sector_size:4096 "
            "iv_large_sectors dun_bytes:8\n"
            "3072 1024 plain\n",
            keyfile);
  ck_assert_int_eq (ibc_fallback_set_table (fb, table, 0, err, sizeof err), 0);
  ck_assert_uint_eq (ibc_fallback_size (fb), 2 << 20);
  ck_assert_uint_eq (ibc_fallback_max_data_unit (fb), 4096);

  /* [512K, 1.5M + 4K): split at the device boundary; d0 native, d1
   * software (4-byte DUN hardware, 8-byte DUN key); then plain. */
  int n = pieces (fb, 512 << 10, (1 << 20) + 4096, p, 8);
  ck_assert_int_eq (n, 3);
  ck_assert_int_eq (p[0].action, IBC_PIECE_NATIVE);
  ck_assert_uint_eq (p[0].off, 512 << 10);
  ck_assert_uint_eq (p[0].len, 512 << 10);
  ck_assert_uint_eq (p[0].dun.w[0], 128);
  ck_assert_int_eq (p[0].ctx.kind, IBC_CTX_CRYPTO);
  ck_assert_uint_eq (p[0].ctx.anchor, 512 << 10);
  ck_assert_int_eq (p[1].action, IBC_PIECE_SOFTWARE);
  ck_assert_uint_eq (p[1].off, 1 << 20);
  ck_assert_uint_eq (p[1].len, 512 << 10);
  ck_assert_uint_eq (p[1].dun.w[0], 256);
  ck_assert_int_eq (p[1].ctx.kind, IBC_CTX_PLAIN);
  ck_assert_int_eq (p[2].action, IBC_PIECE_PLAIN);
  ck_assert_uint_eq (p[2].len, 4096);

  /* Unaligned crypt pieces. */
  n = pieces (fb, 512, 4096, p, 8);
  ck_assert_int_eq (p[0].action, IBC_PIECE_UNALIGNED);

  /* The fallback's own keyslot was programmed at bind time (start using
   * the key), not on the data path. */
  struct ibc_profile_stats ps;
  ibc_profile_get_stats (ibc_fallback_profile (fb), &ps);
  ck_assert_uint_eq (ps.programs, 1);

  /* Software output equals what the device would have written. */
  static uint8_t in[4096], sw[4096], hw[4096];
  memset (in, 0x5a, sizeof in);
  ck_assert_int_eq (
      ibc_fallback_crypt (fb, p[0].key, &p[0].dun, in, sw, 4096, true), 0);
  ck_assert_int_eq (
      ibc_hwdev_crypt (d0, p[0].key, &p[0].dun, in, hw, 4096, true), 0);
  ck_assert_mem_eq (sw, hw, 4096);

  ibc_fallback_free (fb);
  free_below (below);
}
END_TEST

START_TEST (test_disabled_fallback)
{
  struct ibc_layer *below = make_below ();
  struct ibc_fallback_opts opts = { .enabled = false };
  struct ibc_fallback *fb;
  char table[512];

  ck_assert_int_eq (ibc_fallback_new (&opts, below, &fb), 0);
  snprintf (table, sizeof table,
            "0 4096 crypt aes-xts-plain64 @%s 0 2 sector_size:4096 "
            "iv_large_sectors\n",
            keyfile);
  /* Default dun_bytes for 512 units is 2: both devices take it. */
  ck_assert_int_eq (ibc_fallback_set_table (fb, table, 0, err, sizeof err), 0);
  snprintf (table, sizeof table,
            "0 4096 crypt aes-xts-plain64 @%s 0 1 sector_size:512\n", keyfile);
  ck_assert_int_eq (ibc_fallback_set_table (fb, table, 0, err, sizeof err),
                    -EOPNOTSUPP);
  ck_assert_str_eq (err, "binding 1: aes-xts-plain64 raw keys with 512-byte "
                         "data units and 2 DUN bytes are not supported by "
                         "the device below and the fallback is disabled");
  /* Key file errors are reported with the path. */
  snprintf (table, sizeof table,
            "0 4096 crypt aes-xts-plain64 @%s 0 2 sector_size:4096 "
            "iv_large_sectors\n",
            shortfile);
  ck_assert_int_eq (ibc_fallback_set_table (fb, table, 0, err, sizeof err),
                    -EINVAL);
  ck_assert_msg (strstr (err, "63 bytes is not a valid raw key"), "%s", err);
  ck_assert_int_eq (
      ibc_fallback_set_table (fb,
                              "0 4096 crypt aes-xts-plain64 @/nonexistent 0 2 "
                              "sector_size:4096 iv_large_sectors\n",
                              0, err, sizeof err),
      -ENOENT);
  ck_assert_str_eq (err, "key file '/nonexistent': No such file or directory");
  ibc_fallback_free (fb);
  free_below (below);
}
END_TEST

static int wiped_64;
static void
count_wipes (const void *p, size_t size)
{
  const uint8_t *b = p;
  bool zero = true;
  for (size_t i = 0; i < size; i++)
    zero &= b[i] == 0;
  if (size == 64 && zero)
    wiped_64++;
}

START_TEST (test_keyring_lifecycle)
{
  struct ibc_layer *below = make_below ();
  struct ibc_fallback_opts opts = { .enabled = true };
  struct ibc_fallback *fb;
  struct ibc_fallback_piece p[4];
  struct ibc_key *k;
  uint8_t bytes[64];
  struct ibc_crypto_config cfg
      = { IBC_MODE_AES_256_XTS, 4096, 8, IBC_KEY_TYPE_RAW };

  for (int i = 0; i < 64; i++)
    bytes[i] = (uint8_t) (i * 3); /* XTS refuses equal halves */
  ck_assert_int_eq (ibc_key_new (&cfg, bytes, 64, &k), 0);
  ck_assert_int_eq (ibc_fallback_new (&opts, below, &fb), 0);
  ck_assert_int_eq (
      ibc_fallback_set_table (fb,
                              "0 2048 crypt aes-xts-plain64 :disk 0 2 "
                              "sector_size:4096 iv_large_sectors\n",
                              0, err, sizeof err),
      0);
  /* Absent key: I/O fails. */
  pieces (fb, 0, 4096, p, 4);
  ck_assert_int_eq (p[0].action, IBC_PIECE_NO_KEY);

  ck_assert_int_eq (ibc_fallback_add_key (fb, "disk", k, err, sizeof err), 0);
  ck_assert_int_eq (ibc_fallback_add_key (fb, "disk", k, err, sizeof err),
                    -EEXIST);
  ibc_key_unref (k); /* the fallback holds its own references now */
  pieces (fb, 0, 4096, p, 4);
  ck_assert_int_eq (p[0].action, IBC_PIECE_NATIVE);
  /* Program it into d0's slots via the native path. */
  static uint8_t buf[4096];
  ck_assert_int_eq (
      ibc_hwdev_crypt (d0, p[0].key, &p[0].dun, buf, buf, 4096, true), 0);
  struct ibc_keyslot_info info;
  ck_assert_int_eq (ibc_profile_slot_info (ibc_hwdev_profile (d0), 0, &info),
                    0);
  ck_assert (info.programmed);

  /* In use: refused without force. */
  ck_assert_int_eq (
      ibc_fallback_remove_key (fb, "disk", false, err, sizeof err), -EBUSY);
  ck_assert_str_eq (err, "key 'disk' is in use by binding 1");
  ck_assert_int_eq (
      ibc_fallback_remove_key (fb, "nokey", true, err, sizeof err), -ENOENT);

  /* Forced: evicted from the device below and wiped everywhere. */
  wiped_64 = 0;
  ibc_secmem_set_free_hook (count_wipes);
  ck_assert_int_eq (ibc_fallback_remove_key (fb, "disk", true, err, sizeof err),
                    0);
  ibc_secmem_set_free_hook (NULL);
  ck_assert_int_eq (ibc_profile_slot_info (ibc_hwdev_profile (d0), 0, &info),
                    0);
  ck_assert (!info.programmed);
  /* The keyring's key and the binding's key are both gone. */
  ck_assert_int_eq (wiped_64, 2);
  pieces (fb, 0, 4096, p, 4);
  ck_assert_int_eq (p[0].action, IBC_PIECE_NO_KEY);
  struct ibc_fallback_stats st;
  ibc_fallback_get_stats (fb, &st);
  ck_assert_uint_eq (st.missing_key_errors, 2);
  ck_assert_uint_eq (st.table_swaps, 3);
  ibc_fallback_free (fb);
  free_below (below);
}
END_TEST

static Suite *
fallback_suite (void)
{
  Suite *s = suite_create ("fallback");
  TCase *tc = tcase_create ("core");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_native_and_software);
  tcase_add_test (tc, test_disabled_fallback);
  tcase_add_test (tc, test_keyring_lifecycle);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (fallback_suite)
