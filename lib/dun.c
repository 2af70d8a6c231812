/* 256-bit data unit number arithmetic (bio_crypt_dun_* semantics). */
#include <string.h>

#include "ibcrypt/dun.h"

void
ibc_dun_add (struct ibc_dun *dun, uint64_t inc)
{
  for (unsigned i = 0; inc != 0 && i < IBC_DUN_WORDS; i++) {
    dun->w[i] += inc;
    /* The word overflowed iff the sum is smaller than what was added; then
     * carry one into the next word.  A carry out of the top word is lost. */
    inc = dun->w[i] < inc ? 1 : 0;
  }
}

bool
ibc_dun_is_contiguous (const struct ibc_dun *dun, uint64_t units,
                       const struct ibc_dun *next)
{
  uint64_t carry = units;

  for (unsigned i = 0; i < IBC_DUN_WORDS; i++) {
    uint64_t sum = dun->w[i] + carry;

    if (sum != next->w[i])
      return false;
    carry = sum < carry ? 1 : 0;
  }
  /* Wrapping through zero is not contiguous. */
  return carry == 0;
}

void
ibc_dun_to_iv (const struct ibc_dun *dun, uint8_t *iv, size_t iv_size)
{
  for (size_t i = 0; i < iv_size && i < 8 * IBC_DUN_WORDS; i++)
    iv[i] = (uint8_t) (dun->w[i / 8] >> (8 * (i % 8)));
}

unsigned
ibc_dun_bytes_needed (const struct ibc_dun *dun)
{
  for (int i = IBC_DUN_WORDS - 1; i >= 0; i--) {
    if (dun->w[i] != 0) {
      unsigned bits = 64u - (unsigned) __builtin_clzll (dun->w[i]);
      return (unsigned) i * 8 + (bits + 7) / 8;
    }
  }
  return 0;
}

bool
ibc_dun_fits (const struct ibc_dun *dun, unsigned dun_bytes)
{
  return ibc_dun_bytes_needed (dun) <= dun_bytes;
}

int
ibc_dun_cmp (const struct ibc_dun *a, const struct ibc_dun *b)
{
  for (int i = IBC_DUN_WORDS - 1; i >= 0; i--) {
    if (a->w[i] != b->w[i])
      return a->w[i] < b->w[i] ? -1 : 1;
  }
  return 0;
}
