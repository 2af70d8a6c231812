/* ibcryptd: the ibcrypt key daemon (keys, crypt maps, device registry). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "ibcrypt/secmem.h"
#include "ibcryptd.h"

#ifndef IBCD_VERSION
#define IBCD_VERSION "unknown"
#endif

struct ibcd_config ibcd_config = {
  .socket_path = "/run/ibcrypt/control.sock",
  .state_dir = "/var/lib/ibcrypt",
  .group = "ibcrypt",
  .agent_timeout_ms = IBCD_AGENT_TIMEOUT_MS,
};

int
ibcd_refresh_timeout_ms (void)
{
  return ibcd_config.agent_timeout_ms < IBCD_REFRESH_TIMEOUT_MS
             ? ibcd_config.agent_timeout_ms
             : IBCD_REFRESH_TIMEOUT_MS;
}

static void
usage (FILE *f)
{
  fprintf (f,
           "Usage: ibcryptd [OPTIONS]\n"
           "The ibcrypt key daemon: holds keys in locked memory, persists "
           "crypt maps and\npassthrough tables, and drives the agents of "
           "nbdkit ibcrypt stacks.\n\n"
           "  --socket PATH     control socket (default %s;\n"
           "                    ignored under systemd socket activation)\n"
           "  --state-dir DIR   persistent state (default %s)\n"
           "  --group NAME      group admitted besides root (default %s)\n"
           "  --agent-timeout MS\n"
           "                    how long an op waits for an agent's reply\n"
           "                    (default %d)\n"
           "  -v, --verbose     debug messages\n"
           "  -h, --help        this help\n"
           "  -V, --version     print the version\n",
           ibcd_config.socket_path, ibcd_config.state_dir, ibcd_config.group,
           IBCD_AGENT_TIMEOUT_MS);
}

static void
parse_args (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "socket", required_argument, NULL, 's' },
    { "state-dir", required_argument, NULL, 'd' },
    { "group", required_argument, NULL, 'g' },
    { "agent-timeout", required_argument, NULL, 't' },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  int c;

  while ((c = getopt_long (argc, argv, "vhV", longopts, NULL)) != -1) {
    switch (c) {
    case 's':
      ibcd_config.socket_path = optarg;
      break;
    case 'd':
      ibcd_config.state_dir = optarg;
      break;
    case 'g':
      ibcd_config.group = optarg;
      break;
    case 't': {
      char *end;
      long ms = strtol (optarg, &end, 10);
      if (*optarg == '\0' || *end || ms < 1 || ms > 600000) {
        fprintf (stderr, "ibcryptd: --agent-timeout: 1..600000 ms\n");
        exit (EXIT_FAILURE);
      }
      ibcd_config.agent_timeout_ms = (int) ms;
      break;
    }
    case 'v':
      ibcd_log_max = IBCD_LOG_DEBUG;
      break;
    case 'h':
      usage (stdout);
      exit (EXIT_SUCCESS);
    case 'V':
      printf ("ibcryptd %s (protocol %d)\n", IBCD_VERSION, IBC_PROTO_VERSION);
      exit (EXIT_SUCCESS);
    default:
      usage (stderr);
      exit (EXIT_FAILURE);
    }
  }
  if (optind < argc) {
    fprintf (stderr, "ibcryptd: unexpected argument '%s'\n", argv[optind]);
    exit (EXIT_FAILURE);
  }
}

/* Key material must not reach core files or other users' ptrace. */
static void
harden (void)
{
  struct rlimit rl = { 0, 0 }, cur;

  if (prctl (PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
    log_warn ("prctl(PR_SET_DUMPABLE): %m");
  /* Under the unit's LimitCORE=0 setrlimit is filtered (@resources):
   * only call it when there is something to change. */
  if ((getrlimit (RLIMIT_CORE, &cur) < 0 || cur.rlim_cur != 0
       || cur.rlim_max != 0)
      && setrlimit (RLIMIT_CORE, &rl) < 0)
    log_warn ("setrlimit(RLIMIT_CORE): %m");
}

static void
lookup_group (void)
{
  struct group gr, *grp = NULL;
  char buf[16384];
  int r = getgrnam_r (ibcd_config.group, &gr, buf, sizeof buf, &grp);

  if (r == 0 && grp) {
    ibcd_config.group_exists = true;
    ibcd_config.gid = gr.gr_gid;
  } else
    log_warn ("group '%s' does not exist: only root may connect",
              ibcd_config.group);
}

/* The listening socket: from systemd, or created.  *ret_owned: we created
 * the file (and remove it at stop). */
static int
get_listener (int *ret_fd, bool *ret_owned)
{
  const char *path = ibcd_config.socket_path;
  char *copy, *dir;
  int n = sd_listen_fds (1), fd, r;

  if (n > 1) {
    log_err ("systemd passed %d sockets, expected one", n);
    return -EINVAL;
  }
  if (n == 1) {
    fd = SD_LISTEN_FDS_START;
    if (sd_is_socket_unix (fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
      log_err ("the socket systemd passed is not a listening Unix stream "
               "socket");
      return -EINVAL;
    }
    fcntl (fd, F_SETFD, FD_CLOEXEC);
    *ret_fd = fd;
    *ret_owned = false;
    log_info ("using the socket passed by systemd");
    return 0;
  }

  /* /run/ibcrypt may not exist without systemd's RuntimeDirectory=. */
  copy = strdup (path);
  if (copy == NULL)
    return -ENOMEM;
  dir = dirname (copy);
  if (mkdir (dir, 0755) < 0 && errno != EEXIST)
    log_warn ("creating '%s': %m", dir);
  free (copy);
  r = ibc_unix_listen (path, 0660, &fd);
  if (r < 0) {
    log_err ("listening on '%s': %s", path,
             r == -EADDRINUSE ? "in use (another ibcryptd?) or not a socket"
                              : strerror (-r));
    return r;
  }
  if (ibcd_config.group_exists && chown (path, (uid_t) -1, ibcd_config.gid) < 0)
    log_warn ("giving '%s' to group '%s': %m", path, ibcd_config.group);
  *ret_fd = fd;
  *ret_owned = true;
  return 0;
}

int
main (int argc, char **argv)
{
  char err[1024];
  sigset_t mask;
  bool owned = false;
  int listen_fd = -1, signal_fd, r;

  parse_args (argc, argv);
  harden ();
  if (ibc_secmem_init () < 0) {
    log_err ("libsodium failed to initialise");
    return EXIT_FAILURE;
  }
  signal (SIGPIPE, SIG_IGN);
  /* Blocked before any thread exists, so only the signalfd sees them. */
  sigemptyset (&mask);
  sigaddset (&mask, SIGTERM);
  sigaddset (&mask, SIGINT);
  sigaddset (&mask, SIGHUP);
  pthread_sigmask (SIG_BLOCK, &mask, NULL);
  signal_fd = signalfd (-1, &mask, SFD_CLOEXEC);
  if (signal_fd < 0) {
    log_err ("signalfd: %m");
    return EXIT_FAILURE;
  }

  lookup_group ();
  r = state_open (ibcd_config.state_dir, err, sizeof err);
  if (r < 0) {
    log_err ("%s", err);
    return EXIT_FAILURE;
  }
  if (get_listener (&listen_fd, &owned) < 0) {
    state_close ();
    return EXIT_FAILURE;
  }

  log_info ("ibcryptd %s ready on %s (state in %s)", IBCD_VERSION,
            owned ? ibcd_config.socket_path : "the socket passed by systemd",
            ibcd_config.state_dir);
  sd_notify (0, "READY=1\nSTATUS=Serving the control socket");
  r = ibcd_server_run (listen_fd, signal_fd);
  sd_notify (0, "STOPPING=1");

  close (listen_fd);
  if (owned)
    unlink (ibcd_config.socket_path);
  /* Every key wiped (libsodium zeroes locked memory on free). */
  keys_clear ();
  if (r < 0) {
    /* Threads still run: do not free what they may use. */
    log_info ("stopped (threads left running)");
    _exit (EXIT_SUCCESS);
  }
  agents_clear ();
  state_close ();
  close (signal_fd);
  log_info ("stopped");
  return EXIT_SUCCESS;
}
