/* ibcryptd's view of devices: CONTROL.md device objects from agents' layers. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ibcrypt/registry.h"
#include "ibcryptd.h"

/* Device names: the top fallback layer's device is the instance itself
 * ("disk0", what `map` sets the crypt table of); every other device is
 * "INSTANCE/DEV" ("disk0/dm0", "disk0/d0"). */

bool
devices_split (const char *name, char instance[IBCD_NAME_MAX + 1])
{
  const char *slash = strchr (name, '/');
  size_t n = slash ? (size_t) (slash - name) : strlen (name);

  if (n == 0 || n > IBCD_NAME_MAX)
    return false;
  memcpy (instance, name, n);
  instance[n] = '\0';
  return ibc_device_name_valid (instance)
         && (slash == NULL || ibc_device_name_valid (slash + 1));
}

static const char *
str_member (struct json_object *o, const char *key)
{
  const char *s;

  return ibc_proto_get_string (o, key, &s) == 0 ? s : NULL;
}

/* The CLI name of device dev_name of layer index li. */
static void
full_name (char *buf, size_t size, const char *instance, size_t li,
           const char *kind, size_t di, const char *dev_name)
{
  if (li == 0 && di == 0 && kind && strcmp (kind, "fallback") == 0)
    snprintf (buf, size, "%s", instance);
  else
    snprintf (buf, size, "%s/%s", instance, dev_name);
}

/* Members of a registered device object that are not counters. */
static bool
structural (const char *key)
{
  static const char *const keys[] = { "name", "kind",    "instance", "start",
                                      "size", "profile", "lower",    NULL };

  for (size_t i = 0; keys[i]; i++)
    if (strcmp (key, keys[i]) == 0)
      return true;
  return false;
}

static struct json_object *
copy_of (struct json_object *v)
{
  struct json_object *copy = NULL;

  if (v)
    json_object_deep_copy (v, &copy, NULL);
  return copy;
}

void
devices_of_instance (struct json_object *inst, struct json_object *array)
{
  const char *instance = str_member (inst, "name");
  struct json_object *layers, *connected = NULL;
  char buf[IBCD_DEVICE_PATH_MAX + 1];
  size_t nl;

  if (instance == NULL || ibc_proto_get_array (inst, "layers", &layers) < 0)
    return;
  json_object_object_get_ex (inst, "connected", &connected);
  nl = json_object_array_length (layers);
  for (size_t li = 0; li < nl; li++) {
    struct json_object *layer = json_object_array_get_idx (layers, li);
    struct json_object *devs, *below = NULL, *below_devs = NULL;
    const char *kind = str_member (layer, "kind");

    if (ibc_proto_get_array (layer, "devices", &devs) < 0)
      continue;
    if (li + 1 < nl) {
      below = json_object_array_get_idx (layers, li + 1);
      if (ibc_proto_get_array (below, "devices", &below_devs) < 0)
        below_devs = NULL;
    }
    for (size_t di = 0; di < json_object_array_length (devs); di++) {
      struct json_object *d = json_object_array_get_idx (devs, di);
      struct json_object *o, *counters, *lower, *given, *v;
      const char *dname = str_member (d, "name");

      if (dname == NULL || !ibc_device_name_valid (dname))
        continue;
      full_name (buf, sizeof buf, instance, li, kind, di, dname);
      o = json_object_new_object ();
      json_object_object_add (o, "name", json_object_new_string (buf));
      json_object_object_add (o, "kind",
                              json_object_new_string (kind ? kind : "unknown"));
      json_object_object_add (o, "instance", json_object_new_string (instance));
      json_object_object_add (o, "connected", copy_of (connected));
      json_object_object_add (o, "start",
                              json_object_object_get_ex (d, "start", &v)
                                  ? copy_of (v)
                                  : json_object_new_int (0));
      json_object_object_add (
          o, "size",
          json_object_object_get_ex (d, "size", &v) ? copy_of (v) : NULL);
      json_object_object_add (
          o, "profile",
          json_object_object_get_ex (d, "profile", &v) ? copy_of (v) : NULL);

      counters = json_object_new_object ();
      json_object_object_foreach (d, key, val)
      {
        if (!structural (key))
          json_object_object_add (counters, key, copy_of (val));
      }
      json_object_object_add (o, "counters", counters);

      /* An agent may say what lies below a device; else it is everything
       * in the next layer down. */
      lower = json_object_new_array ();
      if (ibc_proto_get_array (d, "lower", &given) == 0) {
        for (size_t i = 0; i < json_object_array_length (given); i++) {
          const char *ln
              = json_object_get_string (json_object_array_get_idx (given, i));
          if (ln && ibc_device_name_valid (ln)) {
            snprintf (buf, sizeof buf, "%s/%s", instance, ln);
            json_object_array_add (lower, json_object_new_string (buf));
          }
        }
      } else if (below_devs) {
        const char *bkind = str_member (below, "kind");
        for (size_t i = 0; i < json_object_array_length (below_devs); i++) {
          const char *ln
              = str_member (json_object_array_get_idx (below_devs, i), "name");
          if (ln && ibc_device_name_valid (ln)) {
            full_name (buf, sizeof buf, instance, li + 1, bkind, i, ln);
            json_object_array_add (lower, json_object_new_string (buf));
          }
        }
      }
      json_object_object_add (o, "lower", lower);
      json_object_array_add (array, o);
    }
  }
}

struct json_object *
devices_all (struct json_object *snapshot)
{
  struct json_object *arr = json_object_new_array ();

  for (size_t i = 0; arr && i < json_object_array_length (snapshot); i++)
    devices_of_instance (json_object_array_get_idx (snapshot, i), arr);
  return arr;
}

struct json_object *
devices_find (struct json_object *devices, const char *name)
{
  for (size_t i = 0; i < json_object_array_length (devices); i++) {
    struct json_object *d = json_object_array_get_idx (devices, i);
    const char *n = str_member (d, "name");

    if (n && strcmp (n, name) == 0)
      return d;
  }
  return NULL;
}
