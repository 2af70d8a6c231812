/* Emulated inline-encryption hardware: keyslots holding programmed ciphers. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "hwdev-internal.h"

struct ibc_hwdev {
  struct ibc_hwdev_spec spec;
  struct ibc_hwdev_knobs knobs;
  struct ibc_profile *profile; /* NULL for integrity devices */
  /* slot_ciphers[i] is the "hardware state" of keyslot i.  Written only by
   * the program/evict ops, which the profile calls under its write lock on
   * an idle slot, so a request holding the slot reads it without a lock. */
  struct ibc_cipher **slot_ciphers;
  struct ibc_hwdev_wrap *wrap; /* wrapping keys, locked memory */
  atomic_uint_fast64_t crypt_requests, crypt_bytes, raw_key_setups;
  atomic_uint_fast64_t injected_failures, resets;
};

void
ibc_hwdev_spec_default (struct ibc_hwdev_spec *spec)
{
  memset (spec, 0, sizeof *spec);
  strcpy (spec->name, "dev0");
  spec->slots = 8;
  /* Like common UFS/eMMC hosts: AES-256-XTS at 512 and 4096. */
  ibc_caps_init_none (&spec->caps);
  spec->caps.modes[IBC_MODE_AES_256_XTS] = 512 | 4096;
  spec->caps.max_dun_bytes = 8;
  spec->caps.key_types = IBC_KEY_TYPE_RAW;
}

static int
parse_u64 (const char *v, uint64_t *ret)
{
  char *end;
  unsigned long long n;
  uint64_t mult = 1;

  if (*v < '0' || *v > '9')
    return -EINVAL;
  errno = 0;
  n = strtoull (v, &end, 0);
  if (errno != 0)
    return -EINVAL;
  switch (*end) {
  case 'k':
  case 'K':
    mult = 1ull << 10;
    end++;
    break;
  case 'M':
    mult = 1ull << 20;
    end++;
    break;
  case 'G':
    mult = 1ull << 30;
    end++;
    break;
  case 'T':
    mult = 1ull << 40;
    end++;
    break;
  }
  if (*end != '\0' || (n != 0 && mult > UINT64_MAX / n))
    return -EINVAL;
  *ret = n * mult;
  return 0;
}

static int
parse_key_types (const char *v, uint32_t *ret)
{
  uint32_t types = 0;
  char buf[64];

  if (strlen (v) >= sizeof buf)
    return -EINVAL;
  strcpy (buf, v);
  for (char *save = NULL, *t = strtok_r (buf, "+", &save); t;
       t = strtok_r (NULL, "+", &save)) {
    enum ibc_key_type kt;
    if (ibc_key_type_from_string (t, &kt) < 0)
      return -EINVAL;
    types |= (uint32_t) kt;
  }
  if (types == 0)
    return -EINVAL;
  *ret = types;
  return 0;
}

static int
spec_field (struct ibc_hwdev_spec *spec, const char *k, const char *v,
            char *err, size_t errlen)
{
  uint64_t n;

  if (strcmp (k, "start") == 0 || strcmp (k, "size") == 0) {
    if (parse_u64 (v, &n) < 0)
      goto bad;
    *(strcmp (k, "start") == 0 ? &spec->start : &spec->size) = n;
  } else if (strcmp (k, "slots") == 0) {
    if (parse_u64 (v, &n) < 0 || n > 65536)
      goto bad;
    spec->slots = (unsigned) n;
  } else if (strcmp (k, "modes") == 0) {
    if (ibc_caps_parse_modes (v, &spec->caps) < 0)
      goto bad;
  } else if (strcmp (k, "dun-bytes") == 0) {
    if (parse_u64 (v, &n) < 0 || n < 1 || n > IBC_MAX_IV_SIZE)
      goto bad;
    spec->caps.max_dun_bytes = (uint32_t) n;
  } else if (strcmp (k, "key-types") == 0) {
    if (parse_key_types (v, &spec->caps.key_types) < 0)
      goto bad;
  } else if (strcmp (k, "wrapping-key") == 0) {
    /* @PATH, as nbdkit's convention for values read from a file. */
    if (v[0] != '@' || v[1] == '\0'
        || strlen (v + 1) > IBC_HWDEV_WRAPPING_KEY_PATH_MAX)
      goto bad;
    strcpy (spec->wrapping_key, v + 1);
  } else if (strcmp (k, "integrity") == 0) {
    if (strcmp (v, "yes") == 0 || strcmp (v, "1") == 0)
      spec->integrity = true;
    else if (strcmp (v, "no") == 0 || strcmp (v, "0") == 0)
      spec->integrity = false;
    else
      goto bad;
  } else {
    snprintf (err, errlen, "unknown field '%s'", k);
    return -EINVAL;
  }
  return 0;
bad:
  snprintf (err, errlen, "invalid %s '%s'", k, v);
  return -EINVAL;
}

int
ibc_hwdev_spec_parse (const char *s, struct ibc_hwdev_spec *ret_spec, char *err,
                      size_t errlen)
{
  struct ibc_hwdev_spec spec;
  char *copy, *save = NULL, *tok;
  char modes[512] = "";
  bool seen_modes = false, in_modes = false;
  int r = -EINVAL;

  ibc_hwdev_spec_default (&spec);
  copy = strdup (s);
  if (copy == NULL)
    return -ENOMEM;
  tok = strtok_r (copy, ",", &save);
  if (tok == NULL || !ibc_device_name_valid (tok)) {
    snprintf (err, errlen, "invalid device name '%s'", tok ? tok : "");
    goto out;
  }
  strcpy (spec.name, tok);
  while ((tok = strtok_r (NULL, ",", &save)) != NULL) {
    char *eq = strchr (tok, '=');
    const char *value = eq ? eq + 1 : tok;

    /* A field without '=' right after modes= continues the list: the dm
     * name of Adiantum contains a comma.  The list is parsed at the end. */
    if (eq == NULL && !in_modes) {
      snprintf (err, errlen, "expected key=value, got '%s'", tok);
      goto out;
    }
    if (eq)
      *eq = '\0';
    in_modes = eq == NULL || strcmp (tok, "modes") == 0;
    if (!in_modes) {
      if (spec_field (&spec, tok, value, err, errlen) < 0)
        goto out;
      continue;
    }
    if (strlen (modes) + strlen (value) + 2 > sizeof modes) {
      snprintf (err, errlen, "modes list too long");
      goto out;
    }
    if (eq == NULL)
      strcat (modes, ",");
    else
      modes[0] = '\0';
    strcat (modes, value);
    seen_modes = true;
  }
  if (seen_modes && spec_field (&spec, "modes", modes, err, errlen) < 0)
    goto out;
  *ret_spec = spec;
  r = 0;
out:
  free (copy);
  return r;
}

/* The device's keyslot program op: build the slot's cipher.  Called by the
 * profile under its write lock with the slot idle. */
static void
sleep_us (uint32_t us)
{
  struct timespec ts = { us / 1000000, (long) (us % 1000000) * 1000 };

  nanosleep (&ts, NULL);
}

/* The hardware's key setup: a raw key as is, a hw-wrapped one unwrapped
 * and turned into its derived inline key inside the "hardware". */
static int
device_cipher (struct ibc_hwdev *dev, const struct ibc_key *key,
               struct ibc_cipher **ret)
{
  if (ibc_key_config (key)->key_type == IBC_KEY_TYPE_HW_WRAPPED)
    return ibc_hwdev_wrap_cipher (dev->wrap, key, ret);
  return ibc_cipher_new (key, ret);
}

static int
hwdev_program (struct ibc_profile *profile, const struct ibc_key *key,
               unsigned slot, void *opaque)
{
  struct ibc_hwdev *dev = opaque;
  struct ibc_cipher *cipher;
  int r;

  (void) profile;
  if (dev->knobs.program_delay_us) {
    struct timespec ts
        = { dev->knobs.program_delay_us / 1000000,
            (long) (dev->knobs.program_delay_us % 1000000) * 1000 };
    nanosleep (&ts, NULL);
  }
  /* Whatever the slot held is gone whether or not programming succeeds. */
  ibc_cipher_free (dev->slot_ciphers[slot]);
  dev->slot_ciphers[slot] = NULL;
  if (dev->knobs.program_fail_ppm
      && randombytes_uniform (1000000) < dev->knobs.program_fail_ppm) {
    atomic_fetch_add (&dev->injected_failures, 1);
    return -EIO;
  }
  r = device_cipher (dev, key, &cipher);
  if (r < 0)
    return r;
  dev->slot_ciphers[slot] = cipher;
  return 0;
}

/* The keyslot evict op: wipe the slot's cipher. */
static int
hwdev_evict (struct ibc_profile *profile, const struct ibc_key *key, int slot,
             void *opaque)
{
  struct ibc_hwdev *dev = opaque;

  (void) profile, (void) key;
  if (slot >= 0) {
    ibc_cipher_free (dev->slot_ciphers[slot]);
    dev->slot_ciphers[slot] = NULL;
  }
  return 0;
}

static const struct ibc_profile_ops hwdev_ops = {
  .keyslot_program = hwdev_program,
  .keyslot_evict = hwdev_evict,
};

int
ibc_hwdev_new (const struct ibc_hwdev_spec *spec,
               const struct ibc_hwdev_knobs *knobs, struct ibc_hwdev **ret_dev)
{
  struct ibc_hwdev *dev;
  int r;

  if (spec->size == 0 || !ibc_device_name_valid (spec->name))
    return -EINVAL;
  dev = calloc (1, sizeof *dev);
  if (dev == NULL)
    return -ENOMEM;
  dev->spec = *spec;
  if (knobs)
    dev->knobs = *knobs;
  r = ibc_hwdev_wrap_new (spec->wrapping_key, &dev->wrap);
  if (r < 0)
    goto out_free;
  if (!spec->integrity) {
    if (spec->slots) {
      dev->slot_ciphers = calloc (spec->slots, sizeof *dev->slot_ciphers);
      if (dev->slot_ciphers == NULL) {
        r = -ENOMEM;
        goto out_free;
      }
    }
    r = ibc_profile_new (spec->slots, &spec->caps, &hwdev_ops, dev,
                         &dev->profile);
    if (r < 0)
      goto out_free;
  }
  *ret_dev = dev;
  return 0;

out_free:
  ibc_hwdev_wrap_free (dev->wrap);
  free (dev->slot_ciphers);
  free (dev);
  return r;
}

void
ibc_hwdev_free (struct ibc_hwdev *dev)
{
  if (dev == NULL)
    return;
  ibc_profile_free (dev->profile);
  for (unsigned i = 0; dev->slot_ciphers && i < dev->spec.slots; i++)
    ibc_cipher_free (dev->slot_ciphers[i]);
  free (dev->slot_ciphers);
  ibc_hwdev_wrap_free (dev->wrap);
  free (dev);
}

const struct ibc_hwdev_wrap *
ibc_hwdev_wrap_of (const struct ibc_hwdev *dev)
{
  return dev->wrap;
}

const struct ibc_hwdev_spec *
ibc_hwdev_spec (const struct ibc_hwdev *dev)
{
  return &dev->spec;
}

struct ibc_profile *
ibc_hwdev_profile (struct ibc_hwdev *dev)
{
  return dev->profile;
}

int
ibc_hwdev_crypt (struct ibc_hwdev *dev, const struct ibc_key *key,
                 const struct ibc_dun *dun, const void *in, void *out,
                 size_t len, bool encrypt)
{
  const struct ibc_crypto_config *cfg = ibc_key_config (key);
  struct ibc_keyslot *slot;
  struct ibc_cipher *cipher;
  int r;

  if (dev->profile == NULL
      || !ibc_caps_supports (ibc_profile_caps (dev->profile), cfg))
    return -EOPNOTSUPP;
  if (len % cfg->data_unit_size != 0)
    return -EINVAL;
  r = ibc_profile_get_keyslot (dev->profile, key, &slot);
  if (r < 0)
    return r == -ENOMEM ? r : -EIO;
  if (slot) {
    cipher = dev->slot_ciphers[ibc_keyslot_index (slot)];
  } else {
    /* No keyslots: the raw key travels with the request and the hardware
     * sets it up every time. */
    r = device_cipher (dev, key, &cipher);
    if (r < 0)
      return r == -ENOMEM ? r : -EIO;
    atomic_fetch_add_explicit (&dev->raw_key_setups, 1, memory_order_relaxed);
  }
  r = encrypt ? ibc_cipher_encrypt (cipher, dun, in, out, len)
              : ibc_cipher_decrypt (cipher, dun, in, out, len);
  if (dev->knobs.crypt_delay_us)
    sleep_us (dev->knobs.crypt_delay_us);
  if (slot)
    ibc_keyslot_put (slot);
  else
    ibc_cipher_free (cipher);
  if (r == 0) {
    atomic_fetch_add_explicit (&dev->crypt_requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit (&dev->crypt_bytes, len, memory_order_relaxed);
  }
  return r;
}

int
ibc_hwdev_reset (struct ibc_hwdev *dev)
{
  if (dev->profile == NULL)
    return 0;
  atomic_fetch_add (&dev->resets, 1);
  /* reprogram_all waits for the slots to go idle under the profile's write
   * lock; the program op frees each lost cipher before rebuilding it. */
  return ibc_profile_reprogram_all (dev->profile);
}

void
ibc_hwdev_get_stats (const struct ibc_hwdev *dev,
                     struct ibc_hwdev_stats *ret_stats)
{
  ret_stats->crypt_requests = atomic_load (&dev->crypt_requests);
  ret_stats->crypt_bytes = atomic_load (&dev->crypt_bytes);
  ret_stats->raw_key_setups = atomic_load (&dev->raw_key_setups);
  ret_stats->injected_failures = atomic_load (&dev->injected_failures);
  ret_stats->resets = atomic_load (&dev->resets);
}
