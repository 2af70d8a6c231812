/* The crypt table in force, its keys, and the software fallback encryptor. */
#ifndef IBCRYPT_FALLBACK_H
#define IBCRYPT_FALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibcrypt/ctx.h"
#include "ibcrypt/key.h"
#include "ibcrypt/registry.h"
#include "ibcrypt/srcu.h"
#include "ibcrypt/table.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An ibc_fallback is what the top filter holds: a crypt table with a key
 * resolved for each crypt binding, a keyring of named keys (":NAME"
 * bindings; the agent fills it), and the software fallback: its own
 * keyslots of preallocated cipher contexts (an all-capable, raw-key-only
 * profile, like blk-crypto-fallback).
 *
 * Per request, the data path walks pieces of the request split at binding
 * boundaries and at the boundaries of the devices of the layer below.  A
 * crypt piece goes down with a CRYPTO context when every device below it
 * supports the key's config natively at that moment; otherwise the fallback
 * en/decrypts it and it goes down with a PLAIN context.
 *
 * Tables and keys change under running I/O: the data path reads the table
 * under SRCU; an update publishes a new table, waits for readers of the old
 * one, then evicts keys no longer bound from the layer below and from the
 * fallback's keyslots, and drops them (the last reference wipes them). */

struct ibc_fallback_opts {
  unsigned slots; /* software keyslots; 0 = the default, 100 */
  bool enabled;   /* false: configs the layer below lacks are refused */
};

struct ibc_fallback_stats {
  uint64_t native_pieces;   /* sent down with a crypto context */
  uint64_t software_pieces; /* en/decrypted here */
  uint64_t software_bytes;
  uint64_t plain_pieces;
  uint64_t missing_key_errors; /* I/O on a binding whose key is absent */
  uint64_t table_swaps;
};

struct ibc_fallback;

/* below: the layer below (may be NULL: nothing native).  Returns 0, -EINVAL
 * or -ENOMEM. */
int ibc_fallback_new (const struct ibc_fallback_opts *opts,
                      struct ibc_layer *below, struct ibc_fallback **ret_fb);
/* No I/O may run.  Drops every key.  Accepts NULL. */
void ibc_fallback_free (struct ibc_fallback *fb);

/* The software keyslots' profile (all capabilities, raw keys). */
struct ibc_profile *ibc_fallback_profile (struct ibc_fallback *fb);

/* Install a crypt table.  device_size in bytes, 0 = the table's own.
 * Resolves keys (@PATH read now, with the exact size the mode needs;
 * :NAME from the keyring: absent = I/O there fails until it is added),
 * checks every binding (start using: native below, or the fallback if
 * enabled, else -EOPNOTSUPP), then swaps.  Returns 0, or -errno with a
 * message in err. */
int ibc_fallback_set_table (struct ibc_fallback *fb, const char *text,
                            uint64_t device_size, char *err, size_t errlen);

/* The table in force as text (malloc'd), or -ENOENT if none. */
int ibc_fallback_table_text (struct ibc_fallback *fb, char **ret_text);
uint64_t ibc_fallback_size (struct ibc_fallback *fb);
/* Largest data unit size of any crypt binding (0 if none). */
uint32_t ibc_fallback_max_data_unit (struct ibc_fallback *fb);

/* Keyring.  add takes a reference and rebinds; -EEXIST if the name is
 * taken, -EINVAL for a bad name.  remove: -ENOENT if absent; -EBUSY if a
 * binding uses it and !force; with force the bindings lose the key (their
 * I/O fails with EIO).  Either way the key is evicted from the layer below
 * and from the fallback once no binding uses it. */
int ibc_fallback_add_key (struct ibc_fallback *fb, const char *name,
                          struct ibc_key *key, char *err, size_t errlen);
int ibc_fallback_remove_key (struct ibc_fallback *fb, const char *name,
                             bool force, char *err, size_t errlen);

/* Call fn for each keyring entry, under the update lock (fn must not call
 * back into fb). */
typedef void (*ibc_fallback_key_fn) (const char *name,
                                     const struct ibc_key *key, void *opaque);
void ibc_fallback_keyring_foreach (struct ibc_fallback *fb,
                                   ibc_fallback_key_fn fn, void *opaque);

/* Call fn for each distinct key bound under ":NAME" in the table in force
 * (read side: fn may evict it).  Returns how many there were. */
size_t ibc_fallback_foreach_bound (struct ibc_fallback *fb, const char *name,
                                   ibc_fallback_key_fn fn, void *opaque);

/* The size of the device the table must cover, once known (the filter
 * learns it from the layer below); 0 = unknown, the table defines it. */
void ibc_fallback_set_device_size (struct ibc_fallback *fb, uint64_t size);
uint64_t ibc_fallback_device_size (struct ibc_fallback *fb);

/* ---- the data path ---- */

enum ibc_piece_action {
  IBC_PIECE_PLAIN,    /* pass down as is, PLAIN context */
  IBC_PIECE_NATIVE,   /* pass down with the CRYPTO context */
  IBC_PIECE_SOFTWARE, /* en/decrypt here, pass down with PLAIN context */
  IBC_PIECE_NO_KEY,   /* the binding's key is missing: fail with EIO */
  IBC_PIECE_UNALIGNED /* not whole data units: fail with EINVAL */
};

struct ibc_fallback_piece {
  enum ibc_piece_action action;
  uint64_t off, len;
  const struct ibc_binding *binding;
  const struct ibc_key *key; /* NATIVE, SOFTWARE */
  struct ibc_dun dun;        /* DUN of the piece's first data unit */
  struct ibc_crypt_ctx ctx;  /* the context to push */
};

struct ibc_fallback_io {
  struct ibc_fallback *fb;
  const void *bound; /* the table snapshot in use */
  unsigned token;
  struct ibc_crypt_iter it;
  uint64_t pending_off, pending_end; /* rest of the current binding piece */
  struct ibc_crypt_piece cur;
};

/* Begin walking [off, off+len).  Returns 0 (then call ..._end), -ENODEV
 * (no table) or -ERANGE (beyond the table). */
int ibc_fallback_io_begin (struct ibc_fallback *fb, uint64_t off, uint64_t len,
                           struct ibc_fallback_io *io);
bool ibc_fallback_io_next (struct ibc_fallback_io *io,
                           struct ibc_fallback_piece *ret_piece);
void ibc_fallback_io_end (struct ibc_fallback_io *io);

/* En/decrypt len bytes of a SOFTWARE piece (or a part of it starting at
 * dun) in the fallback's keyslots.  Returns 0 or -errno. */
int ibc_fallback_crypt (struct ibc_fallback *fb, const struct ibc_key *key,
                        const struct ibc_dun *dun, const void *in, void *out,
                        size_t len, bool encrypt);

void ibc_fallback_get_stats (const struct ibc_fallback *fb,
                             struct ibc_fallback_stats *ret_stats);

#ifdef __cplusplus
}
#endif
#endif
