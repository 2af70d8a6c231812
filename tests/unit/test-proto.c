/* Unit tests: control-plane frames (framing, limits, deadlines, secrets). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ibc-check.h"
#include "ibcrypt/proto.h"
#include "ibcrypt/secmem.h"

/* ---- scaffolding -------------------------------------------------------- */

static int sp[2]; /* sp[0] writes, sp[1] reads */

static void
pair_setup (void)
{
  ck_assert_int_eq (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
}

static void
pair_teardown (void)
{
  close (sp[0]);
  close (sp[1]);
}

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
send_raw (int fd, const void *buf, size_t len)
{
  ck_assert_int_eq (send (fd, buf, len, MSG_NOSIGNAL), (ssize_t) len);
}

static void
send_prefix (int fd, const char *magic, uint32_t hlen, uint32_t slen)
{
  uint8_t p[12];
  memcpy (p, magic, 4);
  for (int i = 0; i < 4; i++) {
    p[4 + i] = (uint8_t) (hlen >> (24 - 8 * i));
    p[8 + i] = (uint8_t) (slen >> (24 - 8 * i));
  }
  send_raw (fd, p, sizeof p);
}

/* A complete hand-made frame: header text, then slen bytes of 0xA5. */
static void
send_frame (int fd, const char *json, size_t hlen, uint32_t slen)
{
  uint8_t s[IBC_PROTO_MAX_SECRET];
  send_prefix (fd, "IBC1", (uint32_t) hlen, slen);
  send_raw (fd, json, hlen);
  memset (s, 0xA5, slen);
  if (slen)
    send_raw (fd, s, slen);
}

/* Records what ibc_secmem_free saw: the region, and whether it was zero. */
static const void *freed_p;
static size_t freed_size;
static int freed_zero;

static void
free_hook (const void *p, size_t size)
{
  const uint8_t *b = p;
  freed_p = p;
  freed_size = size;
  freed_zero = 1;
  for (size_t i = 0; i < size; i++)
    if (b[i] != 0)
      freed_zero = 0;
}

static void
hook_reset (void)
{
  freed_p = NULL;
  freed_size = 0;
  freed_zero = -1;
  ibc_secmem_set_free_hook (free_hook);
}

/* The frame is a ping request with this id; then clear it. */
static void
expect_ping (int fd, uint64_t want_id)
{
  struct ibc_frame f = { 0 };
  uint64_t id;
  const char *op;

  ck_assert_int_eq (ibc_frame_read (fd, 1000, &f), 0);
  ck_assert_int_eq (ibc_proto_check_header (f.hdr, &id, &op), 0);
  ck_assert_uint_eq (id, want_id);
  ck_assert_str_eq (op, "ping");
  ibc_frame_clear (&f);
}

/* ---- round trips -------------------------------------------------------- */

START_TEST (test_roundtrip_plain)
{
  struct json_object *req = ibc_proto_request_new ("ping", 7);
  struct ibc_frame f = { 0 };
  const char want[] = "IBC1\0\0\0\x14\0\0\0\0{\"id\":7,\"op\":\"ping\"}";
  char got[sizeof want - 1];
  const char *s;
  uint64_t u;

  /* The exact bytes on the wire. */
  ck_assert_int_eq (ibc_frame_write (sp[0], req, NULL, 0), 0);
  ck_assert_int_eq (read (sp[1], got, sizeof got), (ssize_t) sizeof got);
  ck_assert_mem_eq (got, want, sizeof got);

  /* And back: extra members survive, no secret. */
  json_object_object_add (req, "name",
                          json_object_new_string ("disk0 \xc3\xa9"));
  json_object_object_add (req, "size", json_object_new_uint64 (UINT64_MAX));
  ck_assert_int_eq (ibc_frame_write (sp[0], req, NULL, 0), 0);
  ck_assert_int_eq (ibc_frame_read (sp[1], 1000, &f), 0);
  ck_assert_ptr_null (f.secret);
  ck_assert_uint_eq (f.secret_len, 0);
  ck_assert_int_eq (ibc_proto_get_string (f.hdr, "name", &s), 0);
  ck_assert_str_eq (s, "disk0 \xc3\xa9");
  ck_assert_int_eq (ibc_proto_get_u64 (f.hdr, "size", &u), 0);
  ck_assert_uint_eq (u, UINT64_MAX);
  ibc_frame_clear (&f);
  ck_assert_ptr_null (f.hdr);
  ibc_frame_clear (&f); /* twice is fine */
  ibc_frame_clear (NULL);
  json_object_put (req);
}
END_TEST

START_TEST (test_roundtrip_secret)
{
  struct json_object *req = ibc_proto_request_new ("key_add", 3);
  uint8_t key[64], big[IBC_PROTO_MAX_SECRET];
  struct ibc_frame f = { 0 };
  uint8_t *where;

  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) (i * 7 + 1);
  ck_assert_int_eq (ibc_frame_write (sp[0], req, key, sizeof key), 0);
  ck_assert_int_eq (ibc_frame_read (sp[1], 1000, &f), 0);
  ck_assert_uint_eq (f.secret_len, 64);
  ck_assert_mem_eq (f.secret, key, 64);

  /* The secret lives in ibc_secmem memory: clearing hands exactly that
   * region, wiped, to ibc_secmem_free. */
  hook_reset ();
  where = f.secret;
  ibc_frame_clear (&f);
  ibc_secmem_set_free_hook (NULL);
  ck_assert_ptr_eq (freed_p, where);
  ck_assert_uint_eq (freed_size, 64);
  ck_assert_int_eq (freed_zero, 1);
  ck_assert_ptr_null (f.secret);
  ck_assert_uint_eq (f.secret_len, 0);

  /* The largest secret, then a frame without one: boundaries kept. */
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (uint8_t) (i ^ (i >> 8));
  ck_assert_int_eq (ibc_frame_write (sp[0], req, big, sizeof big), 0);
  ck_assert_int_eq (ibc_frame_write (sp[0], req, NULL, 0), 0);
  ck_assert_int_eq (ibc_frame_read (sp[1], 1000, &f), 0);
  ck_assert_uint_eq (f.secret_len, sizeof big);
  ck_assert_mem_eq (f.secret, big, sizeof big);
  ibc_frame_clear (&f);
  ck_assert_int_eq (ibc_frame_read (sp[1], 1000, &f), 0);
  ck_assert_uint_eq (f.secret_len, 0);
  ibc_frame_clear (&f);
  json_object_put (req);
}
END_TEST

/* A header of exactly IBC_PROTO_MAX_HEADER bytes: {"id":1,"op":"ping",
 * "pad":"xxx..."}. */
static struct json_object *
max_header (size_t extra)
{
  struct json_object *m = ibc_proto_request_new ("ping", 1);
  size_t fixed = strlen ("{\"id\":1,\"op\":\"ping\",\"pad\":\"\"}");
  size_t n = IBC_PROTO_MAX_HEADER - fixed + extra;
  char *pad = malloc (n + 1);
  memset (pad, 'x', n);
  pad[n] = '\0';
  json_object_object_add (m, "pad", json_object_new_string (pad));
  free (pad);
  return m;
}

static void *
write_max_thread (void *arg)
{
  struct json_object *m = arg;
  uint8_t s[32] = { 1, 2, 3 };
  return (void *) (intptr_t) ibc_frame_write (sp[0], m, s, sizeof s);
}

START_TEST (test_max_header_partial_writes)
{
  struct json_object *m = max_header (0), *over = max_header (1);
  struct ibc_frame f = { 0 };
  const char *pad;
  pthread_t t;
  void *res;

  /* 1 MiB does not fit a socket buffer: the writer's sendmsg comes back
   * short and continues while we read. */
  pthread_create (&t, NULL, write_max_thread, m);
  ck_assert_int_eq (ibc_frame_read (sp[1], 5000, &f), 0);
  pthread_join (t, &res);
  ck_assert_int_eq ((int) (intptr_t) res, 0);
  ck_assert_int_eq (ibc_proto_get_string (f.hdr, "pad", &pad), 0);
  ck_assert_uint_eq (strlen (pad), IBC_PROTO_MAX_HEADER - 29);
  ck_assert_uint_eq (f.secret_len, 32);
  ck_assert_int_eq (f.secret[2], 3);
  ibc_frame_clear (&f);

  /* One byte more is refused before anything is sent. */
  ck_assert_int_eq (ibc_frame_write (sp[0], over, NULL, 0), -EMSGSIZE);
  int avail = -1;
  ck_assert_int_eq (ioctl (sp[1], FIONREAD, &avail), 0);
  ck_assert_int_eq (avail, 0);

  /* A peer that never reads: the write deadline fires. */
  int64_t t0 = now_ms ();
  ck_assert_int_eq (ibc_frame_write_timeout (sp[0], 100, m, NULL, 0),
                    -ETIMEDOUT);
  int64_t dt = now_ms () - t0;
  ck_assert_int_ge (dt, 90);
  ck_assert_int_lt (dt, 2000);
  json_object_put (m);
  json_object_put (over);
}
END_TEST

/* Writes a whole frame one byte at a time with pauses. */
static void *
slow_writer_thread (void *arg)
{
  const char *json = "{\"op\":\"ping\",\"id\":42}";
  size_t hlen = strlen (json), i = 0;
  uint8_t buf[12 + 64 + 16];
  (void) arg;

  memcpy (buf, "IBC1\0\0\0", 7);
  buf[7] = (uint8_t) hlen;
  memcpy (buf + 8, "\0\0\0\x10", 4);
  memcpy (buf + 12, json, hlen);
  memset (buf + 12 + hlen, 0x5A, 16);
  for (i = 0; i < 12 + hlen + 16; i++) {
    send_raw (sp[0], buf + i, 1);
    usleep (2000);
  }
  return NULL;
}

START_TEST (test_slow_writer)
{
  struct ibc_frame f = { 0 };
  uint64_t id;
  pthread_t t;

  pthread_create (&t, NULL, slow_writer_thread, NULL);
  ck_assert_int_eq (ibc_frame_read (sp[1], 3000, &f), 0);
  pthread_join (t, NULL);
  ck_assert_int_eq (ibc_proto_check_header (f.hdr, &id, NULL), 0);
  ck_assert_uint_eq (id, 42);
  ck_assert_uint_eq (f.secret_len, 16);
  ck_assert_int_eq (f.secret[0], 0x5A);
  ck_assert_int_eq (f.secret[15], 0x5A);
  ibc_frame_clear (&f);

  /* The same on a non-blocking fd (the poll path from the first byte). */
  fcntl (sp[1], F_SETFL, fcntl (sp[1], F_GETFL) | O_NONBLOCK);
  pthread_create (&t, NULL, slow_writer_thread, NULL);
  usleep (5000);
  ck_assert_int_eq (ibc_frame_read (sp[1], 3000, &f), 0);
  pthread_join (t, NULL);
  ck_assert_uint_eq (f.secret_len, 16);
  ibc_frame_clear (&f);
}
END_TEST

static void *
late_writer_thread (void *arg)
{
  struct json_object *m = ibc_proto_request_new ("ping", 9);
  (void) arg;
  usleep (200 * 1000);
  ibc_frame_write (sp[0], m, NULL, 0);
  json_object_put (m);
  return NULL;
}

START_TEST (test_first_byte_wait)
{
  struct ibc_frame f = { 0 };
  pthread_t t;

  /* The deadline starts with the first byte: a blocking read waits for a
   * frame sent 200 ms later even with a 50 ms timeout. */
  pthread_create (&t, NULL, late_writer_thread, NULL);
  ck_assert_int_eq (ibc_frame_read (sp[1], 50, &f), 0);
  pthread_join (t, NULL);
  ibc_frame_clear (&f);

  /* Non-blocking with nothing queued: -EAGAIN, frame untouched. */
  fcntl (sp[1], F_SETFL, fcntl (sp[1], F_GETFL) | O_NONBLOCK);
  f.secret_len = 12345;
  ck_assert_int_eq (ibc_frame_read (sp[1], 50, &f), -EAGAIN);
  ck_assert_uint_eq (f.secret_len, 12345);

  /* Clean EOF before any byte. */
  shutdown (sp[0], SHUT_WR);
  ck_assert_int_eq (ibc_frame_read (sp[1], 50, &f), -ENODATA);
  ck_assert_uint_eq (f.secret_len, 12345);
}
END_TEST

/* ---- malformed frames --------------------------------------------------- */

START_TEST (test_bad_prefix)
{
  struct ibc_frame f = { 0 };
  int avail;

  send_prefix (sp[0], "IBC2", 2, 0);
  ck_assert_int_eq (ibc_frame_read (sp[1], 1000, &f), -EPROTO);
  send_prefix (sp[0], "ibc1", 2, 0);
  ck_assert_int_eq (ibc_frame_read (sp[1], 1000, &f), -EPROTO);
  send_prefix (sp[0], "IBC1", 0, 0);
  ck_assert_int_eq (ibc_frame_read (sp[1], 1000, &f), -EPROTO);

  /* Over the limits: refused from the prefix alone, at once (the body is
   * never waited for, nor allocated), and nothing after it is consumed. */
  const uint32_t lens[][2] = {
    { IBC_PROTO_MAX_HEADER + 1, 0 },
    { UINT32_MAX, 0 },
    { 2, IBC_PROTO_MAX_SECRET + 1 },
    { 2, UINT32_MAX },
  };
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    send_prefix (sp[0], "IBC1", lens[i][0], lens[i][1]);
    send_raw (sp[0], "{}x", 3);
    int64_t t0 = now_ms ();
    ck_assert_int_eq (ibc_frame_read (sp[1], 5000, &f), -EMSGSIZE);
    ck_assert_int_lt (now_ms () - t0, 1000);
    ck_assert_int_eq (ioctl (sp[1], FIONREAD, &avail), 0);
    ck_assert_int_eq (avail, 3);
    char junk[3];
    ck_assert_int_eq (read (sp[1], junk, 3), 3);
  }
  ck_assert_ptr_null (f.hdr);
}
END_TEST

/* Truncated at each part then EOF: -ECONNRESET, partial secret wiped. */
START_TEST (test_truncated_eof)
{
  static const char json[] = "{\"id\":1,\"op\":\"ping\"}";
  struct ibc_frame f = { 0 };
  int step = _i; /* 0 prefix, 1 header, 2 secret */

  hook_reset ();
  if (step == 0)
    send_raw (sp[0], "IBC1\0\0", 6);
  else {
    send_prefix (sp[0], "IBC1", sizeof json - 1, 32);
    send_raw (sp[0], json, step == 1 ? 5 : sizeof json - 1);
    if (step == 2)
      send_raw (sp[0], "\x11\x22\x33\x44\x55", 5);
  }
  shutdown (sp[0], SHUT_WR);
  ck_assert_int_eq (ibc_frame_read (sp[1], 1000, &f), -ECONNRESET);
  ck_assert_ptr_null (f.hdr);
  if (step == 2) {
    ck_assert_uint_eq (freed_size, 32);
    ck_assert_int_eq (freed_zero, 1);
  } else
    ck_assert_ptr_null (freed_p);
  ibc_secmem_set_free_hook (NULL);
}
END_TEST

/* Truncated at each part then silence: -ETIMEDOUT after ~100 ms. */
START_TEST (test_truncated_silence)
{
  static const char json[] = "{\"id\":1,\"op\":\"ping\"}";
  struct ibc_frame f = { 0 };
  int step = _i;

  hook_reset ();
  if (step == 0)
    send_raw (sp[0], "I", 1);
  else {
    send_prefix (sp[0], "IBC1", sizeof json - 1, 32);
    send_raw (sp[0], json, step == 1 ? 5 : sizeof json - 1);
    if (step == 2)
      send_raw (sp[0], "\x11\x22\x33", 3);
  }
  int64_t t0 = now_ms ();
  ck_assert_int_eq (ibc_frame_read (sp[1], 100, &f), -ETIMEDOUT);
  int64_t dt = now_ms () - t0;
  ck_assert_int_ge (dt, 90);
  ck_assert_int_lt (dt, 1000);
  if (step == 2) {
    ck_assert_uint_eq (freed_size, 32);
    ck_assert_int_eq (freed_zero, 1);
  }
  ibc_secmem_set_free_hook (NULL);
}
END_TEST

/* Headers that arrive whole but are not a valid message: -EBADMSG, and the
 * stream stays in sync (the next frame reads fine). */
static const char *const bad_headers[] = {
  "hello",
  "[1,2]",
  "\"op\"",
  "{\"id\":1,\"op\":\"ping\"} x",
  "{\"id\":1,\"op\":\"ping\"}{}",
  "{\"id\":1,\"op\":\"ping\"",
  "{'id':1,'op':'ping'}",
  "{\"id\":1,\"op\":\"p\xffng\"}",
  "{\"id\":1}",
  "{\"op\":\"ping\"}",
  "{\"id\":1,\"op\":42}",
  "{\"id\":1,\"op\":null}",
  "{\"id\":1,\"op\":\"\"}",
  "{\"id\":1,\"op\":\"Ping\"}",
  "{\"id\":1,\"op\":\"ping\\u0000x\"}",
  "{\"id\":1,\"op\":\"ping now\"}",
  "{\"id\":-1,\"op\":\"ping\"}",
  "{\"id\":1.0,\"op\":\"ping\"}",
  "{\"id\":\"1\",\"op\":\"ping\"}",
  "{\"id\":null,\"op\":\"ping\"}",
  "{\"id\":0,\"op\":\"ping\"}",
  "{\"id\":9007199254740992,\"op\":\"ping\"}",
  "{\"id\":1,\"op\":\"ping\",\"ok\":true}",
  "{\"id\":1,\"ok\":false}",
  "{\"id\":1,\"ok\":1}",
  "{\"id\":1,\"ok\":true,\"error\":{\"errno\":2,\"name\":\"ENOENT\","
  "\"message\":\"\"}}",
  "{\"id\":1,\"error\":{\"errno\":2,\"message\":\"x\"}}",
  "{\"id\":1,\"error\":{\"errno\":0,\"name\":\"E\",\"message\":\"x\"}}",
  "{\"id\":1,\"error\":{\"errno\":4096,\"name\":\"E\",\"message\":\"x\"}}",
  "{\"id\":1,\"error\":{\"errno\":\"2\",\"name\":\"E\",\"message\":\"x\"}}",
  "{\"id\":1,\"error\":\"ENOENT\"}",
};

START_TEST (test_bad_header)
{
  const char *h = bad_headers[_i];
  struct ibc_frame f = { 0 };

  hook_reset ();
  send_frame (sp[0], h, strlen (h), _i % 2 ? 8 : 0);
  send_frame (sp[0], "{\"id\":5,\"op\":\"ping\"}", 20, 0);
  ck_assert_msg (ibc_frame_read (sp[1], 1000, &f) == -EBADMSG, "header %s", h);
  ck_assert_ptr_null (f.hdr);
  if (_i % 2) { /* the secret that came with it was wiped */
    ck_assert_uint_eq (freed_size, 8);
    ck_assert_int_eq (freed_zero, 1);
  }
  ibc_secmem_set_free_hook (NULL);
  expect_ping (sp[1], 5);
}
END_TEST

/* Nesting of n arrays inside the object: depth n + 1. */
static void
send_nested (int fd, int n)
{
  char h[256];
  int len = snprintf (h, sizeof h, "{\"id\":1,\"op\":\"ping\",\"a\":");
  for (int i = 0; i < n; i++)
    h[len++] = '[';
  for (int i = 0; i < n; i++)
    h[len++] = ']';
  h[len++] = '}';
  send_frame (fd, h, (size_t) len, 0);
}

START_TEST (test_bad_header_special)
{
  struct ibc_frame f = { 0 };
  static const char h[] = "{\"id\":1,\"op\":\"ping\"}\0";

  /* json-c's depth limit (32) bounds the parser's recursion. */
  send_nested (sp[0], 31);
  ck_assert_int_eq (ibc_frame_read (sp[1], 1000, &f), 0);
  ibc_frame_clear (&f);
  send_nested (sp[0], 32);
  ck_assert_int_eq (ibc_frame_read (sp[1], 1000, &f), -EBADMSG);

  send_frame (sp[0], h, sizeof h - 1, 0);
  ck_assert_int_eq (ibc_frame_read (sp[1], 1000, &f), -EBADMSG);
  send_frame (sp[0], "{\"id\":1,\"op\":\"p\0ng\"}", 20, 0);
  ck_assert_int_eq (ibc_frame_read (sp[1], 1000, &f), -EBADMSG);
}
END_TEST

START_TEST (test_good_headers)
{
  /* Valid shapes the envelope check must let through. */
  static const char *const good[] = {
    "{\"id\":9007199254740991,\"op\":\"a.b-c_9\"}",
    " {\"op\":\"ping\",\"id\":1,\"extra\":[1,{}]}\n",
    "{\"id\":0,\"error\":{\"errno\":71,\"name\":\"EPROTO\",\"message\":\"\"}}",
    "{\"id\":3,\"ok\":true,\"version\":1}",
  };
  struct ibc_frame f = { 0 };
  uint64_t id;
  const char *op = "unset";

  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    send_frame (sp[0], good[i], strlen (good[i]), 0);
    ck_assert_msg (ibc_frame_read (sp[1], 1000, &f) == 0, "%s", good[i]);
    ibc_frame_clear (&f);
  }
  send_frame (sp[0], good[3], strlen (good[3]), 0);
  ck_assert_int_eq (ibc_frame_read (sp[1], 1000, &f), 0);
  ck_assert_int_eq (ibc_proto_check_header (f.hdr, &id, &op), 0);
  ck_assert_uint_eq (id, 3);
  ck_assert_ptr_null (op); /* a reply */
  ibc_frame_clear (&f);
}
END_TEST

/* ---- writing ------------------------------------------------------------ */

START_TEST (test_write_rejects)
{
  struct json_object *req = ibc_proto_request_new ("ping", 1);
  struct json_object *bad = json_object_new_object ();
  uint8_t s[IBC_PROTO_MAX_SECRET + 1] = { 0 };
  int avail = -1;

  ck_assert_int_eq (ibc_frame_write (sp[0], bad, NULL, 0), -EINVAL);
  ck_assert_int_eq (ibc_frame_write (sp[0], NULL, NULL, 0), -EINVAL);
  ck_assert_int_eq (ibc_frame_write (sp[0], req, NULL, 1), -EINVAL);
  ck_assert_int_eq (ibc_frame_write (sp[0], req, s, sizeof s), -EMSGSIZE);
  ck_assert_int_eq (ioctl (sp[1], FIONREAD, &avail), 0);
  ck_assert_int_eq (avail, 0);
  json_object_put (req);
  json_object_put (bad);
}
END_TEST

START_TEST (test_write_epipe)
{
  struct json_object *req = ibc_proto_request_new ("ping", 1);

  /* Default SIGPIPE disposition kills the process: the test fails if the
   * write raises it. */
  signal (SIGPIPE, SIG_DFL);
  close (sp[1]);
  sp[1] = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  ck_assert_int_eq (ibc_frame_write (sp[0], req, "k", 1), -EPIPE);
  json_object_put (req);
}
END_TEST

static Suite *
proto_suite (void)
{
  Suite *s = suite_create ("proto");
  TCase *tc = tcase_create ("frames");

  tcase_add_checked_fixture (tc, pair_setup, pair_teardown);
  tcase_set_timeout (tc, 30);
  tcase_add_test (tc, test_roundtrip_plain);
  tcase_add_test (tc, test_roundtrip_secret);
  tcase_add_test (tc, test_max_header_partial_writes);
  tcase_add_test (tc, test_slow_writer);
  tcase_add_test (tc, test_first_byte_wait);
  tcase_add_test (tc, test_bad_prefix);
  tcase_add_loop_test (tc, test_truncated_eof, 0, 3);
  tcase_add_loop_test (tc, test_truncated_silence, 0, 3);
  tcase_add_loop_test (tc, test_bad_header, 0,
                       sizeof bad_headers / sizeof bad_headers[0]);
  tcase_add_test (tc, test_bad_header_special);
  tcase_add_test (tc, test_good_headers);
  tcase_add_test (tc, test_write_rejects);
  tcase_add_test (tc, test_write_epipe);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (proto_suite)
