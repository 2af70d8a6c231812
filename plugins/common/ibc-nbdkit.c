/* Helpers shared by the glue of the ibcrypt nbdkit filters. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ibc-nbdkit.h"
#include "ibcrypt/agent.h"

struct bounce {
  void *buf;
  size_t size;
};

static pthread_key_t bounce_key;
static pthread_once_t bounce_once = PTHREAD_ONCE_INIT;
static void *zero_chunk;

static void
free_bounce (void *p)
{
  struct bounce *b = p;

  free (b->buf);
  free (b);
}

static void
init_bounce (void)
{
  pthread_key_create (&bounce_key, free_bounce);
  zero_chunk = calloc (1, IBC_CHUNK_SIZE);
}

void *
ibc_bounce (size_t len)
{
  struct bounce *b;

  pthread_once (&bounce_once, init_bounce);
  if (len > IBC_CHUNK_SIZE) {
    errno = EINVAL;
    return NULL;
  }
  b = pthread_getspecific (bounce_key);
  if (b == NULL) {
    b = calloc (1, sizeof *b);
    if (b == NULL || pthread_setspecific (bounce_key, b) != 0) {
      free (b);
      errno = ENOMEM;
      return NULL;
    }
  }
  if (b->size < len) {
    /* Grow straight to the chunk size: requests tend to repeat sizes, and
     * it avoids a realloc per size step. */
    void *nb = malloc (IBC_CHUNK_SIZE);
    if (nb == NULL) {
      errno = ENOMEM;
      return NULL;
    }
    free (b->buf);
    b->buf = nb;
    b->size = IBC_CHUNK_SIZE;
  }
  return b->buf;
}

const void *
ibc_zero_chunk (void)
{
  pthread_once (&bounce_once, init_bounce);
  return zero_chunk;
}

int
ibc_write_chunked (nbdkit_next *next, const void *src, uint64_t count,
                   uint64_t offset, uint32_t flags, ibc_chunk_fn fn,
                   void *opaque, int *err)
{
  while (count > 0) {
    uint32_t n = count < IBC_CHUNK_SIZE ? (uint32_t) count : IBC_CHUNK_SIZE;
    const void *out = src ? src : ibc_zero_chunk ();

    if (fn && (out = fn (opaque, out, n, err)) == NULL)
      return -1;
    if (next->pwrite (next, out, n, offset,
                      n == count ? flags : flags & ~NBDKIT_FLAG_FUA, err)
        == -1)
      return -1;
    if (src)
      src = (const char *) src + n;
    offset += n;
    count -= n;
  }
  return 0;
}

int
ibc_parse_rate_ppm (const char *key, const char *value, uint32_t *ret)
{
  char *end;
  double v;

  errno = 0;
  v = strtod (value, &end);
  if (errno != 0 || end == value) {
    nbdkit_error ("%s: could not parse rate '%s'", key, value);
    return -1;
  }
  if (*end == '%') {
    v /= 100;
    end++;
  }
  if (*end != '\0' || v < 0 || v > 1) {
    nbdkit_error ("%s: rate '%s' must be between 0 and 1 (or 0%% and 100%%)",
                  key, value);
    return -1;
  }
  *ret = (uint32_t) (v * 1000000 + 0.5);
  return 0;
}

int
ibc_nbdkit_agent_config (const char *key, const char *value)
{
  const char *err;
  int r = ibc_agent_config (key, value, &err);

  if (r < 0)
    nbdkit_error ("%s: %s", key, err);
  return r;
}

int
ibc_nbdkit_after_fork (nbdkit_backend *backend)
{
  int r = ibc_agent_start ();

  (void) backend;
  if (r < 0) {
    nbdkit_error ("starting the ibcrypt agent: %s", strerror (-r));
    return -1;
  }
  return 0;
}
