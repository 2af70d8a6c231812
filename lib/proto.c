/* The ibcryptd wire protocol: reading and writing frames (prefix, JSON, secret). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ibcrypt/proto.h"
#include "ibcrypt/secmem.h"

/* ---- deadlines ---------------------------------------------------------- */

static int64_t
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A deadline timeout_ms from now, or -1 for none (poll(2) semantics). */
static int64_t
deadline_after (int timeout_ms)
{
  return timeout_ms < 0 ? -1 : now_ms () + timeout_ms;
}

/* Wait until fd is ready for events or the deadline passes.  Readiness
 * includes POLLHUP/POLLERR: the following read or write reports them. */
static int
wait_fd (int fd, short events, int64_t deadline)
{
  struct pollfd pfd = { .fd = fd, .events = events };

  for (;;) {
    int timeout = -1;

    if (deadline >= 0) {
      int64_t left = deadline - now_ms ();
      timeout = left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int) left;
    }
    int r = poll (&pfd, 1, timeout);
    if (r < 0 && errno == EINTR)
      continue; /* recompute what is left of the deadline */
    if (r < 0)
      return -errno;
    if (r == 0)
      return -ETIMEDOUT;
    if (pfd.revents & POLLNVAL)
      return -EBADF;
    return 0;
  }
}

/* Read exactly len bytes once a frame has started: EOF is a truncated
 * frame. */
static int
read_rest (int fd, void *buf, size_t len, int64_t deadline)
{
  uint8_t *p = buf;

  while (len > 0) {
    int r = wait_fd (fd, POLLIN, deadline);
    if (r < 0)
      return r;
    ssize_t n = read (fd, p, len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return -ECONNRESET;
    p += n;
    len -= (size_t) n;
  }
  return 0;
}

/* ---- frames ------------------------------------------------------------- */

static uint32_t
get_be32 (const uint8_t *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8
         | p[3];
}

static void
put_be32 (uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) (v >> 24);
  p[1] = (uint8_t) (v >> 16);
  p[2] = (uint8_t) (v >> 8);
  p[3] = (uint8_t) v;
}

/* Parse exactly len bytes as one JSON object: strict grammar, valid UTF-8,
 * nothing but whitespace after it. */
static int
parse_header (const char *buf, size_t len, struct json_object **ret)
{
  struct json_tokener *tok = json_tokener_new_ex (JSON_TOKENER_DEFAULT_DEPTH);
  struct json_object *obj;

  if (tok == NULL)
    return -ENOMEM;
  json_tokener_set_flags (tok,
                          JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  obj = json_tokener_parse_ex (tok, buf, (int) len);
  if (obj == NULL || json_tokener_get_error (tok) != json_tokener_success
      || json_tokener_get_parse_end (tok) != len
      || !json_object_is_type (obj, json_type_object)) {
    json_object_put (obj);
    json_tokener_free (tok);
    return -EBADMSG;
  }
  json_tokener_free (tok);
  *ret = obj;
  return 0;
}

int
ibc_frame_read (int fd, int timeout_ms, struct ibc_frame *ret)
{
  uint8_t prefix[IBC_PROTO_PREFIX_LEN];
  uint32_t hlen, slen;
  char *hbuf = NULL;
  uint8_t *secret = NULL;
  struct json_object *hdr = NULL;
  int64_t deadline;
  ssize_t n;
  int r;

  /* The first read follows the fd's own blocking mode: waiting for a peer
   * to start talking is the caller's business. */
  n = read (fd, prefix, sizeof prefix);
  if (n < 0)
    return -errno;
  if (n == 0)
    return -ENODATA;
  deadline = deadline_after (timeout_ms);
  r = read_rest (fd, prefix + n, sizeof prefix - (size_t) n, deadline);
  if (r < 0)
    return r;

  if (memcmp (prefix, IBC_PROTO_MAGIC, IBC_PROTO_MAGIC_LEN) != 0)
    return -EPROTO;
  hlen = get_be32 (prefix + 4);
  slen = get_be32 (prefix + 8);
  if (hlen == 0)
    return -EPROTO;
  /* Bounds before allocation: a peer cannot make us reserve more. */
  if (hlen > IBC_PROTO_MAX_HEADER || slen > IBC_PROTO_MAX_SECRET)
    return -EMSGSIZE;

  hbuf = malloc (hlen);
  if (hbuf == NULL)
    return -ENOMEM;
  r = read_rest (fd, hbuf, hlen, deadline);
  if (r < 0)
    goto out_free_hbuf;

  if (slen > 0) {
    /* Straight from the socket into locked memory: no other copy. */
    secret = ibc_secmem_alloc (slen);
    if (secret == NULL) {
      r = -ENOMEM;
      goto out_free_hbuf;
    }
    r = read_rest (fd, secret, slen, deadline);
    if (r < 0)
      goto out_free_secret;
  }

  /* Parse only once the whole frame is consumed, so that -EBADMSG leaves
   * the stream in sync and the caller can answer and carry on. */
  r = parse_header (hbuf, hlen, &hdr);
  if (r < 0)
    goto out_free_secret;
  if (ibc_proto_check_header (hdr, NULL, NULL) < 0) {
    r = -EBADMSG;
    goto out_put_hdr;
  }
  free (hbuf);
  ret->hdr = hdr;
  ret->secret = secret;
  ret->secret_len = slen;
  return 0;

out_put_hdr:
  json_object_put (hdr);
out_free_secret:
  ibc_secmem_free (secret, slen); /* wipes */
out_free_hbuf:
  free (hbuf);
  return r;
}

/* Drop the first n written bytes from the iovec array. */
static void
iov_advance (struct iovec **iov, int *cnt, size_t n)
{
  while (n > 0 && *cnt > 0) {
    if (n < (*iov)->iov_len) {
      (*iov)->iov_base = (uint8_t *) (*iov)->iov_base + n;
      (*iov)->iov_len -= n;
      return;
    }
    n -= (*iov)->iov_len;
    (*iov)++;
    (*cnt)--;
  }
  /* Skip empty trailing entries so the loop below ends. */
  while (*cnt > 0 && (*iov)->iov_len == 0) {
    (*iov)++;
    (*cnt)--;
  }
}

static int
write_all (int fd, struct iovec *iov, int cnt, int64_t deadline)
{
  bool is_socket = true;

  while (cnt > 0) {
    ssize_t n;

    if (is_socket) {
      struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t) cnt };
      /* MSG_DONTWAIT keeps even a blocking socket under the deadline. */
      n = sendmsg (fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == ENOTSOCK) {
        is_socket = false;
        continue;
      }
    } else
      n = writev (fd, iov, cnt);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN) {
      int r = wait_fd (fd, POLLOUT, deadline);
      if (r < 0)
        return r;
      continue;
    }
    if (n < 0)
      return -errno;
    iov_advance (&iov, &cnt, (size_t) n);
  }
  return 0;
}

int
ibc_frame_write_timeout (int fd, int timeout_ms, struct json_object *hdr,
                         const void *secret, size_t len)
{
  uint8_t prefix[IBC_PROTO_PREFIX_LEN];
  struct iovec iov[3];
  const char *json;
  size_t hlen;

  if (secret == NULL && len > 0)
    return -EINVAL;
  if (ibc_proto_check_header (hdr, NULL, NULL) < 0)
    return -EINVAL;
  if (len > IBC_PROTO_MAX_SECRET)
    return -EMSGSIZE;
  json = json_object_to_json_string_length (
      hdr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &hlen);
  if (json == NULL)
    return -ENOMEM;
  if (hlen == 0 || hlen > IBC_PROTO_MAX_HEADER)
    return -EMSGSIZE;

  memcpy (prefix, IBC_PROTO_MAGIC, IBC_PROTO_MAGIC_LEN);
  put_be32 (prefix + 4, (uint32_t) hlen);
  put_be32 (prefix + 8, (uint32_t) len);
  iov[0] = (struct iovec){ .iov_base = prefix, .iov_len = sizeof prefix };
  iov[1] = (struct iovec){ .iov_base = (void *) json, .iov_len = hlen };
  iov[2] = (struct iovec){ .iov_base = (void *) secret, .iov_len = len };
  /* The kernel copies the secret into the socket buffer; we keep none. */
  return write_all (fd, iov, len > 0 ? 3 : 2, deadline_after (timeout_ms));
}

int
ibc_frame_write (int fd, struct json_object *hdr, const void *secret,
                 size_t len)
{
  return ibc_frame_write_timeout (fd, IBC_PROTO_FRAME_TIMEOUT_MS, hdr, secret,
                                  len);
}

void
ibc_frame_clear (struct ibc_frame *frame)
{
  if (frame == NULL)
    return;
  json_object_put (frame->hdr);
  ibc_secmem_free (frame->secret, frame->secret_len);
  frame->hdr = NULL;
  frame->secret = NULL;
  frame->secret_len = 0;
}
