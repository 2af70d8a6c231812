/* Unit tests: profiles and the keyslot manager, against a fake device. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ibc-check.h"
#include "ibcrypt/caps.h"
#include "ibcrypt/key.h"
#include "ibcrypt/profile.h"
#include "ibcrypt/secmem.h"

#define MAX_SLOTS 8
#define MAX_CALLS 65536

/* The fake inline-encryption device.  Ops run under the profile's write
 * lock, but the test thread reads the records too, hence the mutex. */
/* What the stress test can catch. */
enum violation {
  V_PROGRAM_BUSY, /* program op on a slot someone holds */
  V_KEY_TWICE,    /* program op for a key already in another slot */
  V_GET_FAILED,
  V_WRONG_KEY,     /* a held slot does not hold the holder's key */
  V_CHECKER_TWICE, /* checker saw a key in two slots */
  V_BAD_INFO,      /* slot_info failed or returned nonsense */
  V_UNKNOWN_KEY,   /* slot_info named a key that is not ours */
  V_MAX
};
static const char *const violation_names[V_MAX] = {
  "program of a busy slot", "key programmed twice", "get failed",
  "held slot lost its key", "key in two slots",     "bad slot info",
  "unknown key id",
};

struct call {
  int slot;
  const struct ibc_key *key;
};
static struct fake {
  pthread_mutex_t mu;
  struct call prog[MAX_CALLS];
  unsigned nprog;      /* recorded calls (up to MAX_CALLS) */
  unsigned long total; /* all successful calls */
  struct call evict[64];
  unsigned nevict;
  int fail_next;     /* fail this many program calls with -EIO */
  unsigned sleep_us; /* each program call sleeps this long */
  int evict_ret;
  struct ibc_profile *probe; /* if set, program calls back into it */
  int probe_info_r, probe_get_r;
  /* The device's view: which key each slot holds (program op's record). */
  const struct ibc_key *hw[MAX_SLOTS];
  /* Stress: holders per slot as seen by the test's wrappers, and checks. */
  atomic_int users[MAX_SLOTS];
  atomic_int violations[V_MAX];
} fake = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int
fake_program (struct ibc_profile *p, const struct ibc_key *key, unsigned slot,
              void *opaque)
{
  int r = 0;

  (void) p;
  ck_assert_ptr_eq (opaque, &fake);
  if (fake.sleep_us)
    usleep (fake.sleep_us);
  if (fake.probe) {
    struct ibc_keyslot_info inf;
    struct ibc_keyslot *s;
    fake.probe_info_r = ibc_profile_slot_info (fake.probe, slot, &inf);
    fake.probe_get_r = ibc_profile_get_keyslot (fake.probe, key, &s);
  }
  pthread_mutex_lock (&fake.mu);
  /* The slot being programmed must be idle... */
  if (atomic_load (&fake.users[slot]) != 0)
    atomic_fetch_add (&fake.violations[V_PROGRAM_BUSY], 1);
  /* ... and the key must not sit in another slot. */
  for (unsigned i = 0; i < MAX_SLOTS; i++)
    if (i != slot && fake.hw[i] == key)
      atomic_fetch_add (&fake.violations[V_KEY_TWICE], 1);
  if (fake.fail_next > 0) {
    fake.fail_next--;
    r = -EIO;
  } else {
    fake.hw[slot] = key;
    fake.total++;
    if (fake.nprog < MAX_CALLS)
      fake.prog[fake.nprog++] = (struct call){ (int) slot, key };
  }
  pthread_mutex_unlock (&fake.mu);
  return r;
}

static int
fake_evict (struct ibc_profile *p, const struct ibc_key *key, int slot,
            void *opaque)
{
  (void) p;
  (void) opaque;
  pthread_mutex_lock (&fake.mu);
  fake.evict[fake.nevict++] = (struct call){ slot, key };
  if (slot >= 0)
    fake.hw[slot] = NULL;
  pthread_mutex_unlock (&fake.mu);
  return fake.evict_ret;
}

static const struct ibc_profile_ops fake_ops = { fake_program, fake_evict };
static const struct ibc_profile_ops evict_only_ops = { NULL, fake_evict };

/* Check forks per test, but do not depend on it. */
static void
fake_reset (void)
{
  pthread_mutex_lock (&fake.mu);
  fake.nprog = fake.nevict = 0;
  fake.total = 0;
  fake.fail_next = 0;
  fake.sleep_us = 0;
  fake.evict_ret = 0;
  fake.probe = NULL;
  memset (fake.hw, 0, sizeof fake.hw);
  for (unsigned i = 0; i < MAX_SLOTS; i++)
    atomic_store (&fake.users[i], 0);
  for (unsigned i = 0; i < V_MAX; i++)
    atomic_store (&fake.violations[i], 0);
  pthread_mutex_unlock (&fake.mu);
}

static unsigned long
nprog (void)
{
  pthread_mutex_lock (&fake.mu);
  unsigned long n = fake.total;
  pthread_mutex_unlock (&fake.mu);
  return n;
}

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
    bytes[i] = (uint8_t) (seed * 67 + i);
  ck_assert_int_eq (ibc_key_new (&cfg, bytes, sizeof bytes, &key), 0);
  return key;
}

static struct ibc_profile *
make_profile (unsigned num_slots, const struct ibc_profile_ops *ops)
{
  struct ibc_caps caps;
  struct ibc_profile *p;

  ibc_caps_init_none (&caps);
  caps.modes[IBC_MODE_AES_256_XTS] = 4096;
  caps.max_dun_bytes = 8;
  caps.key_types = IBC_KEY_TYPE_RAW;
  ck_assert_int_eq (ibc_profile_new (num_slots, &caps, ops, &fake, &p), 0);
  return p;
}

static struct ibc_keyslot *
get (struct ibc_profile *p, const struct ibc_key *key)
{
  struct ibc_keyslot *slot = NULL;

  ck_assert_int_eq (ibc_profile_get_keyslot (p, key, &slot), 0);
  ck_assert_ptr_nonnull (slot);
  return slot;
}

static struct ibc_keyslot_info
info (struct ibc_profile *p, unsigned i)
{
  struct ibc_keyslot_info inf;

  ck_assert_int_eq (ibc_profile_slot_info (p, i, &inf), 0);
  return inf;
}

static void
sleep_ms (unsigned ms)
{
  struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000 };
  nanosleep (&ts, NULL);
}

/* A getter on another thread. */
struct getter {
  struct ibc_profile *p;
  const struct ibc_key *key;
  pthread_t th;
  atomic_int done;
  int r;
  struct ibc_keyslot *slot;
};

static void *
getter_main (void *arg)
{
  struct getter *g = arg;

  g->r = ibc_profile_get_keyslot (g->p, g->key, &g->slot);
  atomic_store (&g->done, 1);
  return NULL;
}

static void
getter_start (struct getter *g, struct ibc_profile *p,
              const struct ibc_key *key)
{
  memset (g, 0, sizeof *g);
  g->p = p;
  g->key = key;
  ck_assert_int_eq (pthread_create (&g->th, NULL, getter_main, g), 0);
}

/* Wait up to 5 s for the getter; true if it finished. */
static bool
getter_wait (struct getter *g)
{
  for (int i = 0; i < 5000 && !atomic_load (&g->done); i++)
    sleep_ms (1);
  return atomic_load (&g->done);
}

static uint64_t
stat_waits (struct ibc_profile *p)
{
  struct ibc_profile_stats st;
  ibc_profile_get_stats (p, &st);
  return st.waits;
}

START_TEST (test_lru_order)
{
  struct ibc_profile *p = make_profile (3, &fake_ops);
  struct ibc_key *k[5];
  struct ibc_keyslot *a, *b, *c, *d, *e;

  for (unsigned i = 0; i < 5; i++)
    k[i] = make_key (i);
  /* Fresh slots are used in index order. */
  a = get (p, k[0]);
  b = get (p, k[1]);
  c = get (p, k[2]);
  ck_assert_uint_eq (ibc_keyslot_index (a), 0);
  ck_assert_uint_eq (ibc_keyslot_index (b), 1);
  ck_assert_uint_eq (ibc_keyslot_index (c), 2);
  ibc_keyslot_put (b);
  ibc_keyslot_put (a);
  ibc_keyslot_put (c);
  /* B's slot is least recently used, then A's. */
  d = get (p, k[3]);
  ck_assert_uint_eq (ibc_keyslot_index (d), 1);
  e = get (p, k[4]);
  ck_assert_uint_eq (ibc_keyslot_index (e), 0);
  ck_assert_uint_eq (fake.nprog, 5);
  const struct call want[5] = {
    { 0, k[0] }, { 1, k[1] }, { 2, k[2] }, { 1, k[3] }, { 0, k[4] },
  };
  for (unsigned i = 0; i < 5; i++) {
    ck_assert_int_eq (fake.prog[i].slot, want[i].slot);
    ck_assert_ptr_eq (fake.prog[i].key, want[i].key);
  }
  ck_assert_str_eq (info (p, 1).key_id, ibc_key_id (k[3]));
  ck_assert_str_eq (info (p, 0).key_id, ibc_key_id (k[4]));
  ck_assert_str_eq (info (p, 2).key_id, ibc_key_id (k[2]));
  /* B was displaced: it must be programmed again, into C's idle slot. */
  b = get (p, k[1]);
  ck_assert_uint_eq (ibc_keyslot_index (b), 2);
  ck_assert_uint_eq (fake.nprog, 6);
  ibc_keyslot_put (b);
  ibc_keyslot_put (d);
  ibc_keyslot_put (e);
  ibc_profile_free (p);
  for (unsigned i = 0; i < 5; i++)
    ibc_key_unref (k[i]);
}
END_TEST

START_TEST (test_reuse_and_stats)
{
  struct ibc_profile *p = make_profile (2, &fake_ops);
  struct ibc_key *a = make_key (1), *b = make_key (2);
  struct ibc_profile_stats st;
  struct ibc_keyslot *s1, *s2, *s3;

  s1 = get (p, a);
  ibc_keyslot_put (s1);
  s2 = get (p, a);
  ck_assert_ptr_eq (s2, s1);
  /* A second concurrent user of the same key shares the slot. */
  s3 = get (p, a);
  ck_assert_ptr_eq (s3, s1);
  ck_assert_uint_eq (info (p, 0).refs, 2);
  ck_assert (info (p, 0).programmed);
  ck_assert_uint_eq (info (p, 1).refs, 0);
  ck_assert (!info (p, 1).programmed);
  ck_assert_str_eq (info (p, 1).key_id, "");
  ck_assert_uint_eq (fake.nprog, 1);
  ibc_keyslot_put (s2);
  ck_assert_uint_eq (info (p, 0).refs, 1);
  ibc_keyslot_put (s3);
  ibc_keyslot_put (get (p, b));
  ibc_profile_get_stats (p, &st);
  ck_assert_uint_eq (st.gets, 4);
  ck_assert_uint_eq (st.hits, 2);
  ck_assert_uint_eq (st.programs, 2);
  ck_assert_uint_eq (st.program_errors, 0);
  ck_assert_uint_eq (st.evictions, 0);
  ck_assert_uint_eq (st.waits, 0);
  struct ibc_keyslot_info inf = { .refs = 42 };
  ck_assert_int_eq (ibc_profile_slot_info (p, 2, &inf), -ERANGE);
  ck_assert_uint_eq (inf.refs, 42); /* untouched on error */
  ibc_keyslot_put (NULL);
  ibc_profile_free (p);
  ibc_profile_free (NULL);
  ibc_key_unref (a);
  ibc_key_unref (b);
}
END_TEST

START_TEST (test_wait_for_idle_slot)
{
  struct ibc_profile *p = make_profile (2, &fake_ops);
  struct ibc_key *a = make_key (1), *b = make_key (2), *c = make_key (3);
  struct ibc_keyslot *sa = get (p, a), *sb = get (p, b);
  struct getter g;

  getter_start (&g, p, c);
  sleep_ms (100);
  ck_assert_int_eq (atomic_load (&g.done), 0);
  ck_assert_uint_eq (stat_waits (p), 1);
  ibc_keyslot_put (sb);
  ck_assert (getter_wait (&g));
  pthread_join (g.th, NULL);
  ck_assert_int_eq (g.r, 0);
  ck_assert_ptr_eq (g.slot, sb);
  ck_assert_uint_eq (fake.nprog, 3);
  ck_assert_ptr_eq (fake.prog[2].key, c);
  ck_assert_int_eq (fake.prog[2].slot, 1);
  ibc_keyslot_put (sa);
  ibc_keyslot_put (g.slot);
  ibc_profile_free (p);
  ibc_key_unref (a);
  ibc_key_unref (b);
  ibc_key_unref (c);
}
END_TEST

/* A woken waiter that finds its key already programmed does not use the
 * idle slot it was woken for: it must pass the wakeup on. */
START_TEST (test_wakeup_passed_on)
{
  struct ibc_profile *p = make_profile (2, &fake_ops);
  struct ibc_key *a = make_key (1), *x = make_key (2), *b = make_key (3);
  struct ibc_keyslot *sa = get (p, a), *sx = get (p, x);
  struct getter g[3];
  unsigned done = 0;

  for (unsigned i = 0; i < 3; i++)
    getter_start (&g[i], p, b);
  for (int i = 0; i < 5000 && stat_waits (p) < 3; i++)
    sleep_ms (1);
  ck_assert_uint_eq (stat_waits (p), 3);
  /* One waiter programs B into X's slot and keeps it. */
  ibc_keyslot_put (sx);
  for (int i = 0; i < 5000 && done == 0; i++) {
    sleep_ms (1);
    done = 0;
    for (unsigned j = 0; j < 3; j++)
      done += (unsigned) atomic_load (&g[j].done);
  }
  sleep_ms (50);
  done = 0;
  for (unsigned j = 0; j < 3; j++)
    done += (unsigned) atomic_load (&g[j].done);
  ck_assert_uint_eq (done, 1);
  /* A's slot goes idle: the next waiter finds B in a slot, does not take
   * the idle slot, and must wake the last one. */
  ibc_keyslot_put (sa);
  for (unsigned j = 0; j < 3; j++) {
    ck_assert (getter_wait (&g[j]));
    pthread_join (g[j].th, NULL);
    ck_assert_int_eq (g[j].r, 0);
    ck_assert_ptr_eq (g[j].slot, sx);
  }
  ck_assert_uint_eq (fake.nprog, 3);
  ck_assert_uint_eq (info (p, 1).refs, 3);
  ck_assert_uint_eq (info (p, 0).refs, 0);
  for (unsigned j = 0; j < 3; j++)
    ibc_keyslot_put (g[j].slot);
  ibc_profile_free (p);
  ibc_key_unref (a);
  ibc_key_unref (x);
  ibc_key_unref (b);
}
END_TEST

/* Two threads missing on the same key while programming is slow: the key
 * is programmed once and both share the slot.  A first getter programming
 * another key holds the write lock, so both queue up behind it, having
 * missed on the fast path (the slow path must look the key up again). */
START_TEST (test_concurrent_miss_programs_once)
{
  struct ibc_profile *p = make_profile (4, &fake_ops);
  struct ibc_key *a = make_key (1), *x = make_key (2);
  struct ibc_profile_stats st;
  struct getter gx, g[2];

  fake.sleep_us = 50000;
  getter_start (&gx, p, x);
  sleep_ms (10);
  getter_start (&g[0], p, a);
  getter_start (&g[1], p, a);
  ck_assert (getter_wait (&gx));
  pthread_join (gx.th, NULL);
  for (unsigned j = 0; j < 2; j++) {
    ck_assert (getter_wait (&g[j]));
    pthread_join (g[j].th, NULL);
    ck_assert_int_eq (g[j].r, 0);
  }
  ck_assert_ptr_eq (g[0].slot, g[1].slot);
  ck_assert_uint_eq (fake.nprog, 2);
  ck_assert_uint_eq (info (p, ibc_keyslot_index (g[0].slot)).refs, 2);
  ibc_profile_get_stats (p, &st);
  ck_assert_uint_eq (st.gets, 3);
  ck_assert_uint_eq (st.hits, 1);
  ck_assert_uint_eq (st.programs, 2);
  ibc_keyslot_put (gx.slot);
  ibc_keyslot_put (g[0].slot);
  ibc_keyslot_put (g[1].slot);
  ibc_profile_free (p);
  ibc_key_unref (a);
  ibc_key_unref (x);
}
END_TEST

START_TEST (test_program_failure_wakes_next)
{
  struct ibc_profile *p = make_profile (1, &fake_ops);
  struct ibc_key *a = make_key (1), *b = make_key (2), *c = make_key (3);
  struct ibc_profile_stats st;
  struct ibc_keyslot *s;
  struct getter g1, g2;

  /* A plain failure: error returned, counted, not a get. */
  fake.fail_next = 1;
  ck_assert_int_eq (ibc_profile_get_keyslot (p, a, &s), -EIO);
  ibc_profile_get_stats (p, &st);
  ck_assert_uint_eq (st.program_errors, 1);
  ck_assert_uint_eq (st.programs, 0);
  ck_assert_uint_eq (st.gets, 0);

  /* Two getters wait for the only slot; the first one woken fails to
   * program and must wake the other, which then succeeds. */
  s = get (p, a);
  getter_start (&g1, p, b);
  getter_start (&g2, p, c);
  for (int i = 0; i < 5000 && stat_waits (p) < 2; i++)
    sleep_ms (1);
  ck_assert_uint_eq (stat_waits (p), 2);
  fake.fail_next = 1;
  ibc_keyslot_put (s);
  ck_assert (getter_wait (&g1));
  ck_assert (getter_wait (&g2));
  pthread_join (g1.th, NULL);
  pthread_join (g2.th, NULL);
  struct getter *ok = g1.r == 0 ? &g1 : &g2, *bad = g1.r == 0 ? &g2 : &g1;
  ck_assert_int_eq (ok->r, 0);
  ck_assert_int_eq (bad->r, -EIO);
  ck_assert_ptr_eq (ok->slot, s);
  ck_assert_str_eq (info (p, 0).key_id, ibc_key_id (ok->key));
  ibc_profile_get_stats (p, &st);
  ck_assert_uint_eq (st.program_errors, 2);
  ck_assert_uint_eq (st.programs, 2);
  ck_assert_uint_eq (st.gets, 2);
  ibc_keyslot_put (ok->slot);

  /* A failed program leaves the slot holding no key: the old key is not
   * trusted to be there any more. */
  fake.fail_next = 1;
  ck_assert_int_eq (ibc_profile_get_keyslot (p, a, &s), -EIO);
  ck_assert (!info (p, 0).programmed);
  unsigned n = fake.nprog;
  ibc_keyslot_put (get (p, ok->key));
  ck_assert_uint_eq (fake.nprog, n + 1);
  ibc_profile_free (p);
  ibc_key_unref (a);
  ibc_key_unref (b);
  ibc_key_unref (c);
}
END_TEST

START_TEST (test_evict)
{
  struct ibc_profile *p = make_profile (2, &fake_ops);
  struct ibc_key *a = make_key (1), *b = make_key (2);
  struct ibc_profile_stats st;
  struct ibc_keyslot *s;

  /* A key in no slot: not an error, the device is not asked. */
  ck_assert_int_eq (ibc_profile_evict_key (p, a), 0);
  ck_assert_uint_eq (fake.nevict, 0);

  /* A busy slot: -EBUSY, no op call, but unlinked from the key. */
  s = get (p, a);
  ck_assert_int_eq (ibc_profile_evict_key (p, a), -EBUSY);
  ck_assert_uint_eq (fake.nevict, 0);
  ck_assert (!info (p, 0).programmed);
  ck_assert_uint_eq (info (p, 0).refs, 1);
  ibc_keyslot_put (s);
  ck_assert_uint_eq (fake.nprog, 1);
  s = get (p, a); /* programmed again (into the other, LRU slot) */
  ck_assert_uint_eq (fake.nprog, 2);
  ck_assert_uint_eq (ibc_keyslot_index (s), 1);
  ibc_keyslot_put (s);

  /* Success: the residue the busy eviction left in slot 0 (now idle) is
   * evicted first, then the key from slot 1. */
  ck_assert_int_eq (ibc_profile_evict_key (p, a), 0);
  ck_assert_uint_eq (fake.nevict, 2);
  ck_assert_int_eq (fake.evict[0].slot, 0);
  ck_assert_ptr_eq (fake.evict[0].key, a);
  ck_assert_int_eq (fake.evict[1].slot, 1);
  ck_assert_ptr_eq (fake.evict[1].key, a);
  ck_assert (!info (p, 1).programmed);
  ck_assert_int_eq (ibc_profile_evict_key (p, a), 0);
  ck_assert_uint_eq (fake.nevict, 2);

  /* The op's error is returned, and the slot is unlinked anyway. */
  ibc_keyslot_put (get (p, b));
  fake.evict_ret = -EIO;
  ck_assert_int_eq (ibc_profile_evict_key (p, b), -EIO);
  ck_assert_uint_eq (fake.nevict, 3);
  ck_assert (!info (p, 0).programmed && !info (p, 1).programmed);
  ibc_profile_get_stats (p, &st);
  ck_assert_uint_eq (st.evictions, 3);
  ibc_profile_free (p);
  ibc_key_unref (a);
  ibc_key_unref (b);
}
END_TEST

/* Releases a held slot after a delay, so a quiescing caller must wait. */
struct delayed_put {
  struct ibc_keyslot *slot;
  atomic_bool done;
};

static void *
put_later (void *arg)
{
  struct delayed_put *d = arg;
  struct timespec ts = { 0, 150 * 1000 * 1000 };

  nanosleep (&ts, NULL);
  atomic_store (&d->done, true);
  ibc_keyslot_put (d->slot);
  return NULL;
}

START_TEST (test_reprogram_all)
{
  struct ibc_profile *p = make_profile (4, &fake_ops);
  struct ibc_key *a = make_key (1), *b = make_key (2), *c = make_key (3);
  struct delayed_put d = { 0 };
  pthread_t th;

  ibc_keyslot_put (get (p, a));
  d.slot = get (p, b); /* held: reprogram_all waits for its release */
  ibc_keyslot_put (get (p, c));
  ck_assert_int_eq (ibc_profile_evict_key (p, c), 0);
  fake.nprog = 0;
  pthread_create (&th, NULL, put_later, &d);
  ck_assert_int_eq (ibc_profile_reprogram_all (p), 0);
  /* It returned only after the slot in use was released. */
  ck_assert (atomic_load (&d.done));
  pthread_join (th, NULL);
  ck_assert_uint_eq (fake.nprog, 2);
  ck_assert_int_eq (fake.prog[0].slot, 0);
  ck_assert_ptr_eq (fake.prog[0].key, a);
  ck_assert_int_eq (fake.prog[1].slot, 1);
  ck_assert_ptr_eq (fake.prog[1].key, b);

  /* A failure is returned; the other slot is still reprogrammed and the
   * failed one no longer claims its key. */
  fake.nprog = 0;
  fake.fail_next = 1;
  ck_assert_int_eq (ibc_profile_reprogram_all (p), -EIO);
  ck_assert_uint_eq (fake.nprog, 1);
  ck_assert_ptr_eq (fake.prog[0].key, b);
  ck_assert (!info (p, 0).programmed);
  ck_assert (info (p, 1).programmed);
  ibc_profile_free (p);
  ibc_key_unref (a);
  ibc_key_unref (b);
  ibc_key_unref (c);
}
END_TEST

START_TEST (test_forget_all)
{
  struct ibc_profile *p = make_profile (2, &fake_ops);
  struct ibc_key *a = make_key (1), *b = make_key (2);
  struct ibc_keyslot *sa;

  sa = get (p, a);
  ibc_keyslot_put (get (p, b));
  ck_assert_int_eq (ibc_profile_forget_all (p), -EBUSY);
  ck_assert (info (p, 0).programmed && info (p, 1).programmed);
  ibc_keyslot_put (sa);
  ck_assert_int_eq (ibc_profile_forget_all (p), 0);
  ck_assert (!info (p, 0).programmed && !info (p, 1).programmed);
  ck_assert_uint_eq (fake.nevict, 0);
  ck_assert_uint_eq (fake.nprog, 2);
  ibc_keyslot_put (get (p, a));
  ck_assert_uint_eq (fake.nprog, 3);
  ibc_profile_free (p);
  ibc_key_unref (a);
  ibc_key_unref (b);
}
END_TEST

START_TEST (test_passthrough)
{
  struct ibc_profile *p, *q;
  struct ibc_keyslot *s = (struct ibc_keyslot *) &s;
  struct ibc_keyslot_info inf;
  struct ibc_profile_stats st;
  struct ibc_key *a = make_key (1);

  /* Its allocation does not grow with anything slot-related: compare with
   * a 64-slot profile, which needs at least 64 cache lines more. */
  size_t m0 = mallinfo2 ().uordblks;
  p = make_profile (0, &evict_only_ops);
  size_t m1 = mallinfo2 ().uordblks;
  q = make_profile (64, &fake_ops);
  size_t m2 = mallinfo2 ().uordblks;
  if (m1 != m0 || m2 != m1) /* sanitizer allocators report nothing */
    ck_assert_uint_ge (m2 - m1, (m1 - m0) + 64 * 64);
  ibc_profile_free (q);

  ck_assert_uint_eq (ibc_profile_num_slots (p), 0);
  ck_assert_int_eq (ibc_profile_get_keyslot (p, a, &s), 0);
  ck_assert_ptr_null (s);
  ibc_keyslot_put (s);
  ck_assert_int_eq (ibc_profile_slot_info (p, 0, &inf), -ERANGE);
  ck_assert_uint_eq (fake.nprog, 0);

  fake.evict_ret = -ENOKEY;
  ck_assert_int_eq (ibc_profile_evict_key (p, a), -ENOKEY);
  fake.evict_ret = 0;
  ck_assert_int_eq (ibc_profile_evict_key (p, a), 0);
  ck_assert_uint_eq (fake.nevict, 2);
  ck_assert_int_eq (fake.evict[0].slot, -1);
  ck_assert_ptr_eq (fake.evict[0].key, a);
  ck_assert_int_eq (ibc_profile_reprogram_all (p), 0);
  ck_assert_int_eq (ibc_profile_forget_all (p), 0);
  ibc_profile_get_stats (p, &st);
  ck_assert_uint_eq (st.gets, 1);
  ck_assert_uint_eq (st.evictions, 2);
  ibc_profile_free (p);

  /* Without ops at all: eviction has nowhere to go and succeeds. */
  ck_assert_int_eq (ibc_profile_new (0, NULL, NULL, NULL, &p), 0);
  ck_assert_int_eq (ibc_profile_evict_key (p, a), 0);
  ibc_profile_free (p);
  /* Slots need a program op. */
  p = NULL;
  ck_assert_int_eq (ibc_profile_new (4, NULL, &evict_only_ops, NULL, &p),
                    -EINVAL);
  ck_assert_int_eq (ibc_profile_new (4, NULL, NULL, NULL, &p), -EINVAL);
  ck_assert_ptr_null (p);
  ibc_key_unref (a);
}
END_TEST

START_TEST (test_update_caps)
{
  struct ibc_profile *p = make_profile (2, &fake_ops);
  struct ibc_caps c, now;
  struct ibc_crypto_config adi = {
    IBC_MODE_ADIANTUM,
    4096,
    8,
    IBC_KEY_TYPE_RAW,
  };

  ibc_caps_snapshot (ibc_profile_caps (p), &c);
  /* Shrinking: drop a data unit size, or DUN bytes, or a key type. */
  c.modes[IBC_MODE_AES_256_XTS] = 0;
  ck_assert_int_eq (ibc_profile_update_caps (p, &c), -EINVAL);
  ibc_caps_snapshot (ibc_profile_caps (p), &c);
  c.max_dun_bytes = 4;
  ck_assert_int_eq (ibc_profile_update_caps (p, &c), -EINVAL);
  ck_assert_int_eq (ibc_profile_update_caps (p, NULL), -EINVAL);
  ibc_caps_snapshot (ibc_profile_caps (p), &now);
  ck_assert_uint_eq (now.modes[IBC_MODE_AES_256_XTS], 4096);
  ck_assert_uint_eq (now.max_dun_bytes, 8);
  ck_assert (!ibc_caps_supports (ibc_profile_caps (p), &adi));

  /* Expanding. */
  ibc_caps_snapshot (ibc_profile_caps (p), &c);
  c.modes[IBC_MODE_AES_256_XTS] |= 512;
  c.modes[IBC_MODE_ADIANTUM] = 4096;
  c.key_types |= IBC_KEY_TYPE_HW_WRAPPED;
  ck_assert_int_eq (ibc_profile_update_caps (p, &c), 0);
  ibc_caps_snapshot (ibc_profile_caps (p), &now);
  ck_assert_mem_eq (&now, &c, sizeof c);
  ck_assert (ibc_caps_supports (ibc_profile_caps (p), &adi));
  /* Equal is a superset too. */
  ck_assert_int_eq (ibc_profile_update_caps (p, &c), 0);
  ibc_profile_free (p);
}
END_TEST

START_TEST (test_reentry_from_op)
{
  struct ibc_profile *p = make_profile (2, &fake_ops);
  struct ibc_key *a = make_key (1), *b = make_key (2);

  /* Ops run under the write lock: calling back in must fail, not unlock
   * the caller's lock or deadlock. */
  fake.probe = p;
  ibc_keyslot_put (get (p, a));
  fake.probe = NULL;
  ck_assert_int_eq (fake.probe_info_r, -EDEADLK);
  ck_assert_int_eq (fake.probe_get_r, -EDEADLK);
  /* Still consistent afterwards. */
  ibc_keyslot_put (get (p, b));
  ck_assert_str_eq (info (p, 0).key_id, ibc_key_id (a));
  ck_assert_str_eq (info (p, 1).key_id, ibc_key_id (b));
  ck_assert_int_eq (ibc_profile_evict_key (p, a), 0);
  ibc_profile_free (p);
  ibc_key_unref (a);
  ibc_key_unref (b);
}
END_TEST

/* Key lifetime: record every secure free. */
static const void *freed[16];
static unsigned nfreed;

static void
record_free (const void *ptr, size_t size)
{
  const uint8_t *b = ptr;

  for (size_t i = 0; i < size; i++)
    ck_assert_uint_eq (b[i], 0); /* wiped before release */
  freed[nfreed++] = ptr;
}

START_TEST (test_slot_holds_key_ref)
{
  struct ibc_profile *p = make_profile (1, &fake_ops);
  struct ibc_key *a = make_key (1), *b = make_key (2), *c = make_key (3);
  const void *abytes = ibc_key_bytes (a), *bbytes = ibc_key_bytes (b);
  const void *cbytes = ibc_key_bytes (c);

  ibc_secmem_set_free_hook (record_free);
  ibc_keyslot_put (get (p, a));
  ibc_key_unref (a); /* the slot still holds it */
  ck_assert_uint_eq (nfreed, 0);
  ck_assert_int_eq (ibc_profile_evict_key (p, a), 0);
  ck_assert_uint_eq (nfreed, 1);
  ck_assert_ptr_eq (freed[0], abytes);

  /* Reprogramming the slot drops the old key. */
  ibc_keyslot_put (get (p, b));
  ibc_key_unref (b);
  ibc_keyslot_put (get (p, c));
  ck_assert_uint_eq (nfreed, 2);
  ck_assert_ptr_eq (freed[1], bbytes);

  /* Freeing the profile drops the rest. */
  ibc_key_unref (c);
  ck_assert_uint_eq (nfreed, 2);
  ibc_profile_free (p);
  ck_assert_uint_eq (nfreed, 3);
  ck_assert_ptr_eq (freed[2], cbytes);
  ibc_secmem_set_free_hook (NULL);
}
END_TEST

/* Stress: many threads, more keys than slots, random holds. */
#define S_THREADS 8
#define S_KEYS 16
#define S_SLOTS 4
#define S_ITERS 12000

static struct ibc_profile *sp;
static struct ibc_key *skeys[S_KEYS];
static atomic_int stress_running;
static atomic_uint_fast64_t stress_gets;

static void *
stress_worker (void *arg)
{
  unsigned seed = (unsigned) (uintptr_t) arg;

  for (int i = 0; i < S_ITERS; i++) {
    const struct ibc_key *key = skeys[rand_r (&seed) % S_KEYS];
    struct ibc_keyslot *slot;

    if (ibc_profile_get_keyslot (sp, key, &slot) != 0) {
      atomic_fetch_add (&fake.violations[V_GET_FAILED], 1);
      continue;
    }
    unsigned idx = ibc_keyslot_index (slot);
    atomic_fetch_add (&fake.users[idx], 1);
    atomic_fetch_add (&stress_gets, 1);
    /* While held, the device must have our key in our slot. */
    pthread_mutex_lock (&fake.mu);
    if (fake.hw[idx] != key)
      atomic_fetch_add (&fake.violations[V_WRONG_KEY], 1);
    pthread_mutex_unlock (&fake.mu);
    for (unsigned spin = rand_r (&seed) % 2000; spin > 0; spin--)
      __asm__ volatile("" ::: "memory");
    if (rand_r (&seed) % 16 == 0)
      sched_yield ();
    if (rand_r (&seed) % 256 == 0)
      usleep (50); /* long holds make getters wait for idle slots */
    atomic_fetch_sub (&fake.users[idx], 1);
    ibc_keyslot_put (slot);
  }
  return NULL;
}

static void *
stress_checker (void *arg)
{
  (void) arg;
  while (atomic_load (&stress_running)) {
    /* A consistent view of the device: no key in two slots. */
    pthread_mutex_lock (&fake.mu);
    for (unsigned i = 0; i < S_SLOTS; i++)
      for (unsigned j = i + 1; j < S_SLOTS; j++)
        if (fake.hw[i] && fake.hw[i] == fake.hw[j])
          atomic_fetch_add (&fake.violations[V_CHECKER_TWICE], 1);
    pthread_mutex_unlock (&fake.mu);
    /* Concurrent introspection: sane values, only our keys. */
    for (unsigned i = 0; i < S_SLOTS; i++) {
      struct ibc_keyslot_info inf;
      bool known = false;
      if (ibc_profile_slot_info (sp, i, &inf) != 0 || inf.refs > S_THREADS
          || !inf.programmed)
        atomic_fetch_add (&fake.violations[V_BAD_INFO], 1);
      for (unsigned k = 0; k < S_KEYS && inf.programmed; k++)
        known |= strcmp (inf.key_id, ibc_key_id (skeys[k])) == 0;
      if (!known)
        atomic_fetch_add (&fake.violations[V_UNKNOWN_KEY], 1);
    }
    sched_yield ();
  }
  return NULL;
}

START_TEST (test_stress)
{
  pthread_t th[S_THREADS], checker;
  struct ibc_profile_stats st;

  sp = make_profile (S_SLOTS, &fake_ops);
  for (unsigned k = 0; k < S_KEYS; k++)
    skeys[k] = make_key (k);
  /* Fill every slot first so the checker may insist they are programmed. */
  struct ibc_keyslot *held[S_SLOTS];
  for (unsigned k = 0; k < S_SLOTS; k++)
    held[k] = get (sp, skeys[k]);
  for (unsigned k = 0; k < S_SLOTS; k++)
    ibc_keyslot_put (held[k]);
  ibc_profile_get_stats (sp, &st);
  uint64_t gets0 = st.gets;

  atomic_store (&stress_running, 1);
  ck_assert_int_eq (pthread_create (&checker, NULL, stress_checker, NULL), 0);
  for (uintptr_t t = 0; t < S_THREADS; t++)
    ck_assert_int_eq (
        pthread_create (&th[t], NULL, stress_worker, (void *) (t + 1)), 0);
  for (unsigned t = 0; t < S_THREADS; t++)
    pthread_join (th[t], NULL);
  atomic_store (&stress_running, 0);
  pthread_join (checker, NULL);

  for (unsigned i = 0; i < V_MAX; i++)
    ck_assert_msg (atomic_load (&fake.violations[i]) == 0, "%s: %d times",
                   violation_names[i], atomic_load (&fake.violations[i]));
  ibc_profile_get_stats (sp, &st);
  fprintf (stderr, "stress: %llu gets, %llu hits, %llu programs, %llu waits\n",
           (unsigned long long) st.gets, (unsigned long long) st.hits,
           (unsigned long long) st.programs, (unsigned long long) st.waits);
  ck_assert_uint_eq (st.gets - gets0, S_THREADS * S_ITERS);
  ck_assert_uint_eq (atomic_load (&stress_gets), S_THREADS * S_ITERS);
  ck_assert_uint_eq (st.gets, st.hits + st.programs);
  ck_assert_uint_eq (st.programs, nprog ());
  ck_assert_uint_eq (st.program_errors, 0);
  /* More keys than slots: some misses, and slots were shared. */
  ck_assert_uint_gt (st.programs, S_SLOTS);
  ck_assert_uint_gt (st.hits, 0);
  for (unsigned i = 0; i < S_SLOTS; i++)
    ck_assert_uint_eq (info (sp, i).refs, 0);
  ibc_profile_free (sp);
  for (unsigned k = 0; k < S_KEYS; k++)
    ibc_key_unref (skeys[k]);
}
END_TEST

static Suite *
profile_suite (void)
{
  Suite *s = suite_create ("profile");
  TCase *tc = tcase_create ("core");
  TCase *stress = tcase_create ("stress");

  tcase_add_test (tc, test_lru_order);
  tcase_add_test (tc, test_reuse_and_stats);
  tcase_add_test (tc, test_wait_for_idle_slot);
  tcase_add_test (tc, test_wakeup_passed_on);
  tcase_add_test (tc, test_concurrent_miss_programs_once);
  tcase_add_test (tc, test_program_failure_wakes_next);
  tcase_add_test (tc, test_evict);
  tcase_add_test (tc, test_reprogram_all);
  tcase_add_test (tc, test_forget_all);
  tcase_add_test (tc, test_passthrough);
  tcase_add_test (tc, test_update_caps);
  tcase_add_test (tc, test_slot_holds_key_ref);
  tcase_add_test (tc, test_reentry_from_op);
  tcase_add_checked_fixture (tc, fake_reset, NULL);
  tcase_set_timeout (tc, 10);
  suite_add_tcase (s, tc);
  tcase_add_test (stress, test_stress);
  tcase_add_checked_fixture (stress, fake_reset, NULL);
  tcase_set_timeout (stress, 20);
  suite_add_tcase (s, stress);
  return s;
}

IBC_CHECK_MAIN (profile_suite)
