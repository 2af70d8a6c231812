/* Mapped devices: dm tables resolved over the layer below, swapped under SRCU. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ibcrypt/dm.h"
#include "ibcrypt/hwdev.h"
#include "ibcrypt/srcu.h"

/* Overview.  A table is parsed (table.c), resolved against the layer below
 * and given its capabilities once, into an immutable dm_state.  The data
 * path reads the live state inside an SRCU read-side section; load builds
 * a new state aside, and resume publishes it, waits for the readers of the
 * old one, then expands the profile and frees the old state, as dm's
 * dm_swap_table + dm_update_crypto_profile do.  Expanding the profile only
 * after the readers are gone means no request created for a newly
 * supported configuration can reach a target of the old table. */

struct dm_state {
  struct ibc_dm_table *table;
  struct ibc_dm_lower *lowers; /* one per device of the table */
  struct ibc_caps caps;
  bool has_flakey;
  uint64_t resumed_ms; /* when it became live (flakey intervals) */
};

struct ibc_dm_device {
  char name[IBC_DEVICE_NAME_MAX + 1];
  struct ibc_layer *below; /* NULL: the raw export */
  uint64_t size;
  struct ibc_profile *profile;
  uint64_t (*now_ms) (void *opaque);
  void *clock_opaque;

  struct ibc_srcu srcu;
  _Atomic (struct dm_state *) live;

  /* Why a mutex: load, resume, clear and set_export_size come from the
   * daemon's agent thread, trigger files on any request thread, and
   * connection setup; they must not interleave (one inactive slot, SRCU
   * writers must be serialised), and holding it also keeps the live state
   * from being freed while a table query formats it.  Never taken on the
   * data path. */
  pthread_mutex_t update_lock;
  struct dm_state *inactive; /* update_lock */
  uint64_t export_size;      /* update_lock; 0 = not known yet */
};

static void __attribute__ ((format (printf, 3, 4)))
errf (char *err, size_t errsize, const char *fmt, ...)
{
  va_list ap;

  if (err == NULL || errsize == 0)
    return;
  va_start (ap, fmt);
  vsnprintf (err, errsize, fmt, ap);
  va_end (ap);
}

static uint64_t
monotonic_ms (void *opaque)
{
  struct timespec ts;

  (void) opaque;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void
state_free (struct dm_state *st)
{
  if (st == NULL)
    return;
  ibc_dm_table_free (st->table);
  free (st->lowers);
  free (st);
}

/* Map the table's device names to devices of the layer below. */
static int
resolve (const struct ibc_dm_device *dev, struct dm_state *st, char *err,
         size_t errsize)
{
  size_t n = ibc_dm_table_device_count (st->table);

  st->lowers = calloc (n ? n : 1, sizeof *st->lowers);
  if (st->lowers == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    struct ibc_dm_lower *l = &st->lowers[i];
    const struct ibc_device *d;

    l->name = ibc_dm_table_device (st->table, i);
    if (dev->below == NULL) {
      if (strcmp (l->name, IBC_DM_BASE_DEVICE) != 0) {
        errf (err, errsize,
              "unknown device '%s': with no ibcrypt layer below, the only "
              "device is '" IBC_DM_BASE_DEVICE "' (the whole export)",
              l->name);
        return -EINVAL;
      }
      l->start = 0;
      l->size = UINT64_MAX; /* to the end of the export */
      continue;
    }
    d = ibc_layer_find_device (dev->below, l->name);
    if (d == NULL) {
      errf (err, errsize,
            "unknown device '%s': no such device in the "
            "ibcrypt layer '%s' below",
            l->name, ibc_layer_name (dev->below));
      return -EINVAL;
    }
    l->device = d;
    l->start = d->start;
    l->size = d->size;
    l->profile = d->profile;
  }
  return 0;
}

/* The usable size of a lower device; false if not known yet. */
static bool
lower_size (const struct ibc_dm_lower *l, uint64_t export_size,
            uint64_t *ret_size)
{
  if (l->size != UINT64_MAX - l->start) {
    *ret_size = l->size;
    return true;
  }
  if (export_size == 0)
    return false;
  *ret_size = export_size > l->start ? export_size - l->start : 0;
  return true;
}

/* Every target's lower ranges must lie inside their devices. */
static int
check_fits (const struct dm_state *st, uint64_t export_size, char *err,
            size_t errsize)
{
  for (size_t i = 0; i < ibc_dm_table_count (st->table); i++) {
    const struct ibc_dm_target *tg = ibc_dm_table_target (st->table, i);
    uint64_t span = tg->nr_dests ? tg->length / tg->nr_dests : 0;

    for (size_t j = 0; j < tg->nr_dests; j++) {
      const struct ibc_dm_lower *l = &st->lowers[tg->dests[j].dev];
      uint64_t off = tg->dests[j].offset, size;

      if (!lower_size (l, export_size, &size))
        continue;
      if (off > size || span > size - off) {
        errf (err, errsize,
              "target at sector %llu maps bytes [%llu, %llu) of device "
              "'%s', which has %llu bytes",
              (unsigned long long) (tg->start >> 9), (unsigned long long) off,
              (unsigned long long) (off + span), l->name,
              (unsigned long long) size);
        return -EINVAL;
      }
    }
  }
  return 0;
}

/* dm_table_construct_crypto_profile, plus lower start alignment. */
static void
compute_caps (struct dm_state *st)
{
  size_t n = ibc_dm_table_device_count (st->table);
  struct ibc_caps caps;
  uint64_t acc;

  ibc_caps_init_all (&caps);
  if (!ibc_dm_table_passes_crypto (st->table))
    ibc_caps_intersect (&caps, NULL);
  for (size_t i = 0; i < n && !ibc_caps_empty (&caps); i++) {
    const struct ibc_profile *p = st->lowers[i].profile;
    ibc_caps_intersect (&caps, p ? ibc_profile_caps (p) : NULL);
  }
  /* A data unit must not straddle a target or chunk, and must stay
   * aligned in the export below, where lower devices may start anywhere. */
  acc = ibc_dm_table_alignment (st->table);
  for (size_t i = 0; i < n; i++)
    acc |= st->lowers[i].start;
  ibc_caps_restrict_alignment (&caps, acc & (~acc + 1));
  if (ibc_caps_empty (&caps))
    ibc_caps_init_none (&caps); /* dm's NULL profile */
  st->caps = caps;
}

/* Parse, resolve, check and compute the capabilities of a table. */
static int
state_build (const struct ibc_dm_device *dev, const char *text,
             uint64_t export_size, struct dm_state **ret_state, char *err,
             size_t errsize)
{
  struct dm_state *st = calloc (1, sizeof *st);
  int r;

  if (st == NULL)
    return -ENOMEM;
  r = ibc_dm_table_parse (text, 0, &st->table, err, errsize);
  if (r == 0)
    r = resolve (dev, st, err, errsize);
  if (r == 0)
    r = check_fits (st, export_size, err, errsize);
  if (r < 0) {
    if (r == -ENOMEM)
      errf (err, errsize, "out of memory");
    state_free (st);
    return r;
  }
  compute_caps (st);
  for (size_t i = 0; i < ibc_dm_table_count (st->table); i++)
    if (ibc_dm_table_target (st->table, i)->kind == IBC_DM_FLAKEY)
      st->has_flakey = true;
  *ret_state = st;
  return 0;
}

/* dm_keyslot_evict: evict from every lower device of the live table.
 * Called with the profile's write lock held; takes the SRCU read side. */
static int
dm_keyslot_evict (struct ibc_profile *profile, const struct ibc_key *key,
                  int slot, void *opaque)
{
  struct ibc_dm_device *dev = opaque;
  unsigned token = ibc_srcu_read_lock (&dev->srcu);
  const struct dm_state *st = atomic_load (&dev->live);
  int busy = 0, first = 0;

  (void) profile, (void) slot;
  for (size_t i = 0; i < ibc_dm_table_device_count (st->table); i++) {
    struct ibc_profile *p = st->lowers[i].profile;
    int r;

    if (p == NULL)
      continue;
    r = ibc_profile_evict_key (p, key);
    if (r == -EBUSY)
      busy = r;
    else if (r < 0 && first == 0)
      first = r;
  }
  ibc_srcu_read_unlock (&dev->srcu, token);
  return busy ? busy : first;
}

/* dm's wrapped-key ops go to the first device of the live table only (since
 * "dm: fix excessive blk-crypto operations for invalid keys"): every lower
 * device must accept the same blobs for the table to work at all. */
int
ibc_dm_device_first_lower (struct ibc_dm_device *md,
                           const struct ibc_layer **ret_layer,
                           const struct ibc_device **ret_dev)
{
  unsigned token = ibc_srcu_read_lock (&md->srcu);
  const struct dm_state *st = atomic_load (&md->live);
  const struct ibc_device *d = NULL;

  if (ibc_dm_table_device_count (st->table) > 0)
    d = st->lowers[0].device;
  /* Lower devices belong to the published layer below, which outlives
   * every table, so d stays valid after the read-side section. */
  ibc_srcu_read_unlock (&md->srcu, token);
  if (d == NULL || md->below == NULL)
    return -EOPNOTSUPP;
  *ret_layer = md->below;
  *ret_dev = d;
  return 0;
}

static const struct ibc_profile_ops dm_profile_ops = {
  .keyslot_evict = dm_keyslot_evict,
};

int
ibc_dm_device_new (const char *name, struct ibc_layer *below,
                   const char *table_text, uint64_t export_size,
                   struct ibc_dm_device **ret_dev, char *err, size_t errsize)
{
  struct ibc_dm_device *dev;
  struct dm_state *st;
  int r;

  if (!ibc_device_name_valid (name)) {
    errf (err, errsize, "invalid device name '%s'", name ? name : "");
    return -EINVAL;
  }
  dev = calloc (1, sizeof *dev);
  if (dev == NULL)
    return -ENOMEM;
  strcpy (dev->name, name);
  dev->below = below;
  dev->now_ms = monotonic_ms;
  ibc_srcu_init (&dev->srcu);
  pthread_mutex_init (&dev->update_lock, NULL);
  dev->export_size = export_size;
  r = state_build (dev, table_text, export_size, &st, err, errsize);
  if (r < 0)
    goto free_dev;
  r = ibc_profile_new (0, &st->caps, &dm_profile_ops, dev, &dev->profile);
  if (r < 0) {
    errf (err, errsize, "out of memory");
    state_free (st);
    goto free_dev;
  }
  dev->size = ibc_dm_table_size (st->table);
  st->resumed_ms = dev->now_ms (dev->clock_opaque);
  atomic_store (&dev->live, st);
  *ret_dev = dev;
  return 0;

free_dev:
  pthread_mutex_destroy (&dev->update_lock);
  free (dev);
  return r;
}

void
ibc_dm_device_free (struct ibc_dm_device *dev)
{
  if (dev == NULL)
    return;
  ibc_profile_free (dev->profile);
  state_free (atomic_load (&dev->live));
  state_free (dev->inactive);
  pthread_mutex_destroy (&dev->update_lock);
  free (dev);
}

const char *
ibc_dm_device_name (const struct ibc_dm_device *dev)
{
  return dev->name;
}

uint64_t
ibc_dm_device_size (const struct ibc_dm_device *dev)
{
  return dev->size;
}

struct ibc_profile *
ibc_dm_device_profile (struct ibc_dm_device *dev)
{
  return dev->profile;
}

int
ibc_dm_device_set_export_size (struct ibc_dm_device *dev, uint64_t export_size,
                               char *err, size_t errsize)
{
  int r;

  pthread_mutex_lock (&dev->update_lock);
  r = check_fits (atomic_load (&dev->live), export_size, err, errsize);
  if (r == 0)
    dev->export_size = export_size;
  pthread_mutex_unlock (&dev->update_lock);
  return r;
}

int
ibc_dm_device_load (struct ibc_dm_device *dev, const char *table_text,
                    char *err, size_t errsize)
{
  struct dm_state *st;
  struct ibc_caps live;
  uint64_t size;
  int r;

  pthread_mutex_lock (&dev->update_lock);
  r = state_build (dev, table_text, dev->export_size, &st, err, errsize);
  if (r < 0)
    goto unlock;
  size = ibc_dm_table_size (st->table);
  if (size != dev->size) {
    errf (err, errsize,
          "the new table has %llu sectors but the device has "
          "%llu: a table swap must keep the device size",
          (unsigned long long) (size >> 9),
          (unsigned long long) (dev->size >> 9));
    r = -EINVAL;
  }
  ibc_caps_snapshot (ibc_profile_caps (dev->profile), &live);
  if (r == 0 && !ibc_caps_has (&st->caps, &live)) {
    errf (err, errsize,
          "Inline encryption capabilities of new table are "
          "more restrictive than the live table's");
    r = -EINVAL;
  }
  if (r < 0) {
    state_free (st);
    goto unlock;
  }
  state_free (dev->inactive);
  dev->inactive = st;
unlock:
  pthread_mutex_unlock (&dev->update_lock);
  return r;
}

int
ibc_dm_device_resume (struct ibc_dm_device *dev, char *err, size_t errsize)
{
  struct dm_state *st, *old;
  int r;

  pthread_mutex_lock (&dev->update_lock);
  st = dev->inactive;
  if (st == NULL) {
    errf (err, errsize, "no table loaded");
    r = -ENOENT;
    goto unlock;
  }
  /* The export size may have become known since the load. */
  r = check_fits (st, dev->export_size, err, errsize);
  if (r < 0)
    goto unlock;
  dev->inactive = NULL;
  st->resumed_ms = dev->now_ms (dev->clock_opaque);
  old = atomic_exchange (&dev->live, st);
  ibc_srcu_synchronize (&dev->srcu);
  /* Cannot fail: the load checked st->caps against the profile, whose
   * capabilities change only here, under update_lock. */
  ibc_profile_update_caps (dev->profile, &st->caps);
  state_free (old);
unlock:
  pthread_mutex_unlock (&dev->update_lock);
  return r;
}

int
ibc_dm_device_clear (struct ibc_dm_device *dev)
{
  int r = 0;

  pthread_mutex_lock (&dev->update_lock);
  if (dev->inactive == NULL)
    r = -ENOENT;
  state_free (dev->inactive);
  dev->inactive = NULL;
  pthread_mutex_unlock (&dev->update_lock);
  return r;
}

/* The live or inactive state; update_lock held. */
static const struct dm_state *
pick_state (struct ibc_dm_device *dev, bool inactive)
{
  return inactive ? dev->inactive : atomic_load (&dev->live);
}

int
ibc_dm_device_table_text (struct ibc_dm_device *dev, bool inactive,
                          char **ret_text)
{
  const struct dm_state *st;
  int r = -ENOENT;

  pthread_mutex_lock (&dev->update_lock);
  st = pick_state (dev, inactive);
  if (st)
    r = ibc_dm_table_format (st->table, ret_text);
  pthread_mutex_unlock (&dev->update_lock);
  return r;
}

int
ibc_dm_device_table_caps (struct ibc_dm_device *dev, bool inactive,
                          struct ibc_caps *ret_caps)
{
  const struct dm_state *st;
  int r = -ENOENT;

  pthread_mutex_lock (&dev->update_lock);
  st = pick_state (dev, inactive);
  if (st) {
    *ret_caps = st->caps;
    r = 0;
  }
  pthread_mutex_unlock (&dev->update_lock);
  return r;
}

void
ibc_dm_device_set_clock (struct ibc_dm_device *dev,
                         uint64_t (*now_ms) (void *opaque), void *opaque)
{
  dev->now_ms = now_ms ? now_ms : monotonic_ms;
  dev->clock_opaque = opaque;
  /* The live table's flakey intervals restart on the new clock. */
  atomic_load (&dev->live)->resumed_ms = dev->now_ms (opaque);
}

/* ---- data path ---- */

int
ibc_dm_map_begin (struct ibc_dm_device *dev, uint64_t off, uint64_t len,
                  struct ibc_dm_map *m)
{
  unsigned token = ibc_srcu_read_lock (&dev->srcu);
  const struct dm_state *st = atomic_load (&dev->live);
  int r = ibc_dm_iter_init (&m->it, st->table, off, len);

  if (r < 0) {
    ibc_srcu_read_unlock (&dev->srcu, token);
    return r;
  }
  m->dev = dev;
  m->state = st;
  m->token = token;
  m->now_ms = st->has_flakey ? dev->now_ms (dev->clock_opaque) : 0;
  return 0;
}

/* dm-flakey: up for up_interval seconds, then down for down_interval,
 * repeating from when the table became live. */
static bool
flakey_down (const struct ibc_dm_target *tg, uint64_t elapsed_ms)
{
  uint64_t up = (uint64_t) tg->up_interval * 1000;
  uint64_t period = up + (uint64_t) tg->down_interval * 1000;

  return elapsed_ms % period >= up;
}

bool
ibc_dm_map_next (struct ibc_dm_map *m, struct ibc_dm_io *ret_io)
{
  const struct dm_state *st = m->state;
  struct ibc_dm_piece p;
  struct ibc_dm_io io;

  if (!ibc_dm_iter_next (&m->it, &p))
    return false;
  io.target = p.target;
  io.kind = p.kind;
  io.fail = p.kind == IBC_DM_ERROR;
  io.off = p.off;
  io.len = p.len;
  io.lower = NULL;
  io.lower_off = 0;
  if (p.dev != IBC_DM_NO_DEV) {
    io.lower = &st->lowers[p.dev];
    io.lower_off = io.lower->start + p.lower_off;
  }
  if (p.kind == IBC_DM_FLAKEY)
    io.fail = flakey_down (ibc_dm_table_target (st->table, p.target),
                           m->now_ms - st->resumed_ms);
  *ret_io = io;
  return true;
}

void
ibc_dm_map_end (struct ibc_dm_map *m)
{
  ibc_srcu_read_unlock (&m->dev->srcu, m->token);
}
