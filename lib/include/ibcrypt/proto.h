/* The ibcryptd control-plane wire protocol: frames, messages, Unix sockets. */
#ifndef IBCRYPT_PROTO_H
#define IBCRYPT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json_object.h>

#ifdef __cplusplus
extern "C" {
#endif

/* docs/PROTOCOL.md is the specification; this is its C binding.
 *
 * A frame is a 12-byte prefix -- magic "IBC1", u32 big-endian header length
 * H, u32 big-endian secret length S -- then H bytes of JSON (one object) and
 * S bytes of binary secret.  The secret goes straight from the socket into
 * locked memory (ibcrypt/secmem.h); key bytes never pass through json-c. */
#define IBC_PROTO_MAGIC "IBC1"
#define IBC_PROTO_MAGIC_LEN 4
#define IBC_PROTO_PREFIX_LEN 12
#define IBC_PROTO_MAX_HEADER (1u << 20)
#define IBC_PROTO_MAX_SECRET 4096u

/* Protocol version spoken by this library (exchanged in "hello"). */
#define IBC_PROTO_VERSION 1

/* Default deadline for the rest of a frame once its first byte arrived, and
 * for writing a whole frame. */
#define IBC_PROTO_FRAME_TIMEOUT_MS 10000

/* Message ids are integers in [0, 2^53 - 1], so that every JSON
 * implementation (some hold numbers in doubles) represents them exactly.
 * Requests use ids >= 1; a reply with id 0 answers a frame whose id could not
 * be read. */
#define IBC_PROTO_MAX_ID ((UINT64_C (1) << 53) - 1)

/* Longest "op" name; ops are [a-z][a-z0-9_.-]*. */
#define IBC_PROTO_MAX_OP 64

/* One received frame.  hdr is a JSON object that passed
 * ibc_proto_check_header(); secret is NULL when secret_len is 0, else
 * secret_len bytes of locked memory.  Release with ibc_frame_clear(). */
struct ibc_frame {
  struct json_object *hdr;
  uint8_t *secret;
  size_t secret_len;
};

/* Read one frame from fd (a stream socket or pipe, blocking or not).
 *
 * Waiting for the first byte is the caller's business: on a blocking fd this
 * blocks until a byte arrives; on a non-blocking fd with nothing to read it
 * returns -EAGAIN.  Once the first byte has arrived the rest of the frame
 * must arrive within timeout_ms (poll(2) semantics: negative waits forever,
 * 0 takes only what is already queued).  Exactly the frame's bytes are
 * consumed, never more.
 *
 * Returns 0 and fills *ret, or (ret untouched):
 *   -ENODATA     clean end of file before the first byte (peer closed)
 *   -EAGAIN      non-blocking fd, nothing to read
 *   -EINTR       a signal arrived before the first byte (nothing consumed)
 *   -EPROTO      bad magic, or header length 0            (stream lost)
 *   -EMSGSIZE    H > IBC_PROTO_MAX_HEADER or S > IBC_PROTO_MAX_SECRET,
 *                detected from the prefix before any allocation (stream lost)
 *   -ECONNRESET  end of file in the middle of a frame      (stream lost)
 *   -ETIMEDOUT   the rest of the frame missed the deadline  (stream lost)
 *   -EBADMSG     the whole frame was read but its header is not one valid
 *                UTF-8 JSON object or fails ibc_proto_check_header()
 *                (stream still in sync: the caller may reply and go on)
 *   -ENOMEM, or another -errno from read(2)/poll(2).
 * Every byte of secret read on a failure path is wiped. */
int ibc_frame_read (int fd, int timeout_ms, struct ibc_frame *ret);

/* Write one frame: the prefix, hdr serialised as compact JSON and len bytes
 * of secret (secret may be NULL when len is 0).  hdr must pass
 * ibc_proto_check_header().  One sendmsg(2) with MSG_NOSIGNAL, continued
 * after partial writes and EINTR, so a dead peer gives -EPIPE, never
 * SIGPIPE (on a non-socket fd it falls back to writev(2), where SIGPIPE is
 * the caller's business).  The whole frame must be written within
 * IBC_PROTO_FRAME_TIMEOUT_MS, on blocking and non-blocking sockets alike
 * (on other fds a blocking writev(2) may outlast it).  After -ETIMEDOUT a
 * partial frame may have been sent: close the connection.
 * Writers sharing an fd must serialise their calls.
 * Returns 0, -EINVAL (bad header, secret NULL with len > 0), -EMSGSIZE
 * (header or secret over the limits), -EPIPE, -ETIMEDOUT, -ENOMEM, or
 * another -errno from sendmsg(2)/poll(2). */
int ibc_frame_write (int fd, struct json_object *hdr, const void *secret,
                     size_t len);

/* ibc_frame_write() with an explicit deadline (poll(2) semantics). */
int ibc_frame_write_timeout (int fd, int timeout_ms, struct json_object *hdr,
                             const void *secret, size_t len);

/* Drop the header, wipe and free the secret, zero the struct.  Accepts NULL
 * and an already cleared frame. */
void ibc_frame_clear (struct ibc_frame *frame);

/* Validate the envelope shared by all messages (docs/PROTOCOL.md):
 *   request: "op" a valid op name, "id" an integer in [1, IBC_PROTO_MAX_ID],
 *            no "ok" or "error" member;
 *   reply:   no "op", "id" an integer in [0, IBC_PROTO_MAX_ID], and exactly
 *            one of "ok": true or "error": {"errno": 1..4095, "name":
 *            string, "message": string}.
 * On success sets *ret_id and *ret_op (the op string, owned by hdr, or NULL
 * for a reply); either may be NULL.  Returns 0 or -EBADMSG. */
int ibc_proto_check_header (struct json_object *hdr, uint64_t *ret_id,
                            const char **ret_op);

/* New message objects (one reference each), or NULL with errno set (EINVAL
 * for a bad op or id, ENOMEM). */
struct json_object *ibc_proto_request_new (const char *op, uint64_t id);
struct json_object *ibc_proto_reply_ok (uint64_t id);

/* An error reply.  errnum may be given positive or negative (a -errno return
 * value); 0 or > 4095 is a caller bug and becomes EIO.  The message is printf-style
 * text for humans; never put secret bytes in it. */
struct json_object *ibc_proto_reply_error (uint64_t id, int errnum,
                                           const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* {"op":"hello","id":id,"version":IBC_PROTO_VERSION,"role":role,"pid":
 * getpid()}.  role is "cli" or "agent" (else NULL, errno EINVAL). */
struct json_object *ibc_proto_hello_new (uint64_t id, const char *role);

/* The outcome of a reply that passed ibc_proto_check_header(): 0 for "ok",
 * else the negative errno of its error object -- taken from "name" when
 * this library knows the name (numbers differ between architectures), else
 * from "errno".  *ret_message (may be NULL) gets the error message, owned by
 * reply, or NULL for "ok".  -EBADMSG if reply is not a valid reply. */
int ibc_proto_reply_result (struct json_object *reply,
                            const char **ret_message);

/* Typed member getters.  Return 0 and set *ret, -ENOENT if the member is
 * absent or JSON null, or -EBADMSG if it has another type or is out of
 * range.  Strings must be valid (json-c checked UTF-8) and free of NUL
 * bytes; they are owned by obj.  Integers must be JSON integers (1.0 is not
 * one); values beyond 64 bits saturate in json-c's parser. */
int ibc_proto_get_string (struct json_object *obj, const char *key,
                          const char **ret);
int ibc_proto_get_u64 (struct json_object *obj, const char *key, uint64_t *ret);
int ibc_proto_get_int (struct json_object *obj, const char *key, int *ret);
int ibc_proto_get_bool (struct json_object *obj, const char *key, bool *ret);
int ibc_proto_get_object (struct json_object *obj, const char *key,
                          struct json_object **ret);
int ibc_proto_get_array (struct json_object *obj, const char *key,
                         struct json_object **ret);

/* "ENOENT" for ENOENT (sign ignored), or NULL when not in the table. */
const char *ibc_errno_name (int errnum);
/* The positive errno for a name from the table, or 0 if unknown. */
int ibc_errno_from_name (const char *name);

/* Connect a SOCK_STREAM|SOCK_CLOEXEC Unix socket to path (blocking fd).
 * Returns 0, -ENAMETOOLONG, or -errno from socket(2)/connect(2) (ENOENT and
 * ECONNREFUSED when no daemon listens). */
int ibc_unix_connect (const char *path, int *ret_fd);

/* Listen on a SOCK_STREAM|SOCK_CLOEXEC Unix socket at path with file mode
 * mode (set before listen(2), so nobody connects under a wider mode).  An
 * existing socket file is removed only if nothing listens on it; anything
 * else at path (a live listener, a regular file) gives -EADDRINUSE.  The
 * liveness probe is a connect(2): a live listener sees a connection that
 * closes without a byte (ibc_frame_read() gives it -ENODATA).
 * Returns 0, -ENAMETOOLONG, -EADDRINUSE or -errno. */
int ibc_unix_listen (const char *path, mode_t mode, int *ret_fd);

/* The peer's credentials at connect time (SO_PEERCRED); any of the output
 * pointers may be NULL.  Returns 0 or -errno (ENOTSOCK, EOPNOTSUPP...). */
int ibc_peer_cred (int fd, pid_t *ret_pid, uid_t *ret_uid, gid_t *ret_gid);

#ifdef __cplusplus
}
#endif
#endif
