/* The crypt table in force, its keys, and the software fallback encryptor. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ibcrypt/fallback.h"
#include "ibcrypt/hwdev.h"
#include "ibcrypt/secmem.h"

#define DEFAULT_SLOTS 100
#define MAX_KEYRING 1024

/* A crypt table with the key of each binding (NULL for plain bindings and
 * for :NAME keys not in the keyring).  Immutable once published. */
struct bound {
  struct ibc_crypt_table *table;
  char *text;
  struct ibc_key **keys; /* one per binding, each holding a reference */
  uint32_t max_dus;
};

struct keyring_entry {
  char name[IBC_NAME_MAX + 1];
  struct ibc_key *key;
};

struct ibc_fallback {
  struct ibc_fallback_opts opts;
  struct ibc_layer *below;
  struct ibc_hwdev *sw; /* the fallback's keyslots */
  struct ibc_srcu srcu;
  _Atomic (struct bound *) bound;
  /* Why a mutex: table and keyring updates come from config and from the
   * agent thread; they serialise among themselves (SRCU writers must).
   * The data path never takes it. */
  pthread_mutex_t update_lock;
  struct keyring_entry *keyring;
  size_t nkeyring;
  _Atomic uint64_t device_size;
  atomic_uint_fast64_t native_pieces, software_pieces, software_bytes;
  atomic_uint_fast64_t plain_pieces, missing_key_errors, table_swaps;
};

static void
bound_free (struct bound *b)
{
  if (b == NULL)
    return;
  for (size_t i = 0; b->keys && i < ibc_crypt_table_count (b->table); i++)
    ibc_key_unref (b->keys[i]);
  free (b->keys);
  free (b->text);
  ibc_crypt_table_free (b->table);
  free (b);
}

int
ibc_fallback_new (const struct ibc_fallback_opts *opts, struct ibc_layer *below,
                  struct ibc_fallback **ret_fb)
{
  struct ibc_hwdev_spec spec;
  struct ibc_fallback *fb;
  int r;

  fb = calloc (1, sizeof *fb);
  if (fb == NULL)
    return -ENOMEM;
  fb->opts = *opts;
  if (fb->opts.slots == 0)
    fb->opts.slots = DEFAULT_SLOTS;
  fb->below = below;
  ibc_srcu_init (&fb->srcu);
  pthread_mutex_init (&fb->update_lock, NULL);

  /* blk-crypto-fallback's profile: every mode at every data unit size,
   * the largest DUNs, raw keys only. */
  memset (&spec, 0, sizeof spec);
  strcpy (spec.name, "fallback");
  spec.size = UINT64_MAX;
  spec.slots = fb->opts.slots;
  ibc_caps_init_all (&spec.caps);
  spec.caps.key_types = IBC_KEY_TYPE_RAW;
  r = ibc_hwdev_new (&spec, NULL, &fb->sw);
  if (r < 0) {
    pthread_mutex_destroy (&fb->update_lock);
    free (fb);
    return r;
  }
  *ret_fb = fb;
  return 0;
}

void
ibc_fallback_free (struct ibc_fallback *fb)
{
  if (fb == NULL)
    return;
  bound_free (atomic_load (&fb->bound));
  for (size_t i = 0; i < fb->nkeyring; i++)
    ibc_key_unref (fb->keyring[i].key);
  free (fb->keyring);
  ibc_hwdev_free (fb->sw);
  pthread_mutex_destroy (&fb->update_lock);
  free (fb);
}

struct ibc_profile *
ibc_fallback_profile (struct ibc_fallback *fb)
{
  return ibc_hwdev_profile (fb->sw);
}

/* Read a key file: exactly the size the config needs (raw keys) or a size
 * valid for a hw-wrapped blob; refuse rather than truncate. */
static int
read_key_file (const char *path, const struct ibc_crypto_config *cfg,
               struct ibc_key **ret_key, char *err, size_t errlen)
{
  const size_t max = IBC_MAX_ANY_KEY_SIZE;
  uint8_t *buf = ibc_secmem_alloc (max + 1);
  size_t got = 0;
  int fd, r;

  if (buf == NULL)
    return -ENOMEM;
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    r = -errno;
    snprintf (err, errlen, "key file '%s': %s", path, strerror (-r));
    goto out_free;
  }
  while (got < max + 1) {
    ssize_t n = read (fd, buf + got, max + 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      r = -errno;
      snprintf (err, errlen, "key file '%s': %s", path, strerror (-r));
      goto out_close;
    }
    if (n == 0)
      break;
    got += (size_t) n;
  }
  r = ibc_key_new (cfg, buf, got, ret_key);
  if (r == -EINVAL)
    snprintf (err, errlen,
              "key file '%s': %s%zu bytes is not a valid %s key for %s", path,
              got > max ? "more than " : "", got > max ? max : got,
              ibc_key_type_name (cfg->key_type),
              ibc_mode_info (cfg->mode)->cipher_name);
out_close:
  close (fd);
out_free:
  ibc_secmem_free (buf, max + 1);
  return r;
}

static struct keyring_entry *
keyring_find (struct ibc_fallback *fb, const char *name)
{
  for (size_t i = 0; i < fb->nkeyring; i++)
    if (strcmp (fb->keyring[i].name, name) == 0)
      return &fb->keyring[i];
  return NULL;
}

/* A key already bound with the same config and bytes, to keep its
 * keyslots across a rebind. */
static struct ibc_key *
find_same_key (const struct bound *old, const struct ibc_crypto_config *cfg,
               const uint8_t *bytes, size_t size)
{
  for (size_t i = 0; old && i < ibc_crypt_table_count (old->table); i++) {
    struct ibc_key *k = old->keys[i];
    const struct ibc_crypto_config *kc = k ? ibc_key_config (k) : NULL;

    if (k && memcmp (kc, cfg, sizeof *cfg) == 0 && ibc_key_size (k) == size
        && ibc_secmem_cmp (ibc_key_bytes (k), bytes, size) == 0)
      return k;
  }
  return NULL;
}

/* Resolve the key of crypt binding b (NULL when a :NAME key is absent). */
static int
resolve_key (struct ibc_fallback *fb, const struct bound *old,
             const struct ibc_binding *b, size_t line, struct ibc_key **ret_key,
             char *err, size_t errlen)
{
  struct ibc_key *key = NULL, *same;
  int r;

  if (b->key_ref == IBC_KEY_REF_PATH) {
    r = read_key_file (b->key, &b->config, &key, err, errlen);
    if (r < 0)
      return r;
  } else {
    struct keyring_entry *e = keyring_find (fb, b->key);
    const struct ibc_crypto_config *kc;

    if (e == NULL) {
      *ret_key = NULL;
      return 0;
    }
    kc = ibc_key_config (e->key);
    if (kc->mode != b->config.mode || kc->key_type != b->config.key_type) {
      snprintf (err, errlen,
                "binding %zu: key '%s' is a %s %s key, the binding needs %s %s",
                line, b->key, ibc_mode_info (kc->mode)->cipher_name,
                ibc_key_type_name (kc->key_type),
                ibc_mode_info (b->config.mode)->cipher_name,
                ibc_key_type_name (b->config.key_type));
      return -EINVAL;
    }
    r = ibc_key_new (&b->config, ibc_key_bytes (e->key), ibc_key_size (e->key),
                     &key);
    if (r < 0) {
      snprintf (err, errlen, "binding %zu: key '%s': %s", line, b->key,
                strerror (-r));
      return r;
    }
  }
  same = find_same_key (old, &b->config, ibc_key_bytes (key),
                        ibc_key_size (key));
  if (same) {
    ibc_key_unref (key);
    key = ibc_key_ref (same);
  }
  *ret_key = key;
  return 0;
}

static bool
native_below (struct ibc_fallback *fb, uint64_t off, uint64_t len,
              const struct ibc_crypto_config *cfg)
{
  struct ibc_caps caps;

  if (fb->below == NULL)
    return false;
  ibc_layer_caps_for_range (fb->below, off, len, &caps);
  return ibc_caps_supports (&caps, cfg);
}

/* blk_crypto_start_using_key for one binding: native, or the fallback
 * (raw keys only), whose keyslot is programmed now rather than on the
 * first request. */
static int
start_using (struct ibc_fallback *fb, const struct ibc_binding *b,
             struct ibc_key *key, size_t line, char *err, size_t errlen)
{
  struct ibc_keyslot *slot;
  int r;

  if (native_below (fb, b->start, b->length, &b->config))
    return 0;
  if (!fb->opts.enabled || b->config.key_type != IBC_KEY_TYPE_RAW) {
    snprintf (err, errlen,
              "binding %zu: %s %s keys with %u-byte data units and %u DUN "
              "bytes are not supported by the device below%s",
              line, ibc_mode_info (b->config.mode)->cipher_name,
              ibc_key_type_name (b->config.key_type), b->config.data_unit_size,
              b->config.dun_bytes,
              fb->opts.enabled ? " (the fallback takes raw keys only)"
                               : " and the fallback is disabled");
    return -EOPNOTSUPP;
  }
  if (key == NULL)
    return 0;
  r = ibc_profile_get_keyslot (ibc_hwdev_profile (fb->sw), key, &slot);
  if (r < 0) {
    snprintf (err, errlen, "binding %zu: programming a fallback keyslot: %s",
              line, strerror (-r));
    return r;
  }
  ibc_keyslot_put (slot);
  return 0;
}

static bool
bound_has_key (const struct bound *b, const struct ibc_key *key)
{
  for (size_t i = 0; b && i < ibc_crypt_table_count (b->table); i++)
    if (b->keys[i] == key)
      return true;
  return false;
}

/* Publish nb, wait for readers of the old table, evict what it alone
 * used, free it.  Called with update_lock held. */
static void
swap_bound (struct ibc_fallback *fb, struct bound *nb)
{
  struct bound *old = atomic_exchange (&fb->bound, nb);

  ibc_srcu_synchronize (&fb->srcu);
  atomic_fetch_add (&fb->table_swaps, 1);
  for (size_t i = 0; old && i < ibc_crypt_table_count (old->table); i++) {
    struct ibc_key *k = old->keys[i];

    /* Each distinct key once: skip if an earlier binding had it too. */
    if (k == NULL || bound_has_key (nb, k))
      continue;
    bool seen = false;
    for (size_t j = 0; j < i; j++)
      seen |= old->keys[j] == k;
    if (seen)
      continue;
    /* No request uses the old table any more, so nothing holds a slot. */
    if (fb->below)
      ibc_layer_evict_key (fb->below, k);
    ibc_profile_evict_key (ibc_hwdev_profile (fb->sw), k);
  }
  bound_free (old);
}

/* Undo start_using for the keys of a table that was not installed. */
static void
abandon (struct ibc_fallback *fb, const struct bound *nb,
         const struct bound *old)
{
  for (size_t i = 0; i < ibc_crypt_table_count (nb->table); i++)
    if (nb->keys[i] && !bound_has_key (old, nb->keys[i]))
      ibc_profile_evict_key (ibc_hwdev_profile (fb->sw), nb->keys[i]);
}

/* Build and install a table; update_lock held.  Every key is resolved
 * before any is put to use, so a bad key file leaves nothing behind. */
static int
install_table (struct ibc_fallback *fb, const char *text, uint64_t device_size,
               char *err, size_t errlen)
{
  struct bound *old = atomic_load (&fb->bound);
  struct bound *nb;
  size_t n;
  int r;

  nb = calloc (1, sizeof *nb);
  if (nb == NULL)
    return -ENOMEM;
  r = ibc_crypt_table_parse (text, device_size, &nb->table, err, errlen);
  if (r < 0)
    goto out_free;
  n = ibc_crypt_table_count (nb->table);
  nb->keys = calloc (n, sizeof *nb->keys);
  nb->text = strdup (text);
  if (nb->keys == NULL || nb->text == NULL) {
    r = -ENOMEM;
    goto out_free;
  }
  for (size_t i = 0; i < n; i++) {
    const struct ibc_binding *b = ibc_crypt_table_binding (nb->table, i);

    if (b->kind != IBC_BINDING_CRYPT)
      continue;
    if (b->config.data_unit_size > nb->max_dus)
      nb->max_dus = b->config.data_unit_size;
    r = resolve_key (fb, old, b, i + 1, &nb->keys[i], err, errlen);
    if (r < 0)
      goto out_free;
  }
  for (size_t i = 0; i < n; i++) {
    const struct ibc_binding *b = ibc_crypt_table_binding (nb->table, i);

    if (b->kind != IBC_BINDING_CRYPT)
      continue;
    r = start_using (fb, b, nb->keys[i], i + 1, err, errlen);
    if (r < 0) {
      abandon (fb, nb, old);
      goto out_free;
    }
  }
  swap_bound (fb, nb);
  return 0;

out_free:
  bound_free (nb);
  return r;
}

int
ibc_fallback_set_table (struct ibc_fallback *fb, const char *text,
                        uint64_t device_size, char *err, size_t errlen)
{
  int r;

  pthread_mutex_lock (&fb->update_lock);
  r = install_table (fb, text, device_size, err, errlen);
  pthread_mutex_unlock (&fb->update_lock);
  return r;
}

int
ibc_fallback_table_text (struct ibc_fallback *fb, char **ret_text)
{
  struct bound *b;
  int r = -ENOENT;
  unsigned t = ibc_srcu_read_lock (&fb->srcu);

  b = atomic_load (&fb->bound);
  if (b)
    r = ibc_crypt_table_format (b->table, ret_text);
  ibc_srcu_read_unlock (&fb->srcu, t);
  return r;
}

uint64_t
ibc_fallback_size (struct ibc_fallback *fb)
{
  unsigned t = ibc_srcu_read_lock (&fb->srcu);
  struct bound *b = atomic_load (&fb->bound);
  uint64_t size = b ? ibc_crypt_table_size (b->table) : 0;

  ibc_srcu_read_unlock (&fb->srcu, t);
  return size;
}

uint32_t
ibc_fallback_max_data_unit (struct ibc_fallback *fb)
{
  unsigned t = ibc_srcu_read_lock (&fb->srcu);
  struct bound *b = atomic_load (&fb->bound);
  uint32_t dus = b ? b->max_dus : 0;

  ibc_srcu_read_unlock (&fb->srcu, t);
  return dus;
}

/* Rebind the current table after a keyring change; update_lock held. */
static int
rebind (struct ibc_fallback *fb, char *err, size_t errlen)
{
  struct bound *cur = atomic_load (&fb->bound);

  if (cur == NULL)
    return 0;
  return install_table (fb, cur->text, ibc_crypt_table_size (cur->table), err,
                        errlen);
}

int
ibc_fallback_add_key (struct ibc_fallback *fb, const char *name,
                      struct ibc_key *key, char *err, size_t errlen)
{
  struct keyring_entry *ring;
  int r;

  if (!ibc_device_name_valid (name)) {
    snprintf (err, errlen, "invalid key name '%s'", name);
    return -EINVAL;
  }
  pthread_mutex_lock (&fb->update_lock);
  if (keyring_find (fb, name)) {
    snprintf (err, errlen, "key '%s' exists", name);
    r = -EEXIST;
    goto out;
  }
  if (fb->nkeyring == MAX_KEYRING) {
    snprintf (err, errlen, "too many keys (%d)", MAX_KEYRING);
    r = -ENOSPC;
    goto out;
  }
  ring = realloc (fb->keyring, (fb->nkeyring + 1) * sizeof *ring);
  if (ring == NULL) {
    r = -ENOMEM;
    goto out;
  }
  fb->keyring = ring;
  strcpy (ring[fb->nkeyring].name, name);
  ring[fb->nkeyring].key = ibc_key_ref (key);
  fb->nkeyring++;
  r = rebind (fb, err, errlen);
  if (r < 0) {
    /* The key does not fit its bindings: take it back out. */
    fb->nkeyring--;
    ibc_key_unref (ring[fb->nkeyring].key);
  }
out:
  pthread_mutex_unlock (&fb->update_lock);
  return r;
}

int
ibc_fallback_remove_key (struct ibc_fallback *fb, const char *name, bool force,
                         char *err, size_t errlen)
{
  struct keyring_entry *e;
  struct bound *cur;
  int r = 0;

  pthread_mutex_lock (&fb->update_lock);
  e = keyring_find (fb, name);
  if (e == NULL) {
    snprintf (err, errlen, "no key '%s'", name);
    r = -ENOENT;
    goto out;
  }
  cur = atomic_load (&fb->bound);
  for (size_t i = 0; !force && cur && i < ibc_crypt_table_count (cur->table);
       i++) {
    const struct ibc_binding *b = ibc_crypt_table_binding (cur->table, i);
    if (b->kind == IBC_BINDING_CRYPT && b->key_ref == IBC_KEY_REF_NAME
        && strcmp (b->key, name) == 0) {
      snprintf (err, errlen, "key '%s' is in use by binding %zu", name, i + 1);
      r = -EBUSY;
      goto out;
    }
  }
  ibc_key_unref (e->key);
  *e = fb->keyring[--fb->nkeyring];
  r = rebind (fb, err, errlen);
out:
  pthread_mutex_unlock (&fb->update_lock);
  return r;
}

void
ibc_fallback_keyring_foreach (struct ibc_fallback *fb, ibc_fallback_key_fn fn,
                              void *opaque)
{
  pthread_mutex_lock (&fb->update_lock);
  for (size_t i = 0; i < fb->nkeyring; i++)
    fn (fb->keyring[i].name, fb->keyring[i].key, opaque);
  pthread_mutex_unlock (&fb->update_lock);
}

size_t
ibc_fallback_foreach_bound (struct ibc_fallback *fb, const char *name,
                            ibc_fallback_key_fn fn, void *opaque)
{
  unsigned t = ibc_srcu_read_lock (&fb->srcu);
  const struct bound *b = atomic_load (&fb->bound);
  size_t n = 0, count = b ? ibc_crypt_table_count (b->table) : 0;

  for (size_t i = 0; i < count; i++) {
    const struct ibc_binding *bd = ibc_crypt_table_binding (b->table, i);
    bool seen = false;

    if (b->keys[i] == NULL || bd->key_ref != IBC_KEY_REF_NAME
        || strcmp (bd->key, name) != 0)
      continue;
    for (size_t j = 0; j < i; j++)
      seen |= b->keys[j] == b->keys[i];
    if (seen)
      continue;
    fn (name, b->keys[i], opaque);
    n++;
  }
  ibc_srcu_read_unlock (&fb->srcu, t);
  return n;
}

void
ibc_fallback_set_device_size (struct ibc_fallback *fb, uint64_t size)
{
  atomic_store (&fb->device_size, size);
}

uint64_t
ibc_fallback_device_size (struct ibc_fallback *fb)
{
  return atomic_load (&fb->device_size);
}

int
ibc_fallback_io_begin (struct ibc_fallback *fb, uint64_t off, uint64_t len,
                       struct ibc_fallback_io *io)
{
  struct bound *b;
  int r;

  memset (io, 0, sizeof *io);
  io->fb = fb;
  io->token = ibc_srcu_read_lock (&fb->srcu);
  b = atomic_load (&fb->bound);
  if (b == NULL) {
    ibc_srcu_read_unlock (&fb->srcu, io->token);
    return -ENODEV;
  }
  r = ibc_crypt_iter_init (&io->it, b->table, off, len);
  if (r < 0) {
    ibc_srcu_read_unlock (&fb->srcu, io->token);
    return r;
  }
  io->bound = b;
  return 0;
}

void
ibc_fallback_io_end (struct ibc_fallback_io *io)
{
  if (io->bound)
    ibc_srcu_read_unlock (&io->fb->srcu, io->token);
  io->bound = NULL;
}

bool
ibc_fallback_io_next (struct ibc_fallback_io *io, struct ibc_fallback_piece *p)
{
  struct ibc_fallback *fb = io->fb;
  const struct bound *b = io->bound;
  const struct ibc_binding *bd;
  uint64_t end;

  if (io->pending_off == io->pending_end) {
    if (!ibc_crypt_iter_next (&io->it, &io->cur))
      return false;
    io->pending_off = io->cur.off;
    io->pending_end = io->cur.off + io->cur.len;
  }
  /* Split at the devices of the layer below too: a crypto context must
   * reach exactly one device. */
  end = io->pending_end;
  if (fb->below)
    end = ibc_layer_split_point (fb->below, io->pending_off,
                                 end - io->pending_off);
  memset (p, 0, sizeof *p);
  p->off = io->pending_off;
  p->len = end - io->pending_off;
  io->pending_off = end;
  bd = p->binding = io->cur.binding;
  p->ctx.lo = p->off;
  p->ctx.hi = p->off + p->len;
  p->ctx.kind = IBC_CTX_PLAIN;

  if (bd->kind == IBC_BINDING_PLAIN) {
    p->action = IBC_PIECE_PLAIN;
    atomic_fetch_add_explicit (&fb->plain_pieces, 1, memory_order_relaxed);
    return true;
  }
  p->key = b->keys[io->cur.index];
  if (p->key == NULL) {
    p->action = IBC_PIECE_NO_KEY;
    atomic_fetch_add_explicit (&fb->missing_key_errors, 1,
                               memory_order_relaxed);
    return true;
  }
  uint32_t dus = bd->config.data_unit_size;
  if ((p->off - bd->start) % dus != 0 || p->len % dus != 0) {
    p->action = IBC_PIECE_UNALIGNED;
    return true;
  }
  p->dun = bd->first_dun;
  ibc_dun_add (&p->dun, (p->off - bd->start) / dus);
  if (native_below (fb, p->off, p->len, &bd->config)) {
    p->action = IBC_PIECE_NATIVE;
    p->ctx.kind = IBC_CTX_CRYPTO;
    p->ctx.key = p->key;
    p->ctx.dun0 = p->dun;
    p->ctx.anchor = p->off;
    p->ctx.data_unit_size = dus;
    atomic_fetch_add_explicit (&fb->native_pieces, 1, memory_order_relaxed);
  } else {
    p->action = IBC_PIECE_SOFTWARE;
    atomic_fetch_add_explicit (&fb->software_pieces, 1, memory_order_relaxed);
  }
  return true;
}

int
ibc_fallback_crypt (struct ibc_fallback *fb, const struct ibc_key *key,
                    const struct ibc_dun *dun, const void *in, void *out,
                    size_t len, bool encrypt)
{
  int r = ibc_hwdev_crypt (fb->sw, key, dun, in, out, len, encrypt);

  if (r == 0)
    atomic_fetch_add_explicit (&fb->software_bytes, len, memory_order_relaxed);
  return r;
}

void
ibc_fallback_get_stats (const struct ibc_fallback *fb,
                        struct ibc_fallback_stats *s)
{
  s->native_pieces = atomic_load (&fb->native_pieces);
  s->software_pieces = atomic_load (&fb->software_pieces);
  s->software_bytes = atomic_load (&fb->software_bytes);
  s->plain_pieces = atomic_load (&fb->plain_pieces);
  s->missing_key_errors = atomic_load (&fb->missing_key_errors);
  s->table_swaps = atomic_load (&fb->table_swaps);
}
