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
 * key-types=,integrity=` describes. */
struct ibc_hwdev_spec {
  char name[IBC_DEVICE_NAME_MAX + 1];
  uint64_t start; /* bytes into the export below */
  uint64_t size;  /* bytes; 0 = to the end of the export */
  unsigned slots; /* 0 = raw key with every request, no keyslots */
  struct ibc_caps caps;
  bool integrity; /* blk-integrity device: no inline encryption at all */
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

/* Create the device: its profile (unless integrity=yes) and per-slot
 * cipher storage.  size must be resolved (non-zero).  Returns 0, -EINVAL or
 * -ENOMEM. */
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

#ifdef __cplusplus
}
#endif
#endif
