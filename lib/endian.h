/* Little-endian loads and stores for the cipher code (internal). */
#ifndef IBCRYPT_ENDIAN_H
#define IBCRYPT_ENDIAN_H

#include <stdint.h>
#include <string.h>

/* memcpy: no alignment or aliasing assumptions; compilers emit one move. */

static inline uint32_t
ibc_load_le32 (const uint8_t *p)
{
  uint32_t v;

  memcpy (&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32 (v);
#endif
  return v;
}

static inline void
ibc_store_le32 (uint8_t *p, uint32_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32 (v);
#endif
  memcpy (p, &v, 4);
}

static inline uint64_t
ibc_load_le64 (const uint8_t *p)
{
  uint64_t v;

  memcpy (&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64 (v);
#endif
  return v;
}

static inline void
ibc_store_le64 (uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64 (v);
#endif
  memcpy (p, &v, 8);
}

#endif
