/* ibcryptctl exit status: the one errno -> exit status function.
 *
 * The table (cryptsetup's codes, plus 6), documented in ibcryptctl(8) and
 * "ibcryptctl help":
 *
 *   0  success
 *   1  usage error, invalid argument, or any errno not listed below
 *   2  permission denied: EACCES, EPERM (also on the daemon's socket)
 *   3  out of resources: ENOMEM, ENOSPC, EMFILE, ENFILE, ENOBUFS, EDQUOT
 *   4  no such key or device: ENOENT, ENODEV, ENXIO, ENOKEY
 *   5  busy or exists: EBUSY, EEXIST, ETXTBSY
 *   6  ibcryptd unreachable: any failure to connect other than the
 *      above (a missing socket file is 6, not 4), and a connection that
 *      breaks or times out during a request
 *
 * The same errno means different things depending on where it came from:
 * ENOENT from connect(2) is a daemon that is not running, ENOENT in the
 * daemon's error object is a key or device that does not exist.  So the
 * caller says where (enum ctl_err_origin) and this function decides. */
#include <errno.h>

#include "ibcryptctl.h"

int
ctl_exit_status (enum ctl_err_origin origin, int errnum)
{
  if (errnum < 0)
    errnum = -errnum;
  if (errnum == 0)
    return CTL_EXIT_OK;

  switch (errnum) {
  case EACCES:
  case EPERM:
    return CTL_EXIT_PERMISSION;
  case ENOMEM:
  case ENOSPC:
  case EMFILE:
  case ENFILE:
  case ENOBUFS:
  case EDQUOT:
    return CTL_EXIT_RESOURCES;
  default:
    break;
  }
  if (origin == CTL_ERR_CONNECT || origin == CTL_ERR_LINK)
    return CTL_EXIT_UNREACHABLE;

  switch (errnum) {
  case ENOENT:
  case ENODEV:
  case ENXIO:
  case ENOKEY:
    return CTL_EXIT_NO_SUCH;
  case EBUSY:
  case EEXIST:
  case ETXTBSY:
    return CTL_EXIT_BUSY;
  default:
    return CTL_EXIT_USAGE;
  }
}
