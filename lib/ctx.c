/* The thread-local stack of per-request crypto contexts and DUN arithmetic. */
#include <errno.h>
#include <stdatomic.h>

#include "ibcrypt/ctx.h"
#include "ibcrypt/mode.h"

/* One stack per thread.  This variable lives in libibcrypt.so, which the
 * dynamic linker loads once per process however many ibcrypt filters
 * nbdkit dlopens, so every filter reaches this same variable through
 * ibc_ctx_*() and a context pushed by the fallback filter is what the
 * keyslot filter below reads on the same thread.  (A copy of the library
 * linked statically into each filter would give each its own stack, and
 * lower layers would never see a context.)  Fixed size: no allocation on
 * the data path, and the depth is bounded by the ibcrypt layers in a
 * stack. */
static __thread struct {
  unsigned depth;
  struct ibc_crypt_ctx stack[IBC_CTX_MAX_DEPTH];
} ctx_stack;

static atomic_uint upper_present;

int
ibc_ctx_push (const struct ibc_crypt_ctx *ctx)
{
  if (ctx_stack.depth >= IBC_CTX_MAX_DEPTH)
    return -E2BIG;
  ctx_stack.stack[ctx_stack.depth++] = *ctx;
  return 0;
}

const struct ibc_crypt_ctx *
ibc_ctx_current (void)
{
  return ctx_stack.depth ? &ctx_stack.stack[ctx_stack.depth - 1] : NULL;
}

void
ibc_ctx_pop (void)
{
  if (ctx_stack.depth > 0)
    ctx_stack.depth--;
}

unsigned
ibc_ctx_depth (void)
{
  return ctx_stack.depth;
}

void
ibc_ctx_set_upper_present (void)
{
  atomic_fetch_add (&upper_present, 1);
}

void
ibc_ctx_clear_upper_present (void)
{
  unsigned v = atomic_load (&upper_present);

  /* Never below zero, even on an unbalanced clear. */
  while (v > 0 && !atomic_compare_exchange_weak (&upper_present, &v, v - 1))
    ;
}

bool
ibc_ctx_upper_present (void)
{
  return atomic_load (&upper_present) > 0;
}

int
ibc_ctx_dun_at (const struct ibc_crypt_ctx *ctx, uint64_t off,
                struct ibc_dun *ret_dun)
{
  uint64_t dist = off - ctx->anchor; /* modulo 2^64, see ctx.h */
  struct ibc_dun dun;

  if (ctx->kind != IBC_CTX_CRYPTO || !ibc_is_power_of_2 (ctx->data_unit_size)
      || off < ctx->lo || off >= ctx->hi
      || (dist & (ctx->data_unit_size - 1)) != 0)
    return -EINVAL;
  dun = ctx->dun0;
  ibc_dun_add (&dun, dist >> ibc_ilog2 (ctx->data_unit_size));
  *ret_dun = dun;
  return 0;
}

int
ibc_ctx_remap (const struct ibc_crypt_ctx *ctx, uint64_t off, uint64_t len,
               uint64_t lower_off, struct ibc_crypt_ctx *ret_ctx)
{
  struct ibc_crypt_ctx c = *ctx;

  if (len == 0 || off < ctx->lo || off >= ctx->hi || len > ctx->hi - off
      || lower_off + len < lower_off)
    return -EINVAL;
  /* Shift the anchor as the piece is shifted so that x - anchor, hence
   * every DUN, stays the same. */
  c.anchor = ctx->anchor + (lower_off - off);
  c.lo = lower_off;
  c.hi = lower_off + len;
  *ret_ctx = c;
  return 0;
}
