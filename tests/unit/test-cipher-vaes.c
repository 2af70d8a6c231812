/* Unit tests: the VAES/AVX-512 AES-256-XTS path (cipher-xts-vaes.c) against
 * published vectors and, byte for byte, against the OpenSSL path.  On a CPU
 * without VAES (or under valgrind, which lacks AVX-512) every test passes
 * after saying it skipped. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cipher-internal.h"
#include "cipher-xts-vaes.h"
#include "ibc-check.h"
#include "ibcrypt/cipher.h"
#include "ibcrypt/secmem.h"

/* False (with one message) where the VAES path cannot run. */
static bool
have_vaes (void)
{
  static bool told;

  if (ibc_xts_vaes_usable ())
    return true;
  if (!told)
    printf ("test-cipher-vaes: VAES/AVX-512 path not usable here (CPU, "
            "valgrind or IBCRYPT_NO_VAES): checks skipped\n");
  told = true;
  return false;
}

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

/* xorshift64*: fast, seedable, good enough for test data. */
static uint64_t rng_state;

static uint64_t
rng (void)
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

static void
rng_fill (uint8_t *p, size_t len)
{
  size_t i = 0;

  for (; i + 8 <= len; i += 8) {
    uint64_t v = rng ();
    memcpy (p + i, &v, 8);
  }
  for (; i < len; i++)
    p[i] = (uint8_t) rng ();
}

/* A cipher on the VAES path (force == false) or the OpenSSL path. */
static struct ibc_cipher *
new_cipher_on (bool openssl, uint32_t dus, const uint8_t *key)
{
  struct ibc_cipher *c = NULL;

  ibc_cipher_xts_force_openssl (openssl);
  ck_assert_str_eq (ibc_cipher_xts_impl_name (),
                    openssl ? "openssl" : "vaes-avx512");
  ck_assert_int_eq (ibc_cipher_new_raw (IBC_MODE_AES_256_XTS, dus, key, 64, &c),
                    0);
  ibc_cipher_xts_force_openssl (false);
  return c;
}

/* The IEEE 1619 vectors; test-cipher.c checks the OpenSSL path with
 * them. */
#include "xts-vectors.h"

START_TEST (test_ieee1619)
{
  uint8_t key[64], pt[512], ct[512], ref[512], buf[512], want[512];
  struct ibc_cipher *v, *o;

  if (!have_vaes ())
    return;
  unhex (ieee_key, key, sizeof key);
  for (unsigned i = 0; i < sizeof pt; i++)
    pt[i] = (uint8_t) i;
  v = new_cipher_on (false, 512, key);
  o = new_cipher_on (true, 512, key);
  for (size_t k = 0; k < sizeof ieee_vec / sizeof ieee_vec[0]; k++) {
    struct ibc_dun dun = ibc_dun_from_u64 (ieee_vec[k].seq);

    ck_assert_int_eq (ibc_cipher_encrypt (v, &dun, pt, ct, sizeof pt), 0);
    unhex (ieee_vec[k].ct, want, sizeof want);
    ck_assert_mem_eq (ct, want, sizeof want);
    ck_assert_int_eq (ibc_cipher_encrypt (o, &dun, pt, ref, sizeof pt), 0);
    ck_assert_mem_eq (ct, ref, sizeof ct);
    /* Back, out of place and in place. */
    ck_assert_int_eq (ibc_cipher_decrypt (v, &dun, ct, buf, sizeof ct), 0);
    ck_assert_mem_eq (buf, pt, sizeof pt);
    ck_assert_int_eq (ibc_cipher_decrypt (v, &dun, ct, ct, sizeof ct), 0);
    ck_assert_mem_eq (ct, pt, sizeof pt);
  }
  ibc_cipher_free (v);
  ibc_cipher_free (o);
}
END_TEST

/* The vectors' data units in the middle of longer buffers: 0xff00 + 0xff
 * is vector 11's 0xffff, 0xfffffffff0 + 15 vector 14's 0xffffffffff. */
START_TEST (test_ieee1619_in_buffer)
{
  static const struct {
    unsigned vec;
    uint64_t start;
    unsigned units;
  } cases[] = { { 1, 0xff00, 256 }, { 2, 0xfffffffff0ULL, 16 } };
  uint8_t key[64], want[512];
  struct ibc_cipher *v;

  if (!have_vaes ())
    return;
  unhex (ieee_key, key, sizeof key);
  v = new_cipher_on (false, 512, key);
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    size_t len = cases[k].units * 512;
    size_t at = (ieee_vec[cases[k].vec].seq - cases[k].start) * 512;
    uint8_t *buf = calloc (1, len);
    struct ibc_dun dun = ibc_dun_from_u64 (cases[k].start);

    for (unsigned i = 0; i < 512; i++)
      buf[at + i] = (uint8_t) i;
    ck_assert_int_eq (ibc_cipher_encrypt (v, &dun, buf, buf, len), 0);
    unhex (ieee_vec[cases[k].vec].ct, want, sizeof want);
    ck_assert_mem_eq (buf + at, want, sizeof want);
    free (buf);
  }
  ibc_cipher_free (v);
}
END_TEST

/* Equal key halves are refused on this path too (the engine's check). */
START_TEST (test_weak_key)
{
  uint8_t key[64];
  struct ibc_cipher *c = NULL;

  if (!have_vaes ())
    return;
  memset (key, 0x5a, sizeof key);
  ck_assert_int_eq (ibc_cipher_new_raw (IBC_MODE_AES_256_XTS, 512, key, 64, &c),
                    -EINVAL);
  ck_assert_ptr_null (c);
}
END_TEST

/* Random cases: VAES == OpenSSL byte for byte, both directions, in place
 * and out of place at odd alignments.  Data unit sizes reach each code path
 * and their combinations: 16 blocks at a time, 4 at a time, 1 to 3 masked
 * (48, 80, 272 and 336 bytes are not powers of two, hence the calls to the
 * backend directly: the engine refuses them).  DUNs straddle the carry into
 * the second 64-bit word and the wrap of the 128-bit IV. */
#define RANDOM_CASES 2000
#define MAX_UNITS 17

static void
random_dun (struct ibc_dun *dun)
{
  for (int i = 0; i < IBC_DUN_WORDS; i++)
    dun->w[i] = rng ();
  switch (rng () % 4) {
  case 0:
    dun->w[0] = UINT64_MAX - rng () % MAX_UNITS;
    break;
  case 1:
    dun->w[0] = UINT64_MAX - rng () % MAX_UNITS;
    dun->w[1] = UINT64_MAX;
    break;
  case 2:
    dun->w[0] = rng () % 1000;
    dun->w[1] = 0;
    break;
  }
}

START_TEST (test_random_vs_openssl)
{
  static const uint32_t sizes[]
      = { 16, 32, 48, 64, 80, 128, 272, 336, 512, 4096, 65536 };
  const size_t nsizes = sizeof sizes / sizeof sizes[0];
  const struct ibc_cipher_impl *impl = &ibc_cipher_impl_aes_xts;
  const size_t max = 65536 * MAX_UNITS + 64;
  uint8_t *pt = malloc (max), *a = malloc (max), *b = malloc (max);
  const char *seed_env = getenv ("IBC_TEST_SEED");
  uint64_t seed = seed_env != NULL ? strtoull (seed_env, NULL, 0) : 0x1619;
  int cases = getenv ("IBC_TEST_QUICK") != NULL ? 200 : RANDOM_CASES;

  if (!have_vaes ())
    goto out;
  rng_state = seed | 1;
  for (int n = 0; n < cases; n++) {
    /* Large data units are rarer, to keep the run short. */
    uint32_t dus = sizes[rng () % nsizes];
    size_t units = 1 + rng () % (dus == 65536 ? 4 : MAX_UNITS);
    size_t len = units * dus;
    size_t ia = rng () % 64, ib = rng () % 64;
    bool in_place = rng () % 2;
    uint8_t key[64];
    void *sv = NULL, *so = NULL;
    struct ibc_dun dun;

    rng_fill (key, sizeof key);
    random_dun (&dun);
    rng_fill (pt + ia, len);
    ibc_cipher_xts_force_openssl (true);
    ck_assert_int_eq (impl->setup (key, sizeof key, dus, &so), 0);
    ibc_cipher_xts_force_openssl (false);
    ck_assert_int_eq (impl->setup (key, sizeof key, dus, &sv), 0);

    /* Encrypt: OpenSSL out of place into b, VAES into a. */
    ck_assert_int_eq (impl->crypt (so, &dun, pt + ia, b + ib, len, true), 0);
    if (in_place) {
      memcpy (a + ib, pt + ia, len);
      ck_assert_int_eq (impl->crypt (sv, &dun, a + ib, a + ib, len, true), 0);
    } else {
      ck_assert_int_eq (impl->crypt (sv, &dun, pt + ia, a + ib, len, true), 0);
    }
    if (memcmp (a + ib, b + ib, len) != 0)
      ck_abort_msg ("encrypt differs: case %d seed %#llx dus %u units %zu "
                    "dun %016llx:%016llx",
                    n, (unsigned long long) seed, dus, units,
                    (unsigned long long) dun.w[1],
                    (unsigned long long) dun.w[0]);
    /* Decrypt the OpenSSL ciphertext with VAES. */
    if (in_place) {
      ck_assert_int_eq (impl->crypt (sv, &dun, a + ib, a + ib, len, false), 0);
      ck_assert_mem_eq (a + ib, pt + ia, len);
    } else {
      ck_assert_int_eq (impl->crypt (sv, &dun, b + ib, a + ia, len, false), 0);
      ck_assert_mem_eq (a + ia, pt + ia, len);
    }
    impl->destroy (sv);
    impl->destroy (so);
  }
out:
  free (pt);
  free (a);
  free (b);
}
END_TEST

/* Data units of 1 to 3 blocks (masked loads and stores): exactly len
 * bytes are written, and they are OpenSSL's. */
START_TEST (test_bounds)
{
  const struct ibc_cipher_impl *impl = &ibc_cipher_impl_aes_xts;
  uint8_t key[64], in[3 * 48 + 32], out[3 * 48 + 32], ref[3 * 48];
  struct ibc_xts_vaes *x = NULL;
  struct ibc_dun dun = ibc_dun_from_u64 (5);

  if (!have_vaes ())
    return;
  for (unsigned i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) (i * 7 + 1);
  memset (in, 0x11, sizeof in);
  for (uint32_t dus = 16; dus <= 48; dus += 16) {
    void *so = NULL;

    ibc_cipher_xts_force_openssl (true);
    ck_assert_int_eq (impl->setup (key, sizeof key, dus, &so), 0);
    ibc_cipher_xts_force_openssl (false);
    ck_assert_int_eq (impl->crypt (so, &dun, in + 16, ref, 3 * dus, true), 0);
    impl->destroy (so);
    ck_assert_int_eq (ibc_xts_vaes_new (key, dus, &x), 0);
    memset (out, 0xee, sizeof out);
    ibc_xts_vaes_crypt (x, &dun, in + 16, out + 16, 3 * dus, true);
    for (unsigned i = 0; i < 16; i++)
      ck_assert_uint_eq (out[i], 0xee);
    ck_assert_mem_eq (out + 16, ref, 3 * dus);
    for (size_t i = 16 + 3 * dus; i < sizeof out; i++)
      ck_assert_uint_eq (out[i], 0xee);
    ibc_xts_vaes_free (x);
  }
  ck_assert_int_eq (ibc_xts_vaes_new (key, 40, &x), -EINVAL);
  ibc_xts_vaes_free (NULL);
}
END_TEST

/* The round keys are wiped before their locked memory is released. */
static size_t freed_size;
static bool freed_zero;

static void
free_hook (const void *p, size_t size)
{
  const uint8_t *b = p;

  freed_size = size;
  freed_zero = true;
  for (size_t i = 0; i < size; i++)
    freed_zero = freed_zero && b[i] == 0;
}

START_TEST (test_wiped_on_free)
{
  uint8_t key[64];
  struct ibc_xts_vaes *x = NULL;

  if (!have_vaes ())
    return;
  for (unsigned i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) (i + 1);
  ck_assert_int_eq (ibc_xts_vaes_new (key, 512, &x), 0);
  ibc_secmem_set_free_hook (free_hook);
  ibc_xts_vaes_free (x);
  ibc_secmem_set_free_hook (NULL);
  ck_assert_uint_ge (freed_size, 3 * 15 * 16);
  ck_assert (freed_zero);
}
END_TEST

/* Four threads on one cipher, each its own DUNs and buffers, against
 * OpenSSL's single-threaded output. */
#define CONC_THREADS 4
#define CONC_UNITS 16
#define CONC_DUS 4096
#define CONC_ROUNDS 200

struct conc_arg {
  struct ibc_cipher *c;
  struct ibc_dun dun;
  const uint8_t *pt, *ct;
  int rounds, failures;
};

static void *
conc_thread (void *p)
{
  struct conc_arg *a = p;
  const size_t len = CONC_UNITS * CONC_DUS;
  uint8_t *buf = malloc (len);

  for (int r = 0; r < a->rounds; r++) {
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
  uint8_t key[64], *pt = malloc (CONC_THREADS * len),
                   *ct = malloc (CONC_THREADS * len);
  struct conc_arg args[CONC_THREADS];
  pthread_t th[CONC_THREADS];
  struct ibc_cipher *v, *o;

  if (!have_vaes ())
    goto out;
  rng_state = 77;
  rng_fill (key, sizeof key);
  v = new_cipher_on (false, CONC_DUS, key);
  o = new_cipher_on (true, CONC_DUS, key);
  for (int t = 0; t < CONC_THREADS; t++) {
    args[t] = (struct conc_arg){
      .c = v,
      .dun = { { UINT64_MAX - 8 + (uint64_t) t * 3, (uint64_t) t, 0, 0 } },
      .pt = pt + t * len,
      .ct = ct + t * len,
      .rounds = getenv ("IBC_TEST_QUICK") != NULL ? 5 : CONC_ROUNDS,
    };
    rng_fill (pt + t * len, len);
    ck_assert_int_eq (
        ibc_cipher_encrypt (o, &args[t].dun, args[t].pt, ct + t * len, len), 0);
  }
  for (int t = 0; t < CONC_THREADS; t++)
    ck_assert_int_eq (pthread_create (&th[t], NULL, conc_thread, &args[t]), 0);
  for (int t = 0; t < CONC_THREADS; t++) {
    pthread_join (th[t], NULL);
    ck_assert_int_eq (args[t].failures, 0);
  }
  ibc_cipher_free (v);
  ibc_cipher_free (o);
out:
  free (pt);
  free (ct);
}
END_TEST

static Suite *
cipher_vaes_suite (void)
{
  Suite *s = suite_create ("cipher-vaes");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_ieee1619);
  tcase_add_test (tc, test_ieee1619_in_buffer);
  tcase_add_test (tc, test_weak_key);
  tcase_add_test (tc, test_random_vs_openssl);
  tcase_add_test (tc, test_bounds);
  tcase_add_test (tc, test_wiped_on_free);
  tcase_add_test (tc, test_concurrency);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (cipher_vaes_suite)
