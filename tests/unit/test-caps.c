/* Unit tests: capabilities (intersect, superset, update, parse/format). */
#include <errno.h>
#include <string.h>

#include "ibc-check.h"
#include "ibcrypt/caps.h"

static struct ibc_caps
caps_of (const char *modes, uint32_t dun_bytes, uint32_t key_types)
{
  struct ibc_caps c;

  ibc_caps_init_none (&c);
  ck_assert_int_eq (ibc_caps_parse_modes (modes, &c), 0);
  c.max_dun_bytes = dun_bytes;
  c.key_types = key_types;
  return c;
}

START_TEST (test_parse_format)
{
  struct ibc_caps c;
  char buf[256];

  ibc_caps_init_none (&c);
  ck_assert_int_eq (ibc_caps_parse_modes ("aes-xts-plain64:512+4096", &c), 0);
  ck_assert_uint_eq (c.modes[IBC_MODE_AES_256_XTS], 0x1200);
  ck_assert_uint_eq (c.modes[IBC_MODE_ADIANTUM], 0);

  /* Adiantum's dm name contains a comma; it is matched whole. */
  ck_assert_int_eq (
      ibc_caps_parse_modes (
          "xchacha12,aes-adiantum-plain64:4096,aes-xts-plain64:4096", &c),
      0);
  ck_assert_uint_eq (c.modes[IBC_MODE_ADIANTUM], 4096);
  ck_assert_uint_eq (c.modes[IBC_MODE_AES_256_XTS], 4096);

  /* Sysfs names, aliases, '/' separators; parsing replaces modes[]. */
  ck_assert_int_eq (ibc_caps_parse_modes (
                        "SM4-XTS:512/adiantum:512+1024,aes-cbc-essiv:4096", &c),
                    0);
  ck_assert_uint_eq (c.modes[IBC_MODE_AES_256_XTS], 0);
  ck_assert_uint_eq (c.modes[IBC_MODE_SM4_XTS], 512);
  ck_assert_uint_eq (c.modes[IBC_MODE_ADIANTUM], 1536);
  ck_assert_uint_eq (c.modes[IBC_MODE_AES_128_CBC_ESSIV], 4096);

  ck_assert_int_eq (ibc_caps_format_modes (&c, buf, sizeof buf),
                    (int) strlen ("AES-128-CBC-ESSIV:4096,Adiantum:512+1024,"
                                  "SM4-XTS:512"));
  ck_assert_str_eq (buf,
                    "AES-128-CBC-ESSIV:4096,Adiantum:512+1024,SM4-XTS:512");
  struct ibc_caps back;
  ibc_caps_init_none (&back);
  ck_assert_int_eq (ibc_caps_parse_modes (buf, &back), 0);
  ck_assert_mem_eq (back.modes, c.modes, sizeof c.modes);
  ck_assert_int_eq (ibc_caps_format_modes (&c, buf, 10), -ENOSPC);

  /* Empty string = no modes; errors leave caps untouched. */
  ck_assert_int_eq (ibc_caps_parse_modes ("", &c), 0);
  ck_assert (ibc_caps_empty (&c));
  c.modes[1] = 7;
  const char *bad[] = { "aes-xts-plain64",
                        "aes-xts-plain64:",
                        "aes-xts:3000",
                        "aes-xts:0",
                        "des:512",
                        "aes-xts:512,",
                        "aes-xts:512;sm4-xts:512",
                        "aes-xts:512++1024",
                        "aes-xts:-512",
                        "aes-xts:4294967296" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg (ibc_caps_parse_modes (bad[i], &c) == -EINVAL, "%s", bad[i]);
  ck_assert_uint_eq (c.modes[1], 7);
}
END_TEST

START_TEST (test_intersect)
{
  struct ibc_caps a = caps_of ("aes-xts:512+4096,adiantum:4096", 8,
                               IBC_KEY_TYPE_RAW | IBC_KEY_TYPE_HW_WRAPPED);
  struct ibc_caps b
      = caps_of ("aes-xts:4096,sm4-xts:4096", 4, IBC_KEY_TYPE_RAW);
  struct ibc_caps all;

  ibc_caps_init_all (&all);
  ibc_caps_intersect (&all, &a);
  ck_assert_mem_eq (&all, &a, sizeof a);
  ibc_caps_intersect (&all, &b);
  ck_assert_uint_eq (all.modes[IBC_MODE_AES_256_XTS], 4096);
  ck_assert_uint_eq (all.modes[IBC_MODE_ADIANTUM], 0);
  ck_assert_uint_eq (all.modes[IBC_MODE_SM4_XTS], 0);
  ck_assert_uint_eq (all.max_dun_bytes, 4);
  ck_assert_uint_eq (all.key_types, IBC_KEY_TYPE_RAW);

  /* A lower device without a profile clears everything. */
  ibc_caps_intersect (&all, NULL);
  ck_assert (ibc_caps_empty (&all));
  ck_assert_uint_eq (all.max_dun_bytes, 0);
  ck_assert_uint_eq (all.key_types, 0);
}
END_TEST

START_TEST (test_has)
{
  struct ibc_caps big
      = caps_of ("aes-xts:512+4096,adiantum:4096", 8, IBC_KEY_TYPES_ALL);
  struct ibc_caps small = caps_of ("aes-xts:4096", 8, IBC_KEY_TYPE_RAW);
  struct ibc_caps t;

  ck_assert (ibc_caps_has (&big, &small));
  ck_assert (!ibc_caps_has (&small, &big));
  ck_assert (ibc_caps_has (&big, &big));
  ck_assert (ibc_caps_has (&small, NULL));
  ck_assert (!ibc_caps_has (NULL, &small));
  ck_assert (ibc_caps_has (NULL, NULL));

  /* Each dimension alone can break the superset relation. */
  t = big;
  t.max_dun_bytes = 7;
  ck_assert (!ibc_caps_has (&t, &small));
  t = big;
  t.key_types = IBC_KEY_TYPE_HW_WRAPPED;
  ck_assert (!ibc_caps_has (&t, &small));
  t = big;
  t.modes[IBC_MODE_AES_256_XTS] = 512;
  ck_assert (!ibc_caps_has (&t, &small));
}
END_TEST

START_TEST (test_update_and_supports)
{
  struct ibc_caps live = caps_of ("aes-xts:4096", 4, IBC_KEY_TYPE_RAW);
  struct ibc_caps more
      = caps_of ("aes-xts:512+4096,adiantum:4096", 8, IBC_KEY_TYPE_RAW);
  struct ibc_crypto_config cfg = {
    .mode = IBC_MODE_ADIANTUM,
    .data_unit_size = 4096,
    .dun_bytes = 8,
    .key_type = IBC_KEY_TYPE_RAW,
  };

  ck_assert (!ibc_caps_supports (&live, &cfg));
  ibc_caps_update (&live, &more);
  ck_assert (ibc_caps_supports (&live, &cfg));
  struct ibc_caps snap;
  ibc_caps_snapshot (&live, &snap);
  ck_assert_mem_eq (&snap, &more, sizeof snap);

  /* The natively-supported check: mode bit, DUN bytes, key type. */
  cfg.data_unit_size = 512;
  ck_assert (!ibc_caps_supports (&live, &cfg));
  cfg.mode = IBC_MODE_AES_256_XTS;
  ck_assert (ibc_caps_supports (&live, &cfg));
  cfg.dun_bytes = 9;
  ck_assert (!ibc_caps_supports (&live, &cfg));
  cfg.dun_bytes = 8;
  cfg.key_type = IBC_KEY_TYPE_HW_WRAPPED;
  ck_assert (!ibc_caps_supports (&live, &cfg));
  ck_assert (!ibc_caps_supports (NULL, &cfg));
}
END_TEST

START_TEST (test_restrict_alignment)
{
  struct ibc_caps c
      = caps_of ("aes-xts:512+4096+65536,adiantum:1024", 8, IBC_KEY_TYPE_RAW);

  ibc_caps_restrict_alignment (&c, 0);
  ck_assert_uint_eq (c.modes[IBC_MODE_AES_256_XTS], 512 + 4096 + 65536);
  /* A target boundary at 3 * 2048 bytes: 512 and 1024 survive. */
  ibc_caps_restrict_alignment (&c, 3 * 2048);
  ck_assert_uint_eq (c.modes[IBC_MODE_AES_256_XTS], 512);
  ck_assert_uint_eq (c.modes[IBC_MODE_ADIANTUM], 1024);
  ibc_caps_restrict_alignment (&c, 512);
  ck_assert_uint_eq (c.modes[IBC_MODE_ADIANTUM], 0);
  ck_assert_uint_eq (c.modes[IBC_MODE_AES_256_XTS], 512);
}
END_TEST

static Suite *
caps_suite (void)
{
  Suite *s = suite_create ("caps");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_parse_format);
  tcase_add_test (tc, test_intersect);
  tcase_add_test (tc, test_has);
  tcase_add_test (tc, test_update_and_supports);
  tcase_add_test (tc, test_restrict_alignment);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (caps_suite)
