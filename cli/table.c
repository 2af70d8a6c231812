/* ibcryptctl table show|load|resume: passthrough (device-mapper-like) tables. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ibcrypt/proto.h"
#include "ibcryptctl.h"

/* Tables must fit in a request header with room for the envelope. */
#define CTL_MAX_TABLE (IBC_PROTO_MAX_HEADER / 2)

int
ctl_cmd_table_show (int argc, char **argv)
{
  static const struct option opts[] = {
    { "inactive", no_argument, NULL, 'i' },
    { NULL, 0, NULL, 0 },
  };
  struct json_object *req, *reply = NULL;
  bool inactive = false;
  const char *device, *text;
  int c, status = 0;

  while ((c = ctl_getopt (argc, argv, "", opts)) != -1) {
    if (c != 'i')
      return CTL_EXIT_USAGE;
    inactive = true;
  }
  if ((status = ctl_want_args (argc, argv, 1, 1)))
    return status;
  device = argv[optind];
  req = ctl_request ("table_show");
  if (req)
    json_object_object_add (req, "device", json_object_new_string (device));
  status = ctl_simple_call (req, &reply, "showing the table of '%s'", device);
  if (status)
    return status;
  if (ctl_print_json (reply))
    goto out;
  /* Raw table text, so "table show > f; edit f; table load DEV f" works. */
  text = ctl_str (reply, inactive ? "inactive" : "live", NULL);
  if (text == NULL) {
    status = ctl_error (
        CTL_ERR_LOCAL, ENOENT, "showing the %s table of '%s': %s",
        inactive ? "inactive" : "live", device,
        inactive ? "no table loaded" : "no live table known to ibcryptd");
    goto out;
  }
  fputs (text, stdout);
  if (text[0] && text[strlen (text) - 1] != '\n')
    putchar ('\n');

out:
  json_object_put (reply);
  return status;
}

int
ctl_cmd_table_load (int argc, char **argv)
{
  struct json_object *req, *reply = NULL;
  const char *device, *file;
  char *text = NULL;
  int status;

  if ((status = ctl_positional (argc, argv, 1, 2)))
    return status;
  device = argv[optind];
  file = optind + 1 < argc ? argv[optind + 1] : "-";
  status = ctl_read_text ("the table", file, CTL_MAX_TABLE, &text);
  if (status)
    return status;
  req = ctl_request ("table_load");
  if (req) {
    json_object_object_add (req, "device", json_object_new_string (device));
    json_object_object_add (req, "table", json_object_new_string (text));
  }
  free (text);
  status = ctl_simple_call (req, &reply, "loading table into '%s'", device);
  if (status)
    return status;
  ctl_print_json (reply);
  json_object_put (reply);
  return 0;
}

int
ctl_cmd_table_resume (int argc, char **argv)
{
  struct json_object *req, *reply = NULL;
  const char *device;
  int status;

  if ((status = ctl_positional (argc, argv, 1, 1)))
    return status;
  device = argv[optind];
  if (!ctl_confirm ("Make the loaded table of '%s' live?", device))
    return ctl_error (CTL_ERR_LOCAL, ECANCELED, "resuming '%s': not confirmed",
                      device);
  req = ctl_request ("table_resume");
  if (req)
    json_object_object_add (req, "device", json_object_new_string (device));
  status = ctl_simple_call (req, &reply, "resuming '%s'", device);
  if (status)
    return status;
  ctl_print_json (reply);
  json_object_put (reply);
  return 0;
}
