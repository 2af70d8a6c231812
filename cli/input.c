/* ibcryptctl input: key files into locked memory, table files, confirmation. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ibcrypt/secmem.h"
#include "ibcryptctl.h"

/* Read up to len bytes, stopping only at end of file. */
static ssize_t
read_full (int fd, uint8_t *buf, size_t len)
{
  size_t got = 0;

  while (got < len) {
    ssize_t n = read (fd, buf + got, len - got);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0)
      break;
    got += (size_t) n;
  }
  return (ssize_t) got;
}

static int
open_input (const char *path, int *ret_fd)
{
  int fd;

  if (strcmp (path, "-") == 0) {
    *ret_fd = STDIN_FILENO;
    return 0;
  }
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  *ret_fd = fd;
  return 0;
}

int
ctl_read_key (const char *key_name, const char *path, const char *cipher,
              size_t want, bool exact, uint8_t **ret_key, size_t *ret_len)
{
  uint8_t *buf = NULL, *key = NULL;
  int fd = -1, status = 0, r;
  ssize_t got;

  /* Raw key bytes cannot be typed; a terminal here is a mistake. */
  if (strcmp (path, "-") == 0 && isatty (STDIN_FILENO))
    return ctl_error (CTL_ERR_LOCAL, EINVAL,
                      "reading key '%s' from '-': standard input is a "
                      "terminal",
                      key_name);
  r = open_input (path, &fd);
  if (r < 0)
    return ctl_error (CTL_ERR_LOCAL, r, "reading key '%s' from '%s': %s",
                      key_name, path, strerror (-r));
  /* One byte more than allowed, to tell "exactly the size" from "longer". */
  buf = ibc_secmem_alloc (want + 1);
  if (buf == NULL) {
    status = ctl_error (CTL_ERR_LOCAL, ENOMEM,
                        "reading key '%s' from '%s': locking memory: %s",
                        key_name, path, strerror (errno));
    goto out;
  }
  got = read_full (fd, buf, want + 1);
  if (got < 0) {
    status = ctl_error (CTL_ERR_LOCAL, errno, "reading key '%s' from '%s': %s",
                        key_name, path, strerror (errno));
    goto out;
  }
  if ((size_t) got > want) {
    status = ctl_error (CTL_ERR_LOCAL, EINVAL,
                        "reading key '%s' from '%s': key file is longer than "
                        "the %zu bytes %s%s",
                        key_name, path, want, cipher,
                        exact ? " takes" : " allows");
    goto out;
  }
  if (got == 0) {
    status = ctl_error (CTL_ERR_LOCAL, EINVAL,
                        "reading key '%s' from '%s': key file is empty",
                        key_name, path);
    goto out;
  }
  if (exact && (size_t) got < want) {
    status = ctl_error (CTL_ERR_LOCAL, EINVAL,
                        "reading key '%s' from '%s': key file is shorter "
                        "than the %zu bytes %s takes (it has %zd)",
                        key_name, path, want, cipher, got);
    goto out;
  }
  key = ibc_secmem_alloc ((size_t) got);
  if (key == NULL) {
    status = ctl_error (CTL_ERR_LOCAL, ENOMEM,
                        "reading key '%s' from '%s': locking memory: %s",
                        key_name, path, strerror (errno));
    goto out;
  }
  memcpy (key, buf, (size_t) got);
  *ret_key = key;
  *ret_len = (size_t) got;

out:
  ibc_secmem_free (buf, want + 1);
  if (fd >= 0 && fd != STDIN_FILENO)
    close (fd);
  return status;
}

int
ctl_read_text (const char *what, const char *path, size_t max, char **ret_text)
{
  char *buf;
  int fd = -1, r;
  ssize_t got;

  r = open_input (path, &fd);
  if (r < 0)
    return ctl_error (CTL_ERR_LOCAL, r, "reading %s from '%s': %s", what, path,
                      strerror (-r));
  buf = malloc (max + 2);
  if (buf == NULL) {
    r = ctl_error (CTL_ERR_LOCAL, ENOMEM, "reading %s from '%s': %s", what,
                   path, strerror (ENOMEM));
    goto out;
  }
  got = read_full (fd, (uint8_t *) buf, max + 1);
  if (got < 0) {
    r = ctl_error (CTL_ERR_LOCAL, errno, "reading %s from '%s': %s", what, path,
                   strerror (errno));
    goto out;
  }
  if ((size_t) got > max) {
    r = ctl_error (CTL_ERR_LOCAL, EFBIG,
                   "reading %s from '%s': longer than %zu bytes", what, path,
                   max);
    goto out;
  }
  if (memchr (buf, '\0', (size_t) got)) {
    r = ctl_error (CTL_ERR_LOCAL, EINVAL,
                   "reading %s from '%s': not a text file", what, path);
    goto out;
  }
  buf[got] = '\0';
  *ret_text = buf;
  buf = NULL;
  r = 0;

out:
  free (buf);
  if (fd >= 0 && fd != STDIN_FILENO)
    close (fd);
  return r;
}

bool
ctl_confirm (const char *fmt, ...)
{
  char line[64];
  va_list ap;
  size_t n;

  /* Like cryptsetup's batch mode: scripts (stdin not a terminal) and
   * --yes proceed without asking. */
  if (ctl.yes || !isatty (STDIN_FILENO))
    return true;
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputs (" [y/N] ", stderr);
  fflush (stderr);
  if (fgets (line, sizeof line, stdin) == NULL)
    return false;
  n = strcspn (line, "\r\n");
  line[n] = '\0';
  return strcasecmp (line, "y") == 0 || strcasecmp (line, "yes") == 0;
}
