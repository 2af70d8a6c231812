/* AES-256-XTS and SM4-XTS backends: the kernel's xts(aes) and xts(sm4) with
 * the plain64 IV (the DUN, little endian), on OpenSSL, and AES-256-XTS on
 * our VAES/AVX-512 code (cipher-xts-vaes.c) where the CPU allows. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cipher-internal.h"
#include "cipher-pool.h"
#include "cipher-xts-vaes.h"

#define XTS_BLOCK 16
/* IEEE 1619-2018 and SP 800-38E allow at most 2^20 blocks per data unit;
 * OpenSSL refuses more. */
#define XTS_MAX_DUS (XTS_BLOCK << 20)

/* What both XTS modes require of a key and data unit size.  Equal key
 * halves are refused as the kernel's xts_verify_key() does for the
 * blk-crypto fallback (it sets CRYPTO_TFM_REQ_FORBID_WEAK_KEYS); OpenSSL
 * refuses them too, for encryption. */
static int
xts_check (const uint8_t *key, size_t key_size, uint32_t dus)
{
  if (key_size % 2 != 0 || dus < XTS_BLOCK || dus % XTS_BLOCK != 0
      || dus > XTS_MAX_DUS)
    return -EINVAL;
  if (CRYPTO_memcmp (key, key + key_size / 2, key_size / 2) == 0)
    return -EINVAL;
  return 0;
}

/* ---- AES-256-XTS: our VAES/AVX-512 code (cipher-xts-vaes.c) where the
 * CPU has it, about twice OpenSSL 3.0's AES-NI; otherwise OpenSSL's XTS
 * (AES-NI assembly), one provider call to set the IV and one to process
 * each data unit.  The choice is made per key, in setup. ---- */

enum { AES_XTS_ENC, AES_XTS_DEC, AES_XTS_NCTX };

/* Test seam: see ibc_cipher_xts_force_openssl. */
static atomic_bool force_openssl;

void
ibc_cipher_xts_force_openssl (bool force)
{
  atomic_store (&force_openssl, force);
}

static bool
use_vaes (void)
{
  return !atomic_load (&force_openssl) && ibc_xts_vaes_usable ();
}

const char *
ibc_cipher_xts_impl_name (void)
{
  return use_vaes () ? "vaes-avx512" : "openssl";
}

struct aes_xts_state {
  /* Set: the VAES path, read-only after setup, so no context pool; the
   * OpenSSL members below stay zero. */
  struct ibc_xts_vaes *vaes;
  struct ibc_pcipher xts;
  struct ibc_ctx_pool pool;
  uint32_t dus;
};

static void
aes_xts_destroy (void *state)
{
  struct aes_xts_state *s = state;

  if (s == NULL)
    return;
  ibc_xts_vaes_free (s->vaes);
  ibc_ctx_pool_destroy (&s->pool);
  ibc_pcipher_release (&s->xts);
  free (s);
}

static int
aes_xts_setup (const uint8_t *key, size_t key_size, uint32_t dus,
               void **ret_state)
{
  struct aes_xts_state *s;
  const struct ibc_pcipher *pc[AES_XTS_NCTX];
  void *tmpl[AES_XTS_NCTX];
  int r;

  r = xts_check (key, key_size, dus);
  if (r < 0)
    return r;
  s = calloc (1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  s->dus = dus;
  if (use_vaes ()) {
    r = ibc_xts_vaes_new (key, dus, &s->vaes);
    if (r < 0)
      goto out_free;
    *ret_state = s;
    return 0;
  }
  r = ibc_pcipher_fetch ("AES-256-XTS", &s->xts);
  if (r < 0)
    goto out_free;
  if (s->xts.key_len != key_size || s->xts.iv_len != XTS_BLOCK) {
    r = -EIO;
    goto out_free;
  }
  tmpl[AES_XTS_ENC] = ibc_pcipher_new_keyed (&s->xts, key, true);
  tmpl[AES_XTS_DEC] = ibc_pcipher_new_keyed (&s->xts, key, false);
  pc[AES_XTS_ENC] = pc[AES_XTS_DEC] = &s->xts;
  if (tmpl[AES_XTS_ENC] == NULL || tmpl[AES_XTS_DEC] == NULL) {
    for (unsigned i = 0; i < AES_XTS_NCTX; i++) {
      if (tmpl[i] != NULL)
        s->xts.freectx (tmpl[i]);
    }
    r = -EIO;
    goto out_free;
  }
  r = ibc_ctx_pool_init (&s->pool, AES_XTS_NCTX, pc, tmpl);
  if (r < 0)
    goto out_free;
  *ret_state = s;
  return 0;

out_free:
  aes_xts_destroy (s);
  return r;
}

static int
aes_xts_crypt (void *state, const struct ibc_dun *dun, const uint8_t *in,
               uint8_t *out, size_t len, bool encrypt)
{
  struct aes_xts_state *s = state;
  struct ibc_iv128 iv = ibc_iv128_from_dun (dun);
  uint8_t ivb[XTS_BLOCK];
  struct ibc_pool_slot *slot;
  void *ctx;
  int r = 0;

  if (s->vaes != NULL) {
    ibc_xts_vaes_crypt (s->vaes, dun, in, out, len, encrypt);
    return 0;
  }
  slot = ibc_ctx_pool_get (&s->pool);
  if (slot == NULL)
    return -EIO;
  ctx = ibc_ctx_pool_ctx (&s->pool, slot, encrypt ? AES_XTS_ENC : AES_XTS_DEC);
  if (ctx == NULL) {
    r = -EIO;
    goto out_put;
  }
  for (size_t off = 0; off < len; off += s->dus) {
    ibc_iv128_store (&iv, ivb);
    r = ibc_pcipher_crypt (&s->xts, ctx, encrypt, ivb, in + off, out + off,
                           s->dus);
    if (r < 0)
      break;
    ibc_iv128_inc (&iv);
  }
out_put:
  ibc_ctx_pool_put (&s->pool, slot);
  return r;
}

const struct ibc_cipher_impl ibc_cipher_impl_aes_xts = {
  .mode = IBC_MODE_AES_256_XTS,
  .setup = aes_xts_setup,
  .destroy = aes_xts_destroy,
  .crypt = aes_xts_crypt,
};

/* ---- SM4-XTS: OpenSSL 3.0 has SM4 but no SM4-XTS, so XTS is built here
 * on an ECB cipher.  Per data unit: T = E_K2(IV); block j is masked with
 * T * x^j in GF(2^128) (IEEE 1619 little-endian doubling, as the kernel's
 * xts template and unlike GB/T 17964's bit order); one ECB call runs over
 * the whole masked data unit.  Data units are whole blocks, so there is no
 * ciphertext stealing.  The same code on AES-256-ECB is a test seam,
 * checked against OpenSSL's own AES-256-XTS. ---- */

enum { XE_ENC, XE_DEC, XE_TWEAK, XE_NCTX };

/* Initial tweaks are computed this many data units at a time, with one ECB
 * call. */
#define TWEAK_BATCH 32

struct ecb_xts_state {
  struct ibc_pcipher ecb;
  struct ibc_ctx_pool pool;
  uint32_t dus;
};

/* dst = src ^ (t0 * x^j) for every block j of len bytes (dst == src
 * allowed). */
static void
xts_mask (const uint8_t *src, uint8_t *dst, size_t len, const uint8_t *t0)
{
  uint64_t lo = ibc_load_le64 (t0), hi = ibc_load_le64 (t0 + 8);

  for (size_t off = 0; off < len; off += XTS_BLOCK) {
    uint64_t carry = hi >> 63;

    ibc_store_le64 (dst + off, ibc_load_le64 (src + off) ^ lo);
    ibc_store_le64 (dst + off + 8, ibc_load_le64 (src + off + 8) ^ hi);
    /* Multiply by x: shift the little-endian 128-bit value left by one and
     * reduce by x^128 + x^7 + x^2 + x + 1. */
    hi = (hi << 1) | (lo >> 63);
    lo = (lo << 1) ^ (0x87 & (0 - carry));
  }
}

static void
ecb_xts_destroy (void *state)
{
  struct ecb_xts_state *s = state;

  if (s == NULL)
    return;
  ibc_ctx_pool_destroy (&s->pool);
  ibc_pcipher_release (&s->ecb);
  free (s);
}

static int
ecb_xts_setup (const char *ecb_name, const uint8_t *key, size_t key_size,
               uint32_t dus, void **ret_state)
{
  struct ecb_xts_state *s;
  const struct ibc_pcipher *pc[XE_NCTX];
  void *tmpl[XE_NCTX];
  size_t half = key_size / 2;
  int r;

  r = xts_check (key, key_size, dus);
  if (r < 0)
    return r;
  s = calloc (1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  r = ibc_pcipher_fetch (ecb_name, &s->ecb);
  if (r < 0)
    goto out_free;
  if (s->ecb.key_len != half) {
    r = -EIO;
    goto out_free;
  }
  /* K1 (first half) en/decrypts the data, K2 encrypts the IV. */
  tmpl[XE_ENC] = ibc_pcipher_new_keyed (&s->ecb, key, true);
  tmpl[XE_DEC] = ibc_pcipher_new_keyed (&s->ecb, key, false);
  tmpl[XE_TWEAK] = ibc_pcipher_new_keyed (&s->ecb, key + half, true);
  for (unsigned i = 0; i < XE_NCTX; i++)
    pc[i] = &s->ecb;
  if (tmpl[XE_ENC] == NULL || tmpl[XE_DEC] == NULL || tmpl[XE_TWEAK] == NULL) {
    for (unsigned i = 0; i < XE_NCTX; i++) {
      if (tmpl[i] != NULL)
        s->ecb.freectx (tmpl[i]);
    }
    r = -EIO;
    goto out_free;
  }
  r = ibc_ctx_pool_init (&s->pool, XE_NCTX, pc, tmpl);
  if (r < 0)
    goto out_free;
  s->dus = dus;
  *ret_state = s;
  return 0;

out_free:
  ecb_xts_destroy (s);
  return r;
}

static int
ecb_xts_crypt (void *state, const struct ibc_dun *dun, const uint8_t *in,
               uint8_t *out, size_t len, bool encrypt)
{
  struct ecb_xts_state *s = state;
  struct ibc_iv128 iv = ibc_iv128_from_dun (dun);
  uint8_t t0[TWEAK_BATCH * XTS_BLOCK];
  size_t units = len / s->dus;
  struct ibc_pool_slot *slot;
  void *dctx, *tctx;
  int r = 0;

  slot = ibc_ctx_pool_get (&s->pool);
  if (slot == NULL)
    return -EIO;
  dctx = ibc_ctx_pool_ctx (&s->pool, slot, encrypt ? XE_ENC : XE_DEC);
  tctx = ibc_ctx_pool_ctx (&s->pool, slot, XE_TWEAK);
  if (dctx == NULL || tctx == NULL) {
    r = -EIO;
    goto out_put;
  }
  for (size_t u = 0; u < units && r == 0; u += TWEAK_BATCH) {
    size_t n = units - u < TWEAK_BATCH ? units - u : TWEAK_BATCH;

    for (size_t j = 0; j < n; j++) {
      ibc_iv128_store (&iv, t0 + j * XTS_BLOCK);
      ibc_iv128_inc (&iv);
    }
    r = ibc_pcipher_crypt (&s->ecb, tctx, true, NULL, t0, t0, n * XTS_BLOCK);
    for (size_t j = 0; j < n && r == 0; j++) {
      size_t off = (u + j) * s->dus;

      xts_mask (in + off, out + off, s->dus, t0 + j * XTS_BLOCK);
      r = ibc_pcipher_crypt (&s->ecb, dctx, encrypt, NULL, out + off, out + off,
                             s->dus);
      xts_mask (out + off, out + off, s->dus, t0 + j * XTS_BLOCK);
    }
  }
  /* The masks are what XTS keeps secret from an observer. */
  OPENSSL_cleanse (t0, sizeof t0);
out_put:
  ibc_ctx_pool_put (&s->pool, slot);
  return r;
}

static int
sm4_xts_setup (const uint8_t *key, size_t key_size, uint32_t dus,
               void **ret_state)
{
  return ecb_xts_setup ("SM4-ECB", key, key_size, dus, ret_state);
}

static int
aes_xts_on_ecb_setup (const uint8_t *key, size_t key_size, uint32_t dus,
                      void **ret_state)
{
  return ecb_xts_setup ("AES-256-ECB", key, key_size, dus, ret_state);
}

const struct ibc_cipher_impl ibc_cipher_impl_aes_xts_on_ecb = {
  .mode = IBC_MODE_AES_256_XTS,
  .setup = aes_xts_on_ecb_setup,
  .destroy = ecb_xts_destroy,
  .crypt = ecb_xts_crypt,
};

const struct ibc_cipher_impl ibc_cipher_impl_sm4_xts = {
  .mode = IBC_MODE_SM4_XTS,
  .setup = sm4_xts_setup,
  .destroy = ecb_xts_destroy,
  .crypt = ecb_xts_crypt,
};
