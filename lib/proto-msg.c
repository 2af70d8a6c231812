/* The ibcryptd wire protocol: message envelopes, typed getters, errno names. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ibcrypt/proto.h"

/* Largest errno an error object may carry (the kernel's MAX_ERRNO). */
#define MAX_WIRE_ERRNO 4095

/* ---- typed getters ------------------------------------------------------ */

/* obj[key] if present and not null: 0, -ENOENT, or -EBADMSG if obj is not
 * an object or the member has another type. */
static int
member (struct json_object *obj, const char *key, enum json_type type,
        struct json_object **ret)
{
  struct json_object *v;

  if (!json_object_is_type (obj, json_type_object))
    return -EBADMSG;
  if (!json_object_object_get_ex (obj, key, &v) || v == NULL)
    return -ENOENT;
  if (!json_object_is_type (v, type))
    return -EBADMSG;
  *ret = v;
  return 0;
}

/* A JSON integer as u64; json-c keeps it as int64 or uint64 internally and
 * clamps the other accessor, so a negative number shows only in int64. */
static int
int_as_u64 (struct json_object *v, uint64_t *ret)
{
  if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0)
    return -EBADMSG;
  *ret = json_object_get_uint64 (v);
  return 0;
}

/* A string without embedded NUL bytes ("\u0000" parses into one, and a
 * C caller would see a shorter, different name). */
static int
string_value (struct json_object *v, const char **ret)
{
  const char *s;

  if (!json_object_is_type (v, json_type_string))
    return -EBADMSG;
  s = json_object_get_string (v);
  if (strlen (s) != (size_t) json_object_get_string_len (v))
    return -EBADMSG;
  *ret = s;
  return 0;
}

int
ibc_proto_get_string (struct json_object *obj, const char *key,
                      const char **ret)
{
  struct json_object *v;
  int r = member (obj, key, json_type_string, &v);

  return r < 0 ? r : string_value (v, ret);
}

int
ibc_proto_get_u64 (struct json_object *obj, const char *key, uint64_t *ret)
{
  struct json_object *v;
  int r = member (obj, key, json_type_int, &v);

  return r < 0 ? r : int_as_u64 (v, ret);
}

int
ibc_proto_get_int (struct json_object *obj, const char *key, int *ret)
{
  struct json_object *v;
  int r = member (obj, key, json_type_int, &v);
  int64_t i;

  if (r < 0)
    return r;
  i = json_object_get_int64 (v);
  if (i < INT_MIN || i > INT_MAX)
    return -EBADMSG;
  *ret = (int) i;
  return 0;
}

int
ibc_proto_get_bool (struct json_object *obj, const char *key, bool *ret)
{
  struct json_object *v;
  int r = member (obj, key, json_type_boolean, &v);

  if (r < 0)
    return r;
  *ret = json_object_get_boolean (v);
  return 0;
}

int
ibc_proto_get_object (struct json_object *obj, const char *key,
                      struct json_object **ret)
{
  return member (obj, key, json_type_object, ret);
}

int
ibc_proto_get_array (struct json_object *obj, const char *key,
                     struct json_object **ret)
{
  return member (obj, key, json_type_array, ret);
}

/* ---- envelopes ---------------------------------------------------------- */

/* [a-z][a-z0-9_.-]*, at most IBC_PROTO_MAX_OP bytes: ops end up in logs. */
static bool
valid_op (const char *op)
{
  size_t len = strlen (op);

  if (len == 0 || len > IBC_PROTO_MAX_OP || op[0] < 'a' || op[0] > 'z')
    return false;
  for (size_t i = 1; i < len; i++) {
    char c = op[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
          || c == '.' || c == '-'))
      return false;
  }
  return true;
}

static bool
valid_error (struct json_object *err)
{
  const char *s;
  int e;

  return json_object_is_type (err, json_type_object)
         && ibc_proto_get_int (err, "errno", &e) == 0 && e >= 1
         && e <= MAX_WIRE_ERRNO && ibc_proto_get_string (err, "name", &s) == 0
         && ibc_proto_get_string (err, "message", &s) == 0;
}

int
ibc_proto_check_header (struct json_object *hdr, uint64_t *ret_id,
                        const char **ret_op)
{
  struct json_object *id_obj, *op_obj, *ok_obj, *err_obj;
  const char *op = NULL;
  uint64_t id;
  bool has_op, has_ok, has_err;

  if (!json_object_is_type (hdr, json_type_object))
    return -EBADMSG;
  /* Envelope members are checked by presence: "op": null is no op. */
  if (!json_object_object_get_ex (hdr, "id", &id_obj)
      || int_as_u64 (id_obj, &id) < 0 || id > IBC_PROTO_MAX_ID)
    return -EBADMSG;
  has_op = json_object_object_get_ex (hdr, "op", &op_obj);
  has_ok = json_object_object_get_ex (hdr, "ok", &ok_obj);
  has_err = json_object_object_get_ex (hdr, "error", &err_obj);

  if (has_op) {
    if (string_value (op_obj, &op) < 0 || !valid_op (op) || id == 0 || has_ok
        || has_err)
      return -EBADMSG;
  } else if (has_ok == has_err)
    return -EBADMSG;
  else if (has_ok
           && !(json_object_is_type (ok_obj, json_type_boolean)
                && json_object_get_boolean (ok_obj)))
    return -EBADMSG;
  else if (has_err && !valid_error (err_obj))
    return -EBADMSG;

  if (ret_id)
    *ret_id = id;
  if (ret_op)
    *ret_op = op;
  return 0;
}

/* {"id": id} with one reference, or NULL (errno set). */
static struct json_object *
message_new (uint64_t id)
{
  struct json_object *m;

  if (id > IBC_PROTO_MAX_ID) {
    errno = EINVAL;
    return NULL;
  }
  m = json_object_new_object ();
  if (m == NULL
      || json_object_object_add (m, "id", json_object_new_uint64 (id)) < 0) {
    json_object_put (m);
    errno = ENOMEM;
    return NULL;
  }
  return m;
}

/* Add key: val to m, taking val's reference; on failure drop m. */
static struct json_object *
add_or_drop (struct json_object *m, const char *key, struct json_object *val)
{
  if (m == NULL || val == NULL || json_object_object_add (m, key, val) < 0) {
    json_object_put (val);
    json_object_put (m);
    errno = ENOMEM;
    return NULL;
  }
  return m;
}

struct json_object *
ibc_proto_request_new (const char *op, uint64_t id)
{
  if (op == NULL || !valid_op (op) || id == 0) {
    errno = EINVAL;
    return NULL;
  }
  struct json_object *m = message_new (id);
  if (m == NULL)
    return NULL;
  return add_or_drop (m, "op", json_object_new_string (op));
}

struct json_object *
ibc_proto_reply_ok (uint64_t id)
{
  struct json_object *m = message_new (id);
  if (m == NULL)
    return NULL;
  return add_or_drop (m, "ok", json_object_new_boolean (1));
}

struct json_object *
ibc_proto_reply_error (uint64_t id, int errnum, const char *fmt, ...)
{
  struct json_object *m, *err;
  const char *name;
  char *text = NULL;
  va_list ap;
  int n;

  if (errnum < 0)
    errnum = errnum == INT_MIN ? EIO : -errnum;
  if (errnum == 0 || errnum > MAX_WIRE_ERRNO)
    errnum = EIO;
  name = ibc_errno_name (errnum);

  va_start (ap, fmt);
  n = vasprintf (&text, fmt, ap);
  va_end (ap);
  if (n < 0) {
    errno = ENOMEM;
    return NULL;
  }
  m = message_new (id);
  if (m == NULL) {
    free (text);
    return NULL;
  }
  err = json_object_new_object ();
  err = add_or_drop (err, "errno", json_object_new_int (errnum));
  err = add_or_drop (err, "name",
                     json_object_new_string (name ? name : "EUNKNOWN"));
  err = add_or_drop (err, "message", json_object_new_string (text));
  free (text);
  if (err == NULL) {
    json_object_put (m);
    errno = ENOMEM;
    return NULL;
  }
  return add_or_drop (m, "error", err);
}

struct json_object *
ibc_proto_hello_new (uint64_t id, const char *role)
{
  struct json_object *m;

  if (role == NULL
      || (strcmp (role, "cli") != 0 && strcmp (role, "agent") != 0)) {
    errno = EINVAL;
    return NULL;
  }
  m = ibc_proto_request_new ("hello", id);
  if (m == NULL)
    return NULL;
  m = add_or_drop (m, "version", json_object_new_int (IBC_PROTO_VERSION));
  m = add_or_drop (m, "role", json_object_new_string (role));
  return add_or_drop (m, "pid", json_object_new_int64 (getpid ()));
}

int
ibc_proto_reply_result (struct json_object *reply, const char **ret_message)
{
  struct json_object *err;
  const char *op, *name, *message;
  int e;

  if (ibc_proto_check_header (reply, NULL, &op) < 0 || op != NULL)
    return -EBADMSG;
  if (ibc_proto_get_object (reply, "error", &err) < 0) {
    if (ret_message)
      *ret_message = NULL;
    return 0;
  }
  /* check_header validated all three members. */
  ibc_proto_get_int (err, "errno", &e);
  ibc_proto_get_string (err, "name", &name);
  ibc_proto_get_string (err, "message", &message);
  if (ibc_errno_from_name (name) != 0)
    e = ibc_errno_from_name (name);
  if (ret_message)
    *ret_message = message;
  return -e;
}

/* ---- errno names -------------------------------------------------------- */

/* Names travel with numbers because errno numbers differ between
 * architectures.  Aliases (same number, second name) follow their primary
 * name, so number -> name finds the primary and name -> number finds both. */
#define E(x)                                                                   \
  {                                                                            \
    x, #x                                                                      \
  }
static const struct {
  int num;
  const char *name;
} errno_table[] = {
  E (EPERM),         E (ENOENT),
  E (ESRCH),         E (EINTR),
  E (EIO),           E (ENXIO),
  E (E2BIG),         E (ENOEXEC),
  E (EBADF),         E (ECHILD),
  E (EAGAIN),        E (EWOULDBLOCK),
  E (ENOMEM),        E (EACCES),
  E (EFAULT),        E (ENOTBLK),
  E (EBUSY),         E (EEXIST),
  E (EXDEV),         E (ENODEV),
  E (ENOTDIR),       E (EISDIR),
  E (EINVAL),        E (ENFILE),
  E (EMFILE),        E (ENOTTY),
  E (ETXTBSY),       E (EFBIG),
  E (ENOSPC),        E (ESPIPE),
  E (EROFS),         E (EMLINK),
  E (EPIPE),         E (EDOM),
  E (ERANGE),        E (EDEADLK),
  E (EDEADLOCK),     E (ENAMETOOLONG),
  E (ENOLCK),        E (ENOSYS),
  E (ENOTEMPTY),     E (ELOOP),
  E (ENOMSG),        E (EIDRM),
  E (ENODATA),       E (ETIME),
  E (ENOLINK),       E (EPROTO),
  E (EBADMSG),       E (EOVERFLOW),
  E (EILSEQ),        E (EUSERS),
  E (ENOTSOCK),      E (EDESTADDRREQ),
  E (EMSGSIZE),      E (EPROTOTYPE),
  E (ENOPROTOOPT),   E (EPROTONOSUPPORT),
  E (EOPNOTSUPP),    E (ENOTSUP),
  E (EAFNOSUPPORT),  E (EADDRINUSE),
  E (EADDRNOTAVAIL), E (ENETDOWN),
  E (ENETUNREACH),   E (ECONNABORTED),
  E (ECONNRESET),    E (ENOBUFS),
  E (EISCONN),       E (ENOTCONN),
  E (ESHUTDOWN),     E (ETIMEDOUT),
  E (ECONNREFUSED),  E (EHOSTUNREACH),
  E (EALREADY),      E (EINPROGRESS),
  E (ESTALE),        E (EDQUOT),
  E (ENOMEDIUM),     E (ECANCELED),
  E (ENOKEY),        E (EKEYEXPIRED),
  E (EKEYREVOKED),   E (EKEYREJECTED),
  E (EOWNERDEAD),    E (ENOTRECOVERABLE),
  E (ERFKILL),       E (EHWPOISON),
};
#undef E

const char *
ibc_errno_name (int errnum)
{
  if (errnum < 0 && errnum != INT_MIN)
    errnum = -errnum;
  for (size_t i = 0; i < sizeof errno_table / sizeof errno_table[0]; i++)
    if (errno_table[i].num == errnum)
      return errno_table[i].name;
  return NULL;
}

int
ibc_errno_from_name (const char *name)
{
  if (name == NULL)
    return 0;
  for (size_t i = 0; i < sizeof errno_table / sizeof errno_table[0]; i++)
    if (strcmp (errno_table[i].name, name) == 0)
      return errno_table[i].num;
  return 0;
}
