/* ibcryptd's persistent state: crypt maps and passthrough live tables. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ibcrypt/registry.h"
#include "ibcrypt/table.h"
#include "ibcryptd.h"

/* STATE_DIR/state.json:
 *   {"version": 1,
 *    "maps":   {"INSTANCE": "<crypt table text>", ...},
 *    "tables": {"INSTANCE/DEV": "<passthrough table text>", ...}}
 * Tables name keys (":NAME"), never hold key bytes: the crypt table parser
 * rejects inline keys, so nothing secret can get in.  Every change rewrites
 * the whole file: temporary file, fsync, rename, fsync of the directory, so
 * a crash leaves either the old or the new state, never a mix. */
#define STATE_FILE "state.json"
#define STATE_TMP "state.json.tmp"
#define STATE_VERSION 1

struct entry {
  char *name;
  char *text;
  struct ibc_crypt_table *crypt; /* maps: parsed, for binding lookups */
};

struct section {
  struct entry *v;
  size_t n;
};

/* Why: ops on different connections read and change the state. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct section maps, tables;
static int dir_fd = -1; /* flock()ed: one daemon per state directory */
static char *dir_path;

static void
entry_free (struct entry *e)
{
  free (e->name);
  free (e->text);
  ibc_crypt_table_free (e->crypt);
}

static void
section_clear (struct section *s)
{
  for (size_t i = 0; i < s->n; i++)
    entry_free (&s->v[i]);
  free (s->v);
  s->v = NULL;
  s->n = 0;
}

static struct entry *
section_find (struct section *s, const char *name)
{
  for (size_t i = 0; i < s->n; i++)
    if (strcmp (s->v[i].name, name) == 0)
      return &s->v[i];
  return NULL;
}

/* Validate one entry; parsed crypt table in *ret_crypt for maps. */
static int
check_entry (bool is_map, const char *name, const char *text,
             struct ibc_crypt_table **ret_crypt, char *err, size_t errsize)
{
  char instance[IBCD_NAME_MAX + 1];
  struct ibc_dm_table *dm = NULL;
  int r;

  if (is_map ? !ibc_device_name_valid (name)
             : !devices_split (name, instance) || strchr (name, '/') == NULL) {
    snprintf (err, errsize, "bad %s name", is_map ? "instance" : "device");
    return -EINVAL;
  }
  if (is_map)
    r = ibc_crypt_table_parse (text, 0, ret_crypt, err, errsize);
  else {
    r = ibc_dm_table_parse (text, 0, &dm, err, errsize);
    ibc_dm_table_free (dm);
  }
  if (r == -ENOMEM)
    snprintf (err, errsize, "out of memory");
  return r;
}

/* Load one section ("maps" or "tables") of root into s. */
static int
load_section (struct json_object *root, const char *key, struct section *s,
              char *err, size_t errsize)
{
  struct json_object *obj;
  char why[IBC_TABLE_ERR_MAX];
  int r = ibc_proto_get_object (root, key, &obj);

  if (r == -ENOENT)
    return 0;
  if (r < 0) {
    snprintf (err, errsize, "\"%s\" is not an object", key);
    return -EINVAL;
  }
  s->v = calloc (json_object_object_length (obj) + 1, sizeof *s->v);
  if (s->v == NULL)
    return -ENOMEM;
  json_object_object_foreach (obj, name, val)
  {
    struct entry *e = &s->v[s->n];
    const char *text;

    if (!json_object_is_type (val, json_type_string)
        || ibc_proto_get_string (obj, name, &text) < 0) {
      snprintf (err, errsize, "%s.%s is not a string", key, name);
      return -EINVAL;
    }
    r = check_entry (s == &maps, name, text, &e->crypt, why, sizeof why);
    if (r < 0) {
      snprintf (err, errsize, "%s.%s: %s", key, name, why);
      return r;
    }
    e->name = strdup (name);
    e->text = strdup (text);
    s->n++;
    if (e->name == NULL || e->text == NULL)
      return -ENOMEM;
  }
  return 0;
}

static int
load (char *err, size_t errsize)
{
  struct json_object *root = NULL;
  struct json_tokener *tok = NULL;
  char *buf = NULL;
  size_t len = 0;
  int fd, r = 0, version;
  struct stat st;

  fd = openat (dir_fd, STATE_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT)
    return 0; /* first start */
  if (fd < 0 || fstat (fd, &st) < 0) {
    r = -errno;
    snprintf (err, errsize, "%s", strerror (-r));
    goto out;
  }
  if (!S_ISREG (st.st_mode) || st.st_size > 64 * 1024 * 1024) {
    snprintf (err, errsize, "not a regular file of at most 64 MiB");
    r = -EINVAL;
    goto out;
  }
  buf = malloc (st.st_size + 1);
  if (buf == NULL) {
    r = -ENOMEM;
    goto out;
  }
  while (len < (size_t) st.st_size) {
    ssize_t n = read (fd, buf + len, st.st_size - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      r = n < 0 ? -errno : -EIO;
      snprintf (err, errsize, "reading: %s", strerror (-r));
      goto out;
    }
    len += n;
  }
  buf[len] = '\0';
  tok = json_tokener_new ();
  if (tok == NULL) {
    r = -ENOMEM;
    goto out;
  }
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT);
  root = json_tokener_parse_ex (tok, buf, (int) len);
  if (root == NULL || json_tokener_get_error (tok) != json_tokener_success
      || !json_object_is_type (root, json_type_object)) {
    snprintf (err, errsize, "not a JSON object (%s)",
              json_tokener_error_desc (json_tokener_get_error (tok)));
    r = -EINVAL;
    goto out;
  }
  if (ibc_proto_get_int (root, "version", &version) < 0
      || version != STATE_VERSION) {
    snprintf (err, errsize, "\"version\" is not %d", STATE_VERSION);
    r = -EINVAL;
    goto out;
  }
  r = load_section (root, "maps", &maps, err, errsize);
  if (r == 0)
    r = load_section (root, "tables", &tables, err, errsize);

out:
  if (r == -ENOMEM)
    snprintf (err, errsize, "out of memory");
  json_object_put (root);
  if (tok)
    json_tokener_free (tok);
  free (buf);
  if (fd >= 0)
    close (fd);
  return r;
}

int
state_open (const char *dir, char *err, size_t errsize)
{
  struct stat st;
  char why[512];
  int r;

  /* 0700: the state names keys and devices, nobody else's business. */
  if (mkdir (dir, 0700) < 0 && errno != EEXIST) {
    r = -errno;
    snprintf (err, errsize, "creating state directory '%s': %s", dir,
              strerror (-r));
    return r;
  }
  dir_fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    r = -errno;
    snprintf (err, errsize, "opening state directory '%s': %s", dir,
              strerror (-r));
    return r;
  }
  if (flock (dir_fd, LOCK_EX | LOCK_NB) < 0) {
    r = -errno;
    snprintf (err, errsize,
              "state directory '%s' is in use by another "
              "ibcryptd",
              dir);
    goto out_close;
  }
  if (fstat (dir_fd, &st) == 0 && (st.st_mode & 0077))
    log_warn ("state directory '%s' is accessible to others (mode %04o): "
              "it should be 0700",
              dir, (unsigned) (st.st_mode & 07777));
  dir_path = strdup (dir);
  r = dir_path ? load (why, sizeof why) : -ENOMEM;
  if (r < 0) {
    snprintf (err, errsize,
              "%s/%s is corrupt or unreadable: %s (refusing "
              "to start: fix or move the file away)",
              dir, STATE_FILE, why);
    goto out_close;
  }
  return 0;

out_close:
  section_clear (&maps);
  section_clear (&tables);
  close (dir_fd);
  dir_fd = -1;
  free (dir_path);
  dir_path = NULL;
  return r;
}

void
state_close (void)
{
  pthread_mutex_lock (&lock);
  section_clear (&maps);
  section_clear (&tables);
  if (dir_fd >= 0)
    close (dir_fd);
  dir_fd = -1;
  free (dir_path);
  dir_path = NULL;
  pthread_mutex_unlock (&lock);
}

static struct json_object *
section_json (const struct section *s)
{
  struct json_object *o = json_object_new_object ();

  for (size_t i = 0; o && i < s->n; i++)
    json_object_object_add (o, s->v[i].name,
                            json_object_new_string (s->v[i].text));
  return o;
}

/* Write the whole state (lock held).  0 or -errno. */
static int
persist (void)
{
  struct json_object *root = json_object_new_object ();
  const char *text;
  size_t len, off = 0;
  int fd, r = 0;

  if (root == NULL)
    return -ENOMEM;
  json_object_object_add (root, "version", json_object_new_int (STATE_VERSION));
  json_object_object_add (root, "maps", section_json (&maps));
  json_object_object_add (root, "tables", section_json (&tables));
  text = json_object_to_json_string_ext (
      root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
  if (text == NULL) {
    json_object_put (root);
    return -ENOMEM;
  }
  len = strlen (text);

  fd = openat (dir_fd, STATE_TMP,
               O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    r = -errno;
    goto out;
  }
  while (off < len) {
    ssize_t n = write (fd, text + off, len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      r = -errno;
      break;
    }
    off += n;
  }
  if (r == 0 && (write (fd, "\n", 1) != 1 || fsync (fd) < 0))
    r = errno ? -errno : -EIO;
  if (close (fd) < 0 && r == 0)
    r = -errno;
  /* The rename makes it the state; the directory fsync makes the rename
   * durable. */
  if (r == 0 && renameat (dir_fd, STATE_TMP, dir_fd, STATE_FILE) < 0)
    r = -errno;
  if (r == 0 && fsync (dir_fd) < 0)
    r = -errno;
  if (r < 0) {
    unlinkat (dir_fd, STATE_TMP, 0);
    log_err ("writing %s/%s: %s", dir_path, STATE_FILE, strerror (-r));
  }
out:
  json_object_put (root);
  return r;
}

static char *
get (struct section *s, const char *name)
{
  char *text = NULL;
  struct entry *e;

  pthread_mutex_lock (&lock);
  e = section_find (s, name);
  if (e)
    text = strdup (e->text);
  pthread_mutex_unlock (&lock);
  return text;
}

char *
state_get_map (const char *instance)
{
  return get (&maps, instance);
}

char *
state_get_table (const char *device)
{
  return get (&tables, device);
}

/* Replace, add or delete an entry; roll back if it cannot be persisted. */
static int
set (struct section *s, const char *name, const char *text)
{
  char err[IBC_TABLE_ERR_MAX];
  struct entry ne = { 0 }, old, *e;
  struct entry *nv;
  int r = 0;

  if (text) {
    r = check_entry (s == &maps, name, text, &ne.crypt, err, sizeof err);
    if (r < 0)
      return r;
    ne.name = strdup (name);
    ne.text = strdup (text);
    if (ne.name == NULL || ne.text == NULL) {
      entry_free (&ne);
      return -ENOMEM;
    }
  }

  pthread_mutex_lock (&lock);
  e = section_find (s, name);
  if (e == NULL && text == NULL)
    goto out_unlock;
  if (e == NULL) {
    nv = realloc (s->v, (s->n + 1) * sizeof *nv);
    if (nv == NULL) {
      r = -ENOMEM;
      goto out_unlock;
    }
    s->v = nv;
    s->v[s->n++] = ne;
    r = persist ();
    if (r < 0)
      s->n--;
    else
      ne = (struct entry){ 0 };
    goto out_unlock;
  }
  old = *e;
  if (text) {
    *e = ne;
    r = persist ();
    if (r < 0)
      *e = old;
    else {
      ne = old;
    }
  } else {
    size_t i = e - s->v;
    memmove (&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof *s->v);
    s->n--;
    r = persist ();
    if (r < 0) {
      memmove (&s->v[i + 1], &s->v[i], (s->n - i) * sizeof *s->v);
      s->v[i] = old;
      s->n++;
    } else
      ne = old;
  }
out_unlock:
  pthread_mutex_unlock (&lock);
  entry_free (&ne); /* the new entry if not taken, else the old one */
  return r;
}

int
state_set_map (const char *instance, const char *text)
{
  return set (&maps, instance, text);
}

int
state_set_table (const char *device, const char *text)
{
  return set (&tables, device, text);
}

size_t
state_bindings_of_key (const char *name, struct json_object *array)
{
  size_t found = 0;

  pthread_mutex_lock (&lock);
  for (size_t i = 0; i < maps.n; i++) {
    const struct ibc_crypt_table *t = maps.v[i].crypt;

    for (size_t j = 0; j < ibc_crypt_table_count (t); j++) {
      const struct ibc_binding *b = ibc_crypt_table_binding (t, j);
      struct json_object *o;

      if (b->kind != IBC_BINDING_CRYPT || b->key_ref != IBC_KEY_REF_NAME
          || strcmp (b->key, name) != 0)
        continue;
      found++;
      o = json_object_new_object ();
      json_object_object_add (o, "device",
                              json_object_new_string (maps.v[i].name));
      json_object_object_add (o, "start", json_object_new_uint64 (b->start));
      json_object_object_add (o, "length", json_object_new_uint64 (b->length));
      json_object_array_add (array, o);
    }
  }
  pthread_mutex_unlock (&lock);
  return found;
}
