/* Keyed OpenSSL cipher contexts driven at the provider level, and a
 * lock-free pool of them shared by the XTS and ESSIV backends. */
#ifndef IBCRYPT_CIPHER_POOL_H
#define IBCRYPT_CIPHER_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/evp.h>

#include "ibcrypt/dun.h"
#include "endian.h"

/* One algorithm ("AES-256-XTS", "SM4-ECB", ...) of the provider that
 * EVP_CIPHER_fetch() picks, called through its dispatch table.  Why not
 * EVP_CIPHER_CTX: in OpenSSL 3.0, EVP_CipherInit_ex() with only an IV asks
 * the provider for the IV length through an OSSL_PARAM lookup on every call
 * (about 60 ns, 7% of a 4096-byte AES-XTS data unit); the provider's own
 * init takes about 10 ns.  The dispatch table is the provider ABI that
 * libcrypto itself uses (provider-cipher(7)), so this stays correct with the
 * FIPS provider or any other one chosen by configuration.  Immutable after
 * ibc_pcipher_fetch. */
struct ibc_pcipher {
  EVP_CIPHER *evp; /* our reference keeps the provider loaded */
  void *provctx;
  OSSL_FUNC_cipher_newctx_fn *newctx;
  OSSL_FUNC_cipher_freectx_fn *freectx;
  OSSL_FUNC_cipher_dupctx_fn *dupctx;
  OSSL_FUNC_cipher_encrypt_init_fn *einit;
  OSSL_FUNC_cipher_decrypt_init_fn *dinit;
  OSSL_FUNC_cipher_update_fn *update;
  OSSL_FUNC_cipher_set_ctx_params_fn *set_ctx_params;
  size_t key_len, iv_len;
};

/* Look name up.  Returns 0 or -EOPNOTSUPP (no provider offers it, or not
 * with the functions we need). */
int ibc_pcipher_fetch (const char *name, struct ibc_pcipher *ret);
/* Drop the reference.  Accepts a zeroed or already released struct. */
void ibc_pcipher_release (struct ibc_pcipher *pc);

/* A new provider context keyed with key (pc->key_len bytes) for encryption
 * or decryption, with padding off.  Returns NULL on failure (including a key
 * the provider rejects). */
void *ibc_pcipher_new_keyed (const struct ibc_pcipher *pc, const uint8_t *key,
                             bool encrypt);

/* Set the IV of ctx (keyed for the same direction) and process len bytes,
 * which must be a whole number of blocks for block modes.  No state other
 * than the IV carries over from one call to the next.  Returns 0 or -EIO. */
int ibc_pcipher_crypt (const struct ibc_pcipher *pc, void *ctx, bool encrypt,
                       const uint8_t *iv, const uint8_t *in, uint8_t *out,
                       size_t len);

/* Contexts per pool slot: ESSIV and SM4-XTS need three (data encryption,
 * data decryption, IV or tweak encryption). */
#define IBC_POOL_MAX_CTX 3
/* Slots per pool.  Each holds one thread's contexts while it runs a call;
 * contexts are copied from the templates the first time a slot needs them,
 * so unused slots cost only their 64 bytes. */
#define IBC_POOL_SLOTS 64

struct ibc_pool_slot {
  atomic_uint busy;
  bool temporary; /* allocated because every slot was busy */
  void *ctx[IBC_POOL_MAX_CTX];
} __attribute__ ((aligned (64))); /* one cache line each: no false sharing */

/* Per-key contexts.  The templates are keyed in setup and never used to
 * process data: they are only copied (provider dupctx reads them), which is
 * safe from any number of threads.  A thread takes a slot with one
 * compare-and-swap, starting from the slot it used last (a per-thread hint),
 * so in the steady state threads keep to their own slots and cache lines.
 * When all IBC_POOL_SLOTS are busy, it builds a temporary slot and frees it
 * afterwards instead of waiting: never blocks, slower only past 64 threads. */
struct ibc_ctx_pool {
  unsigned nctx;
  const struct ibc_pcipher *pc[IBC_POOL_MAX_CTX];
  void *tmpl[IBC_POOL_MAX_CTX];
  struct ibc_pool_slot *slots; /* IBC_POOL_SLOTS of them */
};

/* Set up a pool of nctx contexts per slot; context i is a copy of tmpl[i], a
 * context of pc[i].  The pool owns the templates from then on, even on
 * failure.  Returns 0, -EINVAL (nctx too large) or -ENOMEM. */
int ibc_ctx_pool_init (struct ibc_ctx_pool *pool, unsigned nctx,
                       const struct ibc_pcipher *const pc[],
                       void *const tmpl[]);
/* Free (and so wipe: the providers clear contexts on free) every context.
 * No call may be using the pool.  Accepts a zeroed pool. */
void ibc_ctx_pool_destroy (struct ibc_ctx_pool *pool);

/* Take a slot for the calling thread, or NULL when out of memory. */
struct ibc_pool_slot *ibc_ctx_pool_get (struct ibc_ctx_pool *pool);
/* Context i of a slot the caller holds, created on first use; NULL when
 * out of memory. */
void *ibc_ctx_pool_ctx (struct ibc_ctx_pool *pool, struct ibc_pool_slot *slot,
                        unsigned i);
/* Give the slot back. */
void ibc_ctx_pool_put (struct ibc_ctx_pool *pool, struct ibc_pool_slot *slot);

/* Test seam (cipher-xts.c): the SM4-XTS construction run on AES-256-ECB,
 * which must give the same bytes as OpenSSL's AES-256-XTS. */
struct ibc_cipher_impl;
extern const struct ibc_cipher_impl ibc_cipher_impl_aes_xts_on_ecb;

/* The 16-byte IV of a data unit: the low 128 bits of its DUN, little
 * endian.  Consecutive data units add one with carry; the carry out of bit
 * 127 into the DUN's third word does not reach a 16-byte IV. */
struct ibc_iv128 {
  uint64_t lo, hi;
};

static inline struct ibc_iv128
ibc_iv128_from_dun (const struct ibc_dun *dun)
{
  struct ibc_iv128 iv = { dun->w[0], dun->w[1] };
  return iv;
}

static inline void
ibc_iv128_store (const struct ibc_iv128 *iv, uint8_t *out)
{
  ibc_store_le64 (out, iv->lo);
  ibc_store_le64 (out + 8, iv->hi);
}

static inline void
ibc_iv128_inc (struct ibc_iv128 *iv)
{
  if (++iv->lo == 0)
    iv->hi++;
}

#endif
