/* Adiantum and its parts (XChaCha12, NH, Poly1305), exposed for unit tests. */
#ifndef IBCRYPT_ADIANTUM_INTERNAL_H
#define IBCRYPT_ADIANTUM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- ChaCha12 / XChaCha12 (lib/chacha.c) ------------------------------ */

#define IBC_CHACHA_KEY_SIZE 32
#define IBC_CHACHA_BLOCK_SIZE 64
#define IBC_HCHACHA_NONCE_SIZE 16
#define IBC_XCHACHA_NONCE_SIZE 24

/* HChaCha12: derive a 32-byte subkey from a key and a 16-byte nonce. */
void ibc_hchacha12 (const uint8_t key[IBC_CHACHA_KEY_SIZE],
                    const uint8_t nonce[IBC_HCHACHA_NONCE_SIZE],
                    uint8_t ret_subkey[IBC_CHACHA_KEY_SIZE]);

/* ChaCha12 in its original form (64-bit nonce, 64-bit block counter): XOR
 * len bytes of keystream, starting at block `counter`, into in -> out.
 * in == out is allowed. */
void ibc_chacha12_xor (const uint8_t key[IBC_CHACHA_KEY_SIZE],
                       const uint8_t nonce[8], uint64_t counter,
                       const uint8_t *in, uint8_t *out, size_t len);

/* XChaCha12: HChaCha12 over the first 16 nonce bytes, then ChaCha12 with
 * the subkey and the last 8 nonce bytes.  in == out is allowed. */
void ibc_xchacha12_xor (const uint8_t key[IBC_CHACHA_KEY_SIZE],
                        const uint8_t nonce[IBC_XCHACHA_NONCE_SIZE],
                        uint64_t counter, const uint8_t *in, uint8_t *out,
                        size_t len);

/* ---- Poly1305 (lib/poly1305.c) ----------------------------------------- */

#define IBC_POLY1305_BLOCK_SIZE 16

/* The clamped multiplier r, in 44/44/42-bit limbs, with the 5*4*r
 * precomputations the reduction needs. */
struct ibc_poly1305_key {
  uint64_t r[3];
  uint64_t s[2];
};

/* The accumulator h (< 2^130 + small), in 44/44/42-bit limbs. */
struct ibc_poly1305_state {
  uint64_t h[3];
};

/* Clamp and load the 16-byte r. */
void ibc_poly1305_setkey (struct ibc_poly1305_key *key,
                          const uint8_t raw[IBC_POLY1305_BLOCK_SIZE]);
void ibc_poly1305_init (struct ibc_poly1305_state *st);
/* Absorb nblocks full 16-byte blocks, each with 2^128 added when hibit
 * (the usual case; NH and header blocks are always full). */
void ibc_poly1305_blocks (struct ibc_poly1305_state *st,
                          const struct ibc_poly1305_key *key, const uint8_t *in,
                          size_t nblocks, bool hibit);
/* Absorb len bytes of a message's end: full blocks with 2^128 added, then a
 * final partial block padded with 0x01 and zeros (RFC 8439). */
void ibc_poly1305_tail (struct ibc_poly1305_state *st,
                        const struct ibc_poly1305_key *key, const uint8_t *in,
                        size_t len);
/* h mod 2^130-5, plus the 16-byte mask s if not NULL, mod 2^128, as 16
 * little-endian bytes. */
void ibc_poly1305_emit (const struct ibc_poly1305_state *st,
                        const uint8_t *mask, uint8_t out[16]);
/* One-shot Poly1305 MAC: (r, s) = (key, mask). */
void ibc_poly1305 (const uint8_t key[16], const uint8_t mask[16],
                   const uint8_t *msg, size_t len, uint8_t out[16]);

/* ---- NH and NHPoly1305 (lib/nh.c) -------------------------------------- */

#define IBC_NH_PASSES 4
#define IBC_NH_UNIT 16            /* bytes hashed per step */
#define IBC_NH_MESSAGE_BYTES 1024 /* bytes per NH invocation */
#define IBC_NH_KEY_WORDS (IBC_NH_MESSAGE_BYTES / 4 + 4 * (IBC_NH_PASSES - 1))
#define IBC_NH_KEY_BYTES (IBC_NH_KEY_WORDS * 4)          /* 1072 */
#define IBC_NH_HASH_BYTES (8 * IBC_NH_PASSES)            /* 32 */
#define IBC_NHPOLY1305_KEY_BYTES (16 + IBC_NH_KEY_BYTES) /* 1088 */

/* NH over len bytes (a multiple of 16, at most 1024) with the key as
 * 32-bit words: four 64-bit little-endian sums. */
void ibc_nh (const uint32_t key[IBC_NH_KEY_WORDS], const uint8_t *msg,
             size_t len, uint8_t out[IBC_NH_HASH_BYTES]);

struct ibc_nhpoly1305_key {
  struct ibc_poly1305_key poly;
  uint32_t nh[IBC_NH_KEY_WORDS];
};

/* Load a 1088-byte key: the Poly1305 r, then the NH key. */
void ibc_nhpoly1305_setkey (struct ibc_nhpoly1305_key *key,
                            const uint8_t raw[IBC_NHPOLY1305_KEY_BYTES]);
/* Poly1305 (no mask) over the NH hashes of each 1024-byte chunk of msg,
 * the last chunk zero-padded to a multiple of 16 bytes (the kernel's
 * nhpoly1305). */
void ibc_nhpoly1305 (const struct ibc_nhpoly1305_key *key, const uint8_t *msg,
                     size_t len, uint8_t out[16]);

/* ---- Adiantum (lib/cipher-adiantum.c) ---------------------------------- */

#define IBC_ADIANTUM_KEY_SIZE 32
#define IBC_ADIANTUM_TWEAK_SIZE 32 /* what blk-crypto passes: the LE DUN */

/* En/decrypt one message of len >= 16 bytes with a tweak of any length,
 * using a state made by ibc_cipher_impl_adiantum.setup() (its data unit
 * size does not matter here).  in == out is allowed.  Returns 0, -EINVAL
 * (len < 16) or -EIO (OpenSSL failure). */
int ibc_adiantum_crypt_message (void *state, const uint8_t *tweak,
                                size_t tweak_len, const uint8_t *in,
                                uint8_t *out, size_t len, bool encrypt);

#endif
