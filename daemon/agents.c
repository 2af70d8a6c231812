/* ibcryptd's registry of instances: what each agent registered, and pushes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ibcrypt/mode.h"
#include "ibcrypt/registry.h"
#include "ibcryptd.h"

/* An instance is one nbdkit process's agent, known by name.  It stays in
 * the registry after its connection closes (connected: false) so that the
 * CLI still lists its devices, until it comes back or the daemon stops. */
struct instance {
  char name[IBCD_NAME_MAX + 1];
  pid_t pid;
  struct ibcd_conn *conn;     /* a reference while connected, else NULL */
  struct json_object *layers; /* array, as in ibc_status_registry() */
  struct json_object *keys;   /* [{name, key_id}] the agent holds */
  char *table;                /* its crypt table when it registered */
};

/* A passthrough table loaded through the daemon and not yet resumed. */
struct inactive {
  char device[IBCD_DEVICE_PATH_MAX + 1];
  char *text;
};

/* Why: readers of connections register and disconnect while CLI threads
 * look instances up. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct instance *instances[IBCD_MAX_INSTANCES];
static size_t nr_instances;
static struct inactive *inactive;
static size_t nr_inactive;

static struct instance *
find (const char *name)
{
  for (size_t i = 0; i < nr_instances; i++)
    if (strcmp (instances[i]->name, name) == 0)
      return instances[i];
  return NULL;
}

static void
instance_free (struct instance *in)
{
  if (in == NULL)
    return;
  conn_unref (in->conn);
  json_object_put (in->layers);
  json_object_put (in->keys);
  free (in->table);
  free (in);
}

/* The layers array of a register or status message: `layers` is either
 * the array or ibc_status_registry()'s {"layers": [...]}. */
static struct json_object *
layers_of (struct json_object *msg)
{
  struct json_object *v, *inner;

  if (ibc_proto_get_array (msg, "layers", &v) == 0)
    return v;
  if (ibc_proto_get_object (msg, "layers", &v) == 0
      && ibc_proto_get_array (v, "layers", &inner) == 0)
    return inner;
  return NULL;
}

/* A deep copy of the registered key list, validated. */
static int
copy_keys (struct json_object *req, struct json_object **ret, char *msg,
           size_t msgsize)
{
  struct json_object *arr, *out;
  int r = ibc_proto_get_array (req, "keys", &arr);

  if (r == -ENOENT) {
    *ret = json_object_new_array ();
    return *ret ? 0 : -ENOMEM;
  }
  if (r < 0 || json_object_array_length (arr) > IBCD_MAX_KEYS) {
    snprintf (msg, msgsize,
              "member 'keys' must be an array of at most %d "
              "{name, key_id}",
              IBCD_MAX_KEYS);
    return -EINVAL;
  }
  out = json_object_new_array ();
  for (size_t i = 0; out && i < json_object_array_length (arr); i++) {
    struct json_object *k = json_object_array_get_idx (arr, i), *o;
    const char *name, *id;

    if (ibc_proto_get_string (k, "name", &name) < 0
        || !ibc_device_name_valid (name)
        || ibc_proto_get_string (k, "key_id", &id) < 0
        || strlen (id) > IBC_KEY_ID_STRLEN) {
      snprintf (msg, msgsize, "keys[%zu]: bad name or key_id", i);
      json_object_put (out);
      return -EINVAL;
    }
    o = json_object_new_object ();
    json_object_object_add (o, "name", json_object_new_string (name));
    json_object_object_add (o, "key_id", json_object_new_string (id));
    json_object_array_add (out, o);
  }
  if (out == NULL)
    return -ENOMEM;
  *ret = out;
  return 0;
}

int
agents_register (struct ibcd_conn *c, struct json_object *req, char *msg,
                 size_t msgsize)
{
  struct instance *in = NULL, *old;
  struct json_object *layers;
  const char *name, *table = NULL;
  int r;

  if (ibc_proto_get_string (req, "instance", &name) < 0
      || !ibc_device_name_valid (name)) {
    snprintf (msg, msgsize,
              "member 'instance' must be a name of 1-64 "
              "[A-Za-z0-9._-]");
    return -EINVAL;
  }
  if (c->instance[0] && strcmp (c->instance, name) != 0) {
    snprintf (msg, msgsize, "this connection is instance '%s'", c->instance);
    return -EINVAL;
  }
  r = ibc_proto_get_string (req, "table", &table);
  if (r == -EBADMSG) {
    snprintf (msg, msgsize, "member 'table' must be a string or null");
    return -EINVAL;
  }
  layers = layers_of (req);
  if (layers == NULL && ibc_proto_get_array (req, "layers", &layers) == -ENOENT)
    layers = NULL;
  else if (layers == NULL) {
    snprintf (msg, msgsize, "member 'layers' must be an array");
    return -EINVAL;
  }

  in = calloc (1, sizeof *in);
  if (in == NULL)
    return -ENOMEM;
  strcpy (in->name, name);
  in->pid = c->pid;
  in->layers = layers ? json_object_get (layers) : json_object_new_array ();
  in->table = table ? strdup (table) : NULL;
  r = copy_keys (req, &in->keys, msg, msgsize);
  if (r == 0 && (in->layers == NULL || (table && in->table == NULL)))
    r = -ENOMEM;
  if (r < 0)
    goto out_free;

  pthread_mutex_lock (&lock);
  size_t i;
  for (i = 0; i < nr_instances && strcmp (instances[i]->name, name); i++)
    ;
  old = i < nr_instances ? instances[i] : NULL;
  if (old && old->conn && old->conn != c && old->conn->pid != c->pid) {
    snprintf (msg, msgsize, "instance '%s' is registered by pid %ld", name,
              (long) old->conn->pid);
    pthread_mutex_unlock (&lock);
    r = -EEXIST;
    goto out_free;
  }
  if (old == NULL && nr_instances == IBCD_MAX_INSTANCES) {
    /* Forget a disconnected instance to make room. */
    for (i = 0; i < nr_instances && instances[i]->conn; i++)
      ;
    if (i == nr_instances) {
      pthread_mutex_unlock (&lock);
      snprintf (msg, msgsize, "too many instances (%d)", IBCD_MAX_INSTANCES);
      r = -ENOSPC;
      goto out_free;
    }
    instance_free (instances[i]);
    instances[i] = instances[--nr_instances];
  }
  if (old && old->conn && old->conn != c) {
    /* The same process reconnected before we saw its old connection end:
     * that one is stale. */
    shutdown (old->conn->fd, SHUT_RDWR);
  }
  in->conn = conn_ref (c);
  strcpy (c->instance, name);
  if (old) {
    instances[i] = in;
    instance_free (old);
  } else
    instances[nr_instances++] = in;
  pthread_mutex_unlock (&lock);
  log_info ("instance '%s' (pid %ld) registered: %zu layers, %zu keys, %s",
            name, (long) c->pid, json_object_array_length (in->layers),
            json_object_array_length (in->keys),
            table ? "has a crypt table" : "no crypt table");
  return 0;

out_free:
  instance_free (in);
  return r;
}

void
agents_disconnected (struct ibcd_conn *c)
{
  struct ibcd_conn *gone = NULL;

  pthread_mutex_lock (&lock);
  struct instance *in = c->instance[0] ? find (c->instance) : NULL;
  if (in && in->conn == c) {
    gone = in->conn;
    in->conn = NULL;
  }
  pthread_mutex_unlock (&lock);
  if (gone) {
    log_info ("instance '%s' disconnected", c->instance);
    conn_unref (gone);
  }
}

struct ibcd_conn *
agents_conn (const char *instance)
{
  struct ibcd_conn *c = NULL;

  pthread_mutex_lock (&lock);
  struct instance *in = find (instance);
  if (in && in->conn)
    c = conn_ref (in->conn);
  pthread_mutex_unlock (&lock);
  return c;
}

size_t
agents_conns (struct ibcd_conn ***ret_conns)
{
  struct ibcd_conn **v = calloc (IBCD_MAX_INSTANCES, sizeof *v);
  size_t n = 0;

  if (v == NULL) {
    *ret_conns = NULL;
    return 0;
  }
  pthread_mutex_lock (&lock);
  for (size_t i = 0; i < nr_instances; i++)
    if (instances[i]->conn)
      v[n++] = conn_ref (instances[i]->conn);
  pthread_mutex_unlock (&lock);
  *ret_conns = v;
  return n;
}

void
agents_conns_free (struct ibcd_conn **conns, size_t n)
{
  for (size_t i = 0; i < n; i++)
    conn_unref (conns[i]);
  free (conns);
}

bool
agents_has_table (struct ibcd_conn *c)
{
  bool has;

  pthread_mutex_lock (&lock);
  struct instance *in = find (c->instance);
  has = in == NULL || in->conn != c || in->table != NULL;
  pthread_mutex_unlock (&lock);
  return has;
}

bool
agents_known (const char *instance)
{
  bool known;

  pthread_mutex_lock (&lock);
  known = find (instance) != NULL;
  pthread_mutex_unlock (&lock);
  return known;
}

struct json_object *
agents_snapshot (void)
{
  struct json_object *arr = json_object_new_array ();

  pthread_mutex_lock (&lock);
  for (size_t i = 0; arr && i < nr_instances; i++) {
    struct instance *in = instances[i];
    struct json_object *o = json_object_new_object (), *copy = NULL;

    json_object_object_add (o, "name", json_object_new_string (in->name));
    json_object_object_add (o, "pid", json_object_new_int64 (in->pid));
    json_object_object_add (o, "connected",
                            json_object_new_boolean (in->conn != NULL));
    json_object_deep_copy (in->layers, &copy, NULL);
    json_object_object_add (o, "layers", copy);
    copy = NULL;
    json_object_deep_copy (in->keys, &copy, NULL);
    json_object_object_add (o, "keys", copy);
    json_object_object_add (
        o, "table", in->table ? json_object_new_string (in->table) : NULL);
    json_object_array_add (arr, o);
  }
  pthread_mutex_unlock (&lock);
  return arr;
}

void
agents_refresh (const char *instance)
{
  struct ibcd_pending *p[IBCD_MAX_INSTANCES];
  struct ibcd_conn **conns = NULL;
  size_t n;
  int64_t deadline = ibcd_now_ms () + ibcd_refresh_timeout_ms ();

  if (instance) {
    conns = calloc (1, sizeof *conns);
    n = conns && (conns[0] = agents_conn (instance)) ? 1 : 0;
  } else
    n = agents_conns (&conns);
  /* All requests first, then all waits: slow agents overlap. */
  for (size_t i = 0; i < n; i++) {
    struct json_object *req = ibc_proto_request_new ("status", 1);
    if (req == NULL || conn_request_start (conns[i], req, NULL, 0, &p[i]) < 0)
      p[i] = NULL;
    json_object_put (req);
  }
  for (size_t i = 0; i < n; i++) {
    struct json_object *reply = NULL, *layers;

    if (p[i] == NULL || conn_request_wait (p[i], deadline, &reply) < 0
        || ibc_proto_reply_result (reply, NULL) < 0
        || (layers = layers_of (reply)) == NULL) {
      log_debug ("instance '%s': no fresh status", conns[i]->instance);
      json_object_put (reply);
      continue;
    }
    pthread_mutex_lock (&lock);
    struct instance *in = find (conns[i]->instance);
    if (in && in->conn == conns[i]) {
      json_object_put (in->layers);
      in->layers = json_object_get (layers);
    }
    pthread_mutex_unlock (&lock);
    json_object_put (reply);
  }
  agents_conns_free (conns, n);
}

/* Forget what in holds under name; lock held. */
static void
drop_key_locked (struct instance *in, const char *name)
{
  for (size_t i = 0; i < json_object_array_length (in->keys);) {
    const char *n;
    if (ibc_proto_get_string (json_object_array_get_idx (in->keys, i), "name",
                              &n)
            == 0
        && strcmp (n, name) == 0)
      json_object_array_del_idx (in->keys, i, 1);
    else
      i++;
  }
}

void
agents_key_held (const char *instance, const char *name, const char *key_id)
{
  pthread_mutex_lock (&lock);
  struct instance *in = find (instance);
  if (in) {
    struct json_object *o = json_object_new_object ();

    drop_key_locked (in, name);
    json_object_object_add (o, "name", json_object_new_string (name));
    json_object_object_add (o, "key_id", json_object_new_string (key_id));
    json_object_array_add (in->keys, o);
  }
  pthread_mutex_unlock (&lock);
}

void
agents_key_dropped (const char *instance, const char *name)
{
  pthread_mutex_lock (&lock);
  struct instance *in = find (instance);
  if (in)
    drop_key_locked (in, name);
  pthread_mutex_unlock (&lock);
}

void
agents_set_table (const char *instance, const char *text)
{
  char *copy = strdup (text);

  pthread_mutex_lock (&lock);
  struct instance *in = find (instance);
  if (in && copy) {
    free (in->table);
    in->table = copy;
    copy = NULL;
  }
  pthread_mutex_unlock (&lock);
  free (copy);
}

char *
agents_get_inactive (const char *device)
{
  char *text = NULL;

  pthread_mutex_lock (&lock);
  for (size_t i = 0; i < nr_inactive; i++)
    if (strcmp (inactive[i].device, device) == 0)
      text = strdup (inactive[i].text);
  pthread_mutex_unlock (&lock);
  return text;
}

void
agents_set_inactive (const char *device, const char *text)
{
  char *copy = text ? strdup (text) : NULL;
  size_t i;

  if (strlen (device) > IBCD_DEVICE_PATH_MAX || (text && copy == NULL))
    goto out;
  pthread_mutex_lock (&lock);
  for (i = 0; i < nr_inactive && strcmp (inactive[i].device, device); i++)
    ;
  if (i < nr_inactive) {
    free (inactive[i].text);
    if (copy)
      inactive[i].text = copy;
    else
      inactive[i] = inactive[--nr_inactive];
    copy = NULL;
  } else if (copy && nr_inactive < IBCD_MAX_INSTANCES * 4) {
    struct inactive *n = realloc (inactive, (nr_inactive + 1) * sizeof *n);
    if (n) {
      inactive = n;
      strcpy (inactive[nr_inactive].device, device);
      inactive[nr_inactive++].text = copy;
      copy = NULL;
    }
  }
  pthread_mutex_unlock (&lock);
out:
  free (copy);
}

void
agents_clear (void)
{
  pthread_mutex_lock (&lock);
  for (size_t i = 0; i < nr_instances; i++)
    instance_free (instances[i]);
  nr_instances = 0;
  for (size_t i = 0; i < nr_inactive; i++)
    free (inactive[i].text);
  free (inactive);
  inactive = NULL;
  nr_inactive = 0;
  pthread_mutex_unlock (&lock);
}
