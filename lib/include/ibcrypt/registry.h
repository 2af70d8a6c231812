/* The process-wide registry of ibcrypt layers and the devices they expose. */
#ifndef IBCRYPT_REGISTRY_H
#define IBCRYPT_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibcrypt/caps.h"
#include "ibcrypt/key.h"
#include "ibcrypt/profile.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Each ibcrypt filter of an nbdkit process publishes one layer, innermost
 * first (nbdkit calls .get_ready inner to outer), so the layer published
 * just before a layer is the one below it.  A layer's devices are ranges of
 * the offsets the layer itself receives; a layer above looks the devices
 * up to learn what the hardware below can do natively and to evict keys.
 * Layers and their devices are immutable once published (only profiles
 * change, under their own locks), so lookups take no lock. */

enum ibc_layer_kind {
  IBC_LAYER_KEYSLOT = 1, /* emulated inline-encryption hardware */
  IBC_LAYER_PASSTHROUGH, /* device-mapper-like stacking */
  IBC_LAYER_FALLBACK,    /* crypt table + software fallback (top) */
};

#define IBC_DEVICE_NAME_MAX 64

struct ibc_device {
  char name[IBC_DEVICE_NAME_MAX + 1];
  uint64_t start; /* bytes, in the layer's input offsets */
  uint64_t size;
  /* NULL: no inline encryption (e.g. integrity=yes) */
  struct ibc_profile *profile;
  void *opaque; /* the owning filter's per-device state */
};

struct ibc_layer;

/* True if name is a valid device name: [A-Za-z0-9._-]{1,64}. */
bool ibc_device_name_valid (const char *name);

/* Create an unpublished layer.  Returns 0, -EINVAL or -ENOMEM. */
int ibc_layer_new (enum ibc_layer_kind kind, const char *name,
                   struct ibc_layer **ret_layer);

/* Add a device to an unpublished layer.  Devices may not overlap.  The
 * layer does not own the profile.  Returns 0, -EINVAL (bad name, overlap,
 * zero size), -EEXIST (name taken), -EBUSY (already published) or
 * -ENOMEM. */
int ibc_layer_add_device (struct ibc_layer *layer, const char *name,
                          uint64_t start, uint64_t size,
                          struct ibc_profile *profile, void *opaque);

/* Publish the layer on top of the registry's stack.  From now on it is
 * visible to layers published later (above it).  Returns 0 or -EBUSY. */
int ibc_layer_publish (struct ibc_layer *layer);

/* Unpublish (if published) and free.  Only at unload, when no I/O runs.
 * Accepts NULL. */
void ibc_layer_free (struct ibc_layer *layer);

enum ibc_layer_kind ibc_layer_kind (const struct ibc_layer *layer);
const char *ibc_layer_name (const struct ibc_layer *layer);

/* The published layer directly below / above, or NULL. */
struct ibc_layer *ibc_layer_below (const struct ibc_layer *layer);
struct ibc_layer *ibc_layer_above (const struct ibc_layer *layer);

/* The topmost published layer, or NULL (what a layer being configured
 * will sit on). */
struct ibc_layer *ibc_registry_top (void);

size_t ibc_layer_num_devices (const struct ibc_layer *layer);
const struct ibc_device *ibc_layer_device (const struct ibc_layer *layer,
                                           size_t i);
const struct ibc_device *ibc_layer_find_device (const struct ibc_layer *layer,
                                                const char *name);
/* The device covering byte off, or NULL. */
const struct ibc_device *ibc_layer_device_at (const struct ibc_layer *layer,
                                              uint64_t off);

/* The end of the run of offsets starting at off that lies within one
 * device (or within one gap between devices), capped at off + len: where a
 * request must be split. */
uint64_t ibc_layer_split_point (const struct ibc_layer *layer, uint64_t off,
                                uint64_t len);

/* Capabilities shared by everything that [off, off+len) touches:
 * the intersection of the devices' live capabilities; a device without a
 * profile or a gap clears them. */
void ibc_layer_caps_for_range (const struct ibc_layer *layer, uint64_t off,
                               uint64_t len, struct ibc_caps *ret_caps);

/* Optional: adds kind-specific fields (counters...) to a device's status
 * object.  Set before publishing. */
struct json_object;
typedef void (*ibc_device_describe_fn) (const struct ibc_device *dev,
                                        struct json_object *obj);
void ibc_layer_set_describe (struct ibc_layer *layer,
                             ibc_device_describe_fn describe);
ibc_device_describe_fn ibc_layer_describe (const struct ibc_layer *layer);

/* Evict key from every device of the layer (a passthrough profile forwards
 * to its own lower devices).  Returns 0, or -EBUSY if any device had it in
 * a busy slot (the others are still evicted), or the first other error. */
int ibc_layer_evict_key (const struct ibc_layer *layer,
                         const struct ibc_key *key);

#ifdef __cplusplus
}
#endif
#endif
