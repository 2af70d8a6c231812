/* ibcryptctl map: set an instance's crypt table, from a file or one key range. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ibcrypt/mode.h"
#include "ibcrypt/proto.h"
#include "ibcryptctl.h"

#define CTL_MAX_TABLE (IBC_PROTO_MAX_HEADER / 2)

struct range_args {
  const char *cipher;
  uint64_t start, length, iv_offset, sector_size;
  bool have_length;
};

static int
parse_u64 (const char *opt, const char *s, uint64_t *ret)
{
  char *end;

  errno = 0;
  if (s[0] < '0' || s[0] > '9')
    return ctl_usage_error ("invalid %s '%s'", opt, s);
  *ret = strtoull (s, &end, 10);
  if (errno || *end)
    return ctl_usage_error ("invalid %s '%s'", opt, s);
  return 0;
}

/* One crypt line for the key's range, plain lines around it (in 512-byte
 * sectors).  total is the device size in sectors, or 0 if unknown. */
static int
build_table (const struct range_args *a, const char *cipher, const char *key,
             bool hw_wrapped, uint64_t total, char **ret)
{
  char opts[128] = "";
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream (&text, &len);
  unsigned nopts = 0;

  if (f == NULL)
    return -ENOMEM;
  if (a->sector_size != 512) {
    snprintf (opts, sizeof opts, " sector_size:%" PRIu64 " iv_large_sectors",
              a->sector_size);
    nopts += 2;
  }
  if (hw_wrapped) {
    strcat (opts, " keytype:hw-wrapped");
    nopts++;
  }
  if (a->start > 0)
    fprintf (f, "0 %" PRIu64 " plain\n", a->start);
  fprintf (f, "%" PRIu64 " %" PRIu64 " crypt %s :%s %" PRIu64, a->start,
           a->length, cipher, key, a->iv_offset);
  if (nopts)
    fprintf (f, " %u%s", nopts, opts);
  fprintf (f, "\n");
  if (total > a->start + a->length)
    fprintf (f, "%" PRIu64 " %" PRIu64 " plain\n", a->start + a->length,
             total - a->start - a->length);
  if (fclose (f) != 0) {
    free (text);
    return -ENOMEM;
  }
  *ret = text;
  return 0;
}

/* The end of dev's lower devices, in bytes, or 0 if any is unknown.  A
 * fallback device registers before nbdkit knows the export size, so its
 * own size may be null; it does not remap, so its size is where the
 * devices below it end. */
static uint64_t
size_from_lower (struct ctl_client *c, struct json_object *dev)
{
  struct json_object *lower = ctl_member (dev, "lower", json_type_array);
  struct json_object *reply = NULL, *devs;
  uint64_t end = 0;
  size_t n = lower ? json_object_array_length (lower) : 0;

  if (n == 0 || ctl_call (c, ctl_request ("device_list"), NULL, 0, &reply) < 0)
    return 0;
  devs = ctl_member (reply, "devices", json_type_array);
  for (size_t i = 0; i < n; i++) {
    const char *ln
        = json_object_get_string (json_object_array_get_idx (lower, i));
    struct json_object *ld = NULL;

    for (size_t j = 0; ln && devs && j < json_object_array_length (devs); j++) {
      struct json_object *d = json_object_array_get_idx (devs, j);

      if (strcmp (ctl_str (d, "name", ""), ln) == 0)
        ld = d;
    }
    if (ld == NULL || ctl_int (ld, "start") < 0 || ctl_int (ld, "size") < 0) {
      end = 0;
      break;
    }
    if ((uint64_t) (ctl_int (ld, "start") + ctl_int (ld, "size")) > end)
      end = (uint64_t) (ctl_int (ld, "start") + ctl_int (ld, "size"));
  }
  json_object_put (reply);
  return end;
}

/* Look up the device size and the key type, then build the table. */
static int
shorthand_table (struct ctl_client *c, const char *device, const char *key,
                 struct range_args *a, char **ret)
{
  struct json_object *req, *reply = NULL, *dev;
  const struct ibc_mode_info *info;
  uint64_t total = 0, unit = a->sector_size / 512;
  bool hw = false;
  enum ibc_mode mode;
  int r;

  if (ibc_mode_from_string (a->cipher, &mode) < 0
      || (info = ibc_mode_info (mode)) == NULL)
    return ctl_error (CTL_ERR_LOCAL, EINVAL,
                      "mapping '%s': unknown cipher '%s'", device, a->cipher);
  if (a->sector_size < 512 || !ibc_is_power_of_2 (a->sector_size))
    return ctl_error (CTL_ERR_LOCAL, EINVAL,
                      "mapping '%s': sector size %" PRIu64
                      " is not a power of two of at least 512",
                      device, a->sector_size);

  req = ctl_request ("device_show");
  if (req)
    json_object_object_add (req, "device", json_object_new_string (device));
  r = ctl_call (c, req, NULL, 0, &reply);
  if (r < 0)
    return ctl_call_failed (c, r, "mapping '%s'", device);
  dev = ctl_member (reply, "device", json_type_object);
  if (ctl_int (dev, "size") >= 0)
    total = (uint64_t) ctl_int (dev, "size") / 512;
  else
    total = size_from_lower (c, dev) / 512;
  json_object_put (reply);
  reply = NULL;

  req = ctl_request ("key_show");
  if (req)
    json_object_object_add (req, "name", json_object_new_string (key));
  r = ctl_call (c, req, NULL, 0, &reply);
  if (r < 0)
    return ctl_call_failed (c, r, "mapping '%s' with key '%s'", device, key);
  hw = strcmp (ctl_str (ctl_member (reply, "key", json_type_object), "key_type",
                        "raw"),
               "hw-wrapped")
       == 0;
  json_object_put (reply);

  if (!a->have_length) {
    if (total == 0)
      return ctl_error (CTL_ERR_LOCAL, EINVAL,
                        "mapping '%s': the device size is unknown; give "
                        "--length",
                        device);
    if (a->start >= total)
      return ctl_error (CTL_ERR_LOCAL, EINVAL,
                        "mapping '%s': --start %" PRIu64
                        " is beyond the device's %" PRIu64 " sectors",
                        device, a->start, total);
    a->length = total - a->start;
  }
  if (a->length == 0)
    return ctl_error (CTL_ERR_LOCAL, EINVAL, "mapping '%s': --length is 0",
                      device);
  if (total && (a->start > total || a->length > total - a->start))
    return ctl_error (CTL_ERR_LOCAL, EINVAL,
                      "mapping '%s': sectors %" PRIu64 "+%" PRIu64
                      " run past the device's %" PRIu64 " sectors",
                      device, a->start, a->length, total);
  if (a->start % unit || a->length % unit)
    return ctl_error (CTL_ERR_LOCAL, EINVAL,
                      "mapping '%s': --start and --length must be multiples "
                      "of the %" PRIu64 "-byte sector size (%" PRIu64
                      " sectors)",
                      device, a->sector_size, unit);
  r = build_table (a, info->cipher_name, key, hw, total, ret);
  if (r < 0)
    return ctl_error (CTL_ERR_LOCAL, r, "mapping '%s': %s", device,
                      strerror (-r));
  return 0;
}

int
ctl_cmd_map (int argc, char **argv)
{
  static const struct option opts[] = {
    { "cipher", required_argument, NULL, 'c' },
    { "start", required_argument, NULL, 's' },
    { "length", required_argument, NULL, 'l' },
    { "iv-offset", required_argument, NULL, 'i' },
    { "sector-size", required_argument, NULL, 'z' },
    { "dry-run", no_argument, NULL, 'n' },
    { NULL, 0, NULL, 0 },
  };
  struct range_args a = { .sector_size = 512 };
  struct json_object *req, *reply = NULL;
  struct ctl_client *client = NULL;
  bool range_opts = false, dry_run = false;
  const char *device, *source;
  char *text = NULL;
  int c, r, status;

  while ((c = ctl_getopt (argc, argv, "", opts)) != -1) {
    status = 0;
    switch (c) {
    case 'c':
      a.cipher = optarg;
      break;
    case 's':
      status = parse_u64 ("--start", optarg, &a.start);
      break;
    case 'l':
      status = parse_u64 ("--length", optarg, &a.length);
      a.have_length = true;
      break;
    case 'i':
      status = parse_u64 ("--iv-offset", optarg, &a.iv_offset);
      break;
    case 'z':
      status = parse_u64 ("--sector-size", optarg, &a.sector_size);
      break;
    case 'n':
      dry_run = true;
      continue;
    default:
      return CTL_EXIT_USAGE;
    }
    if (status)
      return status;
    if (c != 'c')
      range_opts = true;
  }
  if ((status = ctl_want_args (argc, argv, 2, 2)))
    return status;
  device = argv[optind];
  source = argv[optind + 1];
  if (range_opts && a.cipher == NULL)
    return ctl_usage_error ("--start, --length, --iv-offset and "
                            "--sector-size need --cipher (map INSTANCE KEY "
                            "--cipher CIPHER)");

  if (a.cipher == NULL) {
    status = ctl_read_text ("the crypt table", source, CTL_MAX_TABLE, &text);
    if (status)
      return status;
  } else if (source[0] == '@')
    return ctl_usage_error ("KEY is the name of a key ibcryptd holds, not a "
                            "key file ('%s')",
                            source);
  client = ctl_connect (&status);
  if (client == NULL)
    goto out;
  if (a.cipher) {
    status = shorthand_table (
        client, device, source[0] == ':' ? source + 1 : source, &a, &text);
    if (status)
      goto out;
  }
  if (dry_run) {
    if (ctl.json != CTL_JSON_OFF) {
      reply = json_object_new_object ();
      json_object_object_add (reply, "table", json_object_new_string (text));
      ctl_print_json (reply);
    } else
      fputs (text, stdout);
    goto out;
  }
  if (!ctl_confirm ("Replace the crypt table of '%s'?", device)) {
    status = ctl_error (CTL_ERR_LOCAL, ECANCELED, "mapping '%s': not confirmed",
                        device);
    goto out;
  }
  req = ctl_request ("map");
  if (req) {
    json_object_object_add (req, "device", json_object_new_string (device));
    json_object_object_add (req, "table", json_object_new_string (text));
  }
  r = ctl_call (client, req, NULL, 0, &reply);
  if (r < 0) {
    status = ctl_call_failed (client, r, "mapping '%s'", device);
    goto out;
  }
  ctl_print_json (reply);

out:
  json_object_put (reply);
  ctl_client_free (client);
  free (text);
  return status;
}
