/* Unix stream socket helpers shared by ibcryptd, ibcryptctl and the agent. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ibcrypt/proto.h"

static int
make_addr (const char *path, struct sockaddr_un *sa)
{
  size_t len;

  if (path == NULL || (len = strlen (path)) == 0)
    return -EINVAL;
  /* Room for the NUL: Linux accepts unterminated names, others do not. */
  if (len >= sizeof sa->sun_path)
    return -ENAMETOOLONG;
  memset (sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  memcpy (sa->sun_path, path, len);
  return 0;
}

int
ibc_unix_connect (const char *path, int *ret_fd)
{
  struct sockaddr_un sa;
  int fd, r;

  r = make_addr (path, &sa);
  if (r < 0)
    return r;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  /* An AF_UNIX connect interrupted by a signal leaves the socket
   * unconnected, so trying again is correct (unlike TCP). */
  while (connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
    if (errno == EINTR)
      continue;
    if (errno == EISCONN)
      break;
    r = -errno;
    close (fd);
    return r;
  }
  *ret_fd = fd;
  return 0;
}

/* Is anything accepting connections on the socket file at path?  Returns
 * 1 (yes, or cannot tell), 0 (stale: connection refused). */
static int
socket_is_live (const struct sockaddr_un *sa)
{
  /* Non-blocking, so a live listener with a full backlog answers EAGAIN
   * instead of holding us up. */
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int r, err;

  if (fd < 0)
    return 1;
  r = connect (fd, (const struct sockaddr *) sa, sizeof *sa);
  err = errno;
  close (fd);
  return r < 0 && (err == ECONNREFUSED || err == ENOENT) ? 0 : 1;
}

int
ibc_unix_listen (const char *path, mode_t mode, int *ret_fd)
{
  struct sockaddr_un sa;
  struct stat st;
  int fd, r;

  r = make_addr (path, &sa);
  if (r < 0)
    return r;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;

  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
    if (errno != EADDRINUSE) {
      r = -errno;
      goto out_close;
    }
    /* Something is there.  Remove it only if it is a socket nobody
     * listens on (left by a daemon that died); never a regular file. */
    if (lstat (path, &st) < 0 || !S_ISSOCK (st.st_mode)
        || socket_is_live (&sa)) {
      r = -EADDRINUSE;
      goto out_close;
    }
    if (unlink (path) < 0 && errno != ENOENT) {
      r = -errno;
      goto out_close;
    }
    /* One retry: if another daemon won the race, it keeps the path. */
    if (bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
      r = -errno;
      goto out_close;
    }
  }

  /* The mode before listen(2): until then connect(2) is refused, so no
   * client ever reaches the socket under the umask's default mode. */
  if (chmod (path, mode) < 0 || listen (fd, SOMAXCONN) < 0) {
    r = -errno;
    goto out_unlink;
  }
  *ret_fd = fd;
  return 0;

out_unlink:
  unlink (path);
out_close:
  close (fd);
  return r;
}

int
ibc_peer_cred (int fd, pid_t *ret_pid, uid_t *ret_uid, gid_t *ret_gid)
{
  struct ucred uc;
  socklen_t len = sizeof uc;

  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
    return -errno;
  if (len != sizeof uc)
    return -EPROTO;
  if (ret_pid)
    *ret_pid = uc.pid;
  if (ret_uid)
    *ret_uid = uc.uid;
  if (ret_gid)
    *ret_gid = uc.gid;
  return 0;
}
