/* ibcryptctl device list|show|caps|reset: the devices of every instance. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ibcrypt/mode.h"
#include "ibcryptctl.h"

/* Members ctl_print_device prints by name; any others (kind-specific
 * fields a layer adds) are printed generically after them. */
static const char *const known_members[] = {
  "name",    "kind",     "instance", "start", "size",
  "profile", "counters", "lower",    NULL,
};

static bool
is_known (const char *key)
{
  for (size_t i = 0; known_members[i]; i++)
    if (strcmp (known_members[i], key) == 0)
      return true;
  return false;
}

static void
print_list_line (const char *label, struct json_object *arr)
{
  size_t n = arr ? json_object_array_length (arr) : 0;

  printf ("%s", label);
  if (n == 0)
    printf (" none");
  for (size_t i = 0; i < n; i++)
    printf ("%s%s", i ? ", " : " ",
            json_object_get_string (json_object_array_get_idx (arr, i)));
  printf ("\n");
}

/* One "MODE:DUS+DUS+..." entry, with runs of three or more consecutive
 * powers of two shortened to "A..B" (a software fallback supports every
 * data unit size from 1 byte to 2 GiB: 32 numbers). */
static void
print_mode (const char *p, size_t n)
{
  const char *colon = memchr (p, ':', n), *end = p + n;
  unsigned long long run[64];
  size_t nrun = 0;

  if (colon == NULL) {
    printf (" %.*s", (int) n, p);
    return;
  }
  /* The mode name may itself hold ':' (aes-cbc-essiv:sha256). */
  for (const char *q = colon + 1; q < end; q++)
    if (*q == ':')
      colon = q;
  printf (" %.*s:", (int) (colon - p), p);
  for (const char *q = colon + 1; q < end;) {
    char *e;
    unsigned long long v = strtoull (q, &e, 10);

    if (e == q || e > end || nrun == 64) {
      printf ("%.*s", (int) (end - q), q);
      nrun = 0;
      break;
    }
    run[nrun++] = v;
    q = e < end && *e == '+' ? e + 1 : end;
  }
  for (size_t i = 0; i < nrun;) {
    size_t j = i;

    while (j + 1 < nrun && run[j + 1] == run[j] * 2)
      j++;
    if (j - i >= 2)
      printf ("%s%llu..%llu", i ? "+" : "", run[i], run[j]);
    else
      for (size_t k = i; k <= j; k++)
        printf ("%s%llu", k ? "+" : "", run[k]);
    i = j + 1;
  }
}

/* Capabilities: shared by "device show" (indented) and "device caps". */
static void
print_caps (struct json_object *caps, const char *indent)
{
  const char *modes = ctl_str (caps, "modes", "");

  printf ("%smodes:", indent);
  if (modes[0] == '\0')
    printf (" none");
  for (const char *p = modes; *p;) {
    size_t n = strcspn (p, ",");
    print_mode (p, n);
    p += n;
    if (*p == ',')
      p++;
  }
  printf ("\n%smax dun bytes: %" PRId64 "\n", indent,
          ctl_int (caps, "max_dun_bytes"));
  printf ("%s", indent);
  print_list_line ("key types:",
                   ctl_member (caps, "key_types", json_type_array));
}

void
ctl_print_device (struct json_object *dev)
{
  struct json_object *profile = ctl_member (dev, "profile", json_type_object);
  struct json_object *slots, *lower;
  char buf[128];

  printf ("device: %s\n", ctl_str (dev, "name", "?"));
  printf ("  kind: %s\n", ctl_str (dev, "kind", "?"));
  printf ("  instance: %s\n", ctl_str (dev, "instance", "?"));
  printf ("  start: %" PRId64 "\n", ctl_int (dev, "start"));
  printf ("  size: %s\n",
          ctl_size_text (ctl_int (dev, "size"), buf, sizeof buf));
  lower = ctl_member (dev, "lower", json_type_array);
  if (lower && json_object_array_length (lower))
    print_list_line ("  lower:", lower);
  if (profile == NULL)
    printf ("  inline crypto: none\n");
  else {
    print_caps (profile, "  ");
    printf ("  keyslots: %s\n", ctl_slot_usage (profile, buf, sizeof buf));
    slots = ctl_member (profile, "keyslots", json_type_array);
    for (size_t i = 0; slots && i < json_object_array_length (slots); i++) {
      struct json_object *s = json_object_array_get_idx (slots, i);
      const char *id = ctl_str (s, "key_id", NULL);

      /* Only programmed slots: a fallback has 100. */
      if (id)
        printf ("    slot %" PRId64 ": %s (in flight %" PRId64 ")\n",
                ctl_int (s, "slot"), id, ctl_int (s, "in_flight"));
    }
    if (ctl_member (profile, "stats", json_type_object)) {
      printf ("  keyslot stats:\n");
      ctl_print_scalars (ctl_member (profile, "stats", json_type_object),
                         "    ");
    }
  }
  if (ctl_member (dev, "counters", json_type_object)) {
    printf ("  counters:\n");
    ctl_print_scalars (ctl_member (dev, "counters", json_type_object), "    ");
  }
  json_object_object_foreach (dev, key, v)
  {
    if (is_known (key) || json_object_is_type (v, json_type_object)
        || json_object_is_type (v, json_type_array))
      continue;
    printf ("  %s: %s\n", key, v ? json_object_get_string (v) : "-");
  }
}

int
ctl_cmd_device_list (int argc, char **argv)
{
  struct json_object *reply = NULL, *devs;
  struct ctl_table *t;
  size_t n;
  int status;

  if ((status = ctl_positional (argc, argv, 0, 0)))
    return status;
  status = ctl_simple_call (ctl_request ("device_list"), &reply,
                            "listing devices");
  if (status)
    return status;
  if (ctl_print_json (reply))
    goto out;
  devs = ctl_member (reply, "devices", json_type_array);
  n = devs ? json_object_array_length (devs) : 0;
  if (n == 0) {
    printf ("No devices.\n");
    goto out;
  }
  t = ctl_table_new (6, "NAME", "KIND", "INSTANCE", "START", "SIZE",
                     "KEYSLOTS");
  for (size_t i = 0; i < n; i++) {
    struct json_object *d = json_object_array_get_idx (devs, i);
    char start[32], size[32], slots[64];

    snprintf (start, sizeof start, "%" PRId64, ctl_int (d, "start"));
    if (ctl_int (d, "size") >= 0)
      snprintf (size, sizeof size, "%" PRId64, ctl_int (d, "size"));
    else
      snprintf (size, sizeof size, "-");
    ctl_slot_usage (ctl_member (d, "profile", json_type_object), slots,
                    sizeof slots);
    ctl_table_add (t, ctl_str (d, "name", "?"), ctl_str (d, "kind", "?"),
                   ctl_str (d, "instance", "?"), start, size, slots);
  }
  ctl_table_print (t);
  ctl_table_free (t);

out:
  json_object_put (reply);
  return 0;
}

int
ctl_cmd_device_show (int argc, char **argv)
{
  struct json_object *req, *reply = NULL;
  const char *device;
  int status;

  if ((status = ctl_positional (argc, argv, 1, 1)))
    return status;
  device = argv[optind];
  req = ctl_request ("device_show");
  if (req)
    json_object_object_add (req, "device", json_object_new_string (device));
  status = ctl_simple_call (req, &reply, "showing device '%s'", device);
  if (status)
    return status;
  if (!ctl_print_json (reply))
    ctl_print_device (ctl_member (reply, "device", json_type_object));
  json_object_put (reply);
  return 0;
}

/* "CIPHER:DUS:DUN_BYTES[:KEY_TYPE]"; the cipher may itself contain ':'
 * (aes-cbc-essiv:sha256), so the numbers are taken from the right. */
static int
parse_check (const char *spec, struct json_object **ret)
{
  char *s = strdup (spec), *p, *end;
  const char *key_type = "raw";
  unsigned long dus, dun;
  enum ibc_key_type kt;
  enum ibc_mode mode;
  struct json_object *o;
  int r = -EINVAL;

  if (s == NULL)
    return -ENOMEM;
  p = strrchr (s, ':');
  if (p && ibc_key_type_from_string (p + 1, &kt) == 0) {
    key_type = ibc_key_type_name (kt);
    *p = '\0';
  }
  if ((p = strrchr (s, ':')) == NULL)
    goto out;
  errno = 0;
  dun = strtoul (p + 1, &end, 10);
  if (errno || end == p + 1 || *end || dun == 0 || dun > 32)
    goto out;
  *p = '\0';
  if ((p = strrchr (s, ':')) == NULL)
    goto out;
  dus = strtoul (p + 1, &end, 10);
  if (errno || end == p + 1 || *end || dus == 0 || dus > (1ul << 30))
    goto out;
  *p = '\0';
  if (ibc_mode_from_string (s, &mode) < 0)
    goto out;
  o = json_object_new_object ();
  json_object_object_add (
      o, "cipher", json_object_new_string (ibc_mode_info (mode)->cipher_name));
  json_object_object_add (o, "data_unit_size", json_object_new_uint64 (dus));
  json_object_object_add (o, "dun_bytes", json_object_new_uint64 (dun));
  json_object_object_add (o, "key_type", json_object_new_string (key_type));
  *ret = o;
  r = 0;

out:
  free (s);
  return r;
}

int
ctl_cmd_device_caps (int argc, char **argv)
{
  static const struct option opts[] = {
    { "check", required_argument, NULL, 'c' },
    { NULL, 0, NULL, 0 },
  };
  struct json_object *req, *reply = NULL, *check = NULL, *sup;
  const char *device, *spec = NULL;
  int c, status;

  while ((c = ctl_getopt (argc, argv, "", opts)) != -1) {
    if (c != 'c')
      return CTL_EXIT_USAGE;
    spec = optarg;
  }
  if ((status = ctl_want_args (argc, argv, 1, 1)))
    return status;
  device = argv[optind];
  if (spec && parse_check (spec, &check) < 0)
    return ctl_usage_error ("invalid --check '%s' (CIPHER:DUS:DUN_BYTES"
                            "[:KEY_TYPE], e.g. aes-xts-plain64:4096:8)",
                            spec);
  req = ctl_request ("device_caps");
  if (req) {
    json_object_object_add (req, "device", json_object_new_string (device));
    if (check)
      json_object_object_add (req, "check", check);
  } else
    json_object_put (check);
  status = ctl_simple_call (req, &reply, "querying the capabilities of '%s'",
                            device);
  if (status)
    return status;
  sup = ctl_member (reply, "supported", json_type_boolean);
  if (!ctl_print_json (reply)) {
    if (spec)
      printf ("%s\n", sup && json_object_get_boolean (sup) ? "supported"
                                                           : "not supported");
    else {
      struct json_object *caps = ctl_member (reply, "caps", json_type_object);

      print_caps (caps, "");
      printf ("keyslots: %" PRId64 "\n", ctl_int (caps, "num_keyslots"));
    }
  }
  /* Like test(1): a config that is not supported is a failed check. */
  if (spec && !(sup && json_object_get_boolean (sup)))
    status = CTL_EXIT_USAGE;
  json_object_put (reply);
  return status;
}

int
ctl_cmd_device_reset (int argc, char **argv)
{
  struct json_object *req, *reply = NULL;
  const char *device;
  int status;

  if ((status = ctl_positional (argc, argv, 1, 1)))
    return status;
  device = argv[optind];
  if (!ctl_confirm ("Reset keyslot device '%s' (all its keyslots are "
                    "lost and reprogrammed)?",
                    device))
    return ctl_error (CTL_ERR_LOCAL, ECANCELED,
                      "resetting device '%s': not confirmed", device);
  req = ctl_request ("device_reset");
  if (req)
    json_object_object_add (req, "device", json_object_new_string (device));
  status = ctl_simple_call (req, &reply, "resetting device '%s'", device);
  if (status)
    return status;
  ctl_print_json (reply);
  json_object_put (reply);
  return 0;
}
