/* 256-bit data unit numbers (DUNs) and the IVs derived from them. */
#ifndef IBCRYPT_DUN_H
#define IBCRYPT_DUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IBC_DUN_WORDS 4

/* Least-significant word first, as bio_crypt_ctx.bc_dun[]. */
struct ibc_dun {
  uint64_t w[IBC_DUN_WORDS];
};

/* A DUN whose low word is v. */
static inline struct ibc_dun
ibc_dun_from_u64 (uint64_t v)
{
  struct ibc_dun d = { { v, 0, 0, 0 } };
  return d;
}

/* dun += inc, carrying across words; overflow out of the top word wraps
 * (bio_crypt_dun_increment). */
void ibc_dun_add (struct ibc_dun *dun, uint64_t inc);

/* True if dun + units == next without wrapping through zero
 * (bio_crypt_dun_is_contiguous). */
bool ibc_dun_is_contiguous (const struct ibc_dun *dun, uint64_t units,
                            const struct ibc_dun *next);

/* The IV: the DUN as a little-endian 256-bit integer truncated to iv_size
 * bytes (iv_size <= 32). */
void ibc_dun_to_iv (const struct ibc_dun *dun, uint8_t *iv, size_t iv_size);

/* Bytes needed to hold the DUN (0 for a zero DUN). */
unsigned ibc_dun_bytes_needed (const struct ibc_dun *dun);

/* True if the DUN fits in dun_bytes bytes. */
bool ibc_dun_fits (const struct ibc_dun *dun, unsigned dun_bytes);

/* -1, 0, 1. */
int ibc_dun_cmp (const struct ibc_dun *a, const struct ibc_dun *b);

#ifdef __cplusplus
}
#endif
#endif
