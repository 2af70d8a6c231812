/* Adiantum backend (XChaCha12 + NHPoly1305 + AES-256), as the kernel's
 * adiantum(xchacha12,aes): blk-crypto mode IBC_MODE_ADIANTUM. */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "adiantum-internal.h"
#include "cipher-internal.h"
#include "cipher-pool.h"
#include "ibcrypt/secmem.h"
#include "endian.h"

#define AES_KEY_SIZE 32
#define BLOCK_SIZE 16
/* Subkeys taken from the XChaCha12 keystream of the user key, in order. */
#define DERIVED_BYTES (AES_KEY_SIZE + 16 + IBC_NHPOLY1305_KEY_BYTES)

/* The AES contexts of a pool slot, keyed with K_E: a context must not be
 * used by two threads at once, and keying one per call would redo the key
 * schedule. */
enum { AES_ENC, AES_DEC, AES_NCTX };

/* Everything here is read-only after setup except the pool's slots.
 * Allocated in locked memory. */
struct adiantum_state {
  uint8_t stream_key[IBC_ADIANTUM_KEY_SIZE]; /* K_S, the user key */
  struct ibc_poly1305_key header_key;        /* K_T: hashes the tweak */
  struct ibc_nhpoly1305_key msg_key;         /* K_L: hashes the bulk */
  struct ibc_pcipher aes;                    /* AES-256-ECB */
  struct ibc_ctx_pool pool;                  /* keyed with K_E */
  uint32_t dus;
};

/* r = a + b, or a - b, as little-endian 128-bit integers mod 2^128. */
static void
le128_add (uint8_t r[16], const uint8_t a[16], const uint8_t b[16])
{
  uint64_t a0 = ibc_load_le64 (a), a1 = ibc_load_le64 (a + 8);
  uint64_t b0 = ibc_load_le64 (b), b1 = ibc_load_le64 (b + 8);
  uint64_t lo = a0 + b0;

  ibc_store_le64 (r, lo);
  ibc_store_le64 (r + 8, a1 + b1 + (lo < a0));
}

static void
le128_sub (uint8_t r[16], const uint8_t a[16], const uint8_t b[16])
{
  uint64_t a0 = ibc_load_le64 (a), a1 = ibc_load_le64 (a + 8);
  uint64_t b0 = ibc_load_le64 (b), b1 = ibc_load_le64 (b + 8);

  ibc_store_le64 (r, a0 - b0);
  ibc_store_le64 (r + 8, a1 - b1 - (a0 < b0));
}

/* Take a pool slot and its AES context for the direction; the caller
 * gives the slot back with ibc_ctx_pool_put.  NULL when out of memory. */
static struct ibc_pool_slot *
aes_take (struct adiantum_state *st, bool encrypt, void **ret_aes)
{
  struct ibc_pool_slot *slot = ibc_ctx_pool_get (&st->pool);
  void *aes;

  if (slot == NULL)
    return NULL;
  aes = ibc_ctx_pool_ctx (&st->pool, slot, encrypt ? AES_ENC : AES_DEC);
  if (aes == NULL) {
    ibc_ctx_pool_put (&st->pool, slot);
    return NULL;
  }
  *ret_aes = aes;
  return slot;
}

/* The header hash H_T: Poly1305 (no mask) of the bulk length in bits as a
 * 16-byte little-endian block, then the tweak. */
static void
hash_header (const struct adiantum_state *st, size_t bulk_len,
             const uint8_t *tweak, size_t tweak_len, uint8_t out[16])
{
  struct ibc_poly1305_state ps;
  uint8_t header[16] = { 0 };

  ibc_store_le64 (header, (uint64_t) bulk_len * 8);
  ibc_poly1305_init (&ps);
  ibc_poly1305_blocks (&ps, &st->header_key, header, 1, true);
  ibc_poly1305_tail (&ps, &st->header_key, tweak, tweak_len);
  ibc_poly1305_emit (&ps, NULL, out);
}

/* One message: L (len - 16 bytes) and R (the last 16).  Encrypt:
 *   P_M = P_R + H(T, P_L);  C_M = AES(P_M);
 *   C_L = P_L ^ XChaCha12(nonce = C_M || 1 || 0...);  C_R = C_M - H(T, C_L)
 * and decrypt runs it backwards.  H(T, L) = H_T(T, |L|) + NHPoly1305(L).
 * The only step that can fail (AES) runs before anything is written. */
static int
crypt_one (const struct adiantum_state *st, void *aes, const uint8_t *tweak,
           size_t tweak_len, const uint8_t *in, uint8_t *out, size_t len,
           bool encrypt)
{
  const size_t bulk = len - BLOCK_SIZE;
  uint8_t hdr[16], h[16], cm[16], pm[16], nonce[IBC_XCHACHA_NONCE_SIZE];
  int r;

  hash_header (st, bulk, tweak, tweak_len, hdr);

  /* in_R + H(T, in_L) is P_M when encrypting, C_M when decrypting.  R is
   * read before anything is written, so in == out is fine. */
  ibc_nhpoly1305 (&st->msg_key, in, bulk, h);
  le128_add (h, h, hdr);
  if (encrypt) {
    le128_add (pm, in + bulk, h);
    r = ibc_pcipher_crypt (&st->aes, aes, true, NULL, pm, cm, BLOCK_SIZE);
  } else {
    le128_add (cm, in + bulk, h);
    r = ibc_pcipher_crypt (&st->aes, aes, false, NULL, cm, pm, BLOCK_SIZE);
  }
  if (r < 0)
    goto out_wipe;

  /* C_M keys the stream over the bulk either way. */
  memcpy (nonce, cm, BLOCK_SIZE);
  memset (nonce + BLOCK_SIZE, 0, sizeof nonce - BLOCK_SIZE);
  nonce[BLOCK_SIZE] = 1;
  ibc_xchacha12_xor (st->stream_key, nonce, 0, in, out, bulk);

  /* out_R = (C_M or P_M) - H(T, out_L). */
  ibc_nhpoly1305 (&st->msg_key, out, bulk, h);
  le128_add (h, h, hdr);
  le128_sub (out + bulk, encrypt ? cm : pm, h);

out_wipe:
  sodium_memzero (cm, sizeof cm);
  sodium_memzero (pm, sizeof pm);
  sodium_memzero (nonce, sizeof nonce);
  sodium_memzero (h, sizeof h);
  return r;
}

/* One message with any tweak. */
int
ibc_adiantum_crypt_message (void *state, const uint8_t *tweak, size_t tweak_len,
                            const uint8_t *in, uint8_t *out, size_t len,
                            bool encrypt)
{
  struct adiantum_state *st = state;
  struct ibc_pool_slot *slot;
  void *aes;
  int r;

  if (len < BLOCK_SIZE)
    return -EINVAL;
  slot = aes_take (st, encrypt, &aes);
  if (slot == NULL)
    return -EIO;
  r = crypt_one (st, aes, tweak, tweak_len, in, out, len, encrypt);
  ibc_ctx_pool_put (&st->pool, slot);
  return r;
}

static void
adiantum_destroy (void *state)
{
  struct adiantum_state *st = state;

  if (st == NULL)
    return;
  /* The providers cleanse the key schedules when freeing the contexts. */
  ibc_ctx_pool_destroy (&st->pool);
  ibc_pcipher_release (&st->aes);
  ibc_secmem_free (st, sizeof *st);
}

static int
adiantum_setup (const uint8_t *key, size_t key_size, uint32_t dus,
                void **ret_state)
{
  static const uint8_t derive_nonce[IBC_XCHACHA_NONCE_SIZE] = { 1 };
  struct adiantum_state *st;
  const struct ibc_pcipher *pc[AES_NCTX];
  void *tmpl[AES_NCTX];
  uint8_t *derived;
  int r = -EIO;

  if (key_size != IBC_ADIANTUM_KEY_SIZE || dus < BLOCK_SIZE)
    return -EINVAL;
  st = ibc_secmem_alloc (sizeof *st);
  if (st == NULL)
    return -errno;
  derived = ibc_secmem_alloc (DERIVED_BYTES);
  if (derived == NULL) {
    r = -errno;
    goto err_state;
  }

  /* K_E || K_T || K_L = XChaCha12_K(nonce 1 || 0^184) over zeros. */
  memcpy (st->stream_key, key, IBC_ADIANTUM_KEY_SIZE);
  ibc_xchacha12_xor (st->stream_key, derive_nonce, 0, derived, derived,
                     DERIVED_BYTES);
  ibc_poly1305_setkey (&st->header_key, derived + AES_KEY_SIZE);
  ibc_nhpoly1305_setkey (&st->msg_key, derived + AES_KEY_SIZE + 16);
  st->dus = dus;

  /* K_E lives on only in the key schedules of the pool's templates. */
  if (ibc_pcipher_fetch ("AES-256-ECB", &st->aes) < 0
      || st->aes.key_len != AES_KEY_SIZE)
    goto err_derived;
  tmpl[AES_ENC] = ibc_pcipher_new_keyed (&st->aes, derived, true);
  tmpl[AES_DEC] = ibc_pcipher_new_keyed (&st->aes, derived, false);
  pc[AES_ENC] = pc[AES_DEC] = &st->aes;
  if (tmpl[AES_ENC] == NULL || tmpl[AES_DEC] == NULL) {
    for (unsigned i = 0; i < AES_NCTX; i++) {
      if (tmpl[i] != NULL)
        pc[i]->freectx (tmpl[i]);
    }
    goto err_derived;
  }
  ibc_secmem_free (derived, DERIVED_BYTES);
  if (ibc_ctx_pool_init (&st->pool, AES_NCTX, pc, tmpl) < 0)
    goto err_state;
  *ret_state = st;
  return 0;

err_derived:
  ibc_secmem_free (derived, DERIVED_BYTES);
err_state:
  adiantum_destroy (st);
  return r;
}

static int
adiantum_crypt (void *state, const struct ibc_dun *dun, const uint8_t *in,
                uint8_t *out, size_t len, bool encrypt)
{
  struct adiantum_state *st = state;
  struct ibc_dun d = *dun;
  uint8_t tweak[IBC_ADIANTUM_TWEAK_SIZE];
  struct ibc_pool_slot *slot;
  void *aes;
  int r = 0;

  if (len == 0 || len % st->dus != 0)
    return -EINVAL;
  slot = aes_take (st, encrypt, &aes);
  if (slot == NULL)
    return -EIO;

  for (size_t off = 0; off < len; off += st->dus) {
    /* The tweak is the DUN as a 256-bit little-endian integer. */
    ibc_dun_to_iv (&d, tweak, sizeof tweak);
    r = crypt_one (st, aes, tweak, sizeof tweak, in + off, out + off, st->dus,
                   encrypt);
    if (r < 0)
      break;
    ibc_dun_add (&d, 1);
  }

  ibc_ctx_pool_put (&st->pool, slot);
  return r;
}

const struct ibc_cipher_impl ibc_cipher_impl_adiantum = {
  .mode = IBC_MODE_ADIANTUM,
  .setup = adiantum_setup,
  .destroy = adiantum_destroy,
  .crypt = adiantum_crypt,
};
