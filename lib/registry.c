/* The process-wide registry of ibcrypt layers and their devices. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ibcrypt/registry.h"

struct ibc_layer {
  enum ibc_layer_kind kind;
  char name[IBC_DEVICE_NAME_MAX + 1];
  bool published;
  struct ibc_layer *below, *above; /* neighbours while published */
  size_t ndevices;
  struct ibc_device *devices; /* sorted by start */
  ibc_device_describe_fn describe;
};

/* Why a mutex: publish/unpublish happen at load and unload time from
 * nbdkit's main thread, but a lookup of the top may race with them in
 * tests.  The data path follows below/above pointers, which are written
 * before a layer becomes reachable and never change while I/O runs. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ibc_layer *registry_top;

bool
ibc_device_name_valid (const char *name)
{
  size_t n = name ? strlen (name) : 0;

  if (n == 0 || n > IBC_DEVICE_NAME_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
          || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return true;
}

int
ibc_layer_new (enum ibc_layer_kind kind, const char *name,
               struct ibc_layer **ret_layer)
{
  struct ibc_layer *layer;

  if (kind < IBC_LAYER_KEYSLOT || kind > IBC_LAYER_FALLBACK
      || !ibc_device_name_valid (name))
    return -EINVAL;
  layer = calloc (1, sizeof *layer);
  if (layer == NULL)
    return -ENOMEM;
  layer->kind = kind;
  strcpy (layer->name, name);
  *ret_layer = layer;
  return 0;
}

int
ibc_layer_add_device (struct ibc_layer *layer, const char *name, uint64_t start,
                      uint64_t size, struct ibc_profile *profile, void *opaque)
{
  struct ibc_device *devs;
  size_t pos;

  if (layer->published)
    return -EBUSY;
  if (!ibc_device_name_valid (name) || size == 0 || start + size < start)
    return -EINVAL;
  if (ibc_layer_find_device (layer, name))
    return -EEXIST;
  for (pos = 0; pos < layer->ndevices; pos++) {
    const struct ibc_device *d = &layer->devices[pos];
    if (start < d->start + d->size && d->start < start + size)
      return -EINVAL;
    if (d->start > start)
      break;
  }
  devs = realloc (layer->devices, (layer->ndevices + 1) * sizeof *devs);
  if (devs == NULL)
    return -ENOMEM;
  layer->devices = devs;
  /* Finish the overlap check against the devices after pos. */
  for (size_t i = pos; i < layer->ndevices; i++) {
    if (start < devs[i].start + devs[i].size && devs[i].start < start + size)
      return -EINVAL;
  }
  memmove (&devs[pos + 1], &devs[pos], (layer->ndevices - pos) * sizeof *devs);
  memset (&devs[pos], 0, sizeof *devs);
  strcpy (devs[pos].name, name);
  devs[pos].start = start;
  devs[pos].size = size;
  devs[pos].profile = profile;
  devs[pos].opaque = opaque;
  layer->ndevices++;
  return 0;
}

int
ibc_layer_publish (struct ibc_layer *layer)
{
  pthread_mutex_lock (&registry_lock);
  if (layer->published) {
    pthread_mutex_unlock (&registry_lock);
    return -EBUSY;
  }
  layer->below = registry_top;
  layer->above = NULL;
  if (registry_top)
    registry_top->above = layer;
  registry_top = layer;
  layer->published = true;
  pthread_mutex_unlock (&registry_lock);
  return 0;
}

void
ibc_layer_free (struct ibc_layer *layer)
{
  if (layer == NULL)
    return;
  pthread_mutex_lock (&registry_lock);
  if (layer->published) {
    if (layer->below)
      layer->below->above = layer->above;
    if (layer->above)
      layer->above->below = layer->below;
    if (registry_top == layer)
      registry_top = layer->below;
  }
  pthread_mutex_unlock (&registry_lock);
  free (layer->devices);
  free (layer);
}

void
ibc_layer_set_describe (struct ibc_layer *layer,
                        ibc_device_describe_fn describe)
{
  layer->describe = describe;
}

ibc_device_describe_fn
ibc_layer_describe (const struct ibc_layer *layer)
{
  return layer->describe;
}

enum ibc_layer_kind
ibc_layer_kind (const struct ibc_layer *layer)
{
  return layer->kind;
}

const char *
ibc_layer_name (const struct ibc_layer *layer)
{
  return layer->name;
}

struct ibc_layer *
ibc_layer_below (const struct ibc_layer *layer)
{
  return layer->below;
}

struct ibc_layer *
ibc_layer_above (const struct ibc_layer *layer)
{
  return layer->above;
}

struct ibc_layer *
ibc_registry_top (void)
{
  struct ibc_layer *top;

  pthread_mutex_lock (&registry_lock);
  top = registry_top;
  pthread_mutex_unlock (&registry_lock);
  return top;
}

size_t
ibc_layer_num_devices (const struct ibc_layer *layer)
{
  return layer->ndevices;
}

const struct ibc_device *
ibc_layer_device (const struct ibc_layer *layer, size_t i)
{
  return i < layer->ndevices ? &layer->devices[i] : NULL;
}

const struct ibc_device *
ibc_layer_find_device (const struct ibc_layer *layer, const char *name)
{
  for (size_t i = 0; i < layer->ndevices; i++)
    if (strcmp (layer->devices[i].name, name) == 0)
      return &layer->devices[i];
  return NULL;
}

/* Index of the first device whose end is beyond off (binary search). */
static size_t
first_ending_after (const struct ibc_layer *layer, uint64_t off)
{
  size_t lo = 0, hi = layer->ndevices;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct ibc_device *d = &layer->devices[mid];
    if (d->start + d->size <= off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

const struct ibc_device *
ibc_layer_device_at (const struct ibc_layer *layer, uint64_t off)
{
  size_t i = first_ending_after (layer, off);

  if (i < layer->ndevices && layer->devices[i].start <= off)
    return &layer->devices[i];
  return NULL;
}

uint64_t
ibc_layer_split_point (const struct ibc_layer *layer, uint64_t off,
                       uint64_t len)
{
  size_t i = first_ending_after (layer, off);
  uint64_t end = off + len;

  if (i < layer->ndevices) {
    const struct ibc_device *d = &layer->devices[i];
    /* Inside d: split at its end; in the gap before d: at its start. */
    uint64_t edge = d->start <= off ? d->start + d->size : d->start;
    if (edge < end)
      end = edge;
  }
  return end;
}

void
ibc_layer_caps_for_range (const struct ibc_layer *layer, uint64_t off,
                          uint64_t len, struct ibc_caps *ret_caps)
{
  struct ibc_caps caps;
  uint64_t end = off + len;

  ibc_caps_init_all (&caps);
  while (off < end) {
    const struct ibc_device *d = ibc_layer_device_at (layer, off);
    if (d == NULL || d->profile == NULL) {
      ibc_caps_intersect (&caps, NULL);
      break;
    }
    ibc_caps_intersect (&caps, ibc_profile_caps (d->profile));
    off = d->start + d->size;
  }
  *ret_caps = caps;
}

int
ibc_layer_evict_key (const struct ibc_layer *layer, const struct ibc_key *key)
{
  int busy = 0, err = 0;

  for (size_t i = 0; i < layer->ndevices; i++) {
    const struct ibc_device *d = &layer->devices[i];
    int r;

    if (d->profile == NULL)
      continue;
    r = ibc_profile_evict_key (d->profile, key);
    if (r == -EBUSY)
      busy = r;
    else if (r < 0 && err == 0)
      err = r;
  }
  return busy ? busy : err;
}
