/* ibc-ctl-raw: send raw control-protocol requests or bytes, print replies. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ibcrypt/proto.h"
#include "ibcrypt/secmem.h"

/* A test and benchmark tool for ibcryptd, not a CLI: requests are JSON
 * objects given as they go on the wire (an "id" is added when missing).
 * Every frame received is printed as one line of compact JSON; "closed"
 * is printed when the daemon closes the connection.
 *
 * Exit: 0 all replies received, 1 usage or local error, 3 cannot connect,
 * 4 the connection closed or timed out before a reply. */

static int timeout_ms = 5000;

static void
usage (FILE *f)
{
  fprintf (
      f,
      "Usage: ibc-ctl-raw [OPTIONS] SOCKET [REQUEST...]\n"
      "  REQUEST              a JSON object, or - to read one from stdin\n"
      "  -r, --role ROLE      hello role: cli (default) or agent\n"
      "  -n, --no-hello       do not say hello first\n"
      "  -H, --show-hello     print the hello reply\n"
      "  -s, --secret FILE    attach FILE's bytes as the secret part\n"
      "  -R, --raw FILE       after hello, send FILE's bytes verbatim, shut\n"
      "                       down writing, print every frame until the\n"
      "                       daemon closes or goes quiet\n"
      "  -c, --count N        send each request N times (benchmark: the\n"
      "                       rate goes to stderr, the last reply to stdout)\n"
      "  -a, --serve N        afterwards, act as an agent: answer daemon\n"
      "                       requests with ok (printed with secret_len)\n"
      "                       until N other than status and ping\n"
      "  -P, --reply OP=JSON  serve: reply to OP with JSON's members added\n"
      "                       (with an \"error\" member: an error reply)\n"
      "  -m, --mute           serve: read requests, never answer\n"
      "  -t, --timeout MS     wait this long for each frame (default 5000)\n");
}

/* Wait for a frame and read it: 0, or -errno (-ENODATA: closed). */
static int
read_frame (int fd, struct ibc_frame *f)
{
  struct pollfd pfd = { .fd = fd, .events = POLLIN };
  int r = poll (&pfd, 1, timeout_ms);

  if (r < 0)
    return -errno;
  if (r == 0)
    return -ETIMEDOUT;
  return ibc_frame_read (fd, timeout_ms, f);
}

static void
print_frame (const struct ibc_frame *f)
{
  printf ("%s\n",
          json_object_to_json_string_ext (f->hdr, JSON_C_TO_STRING_PLAIN));
  fflush (stdout);
}

/* Read frames until the reply with id arrives (requests from the daemon
 * meanwhile are printed and left unanswered).  0 or -errno. */
static int
await_reply (int fd, uint64_t id, bool print)
{
  for (;;) {
    struct ibc_frame f = { 0 };
    const char *op;
    uint64_t got;
    int r = read_frame (fd, &f);

    if (r < 0) {
      printf ("closed: %s\n", ibc_errno_name (r) ? ibc_errno_name (r) : "?");
      return r;
    }
    ibc_proto_check_header (f.hdr, &got, &op);
    if (print || op || got != id)
      print_frame (&f);
    ibc_frame_clear (&f);
    if (op == NULL && (got == id || got == 0))
      return 0;
  }
}

/* Canned replies for serve(): OP=JSON members of the reply to OP (an
 * "error" member makes it an error reply). */
#define MAX_CANNED 16
static struct {
  const char *op;
  struct json_object *members;
} canned[MAX_CANNED];
static size_t nr_canned;
static bool mute; /* serve() reads requests but never answers */

static struct json_object *
agent_reply (uint64_t id, const char *op)
{
  struct json_object *reply = NULL, *err;

  for (size_t i = 0; i < nr_canned; i++) {
    if (strcmp (canned[i].op, op) != 0)
      continue;
    if (json_object_object_get_ex (canned[i].members, "error", &err)) {
      reply = json_object_new_object ();
      json_object_object_add (reply, "id", json_object_new_uint64 (id));
    } else
      reply = ibc_proto_reply_ok (id);
    json_object_object_foreach (canned[i].members, k, v)
    {
      json_object_object_add (reply, k, json_object_get (v));
    }
    return reply;
  }
  return ibc_proto_reply_ok (id);
}

/* Act as an agent: answer n requests with ok. */
static int
serve (int fd, long n)
{
  while (n > 0) {
    struct ibc_frame f = { 0 };
    struct json_object *reply;
    const char *op;
    uint64_t id;
    int r = read_frame (fd, &f);

    if (r < 0) {
      printf ("closed: %s\n", ibc_errno_name (r) ? ibc_errno_name (r) : "?");
      return r;
    }
    ibc_proto_check_header (f.hdr, &id, &op);
    if (op) {
      json_object_object_add (f.hdr, "secret_len",
                              json_object_new_uint64 (f.secret_len));
      /* No key_id in key_add's reply: the daemon then assumes its own. */
      if (!mute) {
        reply = agent_reply (id, op);
        ibc_frame_write (fd, reply, NULL, 0);
        json_object_put (reply);
      }
      /* The daemon polls status on its own: not what tests count. */
      if (strcmp (op, "status") != 0 && strcmp (op, "ping") != 0)
        n--;
    }
    print_frame (&f);
    ibc_frame_clear (&f);
  }
  return 0;
}

static int
send_raw (int fd, const char *path)
{
  char buf[65536];
  int in = strcmp (path, "-") == 0 ? 0 : open (path, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  if (in < 0) {
    perror (path);
    return -1;
  }
  while ((n = read (in, buf, sizeof buf)) > 0)
    if (write (fd, buf, n) != n)
      break; /* the daemon may close early: then read what it said */
  if (in > 0)
    close (in);
  /* EOF after the bytes: a truncated frame is then truncated for good
   * instead of waiting out the daemon's frame deadline. */
  shutdown (fd, SHUT_WR);
  for (;;) {
    struct ibc_frame f = { 0 };
    int r = read_frame (fd, &f);
    if (r < 0) {
      printf ("closed: %s\n", ibc_errno_name (r) ? ibc_errno_name (r) : "?");
      return 0;
    }
    print_frame (&f);
    ibc_frame_clear (&f);
  }
}

/* The secret file into locked memory. */
static uint8_t *
read_secret (const char *path, size_t *ret_len)
{
  uint8_t *buf = ibc_secmem_alloc (IBC_PROTO_MAX_SECRET + 1);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  size_t len = 0;
  ssize_t n;

  if (buf == NULL || fd < 0) {
    perror (path);
    exit (1);
  }
  while (len <= IBC_PROTO_MAX_SECRET
         && (n = read (fd, buf + len, IBC_PROTO_MAX_SECRET + 1 - len)) > 0)
    len += n;
  close (fd);
  *ret_len = len;
  return buf;
}

static double
now_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "role", required_argument, NULL, 'r' },
    { "no-hello", no_argument, NULL, 'n' },
    { "show-hello", no_argument, NULL, 'H' },
    { "secret", required_argument, NULL, 's' },
    { "raw", required_argument, NULL, 'R' },
    { "count", required_argument, NULL, 'c' },
    { "serve", required_argument, NULL, 'a' },
    { "timeout", required_argument, NULL, 't' },
    { "reply", required_argument, NULL, 'P' },
    { "mute", no_argument, NULL, 'm' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *role = "cli", *raw = NULL, *secret_path = NULL;
  bool hello = true, show_hello = false;
  long count = 1, serve_n = 0;
  uint8_t *secret = NULL;
  size_t secret_len = 0;
  uint64_t next_id = 1;
  int c, fd, r, status = 0;

  while ((c = getopt_long (argc, argv, "r:nHs:R:c:a:t:P:mh", longopts, NULL))
         != -1) {
    switch (c) {
    case 'r':
      role = optarg;
      break;
    case 'n':
      hello = false;
      break;
    case 'H':
      show_hello = true;
      break;
    case 's':
      secret_path = optarg;
      break;
    case 'R':
      raw = optarg;
      break;
    case 'c':
      count = atol (optarg);
      break;
    case 'a':
      serve_n = atol (optarg);
      break;
    case 't':
      timeout_ms = atoi (optarg);
      break;
    case 'm':
      mute = true;
      break;
    case 'P': {
      char *eq = strchr (optarg, '=');
      struct json_object *m = eq ? json_tokener_parse (eq + 1) : NULL;
      if (m == NULL || !json_object_is_type (m, json_type_object)
          || nr_canned == MAX_CANNED) {
        fprintf (stderr, "ibc-ctl-raw: --reply OP=JSON-OBJECT\n");
        return 1;
      }
      *eq = '\0';
      canned[nr_canned].op = optarg;
      canned[nr_canned++].members = m;
      break;
    }
    case 'h':
      usage (stdout);
      return 0;
    default:
      usage (stderr);
      return 1;
    }
  }
  if (optind >= argc || count < 1) {
    usage (stderr);
    return 1;
  }
  if (ibc_secmem_init () < 0)
    return 1;
  if (secret_path)
    secret = read_secret (secret_path, &secret_len);
  r = ibc_unix_connect (argv[optind++], &fd);
  if (r < 0) {
    fprintf (stderr, "ibc-ctl-raw: connect: %s\n", strerror (-r));
    return 3;
  }

  if (hello) {
    struct json_object *h = ibc_proto_hello_new (next_id++, role);
    if (ibc_frame_write (fd, h, NULL, 0) < 0
        || await_reply (fd, 1, show_hello) < 0)
      status = 4;
    json_object_put (h);
  }
  if (status == 0 && raw)
    status = send_raw (fd, raw) < 0 ? 1 : 0;

  for (; status == 0 && optind < argc; optind++) {
    struct json_object *req, *v;
    char text[1 << 16];
    const char *src = argv[optind];
    double t0 = now_s ();

    if (strcmp (src, "-") == 0) {
      size_t n = fread (text, 1, sizeof text - 1, stdin);
      text[n] = '\0';
      src = text;
    }
    req = json_tokener_parse (src);
    if (req == NULL) {
      fprintf (stderr, "ibc-ctl-raw: not JSON: %s\n", src);
      status = 1;
      break;
    }
    for (long i = 0; i < count && status == 0; i++) {
      uint64_t id = next_id++;
      if (json_object_is_type (req, json_type_object)
          && !json_object_object_get_ex (req, "id", &v))
        json_object_object_add (req, "id", json_object_new_uint64 (id));
      else if (json_object_is_type (req, json_type_object)
               && json_object_is_type (v, json_type_int))
        json_object_object_add (req, "id", json_object_new_uint64 (id));
      r = ibc_frame_write (fd, req, secret, secret_len);
      if (r == -EPIPE || r == -ECONNRESET) {
        printf ("closed: %s\n", ibc_errno_name (r));
        status = 4;
        break;
      }
      if (r < 0) {
        fprintf (stderr, "ibc-ctl-raw: write: %s\n", strerror (-r));
        status = r == -EINVAL || r == -EMSGSIZE ? 1 : 4;
        break;
      }
      if (count > 1 && i + 1 < count) {
        if (await_reply (fd, id, false) < 0)
          status = 4;
      } else if (await_reply (fd, id, true) < 0)
        status = 4;
    }
    if (count > 1 && status == 0) {
      double dt = now_s () - t0;
      fprintf (stderr, "%ld requests in %.3f s: %.0f requests/s\n", count, dt,
               count / dt);
    }
    json_object_put (req);
  }
  if (status == 0 && serve_n > 0)
    status = serve (fd, serve_n) < 0 ? 4 : 0;
  ibc_secmem_free (secret, IBC_PROTO_MAX_SECRET + 1);
  close (fd);
  return status;
}
