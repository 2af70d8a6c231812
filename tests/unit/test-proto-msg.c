/* Unit tests: control-plane messages, typed getters, errno names, sockets. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ibc-check.h"
#include "ibcrypt/proto.h"

/* ---- messages and getters ----------------------------------------------- */

static void
assert_json (struct json_object *m, const char *want)
{
  ck_assert_ptr_nonnull (m);
  ck_assert_str_eq (json_object_to_json_string_ext (m, JSON_C_TO_STRING_PLAIN),
                    want);
  json_object_put (m);
}

START_TEST (test_messages)
{
  struct json_object *m;
  const char *msg;
  char want[128];

  assert_json (ibc_proto_request_new ("ping", 5), "{\"id\":5,\"op\":\"ping\"}");
  assert_json (ibc_proto_reply_ok (5), "{\"id\":5,\"ok\":true}");
  assert_json (ibc_proto_reply_error (5, -ENOENT, "key '%s' not found", "k1"),
               "{\"id\":5,\"error\":{\"errno\":2,\"name\":\"ENOENT\","
               "\"message\":\"key 'k1' not found\"}}");
  assert_json (ibc_proto_reply_error (0, 0, "bug"),
               "{\"id\":0,\"error\":{\"errno\":5,\"name\":\"EIO\","
               "\"message\":\"bug\"}}");
  snprintf (want, sizeof want,
            "{\"id\":1,\"op\":\"hello\",\"version\":1,\"role\":\"agent\","
            "\"pid\":%d}",
            (int) getpid ());
  assert_json (ibc_proto_hello_new (1, "agent"), want);

  errno = 0;
  ck_assert_ptr_null (ibc_proto_request_new ("Ping", 1));
  ck_assert_int_eq (errno, EINVAL);
  ck_assert_ptr_null (ibc_proto_request_new ("ping", 0));
  ck_assert_ptr_null (ibc_proto_request_new ("ping", IBC_PROTO_MAX_ID + 1));
  ck_assert_ptr_null (ibc_proto_request_new (NULL, 1));
  ck_assert_ptr_null (ibc_proto_reply_ok (IBC_PROTO_MAX_ID + 1));
  errno = 0;
  ck_assert_ptr_null (ibc_proto_hello_new (1, "root"));
  ck_assert_int_eq (errno, EINVAL);

  /* Reply outcomes: the name wins over the number. */
  m = ibc_proto_reply_error (2, EBUSY, "slot %d busy", 3);
  ck_assert_int_eq (ibc_proto_reply_result (m, &msg), -EBUSY);
  ck_assert_str_eq (msg, "slot 3 busy");
  json_object_put (m);
  m = json_tokener_parse ("{\"id\":2,\"error\":{\"errno\":999,\"name\":"
                          "\"ENOKEY\",\"message\":\"m\"}}");
  ck_assert_int_eq (ibc_proto_reply_result (m, NULL), -ENOKEY);
  json_object_put (m);
  m = ibc_proto_reply_error (2, 4000, "odd");
  ck_assert_int_eq (ibc_proto_reply_result (m, NULL), -4000);
  json_object_put (m);
  m = ibc_proto_reply_ok (2);
  msg = "unset";
  ck_assert_int_eq (ibc_proto_reply_result (m, &msg), 0);
  ck_assert_ptr_null (msg);
  json_object_put (m);
  m = ibc_proto_request_new ("ping", 2);
  ck_assert_int_eq (ibc_proto_reply_result (m, NULL), -EBADMSG);
  json_object_put (m);
}
END_TEST

START_TEST (test_getters)
{
  struct json_object *o = json_tokener_parse (
      "{\"s\":\"x\",\"n\":5,\"neg\":-1,\"big\":18446744073709551615,"
      "\"d\":1.0,\"b\":true,\"nul\":null,\"o\":{},\"a\":[],"
      "\"z\":\"a\\u0000b\",\"i\":2147483648,\"mi\":-2147483648}");
  struct json_object *sub = NULL;
  const char *s = "unset";
  uint64_t u = 77;
  int i = 77;
  bool b = false;

  ck_assert_ptr_nonnull (o);
  ck_assert_int_eq (ibc_proto_get_string (o, "s", &s), 0);
  ck_assert_str_eq (s, "x");
  s = "unset";
  ck_assert_int_eq (ibc_proto_get_string (o, "n", &s), -EBADMSG);
  ck_assert_int_eq (ibc_proto_get_string (o, "missing", &s), -ENOENT);
  ck_assert_int_eq (ibc_proto_get_string (o, "nul", &s), -ENOENT);
  ck_assert_int_eq (ibc_proto_get_string (o, "z", &s), -EBADMSG);
  ck_assert_str_eq (s, "unset");

  ck_assert_int_eq (ibc_proto_get_u64 (o, "n", &u), 0);
  ck_assert_uint_eq (u, 5);
  ck_assert_int_eq (ibc_proto_get_u64 (o, "big", &u), 0);
  ck_assert_uint_eq (u, UINT64_MAX);
  u = 77;
  ck_assert_int_eq (ibc_proto_get_u64 (o, "neg", &u), -EBADMSG);
  ck_assert_int_eq (ibc_proto_get_u64 (o, "d", &u), -EBADMSG);
  ck_assert_int_eq (ibc_proto_get_u64 (o, "s", &u), -EBADMSG);
  ck_assert_int_eq (ibc_proto_get_u64 (o, "missing", &u), -ENOENT);
  ck_assert_uint_eq (u, 77);

  ck_assert_int_eq (ibc_proto_get_int (o, "neg", &i), 0);
  ck_assert_int_eq (i, -1);
  ck_assert_int_eq (ibc_proto_get_int (o, "mi", &i), 0);
  ck_assert_int_eq (i, INT32_MIN);
  i = 77;
  ck_assert_int_eq (ibc_proto_get_int (o, "i", &i), -EBADMSG);
  ck_assert_int_eq (ibc_proto_get_int (o, "big", &i), -EBADMSG);
  ck_assert_int_eq (ibc_proto_get_int (o, "b", &i), -EBADMSG);
  ck_assert_int_eq (i, 77);

  ck_assert_int_eq (ibc_proto_get_bool (o, "b", &b), 0);
  ck_assert (b);
  ck_assert_int_eq (ibc_proto_get_bool (o, "n", &b), -EBADMSG);
  ck_assert_int_eq (ibc_proto_get_object (o, "o", &sub), 0);
  ck_assert (json_object_is_type (sub, json_type_object));
  ck_assert_int_eq (ibc_proto_get_array (o, "a", &sub), 0);
  ck_assert (json_object_is_type (sub, json_type_array));
  ck_assert_int_eq (ibc_proto_get_array (o, "o", &sub), -EBADMSG);
  ck_assert_int_eq (ibc_proto_get_object (o, "a", &sub), -EBADMSG);
  /* Not an object at all. */
  ck_assert_int_eq (ibc_proto_get_u64 (sub, "x", &u), -EBADMSG);
  json_object_put (o);
}
END_TEST

START_TEST (test_errno_names)
{
  int named = 0;

  for (int e = 1; e <= 4095; e++) {
    const char *n = ibc_errno_name (e);
    if (n == NULL)
      continue;
    named++;
    ck_assert_msg (ibc_errno_from_name (n) == e, "%s", n);
    ck_assert_str_eq (ibc_errno_name (-e), n);
    /* Same spelling as glibc's own table. */
    ck_assert_str_eq (n, strerrorname_np (e));
  }
  ck_assert_int_ge (named, 80);
  ck_assert_str_eq (ibc_errno_name (ENOENT), "ENOENT");
  ck_assert_str_eq (ibc_errno_name (-EPROTO), "EPROTO");
  ck_assert_str_eq (ibc_errno_name (ENOKEY), "ENOKEY");
  ck_assert_ptr_null (ibc_errno_name (0));
  ck_assert_ptr_null (ibc_errno_name (4000));
  ck_assert_int_eq (ibc_errno_from_name ("ENOTSUP"), EOPNOTSUPP);
  ck_assert_int_eq (ibc_errno_from_name ("EWOULDBLOCK"), EAGAIN);
  ck_assert_int_eq (ibc_errno_from_name ("EMSGSIZE"), EMSGSIZE);
  ck_assert_int_eq (ibc_errno_from_name ("enoent"), 0);
  ck_assert_int_eq (ibc_errno_from_name ("EUNKNOWN"), 0);
  ck_assert_int_eq (ibc_errno_from_name (NULL), 0);
}
END_TEST

/* ---- Unix sockets ------------------------------------------------------- */

START_TEST (test_unix_sockets)
{
  char dir[] = "/tmp/ibc-proto-XXXXXX", path[128], longp[200];
  int lfd, lfd2, cfd, sfd, fd = 12345;
  struct stat st;
  pid_t pid;
  uid_t uid;
  gid_t gid;

  ck_assert_ptr_nonnull (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/control.sock", dir);

  ck_assert_int_eq (ibc_unix_connect (path, &fd), -ENOENT);
  ck_assert_int_eq (fd, 12345);
  ck_assert_int_eq (ibc_unix_listen (path, 0660, &lfd), 0);
  ck_assert_int_eq (lstat (path, &st), 0);
  ck_assert (S_ISSOCK (st.st_mode));
  ck_assert_int_eq (st.st_mode & 07777, 0660);

  /* A live listener keeps its path. */
  ck_assert_int_eq (ibc_unix_listen (path, 0600, &lfd2), -EADDRINUSE);
  /* Its liveness probe shows up at the listener as a connection that
   * closes before sending anything. */
  struct ibc_frame f = { 0 };
  sfd = accept (lfd, NULL, NULL);
  ck_assert_int_ge (sfd, 0);
  ck_assert_int_eq (ibc_frame_read (sfd, 1000, &f), -ENODATA);
  close (sfd);

  ck_assert_int_eq (ibc_unix_connect (path, &cfd), 0);
  sfd = accept (lfd, NULL, NULL);
  ck_assert_int_ge (sfd, 0);
  ck_assert_int_eq (ibc_peer_cred (sfd, &pid, &uid, &gid), 0);
  ck_assert_int_eq (pid, getpid ());
  ck_assert_int_eq (uid, getuid ());
  ck_assert_int_eq (gid, getgid ());
  ck_assert_int_eq (ibc_peer_cred (sfd, NULL, NULL, NULL), 0);

  /* A hello exchange over it. */
  struct json_object *h = ibc_proto_hello_new (1, "cli");
  ck_assert_int_eq (ibc_frame_write (cfd, h, NULL, 0), 0);
  ck_assert_int_eq (ibc_frame_read (sfd, 1000, &f), 0);
  int version = 0;
  ck_assert_int_eq (ibc_proto_get_int (f.hdr, "version", &version), 0);
  ck_assert_int_eq (version, IBC_PROTO_VERSION);
  ibc_frame_clear (&f);
  json_object_put (h);
  close (cfd);
  close (sfd);

  /* The listener died but left its socket file: a new one replaces it. */
  close (lfd);
  ck_assert_int_eq (ibc_unix_connect (path, &cfd), -ECONNREFUSED);
  ck_assert_int_eq (ibc_unix_listen (path, 0600, &lfd), 0);
  ck_assert_int_eq (lstat (path, &st), 0);
  ck_assert_int_eq (st.st_mode & 07777, 0600);
  close (lfd);
  unlink (path);

  /* Never a regular file. */
  int rf = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ck_assert_int_ge (rf, 0);
  close (rf);
  ck_assert_int_eq (ibc_unix_listen (path, 0600, &lfd), -EADDRINUSE);
  ck_assert_int_eq (lstat (path, &st), 0);
  ck_assert (S_ISREG (st.st_mode));
  unlink (path);

  memset (longp, 'a', sizeof longp - 1);
  longp[0] = '/';
  longp[sizeof longp - 1] = '\0';
  ck_assert_int_eq (ibc_unix_connect (longp, &fd), -ENAMETOOLONG);
  ck_assert_int_eq (ibc_unix_listen (longp, 0600, &fd), -ENAMETOOLONG);
  ck_assert_int_eq (ibc_unix_connect ("", &fd), -EINVAL);

  int pfd[2];
  ck_assert_int_eq (pipe (pfd), 0);
  ck_assert_int_eq (ibc_peer_cred (pfd[0], &pid, NULL, NULL), -ENOTSOCK);
  close (pfd[0]);
  close (pfd[1]);
  rmdir (dir);
}
END_TEST

static Suite *
proto_msg_suite (void)
{
  Suite *s = suite_create ("proto-msg");
  TCase *tc = tcase_create ("messages");

  tcase_add_test (tc, test_messages);
  tcase_add_test (tc, test_getters);
  tcase_add_test (tc, test_errno_names);
  tcase_add_test (tc, test_unix_sockets);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (proto_msg_suite)
