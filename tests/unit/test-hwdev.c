/* Unit tests: emulated inline-encryption devices (spec, crypt, knobs, reset). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "ibc-check.h"
#include "ibcrypt/cipher.h"
#include "ibcrypt/hwdev.h"

static struct ibc_key *
xts_key (uint8_t fill, uint32_t dus, uint32_t dun_bytes)
{
  uint8_t bytes[64];
  struct ibc_crypto_config cfg
      = { IBC_MODE_AES_256_XTS, dus, dun_bytes, IBC_KEY_TYPE_RAW };
  struct ibc_key *k;

  for (int i = 0; i < 64; i++)
    bytes[i] = (uint8_t) (fill + i);
  ck_assert_int_eq (ibc_key_new (&cfg, bytes, 64, &k), 0);
  return k;
}

START_TEST (test_spec_parse)
{
  struct ibc_hwdev_spec s;
  char err[128];

  ck_assert_int_eq (ibc_hwdev_spec_parse ("d0", &s, err, sizeof err), 0);
  ck_assert_str_eq (s.name, "d0");
  ck_assert_uint_eq (s.slots, 8);
  ck_assert_uint_eq (s.caps.modes[IBC_MODE_AES_256_XTS], 512 | 4096);
  ck_assert_uint_eq (s.size, 0);

  ck_assert_int_eq (
      ibc_hwdev_spec_parse ("d1,start=1M,size=2M,slots=0,modes=xchacha12,"
                            "aes-adiantum-plain64:4096,aes-xts-plain64:512,"
                            "dun-bytes=4,key-types=raw+hw-wrapped,"
                            "integrity=yes",
                            &s, err, sizeof err),
      0);
  ck_assert_uint_eq (s.start, 1 << 20);
  ck_assert_uint_eq (s.size, 2 << 20);
  ck_assert_uint_eq (s.slots, 0);
  ck_assert_uint_eq (s.caps.modes[IBC_MODE_ADIANTUM], 4096);
  ck_assert_uint_eq (s.caps.modes[IBC_MODE_AES_256_XTS], 512);
  ck_assert_uint_eq (s.caps.max_dun_bytes, 4);
  ck_assert_uint_eq (s.caps.key_types, IBC_KEY_TYPES_ALL);
  ck_assert (s.integrity);

  struct {
    const char *spec, *msg;
  } bad[] = {
    { "", "invalid device name ''" },
    { "a b", "invalid device name 'a b'" },
    { "d0,slots", "expected key=value, got 'slots'" },
    { "d0,slots=x", "invalid slots 'x'" },
    { "d0,colour=red", "unknown field 'colour'" },
    { "d0,modes=aes-xts:3000", "invalid modes 'aes-xts:3000'" },
    { "d0,dun-bytes=33", "invalid dun-bytes '33'" },
    { "d0,key-types=wrapped", "invalid key-types 'wrapped'" },
    { "d0,integrity=maybe", "invalid integrity 'maybe'" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    ck_assert_int_eq (ibc_hwdev_spec_parse (bad[i].spec, &s, err, sizeof err),
                      -EINVAL);
    ck_assert_str_eq (err, bad[i].msg);
  }
}
END_TEST

/* The device computes what the cipher engine computes. */
START_TEST (test_crypt_matches_cipher)
{
  struct ibc_hwdev_spec s;
  struct ibc_hwdev *dev;
  struct ibc_key *k = xts_key (1, 4096, 8);
  struct ibc_cipher *c;
  struct ibc_dun dun = ibc_dun_from_u64 (UINT64_MAX);
  static uint8_t in[3 * 4096], out[sizeof in], want[sizeof in];
  char err[64];

  randombytes_buf (in, sizeof in);
  ck_assert_int_eq (
      ibc_hwdev_spec_parse ("d0,size=1M,slots=2", &s, err, sizeof err), 0);
  ck_assert_int_eq (ibc_hwdev_new (&s, NULL, &dev), 0);
  ck_assert_int_eq (ibc_cipher_new (k, &c), 0);
  ck_assert_int_eq (ibc_cipher_encrypt (c, &dun, in, want, sizeof in), 0);
  ck_assert_int_eq (ibc_hwdev_crypt (dev, k, &dun, in, out, sizeof in, true),
                    0);
  ck_assert_mem_eq (out, want, sizeof out);
  ck_assert_int_eq (ibc_hwdev_crypt (dev, k, &dun, out, out, sizeof out, false),
                    0);
  ck_assert_mem_eq (out, in, sizeof in);
  /* Not whole data units. */
  ck_assert_int_eq (ibc_hwdev_crypt (dev, k, &dun, in, out, 512, true),
                    -EINVAL);

  struct ibc_hwdev_stats st;
  ibc_hwdev_get_stats (dev, &st);
  ck_assert_uint_eq (st.crypt_requests, 2);
  ck_assert_uint_eq (st.crypt_bytes, 2 * sizeof in);
  struct ibc_profile_stats ps;
  ibc_profile_get_stats (ibc_hwdev_profile (dev), &ps);
  ck_assert_uint_eq (ps.programs, 1);

  /* Unsupported configs: a DUN wider than the device, another mode. */
  struct ibc_key *wide = xts_key (2, 4096, 9);
  ck_assert_int_eq (ibc_hwdev_crypt (dev, wide, &dun, in, out, 4096, true),
                    -EOPNOTSUPP);
  ibc_key_unref (wide);
  ibc_cipher_free (c);
  ibc_hwdev_free (dev);
  ibc_key_unref (k);
}
END_TEST

START_TEST (test_raw_key_per_request_and_integrity)
{
  struct ibc_hwdev_spec s;
  struct ibc_hwdev *dev;
  struct ibc_key *k = xts_key (3, 512, 8);
  struct ibc_dun dun = ibc_dun_from_u64 (7);
  uint8_t buf[1024] = { 0 };
  char err[64];

  ck_assert_int_eq (
      ibc_hwdev_spec_parse ("raw,size=1M,slots=0", &s, err, sizeof err), 0);
  ck_assert_int_eq (ibc_hwdev_new (&s, NULL, &dev), 0);
  ck_assert_uint_eq (ibc_profile_num_slots (ibc_hwdev_profile (dev)), 0);
  ck_assert_int_eq (ibc_hwdev_crypt (dev, k, &dun, buf, buf, 1024, true), 0);
  ck_assert_int_eq (ibc_hwdev_crypt (dev, k, &dun, buf, buf, 1024, false), 0);
  for (int i = 0; i < 1024; i++)
    ck_assert_uint_eq (buf[i], 0);
  struct ibc_hwdev_stats st;
  ibc_hwdev_get_stats (dev, &st);
  ck_assert_uint_eq (st.raw_key_setups, 2);
  ibc_hwdev_free (dev);

  ck_assert_int_eq (
      ibc_hwdev_spec_parse ("int,size=1M,integrity=yes", &s, err, sizeof err),
      0);
  ck_assert_int_eq (ibc_hwdev_new (&s, NULL, &dev), 0);
  ck_assert_ptr_null (ibc_hwdev_profile (dev));
  ck_assert_int_eq (ibc_hwdev_crypt (dev, k, &dun, buf, buf, 1024, true),
                    -EOPNOTSUPP);
  ck_assert_int_eq (ibc_hwdev_reset (dev), 0);
  ibc_hwdev_free (dev);
  ibc_key_unref (k);
}
END_TEST

START_TEST (test_program_failure_and_reset)
{
  struct ibc_hwdev_spec s;
  struct ibc_hwdev *dev;
  struct ibc_hwdev_knobs always_fail = { .program_fail_ppm = 1000000 };
  struct ibc_key *a = xts_key (4, 4096, 8), *b = xts_key (5, 4096, 8);
  struct ibc_dun dun = ibc_dun_from_u64 (0);
  static uint8_t buf[4096], enc_a[4096];
  char err[64];

  ck_assert_int_eq (
      ibc_hwdev_spec_parse ("d0,size=1M,slots=2", &s, err, sizeof err), 0);
  ck_assert_int_eq (ibc_hwdev_new (&s, &always_fail, &dev), 0);
  ck_assert_int_eq (ibc_hwdev_crypt (dev, a, &dun, buf, buf, 4096, true), -EIO);
  struct ibc_hwdev_stats st;
  ibc_hwdev_get_stats (dev, &st);
  ck_assert_uint_eq (st.injected_failures, 1);
  ck_assert_uint_eq (st.crypt_requests, 0);
  ibc_hwdev_free (dev);

  /* Reset: both programmed keys are reprogrammed and still work. */
  ck_assert_int_eq (ibc_hwdev_new (&s, NULL, &dev), 0);
  ck_assert_int_eq (ibc_hwdev_crypt (dev, a, &dun, buf, enc_a, 4096, true), 0);
  ck_assert_int_eq (ibc_hwdev_crypt (dev, b, &dun, buf, buf, 4096, true), 0);
  ck_assert_int_eq (ibc_hwdev_reset (dev), 0);
  struct ibc_profile_stats ps;
  ibc_profile_get_stats (ibc_hwdev_profile (dev), &ps);
  ck_assert_uint_eq (ps.programs, 4);
  ibc_hwdev_get_stats (dev, &st);
  ck_assert_uint_eq (st.resets, 1);
  static uint8_t again[4096];
  memset (buf, 0, sizeof buf);
  ck_assert_int_eq (ibc_hwdev_crypt (dev, a, &dun, buf, again, 4096, true), 0);
  ck_assert_mem_eq (again, enc_a, 4096);
  ibc_profile_get_stats (ibc_hwdev_profile (dev), &ps);
  ck_assert_uint_eq (ps.programs, 4); /* a was still in its slot */
  ibc_hwdev_free (dev);
  ibc_key_unref (a);
  ibc_key_unref (b);
}
END_TEST

/* Threads en/decrypting with two keys while the main thread evicts one of
 * them over and over: evicting a key with I/O in flight is -EBUSY, the
 * others succeed, and every result is still right. */
struct evict_io {
  struct ibc_hwdev *dev;
  struct ibc_key *key;
  const uint8_t *plain, *want;
  atomic_bool *stop;
  long runs, bad;
};

static void *
evict_io_thread (void *arg)
{
  struct evict_io *io = arg;
  static _Thread_local uint8_t buf[8 * 4096];
  struct ibc_dun dun = ibc_dun_from_u64 (1000);

  while (!atomic_load (io->stop)) {
    if (ibc_hwdev_crypt (io->dev, io->key, &dun, io->plain, buf, sizeof buf,
                         true)
            != 0
        || memcmp (buf, io->want, sizeof buf) != 0)
      io->bad++;
    io->runs++;
  }
  return NULL;
}

START_TEST (test_evict_with_io_in_flight)
{
  struct ibc_hwdev_spec s;
  struct ibc_hwdev *dev;
  struct ibc_key *keys[2] = { xts_key (10, 4096, 8), xts_key (90, 4096, 8) };
  static uint8_t plain[8 * 4096], want[2][8 * 4096];
  struct ibc_dun dun = ibc_dun_from_u64 (1000);
  struct evict_io io[4];
  pthread_t th[4];
  atomic_bool stop = false;
  long busy = 0, done = 0;
  char err[64];

  randombytes_buf (plain, sizeof plain);
  ck_assert_int_eq (
      ibc_hwdev_spec_parse ("d0,size=1M,slots=2", &s, err, sizeof err), 0);
  /* The engine holds each slot 200 us per request (a slow inline engine),
   * so evictions meet keys in flight even when threads are serialised
   * (valgrind switches threads on the sleep). */
  struct ibc_hwdev_knobs slow = { .crypt_delay_us = 200 };
  ck_assert_int_eq (ibc_hwdev_new (&s, &slow, &dev), 0);
  for (int k = 0; k < 2; k++) {
    struct ibc_cipher *c;
    ck_assert_int_eq (ibc_cipher_new (keys[k], &c), 0);
    ck_assert_int_eq (
        ibc_cipher_encrypt (c, &dun, plain, want[k], sizeof plain), 0);
    ibc_cipher_free (c);
  }
  for (int t = 0; t < 4; t++) {
    io[t] = (struct evict_io){
      dev, keys[t % 2], plain, want[t % 2], &stop, 0, 0
    };
    pthread_create (&th[t], NULL, evict_io_thread, &io[t]);
  }
  for (int i = 0;
       i < (getenv ("IBC_TEST_QUICK") ? 200 : 20000) || busy == 0 || done == 0;
       i++) {
    int r = ibc_profile_evict_key (ibc_hwdev_profile (dev), keys[0]);
    ck_assert (r == 0 || r == -EBUSY);
    busy += r == -EBUSY;
    done += r == 0;
    if (i > 2000000)
      break;
  }
  atomic_store (&stop, true);
  for (int t = 0; t < 4; t++) {
    pthread_join (th[t], NULL);
    ck_assert_int_eq (io[t].bad, 0);
    ck_assert_int_gt (io[t].runs, 0);
  }
  ck_assert_int_gt (busy, 0);
  ck_assert_int_gt (done, 0);
  ibc_hwdev_free (dev);
  ibc_key_unref (keys[0]);
  ibc_key_unref (keys[1]);
}
END_TEST

static Suite *
hwdev_suite (void)
{
  Suite *s = suite_create ("hwdev");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_spec_parse);
  tcase_add_test (tc, test_crypt_matches_cipher);
  tcase_add_test (tc, test_raw_key_per_request_and_integrity);
  tcase_add_test (tc, test_program_failure_and_reset);
  tcase_add_test (tc, test_evict_with_io_in_flight);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (hwdev_suite)
