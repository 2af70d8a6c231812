/* Internal interface between the keyslot emulation and its wrapped-key code. */
#ifndef IBCRYPT_HWDEV_INTERNAL_H
#define IBCRYPT_HWDEV_INTERNAL_H

#include "ibcrypt/cipher.h"
#include "ibcrypt/hwdev.h"

#define IBC_HWDEV_WRAP_KEY_SIZE 32

/* The device's wrapping keys, in locked memory. */
struct ibc_hwdev_wrap {
  uint8_t lt[IBC_HWDEV_WRAP_KEY_SIZE];  /* long-term (persistent) */
  uint8_t eph[IBC_HWDEV_WRAP_KEY_SIZE]; /* ephemeral (per boot) */
};

/* Allocate the keys: lt from the file at path (exactly 32 bytes) or random
 * if path is "", eph random.  Returns 0, -EINVAL, -ENOMEM or -errno. */
int ibc_hwdev_wrap_new (const char *path, struct ibc_hwdev_wrap **ret);
void ibc_hwdev_wrap_free (struct ibc_hwdev_wrap *w);

/* The device's keys (hwdev.c). */
const struct ibc_hwdev_wrap *ibc_hwdev_wrap_of (const struct ibc_hwdev *dev);

/* What the hardware does when it programs a hw-wrapped key: unwrap the
 * ephemeral blob, derive the inline key, build the cipher.  Returns 0,
 * -EBADMSG, -EOPNOTSUPP (not AES-256-XTS), or an ibc_cipher_new_raw
 * error. */
int ibc_hwdev_wrap_cipher (const struct ibc_hwdev_wrap *w,
                           const struct ibc_key *key, struct ibc_cipher **ret);

#endif
