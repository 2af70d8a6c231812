/* Per-request crypto contexts carried down the filter stack (bio_crypt_ctx). */
#ifndef IBCRYPT_CTX_H
#define IBCRYPT_CTX_H

#include <stdbool.h>
#include <stdint.h>

#include "ibcrypt/dun.h"
#include "ibcrypt/key.h"

#ifdef __cplusplus
extern "C" {
#endif

/* nbdkit gives filters no per-request metadata, but calls the next layer
 * synchronously on the same thread, so the top ibcrypt layer pushes a
 * context on a thread-local stack before calling down and pops it after;
 * lower layers read ibc_ctx_current().  A layer that remaps offsets pushes
 * a remapped copy for the layer below it (ibc_ctx_remap) and pops it. */

enum ibc_ctx_kind {
  IBC_CTX_PLAIN,  /* data is plaintext to be stored as is */
  IBC_CTX_CRYPTO, /* encrypt/decrypt with key, DUNs from dun0 */
};

/* Anchored: DUN of offset x is dun0 + (x - anchor) / data_unit_size.  All
 * offsets are bytes in the device the receiving layer sees.  The anchor may
 * lie before lo (even "below 0" after a remap: offsets wrap modulo 2^64, only
 * distances x - anchor are used). */
struct ibc_crypt_ctx {
  enum ibc_ctx_kind kind;
  const struct ibc_key *key; /* CRYPTO: not owned; the pusher holds a ref */
  struct ibc_dun dun0;       /* DUN of the data unit at anchor */
  uint64_t anchor;
  uint32_t data_unit_size; /* bytes, a power of two (CRYPTO) */
  uint64_t lo, hi;         /* valid byte range [lo, hi) */
};

#define IBC_CTX_MAX_DEPTH 8

/* Push a copy of ctx on this thread's stack.  Returns 0, or -E2BIG when
 * IBC_CTX_MAX_DEPTH contexts are already pushed. */
int ibc_ctx_push (const struct ibc_crypt_ctx *ctx);
/* This thread's innermost context (valid until it is popped), or NULL. */
const struct ibc_crypt_ctx *ibc_ctx_current (void);
/* Drop the innermost context; a no-op on an empty stack. */
void ibc_ctx_pop (void);
/* Number of contexts this thread has pushed. */
unsigned ibc_ctx_depth (void);

/* Process-wide count of ibcrypt layers that create contexts above others
 * (set when such a filter loads, cleared when it unloads).  While it is
 * non-zero a lower layer must treat a request without a context as coming
 * from a foreign thread and fail it closed. */
void ibc_ctx_set_upper_present (void);
void ibc_ctx_clear_upper_present (void);
bool ibc_ctx_upper_present (void);

/* DUN of the data unit starting at off.  Returns 0, or -EINVAL if ctx is
 * not CRYPTO, off is outside [lo, hi) or not a data-unit multiple away from
 * the anchor. */
int ibc_ctx_dun_at (const struct ibc_crypt_ctx *ctx, uint64_t off,
                    struct ibc_dun *ret_dun);

/* For a layer that maps [off, off+len) of its device contiguously onto
 * [lower_off, lower_off+len) of a lower device: the context to push for the
 * lower device.  The DUN of every byte is unchanged; the valid range
 * becomes exactly the piece, since the lower device's neighbouring bytes
 * belong to other targets or chunks.  Works for PLAIN contexts too.
 * Returns 0, or -EINVAL if len is 0, the piece is not inside [lo, hi), or
 * lower_off + len overflows. */
int ibc_ctx_remap (const struct ibc_crypt_ctx *ctx, uint64_t off, uint64_t len,
                   uint64_t lower_off, struct ibc_crypt_ctx *ret_ctx);

#ifdef __cplusplus
}
#endif
#endif
