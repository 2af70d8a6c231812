/* The cipher engine: en/decrypt whole data units starting at a DUN. */
#ifndef IBCRYPT_CIPHER_H
#define IBCRYPT_CIPHER_H

#include <stddef.h>
#include <stdint.h>

#include "ibcrypt/dun.h"
#include "ibcrypt/key.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A cipher programmed with one key: all key setup (key schedules, ESSIV
 * salt, Adiantum subkeys) happens in ibc_cipher_new, never per data unit.
 * ibc_cipher_encrypt/decrypt may be called from any number of threads at
 * once on the same cipher without a global lock. */
struct ibc_cipher;

/* Program a cipher for key (a raw key; hw-wrapped keys are -EOPNOTSUPP
 * here, the keyslot emulation unwraps them first).  Returns 0, -EINVAL,
 * -EOPNOTSUPP, -ENOMEM or -EIO (crypto library failure). */
int ibc_cipher_new (const struct ibc_key *key, struct ibc_cipher **ret);

/* Same, from a mode, data unit size and raw bytes (used by the keyslot
 * emulation for keys derived from hw-wrapped blobs). */
int ibc_cipher_new_raw (enum ibc_mode mode, uint32_t data_unit_size,
                        const uint8_t *bytes, size_t size,
                        struct ibc_cipher **ret);

/* Wipe and free.  Accepts NULL.  No call may be in progress. */
void ibc_cipher_free (struct ibc_cipher *cipher);

/* En/decrypt len bytes (a multiple of the data unit size) from in to out
 * (in == out allowed, other overlap not), the first data unit using dun and
 * each following one dun+1, dun+2, ...  Returns 0, -EINVAL (len not a
 * multiple of the data unit size) or -EIO. */
int ibc_cipher_encrypt (struct ibc_cipher *cipher, const struct ibc_dun *dun,
                        const void *in, void *out, size_t len);
int ibc_cipher_decrypt (struct ibc_cipher *cipher, const struct ibc_dun *dun,
                        const void *in, void *out, size_t len);

uint32_t ibc_cipher_data_unit_size (const struct ibc_cipher *cipher);
enum ibc_mode ibc_cipher_mode (const struct ibc_cipher *cipher);

#ifdef __cplusplus
}
#endif
#endif
