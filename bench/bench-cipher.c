/* bench-cipher: cipher engine throughput per mode and data unit size, the
 * ratio of AES-256-XTS to `openssl speed`, and two-thread scaling.
 *
 *   bench-cipher [SECONDS]     (per measurement, default 1)
 *
 * AES-256-XTS runs on the VAES/AVX-512 path where the CPU has it (and also,
 * for comparison, on the OpenSSL path); IBCRYPT_NO_VAES=1 forces OpenSSL.
 *
 * Rates are in MB/s of 10^6 bytes, as openssl speed's "1000s of bytes". */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cipher-xts-vaes.h"
#include "ibcrypt/cipher.h"
#include "ibcrypt/mode.h"

#define BUF_SIZE (1u << 20)

static double seconds = 1.0;

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static struct ibc_cipher *
make_cipher (enum ibc_mode mode, uint32_t dus)
{
  const struct ibc_mode_info *info = ibc_mode_info (mode);
  uint8_t key[IBC_MAX_RAW_KEY_SIZE];
  struct ibc_cipher *c = NULL;
  int r;

  for (unsigned i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) (i * 29 + 3);
  r = ibc_cipher_new_raw (mode, dus, key, info->key_size, &c);
  if (r < 0) {
    fprintf (stderr, "error: creating cipher '%s' (%u): %s\n", info->name, dus,
             strerror (-r));
    return NULL;
  }
  return c;
}

/* Process buf over and over for `seconds`; returns bytes per second. */
static double
run_for (struct ibc_cipher *c, uint8_t *buf, bool encrypt)
{
  struct ibc_dun dun = ibc_dun_from_u64 (1);
  size_t bytes = 0;
  double t0, t;

  /* Warm up: first-use allocations, caches, clocks. */
  if (ibc_cipher_encrypt (c, &dun, buf, buf, BUF_SIZE) < 0)
    return -1;
  t0 = now ();
  do {
    int r = encrypt ? ibc_cipher_encrypt (c, &dun, buf, buf, BUF_SIZE)
                    : ibc_cipher_decrypt (c, &dun, buf, buf, BUF_SIZE);
    if (r < 0)
      return -1;
    bytes += BUF_SIZE;
    t = now ();
  } while (t - t0 < seconds);
  return (double) bytes / (t - t0);
}

struct thread_arg {
  struct ibc_cipher *c;
  pthread_barrier_t *start;
  double rate;
};

static void *
thread_main (void *p)
{
  struct thread_arg *a = p;
  uint8_t *buf = calloc (1, BUF_SIZE);

  pthread_barrier_wait (a->start);
  a->rate = buf != NULL ? run_for (a->c, buf, true) : -1;
  free (buf);
  return NULL;
}

/* Summed rate of n threads, each with its own buffer, on one cipher. */
static double
run_threads (struct ibc_cipher *c, unsigned n)
{
  pthread_t th[8];
  struct thread_arg args[8];
  pthread_barrier_t start;
  double sum = 0;

  pthread_barrier_init (&start, NULL, n);
  for (unsigned i = 0; i < n; i++) {
    args[i] = (struct thread_arg){ .c = c, .start = &start };
    pthread_create (&th[i], NULL, thread_main, &args[i]);
  }
  for (unsigned i = 0; i < n; i++) {
    pthread_join (th[i], NULL);
    if (args[i].rate < 0)
      sum = -1;
    else if (sum >= 0)
      sum += args[i].rate;
  }
  pthread_barrier_destroy (&start);
  return sum;
}

/* `openssl speed -evp aes-256-xts -bytes 4096 -seconds 2` in bytes per
 * second, from its result line "AES-256-XTS  6618746.88k" (1000s of bytes
 * per second), or -1. */
static double
openssl_speed (void)
{
  FILE *f = popen ("openssl speed -evp aes-256-xts -bytes 4096 -seconds 2 "
                   "2>/dev/null",
                   "r");
  char line[512];
  double rate = -1;

  if (f == NULL)
    return -1;
  while (fgets (line, sizeof line, f) != NULL) {
    char name[64];
    double v;
    char unit;

    if (sscanf (line, "%63s %lf%c", name, &v, &unit) == 3
        && strcasecmp (name, "aes-256-xts") == 0 && unit == 'k')
      rate = v * 1000;
  }
  pclose (f);
  return rate;
}

int
main (int argc, char **argv)
{
  static const enum ibc_mode modes[] = {
    IBC_MODE_AES_256_XTS,
    IBC_MODE_AES_128_CBC_ESSIV,
    IBC_MODE_ADIANTUM,
    IBC_MODE_SM4_XTS,
  };
  static const uint32_t sizes[] = { 512, 4096 };
  double xts4096 = -1, xts4096_ossl = -1, ossl, two;
  const char *xts_impl = ibc_cipher_xts_impl_name ();
  uint8_t *buf;
  FILE *la;
  char load[128] = "?";

  if (argc > 1) {
    seconds = strtod (argv[1], NULL);
    if (seconds <= 0) {
      fprintf (stderr, "usage: bench-cipher [SECONDS]\n");
      return 2;
    }
  }
  la = fopen ("/proc/loadavg", "r");
  if (la != NULL) {
    if (fgets (load, sizeof load, la) != NULL)
      load[strcspn (load, "\n")] = '\0';
    fclose (la);
  }
  printf ("load average at start: %s (the machine may be shared)\n", load);
  printf ("AES-256-XTS implementation: %s\n", xts_impl);

  buf = calloc (1, BUF_SIZE);
  if (buf == NULL)
    return 1;
  printf ("%-20s %5s %12s %12s\n", "mode", "dus", "enc MB/s", "dec MB/s");
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      struct ibc_cipher *c = make_cipher (modes[m], sizes[s]);
      double enc, dec;

      if (c == NULL)
        continue;
      enc = run_for (c, buf, true);
      dec = run_for (c, buf, false);
      printf ("%-20s %5u %12.1f %12.1f\n", ibc_mode_info (modes[m])->name,
              sizes[s], enc / 1e6, dec / 1e6);
      if (modes[m] == IBC_MODE_AES_256_XTS && sizes[s] == 4096)
        xts4096 = enc;
      ibc_cipher_free (c);
    }
  }
  /* The OpenSSL path too, when it is not the one above. */
  if (strcmp (xts_impl, "openssl") != 0) {
    ibc_cipher_xts_force_openssl (true);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      struct ibc_cipher *c = make_cipher (IBC_MODE_AES_256_XTS, sizes[s]);
      double enc, dec;

      if (c == NULL)
        continue;
      enc = run_for (c, buf, true);
      dec = run_for (c, buf, false);
      printf ("%-20s %5u %12.1f %12.1f\n", "  (openssl path)", sizes[s],
              enc / 1e6, dec / 1e6);
      if (sizes[s] == 4096)
        xts4096_ossl = enc;
      ibc_cipher_free (c);
    }
    ibc_cipher_xts_force_openssl (false);
  }
  free (buf);

  ossl = openssl_speed ();
  if (ossl > 0 && xts4096 > 0) {
    printf ("openssl speed -evp aes-256-xts @4096: %.1f MB/s; "
            "ratio AES-256-XTS@4096 (%s) / openssl = %.3f (target >= 0.9)\n",
            ossl / 1e6, xts_impl, xts4096 / ossl);
    if (xts4096_ossl > 0)
      printf ("ratio AES-256-XTS@4096 (openssl path) / openssl = %.3f\n",
              xts4096_ossl / ossl);
  } else
    printf ("openssl speed -evp aes-256-xts: not available\n");

  {
    struct ibc_cipher *c = make_cipher (IBC_MODE_AES_256_XTS, 4096);
    double one;

    if (c == NULL)
      return 1;
    one = run_threads (c, 1);
    two = run_threads (c, 2);
    printf ("AES-256-XTS@4096 (%s) encrypt: 1 thread %.1f MB/s, 2 threads "
            "%.1f MB/s; ratio 2T/1T = %.3f (target >= 1.7)\n",
            xts_impl, one / 1e6, two / 1e6, two / one);
    ibc_cipher_free (c);
  }
  return 0;
}
