/* Unit tests: 256-bit DUN arithmetic and IV derivation. */
#include <string.h>

#include "ibc-check.h"
#include "ibcrypt/dun.h"

START_TEST (test_dun_add_carry)
{
  struct ibc_dun d = ibc_dun_from_u64 (UINT64_MAX);

  ibc_dun_add (&d, 1);
  ck_assert_uint_eq (d.w[0], 0);
  ck_assert_uint_eq (d.w[1], 1);
  ck_assert_uint_eq (d.w[2], 0);

  /* Carry ripples through several full words. */
  struct ibc_dun e = { { UINT64_MAX, UINT64_MAX, UINT64_MAX, 7 } };
  ibc_dun_add (&e, 2);
  ck_assert_uint_eq (e.w[0], 1);
  ck_assert_uint_eq (e.w[1], 0);
  ck_assert_uint_eq (e.w[2], 0);
  ck_assert_uint_eq (e.w[3], 8);

  /* Overflow out of the top word wraps to zero (kernel semantics). */
  struct ibc_dun f = { { UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX } };
  ibc_dun_add (&f, 1);
  for (int i = 0; i < 4; i++)
    ck_assert_uint_eq (f.w[i], 0);

  /* Large increments. */
  struct ibc_dun g = ibc_dun_from_u64 (UINT64_MAX - 5);
  ibc_dun_add (&g, 10);
  ck_assert_uint_eq (g.w[0], 4);
  ck_assert_uint_eq (g.w[1], 1);
}
END_TEST

START_TEST (test_dun_contiguous)
{
  struct ibc_dun a = ibc_dun_from_u64 (100), b = ibc_dun_from_u64 (108);

  ck_assert (ibc_dun_is_contiguous (&a, 8, &b));
  ck_assert (!ibc_dun_is_contiguous (&a, 7, &b));
  ck_assert (!ibc_dun_is_contiguous (&a, 9, &b));

  struct ibc_dun c = ibc_dun_from_u64 (UINT64_MAX);
  struct ibc_dun d = { { 0, 1, 0, 0 } };
  ck_assert (ibc_dun_is_contiguous (&c, 1, &d));
  struct ibc_dun d2 = { { 0, 0, 0, 0 } };
  ck_assert (!ibc_dun_is_contiguous (&c, 1, &d2));

  /* Wrapping through zero is never contiguous. */
  struct ibc_dun top = { { UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX } };
  struct ibc_dun zero = { { 0, 0, 0, 0 } };
  ck_assert (!ibc_dun_is_contiguous (&top, 1, &zero));
  struct ibc_dun one = { { 1, 0, 0, 0 } };
  ck_assert (!ibc_dun_is_contiguous (&top, 2, &one));
}
END_TEST

START_TEST (test_dun_to_iv)
{
  struct ibc_dun d = { { 0x0807060504030201ull, 0x100f0e0d0c0b0a09ull,
                         0x1817161514131211ull, 0x201f1e1d1c1b1a19ull } };
  uint8_t iv[32], want[32];

  for (int i = 0; i < 32; i++)
    want[i] = (uint8_t) (i + 1);
  memset (iv, 0xaa, sizeof iv);
  ibc_dun_to_iv (&d, iv, 32);
  ck_assert_mem_eq (iv, want, 32);

  /* Truncated to 16 bytes: bytes past the IV size are not written. */
  memset (iv, 0xaa, sizeof iv);
  ibc_dun_to_iv (&d, iv, 16);
  ck_assert_mem_eq (iv, want, 16);
  ck_assert_uint_eq (iv[16], 0xaa);

  struct ibc_dun s = ibc_dun_from_u64 (1);
  uint8_t iv16[16], want16[16] = { 1 };
  ibc_dun_to_iv (&s, iv16, 16);
  ck_assert_mem_eq (iv16, want16, 16);
}
END_TEST

START_TEST (test_dun_bytes)
{
  struct ibc_dun d = ibc_dun_from_u64 (0);

  ck_assert_uint_eq (ibc_dun_bytes_needed (&d), 0);
  d = ibc_dun_from_u64 (255);
  ck_assert_uint_eq (ibc_dun_bytes_needed (&d), 1);
  d = ibc_dun_from_u64 (256);
  ck_assert_uint_eq (ibc_dun_bytes_needed (&d), 2);
  d = ibc_dun_from_u64 (262143);
  ck_assert_uint_eq (ibc_dun_bytes_needed (&d), 3);
  d = ibc_dun_from_u64 (UINT64_MAX);
  ck_assert_uint_eq (ibc_dun_bytes_needed (&d), 8);
  ck_assert (ibc_dun_fits (&d, 8));
  ck_assert (!ibc_dun_fits (&d, 7));
  struct ibc_dun big = { { 0, 1, 0, 0 } };
  ck_assert_uint_eq (ibc_dun_bytes_needed (&big), 9);
  struct ibc_dun top = { { 0, 0, 0, 1ull << 63 } };
  ck_assert_uint_eq (ibc_dun_bytes_needed (&top), 32);

  ck_assert_int_eq (ibc_dun_cmp (&big, &d), 1);
  ck_assert_int_eq (ibc_dun_cmp (&d, &big), -1);
  ck_assert_int_eq (ibc_dun_cmp (&d, &d), 0);
}
END_TEST

static Suite *
dun_suite (void)
{
  Suite *s = suite_create ("dun");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_dun_add_carry);
  tcase_add_test (tc, test_dun_contiguous);
  tcase_add_test (tc, test_dun_to_iv);
  tcase_add_test (tc, test_dun_bytes);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (dun_suite)
