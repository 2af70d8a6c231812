/* ibcrypt keys (blk_crypto_key): config + bytes in locked memory, refcounted. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ibcrypt/key.h"
#include "ibcrypt/secmem.h"

struct ibc_key {
  atomic_uint refs;
  struct ibc_crypto_config cfg;
  size_t size;
  uint8_t *bytes; /* ibc_secmem_alloc'd, exactly size bytes */
  char id[IBC_KEY_ID_STRLEN + 1];
};

/* Domain separation for key ids: the id is BLAKE2b keyed with this label
 * over the config and the bytes, so it identifies a key (and its use) and,
 * being a one-way function of a high-entropy key, reveals nothing of it. */
static const char key_id_label[] = "ibcrypt key id v1";

static int
compute_key_id (const struct ibc_key *key, char *ret_id)
{
  crypto_generichash_state st;
  uint8_t cfg[16], hash[IBC_KEY_ID_BYTES];
  int r = -EIO;

  /* A fixed little-endian encoding of the config, independent of padding. */
  for (unsigned i = 0; i < 4; i++) {
    cfg[i] = (uint8_t) ((unsigned) key->cfg.mode >> (8 * i));
    cfg[4 + i] = (uint8_t) (key->cfg.data_unit_size >> (8 * i));
    cfg[8 + i] = (uint8_t) (key->cfg.dun_bytes >> (8 * i));
    cfg[12 + i] = (uint8_t) ((unsigned) key->cfg.key_type >> (8 * i));
  }
  if (crypto_generichash_init (&st, (const uint8_t *) key_id_label,
                               sizeof key_id_label - 1, sizeof hash)
          != 0
      || crypto_generichash_update (&st, cfg, sizeof cfg) != 0
      || crypto_generichash_update (&st, key->bytes, key->size) != 0
      || crypto_generichash_final (&st, hash, sizeof hash) != 0)
    goto out_wipe;
  sodium_bin2hex (ret_id, IBC_KEY_ID_STRLEN + 1, hash, sizeof hash);
  r = 0;
out_wipe:
  /* The hash state has absorbed key bytes. */
  sodium_memzero (&st, sizeof st);
  return r;
}

int
ibc_key_new (const struct ibc_crypto_config *cfg, const void *bytes,
             size_t size, struct ibc_key **ret_key)
{
  struct ibc_key *key;
  int r;

  r = ibc_crypto_config_validate (cfg, size);
  if (r < 0)
    return r;
  if (bytes == NULL)
    return -EINVAL;

  key = calloc (1, sizeof *key);
  if (key == NULL)
    return -ENOMEM;
  key->bytes = ibc_secmem_alloc (size);
  if (key->bytes == NULL) {
    r = -ENOMEM;
    goto out_free_key;
  }
  memcpy (key->bytes, bytes, size);
  key->size = size;
  key->cfg = *cfg;
  r = compute_key_id (key, key->id);
  ibc_secmem_wipe_stack ();
  if (r < 0)
    goto out_free_bytes;
  atomic_init (&key->refs, 1);
  *ret_key = key;
  return 0;

out_free_bytes:
  ibc_secmem_free (key->bytes, size);
out_free_key:
  free (key);
  return r;
}

struct ibc_key *
ibc_key_ref (struct ibc_key *key)
{
  if (key)
    atomic_fetch_add_explicit (&key->refs, 1, memory_order_relaxed);
  return key;
}

void
ibc_key_unref (struct ibc_key *key)
{
  if (key == NULL)
    return;
  /* acq_rel: every use of the bytes by other holders happens before the
   * wipe done by whoever drops the last reference. */
  if (atomic_fetch_sub_explicit (&key->refs, 1, memory_order_acq_rel) != 1)
    return;
  ibc_secmem_free (key->bytes, key->size);
  sodium_memzero (key, sizeof *key);
  free (key);
}

const struct ibc_crypto_config *
ibc_key_config (const struct ibc_key *key)
{
  return &key->cfg;
}

const uint8_t *
ibc_key_bytes (const struct ibc_key *key)
{
  return key->bytes;
}

size_t
ibc_key_size (const struct ibc_key *key)
{
  return key->size;
}

const char *
ibc_key_id (const struct ibc_key *key)
{
  return key->id;
}
