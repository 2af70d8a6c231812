/* Unit tests: mapped devices (resolve, caps, load/resume, evict, mapping). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ibc-check.h"
#include "ibcrypt/dm.h"
#include "ibcrypt/hwdev.h"

#define M (1ull << 20)
#define XTS IBC_MODE_AES_256_XTS
#define ADI IBC_MODE_ADIANTUM

/* The keyslot layer below: d0 = [0, 32M) with AES-XTS 512+4096 and
 * Adiantum 4096, 8 DUN bytes; d1 = [32M, 64M) with AES-XTS 4096, 4 DUN
 * bytes. */
static struct ibc_hwdev *hw[2];
static struct ibc_layer *ks;
static char err[IBC_TABLE_ERR_MAX];

static void
setup (void)
{
  static const char *const specs[2] = {
    "d0,start=0,size=32M,slots=2,modes=aes-xts:512+4096,adiantum:4096,"
    "dun-bytes=8",
    "d1,start=32M,size=32M,slots=2,modes=aes-xts:4096,dun-bytes=4",
  };
  struct ibc_hwdev_knobs knobs = { 0 };

  ck_assert_int_eq (ibc_layer_new (IBC_LAYER_KEYSLOT, "keyslot", &ks), 0);
  for (int i = 0; i < 2; i++) {
    struct ibc_hwdev_spec spec;
    ck_assert_int_eq (ibc_hwdev_spec_parse (specs[i], &spec, err, sizeof err),
                      0);
    ck_assert_int_eq (ibc_hwdev_new (&spec, &knobs, &hw[i]), 0);
    ck_assert_int_eq (ibc_layer_add_device (ks, spec.name, spec.start,
                                            spec.size,
                                            ibc_hwdev_profile (hw[i]), hw[i]),
                      0);
  }
  ck_assert_int_eq (ibc_layer_publish (ks), 0);
}

static void
teardown (void)
{
  ibc_layer_free (ks);
  ibc_hwdev_free (hw[0]);
  ibc_hwdev_free (hw[1]);
}

static struct ibc_dm_device *
new_dev (const char *table)
{
  struct ibc_dm_device *dev = NULL;
  int r = ibc_dm_device_new ("dm0", ks, table, 0, &dev, err, sizeof err);

  ck_assert_msg (r == 0, "table '%s': %s", table, err);
  return dev;
}

static void
check_caps (const struct ibc_caps *c, uint32_t xts, uint32_t adiantum,
            uint32_t dun_bytes)
{
  ck_assert_uint_eq (c->modes[XTS], xts);
  ck_assert_uint_eq (c->modes[ADI], adiantum);
  ck_assert_uint_eq (c->modes[IBC_MODE_AES_128_CBC_ESSIV], 0);
  ck_assert_uint_eq (c->modes[IBC_MODE_SM4_XTS], 0);
  ck_assert_uint_eq (c->max_dun_bytes, dun_bytes);
  ck_assert_uint_eq (c->key_types, dun_bytes ? IBC_KEY_TYPE_RAW : 0);
}

/* Capabilities of a one-table device, checked on the live profile too. */
static void
check_table_caps (const char *table, uint32_t xts, uint32_t adiantum,
                  uint32_t dun_bytes)
{
  struct ibc_dm_device *dev = new_dev (table);
  struct ibc_caps c;

  ck_assert_int_eq (ibc_dm_device_table_caps (dev, false, &c), 0);
  check_caps (&c, xts, adiantum, dun_bytes);
  ibc_caps_snapshot (ibc_profile_caps (ibc_dm_device_profile (dev)), &c);
  check_caps (&c, xts, adiantum, dun_bytes);
  ck_assert_uint_eq (ibc_profile_num_slots (ibc_dm_device_profile (dev)), 0);
  ibc_dm_device_free (dev);
}

START_TEST (test_caps)
{
  /* One device: its capabilities. */
  check_table_caps ("0 8192 linear d0 0", 512 | 4096, 4096, 8);
  check_table_caps ("0 8192 linear d1 8", 4096, 0, 4);
  /* A 512-byte lower offset keeps only 512-byte data units. */
  check_table_caps ("0 8192 linear d0 1", 512, 0, 8);
  /* ... and so does a 512-byte target boundary. */
  check_table_caps ("0 1 linear d0 0\n1 8191 linear d0 8", 512, 0, 8);
  /* Striped over both: the intersection. */
  check_table_caps ("0 8192 striped 2 8 d0 0 d1 0", 4096, 0, 4);
  /* A 1-sector chunk drops 4096 ... */
  check_table_caps ("0 8192 striped 2 1 d0 0 d0 8192", 512, 0, 8);
  /* ... which leaves nothing of the intersection (dm's NULL profile). */
  check_table_caps ("0 8192 striped 2 1 d0 0 d1 0", 0, 0, 0);
  /* flakey passes crypto; error and zero clear everything. */
  check_table_caps ("0 8192 flakey d0 0 1 1", 512 | 4096, 4096, 8);
  check_table_caps ("0 8 linear d0 0\n8 8 error", 0, 0, 0);
  check_table_caps ("0 8 zero\n8 8 linear d0 0", 0, 0, 0);
}
END_TEST

START_TEST (test_lower_start_alignment)
{
  /* A device starting 1 KiB into the export: 4096-byte data units would
   * not be aligned there. */
  struct ibc_layer *l;
  struct ibc_dm_device *dev;
  struct ibc_caps c;

  ck_assert_int_eq (ibc_layer_new (IBC_LAYER_KEYSLOT, "odd", &l), 0);
  ck_assert_int_eq (ibc_layer_add_device (l, "odd", 1024, 8 * M,
                                          ibc_hwdev_profile (hw[0]), NULL),
                    0);
  ck_assert_int_eq (ibc_dm_device_new ("dm0", l, "0 64 linear odd 0", 0, &dev,
                                       err, sizeof err),
                    0);
  ck_assert_int_eq (ibc_dm_device_table_caps (dev, false, &c), 0);
  check_caps (&c, 512, 0, 8);
  ibc_dm_device_free (dev);
  ibc_layer_free (l);
}
END_TEST

START_TEST (test_resolve)
{
  struct ibc_dm_device *dev = NULL;
  struct ibc_caps c;

  ck_assert_int_eq (ibc_dm_device_new ("dm0", ks, "0 8 linear zz 0", 0, &dev,
                                       err, sizeof err),
                    -EINVAL);
  ck_assert_str_eq (err, "unknown device 'zz': no such device in the ibcrypt "
                         "layer 'keyslot' below");
  /* d0 has 65536 sectors. */
  ck_assert_int_eq (ibc_dm_device_new ("dm0", ks, "0 8 linear d0 65530", 0,
                                       &dev, err, sizeof err),
                    -EINVAL);
  ck_assert_str_eq (err, "target at sector 0 maps bytes [33551360, 33555456) "
                         "of device 'd0', which has 33554432 bytes");
  ck_assert_int_eq (ibc_dm_device_new ("dm0", ks,
                                       "0 16 striped 2 8 d0 0 d1 "
                                       "65528",
                                       0, &dev, err, sizeof err),
                    0);
  ibc_dm_device_free (dev);
  ck_assert_int_eq (ibc_dm_device_new ("dm0", ks,
                                       "0 16 striped 2 8 d0 0 d1 "
                                       "65529",
                                       0, &dev, err, sizeof err),
                    -EINVAL);
  ck_assert_int_eq (
      ibc_dm_device_new ("bad/name", ks, "0 8 zero", 0, &dev, err, sizeof err),
      -EINVAL);
  ck_assert_int_eq (
      ibc_dm_device_new ("dm0", ks, "0 8 bogus", 0, &dev, err, sizeof err),
      -EINVAL);
  ck_assert_str_eq (err, "line 1: unknown target 'bogus' (expected linear, "
                         "striped, flakey, error or zero)");

  /* No layer below: only "base", the whole export, without crypto. */
  ck_assert_int_eq (ibc_dm_device_new ("dm0", NULL, "0 8 linear d0 0", 0, &dev,
                                       err, sizeof err),
                    -EINVAL);
  ck_assert_str_eq (err, "unknown device 'd0': with no ibcrypt layer below, "
                         "the only device is 'base' (the whole export)");
  ck_assert_int_eq (ibc_dm_device_new ("dm0", NULL, "0 100 linear base 28",
                                       64 * 512, &dev, err, sizeof err),
                    -EINVAL);
  ck_assert_int_eq (ibc_dm_device_new ("dm0", NULL, "0 100 linear base 28", 0,
                                       &dev, err, sizeof err),
                    0);
  ck_assert_uint_eq (ibc_dm_device_size (dev), 100 * 512);
  ck_assert_str_eq (ibc_dm_device_name (dev), "dm0");
  ck_assert_int_eq (ibc_dm_device_table_caps (dev, false, &c), 0);
  ck_assert (ibc_caps_empty (&c));
  ck_assert_int_eq (
      ibc_dm_device_set_export_size (dev, 127 * 512, err, sizeof err), -EINVAL);
  ck_assert_str_eq (err, "target at sector 0 maps bytes [14336, 65536) of "
                         "device 'base', which has 65024 bytes");
  ck_assert_int_eq (
      ibc_dm_device_set_export_size (dev, 128 * 512, err, sizeof err), 0);
  /* Now known, the export size is checked on load too. */
  ck_assert_int_eq (
      ibc_dm_device_load (dev, "0 100 linear base 29", err, sizeof err),
      -EINVAL);
  ck_assert_int_eq (
      ibc_dm_device_load (dev, "0 100 linear base 0", err, sizeof err), 0);
  ibc_dm_device_free (dev);
}
END_TEST

START_TEST (test_load_resume)
{
  struct ibc_dm_device *dev = new_dev ("0 8192 striped 2 8 d0 0 d1 0");
  struct ibc_profile *p = ibc_dm_device_profile (dev);
  struct ibc_caps c;
  char *text;

  /* Shrinking the capabilities is refused; nothing gets loaded. */
  ck_assert_int_eq (
      ibc_dm_device_load (dev, "0 8192 striped 2 1 d0 0 d1 0", err, sizeof err),
      -EINVAL);
  ck_assert_str_eq (err, "Inline encryption capabilities of new table are "
                         "more restrictive than the live table's");
  ck_assert_int_eq (ibc_dm_device_load (dev, "0 8184 linear d0 0\n8184 8 zero",
                                        err, sizeof err),
                    -EINVAL);
  ck_assert_int_eq (ibc_dm_device_table_text (dev, true, &text), -ENOENT);
  /* A different size is refused. */
  ck_assert_int_eq (
      ibc_dm_device_load (dev, "0 4096 linear d0 0", err, sizeof err), -EINVAL);
  ck_assert_str_eq (err, "the new table has 4096 sectors but the device has "
                         "8192: a table swap must keep the device size");
  ck_assert_int_eq (ibc_dm_device_resume (dev, err, sizeof err), -ENOENT);

  /* Same capabilities: fine; clear drops it. */
  ck_assert_int_eq (
      ibc_dm_device_load (dev, "0 8192 linear d1 0", err, sizeof err), 0);
  ck_assert_int_eq (ibc_dm_device_clear (dev), 0);
  ck_assert_int_eq (ibc_dm_device_clear (dev), -ENOENT);

  /* Expanding: the live profile changes only on resume. */
  ck_assert_int_eq (
      ibc_dm_device_load (dev, "0  8192 linear d0 16 # x", err, sizeof err), 0);
  ck_assert_int_eq (ibc_dm_device_table_text (dev, true, &text), 0);
  ck_assert_str_eq (text, "0 8192 linear d0 16\n");
  free (text);
  ck_assert_int_eq (ibc_dm_device_table_caps (dev, true, &c), 0);
  check_caps (&c, 512 | 4096, 4096, 8);
  ibc_caps_snapshot (ibc_profile_caps (p), &c);
  check_caps (&c, 4096, 0, 4);
  ck_assert_int_eq (ibc_dm_device_resume (dev, err, sizeof err), 0);
  ibc_caps_snapshot (ibc_profile_caps (p), &c);
  check_caps (&c, 512 | 4096, 4096, 8);
  ck_assert_int_eq (ibc_dm_device_table_text (dev, false, &text), 0);
  ck_assert_str_eq (text, "0 8192 linear d0 16\n");
  free (text);
  ck_assert_int_eq (ibc_dm_device_table_text (dev, true, &text), -ENOENT);
  ck_assert_int_eq (ibc_dm_device_resume (dev, err, sizeof err), -ENOENT);
  ck_assert_str_eq (err, "no table loaded");
  /* And now the old table would shrink them. */
  ck_assert_int_eq (
      ibc_dm_device_load (dev, "0 8192 striped 2 8 d0 0 d1 0", err, sizeof err),
      -EINVAL);
  ibc_dm_device_free (dev);

  /* A live table without inline crypto accepts anything. */
  dev = new_dev ("0 8192 error");
  ck_assert_int_eq (
      ibc_dm_device_load (dev, "0 8192 linear d1 0", err, sizeof err), 0);
  ck_assert_int_eq (ibc_dm_device_resume (dev, err, sizeof err), 0);
  ibc_caps_snapshot (ibc_profile_caps (ibc_dm_device_profile (dev)), &c);
  check_caps (&c, 4096, 0, 4);
  ibc_dm_device_free (dev);
}
END_TEST

static struct ibc_key *
make_key (void)
{
  static const struct ibc_crypto_config cfg = {
    .mode = XTS,
    .data_unit_size = 4096,
    .dun_bytes = 4,
    .key_type = IBC_KEY_TYPE_RAW,
  };
  uint8_t bytes[64];
  struct ibc_key *key;

  for (unsigned i = 0; i < sizeof bytes; i++)
    bytes[i] = (uint8_t) (i * 7 + 1);
  ck_assert_int_eq (ibc_key_new (&cfg, bytes, sizeof bytes, &key), 0);
  return key;
}

/* Number of slots of hardware device i that hold key. */
static int
slots_holding (int i, const struct ibc_key *key)
{
  struct ibc_profile *p = ibc_hwdev_profile (hw[i]);
  struct ibc_keyslot_info info;
  int n = 0;

  for (unsigned s = 0; s < ibc_profile_num_slots (p); s++) {
    ck_assert_int_eq (ibc_profile_slot_info (p, s, &info), 0);
    if (info.programmed && strcmp (info.key_id, ibc_key_id (key)) == 0)
      n++;
  }
  return n;
}

static void
program_both (struct ibc_key *key)
{
  struct ibc_dun dun = ibc_dun_from_u64 (1);
  uint8_t buf[4096] = { 0 };

  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq (
        ibc_hwdev_crypt (hw[i], key, &dun, buf, buf, sizeof buf, true), 0);
    ck_assert_int_eq (slots_holding (i, key), 1);
  }
}

START_TEST (test_evict)
{
  struct ibc_dm_device *dev = new_dev ("0 8192 striped 2 8 d0 0 d1 0");
  struct ibc_profile *p = ibc_dm_device_profile (dev);
  struct ibc_key *key = make_key ();
  struct ibc_profile_stats st0, st1, st;
  struct ibc_keyslot *slot;

  program_both (key);
  ibc_profile_get_stats (ibc_hwdev_profile (hw[0]), &st0);
  ibc_profile_get_stats (ibc_hwdev_profile (hw[1]), &st1);
  ck_assert_int_eq (ibc_profile_evict_key (p, key), 0);
  ck_assert_int_eq (slots_holding (0, key), 0);
  ck_assert_int_eq (slots_holding (1, key), 0);
  ibc_profile_get_stats (ibc_hwdev_profile (hw[0]), &st);
  ck_assert_uint_eq (st.evictions, st0.evictions + 1);
  ibc_profile_get_stats (ibc_hwdev_profile (hw[1]), &st);
  ck_assert_uint_eq (st.evictions, st1.evictions + 1);
  ibc_profile_get_stats (p, &st);
  ck_assert_uint_eq (st.evictions, 1);
  /* Evicting a key in no slot is not an error. */
  ck_assert_int_eq (ibc_profile_evict_key (p, key), 0);

  /* A busy slot on d0: EBUSY, but d1 is still evicted. */
  program_both (key);
  ck_assert_int_eq (
      ibc_profile_get_keyslot (ibc_hwdev_profile (hw[0]), key, &slot), 0);
  ck_assert_int_eq (ibc_profile_evict_key (p, key), -EBUSY);
  ck_assert_int_eq (slots_holding (1, key), 0);
  ibc_keyslot_put (slot);

  /* After a resume onto d1 only, d0 is no longer reached. */
  ck_assert_int_eq (
      ibc_dm_device_load (dev, "0 8192 linear d1 0", err, sizeof err), 0);
  ck_assert_int_eq (ibc_dm_device_resume (dev, err, sizeof err), 0);
  program_both (key);
  ck_assert_int_eq (ibc_profile_evict_key (p, key), 0);
  ck_assert_int_eq (slots_holding (0, key), 1);
  ck_assert_int_eq (slots_holding (1, key), 0);
  ck_assert_int_eq (ibc_profile_evict_key (ibc_hwdev_profile (hw[0]), key), 0);
  ibc_dm_device_free (dev);
  ibc_key_unref (key);
}
END_TEST

struct expect {
  enum ibc_dm_kind kind;
  bool fail;
  uint64_t off, len;
  const char *lower; /* NULL: none */
  uint64_t lower_off;
};

static void
check_map (struct ibc_dm_device *dev, uint64_t off, uint64_t len,
           const struct expect *e, size_t n)
{
  struct ibc_dm_map m;
  struct ibc_dm_io io;
  size_t i = 0;

  ck_assert_int_eq (ibc_dm_map_begin (dev, off, len, &m), 0);
  while (ibc_dm_map_next (&m, &io)) {
    ck_assert_uint_lt (i, n);
    ck_assert_int_eq (io.kind, e[i].kind);
    ck_assert_int_eq (io.fail, e[i].fail);
    ck_assert_uint_eq (io.off, e[i].off);
    ck_assert_uint_eq (io.len, e[i].len);
    if (e[i].lower == NULL)
      ck_assert_ptr_null (io.lower);
    else {
      ck_assert_ptr_nonnull (io.lower);
      ck_assert_str_eq (io.lower->name, e[i].lower);
      ck_assert_uint_eq (io.lower_off, e[i].lower_off);
    }
    i++;
  }
  ibc_dm_map_end (&m);
  ck_assert_uint_eq (i, n);
}

START_TEST (test_map)
{
  struct ibc_dm_device *dev;
  struct ibc_dm_map m;

  /* linear on d1 (which starts at 32M), 8 sectors in. */
  dev = new_dev ("0 100 linear d1 8");
  check_map (dev, 512, 1024,
             (struct expect[]){ { IBC_DM_LINEAR, false, 512, 1024, "d1",
                                  32 * M + 4096 + 512 } },
             1);
  ck_assert_int_eq (ibc_dm_map_begin (dev, 99 * 512, 1024, &m), -ERANGE);
  ibc_dm_device_free (dev);

  /* striped, 4 KiB chunks: chunk c goes to stripe c % 2, row c / 2. */
  dev = new_dev ("0 64 striped 2 8 d0 0 d1 16");
  check_map (
      dev, 6144, 12288,
      (struct expect[]){
          { IBC_DM_STRIPED, false, 6144, 2048, "d1", 32 * M + 8192 + 2048 },
          { IBC_DM_STRIPED, false, 8192, 4096, "d0", 4096 },
          { IBC_DM_STRIPED, false, 12288, 4096, "d1", 32 * M + 8192 + 4096 },
          { IBC_DM_STRIPED, false, 16384, 2048, "d0", 8192 },
      },
      4);
  ibc_dm_device_free (dev);

  /* Mixed targets. */
  dev = new_dev ("0 8 linear d0 0\n8 8 zero\n16 8 error\n24 8 linear d1 0");
  check_map (dev, 2048, 12288,
             (struct expect[]){
                 { IBC_DM_LINEAR, false, 2048, 2048, "d0", 2048 },
                 { IBC_DM_ZERO, false, 4096, 4096, NULL, 0 },
                 { IBC_DM_ERROR, true, 8192, 4096, NULL, 0 },
                 { IBC_DM_LINEAR, false, 12288, 2048, "d1", 32 * M },
             },
             4);
  ibc_dm_device_free (dev);

  /* base: the export's own offsets. */
  ck_assert_int_eq (ibc_dm_device_new ("dm0", NULL, "0 8 linear base 100", 0,
                                       &dev, err, sizeof err),
                    0);
  check_map (
      dev, 0, 4096,
      (struct expect[]){ { IBC_DM_LINEAR, false, 0, 4096, "base", 51200 } }, 1);
  ibc_dm_device_free (dev);
}
END_TEST

static uint64_t fake_now;

static uint64_t
fake_clock (void *opaque)
{
  (void) opaque;
  return fake_now;
}

static bool
down_at (struct ibc_dm_device *dev, uint64_t t)
{
  struct ibc_dm_map m;
  struct ibc_dm_io io;

  fake_now = t;
  ck_assert_int_eq (ibc_dm_map_begin (dev, 0, 512, &m), 0);
  ck_assert (ibc_dm_map_next (&m, &io));
  ck_assert_int_eq (io.kind, IBC_DM_FLAKEY);
  ck_assert_str_eq (io.lower->name, "d0");
  ibc_dm_map_end (&m);
  return io.fail;
}

START_TEST (test_flakey)
{
  struct ibc_dm_device *dev = new_dev ("0 8 flakey d0 0 1 2");

  fake_now = 10000;
  ibc_dm_device_set_clock (dev, fake_clock, NULL);
  ck_assert (!down_at (dev, 10000));
  ck_assert (!down_at (dev, 10999));
  ck_assert (down_at (dev, 11000));
  ck_assert (down_at (dev, 12999));
  ck_assert (!down_at (dev, 13000));
  ck_assert (down_at (dev, 14500));
  /* A resume restarts the up interval. */
  fake_now = 14600;
  ck_assert_int_eq (
      ibc_dm_device_load (dev, "0 8 flakey d0 0 1 2", err, sizeof err), 0);
  ck_assert_int_eq (ibc_dm_device_resume (dev, err, sizeof err), 0);
  ck_assert (!down_at (dev, 14600));
  ck_assert (!down_at (dev, 15599));
  ck_assert (down_at (dev, 15600));
  /* up 0: always down; down 0: never. */
  ck_assert_int_eq (
      ibc_dm_device_load (dev, "0 8 flakey d0 0 0 1", err, sizeof err), 0);
  ck_assert_int_eq (ibc_dm_device_resume (dev, err, sizeof err), 0);
  ck_assert (down_at (dev, 14600));
  ck_assert (down_at (dev, 99999));
  ck_assert_int_eq (
      ibc_dm_device_load (dev, "0 8 flakey d0 0 1 0", err, sizeof err), 0);
  ck_assert_int_eq (ibc_dm_device_resume (dev, err, sizeof err), 0);
  ck_assert (!down_at (dev, 99999));
  ibc_dm_device_free (dev);
}
END_TEST

/* Readers map requests while the table flips between two layouts (A on
 * the first 64 sectors of d0, B on the next 64): every request must see
 * one table from begin to end, and that table must not be freed under
 * it. */
struct reader {
  struct ibc_dm_device *dev;
  atomic_bool stop;
  atomic_long requests;
  long mixed;
};

static void *
reader_main (void *arg)
{
  struct reader *r = arg;

  while (!atomic_load (&r->stop)) {
    struct ibc_dm_map m;
    struct ibc_dm_io io;
    int on_a = 0, on_b = 0;

    ck_assert_int_eq (ibc_dm_map_begin (r->dev, 0, 64 * 512, &m), 0);
    while (ibc_dm_map_next (&m, &io)) {
      /* Give a resume the chance to free this table if SRCU failed. */
      sched_yield ();
      if (strcmp (io.lower->name, "d0") != 0)
        ck_abort_msg ("piece maps to '%s'", io.lower->name);
      if (io.lower_off < 64 * 512)
        on_a++;
      else
        on_b++;
    }
    ibc_dm_map_end (&m);
    if (on_a && on_b)
      r->mixed++;
    r->requests++;
  }
  return NULL;
}

START_TEST (test_swap_under_io)
{
  static const char *const tables[2]
      = { "0 32 linear d0 0\n32 32 linear d0 32",
          "0 32 linear d0 64\n32 32 linear d0 96" };
  struct reader r = { .dev = new_dev (tables[0]) };
  pthread_t th;

  ck_assert_int_eq (pthread_create (&th, NULL, reader_main, &r), 0);
  /* At least 200 swaps, and until the reader got 100 requests through. */
  for (int i = 1; i <= 200 || atomic_load (&r.requests) < 100; i++) {
    ck_assert_int_eq (
        ibc_dm_device_load (r.dev, tables[i % 2], err, sizeof err), 0);
    ck_assert_int_eq (ibc_dm_device_resume (r.dev, err, sizeof err), 0);
  }
  atomic_store (&r.stop, true);
  pthread_join (th, NULL);
  ck_assert_int_gt (r.requests, 0);
  ck_assert_int_eq (r.mixed, 0);
  ibc_dm_device_free (r.dev);
}
END_TEST

static Suite *
dm_suite (void)
{
  Suite *s = suite_create ("dm");
  TCase *tc = tcase_create ("core");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_caps);
  tcase_add_test (tc, test_lower_start_alignment);
  tcase_add_test (tc, test_resolve);
  tcase_add_test (tc, test_load_resume);
  tcase_add_test (tc, test_evict);
  tcase_add_test (tc, test_map);
  tcase_add_test (tc, test_flakey);
  tcase_add_test (tc, test_swap_under_io);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (dm_suite)
