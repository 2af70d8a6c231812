/* Benchmark: Adiantum backend throughput (single thread, CPU time) at 512- and
 * 4096-byte data units, against OpenSSL AES-256-XTS measured in the same
 * run.  Prints numbers; no pass/fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "adiantum-internal.h"
#include "cipher-internal.h"

#define BUF_BYTES (256 * 1024) /* one call: a typical large request */
#define MIN_SECONDS 0.4

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* MB/s (10^6 bytes) of the Adiantum backend in one direction. */
static double
bench_adiantum (uint32_t dus, bool encrypt, uint8_t *buf)
{
  uint8_t key[32];
  struct ibc_dun dun = ibc_dun_from_u64 (12345);
  void *st = NULL;
  double t0, t;
  size_t bytes = 0;

  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) (i * 7 + 1);
  if (ibc_cipher_impl_adiantum.setup (key, sizeof key, dus, &st) != 0) {
    fprintf (stderr, "adiantum setup failed\n");
    exit (EXIT_FAILURE);
  }
  t0 = now ();
  do {
    if (ibc_cipher_impl_adiantum.crypt (st, &dun, buf, buf, BUF_BYTES, encrypt)
        != 0) {
      fprintf (stderr, "adiantum crypt failed\n");
      exit (EXIT_FAILURE);
    }
    bytes += BUF_BYTES;
    t = now () - t0;
  } while (t < MIN_SECONDS);
  ibc_cipher_impl_adiantum.destroy (st);
  return (double) bytes / t / 1e6;
}

/* MB/s of OpenSSL AES-256-XTS, one EVP call per data unit with a fresh IV
 * (how an XTS backend works), as the reference. */
static double
bench_xts (uint32_t dus, uint8_t *buf)
{
  uint8_t key[64], iv[16] = { 0 };
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();
  double t0, t;
  size_t bytes = 0;
  int outl;

  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) (i * 13 + 5);
  if (ctx == NULL
      || EVP_EncryptInit_ex (ctx, EVP_aes_256_xts (), NULL, key, NULL) != 1) {
    fprintf (stderr, "xts setup failed\n");
    exit (EXIT_FAILURE);
  }
  t0 = now ();
  do {
    for (size_t off = 0; off < BUF_BYTES; off += dus) {
      iv[0]++;
      if (EVP_EncryptInit_ex (ctx, NULL, NULL, NULL, iv) != 1
          || EVP_EncryptUpdate (ctx, buf + off, &outl, buf + off, (int) dus)
                 != 1) {
        fprintf (stderr, "xts failed\n");
        exit (EXIT_FAILURE);
      }
    }
    bytes += BUF_BYTES;
    t = now () - t0;
  } while (t < MIN_SECONDS);
  EVP_CIPHER_CTX_free (ctx);
  return (double) bytes / t / 1e6;
}

int
main (void)
{
  static const uint32_t sizes[] = { 512, 4096 };
  uint8_t *buf = calloc (1, BUF_BYTES);

  if (buf == NULL)
    return EXIT_FAILURE;
  printf ("%-6s %14s %14s %14s %10s\n", "dus", "adiantum-enc", "adiantum-dec",
          "aes-xts-enc", "enc/xts");
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    double enc = bench_adiantum (sizes[i], true, buf);
    double dec = bench_adiantum (sizes[i], false, buf);
    double xts = bench_xts (sizes[i], buf);

    printf ("%-6u %9.0f MB/s %9.0f MB/s %9.0f MB/s %10.2f\n", sizes[i], enc,
            dec, xts, enc / xts);
  }
  free (buf);
  return EXIT_SUCCESS;
}
