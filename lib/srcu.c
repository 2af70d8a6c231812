/* Sleepable read-copy-update with per-thread-sharded reader counts. */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "ibcrypt/srcu.h"

/* Each thread sticks to one shard, assigned round-robin on first use, so
 * concurrent readers mostly touch different cache lines. */
static atomic_uint next_shard;
static _Thread_local unsigned my_shard = UINT32_MAX;

static unsigned
shard (void)
{
  if (my_shard == UINT32_MAX)
    my_shard = atomic_fetch_add_explicit (&next_shard, 1, memory_order_relaxed)
               % IBC_SRCU_SHARDS;
  return my_shard;
}

void
ibc_srcu_init (struct ibc_srcu *srcu)
{
  memset (srcu, 0, sizeof *srcu);
}

unsigned
ibc_srcu_read_lock (struct ibc_srcu *srcu)
{
  unsigned i = atomic_load (&srcu->idx) & 1;

  /* seq_cst: the increment is ordered before this reader's later loads of
   * the published pointer, and against the writer's publish and flip. */
  atomic_fetch_add (&srcu->shards[shard ()].count[i], 1);
  return i;
}

void
ibc_srcu_read_unlock (struct ibc_srcu *srcu, unsigned token)
{
  /* A thread may unlock on the shard it locked on only: shard() is fixed
   * per thread, and readers do not migrate between lock and unlock. */
  atomic_fetch_sub_explicit (&srcu->shards[shard ()].count[token & 1], 1,
                             memory_order_release);
}

static long
sum (struct ibc_srcu *srcu, unsigned i)
{
  long total = 0;

  for (unsigned s = 0; s < IBC_SRCU_SHARDS; s++)
    total += atomic_load (&srcu->shards[s].count[i]);
  return total;
}

static void
wait_for_zero (struct ibc_srcu *srcu, unsigned i)
{
  struct timespec ts = { 0, 200000 }; /* 0.2 ms: updates are rare */

  while (sum (srcu, i) != 0)
    nanosleep (&ts, NULL);
}

void
ibc_srcu_synchronize (struct ibc_srcu *srcu)
{
  /* Flip twice, draining each side: a reader that read idx just before a
   * flip and incremented afterwards is caught by the second drain. */
  for (int pass = 0; pass < 2; pass++) {
    unsigned old = atomic_fetch_add (&srcu->idx, 1) & 1;
    wait_for_zero (srcu, old);
  }
}
