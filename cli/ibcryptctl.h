/* ibcryptctl internals: the command table, the client, output and input. */
#ifndef IBCRYPTCTL_H
#define IBCRYPTCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json_object.h>

#define CTL_DEFAULT_SOCKET "/run/ibcrypt/control.sock"

/* ---- main.c: global options and the command table ---------------------- */

enum ctl_json_mode { CTL_JSON_OFF, CTL_JSON_SHORT, CTL_JSON_PRETTY };

struct ctl_global {
  const char *socket; /* --socket, $IBCRYPT_SOCKET, or the default */
  enum ctl_json_mode json;
  bool yes; /* --yes: do not ask */
};
extern struct ctl_global ctl;

/* One command: "key add" is group "key", name "add"; top-level commands
 * have group NULL.  run() gets argv[0] = the command name and returns the
 * process exit status. */
struct ctl_command {
  const char *group;
  const char *name;
  const char *args;    /* usage after the command words */
  const char *summary; /* one line */
  const char *options; /* option help lines, or NULL */
  int (*run) (int argc, char **argv);
};

/* The command currently running (for usage messages). */
extern const struct ctl_command *ctl_current;

/* Print "ibcryptctl: CMD: MESSAGE" and a hint to the command's --help on
 * stderr; returns exit status 1. */
int ctl_usage_error (const char *fmt, ...)
    __attribute__ ((format (printf, 1, 2)));

/* getopt_long() wrapper that reports unknown options and missing
 * arguments as usage errors.  Returns the option character, -1 at the end
 * of options, or '?' after printing a usage error. */
struct option;
int ctl_getopt (int argc, char **argv, const char *shortopts,
                const struct option *longopts);

/* Positional argument count check: prints a usage error unless
 * min <= argc - optind <= max; returns 0 or exit status 1. */
int ctl_want_args (int argc, char **argv, int min, int max);
/* For commands without options: ctl_getopt with none, then
 * ctl_want_args.  Returns 0 or an exit status. */
int ctl_positional (int argc, char **argv, int min, int max);

/* ---- exitcode.c ---------------------------------------------------------- */

/* Where an error happened: the exit status of a failed connect(2) differs
 * from the same errno coming back from the daemon. */
enum ctl_err_origin {
  CTL_ERR_LOCAL,   /* a local operation, or the daemon's error object */
  CTL_ERR_CONNECT, /* reaching the daemon's socket */
  CTL_ERR_LINK,    /* the connection broke or timed out mid-request */
};

#define CTL_EXIT_OK 0
#define CTL_EXIT_USAGE 1
#define CTL_EXIT_PERMISSION 2
#define CTL_EXIT_RESOURCES 3
#define CTL_EXIT_NO_SUCH 4
#define CTL_EXIT_BUSY 5
#define CTL_EXIT_UNREACHABLE 6

/* The one errno -> exit status function (errnum positive or negative). */
int ctl_exit_status (enum ctl_err_origin origin, int errnum);

/* ---- client.c ------------------------------------------------------------ */

struct ctl_client;

/* Connect to ctl.socket and say hello as "cli".  On failure prints
 * "ibcryptctl: connecting to ibcryptd at 'PATH': REASON" and returns NULL
 * with *ret_status set to the exit status. */
struct ctl_client *ctl_connect (int *ret_status);
void ctl_client_free (struct ctl_client *c);

/* Send req (consumed; its "id" is assigned here) with an optional secret
 * and wait for the reply.  Returns 0 and *ret_reply (one reference), or
 * -errno: the daemon's error (ctl_client_message() has its text) or a
 * transport failure (ctl_client_origin() says CTL_ERR_LINK). */
int ctl_call (struct ctl_client *c, struct json_object *req, const void *secret,
              size_t secret_len, struct json_object **ret_reply);

/* A new request object for op (id filled in by ctl_call), or NULL. */
struct json_object *ctl_request (const char *op);

const char *ctl_client_message (const struct ctl_client *c);
enum ctl_err_origin ctl_client_origin (const struct ctl_client *c);

/* Report a failed ctl_call(): "ibcryptctl: DOING: REASON" (the daemon's
 * message, else strerror) and return the exit status. */
int ctl_call_failed (const struct ctl_client *c, int r, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Connect, call one op, and on failure report it.  Returns 0 with
 * *ret_reply, or an exit status > 0. */
int ctl_simple_call (struct json_object *req, struct json_object **ret_reply,
                     const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* ---- output.c ------------------------------------------------------------ */

/* "ibcryptctl: " + message on stderr; returns the exit status for
 * (origin, errnum), or 1 when errnum is 0. */
int ctl_error (enum ctl_err_origin origin, int errnum, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
void ctl_warn (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* s with control characters (but newlines and tabs when keep_newlines) as
 * \xNN, for printing text that came from the daemon.  free() it. */
char *ctl_escape (const char *s, bool keep_newlines);

/* With --json: print the reply minus its envelope ("id", "ok") as one
 * object on stdout and return true.  Else escape control characters in the
 * reply's strings (PROTOCOL.md: messages and names may hold anything; table
 * text keeps newlines) for the caller's human output and return false. */
bool ctl_print_json (struct json_object *reply);

/* Member access that tolerates missing members (returns fallback). */
const char *ctl_str (struct json_object *o, const char *key,
                     const char *fallback);
/* Integer member or -1 if absent/null. */
int64_t ctl_int (struct json_object *o, const char *key);
struct json_object *ctl_member (struct json_object *o, const char *key,
                                enum json_type type);

/* Sort an array of objects by their "name" (human listings). */
void ctl_sort_by_name (struct json_object *arr);

/* "4194304 (4 MiB)" style size text into buf. */
const char *ctl_size_text (int64_t bytes, char *buf, size_t len);

/* Aligned text columns: collect rows, then print with two spaces between
 * columns, the last column not padded. */
struct ctl_table;
struct ctl_table *ctl_table_new (size_t ncols, ...);
void ctl_table_add (struct ctl_table *t, ...);
void ctl_table_print (struct ctl_table *t);
void ctl_table_free (struct ctl_table *t);

/* Print a flat object's scalar members as "PREFIXkey: value" lines. */
void ctl_print_scalars (struct json_object *o, const char *prefix);

/* "2/4 slots", "passthrough (no keyslots)" or "no inline crypto". */
const char *ctl_slot_usage (struct json_object *profile, char *buf, size_t len);

/* ---- input.c ------------------------------------------------------------- */

/* Read a key for key_name from path ("-" = stdin) with read(2) into locked
 * memory: exactly want bytes when exact, else 1..want bytes.  cipher names
 * the cipher in messages.  Prints the error and returns its exit status,
 * or 0 with *ret_key (ibc_secmem_alloc'ed, *ret_len bytes; free with
 * ibc_secmem_free (key, *ret_len)). */
int ctl_read_key (const char *key_name, const char *path, const char *cipher,
                  size_t want, bool exact, uint8_t **ret_key, size_t *ret_len);

/* Read a text file (tables) from path ("-" = stdin), at most max bytes,
 * NUL-terminated.  Prints the error ("reading WHAT from 'PATH'") and
 * returns its exit status, or 0 and *ret_text (free()). */
int ctl_read_text (const char *what, const char *path, size_t max,
                   char **ret_text);

/* Ask "QUESTION [y/N]" on the terminal when stdin is one and --yes was not
 * given.  Returns true to proceed. */
bool ctl_confirm (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* ---- command handlers ----------------------------------------------------- */

int ctl_cmd_status (int argc, char **argv);
int ctl_cmd_key_add (int argc, char **argv);
int ctl_cmd_key_list (int argc, char **argv);
int ctl_cmd_key_show (int argc, char **argv);
int ctl_cmd_key_evict (int argc, char **argv);
int ctl_cmd_key_remove (int argc, char **argv);
int ctl_cmd_key_import (int argc, char **argv);
int ctl_cmd_key_generate (int argc, char **argv);
int ctl_cmd_key_prepare (int argc, char **argv);
int ctl_cmd_device_list (int argc, char **argv);
int ctl_cmd_device_show (int argc, char **argv);
int ctl_cmd_device_caps (int argc, char **argv);
int ctl_cmd_device_reset (int argc, char **argv);
int ctl_cmd_table_show (int argc, char **argv);
int ctl_cmd_table_load (int argc, char **argv);
int ctl_cmd_table_resume (int argc, char **argv);
int ctl_cmd_map (int argc, char **argv);
int ctl_cmd_stats (int argc, char **argv);

/* device.c: the human view of one device object. */
void ctl_print_device (struct json_object *dev);

#endif
