/* ibcryptctl stats: the counters of one device or of every device. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "ibcryptctl.h"

static void
print_stats (struct json_object *d)
{
  struct json_object *profile = ctl_member (d, "profile", json_type_object);
  struct json_object *pstats = ctl_member (d, "stats", json_type_object);

  printf ("%s:\n", ctl_str (d, "name", "?"));
  json_object_object_foreach (d, key, v)
  {
    if (v
        && (json_object_is_type (v, json_type_object)
            || json_object_is_type (v, json_type_array)))
      continue;
    if (strcmp (key, "name") != 0)
      printf ("  %s: %s\n", key, v ? json_object_get_string (v) : "-");
  }
  ctl_print_scalars (ctl_member (d, "counters", json_type_object), "  ");
  /* Keyslot statistics: {"profile": {"stats": ...}} or {"stats": ...}. */
  if (pstats == NULL)
    pstats = ctl_member (profile, "stats", json_type_object);
  ctl_print_scalars (pstats, "  keyslot ");
}

int
ctl_cmd_stats (int argc, char **argv)
{
  struct json_object *req, *reply = NULL, *devs;
  const char *device;
  int status;
  size_t n;

  if ((status = ctl_positional (argc, argv, 0, 1)))
    return status;
  device = optind < argc ? argv[optind] : NULL;
  req = ctl_request ("stats");
  if (req && device)
    json_object_object_add (req, "device", json_object_new_string (device));
  if (device)
    status
        = ctl_simple_call (req, &reply, "reading the counters of '%s'", device);
  else
    status = ctl_simple_call (req, &reply, "reading the counters");
  if (status)
    return status;
  if (ctl_print_json (reply))
    goto out;
  devs = ctl_member (reply, "devices", json_type_array);
  n = devs ? json_object_array_length (devs) : 0;
  if (n == 0)
    printf ("No devices.\n");
  for (size_t i = 0; i < n; i++)
    print_stats (json_object_array_get_idx (devs, i));

out:
  json_object_put (reply);
  return 0;
}
