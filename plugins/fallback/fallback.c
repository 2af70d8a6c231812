/* nbdkit ibcrypt-fallback filter: crypt table, request contexts, software fallback. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <nbdkit-filter.h>

#include "ibcrypt/agent.h"
#include "ibcrypt/fallback.h"
#include "ibcrypt/registry.h"
#include "ibcrypt/status.h"
#include "ibc-nbdkit.h"

static const char *table_file;
static char *table_text;
static struct ibc_fallback_opts opts = { .slots = 0, .enabled = true };
static const char *status_file;

static struct ibc_fallback *fb;
static struct ibc_layer *layer;

/* Parse the filter's parameters; pass the rest down. */
static int
fallback_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
                 const char *key, const char *value)
{
  int r = ibc_nbdkit_agent_config (key, value);

  if (r != 0)
    return r < 0 ? -1 : 0;
  if (strcmp (key, "fallback-table") == 0) {
    table_file = value;
    return 0;
  }
  if (strcmp (key, "fallback-slots") == 0) {
    if (nbdkit_parse_unsigned (key, value, &opts.slots) == -1)
      return -1;
    if (opts.slots == 0 || opts.slots > 65536) {
      nbdkit_error ("fallback-slots must be 1..65536");
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "fallback-enabled") == 0) {
    int enabled = nbdkit_parse_bool (value);
    if (enabled == -1)
      return -1;
    opts.enabled = enabled;
    return 0;
  }
  if (strcmp (key, "fallback-status-file") == 0) {
    status_file = value;
    return 0;
  }
  return next (nxdata, key, value);
}

#define fallback_config_help                                                   \
  "fallback-table=FILE          The crypt table (required).\n"                 \
  "fallback-slots=N             Software keyslots (default 100).\n"            \
  "fallback-enabled=yes|no      Encrypt in software what the device below\n"   \
  "                             cannot (default yes).\n"                       \
  "fallback-status-file=PATH    Write the stack's status as JSON there\n"      \
  "                             when a connection ends."

/* Read the table file now: later we may have chdir'd or dropped rights. */
static int
fallback_config_complete (nbdkit_next_config_complete *next,
                          nbdkit_backend *nxdata)
{
  FILE *f;
  size_t size = 0;

  if (table_file == NULL) {
    if (ibc_agent_configured ())
      return next (nxdata); /* ibcryptd will map a table */
    nbdkit_error ("fallback-table=FILE is required");
    return -1;
  }
  f = fopen (table_file, "re");
  if (f == NULL) {
    nbdkit_error ("fallback-table '%s': %m", table_file);
    return -1;
  }
  if (getdelim (&table_text, &size, '\0', f) < 0 && !feof (f)) {
    nbdkit_error ("fallback-table '%s': %m", table_file);
    fclose (f);
    return -1;
  }
  fclose (f);
  if (table_text == NULL)
    table_text = strdup ("");
  return next (nxdata);
}

/* Fallback counters for the status. */
static void
fallback_describe (const struct ibc_device *d, struct json_object *o)
{
  struct ibc_fallback_stats st;

  ibc_fallback_get_stats (d->opaque, &st);
  json_object_object_add (o, "fallback_enabled",
                          json_object_new_boolean (opts.enabled));
  json_object_object_add (o, "native_pieces",
                          json_object_new_uint64 (st.native_pieces));
  json_object_object_add (o, "software_pieces",
                          json_object_new_uint64 (st.software_pieces));
  json_object_object_add (o, "software_bytes",
                          json_object_new_uint64 (st.software_bytes));
  json_object_object_add (o, "plain_pieces",
                          json_object_new_uint64 (st.plain_pieces));
  json_object_object_add (o, "missing_key_errors",
                          json_object_new_uint64 (st.missing_key_errors));
  json_object_object_add (o, "table_swaps",
                          json_object_new_uint64 (st.table_swaps));
  json_object_object_add (
      o, "table_size", json_object_new_uint64 (ibc_fallback_size (d->opaque)));
}

/* Bind the table over the layer below and publish ours on top. */
static int
fallback_get_ready (int thread_model)
{
  char err[IBC_TABLE_ERR_MAX + 128];
  int r;

  (void) thread_model;
  r = ibc_fallback_new (&opts, ibc_registry_top (), &fb);
  if (r < 0) {
    nbdkit_error ("fallback: %s", strerror (-r));
    return -1;
  }
  r = table_text ? ibc_fallback_set_table (fb, table_text, 0, err, sizeof err)
                 : 0;
  if (r < 0) {
    nbdkit_error ("fallback-table '%s': %s", table_file, err);
    return -1;
  }
  r = ibc_layer_new (IBC_LAYER_FALLBACK, "fallback", &layer);
  if (r == 0)
    /* The table (and so the size) may change: the device runs to the end;
     * the status reports the table's size. */
    r = ibc_layer_add_device (layer, "crypt0", 0, UINT64_MAX,
                              ibc_fallback_profile (fb), fb);
  if (r == 0) {
    ibc_layer_set_describe (layer, fallback_describe);
    r = ibc_layer_publish (layer);
  }
  if (r < 0) {
    nbdkit_error ("fallback: publishing the layer: %s", strerror (-r));
    return -1;
  }
  return 0;
}

static void
write_status (void)
{
  if (status_file && ibc_status_write_file (status_file) < 0)
    nbdkit_error ("fallback-status-file '%s': %m", status_file);
}

/* Wipe every key.  (No status here: nbdkit unloads inner filters first,
 * so the layers below are gone already.) */
static void
fallback_unload (void)
{
  ibc_agent_stop ();
  ibc_layer_free (layer);
  ibc_fallback_free (fb);
  free (table_text);
}

/* The table must cover exactly the device below. */
static int
fallback_prepare (nbdkit_next *next, void *handle, int readonly)
{
  int64_t size = next->get_size (next);

  (void) handle, (void) readonly;
  if (size < 0)
    return -1;
  ibc_fallback_set_device_size (fb, (uint64_t) size);
  if (ibc_fallback_size (fb) == 0) {
    nbdkit_error ("no crypt table is mapped to instance '%s' yet "
                  "(ibcryptctl map %s TABLE)",
                  ibc_agent_instance (), ibc_agent_instance ());
    return -1;
  }
  if ((uint64_t) size != ibc_fallback_size (fb)) {
    nbdkit_error ("fallback-table covers %" PRIu64 " bytes but the device "
                  "below has %" PRIi64,
                  ibc_fallback_size (fb), size);
    return -1;
  }
  return 0;
}

/* Snapshot counters for whoever reads the status file. */
static int
fallback_finalize (nbdkit_next *next, void *handle)
{
  (void) next, (void) handle;
  write_status ();
  return 0;
}

/* Crypto ranges need whole data units. */
static int
fallback_block_size (nbdkit_next *next, void *handle, uint32_t *minimum,
                     uint32_t *preferred, uint32_t *maximum)
{
  uint32_t dus = ibc_fallback_max_data_unit (fb);

  (void) handle;
  if (next->block_size (next, minimum, preferred, maximum) == -1)
    return -1;
  if (dus == 0)
    return 0;
  if (*minimum < dus)
    *minimum = dus;
  if (*preferred < *minimum)
    *preferred = *minimum;
  if (*maximum == 0 || *maximum < *preferred)
    *maximum = 0xffffffff;
  return 0;
}

/* Encrypted ranges never report zeros: we answer extents ourselves.  The
 * layer below is asked too: nbdkit caches its answer only when asked, and
 * plain ranges pass extents down. */
static int
fallback_can_extents (nbdkit_next *next, void *handle)
{
  (void) handle;
  if (next->can_extents (next) == -1)
    return -1;
  return 1;
}

/* Zero and trim are ours: encrypted zeros on crypt ranges.  Plain ranges
 * (and native crypt ranges) call the layer below's zero, which nbdkit only
 * allows once its can_zero has been asked. */
static int
fallback_can_zero (nbdkit_next *next, void *handle)
{
  (void) handle;
  if (next->can_zero (next) == -1)
    return -1;
  return NBDKIT_ZERO_NATIVE;
}

static int
fallback_can_fast_zero (nbdkit_next *next, void *handle)
{
  (void) next, (void) handle;
  return 0;
}

static int
fallback_can_trim (nbdkit_next *next, void *handle)
{
  (void) handle;
  if (next->can_trim (next) == -1)
    return -1;
  return 1;
}

static int
fallback_can_cache (nbdkit_next *next, void *handle)
{
  (void) next, (void) handle;
  return NBDKIT_CACHE_NONE;
}

/* Fail a request on an unusable piece; 0 if the piece is usable. */
static int
piece_error (const struct ibc_fallback_piece *p, int *err)
{
  switch (p->action) {
  case IBC_PIECE_NO_KEY:
    nbdkit_error ("fallback: [%" PRIu64 ", +%" PRIu64 "): key '%s' is not "
                  "available (ENOKEY)",
                  p->off, p->len, p->binding->key);
    *err = EIO;
    return -1;
  case IBC_PIECE_UNALIGNED:
    nbdkit_debug ("fallback: [%" PRIu64 ", +%" PRIu64 ") is not aligned to "
                  "the %" PRIu32 "-byte data unit",
                  p->off, p->len, p->binding->config.data_unit_size);
    *err = EINVAL;
    return -1;
  default:
    return 0;
  }
}

static int
begin (uint64_t offset, uint32_t count, struct ibc_fallback_io *io, int *err)
{
  int r = ibc_fallback_io_begin (fb, offset, count, io);

  if (r < 0) {
    nbdkit_error ("fallback: request [%" PRIu64 ", +%" PRIu32 "): %s", offset,
                  count, strerror (-r));
    *err = EIO;
    return -1;
  }
  return 0;
}

static int
sw_error (int r, int *err)
{
  nbdkit_error ("fallback: software encryption: %s", strerror (-r));
  *err = r == -ENOMEM ? ENOMEM : EIO;
  return -1;
}

/* Read each piece below under its context; decrypt software pieces. */
static int
fallback_pread (nbdkit_next *next, void *handle, void *buf, uint32_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  IBC_ERR_GUARD (err);
  struct ibc_fallback_io io;
  struct ibc_fallback_piece p;
  int r = 0;

  (void) handle;
  if (begin (offset, count, &io, err) < 0)
    return -1;
  while (r == 0 && ibc_fallback_io_next (&io, &p)) {
    char *b = (char *) buf + (p.off - offset);

    r = piece_error (&p, err);
    if (r < 0)
      break;
    ibc_ctx_push (&p.ctx);
    r = next->pread (next, b, (uint32_t) p.len, p.off, flags, err);
    ibc_ctx_pop ();
    if (r == 0 && p.action == IBC_PIECE_SOFTWARE) {
      r = ibc_fallback_crypt (fb, p.key, &p.dun, b, b, p.len, false);
      if (r < 0)
        r = sw_error (r, err);
    }
  }
  ibc_fallback_io_end (&io);
  if (r < 0)
    /* Whatever was read must not reach the client half-decrypted. */
    memset (buf, 0, count);
  return r < 0 ? -1 : 0;
}

/* ibc_chunk_fn for software pieces: encrypt one chunk into this thread's
 * bounce buffer and move the DUN past it. */
struct sw_chunk {
  const struct ibc_key *key;
  struct ibc_dun dun;
  uint32_t dus;
};

static const void *
encrypt_chunk (void *opaque, const void *in, uint32_t n, int *err)
{
  struct sw_chunk *c = opaque;
  void *bounce = ibc_bounce (n);
  int r;

  if (bounce == NULL) {
    *err = ENOMEM;
    return NULL;
  }
  r = ibc_fallback_crypt (fb, c->key, &c->dun, in, bounce, n, true);
  if (r < 0) {
    sw_error (r, err);
    return NULL;
  }
  ibc_dun_add (&c->dun, n / c->dus);
  return bounce;
}

/* Write a crypt piece from src, or zeros when src is NULL: software pieces
 * are encrypted here chunk by chunk; native pieces go down with their
 * context (zeros as zero chunks: the device encrypts whatever it writes,
 * and the layer below may not be able to zero at all). */
static int
write_crypt (nbdkit_next *next, struct ibc_fallback_piece *p, const char *src,
             uint32_t flags, int *err)
{
  struct sw_chunk c = { p->key, p->dun, p->binding->config.data_unit_size };
  bool sw = p->action == IBC_PIECE_SOFTWARE;
  int r;

  ibc_ctx_push (&p->ctx);
  if (!sw && src)
    r = next->pwrite (next, src, (uint32_t) p->len, p->off, flags, err);
  else
    r = ibc_write_chunked (next, src, p->len, p->off, flags,
                           sw ? encrypt_chunk : NULL, &c, err);
  ibc_ctx_pop ();
  return r;
}

/* Write each piece: native pieces carry their context down. */
static int
fallback_pwrite (nbdkit_next *next, void *handle, const void *buf,
                 uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  IBC_ERR_GUARD (err);
  struct ibc_fallback_io io;
  struct ibc_fallback_piece p;
  int r = 0;

  (void) handle;
  if (begin (offset, count, &io, err) < 0)
    return -1;
  while (r == 0 && ibc_fallback_io_next (&io, &p)) {
    const char *b = (const char *) buf + (p.off - offset);

    r = piece_error (&p, err);
    if (r < 0)
      break;
    if (p.action != IBC_PIECE_PLAIN) {
      r = write_crypt (next, &p, b, flags, err);
      continue;
    }
    ibc_ctx_push (&p.ctx);
    r = next->pwrite (next, b, (uint32_t) p.len, p.off, flags, err);
    ibc_ctx_pop ();
  }
  ibc_fallback_io_end (&io);
  return r < 0 ? -1 : 0;
}

/* Zero and trim.  Crypt pieces get encrypted zeros (trim too, unless the
 * binding allows discards: a trimmed crypt range would read back as
 * garbage, yet loop and nbdfuse turn zeroing into trims).  Plain pieces
 * pass down as what they are, when the layer below can do it: zero falls
 * back to writing zeros, and trim, being advisory, to nothing. */
static int
zero_or_trim (nbdkit_next *next, uint32_t count, uint64_t offset,
              uint32_t flags, int *err, bool trim)
{
  struct ibc_fallback_io io;
  struct ibc_fallback_piece p;
  int r = 0;

  if (begin (offset, count, &io, err) < 0)
    return -1;
  while (r == 0 && ibc_fallback_io_next (&io, &p)) {
    uint32_t len = (uint32_t) p.len;

    if (p.action == IBC_PIECE_PLAIN || (trim && p.binding->allow_discards)) {
      ibc_ctx_push (&p.ctx);
      if (trim && next->can_trim (next) == 1)
        r = next->trim (next, len, p.off, flags, err);
      else if (!trim && next->can_zero (next) > NBDKIT_ZERO_NONE)
        r = next->zero (next, len, p.off, flags & ~NBDKIT_FLAG_FAST_ZERO, err);
      else if (!trim)
        r = ibc_write_chunked (next, NULL, len, p.off, flags & NBDKIT_FLAG_FUA,
                               NULL, NULL, err);
      ibc_ctx_pop ();
      continue;
    }
    r = piece_error (&p, err);
    if (r == 0)
      r = write_crypt (next, &p, NULL, flags & NBDKIT_FLAG_FUA, err);
  }
  ibc_fallback_io_end (&io);
  return r < 0 ? -1 : 0;
}

static int
fallback_zero (nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
               uint32_t flags, int *err)
{
  IBC_ERR_GUARD (err);
  (void) handle;
  return zero_or_trim (next, count, offset, flags, err, false);
}

static int
fallback_trim (nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
               uint32_t flags, int *err)
{
  IBC_ERR_GUARD (err);
  (void) handle;
  return zero_or_trim (next, count, offset, flags, err, true);
}

/* Plain ranges report the layer below's extents; crypt ranges are data. */
static int
fallback_extents (nbdkit_next *next, void *handle, uint32_t count,
                  uint64_t offset, uint32_t flags,
                  struct nbdkit_extents *extents, int *err)
{
  IBC_ERR_GUARD (err);
  struct ibc_fallback_io io;
  struct ibc_fallback_piece p;
  int r = 0;

  (void) handle;
  if (begin (offset, count, &io, err) < 0)
    return -1;
  while (r == 0 && ibc_fallback_io_next (&io, &p)) {
    if (p.binding->kind == IBC_BINDING_CRYPT) {
      r = nbdkit_add_extent (extents, p.off, p.len, 0);
      if (r < 0)
        *err = errno;
    } else {
      struct nbdkit_extents *lower = nbdkit_extents_full (
          next, (uint32_t) p.len, p.off, flags & ~NBDKIT_FLAG_REQ_ONE, err);
      if (lower == NULL) {
        r = -1;
        break;
      }
      for (size_t i = 0; r == 0 && i < nbdkit_extents_count (lower); i++) {
        struct nbdkit_extent e = nbdkit_get_extent (lower, i);
        uint64_t end = e.offset + e.length;
        if (end > p.off + p.len)
          end = p.off + p.len;
        if (end > e.offset)
          r = nbdkit_add_extent (extents, e.offset, end - e.offset, e.type);
        if (r < 0)
          *err = errno;
      }
      nbdkit_extents_free (lower);
    }
    if (flags & NBDKIT_FLAG_REQ_ONE)
      break;
  }
  ibc_fallback_io_end (&io);
  return r < 0 ? -1 : 0;
}

static struct nbdkit_filter filter = {
  .name = "ibcrypt-fallback",
  .longname = "ibcrypt crypt table and software fallback",
  .config = fallback_config,
  .config_complete = fallback_config_complete,
  .config_help = fallback_config_help,
  .get_ready = fallback_get_ready,
  .after_fork = ibc_nbdkit_after_fork,
  .unload = fallback_unload,
  .prepare = fallback_prepare,
  .finalize = fallback_finalize,
  .block_size = fallback_block_size,
  .can_extents = fallback_can_extents,
  .can_zero = fallback_can_zero,
  .can_fast_zero = fallback_can_fast_zero,
  .can_trim = fallback_can_trim,
  .can_cache = fallback_can_cache,
  .pread = fallback_pread,
  .pwrite = fallback_pwrite,
  .zero = fallback_zero,
  .trim = fallback_trim,
  .extents = fallback_extents,
};

NBDKIT_REGISTER_FILTER (filter)
