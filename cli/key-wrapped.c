/* ibcryptctl key import|generate|prepare: hardware-wrapped key blobs. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "ibcrypt/hwdev.h"
#include "ibcrypt/mode.h"
#include "ibcrypt/secmem.h"
#include "ibcryptctl.h"

/* Write the reply's hex blob as bytes to path (NULL: standard output). */
static int
write_blob (struct json_object *reply, const char *path, const char *what)
{
  uint8_t blob[IBC_HWDEV_BLOB_MAX];
  const char *hex = ctl_str (reply, "blob", "");
  size_t len = 0, done = 0;
  int fd = STDOUT_FILENO, status = 0;

  if (sodium_hex2bin (blob, sizeof blob, hex, strlen (hex), NULL, &len, NULL)
          != 0
      || len == 0)
    return ctl_error (CTL_ERR_LOCAL, EPROTO, "%s: the reply has no blob", what);
  /* Mode 0600: an ephemeral blob is the in-use key of this boot. */
  if (path
      && (fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
    return ctl_error (CTL_ERR_LOCAL, errno, "%s: writing '%s': %s", what, path,
                      strerror (errno));
  while (done < len) {
    ssize_t n = write (fd, blob + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      status = ctl_error (CTL_ERR_LOCAL, errno, "%s: writing '%s': %s", what,
                          path ? path : "-", strerror (errno));
      break;
    }
    done += (size_t) n;
  }
  if (path && close (fd) < 0 && status == 0)
    status = ctl_error (CTL_ERR_LOCAL, errno, "%s: writing '%s': %s", what,
                        path, strerror (errno));
  sodium_memzero (blob, sizeof blob);
  return status;
}

/* The three commands: import (key_file), generate, prepare (blob_file). */
static int
wrapped_cmd (int argc, char **argv, const char *op)
{
  static const struct option opts[] = {
    { "key-file", required_argument, NULL, 'k' },
    { "output", required_argument, NULL, 'o' },
    { NULL, 0, NULL, 0 },
  };
  bool import = strcmp (op, "key_import") == 0;
  bool prepare = strcmp (op, "key_prepare") == 0;
  const char *key_file = NULL, *output = NULL, *device;
  struct json_object *req, *reply = NULL;
  struct ctl_client *client = NULL;
  char what[128], hex[2 * IBC_HWDEV_BLOB_MAX + 1];
  uint8_t *bytes = NULL;
  size_t len = 0;
  int c, status, r;

  while ((c = ctl_getopt (argc, argv, "", opts)) != -1) {
    switch (c) {
    case 'k':
      if (!import)
        return ctl_usage_error ("--key-file is only for key import");
      key_file = optarg;
      break;
    case 'o':
      output = optarg;
      break;
    default:
      return CTL_EXIT_USAGE;
    }
  }
  if ((status = ctl_want_args (argc, argv, prepare ? 2 : 1, prepare ? 2 : 1)))
    return status;
  device = argv[optind];
  if (import && key_file == NULL)
    return ctl_usage_error ("--key-file is required");
  if (output == NULL && ctl.json == CTL_JSON_OFF && isatty (STDOUT_FILENO))
    return ctl_usage_error ("refusing to write a binary blob to a terminal "
                            "(use --output FILE)");
  snprintf (what, sizeof what, "%s on '%s'",
            import    ? "importing a key"
            : prepare ? "preparing a key"
                      : "generating a key",
            device);
  if (import) {
    status = ctl_read_key ("(import)", key_file, "a raw key",
                           IBC_MAX_RAW_KEY_SIZE, false, &bytes, &len);
    if (status)
      return status;
    if (len < 16) {
      status = ctl_error (CTL_ERR_LOCAL, EINVAL,
                          "%s: a raw key has 16 to %d bytes (it has %zu)", what,
                          IBC_MAX_RAW_KEY_SIZE, len);
      goto out;
    }
  } else if (prepare) {
    status = ctl_read_key ("(long-term blob)", argv[optind + 1],
                           "a wrapped key blob", IBC_HWDEV_BLOB_MAX, false,
                           &bytes, &len);
    if (status)
      return status;
    sodium_bin2hex (hex, sizeof hex, bytes, len);
    ibc_secmem_free (bytes, len);
    bytes = NULL;
    len = 0;
  }

  req = ctl_request (op);
  if (req) {
    json_object_object_add (req, "device", json_object_new_string (device));
    if (prepare)
      json_object_object_add (req, "blob", json_object_new_string (hex));
  }
  client = ctl_connect (&status);
  if (client == NULL) {
    json_object_put (req);
    goto out;
  }
  r = ctl_call (client, req, bytes, len, &reply);
  if (r < 0) {
    status = ctl_call_failed (client, r, "%s", what);
    goto out;
  }
  status = 0;
  if (output || !ctl_print_json (reply))
    status = write_blob (reply, output, what);
  if (status == 0 && output)
    ctl_print_json (reply);

out:
  ibc_secmem_free (bytes, len);
  json_object_put (reply);
  ctl_client_free (client);
  return status;
}

int
ctl_cmd_key_import (int argc, char **argv)
{
  return wrapped_cmd (argc, argv, "key_import");
}

int
ctl_cmd_key_generate (int argc, char **argv)
{
  return wrapped_cmd (argc, argv, "key_generate");
}

int
ctl_cmd_key_prepare (int argc, char **argv)
{
  return wrapped_cmd (argc, argv, "key_prepare");
}
