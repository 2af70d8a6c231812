/* Inline-encryption capabilities: what a profile can do natively. */
#ifndef IBCRYPT_CAPS_H
#define IBCRYPT_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibcrypt/mode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* modes[m] bit i set = data unit size 2^i supported for mode m.  A profile's
 * capabilities may be updated (expanded) while other threads read them, so
 * readers go through ibc_caps_supports()/ibc_caps_snapshot(), which load each
 * word atomically; a stale read only causes a fallback. */
struct ibc_caps {
  uint32_t modes[IBC_MODE_MAX];
  uint32_t max_dun_bytes;
  uint32_t key_types;
};

/* Everything (dm's starting point before intersecting). */
void ibc_caps_init_all (struct ibc_caps *caps);
/* Nothing. */
void ibc_caps_init_none (struct ibc_caps *caps);

/* parent &= child; a NULL child clears everything
 * (blk_crypto_intersect_capabilities). */
void ibc_caps_intersect (struct ibc_caps *parent, const struct ibc_caps *child);

/* True if target is a superset of reference; NULL reference is always
 * satisfied, NULL target never (blk_crypto_has_capabilities). */
bool ibc_caps_has (const struct ibc_caps *target,
                   const struct ibc_caps *reference);

/* Copy src into dst word by word with atomic stores; only safe when
 * expanding (blk_crypto_update_capabilities). */
void ibc_caps_update (struct ibc_caps *dst, const struct ibc_caps *src);

/* Atomic word-wise copy for readers. */
void ibc_caps_snapshot (const struct ibc_caps *src, struct ibc_caps *dst);

/* True if cfg is supported natively by caps
 * (blk_crypto_config_supported_natively). */
bool ibc_caps_supports (const struct ibc_caps *caps,
                        const struct ibc_crypto_config *cfg);

/* True if no mode has any data unit size. */
bool ibc_caps_empty (const struct ibc_caps *caps);

/* Keep only data unit sizes that divide `align` bytes (dm keeps a data unit
 * size only if every target boundary is a multiple of it).  align == 0
 * leaves caps unchanged. */
void ibc_caps_restrict_alignment (struct ibc_caps *caps, uint64_t align);

/* Parse "MODE:DUS+DUS,MODE:DUS..." (modes by cipher or sysfs name) into
 * the modes[] of caps, leaving other fields alone.  Returns 0 or -EINVAL. */
int ibc_caps_parse_modes (const char *s, struct ibc_caps *caps);

/* Format the modes as ibc_caps_parse_modes() reads them into buf.  Returns
 * the length (like snprintf) or -ENOSPC if it did not fit. */
int ibc_caps_format_modes (const struct ibc_caps *caps, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
