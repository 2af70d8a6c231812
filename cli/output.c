/* ibcryptctl output: error messages, JSON, aligned tables, sizes. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ibcryptctl.h"

int
ctl_error (enum ctl_err_origin origin, int errnum, const char *fmt, ...)
{
  va_list ap;

  fputs ("ibcryptctl: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
  return errnum ? ctl_exit_status (origin, errnum) : CTL_EXIT_USAGE;
}

void
ctl_warn (const char *fmt, ...)
{
  va_list ap;

  fputs ("ibcryptctl: warning: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

char *
ctl_escape (const char *s, bool keep_newlines)
{
  size_t n = strlen (s);
  char *out = malloc (4 * n + 1), *p = out;

  if (out == NULL) {
    perror ("ibcryptctl");
    exit (CTL_EXIT_RESOURCES);
  }
  for (; *s; s++) {
    unsigned char c = (unsigned char) *s;

    if ((c < 0x20 && !(keep_newlines && (c == '\n' || c == '\t'))) || c == 0x7f)
      p += sprintf (p, "\\x%02x", c);
    else
      *p++ = (char) c;
  }
  *p = '\0';
  return out;
}

static bool
needs_escape (const char *s)
{
  for (; *s; s++)
    if ((unsigned char) *s < 0x20 || *s == 0x7f)
      return true;
  return false;
}

/* Escape control characters in every string of o, so that nothing the
 * daemon relays (names chosen by users) can drive the terminal.  Table
 * text keeps its newlines. */
static void
sanitize (struct json_object *o)
{
  if (o == NULL)
    return;
  if (json_object_is_type (o, json_type_array)) {
    for (size_t i = 0; i < json_object_array_length (o); i++) {
      struct json_object *v = json_object_array_get_idx (o, i);

      if (json_object_is_type (v, json_type_string)
          && needs_escape (json_object_get_string (v))) {
        char *e = ctl_escape (json_object_get_string (v), false);
        json_object_array_put_idx (o, i, json_object_new_string (e));
        free (e);
      } else
        sanitize (v);
    }
  } else if (json_object_is_type (o, json_type_object)) {
    json_object_object_foreach (o, key, v)
    {
      bool text = strcmp (key, "live") == 0 || strcmp (key, "inactive") == 0
                  || strcmp (key, "table") == 0;

      if (json_object_is_type (v, json_type_string)) {
        const char *s = json_object_get_string (v);

        if (needs_escape (s)) {
          char *e = ctl_escape (s, text);
          json_object_set_string (v, e);
          free (e);
        }
      } else
        sanitize (v);
    }
  }
}

bool
ctl_print_json (struct json_object *reply)
{
  int flags = JSON_C_TO_STRING_NOSLASHESCAPE;

  if (ctl.json == CTL_JSON_OFF) {
    sanitize (reply);
    return false;
  }
  /* The envelope is the protocol's business, not the user's. */
  json_object_object_del (reply, "id");
  json_object_object_del (reply, "ok");
  if (ctl.json == CTL_JSON_PRETTY)
    flags |= JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED;
  else
    flags |= JSON_C_TO_STRING_PLAIN;
  puts (json_object_to_json_string_ext (reply, flags));
  return true;
}

struct json_object *
ctl_member (struct json_object *o, const char *key, enum json_type type)
{
  struct json_object *v;

  if (o == NULL || !json_object_is_type (o, json_type_object)
      || !json_object_object_get_ex (o, key, &v) || v == NULL
      || !json_object_is_type (v, type))
    return NULL;
  return v;
}

const char *
ctl_str (struct json_object *o, const char *key, const char *fallback)
{
  struct json_object *v = ctl_member (o, key, json_type_string);

  return v ? json_object_get_string (v) : fallback;
}

int64_t
ctl_int (struct json_object *o, const char *key)
{
  struct json_object *v = ctl_member (o, key, json_type_int);

  return v ? json_object_get_int64 (v) : -1;
}

const char *
ctl_size_text (int64_t bytes, char *buf, size_t len)
{
  static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
  double v = (double) bytes;
  int u = -1;

  if (bytes < 0) {
    snprintf (buf, len, "to the end");
    return buf;
  }
  if (bytes < 1024) {
    snprintf (buf, len, "%" PRId64 " bytes", bytes);
    return buf;
  }
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  if (v == (double) (int64_t) v)
    snprintf (buf, len, "%" PRId64 " bytes (%" PRId64 " %s)", bytes,
              (int64_t) v, units[u]);
  else
    snprintf (buf, len, "%" PRId64 " bytes (%.1f %s)", bytes, v, units[u]);
  return buf;
}

static int
by_name (const void *a, const void *b)
{
  struct json_object *const *x = a, *const *y = b;

  return strcmp (ctl_str (*x, "name", ""), ctl_str (*y, "name", ""));
}

void
ctl_sort_by_name (struct json_object *arr)
{
  if (arr && json_object_is_type (arr, json_type_array))
    json_object_array_sort (arr, by_name);
}

/* ---- aligned tables ------------------------------------------------------ */

struct ctl_table {
  size_t ncols, nrows, cap;
  char **cells; /* row-major, row 0 the header */
};

static void
table_push (struct ctl_table *t, va_list ap)
{
  if (t == NULL)
    return;
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    char **cells = realloc (t->cells, cap * t->ncols * sizeof *cells);

    if (cells == NULL) {
      perror ("ibcryptctl");
      exit (CTL_EXIT_RESOURCES);
    }
    t->cells = cells;
    t->cap = cap;
  }
  for (size_t i = 0; i < t->ncols; i++) {
    const char *s = va_arg (ap, const char *);
    char *copy = strdup (s ? s : "-");

    if (copy == NULL) {
      perror ("ibcryptctl");
      exit (CTL_EXIT_RESOURCES);
    }
    t->cells[t->nrows * t->ncols + i] = copy;
  }
  t->nrows++;
}

struct ctl_table *
ctl_table_new (size_t ncols, ...)
{
  struct ctl_table *t = calloc (1, sizeof *t);
  va_list ap;

  if (t == NULL) {
    perror ("ibcryptctl");
    exit (CTL_EXIT_RESOURCES);
  }
  t->ncols = ncols;
  va_start (ap, ncols);
  table_push (t, ap);
  va_end (ap);
  return t;
}

void
ctl_table_add (struct ctl_table *t, ...)
{
  va_list ap;

  va_start (ap, t);
  table_push (t, ap);
  va_end (ap);
}

void
ctl_table_print (struct ctl_table *t)
{
  size_t width[16] = { 0 };

  for (size_t r = 0; r < t->nrows; r++)
    for (size_t i = 0; i < t->ncols && i < 16; i++) {
      size_t w = strlen (t->cells[r * t->ncols + i]);
      if (w > width[i])
        width[i] = w;
    }
  for (size_t r = 0; r < t->nrows; r++) {
    for (size_t i = 0; i < t->ncols; i++) {
      const char *s = t->cells[r * t->ncols + i];

      if (i + 1 < t->ncols)
        printf ("%-*s  ", (int) width[i < 16 ? i : 15], s);
      else
        printf ("%s\n", s);
    }
  }
}

void
ctl_table_free (struct ctl_table *t)
{
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    free (t->cells[i]);
  free (t->cells);
  free (t);
}

/* ---- generic printers ----------------------------------------------------- */

void
ctl_print_scalars (struct json_object *o, const char *prefix)
{
  if (o == NULL || !json_object_is_type (o, json_type_object))
    return;
  json_object_object_foreach (o, key, v)
  {
    if (v == NULL)
      printf ("%s%s: -\n", prefix, key);
    else if (!json_object_is_type (v, json_type_object)
             && !json_object_is_type (v, json_type_array))
      printf ("%s%s: %s\n", prefix, key, json_object_get_string (v));
  }
}

const char *
ctl_slot_usage (struct json_object *profile, char *buf, size_t len)
{
  struct json_object *slots = ctl_member (profile, "keyslots", json_type_array);
  int64_t n = ctl_int (profile, "num_keyslots");
  size_t used = 0;

  if (profile == NULL) {
    snprintf (buf, len, "no inline crypto");
    return buf;
  }
  if (n <= 0) {
    snprintf (buf, len, "no keyslots");
    return buf;
  }
  for (size_t i = 0; slots && i < json_object_array_length (slots); i++) {
    struct json_object *s = json_object_array_get_idx (slots, i);

    if (ctl_str (s, "key_id", NULL) != NULL)
      used++;
  }
  snprintf (buf, len, "%zu/%" PRId64 " slots", used, n);
  return buf;
}
