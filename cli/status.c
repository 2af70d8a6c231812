/* ibcryptctl status: every instance's devices as a tree, and the keys. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "ibcryptctl.h"

#define MAX_DEPTH 16

/* The device of instance named name (lower lists may give "d0" or
 * "disk0/d0"), or NULL. */
static struct json_object *
find_device (struct json_object *devs, const char *instance, const char *name)
{
  size_t n = devs ? json_object_array_length (devs) : 0;
  size_t ilen = strlen (instance);

  for (size_t i = 0; i < n; i++) {
    struct json_object *d = json_object_array_get_idx (devs, i);
    const char *dn = ctl_str (d, "name", "");

    if (strcmp (ctl_str (d, "instance", ""), instance) != 0)
      continue;
    if (strcmp (dn, name) == 0
        || (strncmp (dn, instance, ilen) == 0 && dn[ilen] == '/'
            && strcmp (dn + ilen + 1, name) == 0))
      return d;
  }
  return NULL;
}

/* Is d listed as a lower device of another device of its instance? */
static bool
is_lower (struct json_object *devs, struct json_object *d)
{
  const char *instance = ctl_str (d, "instance", "");
  size_t n = json_object_array_length (devs);

  for (size_t i = 0; i < n; i++) {
    struct json_object *up = json_object_array_get_idx (devs, i);
    struct json_object *lower = ctl_member (up, "lower", json_type_array);

    if (up == d || strcmp (ctl_str (up, "instance", ""), instance) != 0)
      continue;
    for (size_t j = 0; lower && j < json_object_array_length (lower); j++) {
      const char *ln
          = json_object_get_string (json_object_array_get_idx (lower, j));

      if (ln && find_device (devs, instance, ln) == d)
        return true;
    }
  }
  return false;
}

/* One tree line, then the devices below it. */
static void
print_tree (struct json_object *devs, struct json_object *d, char *prefix,
            size_t plen, bool last, bool root, int depth)
{
  struct json_object *lower = ctl_member (d, "lower", json_type_array);
  size_t n = lower ? json_object_array_length (lower) : 0;
  char size[64], slots[64];

  ctl_size_text (ctl_int (d, "size"), size, sizeof size);
  ctl_slot_usage (ctl_member (d, "profile", json_type_object), slots,
                  sizeof slots);
  printf ("%s%s%s  %s  %s  %s\n", prefix, root ? "" : (last ? "`- " : "|- "),
          ctl_str (d, "name", "?"), ctl_str (d, "kind", "?"), size, slots);
  if (depth >= MAX_DEPTH || plen + 4 >= 256)
    return;
  if (!root) {
    strcpy (prefix + plen, last ? "   " : "|  ");
    plen += 3;
  }
  for (size_t i = 0; i < n; i++) {
    const char *ln
        = json_object_get_string (json_object_array_get_idx (lower, i));
    struct json_object *ld
        = ln ? find_device (devs, ctl_str (d, "instance", ""), ln) : NULL;

    if (ld)
      print_tree (devs, ld, prefix, plen, i + 1 == n, false, depth + 1);
    else
      printf ("%s%s%s  (not registered)\n", prefix, i + 1 == n ? "`- " : "|- ",
              ln ? ln : "?");
  }
  prefix[plen - (root ? 0 : 3)] = '\0';
}

static void
print_instance (struct json_object *inst, struct json_object *devs)
{
  const char *name = ctl_str (inst, "name", "?");
  struct json_object *conn = ctl_member (inst, "connected", json_type_boolean);
  size_t n = devs ? json_object_array_length (devs) : 0, shown = 0;
  char prefix[256];

  printf ("instance %s (pid %" PRId64 ", %s)\n", name, ctl_int (inst, "pid"),
          conn && !json_object_get_boolean (conn) ? "disconnected"
                                                  : "connected");
  for (size_t i = 0; i < n; i++) {
    struct json_object *d = json_object_array_get_idx (devs, i);

    if (strcmp (ctl_str (d, "instance", ""), name) != 0 || is_lower (devs, d))
      continue;
    strcpy (prefix, "  ");
    print_tree (devs, d, prefix, 2, true, true, 0);
    shown++;
  }
  if (shown == 0)
    printf ("  no devices\n");
}

int
ctl_cmd_status (int argc, char **argv)
{
  struct json_object *reply = NULL, *devreply = NULL, *devs = NULL;
  struct json_object *daemon, *instances, *keys;
  struct ctl_client *client;
  int r, status;
  size_t n;

  if ((status = ctl_positional (argc, argv, 0, 0)))
    return status;
  client = ctl_connect (&status);
  if (client == NULL)
    return status;
  r = ctl_call (client, ctl_request ("status"), NULL, 0, &reply);
  if (r < 0) {
    status = ctl_call_failed (client, r, "querying the status");
    goto out;
  }
  if (ctl_print_json (reply))
    goto out;
  /* The tree needs each device's lower devices: device_list has them. */
  r = ctl_call (client, ctl_request ("device_list"), NULL, 0, &devreply);
  if (r < 0) {
    status = ctl_call_failed (client, r, "listing devices");
    goto out;
  }
  devs = ctl_member (devreply, "devices", json_type_array);

  daemon = ctl_member (reply, "daemon", json_type_object);
  printf ("ibcryptd %s (pid %" PRId64 ", state directory %s)\n",
          ctl_str (daemon, "version", "?"), ctl_int (daemon, "pid"),
          ctl_str (daemon, "state_dir", "?"));
  instances = ctl_member (reply, "instances", json_type_array);
  n = instances ? json_object_array_length (instances) : 0;
  if (n == 0)
    printf ("no instances\n");
  for (size_t i = 0; i < n; i++)
    print_instance (json_object_array_get_idx (instances, i), devs);

  keys = ctl_member (reply, "keys", json_type_array);
  ctl_sort_by_name (keys);
  n = keys ? json_object_array_length (keys) : 0;
  printf ("keys:%s\n", n ? "" : " none");
  for (size_t i = 0; i < n; i++) {
    struct json_object *k = json_object_array_get_idx (keys, i);

    printf ("  %s  %s  %s  %s\n", ctl_str (k, "name", "?"),
            ctl_str (k, "cipher", "?"), ctl_str (k, "key_type", "?"),
            ctl_str (k, "key_id", "?"));
  }

out:
  json_object_put (reply);
  json_object_put (devreply);
  ctl_client_free (client);
  return status;
}
