/* ibcryptd's key store: named keys in locked memory, never on disk. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ibcrypt/mode.h"
#include "ibcrypt/registry.h"
#include "ibcryptd.h"

/* Keys live only here (and in the agents they were pushed to): the bytes
 * are in an ibc_key's locked memory, wiped by its last unref.  A restart
 * loses them by design; the admin adds them again from their key files.
 * Insertion order is kept so that listings and pushes are stable. */
struct named_key {
  char name[IBCD_NAME_MAX + 1];
  struct ibc_key *key;
};

/* Why: ops run on one thread per connection. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct named_key *keys;
static size_t nr_keys, cap_keys;

void
keys_canonical_config (enum ibc_mode mode, enum ibc_key_type type,
                       struct ibc_crypto_config *ret_cfg)
{
  const struct ibc_mode_info *mi = ibc_mode_info (mode);

  ret_cfg->mode = mode;
  ret_cfg->data_unit_size = 4096;
  ret_cfg->dun_bytes = mi ? mi->iv_size : 0;
  ret_cfg->key_type = type;
}

/* Index of name, or nr_keys; lock held. */
static size_t
find (const char *name)
{
  size_t i;

  for (i = 0; i < nr_keys; i++)
    if (strcmp (keys[i].name, name) == 0)
      break;
  return i;
}

int
keys_add (const char *name, enum ibc_mode mode, enum ibc_key_type type,
          const void *bytes, size_t size, struct ibc_key **ret_key)
{
  struct ibc_crypto_config cfg;
  struct ibc_key *key;
  int r;

  if (!ibc_device_name_valid (name))
    return -EINVAL;
  keys_canonical_config (mode, type, &cfg);
  /* Created outside the lock: BLAKE2b of the key id takes a while. */
  r = ibc_key_new (&cfg, bytes, size, &key);
  if (r < 0)
    return r;

  pthread_mutex_lock (&lock);
  if (find (name) < nr_keys)
    r = -EEXIST;
  else if (nr_keys >= IBCD_MAX_KEYS)
    r = -ENOSPC;
  else if (nr_keys == cap_keys) {
    size_t ncap = cap_keys ? 2 * cap_keys : 16;
    struct named_key *n = realloc (keys, ncap * sizeof *n);
    if (n == NULL)
      r = -ENOMEM;
    else {
      keys = n;
      cap_keys = ncap;
    }
  }
  if (r == 0) {
    strcpy (keys[nr_keys].name, name);
    keys[nr_keys].key = key;
    nr_keys++;
    if (ret_key)
      *ret_key = ibc_key_ref (key);
  }
  pthread_mutex_unlock (&lock);
  if (r < 0)
    ibc_key_unref (key);
  return r;
}

struct ibc_key *
keys_get (const char *name)
{
  struct ibc_key *key = NULL;
  size_t i;

  pthread_mutex_lock (&lock);
  i = find (name);
  if (i < nr_keys)
    key = ibc_key_ref (keys[i].key);
  pthread_mutex_unlock (&lock);
  return key;
}

int
keys_remove (const char *name)
{
  struct ibc_key *key = NULL;
  size_t i;

  pthread_mutex_lock (&lock);
  i = find (name);
  if (i < nr_keys) {
    key = keys[i].key;
    memmove (&keys[i], &keys[i + 1], (nr_keys - i - 1) * sizeof *keys);
    nr_keys--;
  }
  pthread_mutex_unlock (&lock);
  if (key == NULL)
    return -ENOENT;
  /* Wiped now, or when a push in flight drops its reference. */
  ibc_key_unref (key);
  return 0;
}

int
keys_snapshot (struct keys_snapshot *ret)
{
  struct keys_snapshot s = { 0 };

  pthread_mutex_lock (&lock);
  s.names = calloc (nr_keys + 1, sizeof *s.names);
  s.keys = calloc (nr_keys + 1, sizeof *s.keys);
  if (s.names == NULL || s.keys == NULL)
    goto out_nomem;
  for (; s.n < nr_keys; s.n++) {
    s.names[s.n] = strdup (keys[s.n].name);
    if (s.names[s.n] == NULL)
      goto out_nomem;
    s.keys[s.n] = ibc_key_ref (keys[s.n].key);
  }
  pthread_mutex_unlock (&lock);
  *ret = s;
  return 0;

out_nomem:
  pthread_mutex_unlock (&lock);
  keys_snapshot_free (&s);
  return -ENOMEM;
}

void
keys_snapshot_free (struct keys_snapshot *s)
{
  for (size_t i = 0; i < s->n; i++) {
    free (s->names[i]);
    ibc_key_unref (s->keys[i]);
  }
  free (s->names);
  free (s->keys);
  memset (s, 0, sizeof *s);
}

void
keys_clear (void)
{
  pthread_mutex_lock (&lock);
  for (size_t i = 0; i < nr_keys; i++)
    ibc_key_unref (keys[i].key);
  free (keys);
  keys = NULL;
  nr_keys = cap_keys = 0;
  pthread_mutex_unlock (&lock);
}
