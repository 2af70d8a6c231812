/* ibcrypt encryption modes and crypto configurations (blk_crypto_modes[]). */
#ifndef IBCRYPT_MODE_H
#define IBCRYPT_MODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Numbering matches enum blk_crypto_mode_num; INVALID must stay 0. */
enum ibc_mode {
  IBC_MODE_INVALID = 0,
  IBC_MODE_AES_256_XTS = 1,
  IBC_MODE_AES_128_CBC_ESSIV = 2,
  IBC_MODE_ADIANTUM = 3,
  IBC_MODE_SM4_XTS = 4,
  IBC_MODE_MAX = 5,
};

/* Key types, a bitmask as in BLK_CRYPTO_KEY_TYPE_*. */
enum ibc_key_type {
  IBC_KEY_TYPE_RAW = 0x1,
  IBC_KEY_TYPE_HW_WRAPPED = 0x2,
};
#define IBC_KEY_TYPES_ALL (IBC_KEY_TYPE_RAW | IBC_KEY_TYPE_HW_WRAPPED)

#define IBC_MAX_RAW_KEY_SIZE 64
#define IBC_MAX_HW_WRAPPED_KEY_SIZE 128
#define IBC_MAX_ANY_KEY_SIZE 128
#define IBC_MAX_IV_SIZE 32
#define IBC_SW_SECRET_SIZE 32

struct ibc_mode_info {
  const char *name;           /* sysfs-style name, e.g. "AES-256-XTS" */
  const char *cipher_name;    /* dm-style table name, e.g. "aes-xts-plain64" */
  unsigned key_size;          /* raw key bytes */
  unsigned security_strength; /* bytes; minimum hw-wrapped blob size */
  unsigned iv_size;           /* bytes */
};

/* A crypto configuration: what a key is used for (blk_crypto_config). */
struct ibc_crypto_config {
  enum ibc_mode mode;
  uint32_t data_unit_size; /* bytes, a power of two */
  uint32_t dun_bytes;      /* largest DUN the key will use, in bytes */
  enum ibc_key_type key_type;
};

/* The mode's table entry, or NULL for INVALID and out-of-range values. */
const struct ibc_mode_info *ibc_mode_info (enum ibc_mode mode);

/* Look a mode up by its dm cipher name ("aes-xts-plain64") or its sysfs
 * name ("AES-256-XTS", case-insensitive).  Returns 0 or -EINVAL. */
int ibc_mode_from_string (const char *s, enum ibc_mode *ret_mode);

/* "raw" / "hw-wrapped" and back.  Parse returns 0 or -EINVAL. */
const char *ibc_key_type_name (enum ibc_key_type type);
int ibc_key_type_from_string (const char *s, enum ibc_key_type *ret_type);

/* Validate a configuration together with the size of the key that will be
 * used with it, exactly as blk_crypto_init_key() does.  Returns 0 or
 * -EINVAL. */
int ibc_crypto_config_validate (const struct ibc_crypto_config *cfg,
                                size_t key_size);

/* log2 of a power of two. */
unsigned ibc_ilog2 (uint64_t v);
static inline bool
ibc_is_power_of_2 (uint64_t v)
{
  return v != 0 && (v & (v - 1)) == 0;
}

#ifdef __cplusplus
}
#endif
#endif
