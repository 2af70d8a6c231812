/* ibc-memscan: search a process's memory for any 16-byte piece of a key. */

/* Usage: ibc-memscan PID KEYFILE
 *
 * Reads every readable mapping of PID through /proc/PID/mem (root, or
 * ptrace rights) and looks for each 16-byte-aligned 16-byte chunk of the
 * key in KEYFILE: an AES key schedule starts with the raw key, so leftover
 * cipher state is found as well as plain copies.  Prints one line per hit
 * ("ADDR MAPPING chunk N") and exits 1 if anything was found, 0 if not,
 * 2 on errors. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK 16
#define MAX_KEY 128

int
main (int argc, char **argv)
{
  unsigned char key[MAX_KEY + 1];
  char path[64], line[512];
  size_t keylen;
  FILE *maps, *kf;
  int mem, hits = 0;

  if (argc != 3) {
    fprintf (stderr, "usage: ibc-memscan PID KEYFILE\n");
    return 2;
  }
  kf = fopen (argv[2], "rb");
  if (kf == NULL) {
    perror (argv[2]);
    return 2;
  }
  keylen = fread (key, 1, sizeof key, kf);
  fclose (kf);
  if (keylen < CHUNK || keylen > MAX_KEY) {
    fprintf (stderr, "ibc-memscan: key must be %d..%d bytes\n", CHUNK, MAX_KEY);
    return 2;
  }
  snprintf (path, sizeof path, "/proc/%s/maps", argv[1]);
  maps = fopen (path, "r");
  snprintf (path, sizeof path, "/proc/%s/mem", argv[1]);
  mem = open (path, O_RDONLY);
  if (maps == NULL || mem < 0) {
    fprintf (stderr, "ibc-memscan: %s: %s\n", path, strerror (errno));
    return 2;
  }
  while (fgets (line, sizeof line, maps)) {
    uint64_t lo, hi;
    char perms[8], name[256] = "";
    unsigned char *buf;

    if (sscanf (line, "%" SCNx64 "-%" SCNx64 " %7s %*s %*s %*s %255s", &lo, &hi,
                perms, name)
        < 3)
      continue;
    if (perms[0] != 'r' || strcmp (name, "[vvar]") == 0
        || strcmp (name, "[vsyscall]") == 0 || hi - lo > (1ull << 32))
      continue;
    buf = malloc (hi - lo);
    if (buf == NULL)
      continue;
    ssize_t n = pread (mem, buf, hi - lo, (off_t) lo);
    for (ssize_t off = 0; n > 0 && off + CHUNK <= n; off++) {
      for (size_t c = 0; c + CHUNK <= keylen; c += CHUNK) {
        if (buf[off] == key[c] && memcmp (buf + off, key + c, CHUNK) == 0) {
          printf ("%" PRIx64 " %s chunk %zu\n", lo + (uint64_t) off,
                  name[0] ? name : "[anon]", c / CHUNK);
          hits++;
        }
      }
    }
    free (buf);
  }
  fclose (maps);
  close (mem);
  return hits ? 1 : 0;
}
