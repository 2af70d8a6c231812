/* ibcryptd logging: one line per message on stderr, levels as syslog's. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ibcryptd.h"

int ibcd_log_max = IBCD_LOG_INFO;

static const char *
level_name (int level)
{
  switch (level) {
  case IBCD_LOG_ERR:
    return "error";
  case IBCD_LOG_WARNING:
    return "warning";
  case IBCD_LOG_INFO:
    return "info";
  default:
    return "debug";
  }
}

void
ibcd_log (int level, const char *fmt, ...)
{
  static int journal = -1;
  char line[2048];
  int saved = errno;
  va_list ap;

  if (level > ibcd_log_max)
    return;
  /* Under systemd stderr is the journal: "<N>" sets the priority there
   * (sd-daemon(3)), a prefix it strips. */
  if (journal < 0)
    journal = getenv ("JOURNAL_STREAM") != NULL;
  errno = saved; /* for %m */
  va_start (ap, fmt);
  vsnprintf (line, sizeof line, fmt, ap);
  va_end (ap);
  /* Messages may contain names chosen by clients: one line each, always. */
  for (char *p = line; *p; p++)
    if ((unsigned char) *p < 0x20)
      *p = '?';
  if (journal)
    fprintf (stderr, "<%d>%s\n", level, line);
  else
    fprintf (stderr, "ibcryptd: %s: %s\n", level_name (level), line);
  errno = saved;
}
