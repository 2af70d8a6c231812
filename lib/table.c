/* Parsers, lookups and formatting for crypt tables and passthrough tables. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ibcrypt/table.h"

#define SECTOR_SHIFT 9

/* ---- Common to both tables: lines, numbers, coverage, lookup ---- */

/* Where each entry starts.  Both tables keep one, so coverage checks,
 * binary search and request splitting are written once. */
struct ranges {
  size_t n, alloc;
  uint64_t *start; /* bytes */
  uint64_t size;   /* bytes: end of the last entry */
  void *entries;   /* struct ibc_binding or struct ibc_dm_target [alloc] */
};

struct ibc_crypt_table {
  struct ranges r;
};

struct ibc_dm_table {
  struct ranges r;
  char **devs;
  size_t nr_devs;
};

static struct ibc_binding *
bindings (const struct ibc_crypt_table *t)
{
  return t->r.entries;
}

static struct ibc_dm_target *
targets (const struct ibc_dm_table *t)
{
  return t->r.entries;
}

struct parser {
  char *err;
  size_t errsize;
  unsigned line; /* 0 once past the last line */
};

/* One non-empty line, tokenized; start and length already checked. */
struct line {
  char **tok; /* tok[2] is the target name */
  size_t n;
  uint64_t start, length; /* sectors */
};

typedef int (*target_parser) (struct parser *p, const struct line *l,
                              void *table, void *entry);

/* Write "line N: <message>" into the caller's buffer; returns -EINVAL. */
static int __attribute__ ((format (printf, 2, 3)))
fail (struct parser *p, const char *fmt, ...)
{
  va_list ap;
  int n = 0;

  if (p->err == NULL || p->errsize == 0)
    return -EINVAL;
  if (p->line > 0)
    n = snprintf (p->err, p->errsize, "line %u: ", p->line);
  if (n >= 0 && (size_t) n < p->errsize) {
    va_start (ap, fmt);
    vsnprintf (p->err + n, p->errsize - (size_t) n, fmt, ap);
    va_end (ap);
  }
  return -EINVAL;
}

/* Unsigned decimal only: dm tables have no signs, hex or suffixes. */
static int
parse_u64 (const char *s, uint64_t *ret)
{
  uint64_t v = 0;

  if (*s == '\0')
    return -EINVAL;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return -EINVAL;
    unsigned d = (unsigned) (*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -EINVAL;
    v = v * 10 + d;
  }
  *ret = v;
  return 0;
}

static int
number (struct parser *p, const char *what, const char *s, uint64_t *ret)
{
  if (parse_u64 (s, ret) < 0)
    return fail (p, "invalid %s '%s'", what, s);
  return 0;
}

/* Key and device names: they end up in file names and JSON, so keep them
 * boring. */
static bool
valid_name (const char *s)
{
  size_t len = strspn (s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789._-");
  return len >= 1 && len <= IBC_NAME_MAX && s[len] == '\0';
}

/* Split s in place at whitespace; a token starting with '#' ends the line. */
static int
tokenize (char *s, char ***tok, size_t *alloc, size_t *ret_n)
{
  static const char ws[] = " \t\r\v\f";
  size_t n = 0;

  for (;;) {
    s += strspn (s, ws);
    if (*s == '\0' || *s == '#')
      break;
    if (n == *alloc) {
      size_t na = *alloc ? 2 * *alloc : 16;
      char **t = realloc (*tok, na * sizeof *t);
      if (t == NULL)
        return -ENOMEM;
      *tok = t;
      *alloc = na;
    }
    (*tok)[n++] = s;
    s += strcspn (s, ws);
    if (*s != '\0')
      *s++ = '\0';
  }
  *ret_n = n;
  return 0;
}

/* Parse every line: start/length/coverage here, the target's arguments in
 * parse_target, which fills entries[r->n] (zeroed) and must free what it
 * allocated there if it fails. */
static int
parse_lines (struct parser *p, const char *text, uint64_t device_size,
             struct ranges *r, size_t elsize, target_parser parse_target,
             void *table)
{
  char *copy = strdup (text), *s = copy, **tok = NULL;
  size_t tok_alloc = 0;
  uint64_t next = 0; /* sectors: where the next line must start */
  int ret = 0;

  if (copy == NULL)
    return -ENOMEM;
  while (s != NULL) {
    char *eol = strchr (s, '\n');
    struct line l;

    if (eol)
      *eol = '\0';
    p->line++;
    ret = tokenize (s, &tok, &tok_alloc, &l.n);
    if (ret < 0)
      goto out;
    s = eol ? eol + 1 : NULL;
    if (l.n == 0)
      continue;
    l.tok = tok;
    if (l.n < 3) {
      ret = fail (p, "expected <start> <length> <target> [<args>...]");
      goto out;
    }
    if ((ret = number (p, "start", tok[0], &l.start)) < 0
        || (ret = number (p, "length", tok[1], &l.length)) < 0)
      goto out;
    if (l.length == 0)
      ret = fail (p, "length must not be 0");
    else if (l.start > next)
      ret = fail (p, "gap: starts at sector %llu, expected %llu",
                  (unsigned long long) l.start, (unsigned long long) next);
    else if (l.start < next)
      ret = fail (p, "overlap: starts at sector %llu, expected %llu",
                  (unsigned long long) l.start, (unsigned long long) next);
    else if (l.length > IBC_TABLE_MAX_SECTORS - l.start)
      ret = fail (p, "ends beyond sector %llu",
                  (unsigned long long) IBC_TABLE_MAX_SECTORS);
    if (ret < 0)
      goto out;

    if (r->n == r->alloc) {
      size_t na = r->alloc ? 2 * r->alloc : 8;
      uint64_t *st = realloc (r->start, na * sizeof *st);
      if (st)
        r->start = st;
      void *e = realloc (r->entries, na * elsize);
      if (e)
        r->entries = e;
      if (st == NULL || e == NULL) {
        ret = -ENOMEM;
        goto out;
      }
      r->alloc = na;
    }
    void *entry = (char *) r->entries + r->n * elsize;
    memset (entry, 0, elsize);
    ret = parse_target (p, &l, table, entry);
    if (ret < 0)
      goto out;
    r->start[r->n++] = l.start << SECTOR_SHIFT;
    next = l.start + l.length;
  }

  p->line = 0;
  if (r->n == 0)
    ret = fail (p, "table is empty");
  else if (device_size % 512 != 0)
    ret = fail (p, "device size %llu is not a multiple of 512",
                (unsigned long long) device_size);
  else if (device_size != 0 && next != device_size >> SECTOR_SHIFT)
    ret = fail (p, "table ends at sector %llu but the device has %llu sectors",
                (unsigned long long) next,
                (unsigned long long) (device_size >> SECTOR_SHIFT));
  r->size = next << SECTOR_SHIFT;
out:
  free (tok);
  free (copy);
  return ret;
}

/* Index of the entry covering off, or (size_t) -1 beyond the end. */
static size_t
ranges_find (const struct ranges *r, uint64_t off)
{
  size_t lo = 0, hi = r->n;

  if (off >= r->size)
    return (size_t) -1;
  while (hi - lo > 1) { /* invariant: start[lo] <= off < start[hi] */
    size_t mid = lo + (hi - lo) / 2;
    if (r->start[mid] <= off)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

static uint64_t
ranges_end (const struct ranges *r, size_t i)
{
  return i + 1 < r->n ? r->start[i + 1] : r->size;
}

/* Shared by both iterators: check the range, find the first entry. */
static int
iter_init (const struct ranges *r, uint64_t off, uint64_t len, size_t *index,
           uint64_t *ret_off, uint64_t *ret_end)
{
  if (off > r->size || len > r->size - off)
    return -ERANGE;
  *index = len ? ranges_find (r, off) : 0;
  *ret_off = off;
  *ret_end = off + len;
  return 0;
}

/* ---- Crypt tables ---- */

enum {
  OPT_SECTOR_SIZE = 1,
  OPT_IV_LARGE = 2,
  OPT_DISCARDS = 4,
  OPT_KEYTYPE = 8,
  OPT_DUN_BYTES = 16
};

static int
crypt_option (struct parser *p, const char *opt, struct ibc_binding *b,
              unsigned *seen, uint64_t *dun_bytes)
{
  const char *v;
  unsigned which;
  uint64_t n;

  if (strcmp (opt, "allow_discards") == 0)
    which = OPT_DISCARDS, b->allow_discards = true;
  else if (strcmp (opt, "iv_large_sectors") == 0)
    which = OPT_IV_LARGE, b->iv_large_sectors = true;
  else if ((v = strchr (opt, ':')) == NULL)
    return fail (p, "unknown option '%s'", opt);
  else if (strncmp (opt, "sector_size:", 12) == 0) {
    which = OPT_SECTOR_SIZE;
    if (parse_u64 (v + 1, &n) < 0 || !ibc_is_power_of_2 (n) || n < 512
        || n > 65536)
      return fail (p,
                   "invalid sector_size '%s' (expected a power of two "
                   "from 512 to 65536)",
                   v + 1);
    b->config.data_unit_size = (uint32_t) n;
  } else if (strncmp (opt, "keytype:", 8) == 0) {
    which = OPT_KEYTYPE;
    if (ibc_key_type_from_string (v + 1, &b->config.key_type) < 0)
      return fail (p, "unknown keytype '%s' (expected raw or hw-wrapped)",
                   v + 1);
  } else if (strncmp (opt, "dun_bytes:", 10) == 0) {
    which = OPT_DUN_BYTES;
    if (parse_u64 (v + 1, dun_bytes) < 0)
      return fail (p, "invalid dun_bytes '%s'", v + 1);
    b->dun_bytes_given = true;
  } else
    return fail (p, "unknown option '%s'", opt);

  if (*seen & which)
    return fail (p, "duplicate option '%s'", opt);
  *seen |= which;
  return 0;
}

static int
crypt_line (struct parser *p, const struct line *l, void *table, void *entry)
{
  struct ibc_binding *b = entry;
  char **tok = l->tok;
  const struct ibc_mode_info *mi;
  unsigned seen = 0;
  uint64_t dun_bytes = 0, nopts;
  int ret;

  (void) table;
  b->start = l->start << SECTOR_SHIFT;
  b->length = l->length << SECTOR_SHIFT;
  if (strcmp (tok[2], "plain") == 0) {
    b->kind = IBC_BINDING_PLAIN;
    return l->n == 3 ? 0 : fail (p, "plain takes no arguments");
  }
  if (strcmp (tok[2], "crypt") != 0)
    return fail (p, "unknown target '%s' (expected crypt or plain)", tok[2]);
  if (l->n < 6)
    return fail (p, "crypt needs <cipher> <key> <iv_offset> "
                    "[<#opts> <opt>...]");
  b->kind = IBC_BINDING_CRYPT;

  /* Only the dm names: the sysfs names ibc_mode_from_string() also takes
   * are not table syntax. */
  if (ibc_mode_from_string (tok[3], &b->config.mode) < 0
      || (mi = ibc_mode_info (b->config.mode)) == NULL
      || strcmp (mi->cipher_name, tok[3]) != 0)
    return fail (p, "unknown cipher '%s'", tok[3]);

  if (tok[4][0] == ':') {
    b->key_ref = IBC_KEY_REF_NAME;
    if (!valid_name (tok[4] + 1))
      return fail (p,
                   "invalid key name '%s' (expected 1-64 characters of "
                   "[A-Za-z0-9._-])",
                   tok[4] + 1);
  } else if (tok[4][0] == '@') {
    b->key_ref = IBC_KEY_REF_PATH;
    if (tok[4][1] == '\0')
      return fail (p, "empty key file path");
  } else
    return fail (p, "inline keys are not allowed; use :NAME or @PATH");

  if ((ret = number (p, "iv_offset", tok[5], &b->iv_offset)) < 0)
    return ret;

  b->config.data_unit_size = 512;
  b->config.key_type = IBC_KEY_TYPE_RAW;
  if (l->n > 6) {
    if ((ret = number (p, "option count", tok[6], &nopts)) < 0)
      return ret;
    if (nopts != l->n - 7)
      return fail (p,
                   "option count %llu does not match the number of "
                   "options (%zu)",
                   (unsigned long long) nopts, l->n - 7);
    for (size_t i = 7; i < l->n; i++)
      if ((ret = crypt_option (p, tok[i], b, &seen, &dun_bytes)) < 0)
        return ret;
  }

  /* The checks of dm-inlinecrypt's constructor. */
  uint32_t units = b->config.data_unit_size >> SECTOR_SHIFT;
  if (units > 1 && !b->iv_large_sectors)
    return fail (p, "sector_size:%u requires iv_large_sectors",
                 b->config.data_unit_size);
  if (l->start % units)
    return fail (p, "start %llu is not a multiple of sector_size/512 (%u)",
                 (unsigned long long) l->start, units);
  if (l->length % units)
    return fail (p, "length %llu is not a multiple of sector_size/512 (%u)",
                 (unsigned long long) l->length, units);
  if (b->iv_offset % units)
    return fail (p,
                 "iv_offset %llu is not a multiple of sector_size/512 "
                 "(%u)",
                 (unsigned long long) b->iv_offset, units);

  /* DUN of sector s is (iv_offset + s) >> shift; with everything aligned
   * that is first_dun + s / units, which we add in 256 bits so a range
   * running past 2^64 data units is still numbered correctly. */
  unsigned shift = ibc_ilog2 (units);
  struct ibc_dun max_dun;
  b->first_dun = ibc_dun_from_u64 (b->iv_offset >> shift);
  max_dun = b->first_dun;
  ibc_dun_add (&max_dun, (l->length >> shift) - 1);
  unsigned needed = ibc_dun_bytes_needed (&max_dun);
  if (needed == 0) /* dm would compute 0 and fail; one byte holds DUN 0 */
    needed = 1;
  if (!b->dun_bytes_given)
    b->config.dun_bytes = needed;
  else if (dun_bytes < 1 || dun_bytes > mi->iv_size)
    return fail (p, "dun_bytes:%llu must be from 1 to %u for %s",
                 (unsigned long long) dun_bytes, mi->iv_size, mi->cipher_name);
  else if (dun_bytes < needed)
    return fail (p,
                 "dun_bytes:%llu cannot hold the largest DUN of the "
                 "range (%u bytes needed)",
                 (unsigned long long) dun_bytes, needed);
  else
    b->config.dun_bytes = (uint32_t) dun_bytes;

  b->key = strdup (tok[4] + 1);
  return b->key ? 0 : -ENOMEM;
}

int
ibc_crypt_table_parse (const char *text, uint64_t device_size,
                       struct ibc_crypt_table **ret_table, char *err,
                       size_t errsize)
{
  struct parser p = { err, errsize, 0 };
  struct ibc_crypt_table *t = calloc (1, sizeof *t);
  int ret;

  if (t == NULL)
    return -ENOMEM;
  ret = parse_lines (&p, text, device_size, &t->r, sizeof (struct ibc_binding),
                     crypt_line, t);
  if (ret < 0) {
    if (ret == -ENOMEM)
      fail (&p, "out of memory");
    ibc_crypt_table_free (t);
    return ret;
  }
  *ret_table = t;
  return 0;
}

void
ibc_crypt_table_free (struct ibc_crypt_table *t)
{
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->r.n; i++)
    free (bindings (t)[i].key);
  free (t->r.entries);
  free (t->r.start);
  free (t);
}

uint64_t
ibc_crypt_table_size (const struct ibc_crypt_table *t)
{
  return t->r.size;
}

size_t
ibc_crypt_table_count (const struct ibc_crypt_table *t)
{
  return t->r.n;
}

const struct ibc_binding *
ibc_crypt_table_binding (const struct ibc_crypt_table *t, size_t i)
{
  return i < t->r.n ? &bindings (t)[i] : NULL;
}

const struct ibc_binding *
ibc_crypt_table_lookup (const struct ibc_crypt_table *t, uint64_t off,
                        size_t *ret_index)
{
  size_t i = ranges_find (&t->r, off);

  if (i == (size_t) -1)
    return NULL;
  if (ret_index)
    *ret_index = i;
  return &bindings (t)[i];
}

int
ibc_crypt_iter_init (struct ibc_crypt_iter *it, const struct ibc_crypt_table *t,
                     uint64_t off, uint64_t len)
{
  it->table = t;
  return iter_init (&t->r, off, len, &it->index, &it->off, &it->end);
}

bool
ibc_crypt_iter_next (struct ibc_crypt_iter *it, struct ibc_crypt_piece *ret)
{
  const struct ranges *r = &it->table->r;

  if (it->off >= it->end)
    return false;
  uint64_t end = ranges_end (r, it->index);
  uint64_t stop = end < it->end ? end : it->end;
  ret->index = it->index;
  ret->binding = &bindings (it->table)[it->index];
  ret->off = it->off;
  ret->len = stop - it->off;
  it->off = stop;
  if (stop == end)
    it->index++;
  return true;
}

int
ibc_crypt_table_format (const struct ibc_crypt_table *t, char **ret_text)
{
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream (&buf, &size);

  if (f == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < t->r.n; i++) {
    const struct ibc_binding *b = &bindings (t)[i];
    fprintf (f, "%llu %llu ", (unsigned long long) (b->start >> SECTOR_SHIFT),
             (unsigned long long) (b->length >> SECTOR_SHIFT));
    if (b->kind == IBC_BINDING_PLAIN) {
      fputs ("plain\n", f);
      continue;
    }
    bool dus = b->config.data_unit_size != 512;
    bool wrapped = b->config.key_type == IBC_KEY_TYPE_HW_WRAPPED;
    int nopts = dus + b->iv_large_sectors + b->allow_discards + wrapped
                + b->dun_bytes_given;
    fprintf (f, "crypt %s %c%s %llu",
             ibc_mode_info (b->config.mode)->cipher_name,
             b->key_ref == IBC_KEY_REF_NAME ? ':' : '@', b->key,
             (unsigned long long) b->iv_offset);
    if (nopts > 0)
      fprintf (f, " %d", nopts);
    if (dus)
      fprintf (f, " sector_size:%u", b->config.data_unit_size);
    if (b->iv_large_sectors)
      fputs (" iv_large_sectors", f);
    if (b->allow_discards)
      fputs (" allow_discards", f);
    if (wrapped)
      fputs (" keytype:hw-wrapped", f);
    if (b->dun_bytes_given)
      fprintf (f, " dun_bytes:%u", b->config.dun_bytes);
    fputc ('\n', f);
  }
  if (ferror (f) | fclose (f)) {
    free (buf);
    return -ENOMEM;
  }
  *ret_text = buf;
  return 0;
}

/* ---- Passthrough (dm) tables ---- */

static const char *const dm_kind_names[] = {
  [IBC_DM_LINEAR] = "linear", [IBC_DM_STRIPED] = "striped",
  [IBC_DM_FLAKEY] = "flakey", [IBC_DM_ERROR] = "error",
  [IBC_DM_ZERO] = "zero",
};

const char *
ibc_dm_kind_name (enum ibc_dm_kind kind)
{
  return (unsigned) kind <= IBC_DM_ZERO ? dm_kind_names[kind] : "invalid";
}

bool
ibc_dm_kind_passes_crypto (enum ibc_dm_kind kind)
{
  return kind == IBC_DM_LINEAR || kind == IBC_DM_STRIPED
         || kind == IBC_DM_FLAKEY;
}

/* Index of device name in the table's list, adding it if new. */
static int
dm_device (struct ibc_dm_table *t, const char *name, size_t *ret_dev)
{
  size_t i;

  for (i = 0; i < t->nr_devs; i++)
    if (strcmp (t->devs[i], name) == 0)
      goto found;
  char **d = realloc (t->devs, (i + 1) * sizeof *d);
  if (d == NULL)
    return -ENOMEM;
  t->devs = d;
  if ((d[i] = strdup (name)) == NULL)
    return -ENOMEM;
  t->nr_devs++;
found:
  *ret_dev = i;
  return 0;
}

/* Parse n "<dev> <offset>" pairs, each mapping span sectors. */
static int
dm_dests (struct parser *p, struct ibc_dm_table *t, struct ibc_dm_target *tg,
          char **a, size_t n, uint64_t span)
{
  int ret = 0;

  tg->dests = calloc (n, sizeof *tg->dests);
  if (tg->dests == NULL)
    return -ENOMEM;
  tg->nr_dests = n;
  for (size_t i = 0; i < n; i++) {
    const char *dev = a[2 * i];
    uint64_t off;

    if (!valid_name (dev)) {
      ret = fail (p,
                  "invalid device name '%s' (expected 1-64 characters of "
                  "[A-Za-z0-9._-])",
                  dev);
      break;
    }
    if ((ret = number (p, "offset", a[2 * i + 1], &off)) < 0)
      break;
    if (off > IBC_TABLE_MAX_SECTORS - span) {
      ret = fail (p, "offset %llu: mapping ends beyond sector %llu",
                  (unsigned long long) off,
                  (unsigned long long) IBC_TABLE_MAX_SECTORS);
      break;
    }
    tg->dests[i].offset = off << SECTOR_SHIFT;
    if ((ret = dm_device (t, dev, &tg->dests[i].dev)) < 0)
      break;
  }
  if (ret < 0) {
    free (tg->dests);
    tg->dests = NULL;
  }
  return ret;
}

static int
dm_line (struct parser *p, const struct line *l, void *table, void *entry)
{
  struct ibc_dm_target *tg = entry;
  const char *name = l->tok[2];
  char **a = l->tok + 3;
  size_t na = l->n - 3;
  uint64_t n, chunk, up, down;
  int ret;

  tg->start = l->start << SECTOR_SHIFT;
  tg->length = l->length << SECTOR_SHIFT;
  if (strcmp (name, "linear") == 0) {
    tg->kind = IBC_DM_LINEAR;
    if (na != 2)
      return fail (p, "linear needs <dev> <offset>");
    return dm_dests (p, table, tg, a, 1, l->length);
  }
  if (strcmp (name, "striped") == 0) {
    tg->kind = IBC_DM_STRIPED;
    if (na < 4)
      return fail (p, "striped needs <#stripes> <chunk> <dev> <offset>...");
    if ((ret = number (p, "stripe count", a[0], &n)) < 0)
      return ret;
    if (n == 0)
      return fail (p, "invalid stripe count '%s'", a[0]);
    if (n > (na - 2) / 2 || na - 2 != 2 * n)
      return fail (p,
                   "striped with %s stripes needs as many <dev> <offset> "
                   "pairs, got %zu arguments",
                   a[0], na - 2);
    if ((ret = number (p, "chunk size", a[1], &chunk)) < 0)
      return ret;
    if (!ibc_is_power_of_2 (chunk))
      return fail (p, "chunk size %llu is not a power of two",
                   (unsigned long long) chunk);
    if (l->length % n != 0 || (l->length / n) % chunk != 0)
      return fail (p,
                   "length %llu is not a multiple of #stripes * chunk "
                   "(%llu * %llu)",
                   (unsigned long long) l->length, (unsigned long long) n,
                   (unsigned long long) chunk);
    tg->chunk_size = chunk << SECTOR_SHIFT;
    return dm_dests (p, table, tg, a + 2, n, l->length / n);
  }
  if (strcmp (name, "flakey") == 0) {
    tg->kind = IBC_DM_FLAKEY;
    if (na != 4)
      return fail (p, "flakey needs <dev> <offset> <up> <down>");
    if ((ret = number (p, "up interval", a[2], &up)) < 0
        || (ret = number (p, "down interval", a[3], &down)) < 0)
      return ret;
    if (up > UINT32_MAX || down > UINT32_MAX)
      return fail (p, "flakey intervals must be below 2^32 seconds");
    if (up + down == 0)
      return fail (p, "flakey up + down interval must not be 0");
    tg->up_interval = (unsigned) up;
    tg->down_interval = (unsigned) down;
    return dm_dests (p, table, tg, a, 1, l->length);
  }
  if (strcmp (name, "error") == 0 || strcmp (name, "zero") == 0) {
    tg->kind = name[0] == 'e' ? IBC_DM_ERROR : IBC_DM_ZERO;
    return na == 0 ? 0 : fail (p, "%s takes no arguments", name);
  }
  return fail (p,
               "unknown target '%s' (expected linear, striped, flakey, "
               "error or zero)",
               name);
}

int
ibc_dm_table_parse (const char *text, uint64_t device_size,
                    struct ibc_dm_table **ret_table, char *err, size_t errsize)
{
  struct parser p = { err, errsize, 0 };
  struct ibc_dm_table *t = calloc (1, sizeof *t);
  int ret;

  if (t == NULL)
    return -ENOMEM;
  ret = parse_lines (&p, text, device_size, &t->r,
                     sizeof (struct ibc_dm_target), dm_line, t);
  if (ret < 0) {
    if (ret == -ENOMEM)
      fail (&p, "out of memory");
    ibc_dm_table_free (t);
    return ret;
  }
  *ret_table = t;
  return 0;
}

void
ibc_dm_table_free (struct ibc_dm_table *t)
{
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->r.n; i++)
    free (targets (t)[i].dests);
  for (size_t i = 0; i < t->nr_devs; i++)
    free (t->devs[i]);
  free (t->devs);
  free (t->r.entries);
  free (t->r.start);
  free (t);
}

uint64_t
ibc_dm_table_size (const struct ibc_dm_table *t)
{
  return t->r.size;
}

size_t
ibc_dm_table_count (const struct ibc_dm_table *t)
{
  return t->r.n;
}

const struct ibc_dm_target *
ibc_dm_table_target (const struct ibc_dm_table *t, size_t i)
{
  return i < t->r.n ? &targets (t)[i] : NULL;
}

const struct ibc_dm_target *
ibc_dm_table_lookup (const struct ibc_dm_table *t, uint64_t off,
                     size_t *ret_index)
{
  size_t i = ranges_find (&t->r, off);

  if (i == (size_t) -1)
    return NULL;
  if (ret_index)
    *ret_index = i;
  return &targets (t)[i];
}

size_t
ibc_dm_table_device_count (const struct ibc_dm_table *t)
{
  return t->nr_devs;
}

const char *
ibc_dm_table_device (const struct ibc_dm_table *t, size_t i)
{
  return i < t->nr_devs ? t->devs[i] : NULL;
}

bool
ibc_dm_table_passes_crypto (const struct ibc_dm_table *t)
{
  for (size_t i = 0; i < t->r.n; i++)
    if (!ibc_dm_kind_passes_crypto (targets (t)[i].kind))
      return false;
  return true;
}

uint64_t
ibc_dm_table_alignment (const struct ibc_dm_table *t)
{
  /* The lowest set bit of the OR of all values is the largest power of two
   * dividing them all. */
  uint64_t acc = t->r.size;

  for (size_t i = 0; i < t->r.n; i++) {
    acc |= targets (t)[i].start | targets (t)[i].chunk_size;
    for (size_t j = 0; j < targets (t)[i].nr_dests; j++)
      acc |= targets (t)[i].dests[j].offset;
  }
  return acc & (~acc + 1);
}

int
ibc_dm_iter_init (struct ibc_dm_iter *it, const struct ibc_dm_table *t,
                  uint64_t off, uint64_t len)
{
  it->table = t;
  return iter_init (&t->r, off, len, &it->index, &it->off, &it->end);
}

bool
ibc_dm_iter_next (struct ibc_dm_iter *it, struct ibc_dm_piece *ret)
{
  const struct ibc_dm_target *tg;

  if (it->off >= it->end)
    return false;
  tg = &targets (it->table)[it->index];
  uint64_t end = tg->start + tg->length;
  uint64_t stop = end < it->end ? end : it->end;
  uint64_t rel = it->off - tg->start;

  ret->target = it->index;
  ret->kind = tg->kind;
  ret->dev = IBC_DM_NO_DEV;
  ret->lower_off = 0;
  switch (tg->kind) {
  case IBC_DM_LINEAR:
  case IBC_DM_FLAKEY:
    ret->dev = tg->dests[0].dev;
    ret->lower_off = tg->dests[0].offset + rel;
    break;
  case IBC_DM_STRIPED: {
    /* Chunk c of the target is chunk c / N of stripe c % N. */
    unsigned cshift = ibc_ilog2 (tg->chunk_size);
    uint64_t c = rel >> cshift;
    const struct ibc_dm_dest *d = &tg->dests[c % tg->nr_dests];
    uint64_t chunk_end = tg->start + ((c + 1) << cshift);
    ret->dev = d->dev;
    ret->lower_off = d->offset + ((c / tg->nr_dests) << cshift)
                     + (rel & (tg->chunk_size - 1));
    if (chunk_end < stop)
      stop = chunk_end;
    break;
  }
  case IBC_DM_ERROR:
  case IBC_DM_ZERO:
    break;
  }
  ret->off = it->off;
  ret->len = stop - it->off;
  it->off = stop;
  if (stop == end)
    it->index++;
  return true;
}

int
ibc_dm_table_format (const struct ibc_dm_table *t, char **ret_text)
{
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream (&buf, &size);

  if (f == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < t->r.n; i++) {
    const struct ibc_dm_target *tg = &targets (t)[i];
    fprintf (f, "%llu %llu %s",
             (unsigned long long) (tg->start >> SECTOR_SHIFT),
             (unsigned long long) (tg->length >> SECTOR_SHIFT),
             dm_kind_names[tg->kind]);
    if (tg->kind == IBC_DM_STRIPED)
      fprintf (f, " %zu %llu", tg->nr_dests,
               (unsigned long long) (tg->chunk_size >> SECTOR_SHIFT));
    for (size_t j = 0; j < tg->nr_dests; j++)
      fprintf (f, " %s %llu", t->devs[tg->dests[j].dev],
               (unsigned long long) (tg->dests[j].offset >> SECTOR_SHIFT));
    if (tg->kind == IBC_DM_FLAKEY)
      fprintf (f, " %u %u", tg->up_interval, tg->down_interval);
    fputc ('\n', f);
  }
  if (ferror (f) | fclose (f)) {
    free (buf);
    return -ENOMEM;
  }
  *ret_text = buf;
  return 0;
}
