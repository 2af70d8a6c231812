/* ibcryptd internals: the daemon's modules and what they share. */
#ifndef IBCRYPTD_H
#define IBCRYPTD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "ibcrypt/key.h"
#include "ibcrypt/proto.h"

/* Limits of docs/CONTROL.md "Limits". */
#define IBCD_MAX_CLI_CONNS 64
#define IBCD_MAX_AGENT_CONNS 256
#define IBCD_MAX_HELLO_CONNS 64 /* accepted, hello not yet done */
#define IBCD_MAX_KEYS 1024
#define IBCD_MAX_INSTANCES 256
#define IBCD_MAX_TABLE_LINES 4096

/* How long a CLI op waits for an agent's reply (default of
 * --agent-timeout). */
#define IBCD_AGENT_TIMEOUT_MS 10000
/* Shorter, for refreshing status and counters: a stuck agent must not make
 * `status` slow; its last known layers are shown instead. */
#define IBCD_REFRESH_TIMEOUT_MS 2000
/* A CLI connection idle this long is closed (it holds one of 64 slots). */
#define IBCD_CLI_IDLE_MS 60000

#define IBCD_NAME_MAX 64 /* keys, instances, devices: [A-Za-z0-9._-]{1,64} */
#define IBCD_DEVICE_PATH_MAX (2 * IBCD_NAME_MAX + 1) /* INSTANCE/DEV */

/* ---- log.c -------------------------------------------------------------- */

enum ibcd_log_level {
  IBCD_LOG_ERR = 3,
  IBCD_LOG_WARNING = 4,
  IBCD_LOG_INFO = 6,
  IBCD_LOG_DEBUG = 7,
};

/* Messages up to this level are printed (INFO; -v: DEBUG). */
extern int ibcd_log_max;

/* One line on stderr, with an sd-daemon(3) priority prefix when stderr is
 * the journal.  Never pass key bytes: log names and key ids only. */
void ibcd_log (int level, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
#define log_err(...) ibcd_log (IBCD_LOG_ERR, __VA_ARGS__)
#define log_warn(...) ibcd_log (IBCD_LOG_WARNING, __VA_ARGS__)
#define log_info(...) ibcd_log (IBCD_LOG_INFO, __VA_ARGS__)
#define log_debug(...) ibcd_log (IBCD_LOG_DEBUG, __VA_ARGS__)

/* ---- main.c: configuration ---------------------------------------------- */

struct ibcd_config {
  const char *socket_path;
  const char *state_dir;
  const char *group; /* name of the group admitted besides root */
  bool group_exists; /* false: only root is admitted */
  gid_t gid;
  int agent_timeout_ms; /* --agent-timeout */
};
extern struct ibcd_config ibcd_config;

/* IBCD_REFRESH_TIMEOUT_MS, or the agent timeout if shorter. */
int ibcd_refresh_timeout_ms (void);

/* ---- conn.c: a client connection and requests sent on it ---------------- */

enum ibcd_role {
  IBCD_ROLE_NONE, /* before hello */
  IBCD_ROLE_CLI,
  IBCD_ROLE_AGENT,
};

struct ibcd_pending;

struct ibcd_conn {
  int fd;
  enum ibcd_role role;
  pid_t pid; /* SO_PEERCRED at connect time */
  uid_t uid;
  gid_t gid;
  bool allowed;                     /* root or group member */
  char instance[IBCD_NAME_MAX + 1]; /* agents, once registered */

  unsigned refs;         /* atomic */
  pthread_mutex_t wlock; /* one writer per connection (PROTOCOL.md 2.2) */
  pthread_mutex_t plock; /* pending, next_id, dead */
  struct ibcd_pending *pending;
  uint64_t next_id;
  bool dead; /* the reader saw the end: no more replies will come */

  struct ibcd_conn *next; /* server.c's list of live connections */
};

/* A new connection owning fd, with one reference.  NULL on ENOMEM. */
struct ibcd_conn *conn_new (int fd);
struct ibcd_conn *conn_ref (struct ibcd_conn *c);
/* The last reference closes the fd.  Accepts NULL. */
void conn_unref (struct ibcd_conn *c);

/* Write one frame (serialised with other writers).  A write that fails
 * mid-frame breaks the stream, so the connection is shut down.  Returns 0
 * or -errno. */
int conn_send (struct ibcd_conn *c, struct json_object *msg, const void *secret,
               size_t len);

/* Send request (an object with "op"; its "id" is set here) and register it
 * as pending.  Takes over nothing: request stays the caller's.  Returns 0
 * and *ret_pending, or -ENOTCONN (connection gone) / -errno of the
 * write. */
int conn_request_start (struct ibcd_conn *c, struct json_object *request,
                        const void *secret, size_t len,
                        struct ibcd_pending **ret_pending);

/* Wait for the reply until deadline_ms (CLOCK_MONOTONIC, ms) and free the
 * pending request.  Returns 0 and *ret_reply (a valid reply header, ok or
 * error: one reference for the caller), -ETIMEDOUT, or -ENOTCONN if the
 * connection closed first. */
int conn_request_wait (struct ibcd_pending *p, int64_t deadline_ms,
                       struct json_object **ret_reply);

/* Start, then wait with timeout_ms. */
int conn_call (struct ibcd_conn *c, struct json_object *request,
               const void *secret, size_t len, int timeout_ms,
               struct json_object **ret_reply);

/* The reader got a reply: hand it to the waiting request.  Returns false
 * if no request is waiting for that id (the caller logs and drops it). */
bool conn_route_reply (struct ibcd_conn *c, uint64_t id,
                       struct json_object *reply);

/* The reader saw the end of the stream: fail every pending request with
 * ENOTCONN, refuse new ones. */
void conn_mark_dead (struct ibcd_conn *c);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t ibcd_now_ms (void);

/* ---- server.c ----------------------------------------------------------- */

/* Serve listen_fd until ibcd_server_stop().  Returns 0 or -errno. */
int ibcd_server_run (int listen_fd, int signal_fd);

/* Run fn(arg) on a detached thread counted by the server, so that a clean
 * stop waits for it.  Returns 0 or -errno (then arg is the caller's). */
int ibcd_thread_spawn (void *(*fn) (void *), void *arg);

/* ---- keys.c: the key store ---------------------------------------------- */

/* Canonical config of a key id (CONTROL.md "Names"). */
void keys_canonical_config (enum ibc_mode mode, enum ibc_key_type type,
                            struct ibc_crypto_config *ret_cfg);

/* Add a key named name of bytes/size (copied into locked memory).
 * Returns 0 and, if ret_key, a new reference; -EEXIST, -ENOSPC, -EINVAL
 * (size or name), -ENOMEM. */
int keys_add (const char *name, enum ibc_mode mode, enum ibc_key_type type,
              const void *bytes, size_t size, struct ibc_key **ret_key);

/* A new reference to the key named name, or NULL. */
struct ibc_key *keys_get (const char *name);

/* Drop the daemon's copy (wiped when the last reference goes). 0 or
 * -ENOENT. */
int keys_remove (const char *name);

/* Snapshot: names (malloc'd array of malloc'd strings) and key references,
 * in insertion order.  Release with keys_snapshot_free().  0 or -ENOMEM. */
struct keys_snapshot {
  size_t n;
  char **names;
  struct ibc_key **keys;
};
int keys_snapshot (struct keys_snapshot *ret);
void keys_snapshot_free (struct keys_snapshot *s);

/* Wipe every key (clean stop). */
void keys_clear (void);

/* ---- state.c: persisted crypt maps and passthrough live tables ---------- */

/* Create the directory (0700) if missing, lock it against a second daemon,
 * read state.json.  Returns 0 or -errno with a message in err. */
int state_open (const char *dir, char *err, size_t errsize);
void state_close (void);

/* The persisted crypt table of instance / live table of a passthrough
 * device, malloc'd, or NULL. */
char *state_get_map (const char *instance);
char *state_get_table (const char *device);

/* Set (text) or delete (NULL) an entry and persist the whole state
 * atomically; on failure the old entry is kept.  0 or -errno. */
int state_set_map (const char *instance, const char *text);
int state_set_table (const char *device, const char *text);

/* Add {device: instance, start, length} (bytes) to array for every range
 * of a persisted map bound to key `:name`; returns how many. */
size_t state_bindings_of_key (const char *name, struct json_object *array);

/* ---- agents.c: the registry of instances -------------------------------- */

/* Handle an agent's "register".  0 (reply ok, then call agents_sync) or
 * -errno with a message in msg. */
int agents_register (struct ibcd_conn *c, struct json_object *req, char *msg,
                     size_t msgsize);
/* True unless the instance registered on c said it has no crypt table
 * (also true when c is no longer its connection). */
bool agents_has_table (struct ibcd_conn *c);

/* sync.c: after the register reply, push every key and, to an instance
 * without a crypt table, its persisted map (on a thread of its own). */
void agents_sync_start (struct ibcd_conn *c);
/* The agent's connection ended. */
void agents_disconnected (struct ibcd_conn *c);

/* A new reference to the connection of a connected instance, or NULL. */
struct ibcd_conn *agents_conn (const char *instance);
/* References to the connections of every connected instance. */
size_t agents_conns (struct ibcd_conn ***ret_conns);
void agents_conns_free (struct ibcd_conn **conns, size_t n);
bool agents_known (const char *instance);

/* A deep copy of the registry: [{name, pid, connected, layers, keys,
 * table}]. */
struct json_object *agents_snapshot (void);

/* Ask the connected instance (or all of them when NULL) for a fresh status
 * and store their layers. */
void agents_refresh (const char *instance);

/* The key list an instance holds (what it registered plus what we pushed). */
void agents_key_held (const char *instance, const char *name,
                      const char *key_id);
void agents_key_dropped (const char *instance, const char *name);

/* The instance now runs crypt table text (after a successful map). */
void agents_set_table (const char *instance, const char *text);

/* The inactive (loaded, not resumed) passthrough table the daemon loaded,
 * malloc'd or NULL; set NULL to forget. */
char *agents_get_inactive (const char *device);
void agents_set_inactive (const char *device, const char *text);

/* Drop every instance (clean stop). */
void agents_clear (void);

/* ---- devices.c: device objects from registered layers ------------------- */

/* Device objects of CONTROL.md for one instance entry of
 * agents_snapshot(), appended to array. */
void devices_of_instance (struct json_object *inst, struct json_object *array);
/* All devices of a snapshot. */
struct json_object *devices_all (struct json_object *snapshot);
/* The device object named name in a snapshot (borrowed), or NULL. */
struct json_object *devices_find (struct json_object *devices,
                                  const char *name);
/* "INSTANCE/DEV" or "INSTANCE" -> instance part; false if malformed. */
bool devices_split (const char *name, char instance[IBCD_NAME_MAX + 1]);

/* ---- ops*.c: the CLI operations ----------------------------------------- */

struct ibcd_op_ctx {
  struct ibcd_conn *conn;
  struct json_object *req;
  const uint8_t *secret;
  size_t secret_len;
  struct json_object *reply; /* result members (also sent beside an error) */
  char msg[1024];            /* error message */
};

/* Handle one CLI request and send its reply. */
void ops_dispatch (struct ibcd_conn *c, uint64_t id, const char *op,
                   struct ibc_frame *frame);

/* Record an error: returns -errnum (errnum positive). */
int op_fail (struct ibcd_op_ctx *ctx, int errnum, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
/* Typed request members: 0, -ENOENT absent (only when !required), or a
 * recorded EINVAL failure naming the member. */
int op_string (struct ibcd_op_ctx *ctx, const char *key, bool required,
               const char **ret);
int op_bool (struct ibcd_op_ctx *ctx, const char *key, bool *ret);
/* A key or instance name: required, [A-Za-z0-9._-]{1,64}. */
int op_name (struct ibcd_op_ctx *ctx, const char *key, const char **ret);
/* A table's text: required string of at most IBCD_MAX_TABLE_LINES lines. */
int op_table_text (struct ibcd_op_ctx *ctx, const char **ret);
/* Turn an agent call's outcome into this op's: 0 for ok, else the agent's
 * errno and message (ENOTCONN, ETIMEDOUT: naming the instance). */
int op_agent_result (struct ibcd_op_ctx *ctx, const char *instance, int r,
                     struct json_object *reply);

/* One request sent to several agents at once. */
struct agent_result {
  struct ibcd_conn *conn;
  int r;                     /* 0, the agent's -errno, or -ENOTCONN... */
  struct json_object *reply; /* the reply (ok or error) if one came */
};
/* Send req to every conn (its "id" is set per connection) and wait for
 * all replies until timeout_ms from now. */
void op_fanout (struct ibcd_conn **conns, size_t n, struct json_object *req,
                const void *secret, size_t len, int timeout_ms,
                struct agent_result *results);
void op_fanout_free (struct agent_result *results, size_t n);

/* Handlers, one per op of CONTROL.md "CLI -> daemon". */
int op_key_add (struct ibcd_op_ctx *ctx);
int op_key_list (struct ibcd_op_ctx *ctx);
int op_key_show (struct ibcd_op_ctx *ctx);
int op_key_evict (struct ibcd_op_ctx *ctx);
int op_key_remove (struct ibcd_op_ctx *ctx);
int op_device_list (struct ibcd_op_ctx *ctx);
int op_device_show (struct ibcd_op_ctx *ctx);
int op_device_caps (struct ibcd_op_ctx *ctx);
int op_device_reset (struct ibcd_op_ctx *ctx);
int op_table_show (struct ibcd_op_ctx *ctx);
int op_table_load (struct ibcd_op_ctx *ctx);
int op_table_resume (struct ibcd_op_ctx *ctx);
int op_map (struct ibcd_op_ctx *ctx);
int op_stats (struct ibcd_op_ctx *ctx);
int op_key_import (struct ibcd_op_ctx *ctx);
int op_key_generate (struct ibcd_op_ctx *ctx);
int op_key_prepare (struct ibcd_op_ctx *ctx);

/* A key object of CONTROL.md (name, cipher, key_type, key_id, size,
 * bindings, instances) from a snapshot of the registry. */
struct json_object *key_object (const char *name, struct ibc_key *key,
                                struct json_object *snapshot);

/* Serialises the ops that change keys, maps and tables (and the pushes to
 * a newly registered agent), so that e.g. key_remove's binding check and a
 * concurrent map cannot interleave.  Never taken by read-only ops. */
extern pthread_mutex_t ibcd_admin_lock;

#endif
