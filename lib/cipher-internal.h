/* Interface between the cipher engine (cipher.c) and its per-mode backends. */
#ifndef IBCRYPT_CIPHER_INTERNAL_H
#define IBCRYPT_CIPHER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibcrypt/dun.h"
#include "ibcrypt/mode.h"

/* One backend per mode.  setup() does all per-key work (the "program"
 * step); crypt() is called concurrently from many threads on one state, so
 * it must not modify shared state without its own (lock-free) protection. */
struct ibc_cipher_impl {
  enum ibc_mode mode;
  /* Build per-key state from raw key bytes (size already validated against
   * the mode) for data units of dus bytes.  Returns 0 or -errno. */
  int (*setup) (const uint8_t *key, size_t key_size, uint32_t dus,
                void **ret_state);
  /* Wipe and free the state.  Accepts NULL. */
  void (*destroy) (void *state);
  /* En/decrypt len bytes (a non-zero multiple of dus), in == out allowed;
   * data unit i uses dun + i.  Returns 0 or -EIO. */
  int (*crypt) (void *state, const struct ibc_dun *dun, const uint8_t *in,
                uint8_t *out, size_t len, bool encrypt);
};

extern const struct ibc_cipher_impl ibc_cipher_impl_aes_xts;
extern const struct ibc_cipher_impl ibc_cipher_impl_aes_cbc_essiv;
extern const struct ibc_cipher_impl ibc_cipher_impl_adiantum;
extern const struct ibc_cipher_impl ibc_cipher_impl_sm4_xts;

#endif
