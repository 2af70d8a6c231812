/* AES-128-CBC-ESSIV backend: the kernel's essiv(cbc(aes),sha256), i.e.
 * AES-128-CBC with IV = AES-256_{SHA256(key)}(DUN as 16 little-endian
 * bytes), on OpenSSL. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cipher-internal.h"
#include "cipher-pool.h"

#define AES_BLOCK 16
#define SALT_SIZE 32 /* SHA-256, so the IV generator is AES-256 */
/* ESSIV IVs are computed this many data units at a time, with one ECB
 * call. */
#define IV_BATCH 32

enum { ESSIV_ENC, ESSIV_DEC, ESSIV_IVGEN, ESSIV_NCTX };

struct essiv_state {
  struct ibc_pcipher cbc; /* AES-128-CBC, the data */
  struct ibc_pcipher ecb; /* AES-256-ECB keyed with the salt, the IVs */
  struct ibc_ctx_pool pool;
  uint32_t dus;
};

static void
essiv_destroy (void *state)
{
  struct essiv_state *s = state;

  if (s == NULL)
    return;
  ibc_ctx_pool_destroy (&s->pool);
  ibc_pcipher_release (&s->cbc);
  ibc_pcipher_release (&s->ecb);
  free (s);
}

static int
essiv_setup (const uint8_t *key, size_t key_size, uint32_t dus,
             void **ret_state)
{
  struct essiv_state *s;
  const struct ibc_pcipher *pc[ESSIV_NCTX];
  void *tmpl[ESSIV_NCTX] = { NULL };
  uint8_t salt[SALT_SIZE];
  unsigned int salt_len = 0;
  int r;

  if (dus < AES_BLOCK || dus % AES_BLOCK != 0)
    return -EINVAL;
  s = calloc (1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  r = ibc_pcipher_fetch ("AES-128-CBC", &s->cbc);
  if (r == 0)
    r = ibc_pcipher_fetch ("AES-256-ECB", &s->ecb);
  if (r < 0)
    goto out_free;
  if (s->cbc.key_len != key_size || s->cbc.iv_len != AES_BLOCK
      || s->ecb.key_len != SALT_SIZE) {
    r = -EIO;
    goto out_free;
  }
  if (!EVP_Digest (key, key_size, salt, &salt_len, EVP_sha256 (), NULL)
      || salt_len != SALT_SIZE) {
    r = -EIO;
    goto out_wipe;
  }
  tmpl[ESSIV_ENC] = ibc_pcipher_new_keyed (&s->cbc, key, true);
  tmpl[ESSIV_DEC] = ibc_pcipher_new_keyed (&s->cbc, key, false);
  tmpl[ESSIV_IVGEN] = ibc_pcipher_new_keyed (&s->ecb, salt, true);
  pc[ESSIV_ENC] = pc[ESSIV_DEC] = &s->cbc;
  pc[ESSIV_IVGEN] = &s->ecb;
  if (tmpl[ESSIV_ENC] == NULL || tmpl[ESSIV_DEC] == NULL
      || tmpl[ESSIV_IVGEN] == NULL) {
    for (unsigned i = 0; i < ESSIV_NCTX; i++) {
      if (tmpl[i] != NULL)
        pc[i]->freectx (tmpl[i]);
    }
    r = -EIO;
    goto out_wipe;
  }
  r = ibc_ctx_pool_init (&s->pool, ESSIV_NCTX, pc, tmpl);
  if (r < 0)
    goto out_wipe;
  OPENSSL_cleanse (salt, sizeof salt);
  s->dus = dus;
  *ret_state = s;
  return 0;

out_wipe:
  OPENSSL_cleanse (salt, sizeof salt);
out_free:
  essiv_destroy (s);
  return r;
}

static int
essiv_crypt (void *state, const struct ibc_dun *dun, const uint8_t *in,
             uint8_t *out, size_t len, bool encrypt)
{
  struct essiv_state *s = state;
  struct ibc_iv128 dun_iv = ibc_iv128_from_dun (dun);
  uint8_t ivs[IV_BATCH * AES_BLOCK];
  size_t units = len / s->dus;
  struct ibc_pool_slot *slot;
  void *dctx, *ictx;
  int r = 0;

  slot = ibc_ctx_pool_get (&s->pool);
  if (slot == NULL)
    return -EIO;
  dctx = ibc_ctx_pool_ctx (&s->pool, slot, encrypt ? ESSIV_ENC : ESSIV_DEC);
  ictx = ibc_ctx_pool_ctx (&s->pool, slot, ESSIV_IVGEN);
  if (dctx == NULL || ictx == NULL) {
    r = -EIO;
    goto out_put;
  }
  for (size_t u = 0; u < units && r == 0; u += IV_BATCH) {
    size_t n = units - u < IV_BATCH ? units - u : IV_BATCH;

    for (size_t j = 0; j < n; j++) {
      ibc_iv128_store (&dun_iv, ivs + j * AES_BLOCK);
      ibc_iv128_inc (&dun_iv);
    }
    r = ibc_pcipher_crypt (&s->ecb, ictx, true, NULL, ivs, ivs, n * AES_BLOCK);
    for (size_t j = 0; j < n && r == 0; j++) {
      size_t off = (u + j) * s->dus;

      r = ibc_pcipher_crypt (&s->cbc, dctx, encrypt, ivs + j * AES_BLOCK,
                             in + off, out + off, s->dus);
    }
  }
out_put:
  ibc_ctx_pool_put (&s->pool, slot);
  return r;
}

const struct ibc_cipher_impl ibc_cipher_impl_aes_cbc_essiv = {
  .mode = IBC_MODE_AES_128_CBC_ESSIV,
  .setup = essiv_setup,
  .destroy = essiv_destroy,
  .crypt = essiv_crypt,
};
