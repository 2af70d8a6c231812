/* AES-256-XTS on VAES + AVX-512 (cipher-xts-vaes.c), and the switches the
 * AES-XTS backend (cipher-xts.c) offers tests and benchmarks. */
#ifndef IBCRYPT_CIPHER_XTS_VAES_H
#define IBCRYPT_CIPHER_XTS_VAES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibcrypt/dun.h"

/* Per-key state: the AES-256 round keys (data key encryption and
 * decryption, tweak key encryption) in locked memory.  Read-only after
 * ibc_xts_vaes_new, so any number of threads may use it at once. */
struct ibc_xts_vaes;

/* True if this process may use the VAES path: the CPU (and the OS, for the
 * AVX-512 register state) has VAES, VPCLMULQDQ, AVX512F/VL/BW and AES-NI,
 * we are not running under valgrind (which does not emulate AVX-512), and
 * the environment variable IBCRYPT_NO_VAES is unset, empty or "0".  Decided
 * once per process, at the first call. */
bool ibc_xts_vaes_usable (void);

/* Key schedules for a 64-byte XTS key (data key, then tweak key) and data
 * units of dus bytes (a non-zero multiple of 16), which the caller has
 * validated.  Returns 0, -EOPNOTSUPP (not usable, see above) or -ENOMEM. */
int ibc_xts_vaes_new (const uint8_t *key, uint32_t dus,
                      struct ibc_xts_vaes **ret);

/* Wipe and free.  Accepts NULL. */
void ibc_xts_vaes_free (struct ibc_xts_vaes *x);

/* En/decrypt len bytes (a non-zero multiple of dus), in == out allowed;
 * data unit i uses the IV dun + i (low 128 bits, little endian).  Cannot
 * fail. */
void ibc_xts_vaes_crypt (const struct ibc_xts_vaes *x,
                         const struct ibc_dun *dun, const uint8_t *in,
                         uint8_t *out, size_t len, bool encrypt);

/* Test seam (cipher-xts.c): while true, AES-256-XTS ciphers set up from
 * then on use OpenSSL even where the VAES path is usable.  Ciphers keep the
 * path they were set up with. */
void ibc_cipher_xts_force_openssl (bool force);

/* Which implementation an AES-256-XTS cipher set up now would use:
 * "vaes-avx512" or "openssl". */
const char *ibc_cipher_xts_impl_name (void);

#endif
