/* ibc-nbdio: a small libnbd client that the shell tests drive. */

/* Usage: ibc-nbdio [--unaligned] [--connections N] URI COMMAND [ARGS]...
 *
 * Commands run in order; with --connections N, N connections are held
 * open at once and the k-th command uses connection k mod N (so a write on
 * one connection can be read back on another).  Numbers accept K, M, G
 * suffixes (powers of 1024).
 *
 *   read OFF LEN              raw bytes to stdout
 *   write OFF LEN             exactly LEN bytes from stdin
 *   zero OFF LEN | trim OFF LEN | flush
 *   size                      prints the export size
 *   block-size                prints "min pref max" (0 = not advertised)
 *   extents OFF LEN           prints "off len flags" lines, clipped to the
 *                             range, adjacent equal flags merged
 *   pattern-write OFF LEN SEED / pattern-check OFF LEN SEED
 *                             a pseudo-random byte stream that depends on
 *                             the seed and the absolute offset only, so any
 *                             sub-range can be checked
 *   parallel-check THREADS ITER SPAN SEED
 *                             THREADS connections in threads, thread t owns
 *                             [t*SPAN, (t+1)*SPAN): random 4 KiB-aligned
 *                             writes of 4 KiB..1 MiB, each read back, plus a
 *                             random read, all compared with a shadow copy
 *
 * Exit status: 0 success; 1 data mismatch; 2 usage or local error;
 * 3 cannot connect; 10 + errno class on an NBD error, where the class is
 * EPERM 1, EIO 5, EINVAL 22, ENOSPC 28, anything else 99.  The NBD error
 * is printed as "ibc-nbdio: <command> <off> <len>: <strerror(errno)>". */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libnbd.h>

#define EXIT_MISMATCH 1
#define EXIT_USAGE 2
#define EXIT_CONNECT 3
#define MAX_IO (64u << 20)     /* nbdkit's and libnbd's payload limit */
#define MAX_CMD_LEN (1u << 30) /* per zero/trim/block-status request */
#define MAX_CONNECTIONS 64
#define PAR_ALIGN 4096u
#define PAR_MAX (1u << 20)

static bool unaligned;

struct command {
  const char *name;
  int nargs;
};

static const struct command commands[] = {
  { "read", 2 },          { "write", 2 },          { "zero", 2 },
  { "trim", 2 },          { "flush", 0 },          { "size", 0 },
  { "block-size", 0 },    { "extents", 2 },        { "pattern-write", 3 },
  { "pattern-check", 3 }, { "parallel-check", 4 },
};

static void
usage (void)
{
  fprintf (stderr,
           "usage: ibc-nbdio [--unaligned] [--connections N] URI COMMAND...\n"
           "commands: read OFF LEN | write OFF LEN | zero OFF LEN |"
           " trim OFF LEN | flush\n"
           "          size | block-size | extents OFF LEN\n"
           "          pattern-write OFF LEN SEED | pattern-check OFF LEN SEED\n"
           "          parallel-check THREADS ITER SPAN SEED\n");
  exit (EXIT_USAGE);
}

static const struct command *
find_command (const char *name)
{
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp (commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static _Noreturn void
bad_number (const char *s)
{
  fprintf (stderr, "ibc-nbdio: invalid number '%s'\n", s);
  exit (EXIT_USAGE);
}

/* A number with an optional K/M/G suffix; exits on garbage. */
static uint64_t
parse_num (const char *s)
{
  static const char suffixes[] = "KMG";
  const char *sfx;
  char *end;
  uint64_t n, mult = 1;

  errno = 0;
  n = strtoull (s, &end, 0);
  if (errno != 0 || end == s || *s == '-')
    bad_number (s);
  sfx = *end != '\0' ? strchr (suffixes, *end) : NULL;
  if (sfx) {
    mult = 1ull << (10 * (sfx - suffixes + 1));
    end++;
  }
  if (*end != '\0' || (n != 0 && mult > UINT64_MAX / n))
    bad_number (s);
  return n * mult;
}

/* Report an NBD error the way the scripts parse it; returns the exit code. */
static int
nbd_failure (const char *cmd, uint64_t off, uint64_t len)
{
  int e = nbd_get_errno ();
  const char *msg = nbd_get_error ();

  fprintf (stderr, "ibc-nbdio: %s %" PRIu64 " %" PRIu64 ": %s\n", cmd, off, len,
           strerror (e));
  if (msg)
    fprintf (stderr, "ibc-nbdio: (libnbd: %s)\n", msg);
  switch (e) {
  case EPERM:
    return 10 + 1;
  case EIO:
    return 10 + 5;
  case EINVAL:
    return 10 + 22;
  case ENOSPC:
    return 10 + 28;
  default:
    return 10 + 99;
  }
}

static struct nbd_handle *
connect_uri (const char *uri)
{
  struct nbd_handle *h = nbd_create ();

  if (h == NULL
      || nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1
      || (unaligned
          && nbd_set_strict_mode (h, nbd_get_strict_mode (h)
                                         & ~LIBNBD_STRICT_ALIGN)
                 == -1)
      || nbd_connect_uri (h, uri) == -1) {
    fprintf (stderr, "ibc-nbdio: connecting to %s: %s\n", uri,
             nbd_get_error ());
    nbd_close (h);
    return NULL;
  }
  return h;
}

/* splitmix64: the pattern is a hash of (seed, 8-byte word index). */
static uint64_t
mix (uint64_t z)
{
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint8_t
pattern_byte (uint64_t seed, uint64_t off)
{
  return (uint8_t) (mix (mix (seed) ^ (off >> 3)) >> (8 * (off & 7)));
}

static void
pattern_fill (uint8_t *buf, uint64_t off, size_t len, uint64_t seed)
{
  uint64_t s = mix (seed);
  size_t i = 0;

  for (; i < len && ((off + i) & 7) != 0; i++)
    buf[i] = pattern_byte (seed, off + i);
  for (; i + 8 <= len; i += 8) {
    uint64_t w = mix (s ^ ((off + i) >> 3));
    for (int b = 0; b < 8; b++)
      buf[i + b] = (uint8_t) (w >> (8 * b));
  }
  for (; i < len; i++)
    buf[i] = pattern_byte (seed, off + i);
}

static void *
xmalloc (size_t n)
{
  void *p = malloc (n ? n : 1);

  if (p == NULL) {
    perror ("ibc-nbdio: malloc");
    exit (EXIT_USAGE);
  }
  return p;
}

/* Exactly len bytes or -1 (short input is a usage error). */
static int
read_all (int fd, uint8_t *buf, size_t len)
{
  while (len > 0) {
    ssize_t r = read (fd, buf, len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    buf += r;
    len -= (size_t) r;
  }
  return 0;
}

/* read, write, pattern-write, pattern-check: payload commands split at the
 * 64 MiB request limit. */
static int
do_payload (struct nbd_handle *h, const char *cmd, uint64_t off, uint64_t len,
            uint64_t seed)
{
  size_t bufsize = len < MAX_IO ? (size_t) len : MAX_IO;
  uint8_t *buf = xmalloc (bufsize), *want = NULL;
  bool check = strcmp (cmd, "pattern-check") == 0;
  int ret = 0;

  if (check)
    want = xmalloc (bufsize);
  for (uint64_t done = 0; done < len && ret == 0;) {
    size_t n = len - done < bufsize ? (size_t) (len - done) : bufsize;
    uint64_t o = off + done;

    if (strcmp (cmd, "write") == 0 || strcmp (cmd, "pattern-write") == 0) {
      if (cmd[0] == 'p')
        pattern_fill (buf, o, n, seed);
      else if (read_all (STDIN_FILENO, buf, n) < 0) {
        fprintf (stderr,
                 "ibc-nbdio: write: stdin ended before %" PRIu64 " bytes\n",
                 len);
        ret = EXIT_USAGE;
        break;
      }
      if (nbd_pwrite (h, buf, n, o, 0) == -1)
        ret = nbd_failure (cmd, off, len);
    } else {
      if (nbd_pread (h, buf, n, o, 0) == -1)
        ret = nbd_failure (cmd, off, len);
      else if (check) {
        pattern_fill (want, o, n, seed);
        for (size_t i = 0; i < n; i++)
          if (buf[i] != want[i]) {
            fprintf (stderr,
                     "ibc-nbdio: pattern-check: mismatch at offset"
                     " %" PRIu64 ": expected 0x%02x, got 0x%02x\n",
                     o + i, want[i], buf[i]);
            ret = EXIT_MISMATCH;
            break;
          }
      } else if (fwrite (buf, 1, n, stdout) != n) {
        perror ("ibc-nbdio: read: writing stdout");
        ret = EXIT_USAGE;
      }
    }
    done += n;
  }
  free (buf);
  free (want);
  return ret;
}

/* zero and trim, split so each request fits the 32-bit NBD count. */
static int
do_zero_trim (struct nbd_handle *h, const char *cmd, uint64_t off, uint64_t len)
{
  for (uint64_t done = 0; done < len;) {
    uint64_t n = len - done < MAX_CMD_LEN ? len - done : MAX_CMD_LEN;
    int r = cmd[0] == 'z' ? nbd_zero (h, n, off + done, 0)
                          : nbd_trim (h, n, off + done, 0);
    if (r == -1)
      return nbd_failure (cmd, off, len);
    done += n;
  }
  return 0;
}

/* Block status: extents are merged and clipped to [pos, end). */
struct extent_walk {
  uint64_t pos, end;
  uint64_t cur_off, cur_len;
  uint32_t cur_flags;
};

static void
extent_emit (struct extent_walk *w, uint64_t off, uint64_t len, uint32_t flags)
{
  if (w->cur_len > 0 && w->cur_flags == flags
      && w->cur_off + w->cur_len == off) {
    w->cur_len += len;
    return;
  }
  if (w->cur_len > 0)
    printf ("%" PRIu64 " %" PRIu64 " %" PRIu32 "\n", w->cur_off, w->cur_len,
            w->cur_flags);
  w->cur_off = off;
  w->cur_len = len;
  w->cur_flags = flags;
}

static int
extent_cb (void *user_data, const char *metacontext, uint64_t offset,
           uint32_t *entries, size_t nr_entries, int *error)
{
  struct extent_walk *w = user_data;

  (void) error;
  if (strcmp (metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  for (size_t i = 0; i + 1 < nr_entries && w->pos < w->end; i += 2) {
    uint64_t lo = offset, hi = offset + entries[i];

    offset = hi;
    if (hi <= w->pos)
      continue;
    if (lo < w->pos)
      lo = w->pos;
    if (hi > w->end)
      hi = w->end;
    extent_emit (w, lo, hi - lo, entries[i + 1]);
    w->pos = hi;
  }
  return 0;
}

static int
do_extents (struct nbd_handle *h, uint64_t off, uint64_t len)
{
  struct extent_walk w = { .pos = off, .end = off + len };

  while (w.pos < w.end) {
    uint64_t before = w.pos;
    uint64_t n = w.end - w.pos < MAX_CMD_LEN ? w.end - w.pos : MAX_CMD_LEN;

    if (nbd_block_status (
            h, n, w.pos,
            (nbd_extent_callback){ .callback = extent_cb, .user_data = &w }, 0)
        == -1)
      return nbd_failure ("extents", off, len);
    if (w.pos == before) {
      fprintf (stderr,
               "ibc-nbdio: extents: server made no progress at %" PRIu64 "\n",
               before);
      return EXIT_USAGE;
    }
  }
  extent_emit (&w, 0, 0, 0); /* flush the last merged extent */
  return 0;
}

/* parallel-check: one thread per connection, each in its own region. */
struct par_thread {
  pthread_t tid;
  const char *uri;
  unsigned index;
  uint64_t iters, span, seed;
  int ret;
};

/* Read [off, off+len) and compare with the shadow of the region. */
static int
par_verify (struct nbd_handle *h, struct par_thread *t, const uint8_t *shadow,
            uint8_t *buf, uint64_t base, uint64_t off, uint64_t len,
            uint64_t iter)
{
  if (nbd_pread (h, buf, len, off, 0) == -1)
    return nbd_failure ("parallel-check read", off, len);
  for (uint64_t i = 0; i < len; i++)
    if (buf[i] != shadow[off - base + i]) {
      fprintf (stderr,
               "ibc-nbdio: parallel-check: thread %u iteration %" PRIu64
               ": mismatch at offset %" PRIu64 ": expected 0x%02x,"
               " got 0x%02x\n",
               t->index, iter, off + i, shadow[off - base + i], buf[i]);
      return EXIT_MISMATCH;
    }
  return 0;
}

/* A random aligned piece of the region: 4 KiB .. min(1 MiB, span). */
static void
par_pick (uint64_t *rng, uint64_t base, uint64_t span, uint64_t *ret_off,
          uint64_t *ret_len)
{
  uint64_t max = span < PAR_MAX ? span : PAR_MAX;
  uint64_t len, off;

  *rng = mix (*rng);
  len = PAR_ALIGN * (1 + *rng % (max / PAR_ALIGN));
  *rng = mix (*rng);
  off = PAR_ALIGN * (*rng % ((span - len) / PAR_ALIGN + 1));
  *ret_off = base + off;
  *ret_len = len;
}

static void *
par_run (void *arg)
{
  struct par_thread *t = arg;
  uint64_t base = t->index * t->span;
  uint64_t rng = mix (t->seed ^ ((uint64_t) t->index << 32));
  uint8_t *shadow = xmalloc (t->span), *buf = xmalloc (PAR_MAX);
  struct nbd_handle *h = connect_uri (t->uri);

  t->ret = h ? 0 : EXIT_CONNECT;
  /* The region's initial content is whatever the device holds. */
  for (uint64_t done = 0; t->ret == 0 && done < t->span; done += PAR_MAX) {
    uint64_t n = t->span - done < PAR_MAX ? t->span - done : PAR_MAX;
    if (nbd_pread (h, shadow + done, n, base + done, 0) == -1)
      t->ret = nbd_failure ("parallel-check read", base + done, n);
  }
  for (uint64_t i = 0; t->ret == 0 && i < t->iters; i++) {
    uint64_t off, len;

    par_pick (&rng, base, t->span, &off, &len);
    pattern_fill (shadow + (off - base), off, len, t->seed + i);
    if (nbd_pwrite (h, shadow + (off - base), len, off, 0) == -1) {
      t->ret = nbd_failure ("parallel-check write", off, len);
      break;
    }
    t->ret = par_verify (h, t, shadow, buf, base, off, len, i);
    if (t->ret == 0) {
      par_pick (&rng, base, t->span, &off, &len);
      t->ret = par_verify (h, t, shadow, buf, base, off, len, i);
    }
  }
  for (uint64_t done = 0; t->ret == 0 && done < t->span; done += PAR_MAX) {
    uint64_t n = t->span - done < PAR_MAX ? t->span - done : PAR_MAX;
    t->ret = par_verify (h, t, shadow, buf, base, base + done, n, t->iters);
  }
  if (h)
    nbd_shutdown (h, 0);
  nbd_close (h);
  free (shadow);
  free (buf);
  return NULL;
}

static int
do_parallel (struct nbd_handle *h, const char *uri, uint64_t threads,
             uint64_t iters, uint64_t span, uint64_t seed)
{
  struct par_thread *t;
  int64_t size = nbd_get_size (h);
  int ret = 0;

  if (size == -1)
    return nbd_failure ("size", 0, 0);
  if (threads == 0 || threads > MAX_CONNECTIONS || span < PAR_ALIGN
      || span % PAR_ALIGN != 0 || threads * span > (uint64_t) size) {
    fprintf (stderr,
             "ibc-nbdio: parallel-check: need 1..%d threads and a"
             " span that is a multiple of %u with threads*span <= %" PRIi64
             "\n",
             MAX_CONNECTIONS, PAR_ALIGN, size);
    return EXIT_USAGE;
  }
  t = xmalloc (threads * sizeof *t);
  for (unsigned i = 0; i < threads; i++) {
    t[i] = (struct par_thread){
      .uri = uri, .index = i, .iters = iters, .span = span, .seed = seed
    };
    if (pthread_create (&t[i].tid, NULL, par_run, &t[i]) != 0) {
      perror ("ibc-nbdio: pthread_create");
      exit (EXIT_USAGE);
    }
  }
  for (unsigned i = 0; i < threads; i++) {
    pthread_join (t[i].tid, NULL);
    if (ret == 0)
      ret = t[i].ret;
  }
  free (t);
  return ret;
}

static int
run_command (struct nbd_handle *h, const char *uri, const char *name,
             char **args)
{
  uint64_t a[4] = { 0, 0, 0, 0 };
  const struct command *c = find_command (name);
  int64_t r, bs[3];

  for (int i = 0; i < c->nargs; i++)
    a[i] = parse_num (args[i]);
  if (strcmp (name, "read") == 0 || strcmp (name, "write") == 0
      || strncmp (name, "pattern-", 8) == 0)
    return do_payload (h, name, a[0], a[1], a[2]);
  if (strcmp (name, "zero") == 0 || strcmp (name, "trim") == 0)
    return do_zero_trim (h, name, a[0], a[1]);
  if (strcmp (name, "extents") == 0)
    return do_extents (h, a[0], a[1]);
  if (strcmp (name, "parallel-check") == 0)
    return do_parallel (h, uri, a[0], a[1], a[2], a[3]);
  if (strcmp (name, "flush") == 0)
    return nbd_flush (h, 0) == -1 ? nbd_failure (name, 0, 0) : 0;
  if (strcmp (name, "size") == 0) {
    if ((r = nbd_get_size (h)) == -1)
      return nbd_failure (name, 0, 0);
    printf ("%" PRIi64 "\n", r);
    return 0;
  }
  for (int i = 0; i < 3; i++)
    if ((bs[i] = nbd_get_block_size (h, i)) == -1)
      return nbd_failure (name, 0, 0);
  printf ("%" PRIi64 " %" PRIi64 " %" PRIi64 "\n", bs[0], bs[1], bs[2]);
  return 0;
}

int
main (int argc, char *argv[])
{
  struct nbd_handle *h[MAX_CONNECTIONS];
  uint64_t nconn = 1;
  const char *uri;
  int i = 1, first, ret = 0;
  unsigned k = 0;

  for (; i < argc && strncmp (argv[i], "--", 2) == 0; i++) {
    if (strcmp (argv[i], "--unaligned") == 0)
      unaligned = true;
    else if (strcmp (argv[i], "--connections") == 0 && i + 1 < argc) {
      nconn = parse_num (argv[++i]);
      if (nconn < 1 || nconn > MAX_CONNECTIONS)
        usage ();
    } else
      usage ();
  }
  if (argc - i < 2)
    usage ();
  uri = argv[i++];
  /* Check the whole command line before touching the device. */
  first = i;
  while (i < argc) {
    const struct command *c = find_command (argv[i]);
    if (c == NULL || argc - i - 1 < c->nargs) {
      fprintf (stderr, "ibc-nbdio: bad or incomplete command '%s'\n", argv[i]);
      usage ();
    }
    for (int j = 1; j <= c->nargs; j++)
      parse_num (argv[i + j]);
    i += 1 + c->nargs;
  }
  for (k = 0; k < nconn; k++)
    if ((h[k] = connect_uri (uri)) == NULL)
      return EXIT_CONNECT;
  for (i = first, k = 0; i < argc && ret == 0; k++) {
    const struct command *c = find_command (argv[i]);
    ret = run_command (h[k % nconn], uri, argv[i], &argv[i + 1]);
    i += 1 + c->nargs;
  }
  if (fflush (stdout) != 0 && ret == 0) {
    perror ("ibc-nbdio: stdout");
    ret = EXIT_USAGE;
  }
  for (k = 0; k < nconn; k++) {
    nbd_shutdown (h[k], 0);
    nbd_close (h[k]);
  }
  return ret;
}
