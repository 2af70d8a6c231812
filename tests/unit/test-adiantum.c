/* Unit tests: Adiantum and its parts against the google/adiantum and kernel
 * vectors, and the backend's multi-data-unit, in-place and threaded use. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "adiantum-internal.h"
#include "cipher-internal.h"
#include "ibc-check.h"

/* ---- JSON vector helpers ---------------------------------------------- */

static json_object *
load_vectors (const char *name, size_t *ret_count)
{
  char path[4096];
  json_object *arr;

  snprintf (path, sizeof path, "%s/adiantum/%s", IBC_VECTORS, name);
  arr = json_object_from_file (path);
  ck_assert_msg (arr != NULL, "cannot load %s", path);
  ck_assert (json_object_is_type (arr, json_type_array));
  *ret_count = json_object_array_length (arr);
  ck_assert_msg (*ret_count > 0, "%s has no vectors", name);
  return arr;
}

/* obj["a"]["b"]..., failing the test if any member is missing. */
static json_object *
member (json_object *obj, const char *a, const char *b)
{
  json_object *v;

  ck_assert_msg (json_object_object_get_ex (obj, a, &v), "no field %s", a);
  if (b)
    ck_assert_msg (json_object_object_get_ex (v, b, &v), "no field %s", b);
  return v;
}

static int
hexval (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  ck_abort_msg ("bad hex digit %c", c);
  return -1;
}

/* Decode a hex field into a malloc'd buffer (at least 1 byte). */
static uint8_t *
hex_field (json_object *obj, const char *a, const char *b, size_t *ret_len)
{
  const char *hex = json_object_get_string (member (obj, a, b));
  size_t n = strlen (hex);
  uint8_t *buf;

  ck_assert_msg (n % 2 == 0, "odd hex length in %s", b ? b : a);
  buf = malloc (n / 2 + 1);
  ck_assert (buf != NULL);
  for (size_t i = 0; i < n / 2; i++)
    buf[i] = (uint8_t) (hexval (hex[2 * i]) << 4 | hexval (hex[2 * i + 1]));
  *ret_len = n / 2;
  return buf;
}

static void *
setup_key (const uint8_t *key, uint32_t dus)
{
  void *st = NULL;

  ck_assert_int_eq (ibc_cipher_impl_adiantum.setup (key, 32, dus, &st), 0);
  ck_assert_ptr_nonnull (st);
  return st;
}

/* ---- Component vectors ------------------------------------------------ */

START_TEST (test_xchacha12_vectors)
{
  size_t n, done = 0, subtests = 0;
  json_object *arr = load_vectors ("XChaCha12_32.json", &n);
  /* One run over blocks 0..2048 must agree with every offset's vector:
   * this crosses batch and lane boundaries of the implementation. */
  const size_t stream_len = 2049 * IBC_CHACHA_BLOCK_SIZE;
  uint8_t *stream = malloc (stream_len);

  ck_assert_ptr_nonnull (stream);
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx (arr, i);
    json_object *tests = member (e, "tests", NULL);
    size_t klen, nlen, nt = json_object_array_length (tests);
    uint8_t *key = hex_field (e, "input", "key_hex", &klen);
    uint8_t *nonce = hex_field (e, "input", "nonce_hex", &nlen);

    ck_assert_uint_eq (klen, 32);
    ck_assert_uint_eq (nlen, 24);
    ck_assert_uint_gt (nt, 0);
    memset (stream, 0, stream_len);
    ibc_xchacha12_xor (key, nonce, 0, stream, stream, stream_len);
    for (size_t t = 0; t < nt; t++) {
      json_object *tv = json_object_array_get_idx (tests, t);
      int64_t off = json_object_get_int64 (member (tv, "input", "offset"));
      size_t rlen;
      uint8_t *want = hex_field (tv, "result_hex", NULL, &rlen);
      uint8_t block[IBC_CHACHA_BLOCK_SIZE];

      ck_assert_uint_eq (rlen, IBC_CHACHA_BLOCK_SIZE);
      ck_assert (off >= 0 && off < 2049);
      /* Forward: the keystream block at that counter. */
      memset (block, 0, sizeof block);
      ibc_xchacha12_xor (key, nonce, (uint64_t) off, block, block, rlen);
      ck_assert_mem_eq (block, want, rlen);
      ck_assert_mem_eq (stream + off * IBC_CHACHA_BLOCK_SIZE, want, rlen);
      /* Backward: XOR again restores the zeros. */
      ibc_xchacha12_xor (key, nonce, (uint64_t) off, block, block, rlen);
      for (size_t b = 0; b < rlen; b++)
        ck_assert_uint_eq (block[b], 0);
      free (want);
      subtests++;
    }
    free (key);
    free (nonce);
    done++;
  }
  ck_assert_uint_eq (done, n);
  ck_assert_uint_eq (subtests, 5 * n);
  free (stream);
  json_object_put (arr);
}
END_TEST

/* The 64-bit block counter carries into its high word inside a batch of
 * blocks exactly as one block at a time. */
START_TEST (test_chacha_counter_carry)
{
  uint8_t key[32], nonce[8], batch[16 * IBC_CHACHA_BLOCK_SIZE];
  uint8_t one[IBC_CHACHA_BLOCK_SIZE];
  const uint64_t start = 0xfffffffaULL;

  for (int i = 0; i < 32; i++)
    key[i] = (uint8_t) (3 * i + 1);
  for (int i = 0; i < 8; i++)
    nonce[i] = (uint8_t) (200 - i);
  memset (batch, 0, sizeof batch);
  ibc_chacha12_xor (key, nonce, start, batch, batch, sizeof batch);
  for (uint64_t b = 0; b < 16; b++) {
    memset (one, 0, sizeof one);
    ibc_chacha12_xor (key, nonce, start + b, one, one, sizeof one);
    ck_assert_mem_eq (batch + b * IBC_CHACHA_BLOCK_SIZE, one, sizeof one);
  }
  /* And the counter matters: blocks 2^32 and 0 differ. */
  memset (batch, 0, 2 * IBC_CHACHA_BLOCK_SIZE);
  ibc_chacha12_xor (key, nonce, 0, batch, batch, IBC_CHACHA_BLOCK_SIZE);
  ibc_chacha12_xor (key, nonce, 1ULL << 32, batch + IBC_CHACHA_BLOCK_SIZE,
                    batch + IBC_CHACHA_BLOCK_SIZE, IBC_CHACHA_BLOCK_SIZE);
  ck_assert (
      memcmp (batch, batch + IBC_CHACHA_BLOCK_SIZE, IBC_CHACHA_BLOCK_SIZE)
      != 0);
}
END_TEST

START_TEST (test_nh_vectors)
{
  size_t n, done = 0;
  json_object *arr = load_vectors ("NH.json", &n);

  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx (arr, i);
    size_t klen, mlen, hlen;
    uint8_t *key = hex_field (e, "input", "key_hex", &klen);
    uint8_t *msg = hex_field (e, "input", "message_hex", &mlen);
    uint8_t *want = hex_field (e, "hash_hex", NULL, &hlen);
    uint32_t words[IBC_NH_KEY_WORDS];
    uint8_t out[IBC_NH_HASH_BYTES];

    ck_assert_uint_eq (klen, IBC_NH_KEY_BYTES);
    ck_assert_uint_eq (hlen, IBC_NH_HASH_BYTES);
    ck_assert (mlen % 16 == 0 && mlen <= IBC_NH_MESSAGE_BYTES);
    for (size_t w = 0; w < IBC_NH_KEY_WORDS; w++)
      words[w] = (uint32_t) key[4 * w] | (uint32_t) key[4 * w + 1] << 8
                 | (uint32_t) key[4 * w + 2] << 16
                 | (uint32_t) key[4 * w + 3] << 24;
    ibc_nh (words, msg, mlen, out);
    ck_assert_mem_eq (out, want, hlen);
    free (key);
    free (msg);
    free (want);
    done++;
  }
  ck_assert_uint_eq (done, n);
  json_object_put (arr);
}
END_TEST

START_TEST (test_nhpoly1305_vectors)
{
  size_t n, done = 0;
  json_object *arr = load_vectors ("NHPoly1305.json", &n);

  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx (arr, i);
    size_t klen, mlen, hlen;
    uint8_t *key = hex_field (e, "input", "key_hex", &klen);
    uint8_t *msg = hex_field (e, "input", "message_hex", &mlen);
    uint8_t *want = hex_field (e, "hash_hex", NULL, &hlen);
    struct ibc_nhpoly1305_key k;
    uint8_t out[16];

    ck_assert_uint_eq (klen, IBC_NHPOLY1305_KEY_BYTES);
    ck_assert_uint_eq (hlen, 16);
    ibc_nhpoly1305_setkey (&k, key);
    ibc_nhpoly1305 (&k, msg, mlen, out);
    ck_assert_mem_eq (out, want, 16);
    free (key);
    free (msg);
    free (want);
    done++;
  }
  ck_assert_uint_eq (done, n);
  json_object_put (arr);
}
END_TEST

START_TEST (test_poly1305_vectors)
{
  size_t n, done = 0;
  json_object *arr = load_vectors ("Poly1305.json", &n);

  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx (arr, i);
    size_t klen, slen, mlen, tlen;
    uint8_t *key = hex_field (e, "input", "key_hex", &klen);
    uint8_t *mask = hex_field (e, "input", "mask_hex", &slen);
    uint8_t *msg = hex_field (e, "input", "message_hex", &mlen);
    uint8_t *want = hex_field (e, "mac_hex", NULL, &tlen);
    uint8_t out[16];

    ck_assert_uint_eq (klen, 16);
    ck_assert_uint_eq (slen, 16);
    ck_assert_uint_eq (tlen, 16);
    ibc_poly1305 (key, mask, msg, mlen, out);
    ck_assert_mem_eq (out, want, 16);

    /* The incremental interface: full blocks first, then the rest. */
    struct ibc_poly1305_key k;
    struct ibc_poly1305_state st;
    size_t full = mlen / 16;

    ibc_poly1305_setkey (&k, key);
    ibc_poly1305_init (&st);
    ibc_poly1305_blocks (&st, &k, msg, full, true);
    ibc_poly1305_tail (&st, &k, msg + 16 * full, mlen - 16 * full);
    ibc_poly1305_emit (&st, mask, out);
    ck_assert_mem_eq (out, want, 16);
    free (key);
    free (mask);
    free (msg);
    free (want);
    done++;
  }
  ck_assert_uint_eq (done, n);
  json_object_put (arr);
}
END_TEST

/* ---- Adiantum vectors ------------------------------------------------- */

START_TEST (test_adiantum_json_vectors)
{
  size_t n, done = 0, tweak_lens[33] = { 0 };
  json_object *arr = load_vectors ("Adiantum_XChaCha12_32_AES256.json", &n);

  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx (arr, i);
    size_t klen, tlen, plen, clen;
    uint8_t *key = hex_field (e, "input", "key_hex", &klen);
    uint8_t *tweak = hex_field (e, "input", "tweak_hex", &tlen);
    uint8_t *pt = hex_field (e, "plaintext_hex", NULL, &plen);
    uint8_t *ct = hex_field (e, "ciphertext_hex", NULL, &clen);
    uint8_t *buf = malloc (plen + 1);
    void *st;

    ck_assert_uint_eq (klen, 32);
    ck_assert_uint_eq (plen, clen);
    ck_assert_uint_le (tlen, 32);
    ck_assert_ptr_nonnull (buf);
    st = setup_key (key, 4096);
    /* Out of place, both directions. */
    ck_assert_int_eq (
        ibc_adiantum_crypt_message (st, tweak, tlen, pt, buf, plen, true), 0);
    ck_assert_mem_eq (buf, ct, clen);
    ck_assert_int_eq (
        ibc_adiantum_crypt_message (st, tweak, tlen, ct, buf, clen, false), 0);
    ck_assert_mem_eq (buf, pt, plen);
    /* In place, both directions. */
    ck_assert_int_eq (
        ibc_adiantum_crypt_message (st, tweak, tlen, buf, buf, plen, true), 0);
    ck_assert_mem_eq (buf, ct, clen);
    ck_assert_int_eq (
        ibc_adiantum_crypt_message (st, tweak, tlen, buf, buf, clen, false), 0);
    ck_assert_mem_eq (buf, pt, plen);
    ibc_cipher_impl_adiantum.destroy (st);
    tweak_lens[tlen]++;
    free (key);
    free (tweak);
    free (pt);
    free (ct);
    free (buf);
    done++;
  }
  ck_assert_uint_eq (done, n);
  /* The file's tweaks are empty, 17 and 32 bytes long: all were run. */
  ck_assert_uint_gt (tweak_lens[0], 0);
  ck_assert_uint_gt (tweak_lens[17], 0);
  ck_assert_uint_gt (tweak_lens[32], 0);
  json_object_put (arr);
}
END_TEST

/* The first entries of the kernel's adiantum_xchacha12_aes_tv_template
 * (crypto/testmgr.h, from google/adiantum): the tweak is the 32-byte IV. */
struct kernel_vec {
  const char *key, *iv, *ptext, *ctext;
  size_t len;
};

static const struct kernel_vec kernel_vecs[] = {
  {
      .key = "\x9e\xeb\xb2\x49\x3c\x1c\xf5\xf4\x6a\x99\xc2\xc4\xdf\xb1\xf4\xdd"
             "\x75\x20\x57\xea\x2c\x4f\xcd\xb2\xa5\x3d\x7b\x49\x1e\xab\xfd\x0f",
      .iv = "\xdf\x63\xd4\xab\xd2\x49\xf3\xd8\x33\x81\x37\x60\x7d\xfa\x73\x08"
            "\xd8\x49\x6d\x80\xe8\x2f\x62\x54\xeb\x0e\xa9\x39\x5b\x45\x7f\x8a",
      .ptext
      = "\x67\xc9\xf2\x30\x84\x41\x8e\x43\xfb\xf3\xb3\x3e\x79\x36\x7f\xe8",
      .ctext
      = "\x6d\x32\x86\x18\x67\x86\x0f\x3f\x96\x7c\x9d\x28\x0d\x53\xec\x9f",
      .len = 16,
  },
  {
      .key = "\x36\x2b\x57\x97\xf8\x5d\xcd\x99\x5f\x1a\x5a\x44\x1d\x92\x0f\x27"
             "\xcc\x16\xd7\x2b\x85\x63\x99\xd3\xba\x96\xa1\xdb\xd2\x60\x68\xda",
      .iv = "\xef\x58\x69\xb1\x2c\x5e\x9a\x47\x24\xc1\xb1\x69\xe1\x12\x93\x8f"
            "\x43\x3d\x6d\x00\xdb\x5e\xd8\xd9\x12\x9a\xfe\xd9\xff\x2d\xaa\xc4",
      .ptext
      = "\x5e\xa8\x68\x19\x85\x98\x12\x23\x26\x0a\xcc\xdb\x0a\x04\xb9\xdf"
        "\x4d\xb3\x48\x7b\xb0\xe3\xc8\x19\x43\x5a\x46\x06\x94\x2d\xf2",
      .ctext
      = "\xc7\xc6\xf1\x73\x8f\xc4\xff\x4a\x39\xbe\x78\xbe\x8d\x28\xc8\x89"
        "\x46\x63\xe7\x0c\x7d\x87\xe8\x4e\xc9\x18\x7b\xbe\x18\x60\x50",
      .len = 31,
  },
  {
      .key = "\xa5\x28\x24\x34\x1a\x3c\xd8\xf7\x05\x91\x8f\xee\x85\x1f\x35\x7f"
             "\x80\x3d\xfc\x9b\x94\xf6\xfc\x9e\x19\x09\x00\xa9\x04\x31\x4f\x11",
      .iv = "\xa1\xba\x49\x95\xff\x34\x6d\xb8\xcd\x87\x5d\x5e\xfd\xea\x85\xdb"
            "\x8a\x7b\x5e\xb2\x5d\x57\xdd\x62\xac\xa9\x8c\x41\x42\x94\x75\xb7",
      .ptext
      = "\x69\xb4\xe8\x8c\x37\xe8\x67\x82\xf1\xec\x5d\x04\xe5\x14\x91\x13"
        "\xdf\xf2\x87\x1b\x69\x81\x1d\x71\x70\x9e\x9c\x3b\xde\x49\x70\x11"
        "\xa0\xa3\xdb\x0d\x54\x4f\x66\x69\xd7\xdb\x80\xa7\x70\x92\x68\xce"
        "\x81\x04\x2c\xc6\xab\xae\xe5\x60\x15\xe9\x6f\xef\xaa\x8f\xa7\xa7"
        "\x63\x8f\xf2\xf0\x77\xf1\xa8\xea\xe1\xb7\x1f\x9e\xab\x9e\x4b\x3f"
        "\x07\x87\x5b\x6f\xcd\xa8\xaf\xb9\xfa\x70\x0b\x52\xb8\xa8\xa7\x9e"
        "\x07\x5f\xa6\x0e\xb3\x9b\x79\x13\x79\xc3\x3e\x8d\x1c\x2c\x68\xc8"
        "\x51\x1d\x3c\x7b\x7d\x79\x77\x2a\x56\x65\xc5\x54\x23\x28\xb0\x03",
      .ctext
      = "\x9e\x16\xab\xed\x4b\xa7\x42\x5a\xc6\xfb\x4e\x76\xff\xbe\x03\xa0"
        "\x0f\xe3\xad\xba\xe4\x98\x2b\x0e\x21\x48\xa0\xb8\x65\x48\x27\x48"
        "\x84\x54\x54\xb2\x9a\x94\x7b\xe6\x4b\x29\xe9\xcf\x05\x91\x80\x1a"
        "\x3a\xf3\x41\x96\x85\x1d\x9f\x74\x51\x56\x63\xfa\x7c\x28\x85\x49"
        "\xf7\x2f\xf9\xf2\x18\x46\xf5\x33\x80\xa3\x3c\xce\xb2\x57\x93\xf5"
        "\xae\xbd\xa9\xf5\x7b\x30\xc4\x93\x66\xe0\x30\x77\x16\xe4\xa0\x31"
        "\xba\x70\xbc\x68\x13\xf5\xb0\x9a\xc1\xfc\x7e\xfe\x55\x80\x5c\x48"
        "\x74\xa6\xaa\xa3\xac\xdc\xc2\xf5\x8d\xde\x34\x86\x78\x60\x75\x8d",
      .len = 128,
  },
};

START_TEST (test_adiantum_kernel_vectors)
{
  for (size_t i = 0; i < sizeof kernel_vecs / sizeof kernel_vecs[0]; i++) {
    const struct kernel_vec *v = &kernel_vecs[i];
    const uint8_t *pt = (const uint8_t *) v->ptext;
    const uint8_t *ct = (const uint8_t *) v->ctext;
    uint8_t buf[128];
    struct ibc_dun dun;
    void *st = setup_key ((const uint8_t *) v->key, (uint32_t) v->len);

    ck_assert_int_eq (ibc_adiantum_crypt_message (st, (const uint8_t *) v->iv,
                                                  32, pt, buf, v->len, true),
                      0);
    ck_assert_mem_eq (buf, ct, v->len);
    ck_assert_int_eq (ibc_adiantum_crypt_message (st, (const uint8_t *) v->iv,
                                                  32, ct, buf, v->len, false),
                      0);
    ck_assert_mem_eq (buf, pt, v->len);

    /* Through crypt(): one data unit whose DUN, as a 256-bit LE integer,
     * is the IV. */
    for (int w = 0; w < 4; w++) {
      dun.w[w] = 0;
      for (int b = 7; b >= 0; b--)
        dun.w[w] = dun.w[w] << 8 | (uint8_t) v->iv[8 * w + b];
    }
    ck_assert_int_eq (
        ibc_cipher_impl_adiantum.crypt (st, &dun, pt, buf, v->len, true), 0);
    ck_assert_mem_eq (buf, ct, v->len);
    ck_assert_int_eq (
        ibc_cipher_impl_adiantum.crypt (st, &dun, buf, buf, v->len, false), 0);
    ck_assert_mem_eq (buf, pt, v->len);
    ibc_cipher_impl_adiantum.destroy (st);
  }
}
END_TEST

/* ---- The backend: many data units per call ---------------------------- */

/* The tweak of unit i: base + i as a 256-bit LE integer, computed here
 * independently of ibc_dun_add. */
static void
tweak_of (const struct ibc_dun *base, uint64_t i, uint8_t tweak[32])
{
  uint64_t carry = i;

  for (int w = 0; w < 4; w++) {
    uint64_t v = base->w[w] + carry;

    carry = v < carry ? 1 : 0;
    for (int b = 0; b < 8; b++)
      tweak[8 * w + b] = (uint8_t) (v >> (8 * b));
  }
}

static void
fill (uint8_t *p, size_t n, uint32_t seed)
{
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (uint8_t) (seed >> 16);
  }
}

static void
check_multi_unit (uint32_t dus, const struct ibc_dun *dun, size_t units)
{
  uint8_t key[32];
  size_t len = dus * units;
  uint8_t *pt = malloc (len), *ct = malloc (len), *one = malloc (dus),
          *buf = malloc (len);
  void *st;

  ck_assert (pt && ct && one && buf);
  fill (key, sizeof key, 7);
  fill (pt, len, dus);
  st = setup_key (key, dus);

  ck_assert_int_eq (ibc_cipher_impl_adiantum.crypt (st, dun, pt, ct, len, true),
                    0);
  for (size_t i = 0; i < units; i++) {
    uint8_t tweak[32];

    tweak_of (dun, i, tweak);
    ck_assert_int_eq (ibc_adiantum_crypt_message (st, tweak, sizeof tweak,
                                                  pt + i * dus, one, dus, true),
                      0);
    ck_assert_msg (memcmp (one, ct + i * dus, dus) == 0,
                   "unit %zu of %zu (dus %u) differs", i, units, dus);
  }
  /* Units are independent: a ciphertext differs from its neighbours'. */
  ck_assert (memcmp (ct, ct + dus, dus) != 0);

  /* decrypt(encrypt(x)) == x, out of place and in place. */
  ck_assert_int_eq (
      ibc_cipher_impl_adiantum.crypt (st, dun, ct, buf, len, false), 0);
  ck_assert_mem_eq (buf, pt, len);
  memcpy (buf, pt, len);
  ck_assert_int_eq (
      ibc_cipher_impl_adiantum.crypt (st, dun, buf, buf, len, true), 0);
  ck_assert_mem_eq (buf, ct, len);
  ck_assert_int_eq (
      ibc_cipher_impl_adiantum.crypt (st, dun, buf, buf, len, false), 0);
  ck_assert_mem_eq (buf, pt, len);

  ibc_cipher_impl_adiantum.destroy (st);
  free (pt);
  free (ct);
  free (one);
  free (buf);
}

START_TEST (test_multi_unit)
{
  static const uint32_t sizes[] = { 512, 4096 };
  /* Low word about to wrap: the carry must reach word 1. */
  const struct ibc_dun near_carry = { { UINT64_MAX - 1, 5, 0, 0 } };
  /* Carry through three words. */
  const struct ibc_dun deep_carry
      = { { UINT64_MAX, UINT64_MAX, UINT64_MAX, 9 } };
  const struct ibc_dun small = ibc_dun_from_u64 (1000);

  for (size_t i = 0; i < 2; i++) {
    check_multi_unit (sizes[i], &small, 4);
    check_multi_unit (sizes[i], &near_carry, 4);
    check_multi_unit (sizes[i], &deep_carry, 3);
  }
}
END_TEST

/* A wide-block cipher: one flipped ciphertext bit garbles the whole data
 * unit, at both ends. */
START_TEST (test_wide_block)
{
  uint8_t key[32], pt[512], ct[512], back[512];
  struct ibc_dun dun = ibc_dun_from_u64 (42);
  void *st;
  size_t same = 0;

  fill (key, sizeof key, 3);
  fill (pt, sizeof pt, 4);
  st = setup_key (key, sizeof pt);
  ck_assert_int_eq (
      ibc_cipher_impl_adiantum.crypt (st, &dun, pt, ct, sizeof pt, true), 0);
  ct[200] ^= 0x01;
  ck_assert_int_eq (
      ibc_cipher_impl_adiantum.crypt (st, &dun, ct, back, sizeof pt, false), 0);
  for (size_t i = 0; i < sizeof pt; i++)
    same += back[i] == pt[i];
  /* About 2 of 512 bytes match by chance. */
  ck_assert_uint_lt (same, 16);
  ck_assert (memcmp (back, pt, 16) != 0);
  ck_assert (memcmp (back + 496, pt + 496, 16) != 0);
  ibc_cipher_impl_adiantum.destroy (st);
}
END_TEST

START_TEST (test_errors)
{
  uint8_t key[32] = { 0 }, buf[1024] = { 0 };
  struct ibc_dun dun = ibc_dun_from_u64 (0);
  void *st = (void *) &st;

  ck_assert_int_eq (ibc_cipher_impl_adiantum.setup (key, 16, 512, &st),
                    -EINVAL);
  ck_assert_int_eq (ibc_cipher_impl_adiantum.setup (key, 64, 512, &st),
                    -EINVAL);
  ck_assert_int_eq (ibc_cipher_impl_adiantum.setup (key, 32, 8, &st), -EINVAL);
  /* ret_state untouched on failure. */
  ck_assert_ptr_eq (st, (void *) &st);
  ck_assert_int_eq (ibc_cipher_impl_adiantum.mode, IBC_MODE_ADIANTUM);

  st = setup_key (key, 512);
  ck_assert_int_eq (
      ibc_cipher_impl_adiantum.crypt (st, &dun, buf, buf, 0, true), -EINVAL);
  ck_assert_int_eq (
      ibc_cipher_impl_adiantum.crypt (st, &dun, buf, buf, 700, true), -EINVAL);
  ck_assert_int_eq (
      ibc_adiantum_crypt_message (st, NULL, 0, buf, buf, 15, true), -EINVAL);
  /* Nothing was written by the rejected calls. */
  for (size_t i = 0; i < sizeof buf; i++)
    ck_assert_uint_eq (buf[i], 0);
  ibc_cipher_impl_adiantum.destroy (st);
  ibc_cipher_impl_adiantum.destroy (NULL);
}
END_TEST

/* ---- Concurrent use of one state -------------------------------------- */

#define THREADS                                                                \
  12 /* concurrent users of one key (the pool itself: test-cipher) */
#define THREAD_ROUNDS 40

struct thread_arg {
  void *st;
  const uint8_t *pt, *ct;
  size_t len;
  int failures;
};

static void *
thread_main (void *p)
{
  struct thread_arg *a = p;
  uint8_t *buf = malloc (a->len);
  struct ibc_dun dun = ibc_dun_from_u64 (77);

  for (int r = 0; buf && r < THREAD_ROUNDS; r++) {
    if (ibc_cipher_impl_adiantum.crypt (a->st, &dun, a->pt, buf, a->len, true)
            != 0
        || memcmp (buf, a->ct, a->len) != 0)
      a->failures++;
    if (ibc_cipher_impl_adiantum.crypt (a->st, &dun, buf, buf, a->len, false)
            != 0
        || memcmp (buf, a->pt, a->len) != 0)
      a->failures++;
  }
  if (buf == NULL)
    a->failures++;
  free (buf);
  return NULL;
}

START_TEST (test_threads)
{
  const size_t len = 8 * 4096;
  uint8_t key[32];
  uint8_t *pt = malloc (len), *ct = malloc (len);
  struct ibc_dun dun = ibc_dun_from_u64 (77);
  struct thread_arg args[THREADS];
  pthread_t tids[THREADS];
  void *st;

  ck_assert (pt && ct);
  fill (key, sizeof key, 11);
  fill (pt, len, 12);
  st = setup_key (key, 4096);
  ck_assert_int_eq (
      ibc_cipher_impl_adiantum.crypt (st, &dun, pt, ct, len, true), 0);
  for (int i = 0; i < THREADS; i++) {
    args[i] = (struct thread_arg){ st, pt, ct, len, 0 };
    ck_assert_int_eq (pthread_create (&tids[i], NULL, thread_main, &args[i]),
                      0);
  }
  for (int i = 0; i < THREADS; i++) {
    ck_assert_int_eq (pthread_join (tids[i], NULL), 0);
    ck_assert_int_eq (args[i].failures, 0);
  }
  ibc_cipher_impl_adiantum.destroy (st);
  free (pt);
  free (ct);
}
END_TEST

static Suite *
adiantum_suite (void)
{
  Suite *s = suite_create ("adiantum");
  TCase *parts = tcase_create ("parts");
  TCase *mode = tcase_create ("adiantum");

  tcase_add_test (parts, test_xchacha12_vectors);
  tcase_add_test (parts, test_chacha_counter_carry);
  tcase_add_test (parts, test_nh_vectors);
  tcase_add_test (parts, test_nhpoly1305_vectors);
  tcase_add_test (parts, test_poly1305_vectors);
  tcase_add_test (mode, test_adiantum_json_vectors);
  tcase_add_test (mode, test_adiantum_kernel_vectors);
  tcase_add_test (mode, test_multi_unit);
  tcase_add_test (mode, test_wide_block);
  tcase_add_test (mode, test_errors);
  tcase_add_test (mode, test_threads);
  suite_add_tcase (s, parts);
  suite_add_tcase (s, mode);
  return s;
}

IBC_CHECK_MAIN (adiantum_suite)
