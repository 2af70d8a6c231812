/* Unit tests: the cipher engine and its AES-XTS, AES-CBC-ESSIV and SM4-XTS
 * backends, against published vectors and through the public API. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cipher-internal.h"
#include "cipher-pool.h"
#include "ibc-check.h"
#include "ibcrypt/cipher.h"
#include "ibcrypt/key.h"

/* Decode hex (whitespace-free) into out; returns the byte count. */
static size_t
unhex (const char *hex, uint8_t *out, size_t max)
{
  size_t n = strlen (hex) / 2;

  ck_assert_uint_le (n, max);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    ck_assert_int_eq (sscanf (hex + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t) v;
  }
  return n;
}

/* Deterministic filler bytes. */
static void
fill (uint8_t *p, size_t len, unsigned seed)
{
  uint32_t x = seed * 2654435761u + 1;

  for (size_t i = 0; i < len; i++) {
    x = x * 1103515245u + 12345u;
    p[i] = (uint8_t) (x >> 16);
  }
}

static struct ibc_cipher *
new_cipher (enum ibc_mode mode, uint32_t dus, const char *key_hex)
{
  uint8_t key[64];
  size_t n = unhex (key_hex, key, sizeof key);
  struct ibc_cipher *c = NULL;

  ck_assert_int_eq (ibc_cipher_new_raw (mode, dus, key, n, &c), 0);
  ck_assert_ptr_nonnull (c);
  return c;
}

/* Encrypt pt at dun and check ct, out of place and in place, and back. */
static void
check_kat (struct ibc_cipher *c, const struct ibc_dun *dun, const uint8_t *pt,
           const uint8_t *ct, size_t len)
{
  uint8_t *buf = malloc (len), *buf2 = malloc (len);

  ck_assert_int_eq (ibc_cipher_encrypt (c, dun, pt, buf, len), 0);
  ck_assert_mem_eq (buf, ct, len);
  ck_assert_int_eq (ibc_cipher_decrypt (c, dun, buf, buf2, len), 0);
  ck_assert_mem_eq (buf2, pt, len);
  memcpy (buf, pt, len);
  ck_assert_int_eq (ibc_cipher_encrypt (c, dun, buf, buf, len), 0);
  ck_assert_mem_eq (buf, ct, len);
  ck_assert_int_eq (ibc_cipher_decrypt (c, dun, buf, buf, len), 0);
  ck_assert_mem_eq (buf, pt, len);
  free (buf);
  free (buf2);
}

#include "xts-vectors.h"

START_TEST (test_aes_xts_ieee1619)
{
  struct ibc_cipher *c = new_cipher (IBC_MODE_AES_256_XTS, 512, ieee_key);
  uint8_t pt[512], ct[512];

  for (unsigned i = 0; i < 512; i++)
    pt[i] = (uint8_t) i;
  ck_assert_uint_eq (ibc_cipher_data_unit_size (c), 512);
  ck_assert_int_eq (ibc_cipher_mode (c), IBC_MODE_AES_256_XTS);
  for (size_t v = 0; v < sizeof ieee_vec / sizeof ieee_vec[0]; v++) {
    struct ibc_dun dun = ibc_dun_from_u64 (ieee_vec[v].seq);

    unhex (ieee_vec[v].ct, ct, sizeof ct);
    check_kat (c, &dun, pt, ct, sizeof pt);
  }
  ibc_cipher_free (c);
}
END_TEST

/* A vector's data unit in the middle of a longer buffer: the DUN must step
 * by one per data unit (0xff00 + 0xff = vector 11's 0xffff; 0xfffffffff0 +
 * 15 = vector 14's 0xffffffffff). */
START_TEST (test_aes_xts_ieee1619_in_buffer)
{
  struct ibc_cipher *c = new_cipher (IBC_MODE_AES_256_XTS, 512, ieee_key);
  static const struct {
    unsigned vec;
    uint64_t start;
    unsigned units;
  } cases[] = { { 1, 0xff00, 256 }, { 2, 0xfffffffff0ULL, 16 } };

  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    size_t units = cases[k].units, len = units * 512;
    size_t at = (ieee_vec[cases[k].vec].seq - cases[k].start) * 512;
    uint8_t *buf = calloc (1, len), ct[512];
    struct ibc_dun dun = ibc_dun_from_u64 (cases[k].start);

    for (unsigned i = 0; i < 512; i++)
      buf[at + i] = (uint8_t) i;
    unhex (ieee_vec[cases[k].vec].ct, ct, sizeof ct);
    ck_assert_int_eq (ibc_cipher_encrypt (c, &dun, buf, buf, len), 0);
    ck_assert_mem_eq (buf + at, ct, 512);
    free (buf);
  }
  ibc_cipher_free (c);
}
END_TEST

/* Kernel essiv_aes_cbc_tv_template, its AES-128 entries; .iv there is the
 * pre-ESSIV IV, i.e. the little-endian DUN. */
START_TEST (test_essiv_kernel_vectors)
{
  struct ibc_cipher *c;
  uint8_t pt[32], ct[32];
  struct ibc_dun dun;

  c = new_cipher (IBC_MODE_AES_128_CBC_ESSIV, 16,
                  "06a9214036b8a15b512e03d534120006");
  dun = ibc_dun_from_u64 (0x30b49e9d42baaf3dULL);
  unhex ("fa59e75f415665c336ca6b72109f8cd4", ct, sizeof ct);
  check_kat (c, &dun, (const uint8_t *) "Single block msg", ct, 16);
  ibc_cipher_free (c);

  c = new_cipher (IBC_MODE_AES_128_CBC_ESSIV, 32,
                  "c286696d887c9aa0611bbb3e2025a45a");
  dun = ibc_dun_from_u64 (0x283d096d99172e56ULL);
  for (unsigned i = 0; i < 32; i++)
    pt[i] = (uint8_t) i;
  unhex ("c8599afe79e67b20067d550a5ec7b5a7"
         "0b9c80d215a1b86dc6ab7b65d9fd88eb",
         ct, sizeof ct);
  check_kat (c, &dun, pt, ct, 32);
  ibc_cipher_free (c);
}
END_TEST

/* SM4-XTS: the kernel's sm4_xts_tv_template entry (32-byte key), and the
 * whole-block part of OpenSSL's SM4-XTS vector with XTSStandard = IEEE
 * (GB/T 17964-2021 example key and IV). */
START_TEST (test_sm4_xts_vectors)
{
  struct ibc_cipher *c;
  uint8_t pt[32], ct[32];
  struct ibc_dun dun = ibc_dun_from_u64 (0x3333333333ULL);

  c = new_cipher (
      IBC_MODE_SM4_XTS, 32,
      "1111111111111111111111111111111122222222222222222222222222222222");
  memset (pt, 0x44, sizeof pt);
  unhex ("a74d726c11196a32be04e001ff29d0c7"
         "932f9f3ec29bfcb64dd17f63cbd3ea31",
         ct, sizeof ct);
  check_kat (c, &dun, pt, ct, 32);
  ibc_cipher_free (c);

  c = new_cipher (
      IBC_MODE_SM4_XTS, 32,
      "2b7e151628aed2a6abf7158809cf4f3c000102030405060708090a0b0c0d0e0f");
  dun.w[0] = 0xf7f6f5f4f3f2f1f0ULL;
  dun.w[1] = 0xfffefdfcfbfaf9f8ULL;
  unhex ("6bc1bee22e409f96e93d7e117393172a"
         "ae2d8a571e03ac9c9eb76fac45af8e51",
         pt, sizeof pt);
  unhex ("e9538251c71d7b80bbe4483fef497bd1"
         "b3db1a3e60408c575d63ff7db39f8326",
         ct, sizeof ct);
  check_kat (c, &dun, pt, ct, 32);
  ibc_cipher_free (c);
}
END_TEST

/* The SM4-XTS construction (tweak doubling across long data units, tweak
 * batches, DUN carries), run on AES-256-ECB, against OpenSSL's XTS. */
START_TEST (test_xts_construction_vs_openssl)
{
  const struct ibc_cipher_impl *impl = &ibc_cipher_impl_aes_xts_on_ecb;
  static const struct ibc_dun starts[] = {
    { { 0, 0, 0, 0 } },
    { { UINT64_MAX - 20, 77, 0, 0 } },
    { { 0x0123456789abcdefULL, UINT64_MAX, 0, 0 } },
  };
  const uint32_t dus = _i % 2 ? 4096 : 512;
  const size_t units = 40, len = units * dus; /* > one tweak batch */
  uint8_t key[64], *pt = malloc (len), *a = malloc (len), *b = malloc (len);
  struct ibc_cipher *c = NULL;
  void *state = NULL;

  fill (key, sizeof key, 7 + (unsigned) _i);
  fill (pt, len, 8);
  ck_assert_int_eq (
      ibc_cipher_new_raw (IBC_MODE_AES_256_XTS, dus, key, sizeof key, &c), 0);
  ck_assert_int_eq (impl->setup (key, sizeof key, dus, &state), 0);
  for (size_t k = 0; k < sizeof starts / sizeof starts[0]; k++) {
    ck_assert_int_eq (ibc_cipher_encrypt (c, &starts[k], pt, a, len), 0);
    ck_assert_int_eq (impl->crypt (state, &starts[k], pt, b, len, true), 0);
    ck_assert_mem_eq (a, b, len);
    ck_assert_int_eq (impl->crypt (state, &starts[k], b, b, len, false), 0);
    ck_assert_mem_eq (b, pt, len);
  }
  impl->destroy (state);
  ibc_cipher_free (c);
  free (pt);
  free (a);
  free (b);
}
END_TEST

/* One case per mode for the engine-level properties, with a key that has
 * distinct XTS halves. */
static const struct {
  enum ibc_mode mode;
  size_t key_size;
} all_modes[] = {
  { IBC_MODE_AES_256_XTS, 64 },
  { IBC_MODE_AES_128_CBC_ESSIV, 16 },
  { IBC_MODE_ADIANTUM, 32 },
  { IBC_MODE_SM4_XTS, 32 },
};
#define N_MODES (sizeof all_modes / sizeof all_modes[0])

static struct ibc_cipher *
mode_cipher (unsigned m, uint32_t dus)
{
  uint8_t key[64];
  struct ibc_cipher *c = NULL;

  for (unsigned i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) (i * 37 + m + 1);
  ck_assert_int_eq (ibc_cipher_new_raw (all_modes[m].mode, dus, key,
                                        all_modes[m].key_size, &c),
                    0);
  return c;
}

/* Several data units in one call equal one call per data unit with
 * consecutive DUNs, including a carry from the low word into the next
 * (and, for Adiantum's 32-byte IV, from the second word into the third). */
START_TEST (test_multi_unit_equals_per_unit)
{
  static const struct ibc_dun starts[] = {
    { { 7, 0, 0, 0 } },
    { { UINT64_MAX - 1, 5, 0, 0 } },
    { { UINT64_MAX - 2, UINT64_MAX, 9, 0 } },
  };
  const uint32_t dus = _i % 2 ? 4096 : 512;
  const size_t units = 6, len = units * dus;

  for (unsigned m = 0; m < N_MODES; m++) {
    struct ibc_cipher *c = mode_cipher (m, dus);
    uint8_t *pt = malloc (len), *whole = malloc (len), *one = malloc (dus);

    fill (pt, len, m);
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
      ck_assert_int_eq (ibc_cipher_encrypt (c, &starts[s], pt, whole, len), 0);
      for (size_t u = 0; u < units; u++) {
        struct ibc_dun d = starts[s];

        ibc_dun_add (&d, u);
        ck_assert_int_eq (ibc_cipher_encrypt (c, &d, pt + u * dus, one, dus),
                          0);
        ck_assert_mem_eq (one, whole + u * dus, dus);
      }
      /* Decryption inverts, in place. */
      ck_assert_int_eq (ibc_cipher_decrypt (c, &starts[s], whole, whole, len),
                        0);
      ck_assert_mem_eq (whole, pt, len);
    }
    free (pt);
    free (whole);
    free (one);
    ibc_cipher_free (c);
  }
}
END_TEST

/* The 16-byte-IV modes see only the low 128 bits of the DUN. */
START_TEST (test_iv_truncation)
{
  static const struct ibc_dun lo = { { 3, 4, 0, 0 } }, hi = { { 3, 4, 1, 2 } };
  uint8_t pt[512], a[512], b[512];

  fill (pt, sizeof pt, 99);
  for (unsigned m = 0; m < N_MODES; m++) {
    struct ibc_cipher *c = mode_cipher (m, 512);

    ck_assert_int_eq (ibc_cipher_encrypt (c, &lo, pt, a, sizeof pt), 0);
    ck_assert_int_eq (ibc_cipher_encrypt (c, &hi, pt, b, sizeof pt), 0);
    if (all_modes[m].mode == IBC_MODE_ADIANTUM)
      ck_assert (memcmp (a, b, sizeof a) != 0);
    else
      ck_assert_mem_eq (a, b, sizeof a);
    ibc_cipher_free (c);
  }
}
END_TEST

START_TEST (test_errors)
{
  uint8_t key[64] = { 0 }, buf[1024] = { 0 }, out[1024];
  struct ibc_cipher *c = (struct ibc_cipher *) &key; /* must stay untouched */
  struct ibc_dun dun = ibc_dun_from_u64 (0);

  for (unsigned i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) i;
  for (unsigned m = 0; m < N_MODES; m++) {
    enum ibc_mode mode = all_modes[m].mode;
    size_t ks = all_modes[m].key_size;

    ck_assert_int_eq (ibc_cipher_new_raw (mode, 512, key, ks - 1, &c), -EINVAL);
    ck_assert_int_eq (ibc_cipher_new_raw (mode, 512, key, ks + 1, &c), -EINVAL);
    ck_assert_int_eq (ibc_cipher_new_raw (mode, 512, key, 0, &c), -EINVAL);
    ck_assert_int_eq (ibc_cipher_new_raw (mode, 0, key, ks, &c), -EINVAL);
    ck_assert_int_eq (ibc_cipher_new_raw (mode, 8, key, ks, &c), -EINVAL);
    ck_assert_int_eq (ibc_cipher_new_raw (mode, 513, key, ks, &c), -EINVAL);
    ck_assert_int_eq (ibc_cipher_new_raw (mode, 48, key, ks, &c), -EINVAL);
    ck_assert_ptr_eq (c, (struct ibc_cipher *) &key);
  }
  ck_assert_int_eq (ibc_cipher_new_raw (IBC_MODE_INVALID, 512, key, 64, &c),
                    -EINVAL);
  ck_assert_int_eq (ibc_cipher_new_raw (IBC_MODE_MAX, 512, key, 64, &c),
                    -EINVAL);

  /* XTS keys whose halves are equal (forbidden weak keys in the kernel's
   * fallback; OpenSSL refuses them too). */
  memset (key, 0x5a, sizeof key);
  ck_assert_int_eq (ibc_cipher_new_raw (IBC_MODE_AES_256_XTS, 512, key, 64, &c),
                    -EINVAL);
  ck_assert_int_eq (ibc_cipher_new_raw (IBC_MODE_SM4_XTS, 512, key, 32, &c),
                    -EINVAL);
  ck_assert_ptr_eq (c, (struct ibc_cipher *) &key);

  /* Lengths: not a multiple of the data unit size; zero is a no-op. */
  for (unsigned m = 0; m < N_MODES; m++) {
    c = mode_cipher (m, 512);
    memset (out, 0xee, sizeof out);
    ck_assert_int_eq (ibc_cipher_encrypt (c, &dun, buf, out, 513), -EINVAL);
    ck_assert_int_eq (ibc_cipher_decrypt (c, &dun, buf, out, 256), -EINVAL);
    ck_assert_int_eq (ibc_cipher_encrypt (c, &dun, buf, out, 1000), -EINVAL);
    ck_assert_int_eq (ibc_cipher_encrypt (c, &dun, buf, out, 0), 0);
    ck_assert_int_eq (ibc_cipher_decrypt (c, &dun, buf, out, 0), 0);
    for (unsigned i = 0; i < sizeof out; i++)
      ck_assert_uint_eq (out[i], 0xee);
    ck_assert_int_eq (ibc_cipher_encrypt (c, NULL, buf, out, 512), -EINVAL);
    ibc_cipher_free (c);
  }
  ibc_cipher_free (NULL);
}
END_TEST

/* Through ibc_key: raw keys give the same cipher as the raw bytes;
 * hardware-wrapped keys are not for this layer. */
START_TEST (test_from_key)
{
  struct ibc_crypto_config cfg = {
    .mode = IBC_MODE_AES_256_XTS,
    .data_unit_size = 512,
    .dun_bytes = 8,
    .key_type = IBC_KEY_TYPE_RAW,
  };
  struct ibc_key *key = NULL;
  struct ibc_cipher *c = NULL, *sentinel = (struct ibc_cipher *) &cfg;
  uint8_t bytes[64], pt[512], ct[512];
  struct ibc_dun dun = ibc_dun_from_u64 (0xff);

  unhex (ieee_key, bytes, sizeof bytes);
  for (unsigned i = 0; i < 512; i++)
    pt[i] = (uint8_t) i;
  ck_assert_int_eq (ibc_key_new (&cfg, bytes, sizeof bytes, &key), 0);
  ck_assert_int_eq (ibc_cipher_new (key, &c), 0);
  ck_assert_int_eq (ibc_cipher_encrypt (c, &dun, pt, ct, sizeof pt), 0);
  unhex (ieee_vec[0].ct, pt, sizeof pt);
  ck_assert_mem_eq (ct, pt, sizeof ct);
  ibc_cipher_free (c);
  ibc_key_unref (key);

  cfg.key_type = IBC_KEY_TYPE_HW_WRAPPED;
  ck_assert_int_eq (ibc_key_new (&cfg, bytes, sizeof bytes, &key), 0);
  c = sentinel;
  ck_assert_int_eq (ibc_cipher_new (key, &c), -EOPNOTSUPP);
  ck_assert_ptr_eq (c, sentinel);
  ibc_key_unref (key);
  ck_assert_int_eq (ibc_cipher_new (NULL, &c), -EINVAL);
}
END_TEST

/* Four threads share one cipher, each with its own DUNs and buffers, and
 * check every result against single-threaded output. */
#define CONC_THREADS 4
#define CONC_UNITS 16
#define CONC_DUS 512
#define CONC_ROUNDS 150

struct conc_arg {
  struct ibc_cipher *c;
  struct ibc_dun dun;
  const uint8_t *pt, *ct;
  int failures;
};

static void *
conc_thread (void *p)
{
  struct conc_arg *a = p;
  const size_t len = CONC_UNITS * CONC_DUS;
  uint8_t *buf = malloc (len);

  for (int r = 0; r < CONC_ROUNDS; r++) {
    if (ibc_cipher_encrypt (a->c, &a->dun, a->pt, buf, len) != 0
        || memcmp (buf, a->ct, len) != 0)
      a->failures++;
    if (ibc_cipher_decrypt (a->c, &a->dun, buf, buf, len) != 0
        || memcmp (buf, a->pt, len) != 0)
      a->failures++;
  }
  free (buf);
  return NULL;
}

START_TEST (test_concurrency)
{
  const size_t len = CONC_UNITS * CONC_DUS;

  for (unsigned m = 0; m < N_MODES; m++) {
    struct ibc_cipher *c = mode_cipher (m, CONC_DUS);
    struct conc_arg args[CONC_THREADS];
    pthread_t th[CONC_THREADS];
    uint8_t *pt = malloc (CONC_THREADS * len),
            *ct = malloc (CONC_THREADS * len);

    for (int t = 0; t < CONC_THREADS; t++) {
      args[t] = (struct conc_arg){
        .c = c,
        .dun = { { 1000 * (uint64_t) t + UINT64_MAX - 4000, 3, 0, 0 } },
        .pt = pt + t * len,
        .ct = ct + t * len,
      };
      fill (pt + t * len, len, 100 * m + (unsigned) t);
      ck_assert_int_eq (
          ibc_cipher_encrypt (c, &args[t].dun, args[t].pt, ct + t * len, len),
          0);
    }
    for (int t = 0; t < CONC_THREADS; t++)
      ck_assert_int_eq (pthread_create (&th[t], NULL, conc_thread, &args[t]),
                        0);
    for (int t = 0; t < CONC_THREADS; t++) {
      pthread_join (th[t], NULL);
      ck_assert_int_eq (args[t].failures, 0);
    }
    free (pt);
    free (ct);
    ibc_cipher_free (c);
  }
}
END_TEST

/* The context pool hands out distinct slots and, once all are taken, a
 * working temporary one. */
START_TEST (test_pool_exhaustion)
{
  struct ibc_pcipher pc;
  struct ibc_ctx_pool pool;
  struct ibc_pool_slot *held[IBC_POOL_SLOTS], *extra;
  const struct ibc_pcipher *pcs[1];
  void *tmpl[1];
  uint8_t key[16] = { 1, 2, 3 }, in[32] = { 0 }, a[32], b[32];

  ck_assert_int_eq (ibc_pcipher_fetch ("AES-128-ECB", &pc), 0);
  pcs[0] = &pc;
  tmpl[0] = ibc_pcipher_new_keyed (&pc, key, true);
  ck_assert_ptr_nonnull (tmpl[0]);
  ck_assert_int_eq (ibc_ctx_pool_init (&pool, 1, pcs, tmpl), 0);
  for (int i = 0; i < IBC_POOL_SLOTS; i++) {
    held[i] = ibc_ctx_pool_get (&pool);
    ck_assert_ptr_nonnull (held[i]);
    ck_assert (!held[i]->temporary);
    for (int j = 0; j < i; j++)
      ck_assert_ptr_ne (held[i], held[j]);
  }
  ck_assert_int_eq (ibc_pcipher_crypt (&pc,
                                       ibc_ctx_pool_ctx (&pool, held[0], 0),
                                       true, NULL, in, a, sizeof in),
                    0);
  extra = ibc_ctx_pool_get (&pool);
  ck_assert_ptr_nonnull (extra);
  ck_assert (extra->temporary);
  ck_assert_int_eq (ibc_pcipher_crypt (&pc, ibc_ctx_pool_ctx (&pool, extra, 0),
                                       true, NULL, in, b, sizeof in),
                    0);
  ck_assert_mem_eq (a, b, sizeof a);
  ibc_ctx_pool_put (&pool, extra);
  for (int i = 0; i < IBC_POOL_SLOTS; i++)
    ibc_ctx_pool_put (&pool, held[i]);
  /* After release, the slot this thread used last is found first. */
  extra = ibc_ctx_pool_get (&pool);
  ck_assert_ptr_eq (extra, held[IBC_POOL_SLOTS - 1]);
  ibc_ctx_pool_put (&pool, extra);
  ibc_ctx_pool_destroy (&pool);
  ibc_pcipher_release (&pc);
}
END_TEST

static Suite *
cipher_suite (void)
{
  Suite *s = suite_create ("cipher");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_aes_xts_ieee1619);
  tcase_add_test (tc, test_aes_xts_ieee1619_in_buffer);
  tcase_add_test (tc, test_essiv_kernel_vectors);
  tcase_add_test (tc, test_sm4_xts_vectors);
  tcase_add_loop_test (tc, test_xts_construction_vs_openssl, 0, 2);
  tcase_add_loop_test (tc, test_multi_unit_equals_per_unit, 0, 2);
  tcase_add_test (tc, test_iv_truncation);
  tcase_add_test (tc, test_errors);
  tcase_add_test (tc, test_from_key);
  tcase_add_test (tc, test_concurrency);
  tcase_add_test (tc, test_pool_exhaustion);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (cipher_suite)
