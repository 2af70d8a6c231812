/* ibcryptctl's connection to ibcryptd: connect, hello, request/reply. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ibcrypt/proto.h"
#include "ibcryptctl.h"

/* How long a reply may take to start arriving.  The daemon bounds its own
 * waits on agents, so this only catches a daemon that hangs. */
#define CTL_REPLY_TIMEOUT_MS 60000

struct ctl_client {
  int fd;
  uint64_t next_id;
  char *message; /* the daemon's message for the last failed call */
  enum ctl_err_origin origin;
  int peer_version; /* "version" beside a refused hello's error, or -1 */
};

/* Transport failures in words a user understands. */
static const char *
link_text (int r)
{
  switch (-r) {
  case ENODATA:
  case ECONNRESET:
  case EPIPE:
    return "ibcryptd closed the connection";
  case ETIMEDOUT:
    return "timed out waiting for ibcryptd";
  case EPROTO:
  case EBADMSG:
  case EMSGSIZE:
    return "invalid reply from ibcryptd";
  default:
    return NULL;
  }
}

static void
set_failure (struct ctl_client *c, enum ctl_err_origin origin,
             const char *message)
{
  free (c->message);
  c->message = message && message[0] ? strdup (message) : NULL;
  c->origin = origin;
}

/* Wait for the first byte of a reply, then read the whole frame. */
static int
read_reply (struct ctl_client *c, struct ibc_frame *frame)
{
  struct pollfd p = { .fd = c->fd, .events = POLLIN };
  int n;

  do
    n = poll (&p, 1, CTL_REPLY_TIMEOUT_MS);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;
  if (n == 0)
    return -ETIMEDOUT;
  return ibc_frame_read (c->fd, IBC_PROTO_FRAME_TIMEOUT_MS, frame);
}

struct json_object *
ctl_request (const char *op)
{
  /* The id is a placeholder until ctl_call numbers the request. */
  return ibc_proto_request_new (op, 1);
}

int
ctl_call (struct ctl_client *c, struct json_object *req, const void *secret,
          size_t secret_len, struct json_object **ret_reply)
{
  struct ibc_frame frame = { 0 };
  const char *message = NULL;
  uint64_t id = c->next_id++, got = 0;
  int r;

  set_failure (c, CTL_ERR_LOCAL, NULL);
  if (req == NULL)
    return -ENOMEM;
  json_object_object_add (req, "id", json_object_new_uint64 (id));
  r = ibc_frame_write (c->fd, req, secret, secret_len);
  json_object_put (req);
  if (r < 0) {
    c->origin = r == -ENOMEM ? CTL_ERR_LOCAL : CTL_ERR_LINK;
    set_failure (c, c->origin, link_text (r));
    return r;
  }
  r = read_reply (c, &frame);
  if (r < 0) {
    set_failure (c,
                 r == -EBADMSG || r == -EPROTO || r == -ENOMEM ? CTL_ERR_LOCAL
                                                               : CTL_ERR_LINK,
                 link_text (r));
    return r;
  }
  /* A CLI is never sent secrets; drop (and wipe) anything that came. */
  ibc_proto_check_header (frame.hdr, &got, NULL);
  r = ibc_proto_reply_result (frame.hdr, &message);
  if (r == -EBADMSG || (got != id && got != 0)) {
    set_failure (c, CTL_ERR_LOCAL, "invalid reply from ibcryptd");
    ibc_frame_clear (&frame);
    return -EPROTO;
  }
  if (r < 0) {
    set_failure (c, CTL_ERR_LOCAL, message);
    if (ibc_proto_get_int (frame.hdr, "version", &c->peer_version) < 0)
      c->peer_version = -1;
    ibc_frame_clear (&frame);
    return r;
  }
  *ret_reply = json_object_get (frame.hdr);
  ibc_frame_clear (&frame);
  return 0;
}

const char *
ctl_client_message (const struct ctl_client *c)
{
  return c->message;
}

enum ctl_err_origin
ctl_client_origin (const struct ctl_client *c)
{
  return c->origin;
}

struct ctl_client *
ctl_connect (int *ret_status)
{
  struct ctl_client *c = calloc (1, sizeof *c);
  struct json_object *reply = NULL;
  int r;

  if (c == NULL) {
    *ret_status = ctl_error (CTL_ERR_LOCAL, ENOMEM,
                             "connecting to ibcryptd at '%s': %s", ctl.socket,
                             strerror (ENOMEM));
    return NULL;
  }
  c->fd = -1;
  c->next_id = 1;
  c->peer_version = -1;
  r = ibc_unix_connect (ctl.socket, &c->fd);
  if (r < 0) {
    *ret_status
        = ctl_error (CTL_ERR_CONNECT, r, "connecting to ibcryptd at '%s': %s",
                     ctl.socket, strerror (-r));
    ctl_client_free (c);
    return NULL;
  }
  r = ctl_call (c, ibc_proto_hello_new (1, "cli"), NULL, 0, &reply);
  if (r < 0) {
    /* The daemon refusing us (permission, version) keeps its errno; a
     * connection that dies during hello is an unreachable daemon. */
    enum ctl_err_origin o
        = c->origin == CTL_ERR_LINK ? CTL_ERR_CONNECT : CTL_ERR_LOCAL;
    char *m = ctl_escape (c->message ? c->message : strerror (-r), false);

    if (r == -EPROTO && c->peer_version >= 0)
      *ret_status = ctl_error (o, r,
                               "connecting to ibcryptd at '%s': daemon speaks "
                               "protocol version %d, this client speaks %d",
                               ctl.socket, c->peer_version, IBC_PROTO_VERSION);
    else
      *ret_status = ctl_error (o, r, "connecting to ibcryptd at '%s': %s",
                               ctl.socket, m);
    free (m);
    ctl_client_free (c);
    return NULL;
  }
  json_object_put (reply);
  return c;
}

void
ctl_client_free (struct ctl_client *c)
{
  if (c == NULL)
    return;
  if (c->fd >= 0)
    close (c->fd);
  free (c->message);
  free (c);
}

int
ctl_call_failed (const struct ctl_client *c, int r, const char *fmt, ...)
{
  char *reason = ctl_escape (c->message ? c->message : strerror (-r), false);
  char doing[512];
  va_list ap;
  int status;

  va_start (ap, fmt);
  vsnprintf (doing, sizeof doing, fmt, ap);
  va_end (ap);
  status = ctl_error (c->origin, r, "%s: %s", doing, reason);
  free (reason);
  return status;
}

int
ctl_simple_call (struct json_object *req, struct json_object **ret_reply,
                 const char *fmt, ...)
{
  struct ctl_client *c;
  char doing[512];
  va_list ap;
  int status, r;

  va_start (ap, fmt);
  vsnprintf (doing, sizeof doing, fmt, ap);
  va_end (ap);
  c = ctl_connect (&status);
  if (c == NULL) {
    json_object_put (req);
    return status;
  }
  r = ctl_call (c, req, NULL, 0, ret_reply);
  if (r < 0)
    status = ctl_call_failed (c, r, "%s", doing);
  else
    status = 0;
  ctl_client_free (c);
  return status;
}
