/* The table of encryption modes and crypto-config validation. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "ibcrypt/mode.h"

/* Sizes as in the kernel's blk_crypto_modes[]; names as in sysfs and in
 * dm-crypt/dm-inlinecrypt tables. */
static const struct ibc_mode_info modes[IBC_MODE_MAX] = {
  [IBC_MODE_AES_256_XTS] = {
    .name = "AES-256-XTS", .cipher_name = "aes-xts-plain64",
    .key_size = 64, .security_strength = 32, .iv_size = 16,
  },
  [IBC_MODE_AES_128_CBC_ESSIV] = {
    .name = "AES-128-CBC-ESSIV", .cipher_name = "aes-cbc-essiv:sha256",
    .key_size = 16, .security_strength = 16, .iv_size = 16,
  },
  [IBC_MODE_ADIANTUM] = {
    .name = "Adiantum", .cipher_name = "xchacha12,aes-adiantum-plain64",
    .key_size = 32, .security_strength = 32, .iv_size = 32,
  },
  [IBC_MODE_SM4_XTS] = {
    .name = "SM4-XTS", .cipher_name = "sm4-xts-plain64",
    .key_size = 32, .security_strength = 16, .iv_size = 16,
  },
};

const struct ibc_mode_info *
ibc_mode_info (enum ibc_mode mode)
{
  if ((unsigned) mode <= IBC_MODE_INVALID || (unsigned) mode >= IBC_MODE_MAX)
    return NULL;
  return &modes[mode];
}

int
ibc_mode_from_string (const char *s, enum ibc_mode *ret_mode)
{
  if (s == NULL)
    return -EINVAL;
  for (unsigned m = IBC_MODE_INVALID + 1; m < IBC_MODE_MAX; m++) {
    if (strcmp (s, modes[m].cipher_name) == 0
        || strcasecmp (s, modes[m].name) == 0) {
      *ret_mode = (enum ibc_mode) m;
      return 0;
    }
  }
  return -EINVAL;
}

const char *
ibc_key_type_name (enum ibc_key_type type)
{
  switch (type) {
  case IBC_KEY_TYPE_RAW:
    return "raw";
  case IBC_KEY_TYPE_HW_WRAPPED:
    return "hw-wrapped";
  }
  return "invalid";
}

int
ibc_key_type_from_string (const char *s, enum ibc_key_type *ret_type)
{
  if (s == NULL)
    return -EINVAL;
  if (strcmp (s, "raw") == 0)
    *ret_type = IBC_KEY_TYPE_RAW;
  else if (strcmp (s, "hw-wrapped") == 0)
    *ret_type = IBC_KEY_TYPE_HW_WRAPPED;
  else
    return -EINVAL;
  return 0;
}

/* The checks of blk_crypto_init_key(), in its order. */
int
ibc_crypto_config_validate (const struct ibc_crypto_config *cfg,
                            size_t key_size)
{
  const struct ibc_mode_info *mode = ibc_mode_info (cfg->mode);

  if (mode == NULL)
    return -EINVAL;
  switch (cfg->key_type) {
  case IBC_KEY_TYPE_RAW:
    if (key_size != mode->key_size)
      return -EINVAL;
    break;
  case IBC_KEY_TYPE_HW_WRAPPED:
    if (key_size < mode->security_strength
        || key_size > IBC_MAX_HW_WRAPPED_KEY_SIZE)
      return -EINVAL;
    break;
  default:
    return -EINVAL;
  }
  if (cfg->dun_bytes == 0 || cfg->dun_bytes > mode->iv_size)
    return -EINVAL;
  if (!ibc_is_power_of_2 (cfg->data_unit_size))
    return -EINVAL;
  return 0;
}

unsigned
ibc_ilog2 (uint64_t v)
{
  return v ? 63u - (unsigned) __builtin_clzll (v) : 0;
}
