/* ibc-crypt: en/decrypt stdin to stdout with libibcrypt's cipher engine, for
 * cross-checks against other implementations.
 *
 *   ibc-crypt enc|dec MODE DUS DUN_HEX KEYFILE < in > out
 *
 * MODE is a dm cipher name (aes-xts-plain64) or a sysfs mode name; DUS the
 * data unit size in bytes; DUN_HEX the first data unit's number, up to 64
 * hex digits (a 256-bit number); KEYFILE holds exactly the raw key bytes.
 * The input must be a whole number of data units.  Exit: 0 ok, 1 error,
 * 2 usage. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ibcrypt/cipher.h"
#include "ibcrypt/dun.h"
#include "ibcrypt/mode.h"
#include "ibcrypt/secmem.h"

/* Bytes per read/encrypt/write round (rounded down to whole data units). */
#define CHUNK (1u << 20)

static void
usage (void)
{
  fprintf (stderr,
           "usage: ibc-crypt enc|dec MODE DUS DUN_HEX KEYFILE < in > out\n");
  exit (2);
}

/* A hex number of up to 64 digits, optional 0x, into a DUN. */
static int
parse_dun (const char *s, struct ibc_dun *ret)
{
  struct ibc_dun d = { { 0, 0, 0, 0 } };
  size_t n;

  if (strncmp (s, "0x", 2) == 0 || strncmp (s, "0X", 2) == 0)
    s += 2;
  n = strlen (s);
  if (n == 0 || n > 64)
    return -EINVAL;
  for (size_t i = 0; i < n; i++) {
    char c = s[n - 1 - i];
    unsigned v;

    if (c >= '0' && c <= '9')
      v = (unsigned) (c - '0');
    else if (c >= 'a' && c <= 'f')
      v = (unsigned) (c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v = (unsigned) (c - 'A' + 10);
    else
      return -EINVAL;
    d.w[i / 16] |= (uint64_t) v << (4 * (i % 16));
  }
  *ret = d;
  return 0;
}

/* Read the whole key file (at most IBC_MAX_RAW_KEY_SIZE bytes) into key. */
static int
read_key (const char *path, uint8_t *key, size_t *ret_size)
{
  uint8_t extra;
  size_t size = 0;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    return -errno;
  while (size < IBC_MAX_RAW_KEY_SIZE) {
    ssize_t r = read (fd, key + size, IBC_MAX_RAW_KEY_SIZE - size);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    size += (size_t) r;
  }
  /* A longer file is not a raw key. */
  if (size == IBC_MAX_RAW_KEY_SIZE && read (fd, &extra, 1) > 0) {
    close (fd);
    return -EMSGSIZE;
  }
  close (fd);
  *ret_size = size;
  return 0;
}

/* Fill buf from fd; returns the byte count (< len only at end of file) or
 * -errno. */
static ssize_t
read_full (int fd, uint8_t *buf, size_t len)
{
  size_t got = 0;

  while (got < len) {
    ssize_t r = read (fd, buf + got, len - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      break;
    got += (size_t) r;
  }
  return (ssize_t) got;
}

static int
write_full (int fd, const uint8_t *buf, size_t len)
{
  while (len > 0) {
    ssize_t r = write (fd, buf, len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    buf += r;
    len -= (size_t) r;
  }
  return 0;
}

int
main (int argc, char **argv)
{
  struct ibc_cipher *cipher = NULL;
  uint8_t key[IBC_MAX_RAW_KEY_SIZE], *buf = NULL;
  struct ibc_dun dun;
  enum ibc_mode mode;
  size_t key_size = 0, chunk;
  unsigned long dus;
  char *end;
  bool encrypt;
  int r, status = 1;

  if (argc != 6)
    usage ();
  if (strcmp (argv[1], "enc") == 0)
    encrypt = true;
  else if (strcmp (argv[1], "dec") == 0)
    encrypt = false;
  else
    usage ();
  if (ibc_mode_from_string (argv[2], &mode) < 0) {
    fprintf (stderr, "error: parsing mode '%s': unknown mode\n", argv[2]);
    return 2;
  }
  errno = 0;
  dus = strtoul (argv[3], &end, 10);
  if (errno != 0 || *end != '\0' || dus == 0 || dus > CHUNK) {
    fprintf (stderr, "error: parsing data unit size '%s': invalid\n", argv[3]);
    return 2;
  }
  if (parse_dun (argv[4], &dun) < 0) {
    fprintf (stderr, "error: parsing DUN '%s': not a 256-bit hex number\n",
             argv[4]);
    return 2;
  }
  r = read_key (argv[5], key, &key_size);
  if (r < 0) {
    fprintf (stderr, "error: reading key '%s': %s\n", argv[5], strerror (-r));
    goto out;
  }
  r = ibc_cipher_new_raw (mode, (uint32_t) dus, key, key_size, &cipher);
  ibc_secmem_wipe (key, sizeof key);
  if (r < 0) {
    fprintf (stderr, "error: creating cipher '%s': %s\n", argv[2],
             strerror (-r));
    goto out;
  }

  chunk = CHUNK - CHUNK % dus;
  buf = malloc (chunk);
  if (buf == NULL) {
    fprintf (stderr, "error: allocating buffer: %s\n", strerror (ENOMEM));
    goto out;
  }
  for (;;) {
    ssize_t n = read_full (STDIN_FILENO, buf, chunk);

    if (n < 0) {
      fprintf (stderr, "error: reading input: %s\n", strerror ((int) -n));
      goto out;
    }
    if (n == 0)
      break;
    if ((size_t) n % dus != 0) {
      fprintf (stderr, "error: reading input: not a multiple of %lu bytes\n",
               dus);
      goto out;
    }
    r = encrypt ? ibc_cipher_encrypt (cipher, &dun, buf, buf, (size_t) n)
                : ibc_cipher_decrypt (cipher, &dun, buf, buf, (size_t) n);
    if (r < 0) {
      fprintf (stderr, "error: %s: %s\n", encrypt ? "encrypting" : "decrypting",
               strerror (-r));
      goto out;
    }
    r = write_full (STDOUT_FILENO, buf, (size_t) n);
    if (r < 0) {
      fprintf (stderr, "error: writing output: %s\n", strerror (-r));
      goto out;
    }
    ibc_dun_add (&dun, (uint64_t) n / dus);
    if ((size_t) n < chunk)
      break;
  }
  status = 0;
out:
  ibc_secmem_wipe (key, sizeof key);
  free (buf);
  ibc_cipher_free (cipher);
  return status;
}
