/* ibcryptd's pushes to a newly registered agent: every key, then its map. */
#include <errno.h>
#include <string.h>

#include "ibcrypt/mode.h"
#include "ibcryptd.h"

/* Push one key; 0 or -errno (logged by the caller). */
static int
push_key (struct ibcd_conn *c, const char *name, struct ibc_key *key)
{
  const struct ibc_crypto_config *cfg = ibc_key_config (key);
  struct json_object *req = ibc_proto_request_new ("key_add", 1), *reply = NULL;
  const char *id = NULL, *message = NULL;
  int r;

  if (req == NULL)
    return -ENOMEM;
  json_object_object_add (req, "name", json_object_new_string (name));
  json_object_object_add (
      req, "cipher",
      json_object_new_string (ibc_mode_info (cfg->mode)->cipher_name));
  json_object_object_add (
      req, "key_type",
      json_object_new_string (ibc_key_type_name (cfg->key_type)));
  r = conn_call (c, req, ibc_key_bytes (key), ibc_key_size (key),
                 ibcd_config.agent_timeout_ms, &reply);
  json_object_put (req);
  if (r == 0)
    r = ibc_proto_reply_result (reply, &message);
  if (r == 0) {
    ibc_proto_get_string (reply, "key_id", &id);
    agents_key_held (c->instance, name, id ? id : ibc_key_id (key));
  } else
    log_warn ("instance '%s': pushing key '%s': %s%s%s", c->instance, name,
              strerror (-r), message ? ": " : "", message ? message : "");
  json_object_put (reply);
  return r;
}

static void *
sync_thread (void *arg)
{
  struct ibcd_conn *c = arg;
  struct keys_snapshot ks = { 0 };
  struct json_object *req, *reply = NULL;
  bool has_table = false;
  char *map = NULL;
  size_t pushed = 0;
  const char *message = NULL;
  int r;

  pthread_mutex_lock (&ibcd_admin_lock);
  if (keys_snapshot (&ks) == 0)
    for (size_t i = 0; i < ks.n; i++) {
      r = push_key (c, ks.names[i], ks.keys[i]);
      /* Gone, or stuck: do not hold the admin lock for 1024 timeouts. */
      if (r == -ENOTCONN || r == -ETIMEDOUT)
        goto out;
      pushed += r == 0;
    }

  has_table = agents_has_table (c);
  map = has_table ? NULL : state_get_map (c->instance);
  if (map) {
    req = ibc_proto_request_new ("map", 1);
    if (req) {
      json_object_object_add (req, "table", json_object_new_string (map));
      r = conn_call (c, req, NULL, 0, ibcd_config.agent_timeout_ms, &reply);
      json_object_put (req);
      if (r == 0)
        r = ibc_proto_reply_result (reply, &message);
      if (r < 0)
        log_warn ("instance '%s': pushing its crypt table: %s%s%s", c->instance,
                  strerror (-r), message ? ": " : "", message ? message : "");
      else {
        agents_set_table (c->instance, map);
        log_info ("instance '%s': crypt table pushed", c->instance);
      }
      json_object_put (reply);
    }
  }
  log_info ("instance '%s': %zu of %zu keys pushed", c->instance, pushed, ks.n);
out:
  pthread_mutex_unlock (&ibcd_admin_lock);
  keys_snapshot_free (&ks);
  free (map);
  conn_unref (c);
  return NULL;
}

void
agents_sync_start (struct ibcd_conn *c)
{
  /* On its own thread: the pushes wait for replies that the connection's
   * reader must be free to route (PROTOCOL.md 3, "Ordering"). */
  if (ibcd_thread_spawn (sync_thread, conn_ref (c)) < 0) {
    log_err ("instance '%s': cannot start pushing keys", c->instance);
    conn_unref (c);
  }
}
