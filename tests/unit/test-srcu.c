/* Unit tests: SRCU grace periods protect readers from freed objects. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "ibc-check.h"
#include "ibcrypt/srcu.h"

#define LIVE 0x11111111u
#define DEAD 0xdeaddeadu

struct obj {
  volatile unsigned state;
};

static struct ibc_srcu srcu;
static _Atomic (struct obj *) published;
static atomic_bool stop;
static atomic_long reads, violations;

static void *
reader (void *arg)
{
  (void) arg;
  while (!atomic_load (&stop)) {
    unsigned t = ibc_srcu_read_lock (&srcu);
    struct obj *o = atomic_load (&published);
    /* Hold it a little, as a request doing I/O would. */
    for (int i = 0; i < 50; i++)
      if (o->state != LIVE)
        atomic_fetch_add (&violations, 1);
    ibc_srcu_read_unlock (&srcu, t);
    atomic_fetch_add (&reads, 1);
  }
  return NULL;
}

START_TEST (test_srcu_readers_never_see_freed)
{
  pthread_t th[4];
  struct obj *first = malloc (sizeof *first);
  int swaps = getenv ("IBC_TEST_QUICK") ? 50 : 2000;

  ibc_srcu_init (&srcu);
  first->state = LIVE;
  atomic_store (&published, first);
  for (int i = 0; i < 4; i++)
    pthread_create (&th[i], NULL, reader, NULL);
  /* Swap while readers run: at least `swaps` times and until they have
   * done plenty of reads across the swaps. */
  while (atomic_load (&reads) == 0)
    ;
  struct obj **retired = NULL;
  size_t nretired = 0;
  for (int i = 0; i < swaps || atomic_load (&reads) < 20000; i++) {
    struct obj *n = malloc (sizeof *n);
    n->state = LIVE;
    struct obj *old = atomic_exchange (&published, n);
    ibc_srcu_synchronize (&srcu);
    /* Poison instead of freeing so a late reader is detected, not UB;
     * freed once the readers are gone. */
    old->state = DEAD;
    retired = realloc (retired, (nretired + 1) * sizeof *retired);
    retired[nretired++] = old;
  }
  atomic_store (&stop, true);
  for (int i = 0; i < 4; i++)
    pthread_join (th[i], NULL);
  for (size_t i = 0; i < nretired; i++)
    free (retired[i]);
  free (retired);
  free (atomic_load (&published));
  ck_assert_int_eq (atomic_load (&violations), 0);
  ck_assert_int_gt (atomic_load (&reads), 0);
}
END_TEST

/* A writer waits while a reader is inside, and not after it left. */
static atomic_bool reader_in, reader_release;

static void *
slow_reader (void *arg)
{
  (void) arg;
  unsigned t = ibc_srcu_read_lock (&srcu);
  atomic_store (&reader_in, true);
  while (!atomic_load (&reader_release))
    ;
  ibc_srcu_read_unlock (&srcu, t);
  return NULL;
}

static atomic_bool sync_done;

static void *
syncer (void *arg)
{
  (void) arg;
  ibc_srcu_synchronize (&srcu);
  atomic_store (&sync_done, true);
  return NULL;
}

START_TEST (test_srcu_synchronize_waits)
{
  pthread_t r, w;
  struct timespec ts = { 0, 100 * 1000 * 1000 };

  ibc_srcu_init (&srcu);
  pthread_create (&r, NULL, slow_reader, NULL);
  while (!atomic_load (&reader_in))
    ;
  pthread_create (&w, NULL, syncer, NULL);
  nanosleep (&ts, NULL);
  ck_assert (!atomic_load (&sync_done));
  atomic_store (&reader_release, true);
  pthread_join (w, NULL);
  pthread_join (r, NULL);
  ck_assert (atomic_load (&sync_done));
  /* With no readers it returns at once. */
  ibc_srcu_synchronize (&srcu);
}
END_TEST

static Suite *
srcu_suite (void)
{
  Suite *s = suite_create ("srcu");
  TCase *tc = tcase_create ("core");

  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_srcu_readers_never_see_freed);
  tcase_add_test (tc, test_srcu_synchronize_waits);
  suite_add_tcase (s, tc);
  return s;
}

IBC_CHECK_MAIN (srcu_suite)
