/* ibcrypt keys: a crypto config plus key bytes in locked memory. */
#ifndef IBCRYPT_KEY_H
#define IBCRYPT_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "ibcrypt/mode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Printable key id: hex of a 16-byte keyed BLAKE2b over config and bytes. */
#define IBC_KEY_ID_BYTES 16
#define IBC_KEY_ID_STRLEN (2 * IBC_KEY_ID_BYTES)

struct ibc_key;

/* Create a key (blk_crypto_init_key).  The config is validated with
 * ibc_crypto_config_validate(); the bytes are copied into locked memory.
 * The caller still owns (and should wipe) its own copy.  The new key has one
 * reference.  Returns 0, -EINVAL (bad config or size) or -ENOMEM. */
int ibc_key_new (const struct ibc_crypto_config *cfg, const void *bytes,
                 size_t size, struct ibc_key **ret_key);

/* Take / drop a reference; the last unref wipes and frees.  Both are
 * thread-safe; unref accepts NULL. */
struct ibc_key *ibc_key_ref (struct ibc_key *key);
void ibc_key_unref (struct ibc_key *key);

const struct ibc_crypto_config *ibc_key_config (const struct ibc_key *key);
const uint8_t *ibc_key_bytes (const struct ibc_key *key);
size_t ibc_key_size (const struct ibc_key *key);

/* NUL-terminated IBC_KEY_ID_STRLEN hex characters, owned by the key. */
const char *ibc_key_id (const struct ibc_key *key);

#ifdef __cplusplus
}
#endif
#endif
