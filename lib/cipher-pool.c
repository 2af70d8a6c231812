/* Provider-level OpenSSL cipher contexts and their lock-free per-key pool. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#include "cipher-pool.h"

/* True if name is one of the colon-separated names of an algorithm. */
static bool
names_contain (const char *names, const char *name)
{
  size_t len = strlen (name);

  while (names != NULL && *names != '\0') {
    const char *end = strchr (names, ':');
    size_t n = end != NULL ? (size_t) (end - names) : strlen (names);

    if (n == len && strncasecmp (names, name, len) == 0)
      return true;
    names = end != NULL ? end + 1 : NULL;
  }
  return false;
}

static void
take_functions (const OSSL_DISPATCH *d, struct ibc_pcipher *pc)
{
  for (; d->function_id != 0; d++) {
    switch (d->function_id) {
    case OSSL_FUNC_CIPHER_NEWCTX:
      pc->newctx = OSSL_FUNC_cipher_newctx (d);
      break;
    case OSSL_FUNC_CIPHER_FREECTX:
      pc->freectx = OSSL_FUNC_cipher_freectx (d);
      break;
    case OSSL_FUNC_CIPHER_DUPCTX:
      pc->dupctx = OSSL_FUNC_cipher_dupctx (d);
      break;
    case OSSL_FUNC_CIPHER_ENCRYPT_INIT:
      pc->einit = OSSL_FUNC_cipher_encrypt_init (d);
      break;
    case OSSL_FUNC_CIPHER_DECRYPT_INIT:
      pc->dinit = OSSL_FUNC_cipher_decrypt_init (d);
      break;
    case OSSL_FUNC_CIPHER_UPDATE:
      pc->update = OSSL_FUNC_cipher_update (d);
      break;
    case OSSL_FUNC_CIPHER_SET_CTX_PARAMS:
      pc->set_ctx_params = OSSL_FUNC_cipher_set_ctx_params (d);
      break;
    }
  }
}

int
ibc_pcipher_fetch (const char *name, struct ibc_pcipher *ret)
{
  struct ibc_pcipher pc = { 0 };
  const OSSL_ALGORITHM *algs, *a;
  const OSSL_PROVIDER *prov;
  int no_cache = 0;

  pc.evp = EVP_CIPHER_fetch (NULL, name, NULL);
  if (pc.evp == NULL)
    return -EOPNOTSUPP;
  prov = EVP_CIPHER_get0_provider (pc.evp);
  pc.provctx = OSSL_PROVIDER_get0_provider_ctx (prov);
  pc.key_len = (size_t) EVP_CIPHER_get_key_length (pc.evp);
  pc.iv_len = (size_t) EVP_CIPHER_get_iv_length (pc.evp);

  /* The same table libcrypto built pc.evp from. */
  algs = OSSL_PROVIDER_query_operation (prov, OSSL_OP_CIPHER, &no_cache);
  for (a = algs; a != NULL && a->algorithm_names != NULL; a++) {
    if (names_contain (a->algorithm_names, name)) {
      take_functions (a->implementation, &pc);
      break;
    }
  }
  if (algs != NULL)
    OSSL_PROVIDER_unquery_operation (prov, OSSL_OP_CIPHER, algs);

  if (pc.newctx == NULL || pc.freectx == NULL || pc.dupctx == NULL
      || pc.einit == NULL || pc.dinit == NULL || pc.update == NULL) {
    EVP_CIPHER_free (pc.evp);
    return -EOPNOTSUPP;
  }
  *ret = pc;
  return 0;
}

void
ibc_pcipher_release (struct ibc_pcipher *pc)
{
  if (pc == NULL)
    return;
  EVP_CIPHER_free (pc->evp);
  memset (pc, 0, sizeof *pc);
}

void *
ibc_pcipher_new_keyed (const struct ibc_pcipher *pc, const uint8_t *key,
                       bool encrypt)
{
  /* Padding off: block modes then process every whole block at once and
   * keep nothing back for a final call (decryption would otherwise hold
   * back the last block). */
  unsigned int padding = 0;
  OSSL_PARAM params[] = {
    OSSL_PARAM_construct_uint (OSSL_CIPHER_PARAM_PADDING, &padding),
    OSSL_PARAM_construct_end (),
  };
  void *ctx = pc->newctx (pc->provctx);
  int ok;

  if (ctx == NULL)
    return NULL;
  if (encrypt)
    ok = pc->einit (ctx, key, pc->key_len, NULL, 0, NULL);
  else
    ok = pc->dinit (ctx, key, pc->key_len, NULL, 0, NULL);
  if (ok && pc->set_ctx_params != NULL)
    ok = pc->set_ctx_params (ctx, params);
  if (!ok) {
    pc->freectx (ctx);
    return NULL;
  }
  return ctx;
}

int
ibc_pcipher_crypt (const struct ibc_pcipher *pc, void *ctx, bool encrypt,
                   const uint8_t *iv, const uint8_t *in, uint8_t *out,
                   size_t len)
{
  size_t outl = 0;

  /* A NULL key keeps the key schedule: only the IV changes (and the
   * provider resets its buffered state). */
  if (iv != NULL) {
    int ok = encrypt ? pc->einit (ctx, NULL, 0, iv, pc->iv_len, NULL)
                     : pc->dinit (ctx, NULL, 0, iv, pc->iv_len, NULL);
    if (!ok)
      return -EIO;
  }
  if (!pc->update (ctx, out, &outl, len, in, len) || outl != len)
    return -EIO;
  return 0;
}

/* Where a thread starts looking for a free slot: the slot it took last
 * (index + 1; 0 until its first call), or for a new thread the next value
 * of a global counter, which spreads threads over the slots. */
static _Thread_local unsigned slot_hint;
static atomic_uint next_hint;

int
ibc_ctx_pool_init (struct ibc_ctx_pool *pool, unsigned nctx,
                   const struct ibc_pcipher *const pc[], void *const tmpl[])
{
  memset (pool, 0, sizeof *pool);
  if (nctx > IBC_POOL_MAX_CTX) {
    for (unsigned i = 0; i < nctx; i++) {
      if (tmpl[i] != NULL)
        pc[i]->freectx (tmpl[i]);
    }
    return -EINVAL;
  }
  pool->nctx = nctx;
  for (unsigned i = 0; i < nctx; i++) {
    pool->pc[i] = pc[i];
    pool->tmpl[i] = tmpl[i];
  }
  pool->slots
      = aligned_alloc (64, IBC_POOL_SLOTS * sizeof (struct ibc_pool_slot));
  if (pool->slots == NULL) {
    ibc_ctx_pool_destroy (pool);
    return -ENOMEM;
  }
  memset (pool->slots, 0, IBC_POOL_SLOTS * sizeof (struct ibc_pool_slot));
  for (unsigned s = 0; s < IBC_POOL_SLOTS; s++)
    atomic_init (&pool->slots[s].busy, 0);
  return 0;
}

static void
free_slot_contexts (struct ibc_ctx_pool *pool, struct ibc_pool_slot *slot)
{
  for (unsigned i = 0; i < pool->nctx; i++) {
    if (slot->ctx[i] != NULL)
      pool->pc[i]->freectx (slot->ctx[i]);
    slot->ctx[i] = NULL;
  }
}

void
ibc_ctx_pool_destroy (struct ibc_ctx_pool *pool)
{
  if (pool == NULL)
    return;
  if (pool->slots != NULL) {
    for (unsigned s = 0; s < IBC_POOL_SLOTS; s++)
      free_slot_contexts (pool, &pool->slots[s]);
    free (pool->slots);
  }
  for (unsigned i = 0; i < pool->nctx; i++) {
    if (pool->tmpl[i] != NULL)
      pool->pc[i]->freectx (pool->tmpl[i]);
  }
  memset (pool, 0, sizeof *pool);
}

struct ibc_pool_slot *
ibc_ctx_pool_get (struct ibc_ctx_pool *pool)
{
  unsigned start, expected;
  struct ibc_pool_slot *slot;

  if (slot_hint != 0)
    start = slot_hint - 1;
  else
    start = atomic_fetch_add_explicit (&next_hint, 1, memory_order_relaxed)
            % IBC_POOL_SLOTS;
  for (unsigned k = 0; k < IBC_POOL_SLOTS; k++) {
    unsigned s = (start + k) % IBC_POOL_SLOTS;

    slot = &pool->slots[s];
    expected = 0;
    /* The plain load first keeps a busy slot's cache line shared.  Acquire
     * pairs with the release in put(): the contexts the last holder left
     * in the slot are fully written before we use them. */
    if (atomic_load_explicit (&slot->busy, memory_order_relaxed) == 0
        && atomic_compare_exchange_strong_explicit (&slot->busy, &expected, 1,
                                                    memory_order_acquire,
                                                    memory_order_relaxed)) {
      slot_hint = s + 1;
      return slot;
    }
  }
  /* Every slot is busy: a temporary one, freed by put(). */
  slot = aligned_alloc (64, sizeof *slot);
  if (slot == NULL)
    return NULL;
  memset (slot, 0, sizeof *slot);
  atomic_init (&slot->busy, 1);
  slot->temporary = true;
  return slot;
}

void *
ibc_ctx_pool_ctx (struct ibc_ctx_pool *pool, struct ibc_pool_slot *slot,
                  unsigned i)
{
  /* The caller owns the slot: no other thread touches slot->ctx. */
  if (slot->ctx[i] == NULL)
    slot->ctx[i] = pool->pc[i]->dupctx (pool->tmpl[i]);
  return slot->ctx[i];
}

void
ibc_ctx_pool_put (struct ibc_ctx_pool *pool, struct ibc_pool_slot *slot)
{
  if (slot->temporary) {
    free_slot_contexts (pool, slot);
    free (slot);
    return;
  }
  atomic_store_explicit (&slot->busy, 0, memory_order_release);
}
