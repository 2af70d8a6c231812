/* ibcryptctl key add|list|show|evict|remove: the keys ibcryptd holds. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "ibcrypt/mode.h"
#include "ibcrypt/registry.h"
#include "ibcrypt/secmem.h"
#include "ibcryptctl.h"

/* Strings of a JSON array joined with ", " (devices, instances). */
static const char *
join_names (struct json_object *arr, const char *member, char *buf, size_t len)
{
  size_t n = arr ? json_object_array_length (arr) : 0, used = 0;

  buf[0] = '\0';
  for (size_t i = 0; i < n && used < len; i++) {
    struct json_object *v = json_object_array_get_idx (arr, i);
    const char *s = member ? ctl_str (v, member, "?")
                           : (json_object_is_type (v, json_type_string)
                                  ? json_object_get_string (v)
                                  : "?");
    int w = snprintf (buf + used, len - used, "%s%s", i ? ", " : "", s);

    if (w < 0)
      break;
    used += (size_t) w;
  }
  return buf;
}

int
ctl_cmd_key_add (int argc, char **argv)
{
  static const struct option opts[] = {
    { "cipher", required_argument, NULL, 'c' },
    { "key-file", required_argument, NULL, 'k' },
    { "generate", no_argument, NULL, 'g' },
    { "hw-wrapped", no_argument, NULL, 'w' },
    { NULL, 0, NULL, 0 },
  };
  const char *cipher = NULL, *key_file = NULL, *name;
  bool generate = false, hw = false;
  const struct ibc_mode_info *info;
  struct json_object *req, *reply = NULL;
  struct ctl_client *client = NULL;
  uint8_t *key = NULL;
  size_t key_len = 0;
  enum ibc_mode mode;
  int c, status, r;

  while ((c = ctl_getopt (argc, argv, "", opts)) != -1) {
    switch (c) {
    case 'c':
      cipher = optarg;
      break;
    case 'k':
      key_file = optarg;
      break;
    case 'g':
      generate = true;
      break;
    case 'w':
      hw = true;
      break;
    default:
      return CTL_EXIT_USAGE;
    }
  }
  if ((status = ctl_want_args (argc, argv, 1, 1)))
    return status;
  name = argv[optind];
  if (!ibc_device_name_valid (name))
    return ctl_error (CTL_ERR_LOCAL, EINVAL,
                      "adding key '%s': invalid key name (1 to 64 of "
                      "A-Z a-z 0-9 . _ -)",
                      name);
  if (cipher == NULL)
    return ctl_usage_error ("--cipher is required");
  if (key_file && generate)
    return ctl_usage_error ("--key-file and --generate exclude each other");
  if (key_file == NULL && !generate)
    return ctl_usage_error ("one of --key-file or --generate is required");
  if (ibc_mode_from_string (cipher, &mode) < 0
      || (info = ibc_mode_info (mode)) == NULL)
    return ctl_error (CTL_ERR_LOCAL, EINVAL,
                      "adding key '%s': unknown cipher '%s'", name, cipher);

  if (key_file) {
    struct ibc_crypto_config cfg = {
      .mode = mode,
      .data_unit_size = 4096,
      .dun_bytes = info->iv_size,
      .key_type = hw ? IBC_KEY_TYPE_HW_WRAPPED : IBC_KEY_TYPE_RAW,
    };

    status = ctl_read_key (name, key_file, info->cipher_name,
                           hw ? IBC_MAX_HW_WRAPPED_KEY_SIZE : info->key_size,
                           !hw, &key, &key_len);
    if (status)
      return status;
    if (ibc_crypto_config_validate (&cfg, key_len) < 0) {
      status = ctl_error (CTL_ERR_LOCAL, EINVAL,
                          "reading key '%s' from '%s': a hardware-wrapped "
                          "%s key has at least %u bytes (it has %zu)",
                          name, key_file, info->cipher_name,
                          info->security_strength, key_len);
      goto out;
    }
  }

  req = ctl_request ("key_add");
  if (req) {
    json_object_object_add (req, "name", json_object_new_string (name));
    json_object_object_add (req, "cipher",
                            json_object_new_string (info->cipher_name));
    json_object_object_add (req, "key_type",
                            json_object_new_string (hw ? "hw-wrapped" : "raw"));
    json_object_object_add (req, "generate",
                            json_object_new_boolean (generate));
  }
  client = ctl_connect (&status);
  if (client == NULL) {
    json_object_put (req);
    goto out;
  }
  r = ctl_call (client, req, key, key_len, &reply);
  if (r < 0) {
    status = ctl_call_failed (client, r, "adding key '%s'", name);
    goto out;
  }
  ctl_print_json (reply);
  status = 0;

out:
  ibc_secmem_free (key, key_len);
  json_object_put (reply);
  ctl_client_free (client);
  return status;
}

int
ctl_cmd_key_list (int argc, char **argv)
{
  struct json_object *reply = NULL, *keys, *unknown;
  struct ctl_table *t;
  char buf[1024], nb[32];
  size_t n;
  int status;

  if ((status = ctl_positional (argc, argv, 0, 0)))
    return status;
  status = ctl_simple_call (ctl_request ("key_list"), &reply, "listing keys");
  if (status)
    return status;
  if (ctl_print_json (reply))
    goto out;

  keys = ctl_member (reply, "keys", json_type_array);
  ctl_sort_by_name (keys);
  n = keys ? json_object_array_length (keys) : 0;
  if (n == 0)
    printf ("No keys.\n");
  else {
    t = ctl_table_new (6, "NAME", "CIPHER", "TYPE", "KEY ID", "BINDINGS",
                       "INSTANCES");
    for (size_t i = 0; i < n; i++) {
      struct json_object *k = json_object_array_get_idx (keys, i);
      struct json_object *b = ctl_member (k, "bindings", json_type_array);

      snprintf (nb, sizeof nb, "%zu", b ? json_object_array_length (b) : 0);
      join_names (ctl_member (k, "instances", json_type_array), NULL, buf,
                  sizeof buf);
      ctl_table_add (t, ctl_str (k, "name", "?"), ctl_str (k, "cipher", "?"),
                     ctl_str (k, "key_type", "?"), ctl_str (k, "key_id", "?"),
                     nb, buf[0] ? buf : "-");
    }
    ctl_table_print (t);
    ctl_table_free (t);
  }

  unknown = ctl_member (reply, "unknown", json_type_array);
  n = unknown ? json_object_array_length (unknown) : 0;
  if (n) {
    printf ("\nKeys instances hold that ibcryptd lost "
            "(add them again with 'ibcryptctl key add'):\n");
    t = ctl_table_new (3, "INSTANCE", "NAME", "KEY ID");
    for (size_t i = 0; i < n; i++) {
      struct json_object *u = json_object_array_get_idx (unknown, i);

      ctl_table_add (t, ctl_str (u, "instance", "?"), ctl_str (u, "name", "?"),
                     ctl_str (u, "key_id", "?"));
    }
    ctl_table_print (t);
    ctl_table_free (t);
  }

out:
  json_object_put (reply);
  return 0;
}

int
ctl_cmd_key_show (int argc, char **argv)
{
  struct json_object *req, *reply = NULL, *key, *bindings;
  const char *name;
  char buf[1024];
  int status;

  if ((status = ctl_positional (argc, argv, 1, 1)))
    return status;
  name = argv[optind];
  req = ctl_request ("key_show");
  if (req)
    json_object_object_add (req, "name", json_object_new_string (name));
  status = ctl_simple_call (req, &reply, "showing key '%s'", name);
  if (status)
    return status;
  if (ctl_print_json (reply))
    goto out;

  key = ctl_member (reply, "key", json_type_object);
  printf ("key: %s\n", ctl_str (key, "name", name));
  printf ("  cipher: %s\n", ctl_str (key, "cipher", "?"));
  printf ("  key type: %s\n", ctl_str (key, "key_type", "?"));
  if (ctl_int (key, "size") >= 0)
    printf ("  size: %" PRId64 " bytes\n", ctl_int (key, "size"));
  printf ("  key id: %s\n", ctl_str (key, "key_id", "?"));
  bindings = ctl_member (key, "bindings", json_type_array);
  if (bindings == NULL || json_object_array_length (bindings) == 0)
    printf ("  bindings: none\n");
  else {
    printf ("  bindings:\n");
    for (size_t i = 0; i < json_object_array_length (bindings); i++) {
      struct json_object *b = json_object_array_get_idx (bindings, i);

      char len[64];

      printf ("    %s: offset %" PRId64 ", %s\n", ctl_str (b, "device", "?"),
              ctl_int (b, "start"),
              ctl_size_text (ctl_int (b, "length"), len, sizeof len));
    }
  }
  join_names (ctl_member (key, "instances", json_type_array), NULL, buf,
              sizeof buf);
  printf ("  instances: %s\n", buf[0] ? buf : "none");

out:
  json_object_put (reply);
  return 0;
}

int
ctl_cmd_key_evict (int argc, char **argv)
{
  struct json_object *req, *reply = NULL, *busy;
  const char *name, *device;
  char buf[1024];
  int status;

  if ((status = ctl_positional (argc, argv, 1, 2)))
    return status;
  name = argv[optind];
  device = optind + 1 < argc ? argv[optind + 1] : NULL;
  if (!ctl_confirm ("Evict key '%s' from %s%s%s?", name,
                    device ? "'" : "every device", device ? device : "",
                    device ? "'" : ""))
    return ctl_error (CTL_ERR_LOCAL, ECANCELED,
                      "evicting key '%s': not confirmed", name);
  req = ctl_request ("key_evict");
  if (req) {
    json_object_object_add (req, "name", json_object_new_string (name));
    if (device)
      json_object_object_add (req, "device", json_object_new_string (device));
  }
  status = ctl_simple_call (req, &reply, "evicting key '%s'", name);
  if (status)
    return status;
  busy = ctl_member (reply, "busy", json_type_array);
  if (!ctl_print_json (reply) && busy && json_object_array_length (busy))
    ctl_warn ("evicting key '%s': still in use on %s", name,
              join_names (busy, NULL, buf, sizeof buf));
  if (busy && json_object_array_length (busy))
    status = ctl_exit_status (CTL_ERR_LOCAL, EBUSY);
  json_object_put (reply);
  return status;
}

int
ctl_cmd_key_remove (int argc, char **argv)
{
  static const struct option opts[] = {
    { "force", no_argument, NULL, 'f' },
    { NULL, 0, NULL, 0 },
  };
  struct json_object *req, *reply = NULL, *lost;
  bool force = false;
  const char *name;
  char buf[1024];
  int c, status;

  while ((c = ctl_getopt (argc, argv, "", opts)) != -1) {
    if (c != 'f')
      return CTL_EXIT_USAGE;
    force = true;
  }
  if ((status = ctl_want_args (argc, argv, 1, 1)))
    return status;
  name = argv[optind];
  if (!ctl_confirm ("Remove key '%s' from ibcryptd and every instance?%s", name,
                    force ? " Ranges mapped with it will fail with EIO." : ""))
    return ctl_error (CTL_ERR_LOCAL, ECANCELED,
                      "removing key '%s': not confirmed", name);
  req = ctl_request ("key_remove");
  if (req) {
    json_object_object_add (req, "name", json_object_new_string (name));
    json_object_object_add (req, "force", json_object_new_boolean (force));
  }
  status = ctl_simple_call (req, &reply, "removing key '%s'", name);
  if (status)
    return status;
  lost = ctl_member (reply, "bindings_lost", json_type_array);
  if (!ctl_print_json (reply) && lost && json_object_array_length (lost))
    ctl_warn ("removed key '%s' was mapped on %s: I/O to those ranges now "
              "fails with EIO",
              name, join_names (lost, NULL, buf, sizeof buf));
  json_object_put (reply);
  return 0;
}
