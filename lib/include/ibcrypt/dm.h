/* Mapped devices of the passthrough layer: live/inactive dm tables, a
 * keyslot-less profile, and request mapping (drivers/md/dm*.c). */
#ifndef IBCRYPT_DM_H
#define IBCRYPT_DM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibcrypt/caps.h"
#include "ibcrypt/profile.h"
#include "ibcrypt/registry.h"
#include "ibcrypt/table.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A mapped device sits on the ibcrypt layer below it (or on the raw
 * export when there is none) and exposes a dm table (table.h syntax).  It
 * has one live table, used by the data path, and at most one inactive
 * (loaded) table waiting for resume, as dm does.
 *
 * Resolving a table: every <dev> must name a device of the layer below
 * (ibc_layer_find_device).  Without a layer below, the only name allowed
 * is IBC_DM_BASE_DEVICE: the whole export below, without inline crypto.
 * Every target's lower range must fit in its device; a device that extends
 * "to the end of the export" (size == UINT64_MAX - start, as the keyslot
 * layer registers it) is checked once the export size is known.
 *
 * Capabilities of a table (dm_table_construct_crypto_profile): start from
 * everything; a target that does not pass crypto (error, zero) clears
 * everything; otherwise intersect with each lower device's live profile (no
 * profile clears everything); then keep only the data unit sizes that
 * divide ibc_dm_table_alignment() and the start of every lower device in
 * the export below (so data units stay aligned there too).  Capabilities
 * without any mode are normalised to "nothing" (dm's NULL profile), so a
 * device whose live table has no inline crypto accepts any new table.
 *
 * The device's profile has no keyslots (a passthrough profile).  Its
 * capabilities are those of the live table and only ever expand: loading a
 * table whose capabilities are not a superset fails with -EINVAL, and
 * resume expands the profile (blk_crypto_update_capabilities).  Evicting a
 * key on it (ibc_profile_evict_key) evicts from every lower device of the
 * live table, and, unlike dm_keyslot_evict, which always returns 0, reports
 * what happened: 0, -EBUSY if any lower device had the key in a busy slot
 * (all the others are still evicted), else the first other error.
 *
 * A table swap keeps the device size: loading a table of another size
 * fails with -EINVAL.
 *
 * Functions taking `err` write a one-line reason there on failure (err may
 * be NULL; IBC_TABLE_ERR_MAX bytes hold it, longer text is truncated).
 *
 * Locking: load, resume, clear, set_export_size and the table queries are
 * serialised by the device's update mutex and may sleep (resume waits for
 * the requests running on the old table).  The data path (ibc_dm_map_*)
 * takes no lock: it is an SRCU read-side section over the live table. */

#define IBC_DM_BASE_DEVICE "base"

struct ibc_dm_device;

/* A lower device a table resolved to. */
struct ibc_dm_lower {
  const char *name;
  const struct ibc_device *device; /* NULL for IBC_DM_BASE_DEVICE */
  uint64_t start;                  /* bytes, in the layer below's offsets */
  uint64_t size;                   /* UINT64_MAX - start: to the export end */
  struct ibc_profile *profile;     /* NULL: no inline crypto */
};

/* Create a mapped device named name (ibc_device_name_valid) over the
 * published layer below (NULL: the raw export) with table_text as its
 * live table.  export_size is the size of the export below in bytes, 0 if
 * not known yet.  Flakey targets start their first up interval now.
 * Returns 0, -EINVAL (bad name or table, with err) or -ENOMEM. */
int ibc_dm_device_new (const char *name, struct ibc_layer *below,
                       const char *table_text, uint64_t export_size,
                       struct ibc_dm_device **ret_dev, char *err,
                       size_t errsize);

/* Free the device, its tables and its profile.  No I/O may run, and
 * nothing may use the profile any more.  Accepts NULL. */
void ibc_dm_device_free (struct ibc_dm_device *dev);

const char *ibc_dm_device_name (const struct ibc_dm_device *dev);

/* Device size in bytes (constant: every table has the same size). */
uint64_t ibc_dm_device_size (const struct ibc_dm_device *dev);

/* The passthrough profile (0 slots) to publish for this device. */
struct ibc_profile *ibc_dm_device_profile (struct ibc_dm_device *dev);

/* Tell the device the size of the export below once known, and check that
 * the live table fits in it.  Returns 0 or -EINVAL (with err). */
int ibc_dm_device_set_export_size (struct ibc_dm_device *dev,
                                   uint64_t export_size, char *err,
                                   size_t errsize);

/* Parse, resolve and check a table and make it the inactive table,
 * replacing any previously loaded one (dm table_load).  Returns 0 or
 * -EINVAL with err, among others "Inline encryption capabilities of new
 * table are more restrictive than the live table's", or -ENOMEM.  On
 * failure the previous inactive table stays. */
int ibc_dm_device_load (struct ibc_dm_device *dev, const char *table_text,
                        char *err, size_t errsize);

/* Make the inactive table live (dm resume): publish it, wait until no
 * request uses the old table (which may take as long as the longest
 * request in flight: never call it from inside ibc_dm_map_begin/end), then
 * expand the profile's capabilities and free the old table.  Flakey
 * targets restart their up interval.  Returns 0, or -ENOENT (no table
 * loaded) or -EINVAL (the table no longer fits the export) with err. */
int ibc_dm_device_resume (struct ibc_dm_device *dev, char *err, size_t errsize);

/* Drop the inactive table (dm table_clear).  Returns 0, or -ENOENT if
 * there was none. */
int ibc_dm_device_clear (struct ibc_dm_device *dev);

/* The live or the inactive table as canonical text (*ret_text malloc'd).
 * Returns 0, -ENOENT (no inactive table) or -ENOMEM. */
int ibc_dm_device_table_text (struct ibc_dm_device *dev, bool inactive,
                              char **ret_text);

/* Capabilities computed for the live or the inactive table.  Returns 0 or
 * -ENOENT (no inactive table). */
int ibc_dm_device_table_caps (struct ibc_dm_device *dev, bool inactive,
                              struct ibc_caps *ret_caps);

/* For tests: replace the monotonic millisecond clock flakey targets use
 * (NULL: back to CLOCK_MONOTONIC); the live table's intervals restart at
 * the new clock's now.  Call before any I/O. */
void ibc_dm_device_set_clock (struct ibc_dm_device *dev,
                              uint64_t (*now_ms) (void *opaque), void *opaque);

/* ---- Data path ----
 *
 *   struct ibc_dm_map m;
 *   struct ibc_dm_io io;
 *   if (ibc_dm_map_begin (dev, off, len, &m) < 0) ...;      // -ERANGE
 *   while (ibc_dm_map_next (&m, &io)) ... io.kind, io.lower_off ...
 *   ibc_dm_map_end (&m);
 *
 * Between begin and end the live table (and io.lower) stays valid even if
 * a resume runs meanwhile; the whole request sees one table and one clock
 * reading.  begin/end must be called on the same thread. */

/* One piece of a request, inside one target (and one stripe chunk). */
struct ibc_dm_io {
  size_t target; /* index in the live table */
  enum ibc_dm_kind kind;
  /* Data operations on the piece fail with EIO: an error target, or a
   * flakey target in its down interval. */
  bool fail;
  uint64_t off, len; /* bytes, in the mapped device */
  /* linear, striped, flakey: the lower device (NULL otherwise) ... */
  const struct ibc_dm_lower *lower;
  /* ... and the piece's offset in the layer below's address space
   * (lower->start + offset within the lower device). */
  uint64_t lower_off;
};

struct ibc_dm_map {
  /* private */
  struct ibc_dm_device *dev;
  const void *state;
  unsigned token;
  uint64_t now_ms;
  struct ibc_dm_iter it;
};

/* Enter the read-side section and start mapping [off, off+len).  Returns
 * 0, or -ERANGE (request not inside the device; nothing to end). */
int ibc_dm_map_begin (struct ibc_dm_device *dev, uint64_t off, uint64_t len,
                      struct ibc_dm_map *m);
bool ibc_dm_map_next (struct ibc_dm_map *m, struct ibc_dm_io *ret_io);
void ibc_dm_map_end (struct ibc_dm_map *m);

#ifdef __cplusplus
}
#endif
#endif
