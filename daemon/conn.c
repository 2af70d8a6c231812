/* ibcryptd connections: serialised writes and requests awaiting replies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ibcryptd.h"

/* A request the daemon sent on a connection, waiting for its reply.  The
 * waiter owns it; the reader only fills it in, under the connection's
 * plock, and signals. */
struct ibcd_pending {
  struct ibcd_pending *next;
  struct ibcd_conn *conn; /* a reference */
  uint64_t id;
  bool done;
  int err; /* when done without a reply: -ENOTCONN */
  struct json_object *reply;
  pthread_cond_t cond; /* CLOCK_MONOTONIC, with conn->plock */
};

int64_t
ibcd_now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct ibcd_conn *
conn_new (int fd)
{
  struct ibcd_conn *c = calloc (1, sizeof *c);

  if (c == NULL)
    return NULL;
  c->fd = fd;
  c->refs = 1;
  c->next_id = 1;
  pthread_mutex_init (&c->wlock, NULL);
  pthread_mutex_init (&c->plock, NULL);
  return c;
}

struct ibcd_conn *
conn_ref (struct ibcd_conn *c)
{
  __atomic_add_fetch (&c->refs, 1, __ATOMIC_RELAXED);
  return c;
}

void
conn_unref (struct ibcd_conn *c)
{
  if (c == NULL || __atomic_sub_fetch (&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  /* Every pending request holds a reference: none is left. */
  close (c->fd);
  pthread_mutex_destroy (&c->wlock);
  pthread_mutex_destroy (&c->plock);
  free (c);
}

int
conn_send (struct ibcd_conn *c, struct json_object *msg, const void *secret,
           size_t len)
{
  int r;

  /* Why: frames of concurrent writers (a CLI thread pushing a key, the
   * reader answering the agent) must not interleave on the stream. */
  pthread_mutex_lock (&c->wlock);
  r = ibc_frame_write (c->fd, msg, secret, len);
  pthread_mutex_unlock (&c->wlock);
  if (r < 0 && r != -EINVAL && r != -EMSGSIZE && r != -ENOMEM) {
    /* A partial frame may be on the wire: the stream is lost.  The reader
     * sees the end and cleans up. */
    shutdown (c->fd, SHUT_RDWR);
  }
  return r;
}

static void
pending_free (struct ibcd_pending *p)
{
  json_object_put (p->reply);
  pthread_cond_destroy (&p->cond);
  conn_unref (p->conn);
  free (p);
}

/* Unlink p from its connection's list; plock held. */
static void
pending_unlink (struct ibcd_pending *p)
{
  for (struct ibcd_pending **pp = &p->conn->pending; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      return;
    }
}

int
conn_request_start (struct ibcd_conn *c, struct json_object *request,
                    const void *secret, size_t len,
                    struct ibcd_pending **ret_pending)
{
  struct ibcd_pending *p = calloc (1, sizeof *p);
  pthread_condattr_t attr;
  int r;

  if (p == NULL)
    return -ENOMEM;
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&p->cond, &attr);
  pthread_condattr_destroy (&attr);
  p->conn = conn_ref (c);

  /* Registered before the write: the reply may arrive before
   * ibc_frame_write() returns. */
  pthread_mutex_lock (&c->plock);
  if (c->dead) {
    pthread_mutex_unlock (&c->plock);
    pending_free (p);
    return -ENOTCONN;
  }
  p->id = c->next_id++;
  p->next = c->pending;
  c->pending = p;
  pthread_mutex_unlock (&c->plock);

  json_object_object_add (request, "id", json_object_new_uint64 (p->id));
  r = conn_send (c, request, secret, len);
  if (r < 0) {
    pthread_mutex_lock (&c->plock);
    pending_unlink (p);
    pthread_mutex_unlock (&c->plock);
    pending_free (p);
    return r == -EPIPE || r == -ECONNRESET ? -ENOTCONN : r;
  }
  *ret_pending = p;
  return 0;
}

int
conn_request_wait (struct ibcd_pending *p, int64_t deadline_ms,
                   struct json_object **ret_reply)
{
  struct ibcd_conn *c = p->conn;
  struct timespec ts = {
    .tv_sec = deadline_ms / 1000,
    .tv_nsec = (deadline_ms % 1000) * 1000000,
  };
  int r = 0;

  pthread_mutex_lock (&c->plock);
  while (!p->done && r == 0)
    r = pthread_cond_timedwait (&p->cond, &c->plock, &ts);
  if (!p->done)
    pending_unlink (p); /* a late reply is then logged and dropped */
  pthread_mutex_unlock (&c->plock);

  if (!p->done)
    r = -ETIMEDOUT;
  else if (p->reply == NULL)
    r = p->err;
  else {
    *ret_reply = p->reply;
    p->reply = NULL;
    r = 0;
  }
  pending_free (p);
  return r;
}

int
conn_call (struct ibcd_conn *c, struct json_object *request, const void *secret,
           size_t len, int timeout_ms, struct json_object **ret_reply)
{
  struct ibcd_pending *p;
  int r = conn_request_start (c, request, secret, len, &p);

  if (r < 0)
    return r;
  return conn_request_wait (p, ibcd_now_ms () + timeout_ms, ret_reply);
}

bool
conn_route_reply (struct ibcd_conn *c, uint64_t id, struct json_object *reply)
{
  bool found = false;

  pthread_mutex_lock (&c->plock);
  for (struct ibcd_pending *p = c->pending; p; p = p->next)
    if (p->id == id) {
      pending_unlink (p);
      p->reply = json_object_get (reply);
      p->done = true;
      pthread_cond_signal (&p->cond);
      found = true;
      break;
    }
  pthread_mutex_unlock (&c->plock);
  return found;
}

void
conn_mark_dead (struct ibcd_conn *c)
{
  pthread_mutex_lock (&c->plock);
  c->dead = true;
  while (c->pending) {
    struct ibcd_pending *p = c->pending;
    c->pending = p->next;
    p->err = -ENOTCONN;
    p->done = true;
    pthread_cond_signal (&p->cond);
  }
  pthread_mutex_unlock (&c->plock);
}
