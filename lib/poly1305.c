/* Poly1305 with 44/44/42-bit limbs and 64x64->128-bit products. */
#include <string.h>

#include <sodium.h>

#include "adiantum-internal.h"
#include "endian.h"

__extension__ typedef unsigned __int128 u128;

#define MASK44 0xfffffffffffULL
#define MASK42 0x3ffffffffffULL

void
ibc_poly1305_setkey (struct ibc_poly1305_key *key,
                     const uint8_t raw[IBC_POLY1305_BLOCK_SIZE])
{
  /* Clamp: r &= 0x0ffffffc0ffffffc0ffffffc0fffffff. */
  uint64_t t0 = ibc_load_le64 (raw) & 0x0ffffffc0fffffffULL;
  uint64_t t1 = ibc_load_le64 (raw + 8) & 0x0ffffffc0ffffffcULL;

  key->r[0] = t0 & MASK44;
  key->r[1] = ((t0 >> 44) | (t1 << 20)) & MASK44;
  key->r[2] = (t1 >> 24) & MASK42;
  /* Limb products that land at 2^132 and above wrap to 2^2 * 5 = 20
   * times their value, since 2^130 = 5 mod p. */
  key->s[0] = key->r[1] * 20;
  key->s[1] = key->r[2] * 20;
}

void
ibc_poly1305_init (struct ibc_poly1305_state *st)
{
  st->h[0] = st->h[1] = st->h[2] = 0;
}

void
ibc_poly1305_blocks (struct ibc_poly1305_state *st,
                     const struct ibc_poly1305_key *key, const uint8_t *in,
                     size_t nblocks, bool hibit)
{
  const uint64_t r0 = key->r[0], r1 = key->r[1], r2 = key->r[2];
  const uint64_t s1 = key->s[0], s2 = key->s[1];
  const uint64_t top = hibit ? 1ULL << 40 : 0; /* 2^128 in limb 2 */
  uint64_t h0 = st->h[0], h1 = st->h[1], h2 = st->h[2];

  while (nblocks-- > 0) {
    uint64_t t0 = ibc_load_le64 (in), t1 = ibc_load_le64 (in + 8);
    u128 d0, d1, d2;
    uint64_t c;

    h0 += t0 & MASK44;
    h1 += ((t0 >> 44) | (t1 << 20)) & MASK44;
    h2 += ((t1 >> 24) & MASK42) | top;

    /* h *= r mod 2^130 - 5 (partially reduced). */
    d0 = (u128) h0 * r0 + (u128) h1 * s2 + (u128) h2 * s1;
    d1 = (u128) h0 * r1 + (u128) h1 * r0 + (u128) h2 * s2;
    d2 = (u128) h0 * r2 + (u128) h1 * r1 + (u128) h2 * r0;

    c = (uint64_t) (d0 >> 44);
    h0 = (uint64_t) d0 & MASK44;
    d1 += c;
    c = (uint64_t) (d1 >> 44);
    h1 = (uint64_t) d1 & MASK44;
    d2 += c;
    c = (uint64_t) (d2 >> 42);
    h2 = (uint64_t) d2 & MASK42;
    h0 += c * 5;
    c = h0 >> 44;
    h0 &= MASK44;
    h1 += c;

    in += IBC_POLY1305_BLOCK_SIZE;
  }
  st->h[0] = h0;
  st->h[1] = h1;
  st->h[2] = h2;
}

void
ibc_poly1305_tail (struct ibc_poly1305_state *st,
                   const struct ibc_poly1305_key *key, const uint8_t *in,
                   size_t len)
{
  size_t full = len / IBC_POLY1305_BLOCK_SIZE;
  size_t rem = len % IBC_POLY1305_BLOCK_SIZE;

  ibc_poly1305_blocks (st, key, in, full, true);
  if (rem) {
    uint8_t last[IBC_POLY1305_BLOCK_SIZE] = { 0 };

    memcpy (last, in + full * IBC_POLY1305_BLOCK_SIZE, rem);
    last[rem] = 1;
    ibc_poly1305_blocks (st, key, last, 1, false);
    sodium_memzero (last, sizeof last);
  }
}

void
ibc_poly1305_emit (const struct ibc_poly1305_state *st, const uint8_t *mask,
                   uint8_t out[16])
{
  uint64_t h0 = st->h[0], h1 = st->h[1], h2 = st->h[2];
  uint64_t g0, g1, g2, c, sel, lo, hi;

  /* Carry fully, twice, so h < 2^130 + tiny. */
  for (int i = 0; i < 2; i++) {
    c = h1 >> 44;
    h1 &= MASK44;
    h2 += c;
    c = h2 >> 42;
    h2 &= MASK42;
    h0 += c * 5;
    c = h0 >> 44;
    h0 &= MASK44;
    h1 += c;
  }
  c = h1 >> 44;
  h1 &= MASK44;
  h2 += c;

  /* g = h - p = h + 5 - 2^130; take it when it does not borrow, in
   * constant time. */
  g0 = h0 + 5;
  c = g0 >> 44;
  g0 &= MASK44;
  g1 = h1 + c;
  c = g1 >> 44;
  g1 &= MASK44;
  g2 = h2 + c - (1ULL << 42);
  sel = (g2 >> 63) - 1; /* all ones when g2 did not go negative */
  h0 = (h0 & ~sel) | (g0 & sel);
  h1 = (h1 & ~sel) | (g1 & sel);
  h2 = (h2 & ~sel) | (g2 & sel);

  lo = h0 | (h1 << 44);
  hi = (h1 >> 20) | (h2 << 24);
  if (mask) {
    uint64_t m0 = ibc_load_le64 (mask), m1 = ibc_load_le64 (mask + 8);

    lo += m0;
    hi += m1 + (lo < m0);
  }
  ibc_store_le64 (out, lo);
  ibc_store_le64 (out + 8, hi);
}

void
ibc_poly1305 (const uint8_t key[16], const uint8_t mask[16], const uint8_t *msg,
              size_t len, uint8_t out[16])
{
  struct ibc_poly1305_key k;
  struct ibc_poly1305_state st;

  ibc_poly1305_setkey (&k, key);
  ibc_poly1305_init (&st);
  ibc_poly1305_tail (&st, &k, msg, len);
  ibc_poly1305_emit (&st, mask, out);
  sodium_memzero (&k, sizeof k);
  sodium_memzero (&st, sizeof st);
}
