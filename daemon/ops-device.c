/* ibcryptd's device ops: devices, capabilities, tables, maps and stats. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ibcrypt/caps.h"
#include "ibcrypt/mode.h"
#include "ibcrypt/registry.h"
#include "ibcrypt/table.h"
#include "ibcryptd.h"

/* The device named by member "device": *ret_devices holds every device of
 * the registry (release it), *ret_dev points into it.  With refresh, its
 * instance is asked for fresh counters first. */
static int
lookup (struct ibcd_op_ctx *ctx, bool refresh, const char **ret_name,
        struct json_object **ret_devices, struct json_object **ret_dev)
{
  char instance[IBCD_NAME_MAX + 1];
  struct json_object *snapshot, *devices, *dev;
  const char *name;
  int r = op_string (ctx, "device", true, &name);

  if (r < 0)
    return r;
  if (!devices_split (name, instance))
    return op_fail (ctx, ENODEV, "no device '%s'", name);
  if (refresh)
    agents_refresh (instance);
  snapshot = agents_snapshot ();
  devices = devices_all (snapshot);
  json_object_put (snapshot);
  dev = devices_find (devices, name);
  if (dev == NULL) {
    json_object_put (devices);
    return op_fail (ctx, ENODEV, "no device '%s'", name);
  }
  *ret_name = name;
  *ret_devices = devices;
  *ret_dev = dev;
  return 0;
}

static bool
kind_is (struct json_object *dev, const char *kind)
{
  const char *k;

  return ibc_proto_get_string (dev, "kind", &k) == 0 && strcmp (k, kind) == 0;
}

/* Call op on the agent of device name with {device, table?}; the reply in
 * *ret_reply on success. */
static int
device_call (struct ibcd_op_ctx *ctx, const char *op, const char *name,
             const char *table, struct json_object **ret_reply)
{
  char instance[IBCD_NAME_MAX + 1];
  struct json_object *req, *reply = NULL;
  struct ibcd_conn *c;
  int r;

  devices_split (name, instance);
  c = agents_conn (instance);
  if (c == NULL)
    return op_fail (ctx, ENOTCONN, "instance '%s' is not connected", instance);
  req = ibc_proto_request_new (op, 1);
  if (req == NULL) {
    conn_unref (c);
    return op_fail (ctx, ENOMEM, "out of memory");
  }
  json_object_object_add (req, "device", json_object_new_string (name));
  if (table)
    json_object_object_add (req, "table", json_object_new_string (table));
  r = conn_call (c, req, NULL, 0, ibcd_config.agent_timeout_ms, &reply);
  json_object_put (req);
  conn_unref (c);
  r = op_agent_result (ctx, instance, r, reply);
  if (r == 0)
    *ret_reply = reply;
  else
    json_object_put (reply);
  return r;
}

/* Copy reply[member] into the op's reply (if present). */
static void
pass_member (struct ibcd_op_ctx *ctx, struct json_object *reply,
             const char *member)
{
  struct json_object *v;

  if (reply && json_object_object_get_ex (reply, member, &v))
    json_object_object_add (ctx->reply, member, json_object_get (v));
}

int
op_device_list (struct ibcd_op_ctx *ctx)
{
  struct json_object *snapshot;

  agents_refresh (NULL);
  snapshot = agents_snapshot ();
  json_object_object_add (ctx->reply, "devices", devices_all (snapshot));
  json_object_put (snapshot);
  return 0;
}

int
op_device_show (struct ibcd_op_ctx *ctx)
{
  struct json_object *devices, *dev;
  const char *name;
  int r = lookup (ctx, true, &name, &devices, &dev);

  if (r < 0)
    return r;
  json_object_object_add (ctx->reply, "device", json_object_get (dev));
  json_object_put (devices);
  return 0;
}

/* The capabilities of a device's profile object (NULL: none). */
static void
caps_of (struct json_object *profile, struct ibc_caps *caps,
         struct json_object *out)
{
  struct json_object *types, *v;
  const char *modes = "";
  uint64_t u = 0;

  ibc_caps_init_none (caps);
  if (profile && ibc_proto_get_string (profile, "modes", &modes) == 0
      && ibc_caps_parse_modes (modes, caps) < 0)
    ibc_caps_init_none (caps);
  if (profile && ibc_proto_get_u64 (profile, "max_dun_bytes", &u) == 0
      && u <= IBC_MAX_IV_SIZE)
    caps->max_dun_bytes = (uint32_t) u;
  types = json_object_new_array ();
  if (profile && ibc_proto_get_array (profile, "key_types", &v) == 0)
    for (size_t i = 0; i < json_object_array_length (v); i++) {
      enum ibc_key_type t;
      const char *s = json_object_get_string (json_object_array_get_idx (v, i));
      if (s && ibc_key_type_from_string (s, &t) == 0) {
        caps->key_types |= t;
        json_object_array_add (types, json_object_new_string (s));
      }
    }
  u = 0;
  if (profile)
    ibc_proto_get_u64 (profile, "num_keyslots", &u);
  json_object_object_add (out, "modes", json_object_new_string (modes));
  json_object_object_add (out, "max_dun_bytes",
                          json_object_new_uint64 (caps->max_dun_bytes));
  json_object_object_add (out, "key_types", types);
  json_object_object_add (out, "num_keyslots", json_object_new_uint64 (u));
}

int
op_device_caps (struct ibcd_op_ctx *ctx)
{
  struct json_object *devices, *dev, *profile = NULL, *check, *out;
  struct ibc_crypto_config cfg = { .key_type = IBC_KEY_TYPE_RAW };
  const char *name, *cipher, *type = NULL;
  uint64_t dus;
  int dun_bytes = 8;
  struct ibc_caps caps;
  int r = ibc_proto_get_object (ctx->req, "check", &check);
  bool checking = r == 0;

  if (r == -EBADMSG)
    return op_fail (ctx, EINVAL, "member 'check' must be an object");
  if (r == 0) {
    if (ibc_proto_get_string (check, "cipher", &cipher) < 0
        || ibc_mode_from_string (cipher, &cfg.mode) < 0)
      return op_fail (ctx, EINVAL, "check.cipher: not a cipher");
    if (ibc_proto_get_u64 (check, "data_unit_size", &dus) < 0
        || !ibc_is_power_of_2 (dus) || dus < 512 || dus > 65536)
      return op_fail (ctx, EINVAL,
                      "check.data_unit_size: a power of two "
                      "in 512..65536");
    cfg.data_unit_size = (uint32_t) dus;
    r = ibc_proto_get_int (check, "dun_bytes", &dun_bytes);
    if ((r < 0 && r != -ENOENT) || dun_bytes < 1 || dun_bytes > IBC_MAX_IV_SIZE)
      return op_fail (ctx, EINVAL, "check.dun_bytes: 1..%d", IBC_MAX_IV_SIZE);
    cfg.dun_bytes = (uint32_t) dun_bytes;
    r = ibc_proto_get_string (check, "key_type", &type);
    if ((r < 0 && r != -ENOENT)
        || (type && ibc_key_type_from_string (type, &cfg.key_type) < 0))
      return op_fail (ctx, EINVAL, "check.key_type: raw or hw-wrapped");
  }

  /* Fresh: a resumed passthrough table changes them. */
  r = lookup (ctx, true, &name, &devices, &dev);
  if (r < 0)
    return r;
  json_object_object_get_ex (dev, "profile", &profile);
  out = json_object_new_object ();
  caps_of (profile, &caps, out);
  json_object_object_add (ctx->reply, "caps", out);
  if (checking)
    json_object_object_add (
        ctx->reply, "supported",
        json_object_new_boolean (ibc_caps_supports (&caps, &cfg)));
  json_object_put (devices);
  return 0;
}

int
op_device_reset (struct ibcd_op_ctx *ctx)
{
  struct json_object *devices, *dev, *reply = NULL;
  const char *name;
  int r = lookup (ctx, false, &name, &devices, &dev);

  if (r < 0)
    return r;
  if (!kind_is (dev, "keyslot"))
    r = op_fail (ctx, EOPNOTSUPP, "'%s' is not a keyslot device", name);
  else
    r = device_call (ctx, "device_reset", name, NULL, &reply);
  if (r == 0)
    log_info ("device '%s' reset", name);
  json_object_put (reply);
  json_object_put (devices);
  return r;
}

/* The passthrough device named by member "device". */
static int
passthrough (struct ibcd_op_ctx *ctx, const char **ret_name)
{
  struct json_object *devices, *dev;
  int r = lookup (ctx, false, ret_name, &devices, &dev);

  if (r < 0)
    return r;
  if (!kind_is (dev, "passthrough"))
    r = op_fail (ctx, ENODEV, "'%s' is not a passthrough device", *ret_name);
  json_object_put (devices);
  return r;
}

static struct json_object *
string_or_null (char *s)
{
  struct json_object *o = s ? json_object_new_string (s) : NULL;

  free (s);
  return o;
}

/* The agent's view of a passthrough device's tables ("live", "inactive"
 * members, owned by the caller), or NULL if it cannot tell (disconnected,
 * or an agent without table_show). */
static struct json_object *
agent_tables (struct ibcd_op_ctx *ctx, const char *name)
{
  struct json_object *reply = NULL;
  char saved[sizeof ctx->msg];

  memcpy (saved, ctx->msg, sizeof saved);
  if (device_call (ctx, "table_show", name, NULL, &reply) < 0) {
    memcpy (ctx->msg, saved, sizeof saved);
    return NULL;
  }
  return reply;
}

int
op_table_show (struct ibcd_op_ctx *ctx)
{
  struct json_object *tables, *v;
  const char *name;
  int r = passthrough (ctx, &name);

  if (r < 0)
    return r;
  /* The agent knows best (a table may have been loaded from a file);
   * else what the daemon persisted and loaded. */
  tables = agent_tables (ctx, name);
  if (tables && json_object_object_get_ex (tables, "live", &v))
    json_object_object_add (ctx->reply, "live", json_object_get (v));
  else
    json_object_object_add (ctx->reply, "live",
                            string_or_null (state_get_table (name)));
  if (tables && json_object_object_get_ex (tables, "inactive", &v))
    json_object_object_add (ctx->reply, "inactive", json_object_get (v));
  else
    json_object_object_add (ctx->reply, "inactive",
                            string_or_null (agents_get_inactive (name)));
  json_object_put (tables);
  return 0;
}

int
op_table_load (struct ibcd_op_ctx *ctx)
{
  char err[IBC_TABLE_ERR_MAX];
  struct ibc_dm_table *t = NULL;
  struct json_object *reply = NULL;
  const char *name, *text;
  int r;

  if ((r = passthrough (ctx, &name)) < 0
      || (r = op_table_text (ctx, &text)) < 0)
    return r;
  r = ibc_dm_table_parse (text, 0, &t, err, sizeof err);
  ibc_dm_table_free (t);
  if (r < 0)
    return op_fail (ctx, -r, "table: %s", r == -ENOMEM ? "out of memory" : err);
  /* The agent applies the capability rule (only expand) and says why. */
  r = device_call (ctx, "table_load", name, text, &reply);
  if (r < 0)
    return r;
  agents_set_inactive (name, text);
  pass_member (ctx, reply, "caps");
  json_object_put (reply);
  log_info ("device '%s': table loaded (inactive)", name);
  return 0;
}

int
op_table_resume (struct ibcd_op_ctx *ctx)
{
  struct json_object *reply = NULL, *tables;
  const char *name, *given = NULL;
  char *text;
  int r;

  if ((r = passthrough (ctx, &name)) < 0)
    return r;
  text = agents_get_inactive (name);
  r = device_call (ctx, "table_resume", name, text, &reply);
  if (r < 0) {
    free (text);
    return r;
  }
  /* Persist the new live table: as the agent now shows it, else the one
   * we loaded. */
  tables = agent_tables (ctx, name);
  if (tables && ibc_proto_get_string (tables, "live", &given) == 0) {
    free (text);
    text = strdup (given);
  }
  json_object_put (tables);
  agents_set_inactive (name, NULL);
  if (text && (r = state_set_table (name, text)) < 0)
    r = op_fail (ctx, -r, "table resumed, but saving the state failed: %s",
                 strerror (-r));
  pass_member (ctx, reply, "caps");
  json_object_put (reply);
  free (text);
  if (r == 0)
    log_info ("device '%s': table resumed", name);
  return r;
}

/* Every key a crypt table names must be the daemon's, of the right kind. */
static int
check_map_keys (struct ibcd_op_ctx *ctx, const struct ibc_crypt_table *t)
{
  for (size_t i = 0; i < ibc_crypt_table_count (t); i++) {
    const struct ibc_binding *b = ibc_crypt_table_binding (t, i);
    const struct ibc_crypto_config *kc;
    struct ibc_key *key;
    uint64_t sector = b->start / 512;

    if (b->kind != IBC_BINDING_CRYPT)
      continue;
    if (b->key_ref != IBC_KEY_REF_NAME)
      return op_fail (ctx, EINVAL,
                      "range at sector %llu: key files (@PATH) "
                      "are for standalone stacks; add the key to the daemon "
                      "and use :NAME",
                      (unsigned long long) sector);
    key = keys_get (b->key);
    if (key == NULL)
      return op_fail (ctx, EINVAL,
                      "range at sector %llu: no key '%s' (add "
                      "it first)",
                      (unsigned long long) sector, b->key);
    kc = ibc_key_config (key);
    if (kc->mode != b->config.mode || kc->key_type != b->config.key_type) {
      int r = op_fail (ctx, EINVAL,
                       "range at sector %llu: key '%s' is a %s "
                       "%s key, the range wants %s %s",
                       (unsigned long long) sector, b->key,
                       ibc_key_type_name (kc->key_type),
                       ibc_mode_info (kc->mode)->cipher_name,
                       ibc_key_type_name (b->config.key_type),
                       ibc_mode_info (b->config.mode)->cipher_name);
      ibc_key_unref (key);
      return r;
    }
    ibc_key_unref (key);
  }
  return 0;
}

int
op_map (struct ibcd_op_ctx *ctx)
{
  char err[IBC_TABLE_ERR_MAX];
  struct ibc_crypt_table *t = NULL;
  struct json_object *req, *reply = NULL;
  struct ibcd_conn *c;
  const char *instance, *text;
  char *old;
  int r;

  if ((r = op_string (ctx, "device", true, &instance)) < 0)
    return r;
  if (!ibc_device_name_valid (instance))
    return op_fail (ctx, ENODEV,
                    "'%s' is not an instance (map sets the "
                    "crypt table of INSTANCE, the top device)",
                    instance);
  old = state_get_map (instance);
  r = old == NULL && !agents_known (instance);
  free (old);
  if (r)
    return op_fail (ctx, ENODEV, "no instance '%s'", instance);
  if ((r = op_table_text (ctx, &text)) < 0)
    return r;
  r = ibc_crypt_table_parse (text, 0, &t, err, sizeof err);
  if (r < 0)
    return op_fail (ctx, -r, "table: %s", r == -ENOMEM ? "out of memory" : err);
  r = check_map_keys (ctx, t);
  ibc_crypt_table_free (t);
  if (r < 0)
    return r;

  /* The agent checks it against the device (size, EOPNOTSUPP without
   * fallback) before we persist it. */
  c = agents_conn (instance);
  if (c) {
    req = ibc_proto_request_new ("map", 1);
    if (req == NULL) {
      conn_unref (c);
      return op_fail (ctx, ENOMEM, "out of memory");
    }
    json_object_object_add (req, "table", json_object_new_string (text));
    r = conn_call (c, req, NULL, 0, ibcd_config.agent_timeout_ms, &reply);
    json_object_put (req);
    conn_unref (c);
    r = op_agent_result (ctx, instance, r, reply);
    json_object_put (reply);
    if (r < 0)
      return r;
    agents_set_table (instance, text);
  }
  r = state_set_map (instance, text);
  if (r < 0)
    return op_fail (ctx, -r, "%ssaving the state failed: %s",
                    c ? "table applied, but " : "", strerror (-r));
  json_object_object_add (ctx->reply, "pushed",
                          json_object_new_boolean (c != NULL));
  log_info ("instance '%s': crypt table mapped%s", instance,
            c ? "" : " (pushed when it connects)");
  return 0;
}

int
op_stats (struct ibcd_op_ctx *ctx)
{
  struct json_object *devices, *dev = NULL, *out = json_object_new_array ();
  const char *name;
  int r;

  if (json_object_object_get_ex (ctx->req, "device", &dev) && dev) {
    r = lookup (ctx, true, &name, &devices, &dev);
    if (r < 0) {
      json_object_put (out);
      return r;
    }
  } else {
    struct json_object *snapshot;
    agents_refresh (NULL);
    snapshot = agents_snapshot ();
    devices = devices_all (snapshot);
    json_object_put (snapshot);
    dev = NULL;
  }
  for (size_t i = 0; i < json_object_array_length (devices); i++) {
    struct json_object *d = json_object_array_get_idx (devices, i);
    struct json_object *o, *v, *profile = NULL;

    if (dev && d != dev)
      continue;
    o = json_object_new_object ();
    json_object_object_add (
        o, "name", json_object_get (json_object_object_get (d, "name")));
    json_object_object_add (
        o, "counters",
        json_object_get (json_object_object_get (d, "counters")));
    json_object_object_get_ex (d, "profile", &profile);
    json_object_object_add (
        o, "stats",
        profile && json_object_object_get_ex (profile, "stats", &v)
            ? json_object_get (v)
            : NULL);
    json_object_array_add (out, o);
  }
  json_object_object_add (ctx->reply, "devices", out);
  json_object_put (devices);
  return 0;
}
