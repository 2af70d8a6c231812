/* Hardware-wrapped keys of the emulated inline-encryption hardware. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "hwdev-internal.h"
#include "ibcrypt/dm.h"
#include "ibcrypt/secmem.h"

#define NONCE_SIZE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_SIZE crypto_aead_xchacha20poly1305_ietf_ABYTES
#define MIN_RAW_SIZE 16
#define AD_LT IBC_HWDEV_WRAP_LABEL "lt"
#define AD_EPH IBC_HWDEV_WRAP_LABEL "eph"
#define INLINE_KEY_SIZE 64 /* AES-256-XTS */

/* Scratch for unwrapped and derived keys: locked, wiped on free. */
struct scratch {
  uint8_t raw[IBC_MAX_RAW_KEY_SIZE];
  uint8_t derived[INLINE_KEY_SIZE];
};

static struct scratch *
scratch_new (void)
{
  return ibc_secmem_alloc (sizeof (struct scratch));
}

static void
scratch_free (struct scratch *s)
{
  ibc_secmem_free (s, sizeof *s);
}

int
ibc_hwdev_wrap_new (const char *path, struct ibc_hwdev_wrap **ret)
{
  struct ibc_hwdev_wrap *w;
  size_t got = 0;
  uint8_t extra;
  int fd, r = 0;

  if (ibc_secmem_init () < 0)
    return -ENOSYS;
  w = ibc_secmem_alloc (sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  randombytes_buf (w->eph, sizeof w->eph);
  if (path == NULL || path[0] == '\0') {
    randombytes_buf (w->lt, sizeof w->lt);
    *ret = w;
    return 0;
  }
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    r = -errno;
    goto fail;
  }
  /* Exactly 32 bytes: read them, then make sure nothing follows. */
  while (got < sizeof w->lt) {
    ssize_t n = read (fd, w->lt + got, sizeof w->lt - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      r = n < 0 ? -errno : -EINVAL;
      break;
    }
    got += (size_t) n;
  }
  if (r == 0) {
    ssize_t n;
    while ((n = read (fd, &extra, 1)) < 0 && errno == EINTR)
      ;
    if (n != 0)
      r = n < 0 ? -errno : -EINVAL;
  }
  ibc_secmem_wipe (&extra, sizeof extra);
  close (fd);
  if (r < 0)
    goto fail;
  *ret = w;
  return 0;

fail:
  ibc_secmem_free (w, sizeof *w);
  return r;
}

void
ibc_hwdev_wrap_free (struct ibc_hwdev_wrap *w)
{
  ibc_secmem_free (w, sizeof *w);
}

/* nonce || AEAD(m) with associated data ad. */
static int
seal (const uint8_t *wkey, const char *ad, const uint8_t *m, size_t mlen,
      uint8_t blob[IBC_HWDEV_BLOB_MAX], size_t *ret_size)
{
  unsigned long long clen;

  if (NONCE_SIZE + mlen + TAG_SIZE > IBC_HWDEV_BLOB_MAX)
    return -EINVAL;
  randombytes_buf (blob, NONCE_SIZE);
  if (crypto_aead_xchacha20poly1305_ietf_encrypt (blob + NONCE_SIZE, &clen, m,
                                                  mlen, (const uint8_t *) ad,
                                                  strlen (ad), NULL, blob, wkey)
      != 0)
    return -EIO;
  *ret_size = NONCE_SIZE + (size_t) clen;
  return 0;
}

/* Authenticate and decrypt a blob into raw.  -EBADMSG for anything that is
 * not a blob of this key and label. */
static int
unseal (const uint8_t *wkey, const char *ad, const uint8_t *blob, size_t size,
        uint8_t raw[IBC_MAX_RAW_KEY_SIZE], size_t *ret_raw_size)
{
  unsigned long long mlen;

  if (size < NONCE_SIZE + TAG_SIZE + MIN_RAW_SIZE
      || size > NONCE_SIZE + TAG_SIZE + IBC_MAX_RAW_KEY_SIZE)
    return -EBADMSG;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt (
          raw, &mlen, NULL, blob + NONCE_SIZE, size - NONCE_SIZE,
          (const uint8_t *) ad, strlen (ad), blob, wkey)
      != 0)
    return -EBADMSG;
  *ret_raw_size = (size_t) mlen;
  return 0;
}

/* The "hardware KDF": keyed BLAKE2b of a per-purpose context string. */
static int
derive (const uint8_t *raw, size_t raw_size, const char *context, uint8_t *out,
        size_t outlen)
{
  int r = crypto_generichash (out, outlen, (const uint8_t *) context,
                              strlen (context), raw, raw_size);

  ibc_secmem_wipe_stack ();
  return r == 0 ? 0 : -EIO;
}

static int
takes_wrapped (struct ibc_hwdev *dev)
{
  const struct ibc_hwdev_spec *spec = ibc_hwdev_spec (dev);

  if (spec->integrity || !(spec->caps.key_types & IBC_KEY_TYPE_HW_WRAPPED))
    return -EOPNOTSUPP;
  return 0;
}

int
ibc_hwdev_import_key (struct ibc_hwdev *dev, const uint8_t *raw,
                      size_t raw_size, uint8_t lt_blob[IBC_HWDEV_BLOB_MAX],
                      size_t *ret_size)
{
  int r = takes_wrapped (dev);

  if (r < 0)
    return r;
  if (raw_size < MIN_RAW_SIZE || raw_size > IBC_MAX_RAW_KEY_SIZE)
    return -EINVAL;
  r = seal (ibc_hwdev_wrap_of (dev)->lt, AD_LT, raw, raw_size, lt_blob,
            ret_size);
  ibc_secmem_wipe_stack ();
  return r;
}

int
ibc_hwdev_generate_key (struct ibc_hwdev *dev,
                        uint8_t lt_blob[IBC_HWDEV_BLOB_MAX], size_t *ret_size)
{
  struct scratch *s;
  int r = takes_wrapped (dev);

  if (r < 0)
    return r;
  s = scratch_new ();
  if (s == NULL)
    return -ENOMEM;
  randombytes_buf (s->raw, IBC_HWDEV_GENERATED_KEY_SIZE);
  r = seal (ibc_hwdev_wrap_of (dev)->lt, AD_LT, s->raw,
            IBC_HWDEV_GENERATED_KEY_SIZE, lt_blob, ret_size);
  scratch_free (s);
  ibc_secmem_wipe_stack ();
  return r;
}

int
ibc_hwdev_prepare_key (struct ibc_hwdev *dev, const uint8_t *lt_blob,
                       size_t lt_size, uint8_t eph_blob[IBC_HWDEV_BLOB_MAX],
                       size_t *ret_size)
{
  const struct ibc_hwdev_wrap *w;
  struct scratch *s;
  size_t raw_size;
  int r = takes_wrapped (dev);

  if (r < 0)
    return r;
  if (lt_size > IBC_HWDEV_BLOB_MAX)
    return -EINVAL;
  s = scratch_new ();
  if (s == NULL)
    return -ENOMEM;
  w = ibc_hwdev_wrap_of (dev);
  r = unseal (w->lt, AD_LT, lt_blob, lt_size, s->raw, &raw_size);
  if (r == 0)
    r = seal (w->eph, AD_EPH, s->raw, raw_size, eph_blob, ret_size);
  scratch_free (s);
  ibc_secmem_wipe_stack ();
  return r;
}

int
ibc_hwdev_derive_sw_secret (struct ibc_hwdev *dev, const uint8_t *eph_blob,
                            size_t eph_size, uint8_t secret[IBC_SW_SECRET_SIZE])
{
  struct scratch *s;
  size_t raw_size;
  int r = takes_wrapped (dev);

  if (r < 0)
    return r;
  if (eph_size > IBC_HWDEV_BLOB_MAX)
    return -EINVAL;
  s = scratch_new ();
  if (s == NULL)
    return -ENOMEM;
  r = unseal (ibc_hwdev_wrap_of (dev)->eph, AD_EPH, eph_blob, eph_size, s->raw,
              &raw_size);
  if (r == 0)
    r = derive (s->raw, raw_size, IBC_HWDEV_KDF_SW, s->derived,
                IBC_SW_SECRET_SIZE);
  if (r == 0)
    memcpy (secret, s->derived, IBC_SW_SECRET_SIZE);
  scratch_free (s);
  ibc_secmem_wipe_stack ();
  return r;
}

int
ibc_hwdev_wrap_cipher (const struct ibc_hwdev_wrap *w,
                       const struct ibc_key *key, struct ibc_cipher **ret)
{
  const struct ibc_crypto_config *cfg = ibc_key_config (key);
  struct scratch *s;
  size_t raw_size;
  int r;

  /* All known hardware derives only an AES-256-XTS inline key. */
  if (cfg->mode != IBC_MODE_AES_256_XTS)
    return -EOPNOTSUPP;
  s = scratch_new ();
  if (s == NULL)
    return -ENOMEM;
  r = unseal (w->eph, AD_EPH, ibc_key_bytes (key), ibc_key_size (key), s->raw,
              &raw_size);
  if (r == 0)
    r = derive (s->raw, raw_size, IBC_HWDEV_KDF_INLINE, s->derived,
                INLINE_KEY_SIZE);
  if (r == 0)
    r = ibc_cipher_new_raw (cfg->mode, cfg->data_unit_size, s->derived,
                            INLINE_KEY_SIZE, ret);
  scratch_free (s);
  ibc_secmem_wipe_stack ();
  return r;
}

/* Layers nest only a few deep; the bound guards against a cycle. */
#define MAX_DEPTH 16

int
ibc_hwdev_for_device (const struct ibc_layer *layer,
                      const struct ibc_device *dev, struct ibc_hwdev **ret)
{
  for (int depth = 0; depth < MAX_DEPTH; depth++) {
    if (dev == NULL || layer == NULL)
      return -ENODEV;
    if (dev->profile == NULL
        || !(ibc_profile_caps (dev->profile)->key_types
             & IBC_KEY_TYPE_HW_WRAPPED))
      return -EOPNOTSUPP;
    switch (ibc_layer_kind (layer)) {
    case IBC_LAYER_KEYSLOT:
      *ret = dev->opaque;
      return 0;
    case IBC_LAYER_PASSTHROUGH: {
      int r = ibc_dm_device_first_lower (dev->opaque, &layer, &dev);
      if (r < 0)
        return r;
      break;
    }
    default:
      /* The fallback never takes wrapped keys. */
      return -EOPNOTSUPP;
    }
  }
  return -ELOOP;
}
