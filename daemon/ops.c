/* ibcryptd's CLI operations: dispatch table, member helpers, status. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ibcrypt/mode.h"
#include "ibcrypt/registry.h"
#include "ibcryptd.h"

#ifndef IBCD_VERSION
#define IBCD_VERSION "unknown"
#endif

pthread_mutex_t ibcd_admin_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- member helpers ----------------------------------------------------- */

int
op_fail (struct ibcd_op_ctx *ctx, int errnum, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (ctx->msg, sizeof ctx->msg, fmt, ap);
  va_end (ap);
  return -errnum;
}

int
op_string (struct ibcd_op_ctx *ctx, const char *key, bool required,
           const char **ret)
{
  int r = ibc_proto_get_string (ctx->req, key, ret);

  if (r == -ENOENT && !required)
    return r;
  if (r == -ENOENT)
    return op_fail (ctx, EINVAL, "missing member '%s'", key);
  if (r < 0)
    return op_fail (ctx, EINVAL, "member '%s' must be a string", key);
  return 0;
}

int
op_bool (struct ibcd_op_ctx *ctx, const char *key, bool *ret)
{
  int r = ibc_proto_get_bool (ctx->req, key, ret);

  if (r == -ENOENT) {
    *ret = false;
    return 0;
  }
  if (r < 0)
    return op_fail (ctx, EINVAL, "member '%s' must be true or false", key);
  return 0;
}

int
op_name (struct ibcd_op_ctx *ctx, const char *key, const char **ret)
{
  int r = op_string (ctx, key, true, ret);

  if (r < 0)
    return r;
  if (!ibc_device_name_valid (*ret))
    return op_fail (ctx, EINVAL,
                    "member '%s': a name is 1-64 characters "
                    "[A-Za-z0-9._-]",
                    key);
  return 0;
}

int
op_table_text (struct ibcd_op_ctx *ctx, const char **ret)
{
  size_t lines = 1;
  int r = op_string (ctx, "table", true, ret);

  if (r < 0)
    return r;
  for (const char *p = *ret; *p; p++)
    lines += *p == '\n';
  if (lines > IBCD_MAX_TABLE_LINES + 1)
    return op_fail (ctx, EINVAL, "table has more than %d lines",
                    IBCD_MAX_TABLE_LINES);
  return 0;
}

int
op_agent_result (struct ibcd_op_ctx *ctx, const char *instance, int r,
                 struct json_object *reply)
{
  const char *message = NULL;

  if (r == -ENOTCONN)
    return op_fail (ctx, ENOTCONN, "instance '%s' is not connected", instance);
  if (r == -ETIMEDOUT)
    return op_fail (ctx, ETIMEDOUT,
                    "instance '%s' did not answer within "
                    "%d ms",
                    instance, ibcd_config.agent_timeout_ms);
  if (r < 0)
    return op_fail (ctx, -r, "instance '%s': %s", instance, strerror (-r));
  r = ibc_proto_reply_result (reply, &message);
  /* The agent's message as it is: CONTROL.md pins some of them (the
   * capability rule of table_load). */
  if (r < 0)
    return op_fail (ctx, -r, "%s",
                    message && *message ? message : strerror (-r));
  return 0;
}

void
op_fanout (struct ibcd_conn **conns, size_t n, struct json_object *req,
           const void *secret, size_t len, int timeout_ms,
           struct agent_result *results)
{
  int64_t deadline = ibcd_now_ms () + timeout_ms;
  struct ibcd_pending **p = calloc (n + 1, sizeof *p);

  /* All requests first, then all waits: agents work in parallel. */
  for (size_t i = 0; i < n; i++) {
    results[i].conn = conns[i];
    results[i].reply = NULL;
    results[i].r
        = p ? conn_request_start (conns[i], req, secret, len, &p[i]) : -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    if (results[i].r == 0)
      results[i].r = conn_request_wait (p[i], deadline, &results[i].reply);
    if (results[i].r == 0)
      results[i].r = ibc_proto_reply_result (results[i].reply, NULL);
  }
  free (p);
}

void
op_fanout_free (struct agent_result *results, size_t n)
{
  for (size_t i = 0; i < n; i++)
    json_object_put (results[i].reply);
}

/* ---- key objects and status --------------------------------------------- */

struct json_object *
key_object (const char *name, struct ibc_key *key, struct json_object *snapshot)
{
  const struct ibc_crypto_config *cfg = ibc_key_config (key);
  struct json_object *o = json_object_new_object ();
  struct json_object *bindings = json_object_new_array ();
  struct json_object *holders = json_object_new_array ();

  json_object_object_add (o, "name", json_object_new_string (name));
  json_object_object_add (
      o, "cipher",
      json_object_new_string (ibc_mode_info (cfg->mode)->cipher_name));
  json_object_object_add (
      o, "key_type",
      json_object_new_string (ibc_key_type_name (cfg->key_type)));
  json_object_object_add (o, "key_id",
                          json_object_new_string (ibc_key_id (key)));
  json_object_object_add (o, "size",
                          json_object_new_uint64 (ibc_key_size (key)));
  state_bindings_of_key (name, bindings);
  json_object_object_add (o, "bindings", bindings);
  /* Instances holding this very key: same name and key id. */
  for (size_t i = 0; snapshot && i < json_object_array_length (snapshot); i++) {
    struct json_object *in = json_object_array_get_idx (snapshot, i), *keys;
    const char *iname, *kn, *kid;

    if (ibc_proto_get_string (in, "name", &iname) < 0
        || ibc_proto_get_array (in, "keys", &keys) < 0)
      continue;
    for (size_t j = 0; j < json_object_array_length (keys); j++) {
      struct json_object *k = json_object_array_get_idx (keys, j);
      if (ibc_proto_get_string (k, "name", &kn) == 0 && strcmp (kn, name) == 0
          && ibc_proto_get_string (k, "key_id", &kid) == 0
          && strcmp (kid, ibc_key_id (key)) == 0)
        json_object_array_add (holders, json_object_new_string (iname));
    }
  }
  json_object_object_add (o, "instances", holders);
  return o;
}

static int
op_ping (struct ibcd_op_ctx *ctx)
{
  (void) ctx;
  return 0;
}

static int
op_status (struct ibcd_op_ctx *ctx)
{
  struct json_object *daemon = json_object_new_object ();
  struct json_object *insts = json_object_new_array (), *snapshot;
  struct json_object *keys = json_object_new_array ();
  struct keys_snapshot ks;

  agents_refresh (NULL);
  snapshot = agents_snapshot ();
  json_object_object_add (daemon, "pid", json_object_new_int64 (getpid ()));
  json_object_object_add (daemon, "version",
                          json_object_new_string (IBCD_VERSION));
  json_object_object_add (daemon, "state_dir",
                          json_object_new_string (ibcd_config.state_dir));
  json_object_object_add (ctx->reply, "daemon", daemon);

  for (size_t i = 0; i < json_object_array_length (snapshot); i++) {
    struct json_object *in = json_object_array_get_idx (snapshot, i);
    struct json_object *o = json_object_new_object (), *v;

    static const char *const members[]
        = { "name", "pid", "connected", "layers", NULL };
    for (size_t m = 0; members[m]; m++)
      if (json_object_object_get_ex (in, members[m], &v))
        json_object_object_add (o, members[m], json_object_get (v));
    json_object_array_add (insts, o);
  }
  json_object_object_add (ctx->reply, "instances", insts);

  if (keys_snapshot (&ks) == 0) {
    for (size_t i = 0; i < ks.n; i++)
      json_object_array_add (keys,
                             key_object (ks.names[i], ks.keys[i], snapshot));
    keys_snapshot_free (&ks);
  }
  json_object_object_add (ctx->reply, "keys", keys);
  json_object_put (snapshot);
  return 0;
}

/* ---- dispatch ----------------------------------------------------------- */

#define OP_SECRET 0x1 /* the op takes a secret part */
#define OP_ADMIN 0x2  /* changes keys, maps or tables: under the admin lock */

static const struct op {
  const char *name;
  int (*fn) (struct ibcd_op_ctx *ctx);
  unsigned flags;
} ops[] = {
  { "ping", op_ping, 0 },
  { "status", op_status, 0 },
  { "key_add", op_key_add, OP_SECRET | OP_ADMIN },
  { "key_list", op_key_list, 0 },
  { "key_show", op_key_show, 0 },
  { "key_evict", op_key_evict, OP_ADMIN },
  { "key_remove", op_key_remove, OP_ADMIN },
  { "key_import", op_key_import, OP_SECRET },
  { "key_generate", op_key_generate, 0 },
  { "key_prepare", op_key_prepare, 0 },
  { "device_list", op_device_list, 0 },
  { "device_show", op_device_show, 0 },
  { "device_caps", op_device_caps, 0 },
  { "device_reset", op_device_reset, OP_ADMIN },
  { "table_show", op_table_show, 0 },
  { "table_load", op_table_load, OP_ADMIN },
  { "table_resume", op_table_resume, OP_ADMIN },
  { "map", op_map, OP_ADMIN },
  { "stats", op_stats, 0 },
};

void
ops_dispatch (struct ibcd_conn *c, uint64_t id, const char *op,
              struct ibc_frame *frame)
{
  struct ibcd_op_ctx ctx = {
    .conn = c,
    .req = frame->hdr,
    .secret = frame->secret,
    .secret_len = frame->secret_len,
    .reply = json_object_new_object (),
  };
  const struct op *o = NULL;
  struct json_object *reply;
  int r;

  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (strcmp (ops[i].name, op) == 0)
      o = &ops[i];
  if (ctx.reply == NULL)
    r = op_fail (&ctx, ENOMEM, "out of memory");
  else if (o == NULL)
    r = op_fail (&ctx, ENOSYS, "unknown op '%s'", op);
  else if (frame->secret_len > 0 && !(o->flags & OP_SECRET))
    r = op_fail (&ctx, EINVAL, "op '%s' takes no secret", op);
  else {
    if (o->flags & OP_ADMIN)
      pthread_mutex_lock (&ibcd_admin_lock);
    r = o->fn (&ctx);
    if (o->flags & OP_ADMIN)
      pthread_mutex_unlock (&ibcd_admin_lock);
  }

  if (r == 0)
    reply = ibc_proto_reply_ok (id);
  else
    reply = ibc_proto_reply_error (id, r, "%s",
                                   ctx.msg[0] ? ctx.msg : strerror (-r));
  if (reply && ctx.reply) {
    /* Result members; beside an error they explain it (e.g. key_evict's
     * busy devices). */
    json_object_object_foreach (ctx.reply, key, val)
    {
      if (strcmp (key, "id") && strcmp (key, "ok") && strcmp (key, "error"))
        json_object_object_add (reply, key, json_object_get (val));
    }
  }
  if (r < 0)
    log_debug ("pid %ld: %s: %s: %s", (long) c->pid, op,
               ibc_errno_name (r) ? ibc_errno_name (r) : "error", ctx.msg);
  else
    log_debug ("pid %ld: %s: ok", (long) c->pid, op);
  r = reply ? conn_send (c, reply, NULL, 0) : -ENOMEM;
  if (r == -EMSGSIZE) {
    /* Over the 1 MiB header limit (a huge status): say so instead. */
    json_object_put (reply);
    reply = ibc_proto_reply_error (id, EMSGSIZE, "reply over %u bytes",
                                   IBC_PROTO_MAX_HEADER);
    r = reply ? conn_send (c, reply, NULL, 0) : -ENOMEM;
  }
  if (r < 0)
    log_debug ("pid %ld: %s: reply not sent: %s", (long) c->pid, op,
               strerror (-r));
  json_object_put (reply);
  json_object_put (ctx.reply);
}
