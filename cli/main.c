/* ibcryptctl: global options, the command table, help and dispatch. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ibcrypt/secmem.h"
#include "ibcryptctl.h"

#ifndef IBC_VERSION
#define IBC_VERSION "unknown"
#endif

struct ctl_global ctl;
const struct ctl_command *ctl_current;

#define DEV_OPT "DEVICE is INSTANCE (the exported device) or INSTANCE/DEV.\n"

/* The command table: dispatch, "help" and every usage message come from
 * here, so they cannot drift apart.  Order is the order of "help". */
static const struct ctl_command commands[] = {
  { NULL, "status", "",
    "Show each instance's devices as a tree, keyslot usage, and the keys.",
    NULL, ctl_cmd_status },
  { "key", "add",
    "NAME --cipher CIPHER (--key-file PATH|- | --generate) [--hw-wrapped]",
    "Add a named key to ibcryptd (bytes from a file or stdin, or generated).",
    "  --cipher CIPHER     aes-xts-plain64 (64-byte keys),\n"
    "                      aes-cbc-essiv:sha256 (16),\n"
    "                      xchacha12,aes-adiantum-plain64 (32),\n"
    "                      sm4-xts-plain64 (32)\n"
    "  --key-file PATH|-   read the key bytes from PATH, or standard input:\n"
    "                      exactly the cipher's key size for raw keys\n"
    "  --generate          let ibcryptd generate the key (no bytes sent)\n"
    "  --hw-wrapped        the key is a hardware-wrapped key blob\n",
    ctl_cmd_key_add },
  { "key", "list", "", "List the keys ibcryptd holds (names and key ids).",
    NULL, ctl_cmd_key_list },
  { "key", "show", "NAME",
    "Show one key: cipher, key id, bindings, instances holding it.", NULL,
    ctl_cmd_key_show },
  { "key", "evict", "NAME [DEVICE]",
    "Evict a key from the keyslots of DEVICE, or of every device.",
    "  " DEV_OPT, ctl_cmd_key_evict },
  { "key", "remove", "NAME [--force]",
    "Remove a key: evict and wipe it everywhere.",
    "  --force   remove it even while crypt tables use it (I/O to those\n"
    "            ranges then fails with EIO)\n",
    ctl_cmd_key_remove },
  { "key", "import", "DEVICE --key-file PATH|- [--output FILE]",
    "Wrap a raw key with DEVICE's hardware: write the long-term blob.",
    "  --key-file PATH|-   the raw key (16 to 64 bytes) from PATH or stdin\n"
    "  --output FILE       write the blob to FILE (mode 0600), not stdout\n"
    "  " DEV_OPT,
    ctl_cmd_key_import },
  { "key", "generate", "DEVICE [--output FILE]",
    "Let DEVICE's hardware generate a key: write its long-term blob.",
    "  --output FILE       write the blob to FILE (mode 0600), not stdout\n"
    "  " DEV_OPT,
    ctl_cmd_key_generate },
  { "key", "prepare", "DEVICE LTBLOB_FILE [--output FILE]",
    "Turn a long-term blob into this boot's ephemeral blob.",
    "  LTBLOB_FILE         the long-term blob (key import/generate), or -\n"
    "  --output FILE       write the blob to FILE (mode 0600), not stdout\n"
    "  " DEV_OPT,
    ctl_cmd_key_prepare },
  { "device", "list", "", "List the devices of every instance.", NULL,
    ctl_cmd_device_list },
  { "device", "show", "DEVICE",
    "Show a device: kind, range, capabilities, keyslots, counters.",
    "  " DEV_OPT, ctl_cmd_device_show },
  { "device", "caps", "DEVICE [--check CIPHER:DUS:DUN_BYTES[:KEY_TYPE]]",
    "Show a device's inline-encryption capabilities, or check one config.",
    "  --check CIPHER:DUS:DUN_BYTES[:KEY_TYPE]\n"
    "            exit 0 if the device supports the config natively, else 1\n"
    "            (KEY_TYPE raw or hw-wrapped, default raw)\n",
    ctl_cmd_device_caps },
  { "device", "reset", "DEVICE",
    "Reset an emulated keyslot device (keys lost, then reprogrammed).",
    "  " DEV_OPT, ctl_cmd_device_reset },
  { "table", "show", "DEVICE [--inactive]",
    "Print a passthrough device's live (or loaded, inactive) table.",
    "  --inactive   the loaded table instead of the live one\n",
    ctl_cmd_table_show },
  { "table", "load", "DEVICE [FILE|-]",
    "Load a passthrough table (inactive until 'table resume').",
    "  FILE   the table, default standard input\n", ctl_cmd_table_load },
  { "table", "resume", "DEVICE",
    "Make the loaded table of a passthrough device live.", NULL,
    ctl_cmd_table_resume },
  { NULL, "map",
    "INSTANCE (FILE|- | KEY --cipher CIPHER [RANGE OPTIONS] [--dry-run])",
    "Set the crypt table of an instance, from a file or one key range.",
    "  FILE|-               a crypt table (512-byte sectors)\n"
    "  KEY                  the name of a key held by ibcryptd: map one\n"
    "                       range with it, the rest of the device plain\n"
    "  --cipher CIPHER      the range's cipher\n"
    "\nRANGE OPTIONS (the KEY form):\n"
    "  --start SECTOR       first sector of the range (default 0)\n"
    "  --length SECTORS     its length (default: to the end of the device)\n"
    "  --iv-offset N        added to the DUN (default 0)\n"
    "  --sector-size N      data unit size in bytes (default 512)\n"
    "  --dry-run            print the table instead of mapping it\n",
    ctl_cmd_map },
  { NULL, "stats", "[DEVICE]",
    "Show the counters of DEVICE or of every device.", NULL, ctl_cmd_stats },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const char global_usage[]
    = "Usage: ibcryptctl [--socket PATH] [--json[=short|pretty|off]] [--yes] "
      "COMMAND [ARGS...]\n";

static const char global_help[]
    = "Options (anywhere before '--'):\n"
      "  --socket PATH    ibcryptd's control socket (default $IBCRYPT_SOCKET,\n"
      "                   else " CTL_DEFAULT_SOCKET ")\n"
      "  --json[=MODE]    print one JSON object on stdout: short, pretty or\n"
      "                   off; bare --json is pretty on a terminal, else "
      "short\n"
      "  --yes, -y        do not ask before destructive commands (they only\n"
      "                   ask when standard input is a terminal)\n"
      "  --help, -h       this help, or a command's help\n"
      "  --version        print the version\n"
      "\n"
      "Exit status: 0 success, 1 usage or other error, 2 permission denied,\n"
      "3 out of resources, 4 no such key or device, 5 busy or exists,\n"
      "6 ibcryptd unreachable.\n";

static void
print_command_line (FILE *f, const struct ctl_command *c)
{
  char words[256];

  snprintf (words, sizeof words, "%s%s%s%s%s", c->group ? c->group : "",
            c->group ? " " : "", c->name, c->args[0] ? " " : "", c->args);
  fprintf (f, "  %s\n      %s\n", words, c->summary);
}

/* The whole command list, or one group's. */
static void
print_help (FILE *f, const char *group)
{
  if (group)
    fprintf (f, "Usage: ibcryptctl [OPTIONS] %s COMMAND [ARGS...]\n", group);
  else
    fputs (global_usage, f);
  fputs ("\nCommands:\n", f);
  for (size_t i = 0; i < NCOMMANDS; i++) {
    if (group
        && (commands[i].group == NULL
            || strcmp (commands[i].group, group) != 0))
      continue;
    print_command_line (f, &commands[i]);
  }
  fputs ("\n", f);
  fputs (global_help, f);
}

static void
print_command_help (const struct ctl_command *c)
{
  printf ("Usage: ibcryptctl [OPTIONS] %s%s%s%s%s\n\n%s\n",
          c->group ? c->group : "", c->group ? " " : "", c->name,
          c->args[0] ? " " : "", c->args, c->summary);
  if (c->options)
    printf ("\n%s", c->options);
  printf ("\nCommon options: --socket PATH, --json[=MODE], --yes; "
          "see 'ibcryptctl help'.\n");
}

static bool
is_group (const char *word)
{
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (commands[i].group && strcmp (commands[i].group, word) == 0)
      return true;
  return false;
}

static const struct ctl_command *
find_command (const char *group, const char *name)
{
  for (size_t i = 0; i < NCOMMANDS; i++) {
    const struct ctl_command *c = &commands[i];

    if ((group == NULL) != (c->group == NULL))
      continue;
    if (group && strcmp (c->group, group) != 0)
      continue;
    if (strcmp (c->name, name) == 0)
      return c;
  }
  return NULL;
}

static void
command_words (const struct ctl_command *c, char *buf, size_t len)
{
  snprintf (buf, len, "%s%s%s", c->group ? c->group : "", c->group ? " " : "",
            c->name);
}

int
ctl_usage_error (const char *fmt, ...)
{
  char words[64] = "";
  va_list ap;

  if (ctl_current)
    command_words (ctl_current, words, sizeof words);
  fprintf (stderr, "ibcryptctl: %s%s", words, words[0] ? ": " : "");
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, "\nSee 'ibcryptctl %s%s--help'.\n", words,
           words[0] ? " " : "");
  return CTL_EXIT_USAGE;
}

int
ctl_getopt (int argc, char **argv, const char *shortopts,
            const struct option *longopts)
{
  char spec[64];
  int c;

  /* A leading ':' makes getopt report a missing argument as ':'. */
  snprintf (spec, sizeof spec, ":%s", shortopts);
  opterr = 0;
  c = getopt_long (argc, argv, spec, longopts, NULL);
  if (c == '?') {
    if (optopt)
      ctl_usage_error ("unrecognized option '-%c'", optopt);
    else
      ctl_usage_error ("unrecognized option '%s'", argv[optind - 1]);
    return '?';
  }
  if (c == ':') {
    ctl_usage_error ("option '%s' requires an argument", argv[optind - 1]);
    return '?';
  }
  return c;
}

int
ctl_want_args (int argc, char **argv, int min, int max)
{
  int n = argc - optind;

  if (n < min)
    return ctl_usage_error ("missing argument (%s%s%s %s)",
                            ctl_current->group ? ctl_current->group : "",
                            ctl_current->group ? " " : "", ctl_current->name,
                            ctl_current->args);
  if (n > max)
    return ctl_usage_error ("unexpected argument '%s'", argv[optind + max]);
  return 0;
}

int
ctl_positional (int argc, char **argv, int min, int max)
{
  static const struct option none[] = { { NULL, 0, NULL, 0 } };

  /* Any option is a usage error (ctl_getopt has reported it). */
  if (ctl_getopt (argc, argv, "", none) != -1)
    return CTL_EXIT_USAGE;
  return ctl_want_args (argc, argv, min, max);
}

/* Global options may appear anywhere before "--"; take them out of argv so
 * each command parses only its own.  Returns 0, or an exit status + 1 to
 * stop (help/version/usage already handled by the caller's flags). */
static int
take_global_options (int *argc, char **argv, bool *help, bool *version)
{
  int out = 1;

  for (int i = 1; i < *argc; i++) {
    const char *a = argv[i];

    if (strcmp (a, "--") == 0) {
      for (; i < *argc; i++)
        argv[out++] = argv[i];
      break;
    }
    if (strcmp (a, "--socket") == 0) {
      if (i + 1 >= *argc) {
        ctl_usage_error ("option '--socket' requires an argument");
        return CTL_EXIT_USAGE + 1;
      }
      ctl.socket = argv[++i];
    } else if (strncmp (a, "--socket=", 9) == 0)
      ctl.socket = a + 9;
    else if (strcmp (a, "--json") == 0)
      ctl.json = isatty (STDOUT_FILENO) ? CTL_JSON_PRETTY : CTL_JSON_SHORT;
    else if (strncmp (a, "--json=", 7) == 0) {
      if (strcmp (a + 7, "short") == 0)
        ctl.json = CTL_JSON_SHORT;
      else if (strcmp (a + 7, "pretty") == 0)
        ctl.json = CTL_JSON_PRETTY;
      else if (strcmp (a + 7, "off") == 0)
        ctl.json = CTL_JSON_OFF;
      else {
        ctl_usage_error ("invalid --json mode '%s' (short, pretty or off)",
                         a + 7);
        return CTL_EXIT_USAGE + 1;
      }
    } else if (strcmp (a, "--yes") == 0 || strcmp (a, "-y") == 0)
      ctl.yes = true;
    else if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0)
      *help = true;
    else if (strcmp (a, "--version") == 0)
      *version = true;
    else
      argv[out++] = argv[i];
  }
  argv[out] = NULL;
  *argc = out;
  return 0;
}

int
main (int argc, char **argv)
{
  const struct ctl_command *cmd;
  bool help = false, version = false;
  const char *group = NULL;
  int r, first;

  ctl.socket = getenv ("IBCRYPT_SOCKET");
  if (ctl.socket == NULL || ctl.socket[0] == '\0')
    ctl.socket = CTL_DEFAULT_SOCKET;
  r = take_global_options (&argc, argv, &help, &version);
  if (r)
    return r - 1;
  if (version) {
    printf ("ibcryptctl %s\n", IBC_VERSION);
    return 0;
  }
  if (ibc_secmem_init () < 0) {
    fprintf (stderr, "ibcryptctl: initialising libsodium: failed\n");
    return CTL_EXIT_USAGE;
  }

  first = 1;
  if (argc > 1 && strcmp (argv[1], "help") == 0) {
    /* "help [GROUP [COMMAND]]" is "[GROUP [COMMAND]] --help". */
    help = true;
    first = 2;
  }
  if (argc <= first) {
    if (help) {
      print_help (stdout, NULL);
      return 0;
    }
    fputs (global_usage, stderr);
    fputs ("See 'ibcryptctl help'.\n", stderr);
    return CTL_EXIT_USAGE;
  }
  if (strcmp (argv[first], "--") == 0)
    return ctl_usage_error ("'--' before the command");
  if (is_group (argv[first])) {
    group = argv[first++];
    if (argc <= first || strcmp (argv[first], "--") == 0) {
      if (help) {
        print_help (stdout, group);
        return 0;
      }
      fprintf (stderr, "ibcryptctl: missing %s command\n", group);
      print_help (stderr, group);
      return CTL_EXIT_USAGE;
    }
  }
  cmd = find_command (group, argv[first]);
  if (cmd == NULL) {
    fprintf (stderr, "ibcryptctl: unknown command '%s%s%s'\n",
             group ? group : "", group ? " " : "", argv[first]);
    fprintf (stderr, "See 'ibcryptctl %s%s--help'.\n", group ? group : "",
             group ? " " : "");
    return CTL_EXIT_USAGE;
  }
  ctl_current = cmd;
  if (help) {
    print_command_help (cmd);
    return 0;
  }
  optind = 0; /* GNU: restart getopt on the command's arguments */
  return cmd->run (argc - first, argv + first);
}
