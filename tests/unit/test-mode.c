/* Unit tests: the modes table and crypto-config validation (init_key rules). */
#include <errno.h>

#include "ibc-check.h"
#include "ibcrypt/mode.h"

START_TEST (test_mode_table)
{
  const struct ibc_mode_info *m;

  ck_assert_ptr_null (ibc_mode_info (IBC_MODE_INVALID));
  ck_assert_ptr_null (ibc_mode_info (IBC_MODE_MAX));
  ck_assert_ptr_null (ibc_mode_info ((enum ibc_mode) - 1));

  m = ibc_mode_info (IBC_MODE_AES_256_XTS);
  ck_assert_str_eq (m->name, "AES-256-XTS");
  ck_assert_str_eq (m->cipher_name, "aes-xts-plain64");
  ck_assert_uint_eq (m->key_size, 64);
  ck_assert_uint_eq (m->security_strength, 32);
  ck_assert_uint_eq (m->iv_size, 16);

  m = ibc_mode_info (IBC_MODE_AES_128_CBC_ESSIV);
  ck_assert_str_eq (m->name, "AES-128-CBC-ESSIV");
  ck_assert_str_eq (m->cipher_name, "aes-cbc-essiv:sha256");
  ck_assert_uint_eq (m->key_size, 16);
  ck_assert_uint_eq (m->security_strength, 16);
  ck_assert_uint_eq (m->iv_size, 16);

  m = ibc_mode_info (IBC_MODE_ADIANTUM);
  ck_assert_str_eq (m->name, "Adiantum");
  ck_assert_str_eq (m->cipher_name, "xchacha12,aes-adiantum-plain64");
  ck_assert_uint_eq (m->key_size, 32);
  ck_assert_uint_eq (m->security_strength, 32);
  ck_assert_uint_eq (m->iv_size, 32);

  m = ibc_mode_info (IBC_MODE_SM4_XTS);
  ck_assert_str_eq (m->name, "SM4-XTS");
  ck_assert_str_eq (m->cipher_name, "sm4-xts-plain64");
  ck_assert_uint_eq (m->key_size, 32);
  ck_assert_uint_eq (m->security_strength, 16);
  ck_assert_uint_eq (m->iv_size, 16);

  /* The kernel's boot-time invariants hold for every mode. */
  for (unsigned i = 1; i < IBC_MODE_MAX; i++) {
    m = ibc_mode_info ((enum ibc_mode) i);
    ck_assert_uint_le (m->key_size, IBC_MAX_RAW_KEY_SIZE);
    ck_assert_uint_le (m->security_strength, m->key_size);
    ck_assert_uint_le (m->iv_size, IBC_MAX_IV_SIZE);
  }
}
END_TEST

START_TEST (test_mode_names)
{
  enum ibc_mode mode = IBC_MODE_INVALID;

  ck_assert_int_eq (ibc_mode_from_string ("aes-xts-plain64", &mode), 0);
  ck_assert_int_eq (mode, IBC_MODE_AES_256_XTS);
  ck_assert_int_eq (
      ibc_mode_from_string ("xchacha12,aes-adiantum-plain64", &mode), 0);
  ck_assert_int_eq (mode, IBC_MODE_ADIANTUM);
  ck_assert_int_eq (ibc_mode_from_string ("sm4-xts-plain", &mode), -EINVAL);
  ck_assert_int_eq (ibc_mode_from_string ("sm4-XTS", &mode), 0);
  ck_assert_int_eq (mode, IBC_MODE_SM4_XTS);
  ck_assert_int_eq (ibc_mode_from_string ("aes-cbc-essiv:sha256", &mode), 0);
  ck_assert_int_eq (mode, IBC_MODE_AES_128_CBC_ESSIV);
  ck_assert_int_eq (ibc_mode_from_string ("aes-cbc-plain64", &mode), -EINVAL);
  ck_assert_int_eq (ibc_mode_from_string ("", &mode), -EINVAL);
  ck_assert_int_eq (ibc_mode_from_string (NULL, &mode), -EINVAL);
  /* ret_mode is untouched on failure. */
  ck_assert_int_eq (mode, IBC_MODE_AES_128_CBC_ESSIV);

  enum ibc_key_type kt;
  ck_assert_int_eq (ibc_key_type_from_string ("hw-wrapped", &kt), 0);
  ck_assert_int_eq (kt, IBC_KEY_TYPE_HW_WRAPPED);
  ck_assert_str_eq (ibc_key_type_name (kt), "hw-wrapped");
  ck_assert_int_eq (ibc_key_type_from_string ("raw", &kt), 0);
  ck_assert_str_eq (ibc_key_type_name (kt), "raw");
  ck_assert_int_eq (ibc_key_type_from_string ("wrapped", &kt), -EINVAL);
}
END_TEST

static struct ibc_crypto_config
cfg_of (enum ibc_mode mode, uint32_t dus, uint32_t dun_bytes,
        enum ibc_key_type kt)
{
  struct ibc_crypto_config c = {
    .mode = mode,
    .data_unit_size = dus,
    .dun_bytes = dun_bytes,
    .key_type = kt,
  };
  return c;
}

START_TEST (test_config_validate)
{
  struct ibc_crypto_config c;

  /* Valid raw configs: key size must equal the mode's exactly. */
  c = cfg_of (IBC_MODE_AES_256_XTS, 4096, 8, IBC_KEY_TYPE_RAW);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), 0);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 63), -EINVAL);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 65), -EINVAL);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 32), -EINVAL);
  c.mode = IBC_MODE_AES_128_CBC_ESSIV;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 16), 0);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 32), -EINVAL);
  c.mode = IBC_MODE_ADIANTUM;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 32), 0);
  c.mode = IBC_MODE_SM4_XTS;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 32), 0);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), -EINVAL);

  /* Mode out of range, including INVALID (ivsize 0). */
  c = cfg_of (IBC_MODE_INVALID, 4096, 8, IBC_KEY_TYPE_RAW);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 0), -EINVAL);
  c.mode = IBC_MODE_MAX;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), -EINVAL);

  /* hw-wrapped: security strength .. 128 bytes. */
  c = cfg_of (IBC_MODE_AES_256_XTS, 4096, 8, IBC_KEY_TYPE_HW_WRAPPED);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 31), -EINVAL);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 32), 0);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 128), 0);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 129), -EINVAL);
  c.mode = IBC_MODE_AES_128_CBC_ESSIV;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 16), 0);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 15), -EINVAL);

  /* Key types other than raw and hw-wrapped, including both bits. */
  c = cfg_of (IBC_MODE_AES_256_XTS, 4096, 8, (enum ibc_key_type) 0);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), -EINVAL);
  c.key_type = (enum ibc_key_type) 3;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), -EINVAL);
  c.key_type = (enum ibc_key_type) 4;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), -EINVAL);

  /* dun_bytes 1 .. the mode's IV size. */
  c = cfg_of (IBC_MODE_AES_256_XTS, 4096, 0, IBC_KEY_TYPE_RAW);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), -EINVAL);
  c.dun_bytes = 1;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), 0);
  c.dun_bytes = 16;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), 0);
  c.dun_bytes = 17;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), -EINVAL);
  c = cfg_of (IBC_MODE_ADIANTUM, 4096, 32, IBC_KEY_TYPE_RAW);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 32), 0);
  c.dun_bytes = 33;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 32), -EINVAL);

  /* Data unit size: any power of two, nothing else (no min or max). */
  c = cfg_of (IBC_MODE_AES_256_XTS, 0, 8, IBC_KEY_TYPE_RAW);
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), -EINVAL);
  c.data_unit_size = 4097;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), -EINVAL);
  c.data_unit_size = 3 * 512;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), -EINVAL);
  c.data_unit_size = 1;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), 0);
  c.data_unit_size = 1u << 31;
  ck_assert_int_eq (ibc_crypto_config_validate (&c, 64), 0);
}
END_TEST

START_TEST (test_ilog2)
{
  ck_assert_uint_eq (ibc_ilog2 (1), 0);
  ck_assert_uint_eq (ibc_ilog2 (512), 9);
  ck_assert_uint_eq (ibc_ilog2 (4096), 12);
  ck_assert_uint_eq (ibc_ilog2 (4097), 12);
  ck_assert_uint_eq (ibc_ilog2 (UINT64_C (1) << 63), 63);
  ck_assert (ibc_is_power_of_2 (4096));
  ck_assert (!ibc_is_power_of_2 (0));
  ck_assert (!ibc_is_power_of_2 (6));
}
END_TEST

static Suite *
mode_suite (void)
{
  Suite *s = suite_create ("mode");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_mode_table);
  tcase_add_test (tc, test_mode_names);
  tcase_add_test (tc, test_config_validate);
  tcase_add_test (tc, test_ilog2);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (mode_suite)
