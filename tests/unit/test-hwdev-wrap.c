/* Unit tests: hardware-wrapped keys of the emulated keyslot devices. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "ibc-check.h"
#include "ibcrypt/hwdev.h"
#include "ibcrypt/registry.h"

#define DUS 4096
#define LEN (2 * DUS)

static struct ibc_hwdev *
new_dev (const char *spec_text)
{
  struct ibc_hwdev_spec spec;
  struct ibc_hwdev *dev;
  char err[128];

  ck_assert_int_eq (ibc_hwdev_spec_parse (spec_text, &spec, err, sizeof err),
                    0);
  spec.size = 1 << 20;
  ck_assert_int_eq (ibc_hwdev_new (&spec, NULL, &dev), 0);
  return dev;
}

static void
fill (uint8_t *p, size_t n, uint8_t seed)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t) (seed + 7 * i);
}

static struct ibc_key *
wrapped_key (enum ibc_mode mode, const uint8_t *blob, size_t size)
{
  struct ibc_crypto_config cfg = { mode, DUS, 8, IBC_KEY_TYPE_HW_WRAPPED };
  struct ibc_key *k;

  ck_assert_int_eq (ibc_key_new (&cfg, blob, size, &k), 0);
  return k;
}

/* The documented KDF, computed here from the raw key the test imported. */
static void
kdf (const uint8_t *raw, size_t raw_size, const char *ctx, uint8_t *out,
     size_t outlen)
{
  ck_assert_int_eq (crypto_generichash (out, outlen, (const uint8_t *) ctx,
                                        strlen (ctx), raw, raw_size),
                    0);
}

/* AES-256-XTS with OpenSSL, data unit by data unit, tweak = DUN as a
 * 16-byte little-endian number: independent of lib/cipher*.c. */
static void
xts_reference (const uint8_t key[64], uint64_t dun, const uint8_t *in,
               uint8_t *out, size_t len)
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();

  ck_assert_ptr_nonnull (ctx);
  for (size_t off = 0; off < len; off += DUS, dun++) {
    uint8_t iv[16] = { 0 };
    int outl;

    for (int b = 0; b < 8; b++)
      iv[b] = (uint8_t) (dun >> (8 * b));
    ck_assert_int_eq (
        EVP_EncryptInit_ex (ctx, EVP_aes_256_xts (), NULL, key, iv), 1);
    ck_assert_int_eq (EVP_EncryptUpdate (ctx, out + off, &outl, in + off, DUS),
                      1);
    ck_assert_int_eq (outl, DUS);
  }
  EVP_CIPHER_CTX_free (ctx);
}

/* Encrypt LEN bytes at DUN 5 on dev with key; returns the crypt result. */
static int
crypt_with (struct ibc_hwdev *dev, struct ibc_key *key, const uint8_t *in,
            uint8_t *out, int encrypt)
{
  struct ibc_dun dun = ibc_dun_from_u64 (5);

  return ibc_hwdev_crypt (dev, key, &dun, in, out, LEN, encrypt);
}

static uint8_t raw[32], plain[LEN], expect[LEN];

/* Import a known raw key, prepare, program: the ciphertext is AES-256-XTS
 * under the derived inline key, on keyslot and slots=0 devices alike. */
START_TEST (test_import_program)
{
  static const char *const specs[] = {
    "w0,slots=2,key-types=raw+hw-wrapped",
    "w1,slots=0,key-types=raw+hw-wrapped",
  };
  uint8_t inline_key[64], lt[IBC_HWDEV_BLOB_MAX], eph[IBC_HWDEV_BLOB_MAX];
  uint8_t out[LEN], back[LEN];
  size_t lt_size, eph_size;

  fill (raw, sizeof raw, 0x11);
  fill (plain, sizeof plain, 0x42);
  kdf (raw, sizeof raw, IBC_HWDEV_KDF_INLINE, inline_key, 64);
  xts_reference (inline_key, 5, plain, expect, LEN);
  for (size_t i = 0; i < 2; i++) {
    struct ibc_hwdev *dev = new_dev (specs[i]);
    struct ibc_key *key;

    ck_assert_int_eq (ibc_hwdev_import_key (dev, raw, sizeof raw, lt, &lt_size),
                      0);
    ck_assert_uint_eq (lt_size, 24 + 32 + 16);
    /* The raw key appears nowhere in the blob. */
    ck_assert_ptr_null (memmem (lt, lt_size, raw, 8));
    ck_assert_int_eq (ibc_hwdev_prepare_key (dev, lt, lt_size, eph, &eph_size),
                      0);
    ck_assert_uint_eq (eph_size, 72);
    ck_assert (memcmp (lt, eph, 72) != 0);
    key = wrapped_key (IBC_MODE_AES_256_XTS, eph, eph_size);
    ck_assert_int_eq (crypt_with (dev, key, plain, out, 1), 0);
    ck_assert_mem_eq (out, expect, LEN);
    ck_assert_int_eq (crypt_with (dev, key, out, back, 0), 0);
    ck_assert_mem_eq (back, plain, LEN);
    ibc_key_unref (key);
    ibc_hwdev_free (dev);
  }
}
END_TEST

/* Blobs of another device, tampered blobs, wrong labels and sizes. */
START_TEST (test_bad_blobs)
{
  struct ibc_hwdev *a = new_dev ("a,slots=2,key-types=raw+hw-wrapped,modes="
                                 "aes-xts-plain64:4096,xchacha12,"
                                 "aes-adiantum-plain64:4096");
  struct ibc_hwdev *b = new_dev ("b,slots=2,key-types=raw+hw-wrapped");
  struct ibc_hwdev *rawonly = new_dev ("c,slots=2");
  uint8_t lt[IBC_HWDEV_BLOB_MAX], eph[IBC_HWDEV_BLOB_MAX];
  uint8_t beph[IBC_HWDEV_BLOB_MAX], bad[IBC_HWDEV_BLOB_MAX] = { 0 };
  uint8_t big[65] = { 0 }, out[LEN], secret[IBC_SW_SECRET_SIZE];
  size_t lt_size, eph_size, beph_size, n;
  struct ibc_key *key;

  fill (raw, sizeof raw, 0x11);
  fill (plain, sizeof plain, 0x42);
  ck_assert_int_eq (ibc_hwdev_import_key (a, raw, sizeof raw, lt, &lt_size), 0);
  /* Another device's wrapping key does not open it. */
  ck_assert_int_eq (ibc_hwdev_prepare_key (b, lt, lt_size, bad, &n), -EBADMSG);
  /* Every bit matters: nonce, ciphertext, tag. */
  for (size_t i = 0; i < lt_size; i += 23) {
    memcpy (bad, lt, lt_size);
    bad[i] ^= 0x01;
    ck_assert_int_eq (ibc_hwdev_prepare_key (a, bad, lt_size, eph, &n),
                      -EBADMSG);
  }
  ck_assert_int_eq (ibc_hwdev_prepare_key (a, lt, 10, eph, &n), -EBADMSG);
  ck_assert_int_eq (ibc_hwdev_prepare_key (a, lt, 129, eph, &n), -EINVAL);
  ck_assert_int_eq (ibc_hwdev_prepare_key (a, lt, lt_size, eph, &eph_size), 0);
  /* An ephemeral blob is not a long-term one (labels differ). */
  ck_assert_int_eq (ibc_hwdev_prepare_key (a, eph, eph_size, bad, &n),
                    -EBADMSG);
  ck_assert_int_eq (ibc_hwdev_derive_sw_secret (a, lt, lt_size, secret),
                    -EBADMSG);
  /* Import sizes: 16..64. */
  ck_assert_int_eq (ibc_hwdev_import_key (a, big, 15, bad, &n), -EINVAL);
  ck_assert_int_eq (ibc_hwdev_import_key (a, big, 65, bad, &n), -EINVAL);
  ck_assert_int_eq (ibc_hwdev_import_key (a, big, 64, bad, &n), 0);
  ck_assert_uint_eq (n, 24 + 64 + 16);
  /* Devices without hw-wrapped keys have no wrapped-key ops. */
  ck_assert_int_eq (ibc_hwdev_import_key (rawonly, raw, 32, bad, &n),
                    -EOPNOTSUPP);
  ck_assert_int_eq (ibc_hwdev_generate_key (rawonly, bad, &n), -EOPNOTSUPP);
  ck_assert_int_eq (ibc_hwdev_prepare_key (rawonly, lt, lt_size, bad, &n),
                    -EOPNOTSUPP);

  /* Programming: b's ephemeral blob on a, a tampered one: program error. */
  ck_assert_int_eq (ibc_hwdev_import_key (b, raw, sizeof raw, bad, &n), 0);
  ck_assert_int_eq (ibc_hwdev_prepare_key (b, bad, n, beph, &beph_size), 0);
  key = wrapped_key (IBC_MODE_AES_256_XTS, beph, beph_size);
  ck_assert_int_eq (crypt_with (a, key, plain, out, 1), -EIO);
  ibc_key_unref (key);
  memcpy (bad, eph, eph_size);
  bad[40] ^= 0x80;
  key = wrapped_key (IBC_MODE_AES_256_XTS, bad, eph_size);
  ck_assert_int_eq (crypt_with (a, key, plain, out, 1), -EIO);
  ibc_key_unref (key);
  /* Only AES-256-XTS takes wrapped keys, even where Adiantum is native. */
  key = wrapped_key (IBC_MODE_ADIANTUM, eph, eph_size);
  ck_assert_int_eq (crypt_with (a, key, plain, out, 1), -EIO);
  ibc_key_unref (key);
  /* A device lacking the key type refuses before programming. */
  key = wrapped_key (IBC_MODE_AES_256_XTS, eph, eph_size);
  ck_assert_int_eq (crypt_with (rawonly, key, plain, out, 1), -EOPNOTSUPP);
  /* ... and the good blob still works on a. */
  ck_assert_int_eq (crypt_with (a, key, plain, out, 1), 0);
  ibc_key_unref (key);
  ibc_hwdev_free (a);
  ibc_hwdev_free (b);
  ibc_hwdev_free (rawonly);
}
END_TEST

/* wrapping-key=@PATH: long-term blobs survive a "reboot" (a new device with
 * the same file); ephemeral blobs of the old boot do not. */
START_TEST (test_reboot)
{
  char path[] = "/tmp/ibc-wrapkey-XXXXXX", spec[128];
  uint8_t wk[33], lt[IBC_HWDEV_BLOB_MAX], eph0[IBC_HWDEV_BLOB_MAX];
  uint8_t eph1[IBC_HWDEV_BLOB_MAX], inline_key[64], out[LEN];
  size_t lt_size, eph0_size, eph1_size;
  struct ibc_hwdev_spec s;
  struct ibc_hwdev *dev;
  struct ibc_key *key;
  char err[128];
  int fd = mkstemp (path);

  ck_assert_int_ge (fd, 0);
  fill (wk, sizeof wk, 0x99);
  ck_assert_int_eq (write (fd, wk, 32), 32);
  close (fd);
  snprintf (spec, sizeof spec,
            "r,slots=1,key-types=hw-wrapped,"
            "wrapping-key=@%s",
            path);
  fill (raw, sizeof raw, 0x11);
  fill (plain, sizeof plain, 0x42);
  kdf (raw, sizeof raw, IBC_HWDEV_KDF_INLINE, inline_key, 64);
  xts_reference (inline_key, 5, plain, expect, LEN);

  dev = new_dev (spec);
  ck_assert_int_eq (ibc_hwdev_import_key (dev, raw, sizeof raw, lt, &lt_size),
                    0);
  ck_assert_int_eq (ibc_hwdev_prepare_key (dev, lt, lt_size, eph0, &eph0_size),
                    0);
  ibc_hwdev_free (dev);

  dev = new_dev (spec);
  ck_assert_int_eq (ibc_hwdev_prepare_key (dev, lt, lt_size, eph1, &eph1_size),
                    0);
  key = wrapped_key (IBC_MODE_AES_256_XTS, eph0, eph0_size);
  ck_assert_int_eq (crypt_with (dev, key, plain, out, 1), -EIO);
  ibc_key_unref (key);
  key = wrapped_key (IBC_MODE_AES_256_XTS, eph1, eph1_size);
  ck_assert_int_eq (crypt_with (dev, key, plain, out, 1), 0);
  ck_assert_mem_eq (out, expect, LEN);
  ibc_key_unref (key);
  ibc_hwdev_free (dev);

  /* A device with a random long-term key cannot open the blob. */
  dev = new_dev ("r2,slots=1,key-types=hw-wrapped");
  ck_assert_int_eq (ibc_hwdev_prepare_key (dev, lt, lt_size, eph1, &eph1_size),
                    -EBADMSG);
  ibc_hwdev_free (dev);

  /* The file must hold exactly 32 bytes. */
  ck_assert_int_eq (ibc_hwdev_spec_parse (spec, &s, err, sizeof err), 0);
  s.size = 1 << 20;
  for (size_t len = 31; len <= 33; len += 2) {
    fd = open (path, O_WRONLY | O_TRUNC);
    ck_assert_int_ge (fd, 0);
    ck_assert_int_eq (write (fd, wk, len), (ssize_t) len);
    close (fd);
    ck_assert_int_eq (ibc_hwdev_new (&s, NULL, &dev), -EINVAL);
  }
  unlink (path);
  ck_assert_int_eq (ibc_hwdev_new (&s, NULL, &dev), -ENOENT);
  ck_assert_int_eq (
      ibc_hwdev_spec_parse ("x,wrapping-key=nopath", &s, err, sizeof err),
      -EINVAL);
  ck_assert_str_eq (err, "invalid wrapping-key 'nopath'");
}
END_TEST

/* The software secret: the documented KDF, not the inline key, stable
 * across prepares; generate_key blobs work too. */
START_TEST (test_sw_secret_generate)
{
  struct ibc_hwdev *dev = new_dev ("s,slots=2,key-types=raw+hw-wrapped");
  uint8_t lt[IBC_HWDEV_BLOB_MAX], eph[IBC_HWDEV_BLOB_MAX];
  uint8_t eph2[IBC_HWDEV_BLOB_MAX], inline_key[64], want[32];
  uint8_t s1[IBC_SW_SECRET_SIZE], s2[IBC_SW_SECRET_SIZE];
  uint8_t out[LEN], back[LEN];
  size_t lt_size, eph_size, eph2_size;
  struct ibc_key *key;

  fill (raw, sizeof raw, 0x11);
  kdf (raw, sizeof raw, IBC_HWDEV_KDF_INLINE, inline_key, 64);
  kdf (raw, sizeof raw, IBC_HWDEV_KDF_SW, want, 32);
  ck_assert_int_eq (ibc_hwdev_import_key (dev, raw, sizeof raw, lt, &lt_size),
                    0);
  ck_assert_int_eq (ibc_hwdev_prepare_key (dev, lt, lt_size, eph, &eph_size),
                    0);
  ck_assert_int_eq (ibc_hwdev_prepare_key (dev, lt, lt_size, eph2, &eph2_size),
                    0);
  ck_assert (memcmp (eph, eph2, eph_size) != 0); /* fresh nonces */
  ck_assert_int_eq (ibc_hwdev_derive_sw_secret (dev, eph, eph_size, s1), 0);
  ck_assert_int_eq (ibc_hwdev_derive_sw_secret (dev, eph2, eph2_size, s2), 0);
  ck_assert_mem_eq (s1, want, 32);
  ck_assert_mem_eq (s1, s2, 32);
  ck_assert (memcmp (s1, inline_key, 32) != 0);
  ck_assert (memcmp (s1, inline_key + 32, 32) != 0);
  ck_assert (memcmp (s1, raw, 32) != 0);
  eph[30] ^= 1;
  ck_assert_int_eq (ibc_hwdev_derive_sw_secret (dev, eph, eph_size, s1),
                    -EBADMSG);

  /* Generated: a 32-byte key nobody sees; it still round-trips. */
  fill (plain, sizeof plain, 0x42);
  ck_assert_int_eq (ibc_hwdev_generate_key (dev, lt, &lt_size), 0);
  ck_assert_uint_eq (lt_size, 72);
  ck_assert_int_eq (ibc_hwdev_prepare_key (dev, lt, lt_size, eph, &eph_size),
                    0);
  key = wrapped_key (IBC_MODE_AES_256_XTS, eph, eph_size);
  ck_assert_int_eq (crypt_with (dev, key, plain, out, 1), 0);
  ck_assert (memcmp (out, plain, LEN) != 0);
  ck_assert_int_eq (crypt_with (dev, key, out, back, 0), 0);
  ck_assert_mem_eq (back, plain, LEN);
  ibc_key_unref (key);
  ibc_hwdev_free (dev);
}
END_TEST

/* Which hardware a registry device's wrapped-key ops go to. */
START_TEST (test_for_device)
{
  struct ibc_hwdev *w = new_dev ("w,slots=2,key-types=raw+hw-wrapped");
  struct ibc_hwdev *r = new_dev ("r,slots=2");
  struct ibc_hwdev *got = NULL;
  struct ibc_layer *layer;

  ck_assert_int_eq (ibc_layer_new (IBC_LAYER_KEYSLOT, "keyslot", &layer), 0);
  ck_assert_int_eq (
      ibc_layer_add_device (layer, "w", 0, 1 << 20, ibc_hwdev_profile (w), w),
      0);
  ck_assert_int_eq (ibc_layer_add_device (layer, "r", 1 << 20, 1 << 20,
                                          ibc_hwdev_profile (r), r),
                    0);
  ck_assert_int_eq (
      ibc_hwdev_for_device (layer, ibc_layer_find_device (layer, "w"), &got),
      0);
  ck_assert_ptr_eq (got, w);
  ck_assert_int_eq (
      ibc_hwdev_for_device (layer, ibc_layer_find_device (layer, "r"), &got),
      -EOPNOTSUPP);
  ibc_layer_free (layer);
  ibc_hwdev_free (w);
  ibc_hwdev_free (r);
}
END_TEST

static Suite *
make_suite (void)
{
  Suite *s = suite_create ("hwdev-wrap");
  TCase *tc = tcase_create ("wrap");

  tcase_add_test (tc, test_import_program);
  tcase_add_test (tc, test_bad_blobs);
  tcase_add_test (tc, test_reboot);
  tcase_add_test (tc, test_sw_secret_generate);
  tcase_add_test (tc, test_for_device);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (make_suite)
