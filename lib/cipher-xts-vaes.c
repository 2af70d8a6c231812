/* AES-256-XTS (IEEE 1619, whole blocks) with VAES and AVX-512: four AES
 * blocks per instruction, for CPUs where OpenSSL 3.0 only uses AES-NI.
 *
 * Per data unit: T0 = E_K2(IV); block j is masked with T_j = T0 * x^j in
 * GF(2^128) (the little-endian convention of IEEE 1619, the kernel and
 * OpenSSL), C_j = E_K1(P_j ^ T_j) ^ T_j.  A 512-bit register holds four
 * consecutive tweaks; they advance by x^4 or x^16 at once with one carry-less
 * multiply for the reduction.  Sixteen blocks (four registers) are in flight
 * per step so that the AES units, whose results take several cycles, never
 * wait.  T0 is computed for four data units with one 512-bit AES, one group
 * ahead, so that its latency overlaps the previous group's work.
 *
 * Everything that needs the instructions is compiled with a function-level
 * target attribute, so the rest of the library keeps the baseline ISA;
 * ibc_xts_vaes_usable() decides at run time. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cipher-xts-vaes.h"
#include "ibcrypt/secmem.h"

#define XTS_BLOCK 16
#define AES256_NRK 15 /* round keys: 14 rounds + the initial one */

/* Each round key already broadcast to a 64-byte row, four copies, as the
 * 512-bit instructions take it. */
#define RK_ROW 64

/* Lives in locked memory (ibc_secmem_alloc), which is why round keys are
 * loaded from here where they are used rather than held in registers for a
 * whole call: 15 round keys plus 8 blocks and tweaks in flight exceed the
 * 32 vector registers, and the compiler then spills round keys to the stack,
 * which nothing wipes.  The loads cost nothing measurable (one per round per
 * 16 blocks, from L1). */
struct ibc_xts_vaes {
  uint8_t enc1[AES256_NRK][RK_ROW]; /* K1, encryption order */
  uint8_t dec1[AES256_NRK][RK_ROW]; /* K1, equivalent inverse cipher */
  uint8_t enc2[AES256_NRK][RK_ROW]; /* K2 (tweak), encryption */
  uint32_t dus;
  /* sodium_malloc puts the region against its trailing guard page, so a
   * size that is a multiple of 64 gives 64-byte aligned rows: no load
   * splits a cache line.  Only unaligned loads are used, so nothing breaks
   * if it does not. */
  uint8_t pad[RK_ROW - sizeof (uint32_t)];
};
_Static_assert(sizeof (struct ibc_xts_vaes) % RK_ROW == 0, "rows aligned");

#if defined(__x86_64__) && defined(__GNUC__)

#include <cpuid.h>
#include <immintrin.h>

/* valgrind 3.19 reports no AVX-512 in CPUID anyway; this also covers a
 * valgrind that would report it without emulating all of it. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif

#define VAES_TARGET                                                            \
  __attribute__ ((                                                             \
      target ("avx512f,avx512vl,avx512bw,vaes,vpclmulqdq,aes,sse4.1")))
#define VAES_INLINE VAES_TARGET static inline __attribute__ ((always_inline))

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static bool usable;

/* CPUID bits (Intel SDM vol. 2, CPUID; AMD uses the same). */
#define CPUID1_ECX_AES (1u << 25)
#define CPUID1_ECX_OSXSAVE (1u << 27)
#define CPUID7_EBX_AVX512F (1u << 16)
#define CPUID7_EBX_AVX512BW (1u << 30)
#define CPUID7_EBX_AVX512VL (1u << 31)
#define CPUID7_ECX_VAES (1u << 9)
#define CPUID7_ECX_VPCLMULQDQ (1u << 10)
/* XCR0: the OS saves SSE, AVX, opmask, ZMM0-15 upper and ZMM16-31 state. */
#define XCR0_AVX512_STATE 0xe6u

/* CPUID directly rather than __builtin_cpu_supports: clang does not know
 * "vaes" there. */
static bool
cpu_has_vaes_avx512 (void)
{
  unsigned a, b, c, d, xcr0_lo, xcr0_hi;
  const unsigned ebx7
      = CPUID7_EBX_AVX512F | CPUID7_EBX_AVX512BW | CPUID7_EBX_AVX512VL;
  const unsigned ecx7 = CPUID7_ECX_VAES | CPUID7_ECX_VPCLMULQDQ;

  if (!__get_cpuid (1, &a, &b, &c, &d))
    return false;
  if ((c & (CPUID1_ECX_AES | CPUID1_ECX_OSXSAVE))
      != (CPUID1_ECX_AES | CPUID1_ECX_OSXSAVE))
    return false;
  /* XGETBV is there when OSXSAVE is set. */
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & XCR0_AVX512_STATE) != XCR0_AVX512_STATE)
    return false;
  if (!__get_cpuid_count (7, 0, &a, &b, &c, &d))
    return false;
  return (b & ebx7) == ebx7 && (c & ecx7) == ecx7;
}

static void
detect (void)
{
  const char *no = getenv ("IBCRYPT_NO_VAES");

  if (no != NULL && *no != '\0' && strcmp (no, "0") != 0)
    return;
#ifdef RUNNING_ON_VALGRIND
  if (RUNNING_ON_VALGRIND)
    return;
#endif
  usable = cpu_has_vaes_avx512 ();
}

bool
ibc_xts_vaes_usable (void)
{
  pthread_once (&detect_once, detect);
  return usable;
}

/* ---- Key schedule (FIPS 197 AES-256 expansion via AESKEYGENASSIST) ---- */

/* w ^ (w << 32) ^ (w << 64) ^ (w << 96): the running XOR of the four words
 * of the previous round key of the same parity. */
VAES_INLINE __m128i
prefix_xor (__m128i w)
{
  w = _mm_xor_si128 (w, _mm_slli_si128 (w, 4));
  return _mm_xor_si128 (w, _mm_slli_si128 (w, 8));
}

/* Store a round key as a row of four copies. */
VAES_INLINE void
store_row (uint8_t *row, __m128i k)
{
  _mm512_storeu_si512 (row, _mm512_broadcast_i32x4 (k));
}

/* Round key n >= 2 from keys n-2 (a) and n-1 (b).  Even n: RotWord(SubWord(
 * last word of b)) ^ rcon, which AESKEYGENASSIST leaves in lane 3; odd n:
 * SubWord(last word of b) only, lane 2. */
#define RK_NEXT(a, b, n, rcon)                                                 \
  _mm_xor_si128 (prefix_xor (a),                                               \
                 _mm_shuffle_epi32 (_mm_aeskeygenassist_si128 (b, rcon),       \
                                    (n) % 2 == 0 ? 0xff : 0xaa))

/* Two more round keys: a, b (keys n-2, n-1) become keys n, n+1. */
#define RK_PAIR(rows, a, b, n, rcon)                                           \
  do {                                                                         \
    a = RK_NEXT (a, b, n, rcon);                                               \
    store_row (rows[n], a);                                                    \
    b = RK_NEXT (b, a, (n) + 1, 0);                                            \
    store_row (rows[(n) + 1], b);                                              \
  } while (0)

/* AES-256 round keys of key (32 bytes) into enc, and if dec is not NULL the
 * decryption keys of the equivalent inverse cipher. */
VAES_TARGET static void
expand_key (const uint8_t *key, uint8_t (*enc)[RK_ROW], uint8_t (*dec)[RK_ROW])
{
  __m128i a = _mm_loadu_si128 ((const __m128i *) key);
  __m128i b = _mm_loadu_si128 ((const __m128i *) (key + 16));

  store_row (enc[0], a);
  store_row (enc[1], b);
  RK_PAIR (enc, a, b, 2, 0x01);
  RK_PAIR (enc, a, b, 4, 0x02);
  RK_PAIR (enc, a, b, 6, 0x04);
  RK_PAIR (enc, a, b, 8, 0x08);
  RK_PAIR (enc, a, b, 10, 0x10);
  RK_PAIR (enc, a, b, 12, 0x20);
  a = RK_NEXT (a, b, 14, 0x40);
  store_row (enc[14], a);
  /* AESDEC runs InvMixColumns before adding the round key, so the middle
   * keys go through InvMixColumns too (FIPS 197 5.3.5), in reverse. */
  if (dec != NULL) {
    memcpy (dec[0], enc[AES256_NRK - 1], RK_ROW);
    for (int i = 1; i < AES256_NRK - 1; i++)
      store_row (dec[i], _mm_aesimc_si128 (_mm_loadu_si128 (
                             (const __m128i *) enc[AES256_NRK - 1 - i])));
    memcpy (dec[AES256_NRK - 1], enc[0], RK_ROW);
  }
  /* What stays in registers and dead stack frames the engine wipes
   * (ibc_secmem_wipe_stack after setup). */
}

int
ibc_xts_vaes_new (const uint8_t *key, uint32_t dus, struct ibc_xts_vaes **ret)
{
  struct ibc_xts_vaes *x;

  if (!ibc_xts_vaes_usable ())
    return -EOPNOTSUPP;
  if (dus == 0 || dus % XTS_BLOCK != 0)
    return -EINVAL;
  x = ibc_secmem_alloc (sizeof *x);
  if (x == NULL)
    return -ENOMEM;
  expand_key (key, x->enc1, x->dec1);
  expand_key (key + 32, x->enc2, NULL);
  x->dus = dus;
  *ret = x;
  return 0;
}

void
ibc_xts_vaes_free (struct ibc_xts_vaes *x)
{
  ibc_secmem_free (x, sizeof *x);
}

/* ---- Tweaks ---- */

/* Each 128-bit lane of t times x^n in GF(2^128) mod x^128 + x^7 + x^2 + x
 * + 1, for a literal 1 <= n <= 56 (the reduction of the n bits shifted out
 * of the top, a polynomial of degree < 64, then lands in the low qword).
 * A macro: the shifts need immediates even without optimisation. */
#define GF_MUL_XN(t, n)                                                        \
  gf_mul_finish (_mm512_slli_epi64 ((t), (n)),                                 \
                 _mm512_srli_epi64 ((t), 64 - (n)))

/* shifted = t << n per qword, carry = the bits shifted out of each qword. */
VAES_INLINE __m512i
gf_mul_finish (__m512i shifted, __m512i carry)
{
  const __m512i poly = _mm512_set1_epi64 (0x87); /* low qwords matter */
  /* Top bits of the high qword times the polynomial, into the low qword. */
  __m512i red = _mm512_clmulepi64_epi128 (carry, poly, 0x01);

  /* Top bits of the low qword move into the high qword. */
  return _mm512_ternarylogic_epi64 (shifted, _mm512_bslli_epi128 (carry, 8),
                                    red, 0x96);
}

/* T0 (in every lane of b) to T0, T0 x, T0 x^2, T0 x^3 in lanes 0..3. */
VAES_INLINE __m512i
first_tweaks (__m512i b)
{
  const __m512i left = _mm512_set_epi64 (3, 3, 2, 2, 1, 1, 0, 0);
  /* A count of 64 shifts everything out: lane 0 carries nothing. */
  const __m512i right = _mm512_set_epi64 (61, 61, 62, 62, 63, 63, 64, 64);

  return gf_mul_finish (_mm512_sllv_epi64 (b, left),
                        _mm512_srlv_epi64 (b, right));
}

/* Round key r of a table of rows. */
#define RK(rows, r) _mm512_loadu_si512 ((rows)[r])

/* Keep the compiler from hoisting round key loads out of a loop (and then
 * spilling them to the stack): once it no longer knows that rows is the
 * pointer it loaded from before, it reloads them from locked memory. */
#define RELOAD_KEYS(rows) __asm__("" : "+r"(rows))

/* T0 of four consecutive data units, lane i for IV (lo, hi) + i, encrypted
 * with K2.  Advances the IV by 4. */
VAES_INLINE __m512i
group_t0 (const struct ibc_xts_vaes *s, uint64_t *lo, uint64_t *hi)
{
  const uint8_t (*rows)[RK_ROW] = s->enc2;
  uint64_t l[4], h[4];
  __m512i t;

  for (int i = 0; i < 4; i++) {
    l[i] = *lo;
    h[i] = *hi;
    /* The 128-bit IV wraps, as the DUN truncated to it does. */
    if (++*lo == 0)
      ++*hi;
  }
  t = _mm512_set_epi64 ((long long) h[3], (long long) l[3], (long long) h[2],
                        (long long) l[2], (long long) h[1], (long long) l[1],
                        (long long) h[0], (long long) l[0]);
  RELOAD_KEYS (rows);
  t = _mm512_xor_si512 (t, RK (rows, 0));
#pragma GCC unroll 13
  for (int r = 1; r < AES256_NRK - 1; r++)
    t = _mm512_aesenc_epi128 (t, RK (rows, r));
  return _mm512_aesenclast_epi128 (t, RK (rows, AES256_NRK - 1));
}

/* ---- Data ---- */

/* x[0..nv) ^= t[0..nv) ^ round key 0; the 13 middle rounds; the last round
 * with the tweak folded into its key (AESENCLAST (x, k ^ t) = AESENCLAST
 * (x, k) ^ t), so x becomes the output.  Each round key is loaded once for
 * all nv registers. */
#define XTS_ROUNDS(enc, rows, x, t, nv)                                        \
  do {                                                                         \
    __m512i k_ = RK (rows, 0);                                                 \
    _Pragma ("GCC unroll 4") for (int v_ = 0; v_ < (nv); v_++) x[v_]           \
        = _mm512_ternarylogic_epi64 (x[v_], t[v_], k_, 0x96);                  \
    _Pragma ("GCC unroll 13") for (int r_ = 1; r_ < AES256_NRK - 1; r_++)      \
    {                                                                          \
      k_ = RK (rows, r_);                                                      \
      _Pragma ("GCC unroll 4") for (int v_ = 0; v_ < (nv); v_++) x[v_]         \
          = (enc) ? _mm512_aesenc_epi128 (x[v_], k_)                           \
                  : _mm512_aesdec_epi128 (x[v_], k_);                          \
    }                                                                          \
    k_ = RK (rows, AES256_NRK - 1);                                            \
    _Pragma ("GCC unroll 4") for (int v_ = 0; v_ < (nv); v_++)                 \
    {                                                                          \
      __m512i kt_ = _mm512_xor_si512 (k_, t[v_]);                              \
      x[v_] = (enc) ? _mm512_aesenclast_epi128 (x[v_], kt_)                    \
                    : _mm512_aesdeclast_epi128 (x[v_], kt_);                   \
    }                                                                          \
  } while (0)

/* One data unit of nblocks blocks with K1's rows for one direction; t holds
 * the tweaks of its first four blocks. */
VAES_INLINE void
xts_unit (bool enc, const uint8_t (*rows)[RK_ROW], __m512i t, const uint8_t *in,
          uint8_t *out, size_t nblocks)
{
  size_t i = 0;

  if (nblocks >= 16) {
    __m512i tw[4]
        = { t, GF_MUL_XN (t, 4), GF_MUL_XN (t, 8), GF_MUL_XN (t, 12) };

    for (; i + 16 <= nblocks; i += 16) {
      const uint8_t *src = in + i * XTS_BLOCK;
      uint8_t *dst = out + i * XTS_BLOCK;
      __m512i x[4];

      RELOAD_KEYS (rows);
      /* Load all four before storing any: in == out. */
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++)
        x[v] = _mm512_loadu_si512 (src + 64 * v);
      XTS_ROUNDS (enc, rows, x, tw, 4);
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) {
        _mm512_storeu_si512 (dst + 64 * v, x[v]);
        tw[v] = GF_MUL_XN (tw[v], 16);
      }
    }
    t = tw[0];
  }
  for (; i + 4 <= nblocks; i += 4) {
    __m512i x[1] = { _mm512_loadu_si512 (in + i * XTS_BLOCK) }, tw[1] = { t };

    RELOAD_KEYS (rows);
    XTS_ROUNDS (enc, rows, x, tw, 1);
    _mm512_storeu_si512 (out + i * XTS_BLOCK, x[0]);
    t = GF_MUL_XN (t, 4);
  }
  if (i < nblocks) {
    /* 1 to 3 blocks left: masked qwords are neither read nor written. */
    __mmask8 m = (__mmask8) ((1u << (2 * (nblocks - i))) - 1);
    __m512i x[1] = { _mm512_maskz_loadu_epi64 (m, in + i * XTS_BLOCK) };
    __m512i tw[1] = { t };

    RELOAD_KEYS (rows);
    XTS_ROUNDS (enc, rows, x, tw, 1);
    _mm512_mask_storeu_epi64 (out + i * XTS_BLOCK, m, x[0]);
  }
}

VAES_INLINE void
xts_crypt (bool enc, const struct ibc_xts_vaes *s, const struct ibc_dun *dun,
           const uint8_t *in, uint8_t *out, size_t len)
{
  const uint8_t (*rows)[RK_ROW] = enc ? s->enc1 : s->dec1;
  const size_t dus = s->dus, units = len / dus, nblocks = dus / XTS_BLOCK;
  const __m512i pair = _mm512_set_epi64 (1, 0, 1, 0, 1, 0, 1, 0);
  uint64_t lo = dun->w[0], hi = dun->w[1];
  __m512i next = group_t0 (s, &lo, &hi);

  for (size_t u = 0; u < units; u += 4) {
    __m512i t0s = next;
    size_t n = units - u < 4 ? units - u : 4;

    /* The next group's T0 now: independent of this group's work, so its
     * latency hides behind it. */
    if (u + 4 < units)
      next = group_t0 (s, &lo, &hi);
    for (size_t j = 0; j < n; j++) {
      /* T0 of data unit u + j, in all four lanes. */
      __m512i idx
          = _mm512_add_epi64 (pair, _mm512_set1_epi64 ((long long) (2 * j)));
      __m512i b = _mm512_permutexvar_epi64 (idx, t0s);
      size_t off = (u + j) * dus;

      xts_unit (enc, rows, first_tweaks (b), in + off, out + off, nblocks);
    }
  }
}

/* Two copies, so the direction is a constant inside each. */
VAES_TARGET static void
xts_encrypt (const struct ibc_xts_vaes *s, const struct ibc_dun *dun,
             const uint8_t *in, uint8_t *out, size_t len)
{
  xts_crypt (true, s, dun, in, out, len);
}

VAES_TARGET static void
xts_decrypt (const struct ibc_xts_vaes *s, const struct ibc_dun *dun,
             const uint8_t *in, uint8_t *out, size_t len)
{
  xts_crypt (false, s, dun, in, out, len);
}

void
ibc_xts_vaes_crypt (const struct ibc_xts_vaes *x, const struct ibc_dun *dun,
                    const uint8_t *in, uint8_t *out, size_t len, bool encrypt)
{
  if (encrypt)
    xts_encrypt (x, dun, in, out, len);
  else
    xts_decrypt (x, dun, in, out, len);
}

#else /* not x86-64 with GCC-style intrinsics: never usable */

bool
ibc_xts_vaes_usable (void)
{
  return false;
}

int
ibc_xts_vaes_new (const uint8_t *key, uint32_t dus, struct ibc_xts_vaes **ret)
{
  (void) key;
  (void) dus;
  (void) ret;
  return -EOPNOTSUPP;
}

void
ibc_xts_vaes_free (struct ibc_xts_vaes *x)
{
  ibc_secmem_free (x, sizeof *x);
}

void
ibc_xts_vaes_crypt (const struct ibc_xts_vaes *x, const struct ibc_dun *dun,
                    const uint8_t *in, uint8_t *out, size_t len, bool encrypt)
{
  (void) x;
  (void) dun;
  (void) in;
  (void) out;
  (void) len;
  (void) encrypt;
  abort ();
}

#endif
