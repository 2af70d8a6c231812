/* Crypto profiles: capabilities plus a keyslot manager (blk-crypto-profile). */

/*
 * Overview
 * ========
 *
 * A profile describes what a device can do natively (its capabilities) and,
 * if the device has keyslots, manages which key sits in which slot.  This is
 * the userspace counterpart of Linux block/blk-crypto-profile.c, with the
 * same rules:
 *
 *  - Getting a slot for a key reuses the slot already holding the key (the
 *    fast path: read lock, hash lookup by key pointer, atomic refcount);
 *    otherwise it programs the least-recently-used idle slot (the slow path:
 *    write lock, ops->keyslot_program); otherwise it waits until a slot goes
 *    idle.
 *  - Idle slots (refs == 0) form an LRU list, least recently used at the
 *    head.  Releasing the last reference appends the slot at the tail.
 *  - Evicting a key that is in no slot is not an error (there can be more
 *    keys than slots).  Evicting a key whose slot is in use is -EBUSY and the
 *    evict op is not called.  Whenever the key was found its slot is unlinked
 *    from it, even on error.
 *  - A profile with no slots (passthrough profile) only carries capabilities
 *    and forwards evictions to the evict op with slot -1; it allocates no
 *    per-slot memory.
 *
 * Locks, outermost first:
 *
 *  lock             pthread rwlock (reader-preferring, see
 *                   ibc_profile_new()).  Read: fast-path
 *                   lookups and slot_info.  Write: everything that changes
 *                   which key a slot holds, and every call into ops, so ops
 *                   are serialised with each other.
 *  idle_slots_lock  mutex protecting the idle list and nr_waiters; the
 *                   idle_slots_cond condition variable goes with it.
 *
 * The rwlock is never taken while idle_slots_lock is held.  ops are called
 * with the write lock held and idle_slots_lock not held.  Keys are unref'ed
 * after all locks are dropped where that is cheap to arrange, because the
 * last unref wipes and frees locked memory (syscalls).
 *
 * Invariants:
 *
 *  I1  slot->key and the hash chains change only under the write lock; a
 *      slot with key != NULL is in exactly the bucket of that key and holds
 *      one reference on it.  No key is in two slots.
 *  I2  Under idle_slots_lock, a slot is on the idle list iff refs == 0,
 *      except transiently for a fast-path getter that has just taken refs
 *      0 -> 1 and is about to unlink it; that getter holds the read lock, so
 *      nobody holding the write lock ever sees the exception.
 *  I3  refs goes 1 -> 0 only with idle_slots_lock held (dec-and-lock), and
 *      the slot is appended to the idle list in the same critical section.
 *  I4  With the write lock held, refs of an idle slot cannot change (only
 *      getters increment, and they need the lock); refs of a busy slot can
 *      only decrease.
 *
 * Waiting: a getter that finds no idle slot registers as a waiter and
 * releases the write lock while still holding idle_slots_lock, then waits on
 * idle_slots_cond; pthread_cond_wait releases the mutex, so a waiting getter
 * holds no lock at all.  The emptiness check and the wait are atomic with
 * respect to ibc_keyslot_put (which appends and signals under the same
 * mutex), so no wakeup is lost.  Put signals one waiter.  A waiter that
 * leaves the slow path without consuming the idle slot it was woken for
 * (the key was programmed meanwhile by someone else, or programming failed)
 * passes the wakeup on, so idle slots never sit unused while getters sleep.
 *
 * Deviation from the kernel: when programming a slot fails (in get or in
 * reprogram_all) the slot is unlinked from the key it held, because its
 * contents are unknown; the next use of that key programs a slot again.
 *
 * Statistics are relaxed atomics.  The only counter on the fast path is
 * "hits", sharded per thread over cache-line-sized counters so threads
 * hitting different keys do not share a counter line; gets is derived as
 * hits + programs done by getters (+ gets on a passthrough profile), so
 * gets == hits + programs as long as reprogram_all (whose calls count as
 * programs too) is not used.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ibcrypt/profile.h"

#define CACHELINE 64
#define STAT_SHARDS 16

struct slot_list {
  struct slot_list *prev, *next;
};

struct ibc_keyslot {
  /* What users touch, on a cache line of its own so users of different
   * slots do not bounce each other's refcounts: refs, and fields that
   * change only under the write lock. */
  alignas (CACHELINE) atomic_uint refs;
  unsigned index;
  struct ibc_keyslot *hash_next; /* chain in the bucket of key */
  struct ibc_key *key;           /* NULL = holds no key; one reference */
  /* A key unlinked while the slot was busy (evict -> -EBUSY): the device
   * may still hold its state, so the evict op runs for it once the slot
   * is idle (scrub_residues) or the slot is reprogrammed.  One reference;
   * changed under the write lock. */
  struct ibc_key *residue;
  struct ibc_profile *profile;
  /* Written when a neighbour on the idle list comes or goes, so kept off
   * the line above. */
  alignas (CACHELINE) struct slot_list idle_node; /* idle_slots_lock */
};

struct stat_shard {
  alignas (CACHELINE) atomic_uint_fast64_t hits;
  atomic_uint_fast64_t noslot_gets;
};

struct ibc_profile {
  /* Read-mostly: constant, or changed only under the write lock. */
  struct ibc_caps caps; /* live; atomic word-wise access (caps.h) */
  const struct ibc_profile_ops *ops;
  void *opaque;
  unsigned num_slots;
  unsigned log_slot_ht_size;
  struct ibc_keyslot **slot_hashtable; /* NULL when num_slots == 0 */
  struct ibc_keyslot *slots;           /* NULL when num_slots == 0 */
  unsigned nr_residues;                /* slots with a residue; write lock */

  /* Written by every reader. */
  alignas (CACHELINE) pthread_rwlock_t lock;

  /* Written whenever a slot goes idle or busy. */
  alignas (CACHELINE) pthread_mutex_t idle_slots_lock;
  struct slot_list idle_slots; /* LRU at the head; idle_slots_lock */
  unsigned nr_waiters;         /* idle_slots_lock */
  pthread_cond_t idle_slots_cond;

  /* Slow-path statistics; hits are in shards. */
  alignas (CACHELINE) atomic_uint_fast64_t get_programs; /* by getters */
  atomic_uint_fast64_t reprograms; /* programs done by reprogram_all */
  atomic_uint_fast64_t program_errors;
  atomic_uint_fast64_t evictions;
  atomic_uint_fast64_t waits;
  struct stat_shard shards[STAT_SHARDS];
};

static void drop_residue (struct ibc_profile *profile,
                          struct ibc_keyslot *slot);

/* ---- small helpers ---- */

static void
list_init (struct slot_list *head)
{
  head->prev = head->next = head;
}

static bool
list_empty (const struct slot_list *head)
{
  return head->next == head;
}

static void
list_add_tail (struct slot_list *node, struct slot_list *head)
{
  node->prev = head->prev;
  node->next = head;
  head->prev->next = node;
  head->prev = node;
}

static void
list_del (struct slot_list *node)
{
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node->next = node;
}

static struct ibc_keyslot *
slot_of_idle_node (struct slot_list *node)
{
  return (struct ibc_keyslot *) ((char *) node
                                 - offsetof (struct ibc_keyslot, idle_node));
}

static void
stat_inc (atomic_uint_fast64_t *c)
{
  atomic_fetch_add_explicit (c, 1, memory_order_relaxed);
}

static uint64_t
stat_read (const atomic_uint_fast64_t *c)
{
  return atomic_load_explicit (c, memory_order_relaxed);
}

/* This thread's statistics shard, assigned round-robin on first use. */
static struct stat_shard *
my_shard (struct ibc_profile *profile)
{
  static atomic_uint next_shard;
  static _Thread_local unsigned shard_plus_one;

  if (shard_plus_one == 0)
    shard_plus_one
        = atomic_fetch_add_explicit (&next_shard, 1, memory_order_relaxed)
              % STAT_SHARDS
          + 1;
  return &profile->shards[shard_plus_one - 1];
}

/* Multiplicative hash of the key pointer (like the kernel's hash_ptr). */
static struct ibc_keyslot **
hash_bucket (struct ibc_profile *profile, const struct ibc_key *key)
{
  uint64_t v = (uint64_t) (uintptr_t) key;
  unsigned bits = profile->log_slot_ht_size;

  return &profile->slot_hashtable[(v * UINT64_C (0x61C8864680B583EB))
                                  >> (64 - bits)];
}

/* Caller holds the lock (read or write). */
static struct ibc_keyslot *
find_keyslot (struct ibc_profile *profile, const struct ibc_key *key)
{
  for (struct ibc_keyslot *s = *hash_bucket (profile, key); s; s = s->hash_next)
    if (s->key == key)
      return s;
  return NULL;
}

/* Caller holds the write lock.  Returns the key the slot held (with the
 * slot's reference, for the caller to drop after unlocking) or NULL. */
static struct ibc_key *
unlink_key (struct ibc_profile *profile, struct ibc_keyslot *slot)
{
  struct ibc_key *old = slot->key;
  struct ibc_keyslot **pp;

  if (old == NULL)
    return NULL;
  for (pp = hash_bucket (profile, old); *pp != slot; pp = &(*pp)->hash_next)
    ;
  *pp = slot->hash_next;
  slot->hash_next = NULL;
  slot->key = NULL;
  return old;
}

/* Caller holds the write lock; the slot holds no key. */
static void
link_key (struct ibc_profile *profile, struct ibc_keyslot *slot,
          const struct ibc_key *key)
{
  struct ibc_keyslot **bucket = hash_bucket (profile, key);

  /* The profile API takes const keys like the kernel's, but a slot owns a
   * reference, which mutates the refcount. */
  slot->key = ibc_key_ref ((struct ibc_key *) key);
  slot->hash_next = *bucket;
  *bucket = slot;
}

/* Take a reference on the slot holding key, if any.  Caller holds the lock
 * (read or write). */
static struct ibc_keyslot *
find_and_grab_keyslot (struct ibc_profile *profile, const struct ibc_key *key)
{
  struct ibc_keyslot *slot = find_keyslot (profile, key);

  if (slot == NULL)
    return NULL;
  if (atomic_fetch_add_explicit (&slot->refs, 1, memory_order_acquire) == 0) {
    /* 0 -> 1: it was idle (I2); we still hold the lock, so no writer can
     * pick it from the idle list before we unlink it. */
    pthread_mutex_lock (&profile->idle_slots_lock);
    list_del (&slot->idle_node);
    pthread_mutex_unlock (&profile->idle_slots_lock);
  }
  return slot;
}

/* Caller holds idle_slots_lock.  Wake one waiter if an idle slot is there
 * for it. */
static void
wake_waiter_locked (struct ibc_profile *profile)
{
  if (profile->nr_waiters > 0 && !list_empty (&profile->idle_slots))
    pthread_cond_signal (&profile->idle_slots_cond);
}

static void
wake_waiter (struct ibc_profile *profile)
{
  pthread_mutex_lock (&profile->idle_slots_lock);
  wake_waiter_locked (profile);
  pthread_mutex_unlock (&profile->idle_slots_lock);
}

/* ---- creation ---- */

/* Returns 0, -EINVAL (slots without a program op, or more than INT_MAX
 * slots since the evict op takes an int) or -ENOMEM.  No locking. */
int
ibc_profile_new (unsigned num_slots, const struct ibc_caps *caps,
                 const struct ibc_profile_ops *ops, void *opaque,
                 struct ibc_profile **ret_profile)
{
  struct ibc_profile *profile;
  unsigned ht_size;
  int r;

  if (num_slots > 0 && (ops == NULL || ops->keyslot_program == NULL))
    return -EINVAL;
  if (num_slots > INT_MAX)
    return -EINVAL;

  profile = aligned_alloc (CACHELINE, sizeof *profile);
  if (profile == NULL)
    return -ENOMEM;
  memset (profile, 0, sizeof *profile);
  if (caps)
    ibc_caps_update (&profile->caps, caps);
  else
    ibc_caps_init_none (&profile->caps);
  profile->ops = ops;
  profile->opaque = opaque;
  profile->num_slots = num_slots;
  list_init (&profile->idle_slots);

  if (num_slots > 0) {
    /* roundup_pow_of_two (num_slots), at least 2 buckets. */
    profile->log_slot_ht_size = 1;
    while ((1u << profile->log_slot_ht_size) < num_slots)
      profile->log_slot_ht_size++;
    ht_size = 1u << profile->log_slot_ht_size;
    profile->slot_hashtable = calloc (ht_size, sizeof (struct ibc_keyslot *));
    profile->slots = aligned_alloc (
        CACHELINE, (size_t) num_slots * sizeof (struct ibc_keyslot));
    if (profile->slot_hashtable == NULL || profile->slots == NULL) {
      r = -ENOMEM;
      goto out_free;
    }
    memset (profile->slots, 0, (size_t) num_slots * sizeof *profile->slots);
    /* All slots start idle, in index order. */
    for (unsigned i = 0; i < num_slots; i++) {
      struct ibc_keyslot *s = &profile->slots[i];
      atomic_init (&s->refs, 0);
      s->index = i;
      s->profile = profile;
      list_add_tail (&s->idle_node, &profile->idle_slots);
    }
  }

  /* glibc's default, reader-preferring kind.  The writer-preferring kind
   * hands the lock from writer to writer through futex wakeups and
   * collapsed to ~0.05 M gets/s (from 10-25 M) with two threads missing
   * on a shared 2-CPU machine.  Read sections are a few dozen ns, so
   * writers still get in: a thread missing against two hitting made ~5 M
   * gets/s, and the worst get latency (4-8 ms, scheduler ticks) was the
   * same with either kind. */
  r = -pthread_rwlock_init (&profile->lock, NULL);
  if (r < 0)
    goto out_free;
  pthread_mutex_init (&profile->idle_slots_lock, NULL);
  pthread_cond_init (&profile->idle_slots_cond, NULL);

  *ret_profile = profile;
  return 0;

out_free:
  free (profile->slots);
  free (profile->slot_hashtable);
  free (profile);
  return r;
}

/* No slot may be held and no other thread may use the profile. */
void
ibc_profile_free (struct ibc_profile *profile)
{
  if (profile == NULL)
    return;
  for (unsigned i = 0; i < profile->num_slots; i++) {
    ibc_key_unref (profile->slots[i].key);
    ibc_key_unref (profile->slots[i].residue);
  }
  pthread_cond_destroy (&profile->idle_slots_cond);
  pthread_mutex_destroy (&profile->idle_slots_lock);
  pthread_rwlock_destroy (&profile->lock);
  free (profile->slots);
  free (profile->slot_hashtable);
  free (profile);
}

/* No locking: constant after creation. */
unsigned
ibc_profile_num_slots (const struct ibc_profile *profile)
{
  return profile->num_slots;
}

/* No locking: readers load the words atomically (caps.h). */
const struct ibc_caps *
ibc_profile_caps (const struct ibc_profile *profile)
{
  return &profile->caps;
}

/* Takes the write lock only to serialise updaters (check + store);
 * readers never lock.  Returns 0 or -EINVAL (NULL or not a superset). */
int
ibc_profile_update_caps (struct ibc_profile *profile,
                         const struct ibc_caps *caps)
{
  int r = 0;

  if (caps == NULL)
    return -EINVAL;
  pthread_rwlock_wrlock (&profile->lock);
  if (ibc_caps_has (caps, &profile->caps))
    ibc_caps_update (&profile->caps, caps);
  else
    r = -EINVAL;
  pthread_rwlock_unlock (&profile->lock);
  return r;
}

/* ---- getting and releasing slots ---- */

/* Locking: takes the read lock (fast path), and the write lock when the key
 * must be programmed; may block until a slot goes idle, holding no lock
 * while it waits.  Must not be called from an op.  Returns 0 with
 * *ret_slot set (NULL for a passthrough profile), -EINVAL for a NULL key,
 * -EDEADLK when called from an op, or the program op's error. */
int
ibc_profile_get_keyslot (struct ibc_profile *profile, const struct ibc_key *key,
                         struct ibc_keyslot **ret_slot)
{
  struct ibc_keyslot *slot;
  struct ibc_key *old;
  bool waited = false;
  int r;

  if (profile->num_slots == 0) {
    stat_inc (&my_shard (profile)->noslot_gets);
    *ret_slot = NULL;
    return 0;
  }
  if (key == NULL)
    return -EINVAL;

  /* Fast path: the key is already in a slot.  The lock fails (EDEADLK)
   * only when called from an op, which holds the write lock. */
  r = pthread_rwlock_rdlock (&profile->lock);
  if (r != 0)
    return -r;
  slot = find_and_grab_keyslot (profile, key);
  pthread_rwlock_unlock (&profile->lock);
  if (slot)
    goto out_hit;

  for (;;) {
    pthread_rwlock_wrlock (&profile->lock);
    /* Someone may have programmed it while we were unlocked. */
    slot = find_and_grab_keyslot (profile, key);
    if (slot) {
      pthread_rwlock_unlock (&profile->lock);
      if (waited)
        wake_waiter (profile); /* we did not use the idle slot */
      goto out_hit;
    }
    pthread_mutex_lock (&profile->idle_slots_lock);
    if (!list_empty (&profile->idle_slots))
      break; /* with both locks held */
    /* Register as a waiter before dropping the write lock, all under
     * idle_slots_lock, so a put between the check and the wait cannot be
     * missed. */
    profile->nr_waiters++;
    pthread_rwlock_unlock (&profile->lock);
    stat_inc (&profile->waits);
    do
      pthread_cond_wait (&profile->idle_slots_cond, &profile->idle_slots_lock);
    while (list_empty (&profile->idle_slots));
    profile->nr_waiters--;
    pthread_mutex_unlock (&profile->idle_slots_lock);
    waited = true;
  }
  /* The least-recently-used idle slot.  It stays idle and at the head while
   * we hold the write lock (I4): puts only append. */
  slot = slot_of_idle_node (profile->idle_slots.next);
  pthread_mutex_unlock (&profile->idle_slots_lock);

  r = profile->ops->keyslot_program (profile, key, slot->index,
                                     profile->opaque);
  /* Success or not, the slot no longer holds its old key, nor what an
   * earlier busy eviction left in it. */
  old = unlink_key (profile, slot);
  drop_residue (profile, slot);
  if (r != 0) {
    if (r > 0)
      r = -EIO;
    stat_inc (&profile->program_errors);
    /* The slot is still idle: let another waiter try. */
    wake_waiter (profile);
    pthread_rwlock_unlock (&profile->lock);
    ibc_key_unref (old);
    return r;
  }
  link_key (profile, slot, key);
  atomic_store_explicit (&slot->refs, 1, memory_order_relaxed);
  pthread_mutex_lock (&profile->idle_slots_lock);
  list_del (&slot->idle_node);
  if (waited)
    wake_waiter_locked (profile);
  pthread_mutex_unlock (&profile->idle_slots_lock);
  pthread_rwlock_unlock (&profile->lock);
  stat_inc (&profile->get_programs);
  ibc_key_unref (old);
  *ret_slot = slot;
  return 0;

out_hit:
  stat_inc (&my_shard (profile)->hits);
  *ret_slot = slot;
  return 0;
}

/* Any thread, no profile lock; takes idle_slots_lock only when dropping the
 * last reference (I3). */
void
ibc_keyslot_put (struct ibc_keyslot *slot)
{
  struct ibc_profile *profile;
  unsigned refs;

  if (slot == NULL)
    return;
  profile = slot->profile;
  refs = atomic_load_explicit (&slot->refs, memory_order_relaxed);
  while (refs > 1)
    if (atomic_compare_exchange_weak_explicit (&slot->refs, &refs, refs - 1,
                                               memory_order_release,
                                               memory_order_relaxed))
      return;
  pthread_mutex_lock (&profile->idle_slots_lock);
  if (atomic_fetch_sub_explicit (&slot->refs, 1, memory_order_release) == 1) {
    list_add_tail (&slot->idle_node, &profile->idle_slots);
    if (profile->nr_waiters > 0)
      pthread_cond_signal (&profile->idle_slots_cond);
  }
  pthread_mutex_unlock (&profile->idle_slots_lock);
}

/* No locking: constant. */
unsigned
ibc_keyslot_index (const struct ibc_keyslot *slot)
{
  return slot->index;
}

/* ---- eviction and bulk operations ---- */

/* Keys unlinked under the write lock, unref'ed after it is dropped.  If the
 * array cannot be allocated they are unref'ed in place: slower, still
 * correct. */
struct stale_keys {
  struct ibc_key **v;
  size_t n;
};

static void
stale_init (struct stale_keys *st, unsigned num_slots)
{
  st->v = malloc ((size_t) num_slots * sizeof *st->v);
  st->n = 0;
}

static void
stale_add (struct stale_keys *st, struct ibc_key *key)
{
  if (key == NULL)
    return;
  if (st->v)
    st->v[st->n++] = key;
  else
    ibc_key_unref (key);
}

static void
stale_release (struct stale_keys *st)
{
  for (size_t i = 0; i < st->n; i++)
    ibc_key_unref (st->v[i]);
  free (st->v);
}

/* Write lock held: forget slot's residue (the device state it stood for
 * has just been overwritten or lost).  The last reference is rarely ours:
 * the key's owner holds one until it is done with it. */
static void
drop_residue (struct ibc_profile *profile, struct ibc_keyslot *slot)
{
  if (slot->residue == NULL)
    return;
  ibc_key_unref (slot->residue);
  slot->residue = NULL;
  profile->nr_residues--;
}

/* Write lock held: run the evict op for residues whose slots went idle,
 * so no key state outlives its eviction in the device (the kernel leaves
 * it there until the slot is reused). */
static void
scrub_residues (struct ibc_profile *profile)
{
  for (unsigned i = 0; profile->nr_residues && i < profile->num_slots; i++) {
    struct ibc_keyslot *s = &profile->slots[i];

    if (s->residue == NULL
        || atomic_load_explicit (&s->refs, memory_order_acquire) != 0)
      continue;
    if (profile->ops->keyslot_evict) {
      profile->ops->keyslot_evict (profile, s->residue, (int) i,
                                   profile->opaque);
      stat_inc (&profile->evictions);
    }
    drop_residue (profile, s);
  }
}

/* Takes the write lock; may sleep in the evict op.  Returns 0 (also for a
 * key in no slot, or no evict op), -EBUSY (slot in use; op not called), or
 * the op's error. */
int
ibc_profile_evict_key (struct ibc_profile *profile, const struct ibc_key *key)
{
  const struct ibc_profile_ops *ops = profile->ops;
  struct ibc_keyslot *slot;
  struct ibc_key *old;
  int r = 0;

  if (profile->num_slots == 0) {
    if (ops == NULL || ops->keyslot_evict == NULL)
      return 0;
    pthread_rwlock_wrlock (&profile->lock);
    r = ops->keyslot_evict (profile, key, -1, profile->opaque);
    stat_inc (&profile->evictions);
    pthread_rwlock_unlock (&profile->lock);
    return r;
  }
  if (key == NULL)
    return 0;

  pthread_rwlock_wrlock (&profile->lock);
  scrub_residues (profile);
  slot = find_keyslot (profile, key);
  if (slot == NULL) {
    pthread_rwlock_unlock (&profile->lock);
    return 0;
  }
  if (atomic_load_explicit (&slot->refs, memory_order_acquire) != 0)
    r = -EBUSY; /* I/O in flight with this key: a caller bug */
  else if (ops->keyslot_evict) {
    r = ops->keyslot_evict (profile, key, (int) slot->index, profile->opaque);
    stat_inc (&profile->evictions);
  }
  /* In all found cases the slot is unlinked: the key may be looked up
   * again, but not found here.  A busy slot keeps the key as a residue
   * until its state can be evicted. */
  old = unlink_key (profile, slot);
  if (r == -EBUSY) {
    slot->residue = old;
    profile->nr_residues++;
    old = NULL;
  }
  pthread_rwlock_unlock (&profile->lock);
  ibc_key_unref (old);
  return r;
}

/* Wait until no slot is in use.  Called with the write lock held: no new
 * user can take a slot, and refs only fall (I4), so this terminates once
 * the requests in flight finish. */
static void
wait_all_idle (struct ibc_profile *profile)
{
  const struct timespec pause = { 0, 100 * 1000 }; /* 0.1 ms */

  for (unsigned i = 0; i < profile->num_slots; i++)
    while (atomic_load_explicit (&profile->slots[i].refs, memory_order_acquire)
           != 0)
      nanosleep (&pause, NULL);
}

/* Takes the write lock, waits for the slots in use to be released (the
 * hardware is being reset: nothing may use it meanwhile), then reprograms;
 * may sleep.  A slot that fails to reprogram is unlinked from its key.
 * Returns 0 or the first error. */
int
ibc_profile_reprogram_all (struct ibc_profile *profile)
{
  struct stale_keys st;
  int first = 0;

  if (profile->num_slots == 0)
    return 0;
  stale_init (&st, profile->num_slots);
  pthread_rwlock_wrlock (&profile->lock);
  wait_all_idle (profile);
  /* The reset lost whatever busy evictions left behind. */
  for (unsigned i = 0; i < profile->num_slots; i++)
    drop_residue (profile, &profile->slots[i]);
  for (unsigned i = 0; i < profile->num_slots; i++) {
    struct ibc_keyslot *s = &profile->slots[i];
    int r;

    if (s->key == NULL)
      continue;
    r = profile->ops->keyslot_program (profile, s->key, i, profile->opaque);
    if (r == 0) {
      stat_inc (&profile->reprograms);
      continue;
    }
    stat_inc (&profile->program_errors);
    if (first == 0)
      first = r > 0 ? -EIO : r;
    stale_add (&st, unlink_key (profile, s));
  }
  pthread_rwlock_unlock (&profile->lock);
  stale_release (&st);
  return first;
}

/* Takes the write lock.  Returns 0, or -EBUSY (nothing forgotten) if any
 * slot is in use. */
int
ibc_profile_forget_all (struct ibc_profile *profile)
{
  struct stale_keys st;

  if (profile->num_slots == 0)
    return 0;
  stale_init (&st, profile->num_slots);
  pthread_rwlock_wrlock (&profile->lock);
  /* refs can only fall while we hold the write lock (I4). */
  for (unsigned i = 0; i < profile->num_slots; i++)
    if (atomic_load_explicit (&profile->slots[i].refs, memory_order_acquire)
        != 0) {
      pthread_rwlock_unlock (&profile->lock);
      free (st.v);
      return -EBUSY;
    }
  for (unsigned i = 0; i < profile->num_slots; i++) {
    stale_add (&st, unlink_key (profile, &profile->slots[i]));
    drop_residue (profile, &profile->slots[i]);
  }
  pthread_rwlock_unlock (&profile->lock);
  stale_release (&st);
  return 0;
}

/* ---- introspection ---- */

/* No locking; each counter is read atomically, not the set as a whole. */
void
ibc_profile_get_stats (const struct ibc_profile *profile,
                       struct ibc_profile_stats *ret_stats)
{
  uint64_t hits = 0, noslot_gets = 0;
  uint64_t get_programs = stat_read (&profile->get_programs);

  for (unsigned i = 0; i < STAT_SHARDS; i++) {
    hits += stat_read (&profile->shards[i].hits);
    noslot_gets += stat_read (&profile->shards[i].noslot_gets);
  }
  ret_stats->gets = hits + get_programs + noslot_gets;
  ret_stats->hits = hits;
  ret_stats->programs = get_programs + stat_read (&profile->reprograms);
  ret_stats->program_errors = stat_read (&profile->program_errors);
  ret_stats->evictions = stat_read (&profile->evictions);
  ret_stats->waits = stat_read (&profile->waits);
}

/* Takes the read lock, so must not be called from an op.  Returns 0,
 * -ERANGE (always for a passthrough profile) or -EDEADLK (from an op). */
int
ibc_profile_slot_info (struct ibc_profile *profile, unsigned index,
                       struct ibc_keyslot_info *ret_info)
{
  struct ibc_keyslot_info info;
  const struct ibc_keyslot *s;

  if (index >= profile->num_slots)
    return -ERANGE;
  s = &profile->slots[index];
  memset (&info, 0, sizeof info);
  info.index = index;
  if (pthread_rwlock_rdlock (&profile->lock) != 0)
    return -EDEADLK; /* called from an op */
  info.refs = atomic_load_explicit (&s->refs, memory_order_relaxed);
  info.programmed = s->key != NULL;
  if (s->key)
    memcpy (info.key_id, ibc_key_id (s->key), IBC_KEY_ID_STRLEN + 1);
  pthread_rwlock_unlock (&profile->lock);
  *ret_info = info;
  return 0;
}
