/* ibcryptd's hardware-wrapped key ops: key_import, key_generate, key_prepare. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ibcrypt/hwdev.h"
#include "ibcrypt/mode.h"
#include "ibcryptd.h"

/* Forward op to the agent of member "device" (a keyslot or passthrough
 * device) with extra member blob and the secret, and pass the resulting
 * blob back.  The blobs are not logged. */
static int
forward (struct ibcd_op_ctx *ctx, const char *op, const char *blob_hex)
{
  char instance[IBCD_NAME_MAX + 1];
  struct json_object *snapshot, *devices, *dev, *req, *reply = NULL, *v;
  const char *name, *kind = "";
  struct ibcd_conn *c;
  int r = op_string (ctx, "device", true, &name);

  if (r < 0)
    return r;
  if (!devices_split (name, instance))
    return op_fail (ctx, ENODEV, "no device '%s'", name);
  snapshot = agents_snapshot ();
  devices = devices_all (snapshot);
  json_object_put (snapshot);
  dev = devices_find (devices, name);
  if (dev)
    ibc_proto_get_string (dev, "kind", &kind);
  r = dev == NULL ? op_fail (ctx, ENODEV, "no device '%s'", name)
      : strcmp (kind, "keyslot") != 0 && strcmp (kind, "passthrough") != 0
          ? op_fail (ctx, EOPNOTSUPP,
                     "'%s' is not a keyslot or passthrough device (the "
                     "fallback never takes hardware-wrapped keys)",
                     name)
          : 0;
  json_object_put (devices);
  if (r < 0)
    return r;

  c = agents_conn (instance);
  if (c == NULL)
    return op_fail (ctx, ENOTCONN, "instance '%s' is not connected", instance);
  req = ibc_proto_request_new (op, 1);
  if (req == NULL) {
    conn_unref (c);
    return op_fail (ctx, ENOMEM, "out of memory");
  }
  json_object_object_add (req, "device", json_object_new_string (name));
  if (blob_hex)
    json_object_object_add (req, "blob", json_object_new_string (blob_hex));
  r = conn_call (c, req, ctx->secret, ctx->secret_len,
                 ibcd_config.agent_timeout_ms, &reply);
  json_object_put (req);
  conn_unref (c);
  r = op_agent_result (ctx, instance, r, reply);
  if (r == 0 && json_object_object_get_ex (reply, "blob", &v)
      && json_object_is_type (v, json_type_string)) {
    json_object_object_add (ctx->reply, "blob", json_object_get (v));
    json_object_object_add (
        ctx->reply, "size",
        json_object_new_int64 ((int64_t) json_object_get_string_len (v) / 2));
    log_info ("%s on device '%s': %d-byte blob", op, name,
              json_object_get_string_len (v) / 2);
  } else if (r == 0) {
    r = op_fail (ctx, EPROTO, "instance '%s' sent no blob", instance);
  }
  json_object_put (reply);
  return r;
}

int
op_key_import (struct ibcd_op_ctx *ctx)
{
  if (ctx->secret_len < 16 || ctx->secret_len > IBC_MAX_RAW_KEY_SIZE)
    return op_fail (ctx, EINVAL,
                    "a raw key to import has 16 to %d bytes (got %zu)",
                    IBC_MAX_RAW_KEY_SIZE, ctx->secret_len);
  return forward (ctx, "key_import", NULL);
}

int
op_key_generate (struct ibcd_op_ctx *ctx)
{
  return forward (ctx, "key_generate", NULL);
}

int
op_key_prepare (struct ibcd_op_ctx *ctx)
{
  const char *hex;
  size_t len;
  int r = op_string (ctx, "blob", true, &hex);

  if (r < 0)
    return r;
  len = strlen (hex);
  if (len == 0 || len % 2 != 0 || len > 2 * IBC_HWDEV_BLOB_MAX
      || strspn (hex, "0123456789abcdefABCDEF") != len)
    return op_fail (ctx, EINVAL, "member 'blob': 1 to %d bytes in hexadecimal",
                    IBC_HWDEV_BLOB_MAX);
  return forward (ctx, "key_prepare", hex);
}
