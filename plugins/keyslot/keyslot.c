/* nbdkit ibcrypt-keyslot filter: emulated inline-encryption hardware. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <nbdkit-filter.h>

#include "ibcrypt/agent.h"
#include "ibcrypt/ctx.h"
#include "ibcrypt/hwdev.h"
#include "ibcrypt/registry.h"
#include "ibc-nbdkit.h"

#define MAX_DEVICES 1024

static struct ibc_hwdev_spec specs[MAX_DEVICES];
static size_t nspecs;
static struct ibc_hwdev_knobs knobs;
static const char *reset_file;

static struct ibc_hwdev *devices[MAX_DEVICES];
static struct ibc_layer *layer;
/* When the reset file was last looked at (ms, monotonic). */
static atomic_uint_fast64_t reset_checked_ms;

/* Parse the filter's parameters; pass the rest down. */
static int
keyslot_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
                const char *key, const char *value)
{
  char err[256];
  int r = ibc_nbdkit_agent_config (key, value);

  if (r != 0)
    return r < 0 ? -1 : 0;
  if (strcmp (key, "keyslot-device") == 0) {
    if (nspecs == MAX_DEVICES) {
      nbdkit_error ("keyslot-device: at most %d devices", MAX_DEVICES);
      return -1;
    }
    if (ibc_hwdev_spec_parse (value, &specs[nspecs], err, sizeof err) < 0) {
      nbdkit_error ("keyslot-device '%s': %s", value, err);
      return -1;
    }
    for (size_t i = 0; i < nspecs; i++)
      if (strcmp (specs[i].name, specs[nspecs].name) == 0) {
        nbdkit_error ("keyslot-device: duplicate device name '%s'",
                      specs[i].name);
        return -1;
      }
    nspecs++;
    return 0;
  }
  if (strcmp (key, "keyslot-program-delay") == 0)
    return nbdkit_parse_uint32_t (key, value, &knobs.program_delay_us);
  if (strcmp (key, "keyslot-crypt-delay") == 0)
    return nbdkit_parse_uint32_t (key, value, &knobs.crypt_delay_us);
  if (strcmp (key, "keyslot-program-fail-rate") == 0)
    return ibc_parse_rate_ppm (key, value, &knobs.program_fail_ppm);
  if (strcmp (key, "keyslot-reset-file") == 0) {
    reset_file = value;
    return 0;
  }
  return next (nxdata, key, value);
}

#define keyslot_config_help                                                    \
  "keyslot-device=NAME[,start=B][,size=B][,slots=N][,modes=M:DUS[+DUS],...]"   \
  "\n     [,dun-bytes=N][,key-types=raw[+hw-wrapped]][,integrity=yes|no]\n"    \
  "                             An emulated inline-encryption device\n"        \
  "                             (repeatable; default: one over the export).\n" \
  "keyslot-program-delay=USEC   Sleep in every keyslot program.\n"             \
  "keyslot-program-fail-rate=P  Fail this share of programs (e.g. 5%).\n"      \
  "keyslot-reset-file=PATH      While PATH exists, reset the devices\n"        \
  "                             (lose and reprogram all keys) once.\n"         \
  "ibcrypt-socket=PATH, ibcrypt-name=NAME  Connect to ibcryptd (ibcrypt(7))."

/* Device counters for the status. */
static void
keyslot_describe (const struct ibc_device *d, struct json_object *o)
{
  struct ibc_hwdev *dev = d->opaque;
  struct ibc_hwdev_stats st;

  ibc_hwdev_get_stats (dev, &st);
  json_object_object_add (
      o, "integrity",
      json_object_new_boolean (ibc_hwdev_spec (dev)->integrity));
  json_object_object_add (o, "crypt_requests",
                          json_object_new_uint64 (st.crypt_requests));
  json_object_object_add (o, "crypt_bytes",
                          json_object_new_uint64 (st.crypt_bytes));
  json_object_object_add (o, "raw_key_setups",
                          json_object_new_uint64 (st.raw_key_setups));
  json_object_object_add (o, "injected_failures",
                          json_object_new_uint64 (st.injected_failures));
  json_object_object_add (o, "resets", json_object_new_uint64 (st.resets));
}

/* Create the devices and publish the layer: .get_ready runs inner to
 * outer, so layers above find this one below them. */
static int
keyslot_get_ready (int thread_model)
{
  int r;

  (void) thread_model;
  if (nspecs == 0) {
    ibc_hwdev_spec_default (&specs[0]);
    nspecs = 1;
  }
  r = ibc_layer_new (IBC_LAYER_KEYSLOT, "keyslot", &layer);
  if (r < 0) {
    nbdkit_error ("keyslot: creating the layer: %s", strerror (-r));
    return -1;
  }
  for (size_t i = 0; i < nspecs; i++) {
    struct ibc_hwdev_spec *s = &specs[i];

    /* size=0: to the end of the export, whose size is not known yet. */
    if (s->size == 0)
      s->size = UINT64_MAX - s->start;
    r = ibc_hwdev_new (s, &knobs, &devices[i]);
    if (r < 0) {
      nbdkit_error ("keyslot-device '%s': %s", s->name,
                    r == -EINVAL && s->wrapping_key[0]
                        ? "invalid device, or wrapping-key file not exactly "
                          "32 readable bytes"
                        : strerror (-r));
      return -1;
    }
    r = ibc_layer_add_device (layer, s->name, s->start, s->size,
                              ibc_hwdev_profile (devices[i]), devices[i]);
    if (r < 0) {
      nbdkit_error ("keyslot-device '%s': %s", s->name,
                    r == -EINVAL ? "overlaps another device" : strerror (-r));
      return -1;
    }
  }
  ibc_layer_set_describe (layer, keyslot_describe);
  r = ibc_layer_publish (layer);
  if (r < 0) {
    nbdkit_error ("keyslot: publishing the layer: %s", strerror (-r));
    return -1;
  }
  return 0;
}

/* Free the devices (no I/O runs any more); the agent stops first. */
static void
keyslot_unload (void)
{
  ibc_agent_stop ();
  ibc_layer_free (layer);
  for (size_t i = 0; i < nspecs; i++)
    ibc_hwdev_free (devices[i]);
}

/* Devices must lie inside the export. */
static int
keyslot_prepare (nbdkit_next *next, void *handle, int readonly)
{
  int64_t size = next->get_size (next);

  (void) handle, (void) readonly;
  if (size < 0)
    return -1;
  for (size_t i = 0; i < nspecs; i++) {
    const struct ibc_hwdev_spec *s = &specs[i];
    if (s->start >= (uint64_t) size
        || (s->size != UINT64_MAX - s->start
            && s->start + s->size > (uint64_t) size)) {
      nbdkit_error ("keyslot-device '%s' (start %" PRIu64 ", size %" PRIu64
                    ") does not fit in the %" PRIi64 "-byte export",
                    s->name, s->start, s->size, size);
      return -1;
    }
  }
  return 0;
}

static uint64_t
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* The reset trigger: at most one access(2) per 100 ms over all threads. */
static void
maybe_reset (void)
{
  uint64_t now, last;

  if (reset_file == NULL)
    return;
  now = now_ms ();
  last = atomic_load_explicit (&reset_checked_ms, memory_order_relaxed);
  if (now - last < 100
      || !atomic_compare_exchange_strong (&reset_checked_ms, &last, now))
    return;
  if (access (reset_file, F_OK) != 0)
    return;
  if (unlink (reset_file) != 0)
    return; /* someone else took this reset */
  for (size_t i = 0; i < nspecs; i++) {
    int r = ibc_hwdev_reset (devices[i]);
    if (r < 0)
      nbdkit_error ("keyslot-device '%s': reprogramming after reset: %s",
                    specs[i].name, strerror (-r));
    else
      nbdkit_debug ("keyslot-device '%s': reset, keys reprogrammed",
                    specs[i].name);
  }
}

/* What a request carries: NULL = plain pass-through; else the device and
 * first DUN to use.  Returns -1 with *err set for requests that must
 * fail. */
struct crypt_req {
  const struct ibc_crypt_ctx *ctx;
  struct ibc_hwdev *dev;
  struct ibc_dun dun;
};

static int
classify (uint64_t offset, uint32_t count, struct crypt_req *req, int *err)
{
  const struct ibc_crypt_ctx *ctx = ibc_ctx_current ();
  const struct ibc_device *d;
  int r;

  req->ctx = NULL;
  if (ctx == NULL) {
    if (ibc_layer_above (layer) == NULL)
      return 0; /* used as plain storage: nothing above creates contexts */
    /* Fail closed: only a foreign filter's own thread (readahead, cache)
     * between ibcrypt layers sends requests without a context. */
    nbdkit_error ("keyslot: request at %" PRIu64 " without an ibcrypt context:"
                  " a filter between ibcrypt layers issued it from its own "
                  "thread; see ibcrypt(7)",
                  offset);
    *err = EIO;
    return -1;
  }
  if (ctx->kind == IBC_CTX_PLAIN)
    return 0;
  maybe_reset ();
  d = ibc_layer_device_at (layer, offset);
  if (d == NULL || offset + count > d->start + d->size || offset < ctx->lo
      || offset + count > ctx->hi) {
    nbdkit_error ("keyslot: encrypted request [%" PRIu64 ", +%" PRIu32
                  ") outside its binding or its device",
                  offset, count);
    *err = EIO;
    return -1;
  }
  r = ibc_ctx_dun_at (ctx, offset, &req->dun);
  if (r < 0 || count % ctx->data_unit_size != 0) {
    *err = EINVAL;
    return -1;
  }
  req->ctx = ctx;
  req->dev = d->opaque;
  return 0;
}

static int
crypt_error (const struct crypt_req *req, int r, int *err)
{
  const char *what
      = r == -EOPNOTSUPP ? "configuration not supported" : strerror (-r);

  nbdkit_error ("keyslot-device '%s': key %s: %s",
                ibc_hwdev_spec (req->dev)->name, ibc_key_id (req->ctx->key),
                what);
  *err = r == -EINVAL ? EINVAL : r == -ENOMEM ? ENOMEM : EIO;
  return -1;
}

/* Read, then decrypt in place with the key in a keyslot. */
static int
keyslot_pread (nbdkit_next *next, void *handle, void *buf, uint32_t count,
               uint64_t offset, uint32_t flags, int *err)
{
  IBC_ERR_GUARD (err);
  struct crypt_req req;
  int r;

  (void) handle;
  if (classify (offset, count, &req, err) < 0)
    return -1;
  if (next->pread (next, buf, count, offset, flags, err) == -1)
    return -1;
  if (req.ctx == NULL)
    return 0;
  r = ibc_hwdev_crypt (req.dev, req.ctx->key, &req.dun, buf, buf, count, false);
  if (r < 0) {
    /* Never hand ciphertext up as if it were plaintext. */
    memset (buf, 0, count);
    return crypt_error (&req, r, err);
  }
  return 0;
}

/* ibc_chunk_fn: encrypt one chunk into this thread's bounce buffer with
 * the request's key, and move the request's DUN past it. */
static const void *
encrypt_chunk (void *opaque, const void *in, uint32_t n, int *err)
{
  struct crypt_req *req = opaque;
  void *bounce = ibc_bounce (n);
  int r;

  if (bounce == NULL) {
    *err = ENOMEM;
    return NULL;
  }
  r = ibc_hwdev_crypt (req->dev, req->ctx->key, &req->dun, in, bounce, n, true);
  if (r < 0) {
    crypt_error (req, r, err);
    return NULL;
  }
  ibc_dun_add (&req->dun, n / req->ctx->data_unit_size);
  return bounce;
}

/* Encrypt (from src, or zeros when src is NULL) and write, chunk by chunk. */
static int
encrypt_and_write (nbdkit_next *next, struct crypt_req *req, const void *src,
                   uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  return ibc_write_chunked (next, src, count, offset, flags, encrypt_chunk, req,
                            err);
}

/* Encrypt with the key in a keyslot, then write. */
static int
keyslot_pwrite (nbdkit_next *next, void *handle, const void *buf,
                uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  IBC_ERR_GUARD (err);
  struct crypt_req req;

  (void) handle;
  if (classify (offset, count, &req, err) < 0)
    return -1;
  if (req.ctx == NULL)
    return next->pwrite (next, buf, count, offset, flags, err);
  return encrypt_and_write (next, &req, buf, count, offset, flags, err);
}

/* Zeroing an encrypted range writes encrypted zeros. */
static int
keyslot_zero (nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  IBC_ERR_GUARD (err);
  struct crypt_req req;

  (void) handle;
  if (classify (offset, count, &req, err) < 0)
    return -1;
  if (req.ctx == NULL)
    return next->zero (next, count, offset, flags, err);
  if (flags & NBDKIT_FLAG_FAST_ZERO) {
    *err = ENOTSUP;
    return -1;
  }
  return encrypt_and_write (next, &req, NULL, count, offset,
                            flags & NBDKIT_FLAG_FUA, err);
}

/* Trim passes down: the layer above only sends it for ranges whose
 * binding allows discards.  Still refused without any context. */
static int
keyslot_trim (nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  IBC_ERR_GUARD (err);
  struct crypt_req req;

  (void) handle;
  if (classify (offset, count, &req, err) < 0)
    return -1;
  return next->trim (next, count, offset, flags, err);
}

static struct nbdkit_filter filter = {
  .name = "ibcrypt-keyslot",
  .longname = "ibcrypt emulated inline-encryption hardware",
  .config = keyslot_config,
  .config_help = keyslot_config_help,
  .get_ready = keyslot_get_ready,
  .after_fork = ibc_nbdkit_after_fork,
  .unload = keyslot_unload,
  .prepare = keyslot_prepare,
  .pread = keyslot_pread,
  .pwrite = keyslot_pwrite,
  .zero = keyslot_zero,
  .trim = keyslot_trim,
};

NBDKIT_REGISTER_FILTER (filter)
