/* NH (Adiantum's ε-almost-∆-universal hash) and NHPoly1305. */
#include <string.h>

#include <sodium.h>

#include "adiantum-internal.h"
#include "endian.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define IBC_MULTIVERSION __attribute__ ((target_clones ("avx2", "default")))
#else
#define IBC_MULTIVERSION
#endif

/* Add NH of len bytes (a multiple of 16) to the four pass sums.  Pass p
 * uses the key shifted by 4*p words; each 16-byte unit m0..m3 adds
 * (m0+k0)(m2+k2) + (m1+k1)(m3+k3) to it: 32-bit sums mod 2^32, 64-bit
 * products, as in the Adiantum paper.  Written as eight independent
 * products per unit so the compiler maps them onto 32x32->64-bit vector
 * multiplies (pmuludq). */
IBC_MULTIVERSION static void
nh_accumulate (const uint32_t *key, const uint8_t *msg, size_t len,
               uint64_t sums[IBC_NH_PASSES])
{
  uint64_t s[2 * IBC_NH_PASSES] = { 0 };

  for (; len >= IBC_NH_UNIT; len -= IBC_NH_UNIT, msg += IBC_NH_UNIT, key += 4) {
    uint32_t m[4], a[2 * IBC_NH_PASSES], b[2 * IBC_NH_PASSES];

    for (int q = 0; q < 4; q++)
      m[q] = ibc_load_le32 (msg + 4 * q);
    for (int p = 0; p < IBC_NH_PASSES; p++) {
      a[2 * p] = m[0] + key[4 * p];
      b[2 * p] = m[2] + key[4 * p + 2];
      a[2 * p + 1] = m[1] + key[4 * p + 1];
      b[2 * p + 1] = m[3] + key[4 * p + 3];
    }
    for (int q = 0; q < 2 * IBC_NH_PASSES; q++)
      s[q] += (uint64_t) a[q] * b[q];
  }
  for (int p = 0; p < IBC_NH_PASSES; p++)
    sums[p] += s[2 * p] + s[2 * p + 1];
}

static void
nh_output (const uint64_t sums[IBC_NH_PASSES], uint8_t out[IBC_NH_HASH_BYTES])
{
  for (int i = 0; i < IBC_NH_PASSES; i++)
    ibc_store_le64 (out + 8 * i, sums[i]);
}

void
ibc_nh (const uint32_t key[IBC_NH_KEY_WORDS], const uint8_t *msg, size_t len,
        uint8_t out[IBC_NH_HASH_BYTES])
{
  uint64_t sums[IBC_NH_PASSES] = { 0 };

  nh_accumulate (key, msg, len, sums);
  nh_output (sums, out);
}

void
ibc_nhpoly1305_setkey (struct ibc_nhpoly1305_key *key,
                       const uint8_t raw[IBC_NHPOLY1305_KEY_BYTES])
{
  ibc_poly1305_setkey (&key->poly, raw);
  for (int i = 0; i < IBC_NH_KEY_WORDS; i++)
    key->nh[i] = ibc_load_le32 (raw + 16 + 4 * i);
}

void
ibc_nhpoly1305 (const struct ibc_nhpoly1305_key *key, const uint8_t *msg,
                size_t len, uint8_t out[16])
{
  struct ibc_poly1305_state st;
  uint8_t hash[IBC_NH_HASH_BYTES];

  ibc_poly1305_init (&st);
  while (len > 0) {
    size_t n = len < IBC_NH_MESSAGE_BYTES ? len : IBC_NH_MESSAGE_BYTES;
    size_t whole = n & ~(size_t) (IBC_NH_UNIT - 1);
    uint64_t sums[IBC_NH_PASSES] = { 0 };

    nh_accumulate (key->nh, msg, whole, sums);
    if (whole < n) {
      /* A final partial unit is hashed as if zero-padded; NH is a sum
       * over units, so it is simply one more unit. */
      uint8_t unit[IBC_NH_UNIT] = { 0 };

      memcpy (unit, msg + whole, n - whole);
      nh_accumulate (key->nh + whole / 4, unit, IBC_NH_UNIT, sums);
      sodium_memzero (unit, sizeof unit);
    }
    nh_output (sums, hash);
    ibc_poly1305_blocks (&st, &key->poly, hash,
                         IBC_NH_HASH_BYTES / IBC_POLY1305_BLOCK_SIZE, true);
    msg += n;
    len -= n;
  }
  ibc_poly1305_emit (&st, NULL, out);
  sodium_memzero (hash, sizeof hash);
  sodium_memzero (&st, sizeof st);
}
