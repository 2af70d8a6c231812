/* nbdkit ibcrypt-passthrough filter: a device-mapper-like table over the layer below. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nbdkit-filter.h>

#include "ibcrypt/agent.h"
#include "ibcrypt/ctx.h"
#include "ibcrypt/dm.h"
#include "ibcrypt/registry.h"
#include "ibc-nbdkit.h"

/* Tables are small; a bigger trigger file is a mistake. */
#define MAX_TABLE_TEXT (1u << 20)
/* Pieces one extents request looks at; the client asks again for the
 * rest (a shorter answer is allowed). */
#define MAX_EXTENT_PIECES 256

static const char *table_file;
static char *table_text;
static const char *dev_name = "dm0";
static const char *load_file, *resume_file;

static struct ibc_dm_device *md;
static struct ibc_layer *layer;

/* When the trigger files were last looked at (ms, monotonic). */
static atomic_uint_fast64_t trigger_checked_ms;
/* Why a mutex: a trigger is handled by whichever request thread sees the
 * file first; a load or resume can outlast the 100 ms throttle (resume
 * waits for requests in flight), and a file must be applied only once. */
static pthread_mutex_t trigger_lock = PTHREAD_MUTEX_INITIALIZER;

/* Read a whole (small) text file; NULL with errno set on failure. */
static char *
read_text (const char *path)
{
  FILE *f = fopen (path, "re");
  char *buf;
  size_t n;

  if (f == NULL)
    return NULL;
  buf = malloc (MAX_TABLE_TEXT + 1);
  if (buf == NULL) {
    fclose (f);
    errno = ENOMEM;
    return NULL;
  }
  n = fread (buf, 1, MAX_TABLE_TEXT + 1, f);
  if (ferror (f) || n > MAX_TABLE_TEXT) {
    int e = ferror (f) ? EIO : EFBIG;
    free (buf);
    fclose (f);
    errno = e;
    return NULL;
  }
  fclose (f);
  buf[n] = '\0';
  return buf;
}

/* Parse the filter's parameters; pass the rest down. */
static int
passthrough_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
                    const char *key, const char *value)
{
  int r = ibc_nbdkit_agent_config (key, value);

  if (r != 0)
    return r < 0 ? -1 : 0;
  if (strcmp (key, "passthrough-table") == 0) {
    table_file = value;
    return 0;
  }
  if (strcmp (key, "passthrough-name") == 0) {
    if (!ibc_device_name_valid (value)) {
      nbdkit_error ("passthrough-name '%s': expected 1-64 characters of "
                    "[A-Za-z0-9._-]",
                    value);
      return -1;
    }
    dev_name = value;
    return 0;
  }
  if (strcmp (key, "passthrough-load-file") == 0) {
    load_file = value;
    return 0;
  }
  if (strcmp (key, "passthrough-resume-file") == 0) {
    resume_file = value;
    return 0;
  }
  return next (nxdata, key, value);
}

/* Read the table now so that a missing file fails early. */
static int
passthrough_config_complete (nbdkit_next_config_complete *next,
                             nbdkit_backend *nxdata)
{
  if (table_file == NULL) {
    nbdkit_error ("passthrough-table=FILE is required");
    return -1;
  }
  table_text = read_text (table_file);
  if (table_text == NULL) {
    nbdkit_error ("passthrough-table '%s': %m", table_file);
    return -1;
  }
  return next (nxdata);
}

#define passthrough_config_help                                                \
  "passthrough-table=FILE       (required) The dm table: linear, striped,\n"   \
  "                             flakey, error and zero targets.\n"             \
  "passthrough-name=NAME        Device name in the registry (default dm0).\n"  \
  "passthrough-load-file=PATH   When PATH appears, load the table in it\n"     \
  "                             (inactive) and delete it; errors go to\n"      \
  "                             PATH.err.\n"                                   \
  "passthrough-resume-file=PATH When PATH appears, make the loaded table\n"    \
  "                             live and delete it; errors go to PATH.err.\n"  \
  "ibcrypt-socket=PATH, ibcrypt-name=NAME  Connect to ibcryptd (ibcrypt(7))."

/* Requests are independent: the live table is read under SRCU. */
static int
passthrough_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

/* Build the mapped device over the layer below and publish our layer:
 * .get_ready runs inner to outer, so the registry's top is below us. */
static int
passthrough_get_ready (int thread_model)
{
  char err[IBC_TABLE_ERR_MAX], modes[256];
  struct ibc_caps caps;
  int r;

  (void) thread_model;
  r = ibc_dm_device_new (dev_name, ibc_registry_top (), table_text, 0, &md, err,
                         sizeof err);
  if (r < 0) {
    nbdkit_error ("passthrough-table '%s': %s", table_file,
                  r == -ENOMEM ? "out of memory" : err);
    return -1;
  }
  r = ibc_layer_new (IBC_LAYER_PASSTHROUGH, "passthrough", &layer);
  if (r == 0)
    r = ibc_layer_add_device (layer, dev_name, 0, ibc_dm_device_size (md),
                              ibc_dm_device_profile (md), md);
  if (r == 0)
    r = ibc_layer_publish (layer);
  if (r < 0) {
    nbdkit_error ("passthrough: publishing device '%s': %s", dev_name,
                  strerror (-r));
    return -1;
  }
  ibc_caps_snapshot (ibc_profile_caps (ibc_dm_device_profile (md)), &caps);
  if (ibc_caps_format_modes (&caps, modes, sizeof modes) < 0)
    strcpy (modes, "...");
  nbdkit_debug ("passthrough: device '%s': %" PRIu64 " bytes, inline crypto:"
                " %s",
                dev_name, ibc_dm_device_size (md), modes[0] ? modes : "none");
  return 0;
}

/* No I/O runs any more. */
static void
passthrough_unload (void)
{
  ibc_agent_stop (); /* it may be using our device */
  ibc_layer_free (layer);
  ibc_dm_device_free (md);
  free (table_text);
}

static uint64_t
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Apply one trigger file if it exists: load its table, or resume.  The
 * outcome is in PATH.err (written, or removed on success) before PATH is
 * deleted, so a waiter that sees PATH gone can read it. */
static void
apply_trigger (const char *path, bool load)
{
  char err[IBC_TABLE_ERR_MAX] = "";
  char *text = NULL, *errpath = NULL;
  int r;

  if (access (path, F_OK) != 0)
    return;
  if (load) {
    text = read_text (path);
    r = text ? ibc_dm_device_load (md, text, err, sizeof err) : -errno;
  } else
    r = ibc_dm_device_resume (md, err, sizeof err);
  if (r < 0 && err[0] == '\0')
    snprintf (err, sizeof err, "%s", strerror (-r));
  if (r < 0)
    nbdkit_error ("passthrough: %s '%s' from %s: %s",
                  load ? "loading a table into" : "resuming", dev_name, path,
                  err);
  else
    nbdkit_debug ("passthrough: %s '%s' from %s",
                  load ? "loaded a table into" : "resumed", dev_name, path);
  if (asprintf (&errpath, "%s.err", path) >= 0) {
    FILE *f;
    if (r == 0)
      unlink (errpath);
    else if ((f = fopen (errpath, "we")) != NULL) {
      fprintf (f, "%s\n", err);
      fclose (f);
    }
  }
  unlink (path);
  free (errpath);
  free (text);
}

/* The trigger files: at most one look per 100 ms over all threads.  Never
 * called inside a mapping (resume waits for those). */
static void
maybe_trigger (void)
{
  uint64_t now, last;

  if (load_file == NULL && resume_file == NULL)
    return;
  now = now_ms ();
  last = atomic_load_explicit (&trigger_checked_ms, memory_order_relaxed);
  if (now - last < 100
      || !atomic_compare_exchange_strong (&trigger_checked_ms, &last, now))
    return;
  if (pthread_mutex_trylock (&trigger_lock) != 0)
    return; /* another thread is applying one */
  if (load_file)
    apply_trigger (load_file, true);
  if (resume_file)
    apply_trigger (resume_file, false);
  pthread_mutex_unlock (&trigger_lock);
}

/* The live table must fit in the export below. */
static int
passthrough_prepare (nbdkit_next *next, void *handle, int readonly)
{
  char err[IBC_TABLE_ERR_MAX];
  int64_t size = next->get_size (next);

  (void) handle, (void) readonly;
  if (size < 0)
    return -1;
  if (ibc_dm_device_set_export_size (md, (uint64_t) size, err, sizeof err)
      < 0) {
    nbdkit_error ("passthrough-table '%s' over the %" PRIi64 "-byte export: "
                  "%s",
                  table_file, size, err);
    return -1;
  }
  maybe_trigger ();
  return 0;
}

/* The table's size (every table of the device has it). */
static int64_t
passthrough_get_size (nbdkit_next *next, void *handle)
{
  (void) next, (void) handle;
  return (int64_t) ibc_dm_device_size (md);
}

/* Extents are mapped here; the lower context must know its own. */
static int
passthrough_can_extents (nbdkit_next *next, void *handle)
{
  (void) handle;
  return next->can_extents (next) == -1 ? -1 : 1;
}

/* Zero is mapped here (zero targets need no I/O). */
static int
passthrough_can_zero (nbdkit_next *next, void *handle)
{
  (void) handle;
  return next->can_zero (next) == -1 ? -1 : NBDKIT_ZERO_NATIVE;
}

/* Fast zero is what the layer below can do. */
static int
passthrough_can_fast_zero (nbdkit_next *next, void *handle)
{
  (void) handle;
  return next->can_fast_zero (next);
}

static int
refuse_crypto (const struct ibc_dm_io *io, const char *why, int *err)
{
  nbdkit_error ("passthrough '%s': encrypted request [%" PRIu64 ", +%" PRIu64
                ") refused: %s",
                dev_name, io->off, io->len, why);
  *err = EIO;
  return -1;
}

/* Push the context the layer below needs for one piece.  Returns 1 if one
 * was pushed (pop it after the call), 0 if none, -1 with *err set. */
static int
push_lower_ctx (const struct ibc_crypt_ctx *ctx, const struct ibc_dm_io *io,
                int *err)
{
  struct ibc_crypt_ctx sub = {
    .kind = IBC_CTX_PLAIN,
    .lo = io->lower_off,
    .hi = io->lower_off + io->len,
  };

  /* No context although a layer above makes them: a foreign filter's own
   * thread.  The layer below decides (it fails closed). */
  if (ctx == NULL && ibc_layer_above (layer) != NULL)
    return 0;
  /* Otherwise we are the top (a plain dm device) or the data is plain. */
  if (ctx && ctx->kind == IBC_CTX_CRYPTO) {
    if (io->lower->profile == NULL)
      return refuse_crypto (io, "no inline encryption below", err);
    /* The DUNs stay; only the anchor moves with the piece. */
    if (ibc_ctx_remap (ctx, io->off, io->len, io->lower_off, &sub) < 0)
      return refuse_crypto (io, "outside its binding", err);
  }
  if (ibc_ctx_push (&sub) < 0) {
    nbdkit_error ("passthrough: too many nested ibcrypt contexts");
    *err = EIO;
    return -1;
  }
  return 1;
}

enum op { OP_PREAD, OP_PWRITE, OP_ZERO, OP_TRIM, OP_CACHE };
static const char *const op_names[]
    = { "read", "write", "zero", "trim", "cache" };

/* Zero below; write zeros if the layer below cannot zero at all. */
static int
lower_zero (nbdkit_next *next, uint32_t count, uint64_t offset, uint32_t flags,
            int *err)
{
  if (next->can_zero (next) > NBDKIT_ZERO_NONE)
    return next->zero (next, count, offset, flags, err);
  if (flags & NBDKIT_FLAG_FAST_ZERO) {
    *err = ENOTSUP;
    return -1;
  }
  return ibc_write_chunked (next, NULL, count, offset, flags & NBDKIT_FLAG_FUA,
                            NULL, NULL, err);
}

/* One piece of a data request. */
static int
piece_io (nbdkit_next *next, enum op op, const struct ibc_dm_io *io, char *p,
          uint32_t flags, int *err)
{
  const struct ibc_crypt_ctx *ctx = ibc_ctx_current ();
  uint32_t n = (uint32_t) io->len;
  int pushed, r = -1;

  if (op == OP_CACHE && (io->fail || io->lower == NULL))
    return 0; /* nothing to prefetch */
  if (io->fail) {
    nbdkit_debug ("passthrough '%s': %s [%" PRIu64 ", +%" PRIu32 "): %s "
                  "target%s: EIO",
                  dev_name, op_names[op], io->off, n,
                  ibc_dm_kind_name (io->kind),
                  io->kind == IBC_DM_FLAKEY ? " is down" : "");
    *err = EIO;
    return -1;
  }
  if (io->kind == IBC_DM_ZERO) {
    if (ctx && ctx->kind == IBC_CTX_CRYPTO)
      return refuse_crypto (io, "zero target", err);
    if (op == OP_PREAD)
      memset (p, 0, n);
    return 0; /* writes are discarded */
  }
  pushed = push_lower_ctx (ctx, io, err);
  if (pushed < 0)
    return -1;
  switch (op) {
  case OP_PREAD:
    r = next->pread (next, p, n, io->lower_off, flags, err);
    break;
  case OP_PWRITE:
    r = next->pwrite (next, p, n, io->lower_off, flags, err);
    break;
  case OP_ZERO:
    r = lower_zero (next, n, io->lower_off, flags, err);
    break;
  case OP_TRIM:
    r = next->trim (next, n, io->lower_off, flags, err);
    break;
  case OP_CACHE:
    r = next->cache (next, n, io->lower_off, flags, err);
    break;
  }
  if (pushed)
    ibc_ctx_pop ();
  return r;
}

/* Start mapping a request (after looking at the trigger files). */
static int
map_begin (struct ibc_dm_map *m, uint32_t count, uint64_t offset, int *err)
{
  maybe_trigger ();
  if (ibc_dm_map_begin (md, offset, count, m) < 0) {
    nbdkit_error ("passthrough '%s': request [%" PRIu64 ", +%" PRIu32
                  ") beyond the device",
                  dev_name, offset, count);
    *err = EIO;
    return -1;
  }
  return 0;
}

/* Split a request at target and chunk boundaries, one lower call each. */
static int
map_io (nbdkit_next *next, enum op op, void *buf, uint32_t count,
        uint64_t offset, uint32_t flags, int *err)
{
  struct ibc_dm_map m;
  struct ibc_dm_io io;
  int r = 0;

  if (map_begin (&m, count, offset, err) < 0)
    return -1;
  while (r == 0 && ibc_dm_map_next (&m, &io))
    r = piece_io (next, op, &io, buf ? (char *) buf + (io.off - offset) : NULL,
                  flags, err);
  ibc_dm_map_end (&m);
  return r;
}

/* Read through the table. */
static int
passthrough_pread (nbdkit_next *next, void *handle, void *buf, uint32_t count,
                   uint64_t offset, uint32_t flags, int *err)
{
  (void) handle;
  return map_io (next, OP_PREAD, buf, count, offset, flags, err);
}

/* Write through the table. */
static int
passthrough_pwrite (nbdkit_next *next, void *handle, const void *buf,
                    uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  (void) handle;
  return map_io (next, OP_PWRITE, (void *) buf, count, offset, flags, err);
}

/* Zero through the table. */
static int
passthrough_zero (nbdkit_next *next, void *handle, uint32_t count,
                  uint64_t offset, uint32_t flags, int *err)
{
  (void) handle;
  return map_io (next, OP_ZERO, NULL, count, offset, flags, err);
}

/* Trim through the table. */
static int
passthrough_trim (nbdkit_next *next, void *handle, uint32_t count,
                  uint64_t offset, uint32_t flags, int *err)
{
  (void) handle;
  return map_io (next, OP_TRIM, NULL, count, offset, flags, err);
}

/* Prefetch through the table. */
static int
passthrough_cache (nbdkit_next *next, void *handle, uint32_t count,
                   uint64_t offset, uint32_t flags, int *err)
{
  (void) handle;
  return map_io (next, OP_CACHE, NULL, count, offset, flags, err);
}

/* The lower device's extents for one piece, moved to our offsets.  Sets
 * *complete when they cover the whole piece. */
static int
lower_extents (nbdkit_next *next, const struct ibc_dm_io *io, uint32_t flags,
               struct nbdkit_extents *extents, bool *complete, int *err)
{
  uint64_t lo = io->lower_off, hi = io->lower_off + io->len, covered = lo;
  struct nbdkit_extents *below = nbdkit_extents_new (lo, hi);
  int pushed, r;

  if (below == NULL) {
    *err = errno;
    return -1;
  }
  pushed = push_lower_ctx (ibc_ctx_current (), io, err);
  r = pushed < 0
          ? -1
          : next->extents (next, (uint32_t) io->len, lo, flags, below, err);
  if (pushed > 0)
    ibc_ctx_pop ();
  for (size_t i = 0; r == 0 && i < nbdkit_extents_count (below); i++) {
    struct nbdkit_extent e = nbdkit_get_extent (below, i);
    uint64_t s = e.offset > lo ? e.offset : lo;
    uint64_t end = e.offset + e.length < hi ? e.offset + e.length : hi;

    if (end <= s || s != covered)
      break;
    if (nbdkit_add_extent (extents, io->off + (s - lo), end - s, e.type)
        == -1) {
      *err = errno;
      r = -1;
    }
    covered = end;
  }
  nbdkit_extents_free (below);
  *complete = covered == hi;
  return r;
}

/* Extents through the table: zero targets are holes, error targets
 * data. */
static int
passthrough_extents (nbdkit_next *next, void *handle, uint32_t count,
                     uint64_t offset, uint32_t flags,
                     struct nbdkit_extents *extents, int *err)
{
  struct ibc_dm_map m;
  struct ibc_dm_io io;
  bool complete = true;
  int r = 0;

  (void) handle;
  if (map_begin (&m, count, offset, err) < 0)
    return -1;
  for (unsigned pieces = 0; r == 0 && complete && pieces < MAX_EXTENT_PIECES
                            && ibc_dm_map_next (&m, &io);
       pieces++) {
    if (io.lower)
      r = lower_extents (next, &io, flags, extents, &complete, err);
    else if (nbdkit_add_extent (extents, io.off, io.len,
                                io.kind == IBC_DM_ZERO
                                    ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO
                                    : 0)
             == -1) {
      *err = errno;
      r = -1;
    }
    if (flags & NBDKIT_FLAG_REQ_ONE)
      break;
  }
  ibc_dm_map_end (&m);
  return r;
}

static struct nbdkit_filter filter = {
  .name = "ibcrypt-passthrough",
  .longname = "ibcrypt device-mapper-like passthrough layer",
  .config = passthrough_config,
  .config_complete = passthrough_config_complete,
  .config_help = passthrough_config_help,
  .thread_model = passthrough_thread_model,
  .get_ready = passthrough_get_ready,
  .after_fork = ibc_nbdkit_after_fork,
  .unload = passthrough_unload,
  .prepare = passthrough_prepare,
  .get_size = passthrough_get_size,
  .can_extents = passthrough_can_extents,
  .can_zero = passthrough_can_zero,
  .can_fast_zero = passthrough_can_fast_zero,
  .pread = passthrough_pread,
  .pwrite = passthrough_pwrite,
  .zero = passthrough_zero,
  .trim = passthrough_trim,
  .cache = passthrough_cache,
  .extents = passthrough_extents,
};

NBDKIT_REGISTER_FILTER (filter)
