/* The cipher engine: validates a key's configuration once, then hands whole
 * data units to the backend of its mode (cipher-internal.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cipher-internal.h"
#include "ibcrypt/cipher.h"
#include "ibcrypt/secmem.h"

/* Immutable after ibc_cipher_new: any number of threads may use it at once;
 * the backends keep their per-thread scratch state lock-free. */
struct ibc_cipher {
  const struct ibc_cipher_impl *impl;
  void *state;
  uint32_t dus;
};

static const struct ibc_cipher_impl *
impl_of_mode (enum ibc_mode mode)
{
  switch (mode) {
  case IBC_MODE_AES_256_XTS:
    return &ibc_cipher_impl_aes_xts;
  case IBC_MODE_AES_128_CBC_ESSIV:
    return &ibc_cipher_impl_aes_cbc_essiv;
  case IBC_MODE_ADIANTUM:
    return &ibc_cipher_impl_adiantum;
  case IBC_MODE_SM4_XTS:
    return &ibc_cipher_impl_sm4_xts;
  case IBC_MODE_INVALID:
  case IBC_MODE_MAX:
    break;
  }
  return NULL;
}

/* Smallest data unit each mode can take: one cipher block for the block
 * modes (which also need whole blocks: a power of two >= 16 is), and 16
 * bytes for Adiantum as the kernel's adiantum template requires. */
#define MIN_DATA_UNIT_SIZE 16

int
ibc_cipher_new_raw (enum ibc_mode mode, uint32_t data_unit_size,
                    const uint8_t *bytes, size_t size, struct ibc_cipher **ret)
{
  const struct ibc_mode_info *info = ibc_mode_info (mode);
  const struct ibc_cipher_impl *impl = impl_of_mode (mode);
  struct ibc_cipher *c;
  int r;

  if (info == NULL || impl == NULL || bytes == NULL || ret == NULL)
    return -EINVAL;
  if (size != info->key_size)
    return -EINVAL;
  if (!ibc_is_power_of_2 (data_unit_size)
      || data_unit_size < MIN_DATA_UNIT_SIZE)
    return -EINVAL;

  c = calloc (1, sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  c->impl = impl;
  c->dus = data_unit_size;
  r = impl->setup (bytes, size, data_unit_size, &c->state);
  /* Key expansion (ours and OpenSSL's) leaves key bytes in dead stack
   * frames of whichever thread programs a keyslot. */
  ibc_secmem_wipe_stack ();
  if (r < 0) {
    free (c);
    return r;
  }
  *ret = c;
  return 0;
}

int
ibc_cipher_new (const struct ibc_key *key, struct ibc_cipher **ret)
{
  const struct ibc_crypto_config *cfg;

  if (key == NULL)
    return -EINVAL;
  cfg = ibc_key_config (key);
  /* A hardware-wrapped key is only an opaque blob here: the keyslot
   * emulation unwraps it and uses ibc_cipher_new_raw. */
  if (cfg->key_type != IBC_KEY_TYPE_RAW)
    return -EOPNOTSUPP;
  return ibc_cipher_new_raw (cfg->mode, cfg->data_unit_size,
                             ibc_key_bytes (key), ibc_key_size (key), ret);
}

void
ibc_cipher_free (struct ibc_cipher *cipher)
{
  if (cipher == NULL)
    return;
  cipher->impl->destroy (cipher->state);
  free (cipher);
}

static int
cipher_crypt (struct ibc_cipher *cipher, const struct ibc_dun *dun,
              const void *in, void *out, size_t len, bool encrypt)
{
  int r;

  if (cipher == NULL || dun == NULL)
    return -EINVAL;
  if (len % cipher->dus != 0)
    return -EINVAL;
  /* Nothing to do; the backends require at least one data unit. */
  if (len == 0)
    return 0;
  if (in == NULL || out == NULL)
    return -EINVAL;
  r = cipher->impl->crypt (cipher->state, dun, in, out, len, encrypt);
  /* Fail closed: a backend that stops halfway may leave plaintext, or
   * masked plaintext, in out.  Leave zeros instead. */
  if (r < 0)
    memset (out, 0, len);
  return r;
}

int
ibc_cipher_encrypt (struct ibc_cipher *cipher, const struct ibc_dun *dun,
                    const void *in, void *out, size_t len)
{
  return cipher_crypt (cipher, dun, in, out, len, true);
}

int
ibc_cipher_decrypt (struct ibc_cipher *cipher, const struct ibc_dun *dun,
                    const void *in, void *out, size_t len)
{
  return cipher_crypt (cipher, dun, in, out, len, false);
}

uint32_t
ibc_cipher_data_unit_size (const struct ibc_cipher *cipher)
{
  return cipher->dus;
}

enum ibc_mode
ibc_cipher_mode (const struct ibc_cipher *cipher)
{
  return cipher->impl->mode;
}
