/* Unit tests: keys (validation, ids, refcounts) and key memory hygiene. */
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ibc-check.h"
#include "ibcrypt/key.h"
#include "ibcrypt/secmem.h"

static const struct ibc_crypto_config xts_cfg = {
  .mode = IBC_MODE_AES_256_XTS,
  .data_unit_size = 4096,
  .dun_bytes = 8,
  .key_type = IBC_KEY_TYPE_RAW,
};

START_TEST (test_key_new_and_id)
{
  uint8_t bytes[64];
  struct ibc_key *a, *b, *c;
  struct ibc_crypto_config other = xts_cfg;

  for (int i = 0; i < 64; i++)
    bytes[i] = (uint8_t) i;
  ck_assert_int_eq (ibc_key_new (&xts_cfg, bytes, 64, &a), 0);
  ck_assert_int_eq (ibc_key_new (&xts_cfg, bytes, 64, &b), 0);
  other.data_unit_size = 512;
  ck_assert_int_eq (ibc_key_new (&other, bytes, 64, &c), 0);

  ck_assert_uint_eq (ibc_key_size (a), 64);
  ck_assert_mem_eq (ibc_key_bytes (a), bytes, 64);
  ck_assert_int_eq (ibc_key_config (a)->data_unit_size, 4096);
  /* A copy, not the caller's buffer. */
  ck_assert_ptr_ne (ibc_key_bytes (a), bytes);

  /* The id: fixed length, lower-case hex, deterministic, config-bound. */
  const char *id = ibc_key_id (a);
  ck_assert_uint_eq (strlen (id), IBC_KEY_ID_STRLEN);
  for (const char *p = id; *p; p++)
    ck_assert (isxdigit ((unsigned char) *p) && !isupper ((unsigned char) *p));
  ck_assert_str_eq (ibc_key_id (a), ibc_key_id (b));
  ck_assert_str_ne (ibc_key_id (a), ibc_key_id (c));

  /* It reveals nothing of the bytes: no 4-byte run of them in the id. */
  char hex[129];
  sodium_bin2hex (hex, sizeof hex, bytes, 64);
  for (int i = 0; i + 8 <= 128; i += 2) {
    char run[9];
    memcpy (run, hex + i, 8);
    run[8] = '\0';
    ck_assert_ptr_null (strstr (id, run));
  }

  bytes[0] ^= 1;
  struct ibc_key *d;
  ck_assert_int_eq (ibc_key_new (&xts_cfg, bytes, 64, &d), 0);
  ck_assert_str_ne (ibc_key_id (a), ibc_key_id (d));

  ibc_key_unref (a);
  ibc_key_unref (b);
  ibc_key_unref (c);
  ibc_key_unref (d);
  ibc_key_unref (NULL);
}
END_TEST

START_TEST (test_key_new_rejects)
{
  uint8_t bytes[64] = { 0 };
  struct ibc_key *k = (struct ibc_key *) 0x1;
  struct ibc_crypto_config c = xts_cfg;

  ck_assert_int_eq (ibc_key_new (&c, bytes, 32, &k), -EINVAL);
  ck_assert_ptr_eq (k, (struct ibc_key *) 0x1); /* untouched on failure */
  c.dun_bytes = 17;
  ck_assert_int_eq (ibc_key_new (&c, bytes, 64, &k), -EINVAL);
  c = xts_cfg;
  c.data_unit_size = 1000;
  ck_assert_int_eq (ibc_key_new (&c, bytes, 64, &k), -EINVAL);
  c = xts_cfg;
  ck_assert_int_eq (ibc_key_new (&c, NULL, 64, &k), -EINVAL);
  ck_assert_ptr_eq (k, (struct ibc_key *) 0x1);
}
END_TEST

/* The free hook sees every region released by ibc_secmem_free. */
static int frees_seen;
static int frees_dirty;
static size_t last_free_size;

static void
check_wiped (const void *p, size_t size)
{
  const uint8_t *b = p;

  frees_seen++;
  last_free_size = size;
  for (size_t i = 0; i < size; i++)
    if (b[i] != 0) {
      frees_dirty++;
      return;
    }
}

START_TEST (test_key_wiped_on_last_unref)
{
  uint8_t bytes[64];
  struct ibc_key *k;

  memset (bytes, 0x5c, sizeof bytes);
  frees_seen = frees_dirty = 0;
  ibc_secmem_set_free_hook (check_wiped);
  ck_assert_int_eq (ibc_key_new (&xts_cfg, bytes, 64, &k), 0);
  ck_assert_ptr_eq (ibc_key_ref (k), k);
  ibc_key_unref (k);
  ck_assert_int_eq (frees_seen, 0); /* one reference left: still alive */
  ck_assert_mem_eq (ibc_key_bytes (k), bytes, 64);
  ibc_key_unref (k);
  ck_assert_int_eq (frees_seen, 1);  /* the last unref released it ... */
  ck_assert_int_eq (frees_dirty, 0); /* ... wiped */
  ck_assert_uint_eq (last_free_size, 64);
  ibc_secmem_set_free_hook (NULL);
}
END_TEST

/* Count occurrences of needle in the readable private mappings of this
 * process that are not mlock()ed, reading them directly. */
static int
count_in_unlocked_memory (const uint8_t *needle, size_t n)
{
  FILE *f = fopen ("/proc/self/smaps", "r");
  char line[512];
  unsigned long lo = 0, hi = 0;
  char perms[8] = "";
  int found = 0;

  ck_assert_ptr_nonnull (f);
  while (fgets (line, sizeof line, f)) {
    unsigned long a, b, locked_kb;

    if (sscanf (line, "%lx-%lx %7s", &a, &b, perms) == 3) {
      lo = a;
      hi = b;
      continue;
    }
    if (sscanf (line, "Locked: %lu kB", &locked_kb) != 1)
      continue;
    /* "Locked:" closes each mapping's block: decide now. */
    if (locked_kb > 0 || perms[0] != 'r' || perms[1] != 'w')
      continue;
    if (strstr (perms, "s"))
      continue;
    for (const uint8_t *p = (const uint8_t *) lo; p + n <= (const uint8_t *) hi;
         p++) {
      if (*p == needle[0] && memcmp (p, needle, n) == 0) {
        if (getenv ("IBC_DEBUG_SCAN"))
          fprintf (stderr, "found at %p in %lx-%lx %s\n", (void *) p, lo, hi,
                   perms);
        found++;
      }
    }
  }
  fclose (f);
  return found;
}

/* The scan reads every private mapping raw: AddressSanitizer's shadow
 * mappings and valgrind's bookkeeping make that meaningless (and unsafe),
 * so it runs only in the plain build (ctest runs that one). */
static bool
memory_is_instrumented (void)
{
#if defined(__SANITIZE_ADDRESS__)
  return true;
#else
  const char *preload = getenv ("LD_PRELOAD");
  return preload && strstr (preload, "vgpreload");
#endif
}

START_TEST (test_key_not_copied_unlocked)
{
  if (memory_is_instrumented ()) {
    fprintf (stderr, "test_key_not_copied_unlocked: skipped under "
                     "ASan/valgrind\n");
    return;
  }
  /* The source bytes live in locked memory too, so any copy the scan finds
   * was made by the library. */
  uint8_t *src = ibc_secmem_alloc (64);
  uint8_t *needle = ibc_secmem_alloc (32);
  struct ibc_key *k;

  ck_assert_ptr_nonnull (src);
  randombytes_buf (src, 64);
  memcpy (needle, src + 16, 32);
  ck_assert_int_eq (ibc_key_new (&xts_cfg, src, 64, &k), 0);
  ck_assert_str_ne (ibc_key_id (k), "");
  /* A planted copy proves the scan can find one. */
  static uint8_t planted[64];
  memcpy (planted, src, 64);
  ck_assert_int_ge (count_in_unlocked_memory (needle, 32), 1);
  sodium_memzero (planted, sizeof planted);
  ck_assert_int_eq (count_in_unlocked_memory (needle, 32), 0);
  ibc_key_unref (k);
  ibc_secmem_free (src, 64);
  ibc_secmem_free (needle, 32);
}
END_TEST

START_TEST (test_secmem_cmp)
{
  uint8_t a[32] = { 1, 2, 3 }, b[32] = { 1, 2, 3 };

  ck_assert_int_eq (ibc_secmem_cmp (a, b, 32), 0);
  b[31] = 9;
  ck_assert_int_ne (ibc_secmem_cmp (a, b, 32), 0);
  ibc_secmem_wipe (a, sizeof a);
  ck_assert_uint_eq (a[0] | a[1] | a[2], 0);
  ibc_secmem_free (NULL, 10);
}
END_TEST

static Suite *
key_suite (void)
{
  Suite *s = suite_create ("key");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_key_new_and_id);
  tcase_add_test (tc, test_key_new_rejects);
  tcase_add_test (tc, test_key_wiped_on_last_unref);
  tcase_add_test (tc, test_key_not_copied_unlocked);
  tcase_add_test (tc, test_secmem_cmp);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (key_suite)
