/* Unit tests: the thread-local context stack, DUN lookup and remapping. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "ibc-check.h"
#include "ibcrypt/ctx.h"

#define MiB (1024ULL * 1024)

static struct ibc_crypt_ctx
crypto_ctx (uint64_t dun0, uint64_t anchor, uint32_t dus, uint64_t lo,
            uint64_t hi)
{
  struct ibc_crypt_ctx c = {
    .kind = IBC_CTX_CRYPTO,
    .key = (const struct ibc_key *) 0x1234,
    .dun0 = ibc_dun_from_u64 (dun0),
    .anchor = anchor,
    .data_unit_size = dus,
    .lo = lo,
    .hi = hi,
  };
  return c;
}

/* Field by field: the struct has padding. */
static bool
ctx_eq (const struct ibc_crypt_ctx *a, const struct ibc_crypt_ctx *b)
{
  return a->kind == b->kind && a->key == b->key
         && memcmp (&a->dun0, &b->dun0, sizeof a->dun0) == 0
         && a->anchor == b->anchor && a->data_unit_size == b->data_unit_size
         && a->lo == b->lo && a->hi == b->hi;
}

START_TEST (test_push_pop)
{
  struct ibc_crypt_ctx c[IBC_CTX_MAX_DEPTH + 1];

  ck_assert_ptr_null (ibc_ctx_current ());
  ck_assert_uint_eq (ibc_ctx_depth (), 0);
  ibc_ctx_pop (); /* empty: no-op */
  ck_assert_uint_eq (ibc_ctx_depth (), 0);

  for (unsigned i = 0; i <= IBC_CTX_MAX_DEPTH; i++)
    c[i] = crypto_ctx (i, 0, 512, 0, 4096);
  for (unsigned i = 0; i < IBC_CTX_MAX_DEPTH; i++) {
    ck_assert_int_eq (ibc_ctx_push (&c[i]), 0);
    ck_assert_uint_eq (ibc_ctx_current ()->dun0.w[0], i);
    ck_assert_uint_eq (ibc_ctx_depth (), i + 1);
  }
  ck_assert_int_eq (ibc_ctx_push (&c[IBC_CTX_MAX_DEPTH]), -E2BIG);
  ck_assert_uint_eq (ibc_ctx_current ()->dun0.w[0], IBC_CTX_MAX_DEPTH - 1);

  /* The stack holds copies: changing the caller's struct changes nothing. */
  c[IBC_CTX_MAX_DEPTH - 1].dun0.w[0] = 999;
  ck_assert_uint_eq (ibc_ctx_current ()->dun0.w[0], IBC_CTX_MAX_DEPTH - 1);

  for (unsigned i = IBC_CTX_MAX_DEPTH; i > 0; i--) {
    ck_assert_uint_eq (ibc_ctx_current ()->dun0.w[0], i - 1);
    ibc_ctx_pop ();
  }
  ck_assert_ptr_null (ibc_ctx_current ());

  /* A plain context is a context too. */
  struct ibc_crypt_ctx p = { .kind = IBC_CTX_PLAIN, .lo = 0, .hi = 512 };
  ck_assert_int_eq (ibc_ctx_push (&p), 0);
  ck_assert_int_eq (ibc_ctx_current ()->kind, IBC_CTX_PLAIN);
  ibc_ctx_pop ();
  ck_assert_ptr_null (ibc_ctx_current ());
}
END_TEST

struct thread_result {
  bool saw_none;
  unsigned depth_before;
  uint64_t own_dun;
};

static void *
other_thread (void *arg)
{
  struct thread_result *r = arg;
  struct ibc_crypt_ctx c = crypto_ctx (77, 0, 512, 0, 512);

  r->saw_none = ibc_ctx_current () == NULL;
  r->depth_before = ibc_ctx_depth ();
  if (ibc_ctx_push (&c) == 0) {
    r->own_dun = ibc_ctx_current ()->dun0.w[0];
    ibc_ctx_pop ();
  }
  return NULL;
}

START_TEST (test_thread_isolation)
{
  struct ibc_crypt_ctx c = crypto_ctx (5, 0, 512, 0, 512);
  struct thread_result r = { false, 99, 0 };
  pthread_t th;

  ck_assert_int_eq (ibc_ctx_push (&c), 0);
  ck_assert_int_eq (ibc_ctx_push (&c), 0);
  ck_assert_int_eq (pthread_create (&th, NULL, other_thread, &r), 0);
  ck_assert_int_eq (pthread_join (th, NULL), 0);
  ck_assert (r.saw_none);
  ck_assert_uint_eq (r.depth_before, 0);
  ck_assert_uint_eq (r.own_dun, 77);
  /* Ours is untouched by the other thread's push/pop. */
  ck_assert_uint_eq (ibc_ctx_depth (), 2);
  ck_assert_uint_eq (ibc_ctx_current ()->dun0.w[0], 5);
  ibc_ctx_pop ();
  ibc_ctx_pop ();
}
END_TEST

START_TEST (test_upper_present)
{
  ck_assert (!ibc_ctx_upper_present ());
  ibc_ctx_set_upper_present ();
  ibc_ctx_set_upper_present ();
  ck_assert (ibc_ctx_upper_present ());
  ibc_ctx_clear_upper_present ();
  ck_assert (ibc_ctx_upper_present ());
  ibc_ctx_clear_upper_present ();
  ck_assert (!ibc_ctx_upper_present ());
  ibc_ctx_clear_upper_present (); /* unbalanced: stays at 0 */
  ibc_ctx_set_upper_present ();
  ck_assert (ibc_ctx_upper_present ());
  ibc_ctx_clear_upper_present ();
  ck_assert (!ibc_ctx_upper_present ());
}
END_TEST

START_TEST (test_dun_at)
{
  struct ibc_crypt_ctx c = crypto_ctx (5, 1 * MiB, 4096, 1 * MiB, 2 * MiB);
  struct ibc_dun d, untouched = { { 42, 42, 42, 42 } };

  ck_assert_int_eq (ibc_ctx_dun_at (&c, 1 * MiB, &d), 0);
  ck_assert_uint_eq (d.w[0], 5);
  ck_assert_int_eq (ibc_ctx_dun_at (&c, 1 * MiB + 8192, &d), 0);
  ck_assert_uint_eq (d.w[0], 7);
  ck_assert_int_eq (ibc_ctx_dun_at (&c, 2 * MiB - 4096, &d), 0);
  ck_assert_uint_eq (d.w[0], 5 + 255);
  ck_assert_uint_eq (d.w[1], 0);

  d = untouched;
  ck_assert_int_eq (ibc_ctx_dun_at (&c, 1 * MiB + 512, &d), -EINVAL);
  ck_assert_int_eq (ibc_ctx_dun_at (&c, 2 * MiB, &d), -EINVAL);
  ck_assert_int_eq (ibc_ctx_dun_at (&c, 1 * MiB - 4096, &d), -EINVAL);
  ck_assert_int_eq (ibc_ctx_dun_at (&c, UINT64_MAX, &d), -EINVAL);
  c.kind = IBC_CTX_PLAIN;
  ck_assert_int_eq (ibc_ctx_dun_at (&c, 1 * MiB, &d), -EINVAL);
  c.kind = IBC_CTX_CRYPTO;
  c.data_unit_size = 0;
  ck_assert_int_eq (ibc_ctx_dun_at (&c, 1 * MiB, &d), -EINVAL);
  ck_assert_int_eq (memcmp (&d, &untouched, sizeof d), 0);

  /* Anchor before lo: the range starts mid-binding. */
  c = crypto_ctx (100, 0, 512, 4096, 8192);
  ck_assert_int_eq (ibc_ctx_dun_at (&c, 4096, &d), 0);
  ck_assert_uint_eq (d.w[0], 108);
}
END_TEST

START_TEST (test_dun_at_carry)
{
  struct ibc_crypt_ctx c = crypto_ctx (UINT64_MAX - 1, 0, 4096, 0, 1 * MiB);
  struct ibc_dun d;

  ck_assert_int_eq (ibc_ctx_dun_at (&c, 4096, &d), 0);
  ck_assert_uint_eq (d.w[0], UINT64_MAX);
  ck_assert_uint_eq (d.w[1], 0);
  ck_assert_int_eq (ibc_ctx_dun_at (&c, 3 * 4096, &d), 0);
  ck_assert_uint_eq (d.w[0], 1);
  ck_assert_uint_eq (d.w[1], 1);

  /* Carry through two full words. */
  c.dun0.w[0] = UINT64_MAX;
  c.dun0.w[1] = UINT64_MAX;
  c.dun0.w[2] = 7;
  ck_assert_int_eq (ibc_ctx_dun_at (&c, 4096, &d), 0);
  ck_assert_uint_eq (d.w[0], 0);
  ck_assert_uint_eq (d.w[1], 0);
  ck_assert_uint_eq (d.w[2], 8);
  ck_assert_uint_eq (d.w[3], 0);
}
END_TEST

START_TEST (test_remap)
{
  /* Binding [0, 1 MiB) with DUN 100 at 0; a piece at 64 KiB of the upper
   * device lands at 4 KiB of the lower one. */
  struct ibc_crypt_ctx c = crypto_ctx (100, 0, 4096, 0, 1 * MiB), l, l2;
  struct ibc_dun d;

  ck_assert_int_eq (ibc_ctx_remap (&c, 65536, 8192, 4096, &l), 0);
  ck_assert_uint_eq (l.lo, 4096);
  ck_assert_uint_eq (l.hi, 4096 + 8192);
  ck_assert_uint_eq (l.anchor, (uint64_t) 4096 - 65536); /* wraps */
  ck_assert_ptr_eq (l.key, c.key);
  ck_assert_uint_eq (l.data_unit_size, 4096);
  ck_assert_int_eq (ibc_ctx_dun_at (&l, 4096, &d), 0);
  ck_assert_uint_eq (d.w[0], 116);
  ck_assert_int_eq (ibc_ctx_dun_at (&l, 8192, &d), 0);
  ck_assert_uint_eq (d.w[0], 117);
  ck_assert_int_eq (ibc_ctx_dun_at (&l, 12288, &d), -EINVAL);
  ck_assert_int_eq (ibc_ctx_dun_at (&l, 0, &d), -EINVAL);

  /* A second layer maps it further up the lower device's address space. */
  ck_assert_int_eq (ibc_ctx_remap (&l, 8192, 4096, 10 * MiB, &l2), 0);
  ck_assert_int_eq (ibc_ctx_dun_at (&l2, 10 * MiB, &d), 0);
  ck_assert_uint_eq (d.w[0], 117);
  ck_assert_uint_eq (l2.lo, 10 * MiB);
  ck_assert_uint_eq (l2.hi, 10 * MiB + 4096);

  /* Pieces must lie inside the valid range; results untouched on error. */
  l2 = l;
  ck_assert_int_eq (ibc_ctx_remap (&c, 1 * MiB - 4096, 8192, 0, &l2), -EINVAL);
  ck_assert_int_eq (ibc_ctx_remap (&c, 1 * MiB, 4096, 0, &l2), -EINVAL);
  ck_assert_int_eq (ibc_ctx_remap (&c, 0, 0, 0, &l2), -EINVAL);
  ck_assert_int_eq (ibc_ctx_remap (&c, 0, 4096, UINT64_MAX - 100, &l2),
                    -EINVAL);
  ck_assert (ctx_eq (&l2, &l));

  /* Across the 64-bit word: DUN 2^64 - 1 at 0; remapped piece 2 units in. */
  c = crypto_ctx (UINT64_MAX, 0, 512, 0, 1 * MiB);
  ck_assert_int_eq (ibc_ctx_remap (&c, 1024, 1024, 7 * 512, &l), 0);
  ck_assert_int_eq (ibc_ctx_dun_at (&l, 7 * 512, &d), 0);
  ck_assert_uint_eq (d.w[0], 1);
  ck_assert_uint_eq (d.w[1], 1);
  ck_assert_int_eq (ibc_ctx_dun_at (&l, 8 * 512, &d), 0);
  ck_assert_uint_eq (d.w[0], 2);
  ck_assert_uint_eq (d.w[1], 1);

  /* Plain contexts remap their range the same way. */
  struct ibc_crypt_ctx p = { .kind = IBC_CTX_PLAIN, .lo = 512, .hi = 4096 };
  ck_assert_int_eq (ibc_ctx_remap (&p, 1024, 512, 0, &l), 0);
  ck_assert_int_eq (l.kind, IBC_CTX_PLAIN);
  ck_assert_uint_eq (l.lo, 0);
  ck_assert_uint_eq (l.hi, 512);
}
END_TEST

static Suite *
ctx_suite (void)
{
  Suite *s = suite_create ("ctx");
  TCase *tc = tcase_create ("ctx");
  tcase_add_test (tc, test_push_pop);
  tcase_add_test (tc, test_thread_isolation);
  tcase_add_test (tc, test_upper_present);
  tcase_add_test (tc, test_dun_at);
  tcase_add_test (tc, test_dun_at_carry);
  tcase_add_test (tc, test_remap);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (ctx_suite)
