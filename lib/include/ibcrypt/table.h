/* Crypt tables (which key each range uses) and passthrough (dm) tables. */
#ifndef IBCRYPT_TABLE_H
#define IBCRYPT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibcrypt/dun.h"
#include "ibcrypt/mode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Both table syntaxes are device-mapper's: one `<start> <length> <target>
 * <args...>` line per range, in 512-byte sectors, whitespace-separated;
 * blank lines and `#` comments (a token starting with '#' comments out the
 * rest of its line) are allowed.  A table must be sorted and cover
 * [0, device size) with no gap or overlap.  Parsed tables are immutable:
 * lookups need no lock, a new table replaces an old one as a whole.
 *
 * Parsers return 0, -EINVAL (with a message "line N: ..." in err, which may
 * be NULL; IBC_TABLE_ERR_MAX bytes are always enough) or -ENOMEM.
 * device_size is in bytes; 0 means "unknown": the table then defines the
 * size. */
#define IBC_TABLE_ERR_MAX 256
#define IBC_NAME_MAX 64                    /* key and device names */
#define IBC_TABLE_MAX_SECTORS (1ULL << 55) /* so byte offsets fit 64 bits */

/* ---- Crypt tables (the fallback filter) ----
 *
 *   <start> <length> crypt <cipher> <key> <iv_offset> [<#opts> <opt>...]
 *   <start> <length> plain
 *
 * <cipher>: aes-xts-plain64, aes-cbc-essiv:sha256,
 * xchacha12,aes-adiantum-plain64 or sm4-xts-plain64.  <key>: `:NAME` (a key
 * held by ibcryptd, NAME of 1-64 [A-Za-z0-9._-]) or `@PATH` (a key file);
 * inline hex keys are rejected.  Options: sector_size:N (data unit size, a
 * power of two in 512..65536), iv_large_sectors (required when N != 512),
 * allow_discards, keytype:raw|hw-wrapped, dun_bytes:N.  As in
 * dm-inlinecrypt, start, length and iv_offset must be multiples of N/512 and
 * the DUN of sector s of the range is (iv_offset + s) >> log2(N/512). */

enum ibc_binding_kind {
  IBC_BINDING_PLAIN,
  IBC_BINDING_CRYPT,
};

enum ibc_key_ref {
  IBC_KEY_REF_NAME, /* ":NAME" */
  IBC_KEY_REF_PATH, /* "@PATH" */
};

/* One line of a crypt table.  Fields after `length` are for CRYPT only. */
struct ibc_binding {
  enum ibc_binding_kind kind;
  uint64_t start;  /* bytes */
  uint64_t length; /* bytes */

  enum ibc_key_ref key_ref;
  char *key;                       /* NAME or PATH, without ':' / '@' */
  uint64_t iv_offset;              /* sectors, as written */
  struct ibc_crypto_config config; /* mode, data unit size, dun_bytes, type */
  struct ibc_dun first_dun;        /* DUN of the data unit at `start` */
  bool allow_discards;
  bool iv_large_sectors;
  bool dun_bytes_given; /* dun_bytes:N was written (kept for formatting) */
};

struct ibc_crypt_table;

int ibc_crypt_table_parse (const char *text, uint64_t device_size,
                           struct ibc_crypt_table **ret_table, char *err,
                           size_t errsize);
void ibc_crypt_table_free (struct ibc_crypt_table *table);

uint64_t ibc_crypt_table_size (const struct ibc_crypt_table *table); /* bytes */
size_t ibc_crypt_table_count (const struct ibc_crypt_table *table);
/* The i-th binding, NULL if i >= count. */
const struct ibc_binding *
ibc_crypt_table_binding (const struct ibc_crypt_table *table, size_t i);

/* The binding covering byte `off` (binary search), NULL if off is beyond the
 * table.  ret_index may be NULL. */
const struct ibc_binding *
ibc_crypt_table_lookup (const struct ibc_crypt_table *table, uint64_t off,
                        size_t *ret_index);

/* Splitting a request at binding boundaries:
 *
 *   struct ibc_crypt_iter it;
 *   struct ibc_crypt_piece p;
 *   if (ibc_crypt_iter_init (&it, table, off, len) < 0) ...;  // -ERANGE
 *   while (ibc_crypt_iter_next (&it, &p)) ... p.binding, p.off, p.len ...
 */
struct ibc_crypt_piece {
  size_t index;
  const struct ibc_binding *binding;
  uint64_t off; /* bytes, device offset of the piece */
  uint64_t len;
};
struct ibc_crypt_iter {
  const struct ibc_crypt_table *table;
  size_t index;
  uint64_t off, end;
};
/* Returns 0, or -ERANGE if [off, off+len) is not inside the table. */
int ibc_crypt_iter_init (struct ibc_crypt_iter *it,
                         const struct ibc_crypt_table *table, uint64_t off,
                         uint64_t len);
bool ibc_crypt_iter_next (struct ibc_crypt_iter *it,
                          struct ibc_crypt_piece *ret_piece);

/* The table as text (canonical: default options omitted); parsing it gives
 * the same table.  Key names/paths are not secret.  *ret_text is malloc'd.
 * Returns 0 or -ENOMEM. */
int ibc_crypt_table_format (const struct ibc_crypt_table *table,
                            char **ret_text);

/* ---- Passthrough (dm) tables (the passthrough filter) ----
 *
 *   <start> <length> linear <dev> <offset>
 *   <start> <length> striped <#stripes> <chunk> <dev> <offset> [<dev> <offset>...]
 *   <start> <length> flakey <dev> <offset> <up seconds> <down seconds>
 *   <start> <length> error
 *   <start> <length> zero
 *
 * <dev> names a lower device the filter resolves (1-64 [A-Za-z0-9._-]);
 * offsets are in sectors.  <chunk> is a power-of-two number of sectors (>= 1;
 * dm itself allows any multiple of the logical block size, we keep powers of
 * two so stripe arithmetic is shifts and alignment stays a power of two);
 * length must be a multiple of #stripes * chunk, as in dm-stripe.  flakey
 * takes no feature arguments, and up + down must not be 0. */

enum ibc_dm_kind {
  IBC_DM_LINEAR,
  IBC_DM_STRIPED,
  IBC_DM_FLAKEY,
  IBC_DM_ERROR,
  IBC_DM_ZERO,
};

#define IBC_DM_NO_DEV ((size_t) -1)

/* Where a target (or one stripe) goes: a lower device and offset. */
struct ibc_dm_dest {
  size_t dev;      /* index into the table's device list */
  uint64_t offset; /* bytes */
};

struct ibc_dm_target {
  enum ibc_dm_kind kind;
  uint64_t start;  /* bytes */
  uint64_t length; /* bytes */
  size_t nr_dests; /* linear, flakey: 1; striped: #stripes; else 0 */
  struct ibc_dm_dest *dests;
  uint64_t chunk_size;    /* striped: bytes */
  unsigned up_interval;   /* flakey: seconds */
  unsigned down_interval; /* flakey: seconds */
};

struct ibc_dm_table;

int ibc_dm_table_parse (const char *text, uint64_t device_size,
                        struct ibc_dm_table **ret_table, char *err,
                        size_t errsize);
void ibc_dm_table_free (struct ibc_dm_table *table);

uint64_t ibc_dm_table_size (const struct ibc_dm_table *table); /* bytes */
size_t ibc_dm_table_count (const struct ibc_dm_table *table);
const struct ibc_dm_target *
ibc_dm_table_target (const struct ibc_dm_table *table, size_t i);
const struct ibc_dm_target *
ibc_dm_table_lookup (const struct ibc_dm_table *table, uint64_t off,
                     size_t *ret_index);

/* Distinct lower devices, in order of first appearance. */
size_t ibc_dm_table_device_count (const struct ibc_dm_table *table);
const char *ibc_dm_table_device (const struct ibc_dm_table *table, size_t i);

const char *ibc_dm_kind_name (enum ibc_dm_kind kind);
/* linear, striped, flakey pass crypto (DM_TARGET_PASSES_CRYPTO); error and
 * zero do not, and one such target leaves the whole table without inline
 * crypto. */
bool ibc_dm_kind_passes_crypto (enum ibc_dm_kind kind);
bool ibc_dm_table_passes_crypto (const struct ibc_dm_table *table);

/* The largest power of two (bytes) dividing every target boundary, every
 * stripe chunk size and every lower offset: a data unit never straddles a
 * target or chunk, and stays aligned on the lower device.  For
 * ibc_caps_restrict_alignment(). */
uint64_t ibc_dm_table_alignment (const struct ibc_dm_table *table);

/* Mapping a request to lower devices, split at target and chunk
 * boundaries.  For error and zero targets dev is IBC_DM_NO_DEV and
 * lower_off is 0. */
struct ibc_dm_piece {
  size_t target;
  enum ibc_dm_kind kind;
  size_t dev;
  uint64_t off;       /* bytes, offset in the table's device */
  uint64_t lower_off; /* bytes, offset in the lower device */
  uint64_t len;
};
struct ibc_dm_iter {
  const struct ibc_dm_table *table;
  size_t index;
  uint64_t off, end;
};
/* Returns 0, or -ERANGE if [off, off+len) is not inside the table. */
int ibc_dm_iter_init (struct ibc_dm_iter *it, const struct ibc_dm_table *table,
                      uint64_t off, uint64_t len);
bool ibc_dm_iter_next (struct ibc_dm_iter *it, struct ibc_dm_piece *ret_piece);

/* The table as text (canonical); *ret_text is malloc'd.  0 or -ENOMEM. */
int ibc_dm_table_format (const struct ibc_dm_table *table, char **ret_text);

#ifdef __cplusplus
}
#endif
#endif
