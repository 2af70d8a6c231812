/* Emulated inline-encryption hardware: a device with keyslots and ciphers. */
#ifndef IBCRYPT_HWDEV_H
#define IBCRYPT_HWDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibcrypt/caps.h"
#include "ibcrypt/dun.h"
#include "ibcrypt/key.h"
#include "ibcrypt/profile.h"
#include "ibcrypt/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What `keyslot-device=NAME,start=,size=,slots=,modes=,dun-bytes=,
 * key-types=,integrity=,wrapping-key=@PATH` describes. */
#define IBC_HWDEV_WRAPPING_KEY_PATH_MAX 255
struct ibc_hwdev_spec {
  char name[IBC_DEVICE_NAME_MAX + 1];
  uint64_t start; /* bytes into the export below */
  uint64_t size;  /* bytes; 0 = to the end of the export */
  unsigned slots; /* 0 = raw key with every request, no keyslots */
  struct ibc_caps caps;
  bool integrity; /* blk-integrity device: no inline encryption at all */
  /* File holding the device's 32-byte long-term wrapping key (so that
   * long-term blobs survive restarts); "" = random at creation. */
  char wrapping_key[IBC_HWDEV_WRAPPING_KEY_PATH_MAX + 1];
};

/* Defaults: 8 slots, AES-256-XTS and Adiantum at 512 and 4096 bytes... see
 * ibc_hwdev_spec_parse. */
void ibc_hwdev_spec_default (struct ibc_hwdev_spec *spec);

/* Parse a device spec.  Fields may come in any order after the name; the
 * modes list uses the syntax of ibc_caps_parse_modes (a field without '='
 * right after modes= continues the list, so Adiantum's dm name with its
 * comma works).  Defaults for absent fields from ibc_hwdev_spec_default.
 * Returns 0, or -EINVAL with a message in err. */
int ibc_hwdev_spec_parse (const char *s, struct ibc_hwdev_spec *ret_spec,
                          char *err, size_t errlen);

/* Emulation knobs shared by a process's devices. */
struct ibc_hwdev_knobs {
  uint32_t program_delay_us; /* sleep in every keyslot program */
  uint32_t program_fail_ppm; /* program failure rate, parts per million */
  /* Latency of the inline crypto engine: every request holds its keyslot
   * this much longer (what makes "evict with I/O in flight" observable). */
  uint32_t crypt_delay_us;
};

struct ibc_hwdev_stats {
  uint64_t crypt_requests; /* requests en/decrypted by the device */
  uint64_t crypt_bytes;
  uint64_t raw_key_setups; /* slots=0: per-request key setups */
  uint64_t injected_failures;
  uint64_t resets;
};

struct ibc_hwdev;

/* Create the device: its profile (unless integrity=yes), per-slot cipher
 * storage, and its wrapping keys in locked memory (long-term: from
 * spec->wrapping_key or random; ephemeral: random, "per boot").  size must
 * be resolved (non-zero).  Returns 0, -EINVAL (also: the wrapping key file
 * does not hold exactly 32 bytes), -ENOMEM, or -errno of reading the
 * wrapping key file. */
int ibc_hwdev_new (const struct ibc_hwdev_spec *spec,
                   const struct ibc_hwdev_knobs *knobs,
                   struct ibc_hwdev **ret_dev);

/* Free; no I/O may be running.  Accepts NULL. */
void ibc_hwdev_free (struct ibc_hwdev *dev);

const struct ibc_hwdev_spec *ibc_hwdev_spec (const struct ibc_hwdev *dev);

/* The device's profile, or NULL for an integrity device. */
struct ibc_profile *ibc_hwdev_profile (struct ibc_hwdev *dev);

/* En/decrypt len bytes (whole data units of the key's config) starting at
 * dun with key, as the hardware does for one request: get a keyslot
 * (programming one if needed; may wait), run the slot's cipher, release the
 * slot.  Returns 0, -EOPNOTSUPP (config not supported by this device),
 * -EINVAL (length not data-unit aligned), -EIO (program failure), or
 * -ENOMEM. */
int ibc_hwdev_crypt (struct ibc_hwdev *dev, const struct ibc_key *key,
                     const struct ibc_dun *dun, const void *in, void *out,
                     size_t len, bool encrypt);

/* Emulate a device reset: wait until no keyslot is in use (new requests
 * wait meanwhile), lose every programmed key, then reprogram them all
 * (blk_crypto_reprogram_all_keys).  Returns 0 or the first reprogram
 * error. */
int ibc_hwdev_reset (struct ibc_hwdev *dev);

void ibc_hwdev_get_stats (const struct ibc_hwdev *dev,
                          struct ibc_hwdev_stats *ret_stats);

/* ---- Hardware-wrapped keys (lib/hwdev-wrap.c) ----
 *
 * The device's ll_ops import_key / generate_key / prepare_key /
 * derive_sw_secret.  A blob is XChaCha20-Poly1305 (libsodium IETF
 * construction): 24-byte nonce || ciphertext of the raw key || 16-byte
 * tag, with associated data IBC_HWDEV_WRAP_LABEL "lt" (long-term blobs,
 * under the device's persistent wrapping key) or IBC_HWDEV_WRAP_LABEL
 * "eph" (ephemeral blobs, under the per-boot key).  A 32-byte raw key
 * makes a 72-byte blob.  Keys derived from the raw key (the "hardware
 * KDF"): keyed BLAKE2b (crypto_generichash, the raw key as the key) over a
 * context string, one per purpose, so the subkeys are independent:
 *   inline AES-256-XTS key = BLAKE2b-512 (key = raw, IBC_HWDEV_KDF_INLINE)
 *   software secret        = BLAKE2b-256 (key = raw, IBC_HWDEV_KDF_SW)
 * Only AES-256-XTS takes wrapped keys ("all known hardware").
 *
 * All return a size (written to *ret_size) as 0 / -errno: -EOPNOTSUPP if
 * the device does not take hw-wrapped keys, -EINVAL for bad sizes,
 * -EBADMSG for a blob that does not authenticate under this device's key
 * (another device, another boot, tampered).  Every intermediate buffer is
 * wiped. */
#define IBC_HWDEV_BLOB_MAX 128
#define IBC_HWDEV_WRAP_LABEL "ibcrypt-hwdev-wrap-v1 "
#define IBC_HWDEV_KDF_INLINE "ibcrypt-hwdev inline AES-256-XTS key"
#define IBC_HWDEV_KDF_SW "ibcrypt-hwdev software secret"
#define IBC_HWDEV_GENERATED_KEY_SIZE 32

/* Wrap raw_size (16..IBC_MAX_RAW_KEY_SIZE) bytes into a long-term blob. */
int ibc_hwdev_import_key (struct ibc_hwdev *dev, const uint8_t *raw,
                          size_t raw_size, uint8_t lt_blob[IBC_HWDEV_BLOB_MAX],
                          size_t *ret_size);
/* A random 32-byte raw key, returned only as a long-term blob. */
int ibc_hwdev_generate_key (struct ibc_hwdev *dev,
                            uint8_t lt_blob[IBC_HWDEV_BLOB_MAX],
                            size_t *ret_size);
/* Long-term blob -> ephemeral blob (what keys are made of). */
int ibc_hwdev_prepare_key (struct ibc_hwdev *dev, const uint8_t *lt_blob,
                           size_t lt_size, uint8_t eph_blob[IBC_HWDEV_BLOB_MAX],
                           size_t *ret_size);
/* Ephemeral blob -> the IBC_SW_SECRET_SIZE-byte software secret. */
int ibc_hwdev_derive_sw_secret (struct ibc_hwdev *dev, const uint8_t *eph_blob,
                                size_t eph_size,
                                uint8_t secret[IBC_SW_SECRET_SIZE]);

/* The hardware that does the wrapped-key ops of device dev of layer
 * (which must be published): a keyslot device itself; a passthrough device
 * forwards to the first lower device of its live table, as dm does.
 * Checks at every level that the device's capabilities include hw-wrapped
 * keys.  Returns 0, -EOPNOTSUPP (no hw-wrapped keys, no lower keyslot
 * device, or a fallback device) or -ENODEV. */
int ibc_hwdev_for_device (const struct ibc_layer *layer,
                          const struct ibc_device *dev,
                          struct ibc_hwdev **ret_hwdev);

/* Passthrough part of ibc_hwdev_for_device (lib/dm.c): the first lower
 * device of md's live table and the layer it belongs to.  Returns 0 or
 * -EOPNOTSUPP (the table has no lower device with inline crypto). */
struct ibc_dm_device;
int ibc_dm_device_first_lower (struct ibc_dm_device *md,
                               const struct ibc_layer **ret_layer,
                               const struct ibc_device **ret_dev);

#ifdef __cplusplus
}
#endif
#endif
