/* Unit tests: crypt and passthrough (dm) table parsing, lookup, mapping. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ibc-check.h"
#include "ibcrypt/ctx.h"
#include "ibcrypt/table.h"

#define MiB (1024ULL * 1024)
#define GiB (1024ULL * MiB)

static char err[IBC_TABLE_ERR_MAX];

static struct ibc_crypt_table *
crypt_ok (const char *text, uint64_t size)
{
  struct ibc_crypt_table *t = NULL;
  err[0] = '\0';
  int r = ibc_crypt_table_parse (text, size, &t, err, sizeof err);
  ck_assert_msg (r == 0, "parse failed: %d %s", r, err);
  return t;
}

static struct ibc_dm_table *
dm_ok (const char *text, uint64_t size)
{
  struct ibc_dm_table *t = NULL;
  err[0] = '\0';
  int r = ibc_dm_table_parse (text, size, &t, err, sizeof err);
  ck_assert_msg (r == 0, "parse failed: %d %s", r, err);
  return t;
}

struct reject {
  const char *text;
  uint64_t size;
  const char *msg;
};

/* A long key name: 65 characters. */
#define NAME65                                                                 \
  "k1234567890123456789012345678901234567890123456789012345678901234"
#define XTS "0 8 crypt aes-xts-plain64 :k 0 "

static const struct reject crypt_rejects[] = {
  { "0 8 crypt aes-xts-plain64 0123abcd 0", 0,
    "line 1: inline keys are not allowed; use :NAME or @PATH" },
  { "0 8 crypt aes-xts-plain64 - 0", 0,
    "line 1: inline keys are not allowed; use :NAME or @PATH" },
  { "0 8 crypt aes-xts-plain64 :bad/name 0", 0,
    "line 1: invalid key name 'bad/name' (expected 1-64 characters of "
    "[A-Za-z0-9._-])" },
  { "0 8 crypt aes-xts-plain64 : 0", 0,
    "line 1: invalid key name '' (expected 1-64 characters of "
    "[A-Za-z0-9._-])" },
  { "0 8 crypt aes-xts-plain64 :" NAME65 " 0", 0,
    "line 1: invalid key name '" NAME65 "' (expected 1-64 characters of "
    "[A-Za-z0-9._-])" },
  { "0 8 crypt aes-xts-plain64 @ 0", 0, "line 1: empty key file path" },
  { "# header\n\n0 64 crypt aes-xts-plain64 :k 7 2 sector_size:4096 "
    "iv_large_sectors",
    0, "line 3: iv_offset 7 is not a multiple of sector_size/512 (8)" },
  { "0 8 plain\n8 4 plain\n12 16 crypt aes-xts-plain64 :k 0 2 "
    "sector_size:4096 iv_large_sectors",
    0, "line 3: start 12 is not a multiple of sector_size/512 (8)" },
  { "0 12 crypt aes-xts-plain64 :k 0 2 sector_size:4096 iv_large_sectors", 0,
    "line 1: length 12 is not a multiple of sector_size/512 (8)" },
  { "0 8 crypt aes-xts-plain64 :k 0 1 sector_size:4096", 0,
    "line 1: sector_size:4096 requires iv_large_sectors" },
  { XTS "2 sector_size:1000 iv_large_sectors", 0,
    "line 1: invalid sector_size '1000' (expected a power of two from 512 "
    "to 65536)" },
  { XTS "1 sector_size:256", 0,
    "line 1: invalid sector_size '256' (expected a power of two from 512 "
    "to 65536)" },
  { XTS "1 sector_size:131072", 0,
    "line 1: invalid sector_size '131072' (expected a power of two from "
    "512 to 65536)" },
  { XTS "1 foo", 0, "line 1: unknown option 'foo'" },
  { XTS "1 foo:1", 0, "line 1: unknown option 'foo:1'" },
  { XTS "2 allow_discards allow_discards", 0,
    "line 1: duplicate option 'allow_discards'" },
  { XTS "2 dun_bytes:2 dun_bytes:3", 0,
    "line 1: duplicate option 'dun_bytes:3'" },
  { XTS "3 allow_discards", 0,
    "line 1: option count 3 does not match the number of options (1)" },
  { XTS "0 allow_discards", 0,
    "line 1: option count 0 does not match the number of options (1)" },
  { XTS "x", 0, "line 1: invalid option count 'x'" },
  { XTS "1 keytype:foo", 0,
    "line 1: unknown keytype 'foo' (expected raw or hw-wrapped)" },
  { XTS "1 dun_bytes:0", 0,
    "line 1: dun_bytes:0 must be from 1 to 16 for aes-xts-plain64" },
  { XTS "1 dun_bytes:17", 0,
    "line 1: dun_bytes:17 must be from 1 to 16 for aes-xts-plain64" },
  { XTS "1 dun_bytes:x", 0, "line 1: invalid dun_bytes 'x'" },
  /* Max DUN 2^64 (iv_offset 2^64-1, two sectors) needs 9 bytes. */
  { "0 2 crypt aes-xts-plain64 :k 18446744073709551615 1 dun_bytes:8", 0,
    "line 1: dun_bytes:8 cannot hold the largest DUN of the range "
    "(9 bytes needed)" },
  { "0 8 crypt aes-cbc-plain :k 0", 0,
    "line 1: unknown cipher 'aes-cbc-plain'" },
  { "0 8 crypt AES-256-XTS :k 0", 0, "line 1: unknown cipher 'AES-256-XTS'" },
  { "0 8 linear a 0", 0,
    "line 1: unknown target 'linear' (expected crypt or plain)" },
  { "0 8 plain extra", 0, "line 1: plain takes no arguments" },
  { "0 8 crypt aes-xts-plain64 :k", 0,
    "line 1: crypt needs <cipher> <key> <iv_offset> [<#opts> <opt>...]" },
  { "0 8", 0, "line 1: expected <start> <length> <target> [<args>...]" },
  { "-1 8 plain", 0, "line 1: invalid start '-1'" },
  { "18446744073709551616 8 plain", 0,
    "line 1: invalid start '18446744073709551616'" },
  { "0 0x10 plain", 0, "line 1: invalid length '0x10'" },
  { "0 8 crypt aes-xts-plain64 :k abc", 0, "line 1: invalid iv_offset 'abc'" },
  { "0 0 plain", 0, "line 1: length must not be 0" },
  { "8 8 plain", 0, "line 1: gap: starts at sector 8, expected 0" },
  { "0 8 plain\n# c\n9 8 plain", 0,
    "line 3: gap: starts at sector 9, expected 8" },
  { "0 8 plain\n4 8 plain", 0,
    "line 2: overlap: starts at sector 4, expected 8" },
  { "0 16 plain\n0 8 plain", 0,
    "line 2: overlap: starts at sector 0, expected 16" },
  { "0 36028797018963969 plain", 0,
    "line 1: ends beyond sector 36028797018963968" },
  { "", 0, "table is empty" },
  { "# nothing\n\n   \t\n", 0, "table is empty" },
  { "0 8 plain", 8192, "table ends at sector 8 but the device has 16 sectors" },
  { "0 8 plain\n8 16 plain", 8192,
    "table ends at sector 24 but the device has 16 sectors" },
  { "0 8 plain", 1000, "device size 1000 is not a multiple of 512" },
};

START_TEST (test_crypt_rejects)
{
  for (size_t i = 0; i < sizeof crypt_rejects / sizeof *crypt_rejects; i++) {
    const struct reject *r = &crypt_rejects[i];
    struct ibc_crypt_table *t = (void *) 0x1;
    err[0] = '\0';
    int ret = ibc_crypt_table_parse (r->text, r->size, &t, err, sizeof err);
    ck_assert_msg (ret == -EINVAL, "case %zu: ret %d", i, ret);
    ck_assert_str_eq (err, r->msg);
    ck_assert_ptr_eq (t, (void *) 0x1); /* ret_* untouched on failure */
    /* A NULL error buffer is fine. */
    ck_assert_int_eq (ibc_crypt_table_parse (r->text, r->size, &t, NULL, 0),
                      -EINVAL);
  }
  /* The valid stem of the XTS cases really is valid. */
  ibc_crypt_table_free (crypt_ok (XTS, 0));

  /* A short buffer is truncated, not overrun. */
  char small[9];
  memset (small, 'X', sizeof small);
  ibc_crypt_table_parse ("0 8 plain x", 0, NULL, small, 8);
  ck_assert_str_eq (small, "line 1:");
  ck_assert_int_eq (small[8], 'X');
}
END_TEST

START_TEST (test_crypt_parse)
{
  struct ibc_crypt_table *t = crypt_ok (
      "# disk0\n"
      "0 2048 plain   # header\n"
      "\n"
      "2048 4096 crypt aes-xts-plain64 :disk0.key 0\n"
      "\t6144 2048 crypt xchacha12,aes-adiantum-plain64 @/etc/k 16 5 "
      "sector_size:4096 iv_large_sectors allow_discards keytype:hw-wrapped "
      "dun_bytes:8\r\n",
      8192 * 512);
  const struct ibc_binding *b;

  ck_assert_uint_eq (ibc_crypt_table_count (t), 3);
  ck_assert_uint_eq (ibc_crypt_table_size (t), 8192 * 512);
  ck_assert_ptr_null (ibc_crypt_table_binding (t, 3));

  b = ibc_crypt_table_binding (t, 0);
  ck_assert_int_eq (b->kind, IBC_BINDING_PLAIN);
  ck_assert_uint_eq (b->start, 0);
  ck_assert_uint_eq (b->length, 1 * MiB);

  b = ibc_crypt_table_binding (t, 1);
  ck_assert_int_eq (b->kind, IBC_BINDING_CRYPT);
  ck_assert_uint_eq (b->start, 1 * MiB);
  ck_assert_uint_eq (b->length, 2 * MiB);
  ck_assert_int_eq (b->key_ref, IBC_KEY_REF_NAME);
  ck_assert_str_eq (b->key, "disk0.key");
  ck_assert_uint_eq (b->iv_offset, 0);
  ck_assert_int_eq (b->config.mode, IBC_MODE_AES_256_XTS);
  ck_assert_uint_eq (b->config.data_unit_size, 512);
  ck_assert_int_eq (b->config.key_type, IBC_KEY_TYPE_RAW);
  ck_assert_uint_eq (b->config.dun_bytes, 2); /* max DUN 4095 */
  ck_assert_uint_eq (b->first_dun.w[0], 0);
  ck_assert (!b->allow_discards && !b->iv_large_sectors && !b->dun_bytes_given);

  b = ibc_crypt_table_binding (t, 2);
  ck_assert_int_eq (b->key_ref, IBC_KEY_REF_PATH);
  ck_assert_str_eq (b->key, "/etc/k");
  ck_assert_int_eq (b->config.mode, IBC_MODE_ADIANTUM);
  ck_assert_uint_eq (b->config.data_unit_size, 4096);
  ck_assert_int_eq (b->config.key_type, IBC_KEY_TYPE_HW_WRAPPED);
  ck_assert_uint_eq (b->config.dun_bytes, 8);
  ck_assert_uint_eq (b->iv_offset, 16);
  ck_assert_uint_eq (b->first_dun.w[0], 2);
  ck_assert (b->allow_discards && b->iv_large_sectors && b->dun_bytes_given);
  ibc_crypt_table_free (t);

  /* The other two modes, by their dm names. */
  t = crypt_ok ("0 8 crypt aes-cbc-essiv:sha256 :a 0\n"
                "8 8 crypt sm4-xts-plain64 :b 0 1 keytype:raw\n",
                0);
  ck_assert_int_eq (ibc_crypt_table_binding (t, 0)->config.mode,
                    IBC_MODE_AES_128_CBC_ESSIV);
  ck_assert_int_eq (ibc_crypt_table_binding (t, 1)->config.mode,
                    IBC_MODE_SM4_XTS);
  ck_assert_uint_eq (ibc_crypt_table_size (t), 16 * 512); /* size 0: table's */
  ibc_crypt_table_free (t);
  ibc_crypt_table_free (NULL);
}
END_TEST

/* dun_bytes defaults to the fewest bytes holding the largest DUN. */
static unsigned
default_dun_bytes (const char *text)
{
  struct ibc_crypt_table *t = crypt_ok (text, 0);
  size_t n = ibc_crypt_table_count (t);
  unsigned v = ibc_crypt_table_binding (t, n - 1)->config.dun_bytes;
  ibc_crypt_table_free (t);
  return v;
}

START_TEST (test_crypt_dun_bytes)
{
  /* 1 GiB at 4096: 262144 units, max DUN 262143 = 0x3ffff -> 3 bytes. */
  ck_assert_uint_eq (default_dun_bytes ("0 2097152 crypt aes-xts-plain64 :k "
                                        "0 2 sector_size:4096 "
                                        "iv_large_sectors"),
                     3);
  /* 2^24 units: max DUN 2^24 - 1 -> 3 bytes; one unit more -> 4. */
  ck_assert_uint_eq (default_dun_bytes ("0 134217728 crypt aes-xts-plain64 "
                                        ":k 0 2 sector_size:4096 "
                                        "iv_large_sectors"),
                     3);
  ck_assert_uint_eq (default_dun_bytes ("0 134217736 crypt aes-xts-plain64 "
                                        ":k 0 2 sector_size:4096 "
                                        "iv_large_sectors"),
                     4);
  /* A single unit at DUN 0 still gets one byte (dm would compute 0). */
  ck_assert_uint_eq (default_dun_bytes ("0 8 crypt aes-xts-plain64 :k 0 2 "
                                        "sector_size:4096 iv_large_sectors"),
                     1);
  /* iv_offset counts: 256 units from DUN 2^32 -> 5 bytes. */
  ck_assert_uint_eq (default_dun_bytes ("0 2048 crypt aes-xts-plain64 :k "
                                        "34359738368 2 sector_size:4096 "
                                        "iv_large_sectors"),
                     5);
  /* A range crossing DUN 2^64 is numbered past the 64-bit word. */
  struct ibc_crypt_table *t
      = crypt_ok ("0 2 crypt aes-xts-plain64 :k 18446744073709551615", 0);
  const struct ibc_binding *b = ibc_crypt_table_binding (t, 0);
  ck_assert_uint_eq (b->config.dun_bytes, 9);
  ck_assert_uint_eq (b->first_dun.w[0], UINT64_MAX);
  ck_assert_uint_eq (b->first_dun.w[1], 0);
  ibc_crypt_table_free (t);
  /* Explicit values: larger is fine, up to the IV size of the mode. */
  ck_assert_uint_eq (default_dun_bytes (XTS "1 dun_bytes:16"), 16);
  ck_assert_uint_eq (default_dun_bytes ("0 8 crypt "
                                        "xchacha12,aes-adiantum-plain64 :k 0 "
                                        "1 dun_bytes:32"),
                     32);
  ck_assert_uint_eq (default_dun_bytes (XTS "1 dun_bytes:1"), 1);
}
END_TEST

/* first_dun and the ctx arithmetic agree with dm's
 * DUN(s) = (iv_offset + s) >> (sector_bits - 9). */
START_TEST (test_crypt_iv_offset)
{
  struct ibc_crypt_table *t = crypt_ok (
      "0 16 plain\n"
      "16 64 crypt aes-xts-plain64 :k 80 2 sector_size:4096 iv_large_sectors\n",
      80 * 512);
  const struct ibc_binding *b = ibc_crypt_table_binding (t, 1);
  struct ibc_crypt_ctx c = {
    .kind = IBC_CTX_CRYPTO,
    .dun0 = b->first_dun,
    .anchor = b->start,
    .data_unit_size = b->config.data_unit_size,
    .lo = b->start,
    .hi = b->start + b->length,
  };
  struct ibc_dun d;

  ck_assert_uint_eq (b->first_dun.w[0], 10);
  for (uint64_t s = 0; s < 64; s += 8) {
    ck_assert_int_eq (ibc_ctx_dun_at (&c, b->start + s * 512, &d), 0);
    ck_assert_uint_eq (d.w[0], (80 + s) >> 3);
  }
  ibc_crypt_table_free (t);
}
END_TEST

START_TEST (test_crypt_lookup_iter)
{
  /* Bindings: [0,1M) plain, [1M,3M) crypt, [3M,4M) plain. */
  struct ibc_crypt_table *t = crypt_ok ("0 2048 plain\n"
                                        "2048 4096 crypt aes-xts-plain64 :k 0\n"
                                        "6144 2048 plain\n",
                                        4 * MiB);
  struct ibc_crypt_iter it;
  struct ibc_crypt_piece p;
  size_t idx = 99;

  ck_assert_ptr_eq (ibc_crypt_table_lookup (t, 0, &idx),
                    ibc_crypt_table_binding (t, 0));
  ck_assert_uint_eq (idx, 0);
  ck_assert_ptr_eq (ibc_crypt_table_lookup (t, 1 * MiB - 1, &idx),
                    ibc_crypt_table_binding (t, 0));
  ck_assert_ptr_eq (ibc_crypt_table_lookup (t, 1 * MiB, &idx),
                    ibc_crypt_table_binding (t, 1));
  ck_assert_uint_eq (idx, 1);
  ck_assert_ptr_eq (ibc_crypt_table_lookup (t, 3 * MiB, NULL),
                    ibc_crypt_table_binding (t, 2));
  ck_assert_ptr_eq (ibc_crypt_table_lookup (t, 4 * MiB - 1, &idx),
                    ibc_crypt_table_binding (t, 2));
  ck_assert_uint_eq (idx, 2);
  idx = 99;
  ck_assert_ptr_null (ibc_crypt_table_lookup (t, 4 * MiB, &idx));
  ck_assert_uint_eq (idx, 99);

  /* A request straddling all three bindings. */
  ck_assert_int_eq (ibc_crypt_iter_init (&it, t, 1 * MiB - 512, 2 * MiB + 1024),
                    0);
  ck_assert (ibc_crypt_iter_next (&it, &p));
  ck_assert_uint_eq (p.index, 0);
  ck_assert_uint_eq (p.off, 1 * MiB - 512);
  ck_assert_uint_eq (p.len, 512);
  ck_assert (ibc_crypt_iter_next (&it, &p));
  ck_assert_uint_eq (p.index, 1);
  ck_assert_ptr_eq (p.binding, ibc_crypt_table_binding (t, 1));
  ck_assert_uint_eq (p.off, 1 * MiB);
  ck_assert_uint_eq (p.len, 2 * MiB);
  ck_assert (ibc_crypt_iter_next (&it, &p));
  ck_assert_uint_eq (p.index, 2);
  ck_assert_uint_eq (p.off, 3 * MiB);
  ck_assert_uint_eq (p.len, 512);
  ck_assert (!ibc_crypt_iter_next (&it, &p));

  /* Inside one binding, ending exactly at its end. */
  ck_assert_int_eq (ibc_crypt_iter_init (&it, t, 2 * MiB, 1 * MiB), 0);
  ck_assert (ibc_crypt_iter_next (&it, &p));
  ck_assert_uint_eq (p.index, 1);
  ck_assert_uint_eq (p.len, 1 * MiB);
  ck_assert (!ibc_crypt_iter_next (&it, &p));

  /* The last byte; then out of range and zero length. */
  ck_assert_int_eq (ibc_crypt_iter_init (&it, t, 4 * MiB - 1, 1), 0);
  ck_assert (ibc_crypt_iter_next (&it, &p));
  ck_assert_uint_eq (p.index, 2);
  ck_assert (!ibc_crypt_iter_next (&it, &p));
  ck_assert_int_eq (ibc_crypt_iter_init (&it, t, 4 * MiB - 1, 2), -ERANGE);
  ck_assert_int_eq (ibc_crypt_iter_init (&it, t, UINT64_MAX, 2), -ERANGE);
  ck_assert_int_eq (ibc_crypt_iter_init (&it, t, 4 * MiB, 0), 0);
  ck_assert (!ibc_crypt_iter_next (&it, &p));
  ibc_crypt_table_free (t);
}
END_TEST

START_TEST (test_crypt_format)
{
  const char *in
      = "# comment\n"
        "0   2048 plain\n"
        "2048 2048 crypt aes-xts-plain64 :disk0 0 1 keytype:raw\n"
        "4096 4096 crypt aes-xts-plain64 @/k 8 5 dun_bytes:4 allow_discards "
        "iv_large_sectors keytype:hw-wrapped sector_size:4096\n";
  const char *canon
      = "0 2048 plain\n"
        "2048 2048 crypt aes-xts-plain64 :disk0 0\n"
        "4096 4096 crypt aes-xts-plain64 @/k 8 5 sector_size:4096 "
        "iv_large_sectors allow_discards keytype:hw-wrapped dun_bytes:4\n";
  struct ibc_crypt_table *t = crypt_ok (in, 0), *t2;
  char *s = NULL, *s2 = NULL;

  ck_assert_int_eq (ibc_crypt_table_format (t, &s), 0);
  ck_assert_str_eq (s, canon);
  t2 = crypt_ok (s, 8192 * 512);
  ck_assert_int_eq (ibc_crypt_table_format (t2, &s2), 0);
  ck_assert_str_eq (s2, canon);
  for (size_t i = 0; i < 3; i++) {
    const struct ibc_binding *a = ibc_crypt_table_binding (t, i);
    const struct ibc_binding *b = ibc_crypt_table_binding (t2, i);
    ck_assert_int_eq (memcmp (&a->config, &b->config, sizeof a->config), 0);
    ck_assert_int_eq (
        memcmp (&a->first_dun, &b->first_dun, sizeof a->first_dun), 0);
  }
  free (s);
  free (s2);
  ibc_crypt_table_free (t);
  ibc_crypt_table_free (t2);
}
END_TEST

/* ---- dm tables ---- */

static const struct reject dm_rejects[] = {
  { "0 8 linear a", 0, "line 1: linear needs <dev> <offset>" },
  { "0 8 linear a 0 1", 0, "line 1: linear needs <dev> <offset>" },
  { "0 8 linear a/b 0", 0,
    "line 1: invalid device name 'a/b' (expected 1-64 characters of "
    "[A-Za-z0-9._-])" },
  { "0 8 linear a x", 0, "line 1: invalid offset 'x'" },
  { "0 8 linear a 36028797018963961", 0,
    "line 1: offset 36028797018963961: mapping ends beyond sector "
    "36028797018963968" },
  { "0 16 striped 2 8 a", 0,
    "line 1: striped needs <#stripes> <chunk> <dev> <offset>..." },
  { "0 16 striped 2 8 a 0", 0,
    "line 1: striped with 2 stripes needs as many <dev> <offset> pairs, got "
    "2 arguments" },
  { "0 48 striped 3 8 a 0 b 0", 0,
    "line 1: striped with 3 stripes needs as many <dev> <offset> pairs, got "
    "4 arguments" },
  { "0 16 striped 1 8 a 0 b 0", 0,
    "line 1: striped with 1 stripes needs as many <dev> <offset> pairs, got "
    "4 arguments" },
  { "0 16 striped 0 8 a 0 b 0", 0, "line 1: invalid stripe count '0'" },
  { "0 16 striped x 8 a 0 b 0", 0, "line 1: invalid stripe count 'x'" },
  { "0 16 striped 2 y a 0 b 0", 0, "line 1: invalid chunk size 'y'" },
  { "0 24 striped 2 6 a 0 b 0", 0,
    "line 1: chunk size 6 is not a power of two" },
  { "0 16 striped 2 0 a 0 b 0", 0,
    "line 1: chunk size 0 is not a power of two" },
  { "0 24 striped 2 8 a 0 b 0", 0,
    "line 1: length 24 is not a multiple of #stripes * chunk (2 * 8)" },
  { "0 16 striped 2 8 a 0 b! 0", 0,
    "line 1: invalid device name 'b!' (expected 1-64 characters of "
    "[A-Za-z0-9._-])" },
  { "0 8 flakey a 0 1", 0, "line 1: flakey needs <dev> <offset> <up> <down>" },
  { "0 8 flakey a 0 0 0", 0,
    "line 1: flakey up + down interval must not be 0" },
  { "0 8 flakey a 0 4294967296 0", 0,
    "line 1: flakey intervals must be below 2^32 seconds" },
  { "0 8 flakey a 0 1 z", 0, "line 1: invalid down interval 'z'" },
  { "0 8 error x", 0, "line 1: error takes no arguments" },
  { "0 8 zero 1", 0, "line 1: zero takes no arguments" },
  { "0 8 crypt aes-xts-plain64 :k 0", 0,
    "line 1: unknown target 'crypt' (expected linear, striped, flakey, error "
    "or zero)" },
  { "0 8 zero\n4 4 zero", 0,
    "line 2: overlap: starts at sector 4, expected 8" },
  { "0 8 zero\n16 4 zero", 0, "line 2: gap: starts at sector 16, expected 8" },
  { "0 8 zero", 4096 * 3,
    "table ends at sector 8 but the device has 24 sectors" },
};

START_TEST (test_dm_rejects)
{
  for (size_t i = 0; i < sizeof dm_rejects / sizeof *dm_rejects; i++) {
    const struct reject *r = &dm_rejects[i];
    struct ibc_dm_table *t = (void *) 0x1;
    err[0] = '\0';
    int ret = ibc_dm_table_parse (r->text, r->size, &t, err, sizeof err);
    ck_assert_msg (ret == -EINVAL, "case %zu: ret %d", i, ret);
    ck_assert_str_eq (err, r->msg);
    ck_assert_ptr_eq (t, (void *) 0x1);
  }
}
END_TEST

static const char dm_text[] = "0 100 linear a 1000\n"
                              "100 64 striped 2 8 b 0 c 16\n"
                              "164 36 flakey a 5000 10 2\n"
                              "200 8 error\n"
                              "208 8 zero\n";

START_TEST (test_dm_parse)
{
  struct ibc_dm_table *t = dm_ok (dm_text, 216 * 512);
  const struct ibc_dm_target *tg;

  ck_assert_uint_eq (ibc_dm_table_count (t), 5);
  ck_assert_uint_eq (ibc_dm_table_size (t), 216 * 512);
  ck_assert_uint_eq (ibc_dm_table_device_count (t), 3);
  ck_assert_str_eq (ibc_dm_table_device (t, 0), "a");
  ck_assert_str_eq (ibc_dm_table_device (t, 1), "b");
  ck_assert_str_eq (ibc_dm_table_device (t, 2), "c");
  ck_assert_ptr_null (ibc_dm_table_device (t, 3));

  tg = ibc_dm_table_target (t, 0);
  ck_assert_int_eq (tg->kind, IBC_DM_LINEAR);
  ck_assert_uint_eq (tg->nr_dests, 1);
  ck_assert_uint_eq (tg->dests[0].dev, 0);
  ck_assert_uint_eq (tg->dests[0].offset, 1000 * 512);
  tg = ibc_dm_table_target (t, 1);
  ck_assert_int_eq (tg->kind, IBC_DM_STRIPED);
  ck_assert_uint_eq (tg->start, 100 * 512);
  ck_assert_uint_eq (tg->length, 64 * 512);
  ck_assert_uint_eq (tg->chunk_size, 4096);
  ck_assert_uint_eq (tg->nr_dests, 2);
  ck_assert_uint_eq (tg->dests[1].dev, 2);
  ck_assert_uint_eq (tg->dests[1].offset, 16 * 512);
  tg = ibc_dm_table_target (t, 2);
  ck_assert_int_eq (tg->kind, IBC_DM_FLAKEY);
  ck_assert_uint_eq (tg->dests[0].dev, 0); /* "a" again: deduplicated */
  ck_assert_uint_eq (tg->up_interval, 10);
  ck_assert_uint_eq (tg->down_interval, 2);
  ck_assert_int_eq (ibc_dm_table_target (t, 3)->kind, IBC_DM_ERROR);
  ck_assert_uint_eq (ibc_dm_table_target (t, 3)->nr_dests, 0);
  ck_assert_int_eq (ibc_dm_table_target (t, 4)->kind, IBC_DM_ZERO);

  ck_assert (ibc_dm_kind_passes_crypto (IBC_DM_LINEAR));
  ck_assert (ibc_dm_kind_passes_crypto (IBC_DM_STRIPED));
  ck_assert (ibc_dm_kind_passes_crypto (IBC_DM_FLAKEY));
  ck_assert (!ibc_dm_kind_passes_crypto (IBC_DM_ERROR));
  ck_assert (!ibc_dm_kind_passes_crypto (IBC_DM_ZERO));
  ck_assert (!ibc_dm_table_passes_crypto (t));
  ck_assert_str_eq (ibc_dm_kind_name (IBC_DM_STRIPED), "striped");

  size_t idx;
  ck_assert_ptr_eq (ibc_dm_table_lookup (t, 100 * 512, &idx),
                    ibc_dm_table_target (t, 1));
  ck_assert_uint_eq (idx, 1);
  ck_assert_ptr_eq (ibc_dm_table_lookup (t, 100 * 512 - 1, &idx),
                    ibc_dm_table_target (t, 0));
  ck_assert_ptr_null (ibc_dm_table_lookup (t, 216 * 512, NULL));

  char *s = NULL;
  ck_assert_int_eq (ibc_dm_table_format (t, &s), 0);
  ck_assert_str_eq (s, dm_text);
  free (s);
  ibc_dm_table_free (t);

  t = dm_ok ("0 8 linear a 0\n8 16 striped 2 4 a 8 b 0\n", 0);
  ck_assert (ibc_dm_table_passes_crypto (t));
  ibc_dm_table_free (t);
  ibc_dm_table_free (NULL);
}
END_TEST

struct want {
  size_t target;
  size_t dev;
  uint64_t off, lower_off, len; /* sectors */
};

static void
check_map (const struct ibc_dm_table *t, uint64_t off, uint64_t len,
           const struct want *w, size_t n)
{
  struct ibc_dm_iter it;
  struct ibc_dm_piece p;
  size_t i = 0;

  ck_assert_int_eq (ibc_dm_iter_init (&it, t, off, len), 0);
  while (ibc_dm_iter_next (&it, &p)) {
    ck_assert_msg (i < n, "extra piece at %llu", (unsigned long long) p.off);
    ck_assert_uint_eq (p.target, w[i].target);
    ck_assert_uint_eq (p.dev, w[i].dev);
    ck_assert_uint_eq (p.off, w[i].off * 512);
    ck_assert_uint_eq (p.lower_off, w[i].lower_off * 512);
    ck_assert_uint_eq (p.len, w[i].len * 512);
    i++;
  }
  ck_assert_uint_eq (i, n);
}

START_TEST (test_dm_map)
{
  struct ibc_dm_table *t = dm_ok (dm_text, 216 * 512);
  const size_t X = IBC_DM_NO_DEV;

  /* Linear into striped: chunk 0 -> b, chunk 1 -> c, chunk 2 -> b at 8. */
  static const struct want w1[] = {
    { 0, 0, 96, 1096, 4 },
    { 1, 1, 100, 0, 8 },
    { 1, 2, 108, 16, 8 },
    { 1, 1, 116, 8, 4 },
  };
  check_map (t, 96 * 512, 24 * 512, w1, 4);

  /* Starting mid-chunk, through the end of the striped target into flakey,
   * error and zero. Chunk 7 (sectors 156..164) is chunk 3 of stripe c. */
  static const struct want w2[] = {
    { 1, 2, 159, 16 + 24 + 3, 5 },
    { 2, 0, 164, 5000, 36 },
    { 3, X, 200, 0, 8 },
    { 4, X, 208, 0, 8 },
  };
  check_map (t, 159 * 512, 57 * 512, w2, 4);

  /* Byte granularity inside one chunk. */
  struct ibc_dm_iter it;
  struct ibc_dm_piece p;
  ck_assert_int_eq (ibc_dm_iter_init (&it, t, 103 * 512 + 7, 10), 0);
  ck_assert (ibc_dm_iter_next (&it, &p));
  ck_assert_uint_eq (p.dev, 1);
  ck_assert_uint_eq (p.lower_off, 3 * 512 + 7);
  ck_assert_uint_eq (p.len, 10);
  ck_assert_int_eq (p.kind, IBC_DM_STRIPED);
  ck_assert (!ibc_dm_iter_next (&it, &p));

  ck_assert_int_eq (ibc_dm_iter_init (&it, t, 215 * 512, 1024), -ERANGE);
  ibc_dm_table_free (t);

  /* Three stripes of 1 sector. */
  t = dm_ok ("0 6 striped 3 1 a 100 b 200 c 300\n", 0);
  static const struct want w3[] = {
    { 0, 0, 0, 100, 1 }, { 0, 1, 1, 200, 1 }, { 0, 2, 2, 300, 1 },
    { 0, 0, 3, 101, 1 }, { 0, 1, 4, 201, 1 }, { 0, 2, 5, 301, 1 },
  };
  check_map (t, 0, 6 * 512, w3, 6);
  ibc_dm_table_free (t);
}
END_TEST

static uint64_t
alignment_of (const char *text)
{
  struct ibc_dm_table *t = dm_ok (text, 0);
  uint64_t a = ibc_dm_table_alignment (t);
  ibc_dm_table_free (t);
  return a;
}

START_TEST (test_dm_alignment)
{
  ck_assert_uint_eq (alignment_of ("0 2048 linear a 0"), 1 * MiB);
  ck_assert_uint_eq (alignment_of ("0 2048 linear a 4096"), 1 * MiB);
  ck_assert_uint_eq (alignment_of ("0 2048 linear a 8"), 4096);
  ck_assert_uint_eq (alignment_of ("0 2048 linear a 1"), 512);
  ck_assert_uint_eq (alignment_of ("0 8 linear a 0\n8 8 linear a 8"), 4096);
  ck_assert_uint_eq (alignment_of ("0 24 linear a 0\n24 8 zero"), 4096);
  ck_assert_uint_eq (alignment_of ("0 2048 striped 2 16 a 0 b 0"), 8192);
  ck_assert_uint_eq (alignment_of ("0 2048 striped 4 1 a 0 b 0 c 0 d 0"), 512);
  ck_assert_uint_eq (alignment_of ("0 4194304 linear a 0"), 2 * GiB);
}
END_TEST

static Suite *
table_suite (void)
{
  Suite *s = suite_create ("table");
  TCase *tc = tcase_create ("crypt");
  tcase_add_test (tc, test_crypt_rejects);
  tcase_add_test (tc, test_crypt_parse);
  tcase_add_test (tc, test_crypt_dun_bytes);
  tcase_add_test (tc, test_crypt_iv_offset);
  tcase_add_test (tc, test_crypt_lookup_iter);
  tcase_add_test (tc, test_crypt_format);
  suite_add_tcase (s, tc);
  tc = tcase_create ("dm");
  tcase_add_test (tc, test_dm_rejects);
  tcase_add_test (tc, test_dm_parse);
  tcase_add_test (tc, test_dm_map);
  tcase_add_test (tc, test_dm_alignment);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (table_suite)
