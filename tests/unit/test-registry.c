/* Unit tests: the layer/device registry (stacking, lookups, caps, evict). */
#include <errno.h>
#include <string.h>

#include "ibc-check.h"
#include "ibcrypt/registry.h"

static int evictions;

static int
fake_program (struct ibc_profile *p, const struct ibc_key *k, unsigned slot,
              void *opaque)
{
  (void) p, (void) k, (void) slot, (void) opaque;
  return 0;
}

static int
fake_evict (struct ibc_profile *p, const struct ibc_key *k, int slot,
            void *opaque)
{
  (void) p, (void) k, (void) slot, (void) opaque;
  evictions++;
  return 0;
}

static const struct ibc_profile_ops ops = {
  .keyslot_program = fake_program,
  .keyslot_evict = fake_evict,
};

static struct ibc_profile *
profile_of (const char *modes, unsigned dun_bytes)
{
  struct ibc_caps caps;
  struct ibc_profile *p;

  ibc_caps_init_none (&caps);
  ck_assert_int_eq (ibc_caps_parse_modes (modes, &caps), 0);
  caps.max_dun_bytes = dun_bytes;
  caps.key_types = IBC_KEY_TYPE_RAW;
  ck_assert_int_eq (ibc_profile_new (2, &caps, &ops, NULL, &p), 0);
  return p;
}

START_TEST (test_layer_devices)
{
  struct ibc_layer *l;
  const uint64_t M = 1 << 20;

  ck_assert_int_eq (ibc_layer_new (IBC_LAYER_KEYSLOT, "bad name", &l), -EINVAL);
  ck_assert_int_eq (ibc_layer_new (IBC_LAYER_KEYSLOT, "ks", &l), 0);
  ck_assert_int_eq (ibc_layer_add_device (l, "d1", 4 * M, 4 * M, NULL, NULL),
                    0);
  ck_assert_int_eq (ibc_layer_add_device (l, "d0", 0, 2 * M, NULL, NULL), 0);
  /* Overlaps (either side), duplicate names, empty and bad names. */
  ck_assert_int_eq (ibc_layer_add_device (l, "x", M, 2 * M, NULL, NULL),
                    -EINVAL);
  ck_assert_int_eq (ibc_layer_add_device (l, "x", 7 * M, 2 * M, NULL, NULL),
                    -EINVAL);
  ck_assert_int_eq (ibc_layer_add_device (l, "x", 3 * M, 2 * M, NULL, NULL),
                    -EINVAL);
  ck_assert_int_eq (ibc_layer_add_device (l, "d0", 9 * M, M, NULL, NULL),
                    -EEXIST);
  ck_assert_int_eq (ibc_layer_add_device (l, "x", 9 * M, 0, NULL, NULL),
                    -EINVAL);
  ck_assert_int_eq (ibc_layer_add_device (l, "a/b", 9 * M, M, NULL, NULL),
                    -EINVAL);

  /* Sorted by start regardless of insertion order. */
  ck_assert_uint_eq (ibc_layer_num_devices (l), 2);
  ck_assert_str_eq (ibc_layer_device (l, 0)->name, "d0");
  ck_assert_str_eq (ibc_layer_device (l, 1)->name, "d1");
  ck_assert_ptr_null (ibc_layer_device (l, 2));

  ck_assert_str_eq (ibc_layer_device_at (l, 0)->name, "d0");
  ck_assert_str_eq (ibc_layer_device_at (l, 2 * M - 1)->name, "d0");
  ck_assert_ptr_null (ibc_layer_device_at (l, 2 * M));
  ck_assert_ptr_null (ibc_layer_device_at (l, 4 * M - 1));
  ck_assert_str_eq (ibc_layer_device_at (l, 4 * M)->name, "d1");
  ck_assert_ptr_null (ibc_layer_device_at (l, 8 * M));
  ck_assert_str_eq (ibc_layer_find_device (l, "d1")->name, "d1");
  ck_assert_ptr_null (ibc_layer_find_device (l, "d2"));

  /* Split points: device end, gap end, request end. */
  ck_assert_uint_eq (ibc_layer_split_point (l, 0, 10 * M), 2 * M);
  ck_assert_uint_eq (ibc_layer_split_point (l, M, 100), M + 100);
  ck_assert_uint_eq (ibc_layer_split_point (l, 2 * M, 10 * M), 4 * M);
  ck_assert_uint_eq (ibc_layer_split_point (l, 5 * M, 10 * M), 8 * M);
  ck_assert_uint_eq (ibc_layer_split_point (l, 8 * M, 10 * M), 18 * M);
  ibc_layer_free (l);
}
END_TEST

START_TEST (test_stacking_and_caps)
{
  struct ibc_layer *ks, *pt;
  struct ibc_profile *p0 = profile_of ("aes-xts:512+4096,adiantum:4096", 8);
  struct ibc_profile *p1 = profile_of ("aes-xts:4096", 4);
  struct ibc_caps caps;
  const uint64_t M = 1 << 20;

  ck_assert_ptr_null (ibc_registry_top ());
  ck_assert_int_eq (ibc_layer_new (IBC_LAYER_KEYSLOT, "ks", &ks), 0);
  ck_assert_int_eq (ibc_layer_add_device (ks, "d0", 0, 4 * M, p0, NULL), 0);
  ck_assert_int_eq (ibc_layer_add_device (ks, "d1", 4 * M, 4 * M, p1, NULL), 0);
  ck_assert_int_eq (ibc_layer_publish (ks), 0);
  ck_assert_int_eq (ibc_layer_publish (ks), -EBUSY);
  ck_assert_int_eq (ibc_layer_add_device (ks, "d2", 9 * M, M, NULL, NULL),
                    -EBUSY);
  ck_assert_ptr_eq (ibc_registry_top (), ks);

  ck_assert_int_eq (ibc_layer_new (IBC_LAYER_PASSTHROUGH, "dm", &pt), 0);
  ck_assert_int_eq (ibc_layer_publish (pt), 0);
  ck_assert_ptr_eq (ibc_layer_below (pt), ks);
  ck_assert_ptr_eq (ibc_layer_above (ks), pt);
  ck_assert_ptr_null (ibc_layer_above (pt));
  ck_assert_ptr_null (ibc_layer_below (ks));
  ck_assert_int_eq (ibc_layer_kind (pt), IBC_LAYER_PASSTHROUGH);
  ck_assert_str_eq (ibc_layer_name (pt), "dm");

  /* Within d0 only, across both, and reaching past the devices. */
  ibc_layer_caps_for_range (ks, 0, 4 * M, &caps);
  ck_assert_uint_eq (caps.modes[IBC_MODE_ADIANTUM], 4096);
  ck_assert_uint_eq (caps.max_dun_bytes, 8);
  ibc_layer_caps_for_range (ks, 3 * M, 2 * M, &caps);
  ck_assert_uint_eq (caps.modes[IBC_MODE_AES_256_XTS], 4096);
  ck_assert_uint_eq (caps.modes[IBC_MODE_ADIANTUM], 0);
  ck_assert_uint_eq (caps.max_dun_bytes, 4);
  ibc_layer_caps_for_range (ks, 7 * M, 2 * M, &caps);
  ck_assert (ibc_caps_empty (&caps));

  /* Eviction reaches every device's profile. */
  uint8_t bytes[64] = { 1 };
  struct ibc_crypto_config cfg
      = { IBC_MODE_AES_256_XTS, 4096, 4, IBC_KEY_TYPE_RAW };
  struct ibc_key *k;
  struct ibc_keyslot *s0, *s1;
  ck_assert_int_eq (ibc_key_new (&cfg, bytes, 64, &k), 0);
  ck_assert_int_eq (ibc_profile_get_keyslot (p0, k, &s0), 0);
  ck_assert_int_eq (ibc_profile_get_keyslot (p1, k, &s1), 0);
  ibc_keyslot_put (s0);
  evictions = 0;
  /* Busy in d1: EBUSY, but d0 is still evicted. */
  ck_assert_int_eq (ibc_layer_evict_key (ks, k), -EBUSY);
  ck_assert_int_eq (evictions, 1);
  ibc_keyslot_put (s1);
  /* Unlinked by the EBUSY attempt; what it left in d1's slot is evicted
   * now that the slot is idle. */
  ck_assert_int_eq (ibc_layer_evict_key (ks, k), 0);
  ck_assert_int_eq (evictions, 2);
  ck_assert_int_eq (ibc_layer_evict_key (ks, k), 0);
  ck_assert_int_eq (evictions, 2);

  ibc_layer_free (pt);
  ck_assert_ptr_eq (ibc_registry_top (), ks);
  ck_assert_ptr_null (ibc_layer_above (ks));
  ibc_layer_free (ks);
  ck_assert_ptr_null (ibc_registry_top ());
  ibc_profile_free (p0);
  ibc_profile_free (p1);
  ibc_key_unref (k);
}
END_TEST

static Suite *
registry_suite (void)
{
  Suite *s = suite_create ("registry");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_layer_devices);
  tcase_add_test (tc, test_stacking_and_caps);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (registry_suite)
