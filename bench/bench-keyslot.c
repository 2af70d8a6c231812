/* Benchmark: keyslot get+put throughput (hit path, two threads, misses). */
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ibcrypt/caps.h"
#include "ibcrypt/key.h"
#include "ibcrypt/profile.h"

#define TARGET_PAIRS_PER_S 10e6
#define MAX_THREADS 4
#define MAX_KEYS 8

static double seconds = 1.0;
static atomic_int stop;

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static atomic_uint_fast64_t nprograms;

/* A device whose programming costs nothing: measures the manager only. */
static int
noop_program (struct ibc_profile *p, const struct ibc_key *key, unsigned slot,
              void *opaque)
{
  (void) p;
  (void) key;
  (void) slot;
  (void) opaque;
  atomic_fetch_add_explicit (&nprograms, 1, memory_order_relaxed);
  return 0;
}

static const struct ibc_profile_ops ops = { noop_program, NULL };

static struct ibc_key *
make_key (unsigned seed)
{
  static const struct ibc_crypto_config cfg = {
    .mode = IBC_MODE_AES_256_XTS,
    .data_unit_size = 4096,
    .dun_bytes = 8,
    .key_type = IBC_KEY_TYPE_RAW,
  };
  uint8_t bytes[64];
  struct ibc_key *key;

  for (unsigned i = 0; i < 64; i++)
    bytes[i] = (uint8_t) (seed * 131 + i);
  if (ibc_key_new (&cfg, bytes, sizeof bytes, &key) != 0) {
    fprintf (stderr, "bench-keyslot: ibc_key_new failed\n");
    exit (EXIT_FAILURE);
  }
  return key;
}

struct worker {
  pthread_t th;
  struct ibc_profile *profile;
  struct ibc_key **keys; /* this thread cycles through nkeys keys */
  unsigned nkeys;
  bool pin; /* hold an extra reference on keys[0] throughout */
  uint64_t pairs;
  double cpu; /* this thread's CPU seconds */
  int err;
};

static void *
worker_main (void *arg)
{
  struct worker *w = arg;
  struct ibc_keyslot *pinned = NULL;
  uint64_t n = 0;
  unsigned k = 0;

  /* A pinned slot never goes idle, so get/put never touch the idle list:
   * what remains is the rwlock and the slot's refcount. */
  if (w->pin
      && (w->err = ibc_profile_get_keyslot (w->profile, w->keys[0], &pinned))
             < 0)
    return NULL;
  while (!atomic_load_explicit (&stop, memory_order_relaxed)) {
    struct ibc_keyslot *slot;
    int r = ibc_profile_get_keyslot (w->profile, w->keys[k], &slot);
    if (r < 0) {
      w->err = r;
      break;
    }
    ibc_keyslot_put (slot);
    n++;
    if (++k == w->nkeys)
      k = 0;
  }
  ibc_keyslot_put (pinned);
  w->pairs = n;
  struct timespec ts;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  w->cpu = (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
  return NULL;
}

/* Run nthreads workers for `seconds`; returns pairs per second in total.
 * *ret_overlap is CPU seconds per wall second: on a shared machine two
 * threads may not really run at the same time, and contention only shows
 * when they do (overlap near 2). */
static double
run_once (struct ibc_profile *profile, unsigned nthreads, struct ibc_key **keys,
          unsigned keys_per_thread, bool pin, double *ret_programs_per_s,
          double *ret_overlap)
{
  struct worker w[MAX_THREADS];
  uint64_t total = 0, programs0 = atomic_load (&nprograms);
  double cpu = 0;
  double t0, t1;

  atomic_store (&stop, 0);
  t0 = now ();
  for (unsigned t = 0; t < nthreads; t++) {
    memset (&w[t], 0, sizeof w[t]);
    w[t].profile = profile;
    w[t].keys = keys + t * keys_per_thread;
    w[t].nkeys = keys_per_thread;
    w[t].pin = pin;
    if (pthread_create (&w[t].th, NULL, worker_main, &w[t]) != 0) {
      perror ("pthread_create");
      exit (EXIT_FAILURE);
    }
  }
  struct timespec ts = { (time_t) seconds,
                         (long) ((seconds - (double) (time_t) seconds) * 1e9) };
  nanosleep (&ts, NULL);
  atomic_store (&stop, 1);
  for (unsigned t = 0; t < nthreads; t++) {
    pthread_join (w[t].th, NULL);
    if (w[t].err) {
      fprintf (stderr, "bench-keyslot: get failed: %s\n", strerror (-w[t].err));
      exit (EXIT_FAILURE);
    }
    total += w[t].pairs;
    cpu += w[t].cpu;
  }
  t1 = now ();
  *ret_overlap = cpu / (t1 - t0);
  if (ret_programs_per_s)
    *ret_programs_per_s
        = (double) (atomic_load (&nprograms) - programs0) / (t1 - t0);
  return (double) total / (t1 - t0);
}

/* Median of `trials` runs (the machine is shared: single runs are noisy).
 * *ret_overlap is that run's. */
static unsigned trials = 5;

struct result {
  double rate, prog, overlap;
};

static int
cmp_result (const void *a, const void *b)
{
  double x = ((const struct result *) a)->rate;
  double y = ((const struct result *) b)->rate;
  return (x > y) - (x < y);
}

static double
run (struct ibc_profile *profile, unsigned nthreads, struct ibc_key **keys,
     unsigned keys_per_thread, bool pin, double *ret_programs_per_s,
     double *ret_overlap)
{
  struct result r[16];

  for (unsigned i = 0; i < trials; i++)
    r[i].rate = run_once (profile, nthreads, keys, keys_per_thread, pin,
                          &r[i].prog, &r[i].overlap);
  qsort (r, trials, sizeof r[0], cmp_result);
  if (ret_programs_per_s)
    *ret_programs_per_s = r[trials / 2].prog;
  *ret_overlap = r[trials / 2].overlap;
  return r[trials / 2].rate;
}

/* Reference: what one shared counter costs when two threads bump it on
 * every operation, against one counter per thread on its own line. */
struct counter_arg {
  atomic_uint_fast64_t *c;
  uint64_t n;
};
static _Alignas(64) atomic_uint_fast64_t shared_counter;
static _Alignas(64) atomic_uint_fast64_t private_counters[2][8];

static void *
counter_main (void *arg)
{
  struct counter_arg *a = arg;
  uint64_t n = 0;

  while (!atomic_load_explicit (&stop, memory_order_relaxed)) {
    atomic_fetch_add_explicit (a->c, 1, memory_order_relaxed);
    n++;
  }
  a->n = n;
  return NULL;
}

static double
run_counters (bool shared)
{
  pthread_t th[2];
  struct counter_arg a[2];
  double t0 = now (), secs = seconds / 2;

  atomic_store (&stop, 0);
  for (unsigned t = 0; t < 2; t++) {
    a[t].c = shared ? &shared_counter : &private_counters[t][0];
    pthread_create (&th[t], NULL, counter_main, &a[t]);
  }
  struct timespec ts
      = { (time_t) secs, (long) ((secs - (double) (time_t) secs) * 1e9) };
  nanosleep (&ts, NULL);
  atomic_store (&stop, 1);
  for (unsigned t = 0; t < 2; t++)
    pthread_join (th[t], NULL);
  return (double) (a[0].n + a[1].n) / (now () - t0);
}

int
main (int argc, char *argv[])
{
  struct ibc_key *keys[MAX_KEYS];
  struct ibc_profile *profile;
  struct ibc_caps caps;
  struct ibc_profile_stats st;
  double rate, prog_rate, ov;

  if (argc > 1)
    seconds = atof (argv[1]);
  else
    seconds = 0.3;
  if (!(seconds > 0)) {
    fprintf (stderr, "usage: bench-keyslot [SECONDS per run, median of 5]\n");
    return EXIT_FAILURE;
  }
  for (unsigned i = 0; i < MAX_KEYS; i++)
    keys[i] = make_key (i);
  ibc_caps_init_all (&caps);

  /* 1. Hit path, one thread, one key. */
  if (ibc_profile_new (4, &caps, &ops, NULL, &profile) != 0)
    return EXIT_FAILURE;
  rate = run (profile, 1, keys, 1, false, NULL, &ov);
  printf ("hit path, 1 thread:            %6.2f M pairs/s  "
          "(%.2fx of 10M/s target)\n",
          rate / 1e6, rate / TARGET_PAIRS_PER_S);

  /* 2. Hit path, two threads on different keys (different slots). */
  rate = run (profile, 2, keys, 1, false, NULL, &ov);
  printf ("hit path, 2 threads, 2 keys:   %6.2f M pairs/s  (%.2f M per thread; "
          "overlap %.2f)\n",
          rate / 1e6, rate / 2e6, ov);
  rate = run (profile, 2, keys, 1, true, NULL, &ov);
  printf ("  same, slots pinned busy:     %6.2f M pairs/s  (no idle-list "
          "traffic; overlap %.2f)\n",
          rate / 1e6, ov);

  /* 2b. Same key on both threads: the slot's refcount line is shared. */
  struct ibc_key *same[2] = { keys[0], keys[0] };
  rate = run (profile, 2, same, 1, false, NULL, &ov);
  printf ("hit path, 2 threads, same key: %6.2f M pairs/s  (overlap %.2f)\n",
          rate / 1e6, ov);
  ibc_profile_get_stats (profile, &st);
  ibc_profile_free (profile);

  /* 3. More keys than slots: 8 keys over 4 slots, 2 threads, each thread
   * cycling through its own 4 keys, so most gets program a slot. */
  if (ibc_profile_new (4, &caps, &ops, NULL, &profile) != 0)
    return EXIT_FAILURE;
  rate = run (profile, 2, keys, 4, false, &prog_rate, &ov);
  ibc_profile_get_stats (profile, &st);
  printf ("8 keys > 4 slots, 2 threads:   %6.2f M pairs/s, %.2f M programs/s "
          "(overlap %.2f; all runs: hits %.0f%%, waits %llu)\n",
          rate / 1e6, prog_rate / 1e6, ov,
          st.gets ? 100.0 * (double) st.hits / (double) st.gets : 0.0,
          (unsigned long long) st.waits);
  ibc_profile_free (profile);

  /* Reference for the statistics design (see lib/profile.c). */
  double shared = 0, priv = 0;
  for (unsigned i = 0; i < 3; i++) {
    double a = run_counters (true), b = run_counters (false);
    shared = a > shared ? a : shared;
    priv = b > priv ? b : priv;
  }
  printf ("reference, 2 threads (best of 3): shared counter %.1f M incs/s, "
          "per-thread counters %.1f M incs/s (%.1fx)\n",
          shared / 1e6, priv / 1e6, priv / shared);

  for (unsigned i = 0; i < MAX_KEYS; i++)
    ibc_key_unref (keys[i]);
  return EXIT_SUCCESS;
}
