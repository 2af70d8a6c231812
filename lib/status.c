/* The status of this process's ibcrypt stack as JSON (never secrets). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ibcrypt/registry.h"
#include "ibcrypt/status.h"

static const char *const layer_kinds[] = {
  [IBC_LAYER_KEYSLOT] = "keyslot",
  [IBC_LAYER_PASSTHROUGH] = "passthrough",
  [IBC_LAYER_FALLBACK] = "fallback",
};

static void
add_u64 (struct json_object *o, const char *k, uint64_t v)
{
  json_object_object_add (o, k, json_object_new_uint64 (v));
}

struct json_object *
ibc_status_profile (struct ibc_profile *profile)
{
  struct json_object *o = json_object_new_object ();
  struct json_object *st, *slots, *types;
  struct ibc_profile_stats stats;
  struct ibc_caps caps;
  char modes[2048];
  unsigned n = ibc_profile_num_slots (profile);

  if (o == NULL)
    return NULL;
  ibc_caps_snapshot (ibc_profile_caps (profile), &caps);
  if (ibc_caps_format_modes (&caps, modes, sizeof modes) < 0)
    modes[0] = '\0';
  add_u64 (o, "num_keyslots", n);
  json_object_object_add (o, "modes", json_object_new_string (modes));
  add_u64 (o, "max_dun_bytes", caps.max_dun_bytes);
  types = json_object_new_array ();
  if (caps.key_types & IBC_KEY_TYPE_RAW)
    json_object_array_add (types, json_object_new_string ("raw"));
  if (caps.key_types & IBC_KEY_TYPE_HW_WRAPPED)
    json_object_array_add (types, json_object_new_string ("hw-wrapped"));
  json_object_object_add (o, "key_types", types);

  ibc_profile_get_stats (profile, &stats);
  st = json_object_new_object ();
  add_u64 (st, "gets", stats.gets);
  add_u64 (st, "hits", stats.hits);
  add_u64 (st, "programs", stats.programs);
  add_u64 (st, "program_errors", stats.program_errors);
  add_u64 (st, "evictions", stats.evictions);
  add_u64 (st, "waits", stats.waits);
  json_object_object_add (o, "stats", st);

  slots = json_object_new_array ();
  for (unsigned i = 0; i < n; i++) {
    struct ibc_keyslot_info info;
    struct json_object *s;

    if (ibc_profile_slot_info (profile, i, &info) < 0)
      break;
    s = json_object_new_object ();
    add_u64 (s, "slot", info.index);
    json_object_object_add (
        s, "key_id",
        info.programmed ? json_object_new_string (info.key_id) : NULL);
    add_u64 (s, "in_flight", info.refs);
    json_object_array_add (slots, s);
  }
  json_object_object_add (o, "keyslots", slots);
  return o;
}

struct json_object *
ibc_status_registry (void)
{
  struct json_object *root = json_object_new_object ();
  struct json_object *layers = json_object_new_array ();

  if (root == NULL || layers == NULL) {
    json_object_put (root);
    json_object_put (layers);
    return NULL;
  }
  for (struct ibc_layer *l = ibc_registry_top (); l; l = ibc_layer_below (l)) {
    struct json_object *lo = json_object_new_object ();
    struct json_object *devs = json_object_new_array ();
    ibc_device_describe_fn describe = ibc_layer_describe (l);

    json_object_object_add (
        lo, "kind", json_object_new_string (layer_kinds[ibc_layer_kind (l)]));
    json_object_object_add (lo, "name",
                            json_object_new_string (ibc_layer_name (l)));
    for (size_t i = 0; i < ibc_layer_num_devices (l); i++) {
      const struct ibc_device *d = ibc_layer_device (l, i);
      struct json_object *dobj = json_object_new_object ();

      json_object_object_add (dobj, "name", json_object_new_string (d->name));
      add_u64 (dobj, "start", d->start);
      /* A device running to the end of the export has no fixed size. */
      json_object_object_add (dobj, "size",
                              d->size >= UINT64_MAX - d->start
                                  ? NULL
                                  : json_object_new_uint64 (d->size));
      json_object_object_add (
          dobj, "profile", d->profile ? ibc_status_profile (d->profile) : NULL);
      if (describe)
        describe (d, dobj);
      json_object_array_add (devs, dobj);
    }
    json_object_object_add (lo, "devices", devs);
    json_object_array_add (layers, lo);
  }
  json_object_object_add (root, "layers", layers);
  return root;
}

int
ibc_status_write_file (const char *path)
{
  struct json_object *root = ibc_status_registry ();
  const char *text;
  char *tmp = NULL;
  int fd = -1, saved;

  if (root == NULL) {
    errno = ENOMEM;
    return -1;
  }
  text = json_object_to_json_string_ext (root, JSON_C_TO_STRING_PRETTY
                                                   | JSON_C_TO_STRING_SPACED);
  if (asprintf (&tmp, "%s.tmp.%ld", path, (long) getpid ()) < 0) {
    tmp = NULL;
    errno = ENOMEM;
    goto err;
  }
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    goto err;
  size_t len = strlen (text), done = 0;
  while (done < len) {
    ssize_t n = write (fd, text + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      goto err;
    done += (size_t) n;
  }
  if (write (fd, "\n", 1) != 1 || close (fd) != 0) {
    fd = -1;
    goto err;
  }
  fd = -1;
  if (rename (tmp, path) != 0)
    goto err;
  free (tmp);
  json_object_put (root);
  return 0;

err:
  saved = errno;
  if (fd >= 0)
    close (fd);
  if (tmp)
    unlink (tmp);
  free (tmp);
  json_object_put (root);
  errno = saved;
  return -1;
}
