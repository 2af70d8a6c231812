/* Helpers shared by the glue of the ibcrypt nbdkit filters. */
#ifndef IBC_NBDKIT_COMMON_H
#define IBC_NBDKIT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <nbdkit-filter.h>

/* NBDKIT_REGISTER_FILTER defines this; declared for -Wmissing-prototypes. */
struct nbdkit_filter *filter_init (void);

/* Some foreign filters call down with err == NULL from their own threads
 * (scan -> cache prefetches): point it somewhere before writing to it. */
#define IBC_ERR_GUARD(err)                                                     \
  int err##_sink_;                                                             \
  if ((err) == NULL)                                                           \
  (err) = &err##_sink_

/* Writes that must be transformed go down in chunks of at most this size,
 * so bounce buffers stay bounded whatever the request size (up to nbdkit's
 * 64 MiB). */
#define IBC_CHUNK_SIZE (4u << 20)

/* This thread's bounce buffer, at least len <= IBC_CHUNK_SIZE bytes; freed
 * when the thread exits.  NULL (errno set) if it cannot be allocated. */
void *ibc_bounce (size_t len);

/* A buffer of IBC_CHUNK_SIZE zero bytes, never written. */
const void *ibc_zero_chunk (void);

/* Turns n bytes of input into the bytes to write (in itself, or a bounce
 * buffer it filled), or NULL with *err set. */
typedef const void *(*ibc_chunk_fn) (void *opaque, const void *in, uint32_t n,
                                     int *err);

/* Write count bytes at offset in chunks of at most IBC_CHUNK_SIZE (so
 * bounce buffers stay bounded): chunk by chunk, src's next bytes (zeros
 * when src is NULL), passed through fn when it is not NULL.  FUA, if
 * asked, goes with the last chunk only.  Returns 0 or -1 with *err set. */
int ibc_write_chunked (nbdkit_next *next, const void *src, uint64_t count,
                       uint64_t offset, uint32_t flags, ibc_chunk_fn fn,
                       void *opaque, int *err);

/* For every filter's .config, before its own keys: the agent's keys
 * (ibcrypt-socket, ibcrypt-name).  1 consumed, 0 not ours, -1 bad value
 * (reported with nbdkit_error). */
int ibc_nbdkit_agent_config (const char *key, const char *value);

/* Every filter's .after_fork: start the agent (threads must start after
 * nbdkit forks; only the first call acts). */
int ibc_nbdkit_after_fork (nbdkit_backend *backend);

/* Parse a percentage like "2.5%" or "0.01" (a fraction) into parts per
 * million.  Returns 0 or -1 after nbdkit_error. */
int ibc_parse_rate_ppm (const char *key, const char *value, uint32_t *ret);

#endif
