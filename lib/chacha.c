/* ChaCha12, HChaCha12 and XChaCha12 (Adiantum's stream cipher). */
#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "adiantum-internal.h"
#include "endian.h"

#define CHACHA12_DOUBLE_ROUNDS 6

/* Blocks computed at once: each of the 16 state words is a vector holding
 * that word of LANES consecutive blocks, so every quarter-round operation
 * works on all blocks at once.  8 lanes fill AVX2 registers and compile to
 * pairs of SSE2 operations elsewhere. */
#define LANES 8
typedef uint32_t u32xL __attribute__ ((vector_size (4 * LANES)));

/* On x86-64 also build AVX2 and AVX-512VL (x86-64-v4: 32 registers and a
 * rotate instruction, about 1.3x AVX2 here) clones of the hot function and
 * pick one at load time (ifunc); elsewhere the portable build is the only
 * one. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define IBC_MULTIVERSION                                                       \
  __attribute__ ((target_clones ("arch=x86-64-v4", "avx2", "default")))
#else
#define IBC_MULTIVERSION
#endif

#define ROTL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))

#define QR(a, b, c, d)                                                         \
  do {                                                                         \
    a += b;                                                                    \
    d ^= a;                                                                    \
    d = ROTL (d, 16);                                                          \
    c += d;                                                                    \
    b ^= c;                                                                    \
    b = ROTL (b, 12);                                                          \
    a += b;                                                                    \
    d ^= a;                                                                    \
    d = ROTL (d, 8);                                                           \
    c += d;                                                                    \
    b ^= c;                                                                    \
    b = ROTL (b, 7);                                                           \
  } while (0)

/* The ChaCha permutation (6 double rounds) on x[16], scalar or vector. */
#define CHACHA12_ROUNDS(x)                                                     \
  do {                                                                         \
    for (int r_ = 0; r_ < CHACHA12_DOUBLE_ROUNDS; r_++) {                      \
      QR (x[0], x[4], x[8], x[12]);                                            \
      QR (x[1], x[5], x[9], x[13]);                                            \
      QR (x[2], x[6], x[10], x[14]);                                           \
      QR (x[3], x[7], x[11], x[15]);                                           \
      QR (x[0], x[5], x[10], x[15]);                                           \
      QR (x[1], x[6], x[11], x[12]);                                           \
      QR (x[2], x[7], x[8], x[13]);                                            \
      QR (x[3], x[4], x[9], x[14]);                                            \
    }                                                                          \
  } while (0)

/* "expand 32-byte k" */
static void
init_state (uint32_t s[16], const uint8_t key[32])
{
  s[0] = 0x61707865;
  s[1] = 0x3320646e;
  s[2] = 0x79622d32;
  s[3] = 0x6b206574;
  for (int i = 0; i < 8; i++)
    s[4 + i] = ibc_load_le32 (key + 4 * i);
}

void
ibc_hchacha12 (const uint8_t key[IBC_CHACHA_KEY_SIZE],
               const uint8_t nonce[IBC_HCHACHA_NONCE_SIZE],
               uint8_t ret_subkey[IBC_CHACHA_KEY_SIZE])
{
  uint32_t x[16];

  init_state (x, key);
  for (int i = 0; i < 4; i++)
    x[12 + i] = ibc_load_le32 (nonce + 4 * i);
  CHACHA12_ROUNDS (x);
  /* No feed-forward: the subkey is words 0-3 and 12-15. */
  for (int i = 0; i < 4; i++) {
    ibc_store_le32 (ret_subkey + 4 * i, x[i]);
    ibc_store_le32 (ret_subkey + 16 + 4 * i, x[12 + i]);
  }
  sodium_memzero (x, sizeof x);
}

/* Word-to-block transposition with vector shuffles, where the compiler has
 * them; otherwise (or on big-endian hosts) a scalar loop. */
#if defined(__has_builtin) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#if __has_builtin(__builtin_shufflevector)
#define VECTOR_TRANSPOSE 1
#endif
#endif

/* Scratch space for a partial batch; the caller wipes it once. */
struct lanes_scratch {
  uint8_t buf[LANES * IBC_CHACHA_BLOCK_SIZE] __attribute__ ((aligned (32)));
};

#ifdef VECTOR_TRANSPOSE
#define SHUF __builtin_shufflevector
#define LO32(a, b) SHUF (a, b, 0, 8, 1, 9, 4, 12, 5, 13)
#define HI32(a, b) SHUF (a, b, 2, 10, 3, 11, 6, 14, 7, 15)
#define LO64(a, b) SHUF (a, b, 0, 1, 8, 9, 4, 5, 12, 13)
#define HI64(a, b) SHUF (a, b, 2, 3, 10, 11, 6, 7, 14, 15)
#define LO128(a, b) SHUF (a, b, 0, 1, 2, 3, 8, 9, 10, 11)
#define HI128(a, b) SHUF (a, b, 4, 5, 6, 7, 12, 13, 14, 15)

/* x[i] holds word i of blocks 0..7; y[b] gets words 0..7 of block b.  The
 * three stages (32-bit, 64-bit, 128-bit interleaves) stay within 128-bit
 * halves until the last, which suits both AVX2 and SSE2. */
static inline __attribute__ ((always_inline)) void
transpose8 (const u32xL *x, u32xL *y)
{
  u32xL t0 = LO32 (x[0], x[1]), t1 = HI32 (x[0], x[1]);
  u32xL t2 = LO32 (x[2], x[3]), t3 = HI32 (x[2], x[3]);
  u32xL t4 = LO32 (x[4], x[5]), t5 = HI32 (x[4], x[5]);
  u32xL t6 = LO32 (x[6], x[7]), t7 = HI32 (x[6], x[7]);
  u32xL u0 = LO64 (t0, t2), u1 = HI64 (t0, t2); /* blocks 0|4, 1|5 */
  u32xL u2 = LO64 (t1, t3), u3 = HI64 (t1, t3); /* blocks 2|6, 3|7 */
  u32xL u4 = LO64 (t4, t6), u5 = HI64 (t4, t6);
  u32xL u6 = LO64 (t5, t7), u7 = HI64 (t5, t7);

  y[0] = LO128 (u0, u4);
  y[4] = HI128 (u0, u4);
  y[1] = LO128 (u1, u5);
  y[5] = HI128 (u1, u5);
  y[2] = LO128 (u2, u6);
  y[6] = HI128 (u2, u6);
  y[3] = LO128 (u3, u7);
  y[7] = HI128 (u3, u7);
}
#endif

/* XOR the keystream of LANES blocks starting at the counter in s[12..13]
 * into in -> out, len <= LANES * 64 bytes. */
IBC_MULTIVERSION static void
chacha12_xor_lanes (const uint32_t s[16], const uint8_t *in, uint8_t *out,
                    size_t len, struct lanes_scratch *scr)
{
  static const u32xL lane = { 0, 1, 2, 3, 4, 5, 6, 7 };
  const bool whole = len == LANES * IBC_CHACHA_BLOCK_SIZE;
  u32xL x[16], init[16];

  for (int i = 0; i < 16; i++)
    init[i] = (u32xL){} + s[i];
  /* Per-lane 64-bit block counter: low word + lane, carry into the high. */
  init[12] = init[12] + lane;
  init[13] = init[13] - (u32xL) (init[12] < ((u32xL){} + s[12]));
  for (int i = 0; i < 16; i++)
    x[i] = init[i];

  CHACHA12_ROUNDS (x);

  for (int i = 0; i < 16; i++)
    x[i] += init[i];

#ifdef VECTOR_TRANSPOSE
  /* Words 0-7 then 8-15 of each block: 32 contiguous bytes per block. */
  for (int half = 0; half < 2; half++) {
    u32xL y[LANES];

    transpose8 (x + 8 * half, y);
    for (int b = 0; b < LANES; b++) {
      size_t o = (size_t) b * IBC_CHACHA_BLOCK_SIZE + 32 * (size_t) half;

      if (whole) {
        u32xL v;

        memcpy (&v, in + o, sizeof v);
        v ^= y[b];
        memcpy (out + o, &v, sizeof v);
      } else
        memcpy (scr->buf + o, &y[b], sizeof y[b]);
    }
  }
#else
  for (int b = 0; b < LANES; b++)
    for (int i = 0; i < 16; i++) {
      size_t o = (size_t) b * IBC_CHACHA_BLOCK_SIZE + 4 * (size_t) i;

      if (whole)
        ibc_store_le32 (out + o, ibc_load_le32 (in + o) ^ x[i][b]);
      else
        ibc_store_le32 (scr->buf + o, x[i][b]);
    }
#endif

  if (!whole) {
    size_t i = 0;

    for (; i + sizeof (u32xL) <= len; i += sizeof (u32xL)) {
      u32xL v, k;

      memcpy (&v, in + i, sizeof v);
      memcpy (&k, scr->buf + i, sizeof k);
      v ^= k;
      memcpy (out + i, &v, sizeof v);
    }
    for (; i < len; i++)
      out[i] = in[i] ^ scr->buf[i];
  }
}

void
ibc_chacha12_xor (const uint8_t key[IBC_CHACHA_KEY_SIZE],
                  const uint8_t nonce[8], uint64_t counter, const uint8_t *in,
                  uint8_t *out, size_t len)
{
  const size_t chunk = LANES * IBC_CHACHA_BLOCK_SIZE;
  struct lanes_scratch scr;
  uint32_t s[16];

  init_state (s, key);
  s[14] = ibc_load_le32 (nonce);
  s[15] = ibc_load_le32 (nonce + 4);
  while (len > 0) {
    size_t n = len < chunk ? len : chunk;

    s[12] = (uint32_t) counter;
    s[13] = (uint32_t) (counter >> 32);
    chacha12_xor_lanes (s, in, out, n, &scr);
    counter += LANES;
    in += n;
    out += n;
    len -= n;
  }
  /* The keystream and the state are as secret as the key. */
  sodium_memzero (&scr, sizeof scr);
  sodium_memzero (s, sizeof s);
}

void
ibc_xchacha12_xor (const uint8_t key[IBC_CHACHA_KEY_SIZE],
                   const uint8_t nonce[IBC_XCHACHA_NONCE_SIZE],
                   uint64_t counter, const uint8_t *in, uint8_t *out,
                   size_t len)
{
  uint8_t subkey[IBC_CHACHA_KEY_SIZE];

  ibc_hchacha12 (key, nonce, subkey);
  ibc_chacha12_xor (subkey, nonce + IBC_HCHACHA_NONCE_SIZE, counter, in, out,
                    len);
  sodium_memzero (subkey, sizeof subkey);
}
