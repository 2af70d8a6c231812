/* ibcryptd's server: accept loop, peer checks, hello, a thread per client. */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ibcryptd.h"

/* Why: connection threads come and go while the main thread accepts and,
 * at stop, shuts every connection down and waits for the threads. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t threads_done = PTHREAD_COND_INITIALIZER;
static struct ibcd_conn *conns;
static unsigned nr_threads, nr_hello, nr_cli, nr_agent;
static bool stopping;

/* ---- counted threads ---------------------------------------------------- */

struct trampoline {
  void *(*fn) (void *);
  void *arg;
};

static void *
counted_thread (void *p)
{
  struct trampoline t = *(struct trampoline *) p;

  free (p);
  t.fn (t.arg);
  pthread_mutex_lock (&lock);
  if (--nr_threads == 0)
    pthread_cond_broadcast (&threads_done);
  pthread_mutex_unlock (&lock);
  return NULL;
}

int
ibcd_thread_spawn (void *(*fn) (void *), void *arg)
{
  struct trampoline *t = malloc (sizeof *t);
  pthread_attr_t attr;
  pthread_t tid;
  int r;

  if (t == NULL)
    return -ENOMEM;
  t->fn = fn;
  t->arg = arg;
  pthread_mutex_lock (&lock);
  if (stopping) {
    pthread_mutex_unlock (&lock);
    free (t);
    return -ESHUTDOWN;
  }
  nr_threads++;
  pthread_mutex_unlock (&lock);

  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  r = pthread_create (&tid, &attr, counted_thread, t);
  pthread_attr_destroy (&attr);
  if (r != 0) {
    free (t);
    pthread_mutex_lock (&lock);
    if (--nr_threads == 0)
      pthread_cond_broadcast (&threads_done);
    pthread_mutex_unlock (&lock);
    return -r;
  }
  return 0;
}

/* ---- peers -------------------------------------------------------------- */

static bool
gid_in (gid_t gid, const gid_t *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (v[i] == gid)
      return true;
  return false;
}

/* Root, or a member of the configured group: by the peer's gid, its
 * supplementary groups at connect time (SO_PEERGROUPS), or the groups
 * its user is a member of (getgrouplist). */
static bool
peer_allowed (const struct ibcd_conn *c)
{
  gid_t groups[1024];
  socklen_t len = sizeof groups;
  int n = sizeof groups / sizeof groups[0];
  struct passwd pw, *pwp = NULL;
  char buf[4096];

  if (c->uid == 0)
    return true;
  if (!ibcd_config.group_exists)
    return false;
  if (c->gid == ibcd_config.gid)
    return true;
  if (getsockopt (c->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0
      && gid_in (ibcd_config.gid, groups, len / sizeof (gid_t)))
    return true;
  if (getpwuid_r (c->uid, &pw, buf, sizeof buf, &pwp) == 0 && pwp
      && getgrouplist (pw.pw_name, pw.pw_gid, groups, &n) >= 0
      && gid_in (ibcd_config.gid, groups, (size_t) n))
    return true;
  return false;
}

/* ---- frames ------------------------------------------------------------- */

static void
send_error (struct ibcd_conn *c, uint64_t id, int errnum, const char *msg)
{
  struct json_object *reply = ibc_proto_reply_error (id, errnum, "%s", msg);

  if (reply)
    conn_send (c, reply, NULL, 0);
  json_object_put (reply);
}

/* The next frame within idle_ms (-1: no limit).  0 with *f filled, 1 to
 * try again (an EBADMSG frame was answered), or -errno to close (an error
 * reply was sent when PROTOCOL.md 2.1 says so). */
static int
next_frame (struct ibcd_conn *c, int idle_ms, struct ibc_frame *f)
{
  struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
  int r;

  do
    r = poll (&pfd, 1, idle_ms);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return -errno;
  if (r == 0)
    return -ETIMEDOUT;
  r = ibc_frame_read (c->fd, IBC_PROTO_FRAME_TIMEOUT_MS, f);
  switch (r) {
  case 0:
    return 0;
  case -EAGAIN:
  case -EINTR:
    return 1;
  case -EBADMSG:
    send_error (c, 0, EBADMSG,
                "malformed frame: the header is not a valid "
                "request or reply (PROTOCOL.md 3)");
    return 1;
  case -EPROTO:
    send_error (c, 0, EPROTO, "bad frame prefix: framing lost");
    return r;
  case -EMSGSIZE:
    send_error (c, 0, EMSGSIZE,
                "frame over the limits (header 1 MiB, "
                "secret 4096 bytes)");
    return r;
  case -ETIMEDOUT:
    send_error (c, 0, ETIMEDOUT, "frame incomplete after 10 s");
    return r;
  default:
    return r; /* ENODATA, ECONNRESET...: the peer is gone */
  }
}

/* ---- hello -------------------------------------------------------------- */

static int
hello (struct ibcd_conn *c)
{
  int64_t deadline = ibcd_now_ms () + IBC_PROTO_FRAME_TIMEOUT_MS;
  struct ibc_frame f = { 0 };
  struct json_object *reply;
  const char *op, *role;
  char msg[256];
  uint64_t id;
  int r, version;

  do {
    int64_t left = deadline - ibcd_now_ms ();
    r = next_frame (c, left < 0 ? 0 : (int) left, &f);
  } while (r == 1);
  if (r < 0)
    return r;
  ibc_proto_check_header (f.hdr, &id, &op);
  if (op == NULL) {
    r = -EPROTO; /* a reply: never answered */
    goto out;
  }
  if (!c->allowed) {
    snprintf (msg, sizeof msg,
              "permission denied: uid %ld is neither root "
              "nor in group '%s'",
              (long) c->uid, ibcd_config.group);
    log_info ("refused pid %ld uid %ld gid %ld", (long) c->pid, (long) c->uid,
              (long) c->gid);
    send_error (c, id, EACCES, msg);
    r = -EACCES;
    goto out;
  }
  if (strcmp (op, "hello") != 0) {
    send_error (c, id, EPROTO, "the first request must be 'hello'");
    r = -EPROTO;
    goto out;
  }
  if (ibc_proto_get_int (f.hdr, "version", &version) < 0
      || version != IBC_PROTO_VERSION) {
    reply = ibc_proto_reply_error (id, EPROTO,
                                   "this daemon speaks protocol "
                                   "version %d",
                                   IBC_PROTO_VERSION);
    if (reply) {
      json_object_object_add (reply, "version",
                              json_object_new_int (IBC_PROTO_VERSION));
      conn_send (c, reply, NULL, 0);
    }
    json_object_put (reply);
    r = -EPROTO;
    goto out;
  }
  if (ibc_proto_get_string (f.hdr, "role", &role) < 0
      || (strcmp (role, "cli") != 0 && strcmp (role, "agent") != 0)) {
    send_error (c, id, EINVAL, "member 'role' must be \"cli\" or \"agent\"");
    r = -EINVAL;
    goto out;
  }
  if (f.secret_len > 0) {
    send_error (c, id, EINVAL, "op 'hello' takes no secret");
    r = -EINVAL;
    goto out;
  }

  pthread_mutex_lock (&lock);
  bool agent = strcmp (role, "agent") == 0;
  r = agent ? (nr_agent < IBCD_MAX_AGENT_CONNS ? 0 : -EUSERS)
            : (nr_cli < IBCD_MAX_CLI_CONNS ? 0 : -EUSERS);
  if (r == 0) {
    nr_hello--;
    agent ? nr_agent++ : nr_cli++;
    c->role = agent ? IBCD_ROLE_AGENT : IBCD_ROLE_CLI;
  }
  pthread_mutex_unlock (&lock);
  if (r < 0) {
    snprintf (msg, sizeof msg, "too many %s connections (%d)", role,
              agent ? IBCD_MAX_AGENT_CONNS : IBCD_MAX_CLI_CONNS);
    log_warn ("pid %ld: %s", (long) c->pid, msg);
    send_error (c, id, EUSERS, msg);
    goto out;
  }
  reply = ibc_proto_reply_ok (id);
  if (reply == NULL) {
    r = -ENOMEM;
    goto out;
  }
  json_object_object_add (reply, "version",
                          json_object_new_int (IBC_PROTO_VERSION));
  json_object_object_add (reply, "pid", json_object_new_int64 (getpid ()));
  r = conn_send (c, reply, NULL, 0);
  json_object_put (reply);
  log_debug ("pid %ld uid %ld: hello as %s", (long) c->pid, (long) c->uid,
             role);
out:
  ibc_frame_clear (&f);
  return r;
}

/* ---- serving a connection ----------------------------------------------- */

/* A request from an agent: register or ping. */
static void
agent_request (struct ibcd_conn *c, uint64_t id, const char *op,
               struct ibc_frame *f)
{
  struct json_object *reply;
  char msg[512] = "";
  int r;

  if (f->secret_len > 0) {
    snprintf (msg, sizeof msg, "op '%s' takes no secret", op);
    r = -EINVAL;
  } else if (strcmp (op, "register") == 0)
    r = agents_register (c, f->hdr, msg, sizeof msg);
  else if (strcmp (op, "ping") == 0)
    r = 0;
  else {
    snprintf (msg, sizeof msg, "unknown op '%s' from an agent", op);
    r = -ENOSYS;
  }
  reply = r == 0 ? ibc_proto_reply_ok (id)
                 : ibc_proto_reply_error (id, r, "%s",
                                          msg[0] ? msg : strerror (-r));
  if (reply)
    conn_send (c, reply, NULL, 0);
  json_object_put (reply);
  if (r == 0 && strcmp (op, "register") == 0)
    agents_sync_start (c);
}

static void *
conn_thread (void *arg)
{
  struct ibcd_conn *c = arg;
  int r = hello (c);

  while (r >= 0) {
    struct ibc_frame f = { 0 };
    const char *op;
    uint64_t id;

    /* Agents stay connected for the life of their process; an idle CLI
     * holds one of only 64 slots. */
    r = next_frame (c, c->role == IBCD_ROLE_CLI ? IBCD_CLI_IDLE_MS : -1, &f);
    if (r != 0)
      continue;
    ibc_proto_check_header (f.hdr, &id, &op);
    if (op == NULL) {
      if (c->role != IBCD_ROLE_AGENT || !conn_route_reply (c, id, f.hdr))
        log_debug ("pid %ld: dropped a reply with id %llu", (long) c->pid,
                   (unsigned long long) id);
    } else if (strcmp (op, "hello") == 0) {
      send_error (c, id, EPROTO, "a second 'hello'");
      r = -EPROTO;
    } else if (c->role == IBCD_ROLE_AGENT)
      agent_request (c, id, op, &f);
    else
      ops_dispatch (c, id, op, &f);
    ibc_frame_clear (&f);
  }

  conn_mark_dead (c);
  if (c->role == IBCD_ROLE_AGENT)
    agents_disconnected (c);
  pthread_mutex_lock (&lock);
  for (struct ibcd_conn **pp = &conns; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  switch (c->role) {
  case IBCD_ROLE_NONE:
    nr_hello--;
    break;
  case IBCD_ROLE_CLI:
    nr_cli--;
    break;
  case IBCD_ROLE_AGENT:
    nr_agent--;
    break;
  }
  pthread_mutex_unlock (&lock);
  log_debug ("pid %ld: connection closed (%s)", (long) c->pid,
             r == -ENODATA ? "by the peer" : strerror (-r));
  conn_unref (c);
  return NULL;
}

static void
accept_one (int listen_fd)
{
  struct ibcd_conn *c;
  int fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC);

  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
        || errno == ENOMEM) {
      log_warn ("accept: %m");
      usleep (100000); /* the listen queue stays ready: do not spin */
    }
    return;
  }
  c = conn_new (fd);
  if (c == NULL) {
    close (fd);
    return;
  }
  if (ibc_peer_cred (fd, &c->pid, &c->uid, &c->gid) < 0) {
    conn_unref (c);
    return;
  }
  c->allowed = peer_allowed (c);
  pthread_mutex_lock (&lock);
  if (nr_hello >= IBCD_MAX_HELLO_CONNS) {
    pthread_mutex_unlock (&lock);
    log_warn ("too many connections before hello: closing pid %ld",
              (long) c->pid);
    conn_unref (c);
    return;
  }
  nr_hello++;
  c->next = conns;
  conns = c;
  pthread_mutex_unlock (&lock);
  if (ibcd_thread_spawn (conn_thread, c) < 0) {
    pthread_mutex_lock (&lock);
    for (struct ibcd_conn **pp = &conns; *pp; pp = &(*pp)->next)
      if (*pp == c) {
        *pp = c->next;
        break;
      }
    nr_hello--;
    pthread_mutex_unlock (&lock);
    conn_unref (c);
  }
}

int
ibcd_server_run (int listen_fd, int signal_fd)
{
  struct pollfd pfd[2] = {
    { .fd = listen_fd, .events = POLLIN },
    { .fd = signal_fd, .events = POLLIN },
  };
  struct timespec ts;
  int r;

  for (;;) {
    if (poll (pfd, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      log_err ("poll: %m");
      break;
    }
    if (pfd[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read (signal_fd, &si, sizeof si) == sizeof si) {
        log_info ("%s: stopping", strsignal ((int) si.ssi_signo));
        break;
      }
    }
    if (pfd[0].revents & POLLIN)
      accept_one (listen_fd);
  }

  /* Clean stop: no new threads, every connection shut down (readers see
   * the end, pending agent calls fail with ENOTCONN), then wait. */
  pthread_mutex_lock (&lock);
  stopping = true;
  for (struct ibcd_conn *c = conns; c; c = c->next)
    shutdown (c->fd, SHUT_RDWR);
  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += 15;
  r = 0;
  while (nr_threads > 0 && r == 0)
    if (pthread_cond_timedwait (&threads_done, &lock, &ts) == ETIMEDOUT) {
      log_warn ("%u threads still running after 15 s", nr_threads);
      r = -ETIMEDOUT;
    }
  pthread_mutex_unlock (&lock);
  return r;
}
