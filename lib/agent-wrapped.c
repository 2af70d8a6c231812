/* The agent's hardware-wrapped key ops: import, generate, prepare. */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "agent-internal.h"
#include "ibcrypt/agent.h"
#include "ibcrypt/hwdev.h"
#include "ibcrypt/registry.h"

/* "INSTANCE/DEV": a device of a keyslot or passthrough layer. */
static const struct ibc_device *
find_lower_device (const char *name, const struct ibc_layer **ret_layer)
{
  const char *inst = ibc_agent_instance ();
  size_t n = strlen (inst);

  if (strncmp (name, inst, n) != 0 || name[n] != '/')
    return NULL;
  for (struct ibc_layer *l = ibc_registry_top (); l; l = ibc_layer_below (l)) {
    const struct ibc_device *d;

    if (ibc_layer_kind (l) == IBC_LAYER_FALLBACK)
      continue;
    d = ibc_layer_find_device (l, name + n + 1);
    if (d) {
      *ret_layer = l;
      return d;
    }
  }
  return NULL;
}

/* The reply carrying a blob as hex.  Blobs are wrapped, so not secret (the
 * kernel hands them to userspace too), but the daemon keeps them out of
 * its logs. */
static struct json_object *
blob_reply (uint64_t id, const uint8_t *blob, size_t size)
{
  char hex[2 * IBC_HWDEV_BLOB_MAX + 1];
  struct json_object *reply = ibc_proto_reply_ok (id);

  sodium_bin2hex (hex, sizeof hex, blob, size);
  json_object_object_add (reply, "blob", json_object_new_string (hex));
  json_object_object_add (reply, "size",
                          json_object_new_int64 ((int64_t) size));
  return reply;
}

struct json_object *
ibc_agent_op_wrapped (uint64_t id, const char *op, const struct ibc_frame *f)
{
  uint8_t in[IBC_HWDEV_BLOB_MAX], out[IBC_HWDEV_BLOB_MAX];
  const struct ibc_layer *layer = NULL;
  const struct ibc_device *d;
  struct ibc_hwdev *hw;
  struct json_object *reply;
  const char *name, *hex;
  size_t in_size = 0, out_size = 0;
  int r;

  if (strcmp (op, "key_import") != 0 && strcmp (op, "key_generate") != 0
      && strcmp (op, "key_prepare") != 0)
    return NULL;
  if (ibc_proto_get_string (f->hdr, "device", &name) < 0)
    return ibc_proto_reply_error (id, EINVAL, "missing device");
  d = find_lower_device (name, &layer);
  if (d == NULL)
    return ibc_proto_reply_error (id, ENODEV, "no device '%s'", name);
  r = ibc_hwdev_for_device (layer, d, &hw);
  if (r < 0)
    return ibc_proto_reply_error (id, -r,
                                  "device '%s' does not support "
                                  "hardware-wrapped keys",
                                  name);
  if (strcmp (op, "key_import") == 0) {
    if (f->secret == NULL)
      return ibc_proto_reply_error (id, EINVAL, "key_import needs the key");
    r = ibc_hwdev_import_key (hw, f->secret, f->secret_len, out, &out_size);
  } else if (strcmp (op, "key_generate") == 0) {
    r = ibc_hwdev_generate_key (hw, out, &out_size);
  } else {
    if (ibc_proto_get_string (f->hdr, "blob", &hex) < 0
        || sodium_hex2bin (in, sizeof in, hex, strlen (hex), NULL, &in_size,
                           NULL)
               != 0)
      return ibc_proto_reply_error (id, EINVAL,
                                    "blob must be at most %d bytes in hex",
                                    IBC_HWDEV_BLOB_MAX);
    r = ibc_hwdev_prepare_key (hw, in, in_size, out, &out_size);
  }
  /* The hardware's EBADMSG travels as EKEYREJECTED: on the wire EBADMSG
   * means "malformed message" (ibc_proto_reply_result), and clients would
   * take the reply for a broken one. */
  if (r == -EBADMSG)
    reply = ibc_proto_reply_error (id, EKEYREJECTED,
                                   "device '%s': invalid long-term key blob "
                                   "(EBADMSG)",
                                   name);
  else if (r < 0)
    reply = ibc_proto_reply_error (id, -r, "device '%s': %s", name,
                                   strerror (-r));
  else
    reply = blob_reply (id, out, out_size);
  sodium_memzero (out, sizeof out);
  sodium_memzero (in, sizeof in);
  return reply;
}
