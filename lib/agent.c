/* The agent: the control-plane thread of an nbdkit process running ibcrypt. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agent-internal.h"
#include "ibcrypt/agent.h"
#include "ibcrypt/dm.h"
#include "ibcrypt/fallback.h"
#include "ibcrypt/hwdev.h"
#include "ibcrypt/proto.h"
#include "ibcrypt/registry.h"
#include "ibcrypt/status.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static struct {
  char socket_path[108]; /* sun_path */
  char instance[IBC_DEVICE_NAME_MAX + 1];
  bool configured;
  /* Why a mutex: start and stop come from several filters' callbacks
   * (after_fork, unload), possibly on different threads. */
  pthread_mutex_t lock;
  bool started;
  pthread_t thread;
  int wake[2]; /* stop pipe: the thread polls its read end */
  atomic_bool stop;
  uint64_t next_id;
} agent = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = { -1, -1 } };

int
ibc_agent_config (const char *key, const char *value, const char **ret_err)
{
  if (strcmp (key, "ibcrypt-socket") == 0) {
    if (value[0] != '/' || strlen (value) >= sizeof agent.socket_path) {
      *ret_err = "ibcrypt-socket must be an absolute path shorter than 108 "
                 "bytes";
      return -1;
    }
    strcpy (agent.socket_path, value);
    agent.configured = true;
    return 1;
  }
  if (strcmp (key, "ibcrypt-name") == 0) {
    if (!ibc_device_name_valid (value)) {
      *ret_err = "ibcrypt-name must be 1-64 characters of [A-Za-z0-9._-]";
      return -1;
    }
    strcpy (agent.instance, value);
    return 1;
  }
  return 0;
}

int
ibc_agent_configured (void)
{
  return agent.configured;
}

const char *
ibc_agent_instance (void)
{
  if (agent.instance[0] == '\0')
    snprintf (agent.instance, sizeof agent.instance, "nbdkit-%ld",
              (long) getpid ());
  return agent.instance;
}

/* ---- finding layers and devices ---- */

static struct ibc_layer *
find_layer (enum ibc_layer_kind kind)
{
  for (struct ibc_layer *l = ibc_registry_top (); l; l = ibc_layer_below (l))
    if (ibc_layer_kind (l) == kind)
      return l;
  return NULL;
}

static struct ibc_fallback *
find_fallback (void)
{
  struct ibc_layer *l = find_layer (IBC_LAYER_FALLBACK);

  return l && ibc_layer_num_devices (l) ? ibc_layer_device (l, 0)->opaque
                                        : NULL;
}

/* "INSTANCE" is the fallback's device, "INSTANCE/DEV" a device of a layer
 * below it. */
static const struct ibc_device *
find_device (const char *name, enum ibc_layer_kind *ret_kind)
{
  const char *inst = ibc_agent_instance ();
  size_t n = strlen (inst);

  if (strncmp (name, inst, n) != 0)
    return NULL;
  if (name[n] == '\0') {
    struct ibc_layer *l = find_layer (IBC_LAYER_FALLBACK);
    if (l == NULL || ibc_layer_num_devices (l) == 0)
      return NULL;
    *ret_kind = IBC_LAYER_FALLBACK;
    return ibc_layer_device (l, 0);
  }
  if (name[n] != '/')
    return NULL;
  for (struct ibc_layer *l = ibc_registry_top (); l; l = ibc_layer_below (l)) {
    const struct ibc_device *d;
    if (ibc_layer_kind (l) == IBC_LAYER_FALLBACK)
      continue;
    d = ibc_layer_find_device (l, name + n + 1);
    if (d) {
      *ret_kind = ibc_layer_kind (l);
      return d;
    }
  }
  return NULL;
}

/* ---- replies ---- */

static struct json_object *
caps_json (const struct ibc_caps *caps)
{
  struct json_object *o = json_object_new_object ();
  char modes[2048];

  if (ibc_caps_format_modes (caps, modes, sizeof modes) < 0)
    modes[0] = '\0';
  json_object_object_add (o, "modes", json_object_new_string (modes));
  json_object_object_add (o, "max_dun_bytes",
                          json_object_new_int (caps->max_dun_bytes));
  struct json_object *types = json_object_new_array ();
  if (caps->key_types & IBC_KEY_TYPE_RAW)
    json_object_array_add (types, json_object_new_string ("raw"));
  if (caps->key_types & IBC_KEY_TYPE_HW_WRAPPED)
    json_object_array_add (types, json_object_new_string ("hw-wrapped"));
  json_object_object_add (o, "key_types", types);
  return o;
}

static struct json_object *
no_fallback (uint64_t id)
{
  return ibc_proto_reply_error (id, ENODEV,
                                "instance '%s' has no ibcrypt-fallback layer",
                                ibc_agent_instance ());
}

/* ---- keys ---- */

struct id_match {
  const char *name;
  char key_id[IBC_KEY_ID_STRLEN + 1];
};

static void
match_name (const char *name, const struct ibc_key *key, void *opaque)
{
  struct id_match *m = opaque;

  if (strcmp (name, m->name) == 0)
    strcpy (m->key_id, ibc_key_id (key));
}

static struct json_object *
op_key_add (uint64_t id, struct json_object *hdr, const struct ibc_frame *f)
{
  struct ibc_fallback *fb = find_fallback ();
  const char *name, *cipher, *type = "raw";
  struct ibc_crypto_config cfg = { 0 };
  struct ibc_key *key;
  struct json_object *reply;
  char err[256] = "";
  int r;

  if (fb == NULL)
    return no_fallback (id);
  if (ibc_proto_get_string (hdr, "name", &name) < 0
      || ibc_proto_get_string (hdr, "cipher", &cipher) < 0
      || (json_object_object_get_ex (hdr, "key_type", NULL)
          && ibc_proto_get_string (hdr, "key_type", &type) < 0)
      || ibc_mode_from_string (cipher, &cfg.mode) < 0
      || ibc_key_type_from_string (type, &cfg.key_type) < 0)
    return ibc_proto_reply_error (id, EINVAL, "bad key_add request");
  /* The canonical config of docs/CONTROL.md: key ids agree everywhere. */
  cfg.data_unit_size = 4096;
  cfg.dun_bytes = ibc_mode_info (cfg.mode)->iv_size;
  r = ibc_key_new (&cfg, f->secret, f->secret_len, &key);
  if (r < 0)
    return ibc_proto_reply_error (id, -r,
                                  "key '%s': %zu bytes is not a valid "
                                  "%s %s key",
                                  name, f->secret_len, type, cipher);
  r = ibc_fallback_add_key (fb, name, key, err, sizeof err);
  if (r == -EEXIST) {
    /* The same key again (a daemon re-pushing after reconnecting) is
     * fine; another key under the name is not. */
    struct id_match m = { .name = name };
    ibc_fallback_keyring_foreach (fb, match_name, &m);
    if (strcmp (m.key_id, ibc_key_id (key)) == 0)
      r = 0;
  }
  if (r < 0)
    reply = ibc_proto_reply_error (id, -r, "%s", err);
  else {
    reply = ibc_proto_reply_ok (id);
    json_object_object_add (reply, "key_id",
                            json_object_new_string (ibc_key_id (key)));
  }
  ibc_key_unref (key);
  return reply;
}

static struct json_object *
op_key_remove (uint64_t id, struct json_object *hdr)
{
  struct ibc_fallback *fb = find_fallback ();
  const char *name;
  bool force = false;
  char err[256] = "";
  int r;

  if (fb == NULL)
    return no_fallback (id);
  if (ibc_proto_get_string (hdr, "name", &name) < 0
      || (json_object_object_get_ex (hdr, "force", NULL)
          && ibc_proto_get_bool (hdr, "force", &force) < 0))
    return ibc_proto_reply_error (id, EINVAL, "bad key_remove request");
  r = ibc_fallback_remove_key (fb, name, force, err, sizeof err);
  if (r < 0)
    return ibc_proto_reply_error (id, -r, "%s", err);
  return ibc_proto_reply_ok (id);
}

struct evict_ctx {
  const char *only; /* a device name (DEV) or NULL: all */
  bool include_fallback;
  struct json_object *evicted, *busy;
  int error;
};

static void
add_unique (struct json_object *arr, const char *name)
{
  for (size_t i = 0; i < json_object_array_length (arr); i++)
    if (strcmp (json_object_get_string (json_object_array_get_idx (arr, i)),
                name)
        == 0)
      return;
  json_object_array_add (arr, json_object_new_string (name));
}

static void
evict_one (const struct ibc_device *d, const char *full,
           const struct ibc_key *key, struct evict_ctx *e)
{
  int r = ibc_profile_evict_key (d->profile, key);

  if (r == -EBUSY)
    add_unique (e->busy, full);
  else if (r < 0 && e->error == 0)
    e->error = r;
  else if (r == 0)
    add_unique (e->evicted, full);
}

/* Evict one bound key from the devices with keyslots (the fallback's own
 * and the keyslot devices); passthrough devices have none and forward. */
static void
evict_bound (const char *name, const struct ibc_key *key, void *opaque)
{
  struct evict_ctx *e = opaque;
  char full[2 * IBC_DEVICE_NAME_MAX + 2];

  (void) name;
  for (struct ibc_layer *l = ibc_registry_top (); l; l = ibc_layer_below (l)) {
    bool top = ibc_layer_kind (l) == IBC_LAYER_FALLBACK;
    for (size_t i = 0; i < ibc_layer_num_devices (l); i++) {
      const struct ibc_device *d = ibc_layer_device (l, i);

      if (d->profile == NULL || ibc_profile_num_slots (d->profile) == 0)
        continue;
      if (top ? !e->include_fallback
              : (e->only && strcmp (e->only, d->name) != 0))
        continue;
      if (top)
        snprintf (full, sizeof full, "%s", ibc_agent_instance ());
      else
        snprintf (full, sizeof full, "%s/%s", ibc_agent_instance (), d->name);
      evict_one (d, full, key, e);
    }
  }
}

static struct json_object *
op_key_evict (uint64_t id, struct json_object *hdr)
{
  struct ibc_fallback *fb = find_fallback ();
  struct evict_ctx e = { .include_fallback = true };
  const char *name, *device = NULL;
  struct json_object *reply;

  if (fb == NULL)
    return no_fallback (id);
  if (ibc_proto_get_string (hdr, "name", &name) < 0
      || (json_object_object_get_ex (hdr, "device", NULL)
          && ibc_proto_get_string (hdr, "device", &device) < 0))
    return ibc_proto_reply_error (id, EINVAL, "bad key_evict request");
  if (device) {
    enum ibc_layer_kind kind;
    if (find_device (device, &kind) == NULL)
      return ibc_proto_reply_error (id, ENODEV, "no device '%s'", device);
    e.include_fallback = kind == IBC_LAYER_FALLBACK;
    e.only = strchr (device, '/') ? strchr (device, '/') + 1 : NULL;
  }
  e.evicted = json_object_new_array ();
  e.busy = json_object_new_array ();
  ibc_fallback_foreach_bound (fb, name, evict_bound, &e);
  if (e.error) {
    json_object_put (e.evicted);
    json_object_put (e.busy);
    return ibc_proto_reply_error (id, -e.error, "evicting key '%s': %s", name,
                                  strerror (-e.error));
  }
  reply = ibc_proto_reply_ok (id);
  json_object_object_add (reply, "evicted", e.evicted);
  json_object_object_add (reply, "busy", e.busy);
  return reply;
}

/* ---- tables and devices ---- */

static struct json_object *
op_map (uint64_t id, struct json_object *hdr)
{
  struct ibc_fallback *fb = find_fallback ();
  const char *table;
  char err[IBC_TABLE_ERR_MAX + 256] = "";
  int r;

  if (fb == NULL)
    return no_fallback (id);
  if (ibc_proto_get_string (hdr, "table", &table) < 0)
    return ibc_proto_reply_error (id, EINVAL, "bad map request");
  r = ibc_fallback_set_table (fb, table, ibc_fallback_device_size (fb), err,
                              sizeof err);
  if (r < 0)
    return ibc_proto_reply_error (id, -r, "%s", err);
  return ibc_proto_reply_ok (id);
}

static const struct ibc_device *
device_arg (struct json_object *hdr, enum ibc_layer_kind want, uint64_t id,
            struct json_object **ret_error)
{
  const char *name;
  enum ibc_layer_kind kind;
  const struct ibc_device *d;

  if (ibc_proto_get_string (hdr, "device", &name) < 0) {
    *ret_error = ibc_proto_reply_error (id, EINVAL, "missing device");
    return NULL;
  }
  d = find_device (name, &kind);
  if (d == NULL) {
    *ret_error = ibc_proto_reply_error (id, ENODEV, "no device '%s'", name);
    return NULL;
  }
  if (kind != want) {
    *ret_error = ibc_proto_reply_error (
        id, EOPNOTSUPP, "'%s' is not a %s device", name,
        want == IBC_LAYER_PASSTHROUGH ? "passthrough" : "keyslot");
    return NULL;
  }
  return d;
}

static struct json_object *
op_table (uint64_t id, struct json_object *hdr, const char *op)
{
  struct json_object *error = NULL, *reply;
  const struct ibc_device *d
      = device_arg (hdr, IBC_LAYER_PASSTHROUGH, id, &error);
  struct ibc_dm_device *dm;
  char err[IBC_TABLE_ERR_MAX] = "";
  struct ibc_caps caps;
  const char *table;
  int r;

  if (d == NULL)
    return error;
  dm = d->opaque;
  if (strcmp (op, "table_show") == 0) {
    char *live = NULL, *inactive = NULL;
    if (ibc_dm_device_table_text (dm, false, &live) < 0)
      return ibc_proto_reply_error (id, ENOMEM, "out of memory");
    ibc_dm_device_table_text (dm, true, &inactive);
    reply = ibc_proto_reply_ok (id);
    json_object_object_add (reply, "live", json_object_new_string (live));
    json_object_object_add (
        reply, "inactive", inactive ? json_object_new_string (inactive) : NULL);
    free (live);
    free (inactive);
    return reply;
  }
  if (strcmp (op, "table_load") == 0) {
    if (ibc_proto_get_string (hdr, "table", &table) < 0)
      return ibc_proto_reply_error (id, EINVAL, "missing table");
    r = ibc_dm_device_load (dm, table, err, sizeof err);
  } else {
    r = ibc_dm_device_resume (dm, err, sizeof err);
  }
  if (r < 0)
    return ibc_proto_reply_error (id, -r, "%s", err[0] ? err : strerror (-r));
  ibc_dm_device_table_caps (dm, strcmp (op, "table_load") == 0, &caps);
  reply = ibc_proto_reply_ok (id);
  json_object_object_add (reply, "caps", caps_json (&caps));
  return reply;
}

static struct json_object *
op_device_reset (uint64_t id, struct json_object *hdr)
{
  struct json_object *error = NULL;
  const struct ibc_device *d = device_arg (hdr, IBC_LAYER_KEYSLOT, id, &error);
  int r;

  if (d == NULL)
    return error;
  r = ibc_hwdev_reset (d->opaque);
  if (r < 0)
    return ibc_proto_reply_error (id, -r,
                                  "reprogramming keys after the "
                                  "reset: %s",
                                  strerror (-r));
  return ibc_proto_reply_ok (id);
}

static struct json_object *
layers_json (void)
{
  struct json_object *st = ibc_status_registry (), *layers = NULL;

  if (st && json_object_object_get_ex (st, "layers", &layers))
    json_object_get (layers);
  json_object_put (st);
  return layers ? layers : json_object_new_array ();
}

static struct json_object *
op_status (uint64_t id)
{
  struct json_object *reply = ibc_proto_reply_ok (id);

  json_object_object_add (reply, "layers", layers_json ());
  return reply;
}

/* Serve one request from the daemon. */
static struct json_object *
dispatch (uint64_t id, const char *op, struct ibc_frame *f)
{
  struct json_object *reply;

  if (strcmp (op, "key_add") == 0)
    return op_key_add (id, f->hdr, f);
  if (strcmp (op, "key_remove") == 0)
    return op_key_remove (id, f->hdr);
  if (strcmp (op, "key_evict") == 0)
    return op_key_evict (id, f->hdr);
  if (strcmp (op, "map") == 0)
    return op_map (id, f->hdr);
  if (strcmp (op, "table_show") == 0 || strcmp (op, "table_load") == 0
      || strcmp (op, "table_resume") == 0)
    return op_table (id, f->hdr, op);
  if (strcmp (op, "device_reset") == 0)
    return op_device_reset (id, f->hdr);
  if (strcmp (op, "status") == 0)
    return op_status (id);
  if (strcmp (op, "ping") == 0)
    return ibc_proto_reply_ok (id);
  reply = ibc_agent_op_wrapped (id, op, f);
  if (reply)
    return reply;
  return ibc_proto_reply_error (id, ENOSYS, "unknown op '%s'", op);
}

/* ---- the connection ---- */

static void
add_key_entry (const char *name, const struct ibc_key *key, void *opaque)
{
  struct json_object *o = json_object_new_object ();

  json_object_object_add (o, "name", json_object_new_string (name));
  json_object_object_add (o, "key_id",
                          json_object_new_string (ibc_key_id (key)));
  json_object_array_add (opaque, o);
}

static int
send_register (int fd)
{
  struct json_object *req = ibc_proto_request_new ("register", ++agent.next_id);
  struct ibc_fallback *fb = find_fallback ();
  struct json_object *keys = json_object_new_array ();
  char *table = NULL;
  int r;

  json_object_object_add (req, "instance",
                          json_object_new_string (ibc_agent_instance ()));
  json_object_object_add (req, "pid", json_object_new_int64 (getpid ()));
  json_object_object_add (req, "layers", layers_json ());
  if (fb) {
    ibc_fallback_keyring_foreach (fb, add_key_entry, keys);
    ibc_fallback_table_text (fb, &table);
  }
  json_object_object_add (req, "keys", keys);
  json_object_object_add (req, "table",
                          table ? json_object_new_string (table) : NULL);
  free (table);
  r = ibc_frame_write (fd, req, NULL, 0);
  json_object_put (req);
  return r;
}

/* Wait for the fd to be readable or a stop; 1 readable, 0 stop, <0 error. */
static int
wait_readable (int fd)
{
  struct pollfd p[2] = { { fd, POLLIN, 0 }, { agent.wake[0], POLLIN, 0 } };

  for (;;) {
    if (atomic_load (&agent.stop))
      return 0;
    if (poll (p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (p[1].revents)
      return 0;
    if (p[0].revents)
      return 1;
  }
}

/* One session: hello, register, then serve until the connection drops.
 * Returns 0 after a stop request, else -errno. */
static int
session (int fd)
{
  struct json_object *hello = ibc_proto_hello_new (++agent.next_id, "agent");
  int r;

  json_object_object_add (hello, "instance",
                          json_object_new_string (ibc_agent_instance ()));
  r = ibc_frame_write (fd, hello, NULL, 0);
  json_object_put (hello);
  if (r == 0)
    r = send_register (fd);
  while (r == 0) {
    struct ibc_frame f;
    uint64_t id;
    const char *op = NULL;
    struct json_object *reply;

    r = wait_readable (fd);
    if (r <= 0)
      return r;
    r = ibc_frame_read (fd, IBC_PROTO_FRAME_TIMEOUT_MS, &f);
    if (r == -EBADMSG)
      continue; /* in sync still: ignore what we cannot parse */
    if (r < 0)
      return r;
    if (ibc_proto_check_header (f.hdr, &id, &op) < 0 || op == NULL) {
      /* A reply to hello/register: a refusal ends the session. */
      const char *msg = NULL;
      r = ibc_proto_reply_result (f.hdr, &msg);
      ibc_frame_clear (&f);
      if (r == -EBADMSG)
        r = 0;
      continue;
    }
    reply = dispatch (id, op, &f);
    ibc_frame_clear (&f);
    r = reply ? ibc_frame_write (fd, reply, NULL, 0) : -ENOMEM;
    json_object_put (reply);
  }
  return r;
}

static void
sleep_ms (unsigned ms)
{
  struct pollfd p = { agent.wake[0], POLLIN, 0 };

  poll (&p, 1, (int) ms);
}

static void *
agent_thread (void *arg)
{
  unsigned backoff = BACKOFF_MIN_MS;

  (void) arg;
  while (!atomic_load (&agent.stop)) {
    int fd, r;

    r = ibc_unix_connect (agent.socket_path, &fd);
    if (r == 0) {
      r = session (fd);
      close (fd);
      if (r == 0)
        break;                  /* stopping */
      backoff = BACKOFF_MIN_MS; /* it was up: retry soon */
    }
    sleep_ms (backoff);
    backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
  }
  return NULL;
}

int
ibc_agent_start (void)
{
  int r = 0;

  pthread_mutex_lock (&agent.lock);
  if (!agent.configured || agent.started)
    goto out;
  if (pipe2 (agent.wake, O_CLOEXEC) < 0) {
    r = -errno;
    goto out;
  }
  atomic_store (&agent.stop, false);
  r = -pthread_create (&agent.thread, NULL, agent_thread, NULL);
  if (r < 0) {
    close (agent.wake[0]);
    close (agent.wake[1]);
    goto out;
  }
  agent.started = true;
out:
  pthread_mutex_unlock (&agent.lock);
  return r;
}

void
ibc_agent_stop (void)
{
  pthread_mutex_lock (&agent.lock);
  if (agent.started) {
    atomic_store (&agent.stop, true);
    if (write (agent.wake[1], "x", 1) < 0) {
      /* The flag alone stops it at its next wakeup. */
    }
    pthread_join (agent.thread, NULL);
    close (agent.wake[0]);
    close (agent.wake[1]);
    agent.started = false;
  }
  pthread_mutex_unlock (&agent.lock);
}
