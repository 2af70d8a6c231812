/* Sleepable read-copy-update: swap shared objects under live readers. */
#ifndef IBCRYPT_SRCU_H
#define IBCRYPT_SRCU_H

#include <stdalign.h>
#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Readers (the data path) bracket their use of a published pointer with
 * ibc_srcu_read_lock/unlock; a writer publishes a new pointer, calls
 * ibc_srcu_synchronize, and may then free the old object.  Readers never
 * block and touch only their own shard's counter (no shared cache line);
 * the writer sleeps until every reader that might hold the old pointer has
 * finished.  Readers may sleep (they do I/O) but must not synchronize. */

#define IBC_SRCU_SHARDS 16

struct ibc_srcu_shard {
  alignas (64) atomic_long count[2];
};

struct ibc_srcu {
  atomic_uint idx;
  struct ibc_srcu_shard shards[IBC_SRCU_SHARDS];
};

/* Zero-initialised storage is a valid, initialised ibc_srcu. */
void ibc_srcu_init (struct ibc_srcu *srcu);

/* Returns a token for ibc_srcu_read_unlock.  Loads of published pointers
 * made after this see at least what was published before a synchronize
 * that is still waiting for this reader. */
unsigned ibc_srcu_read_lock (struct ibc_srcu *srcu);
void ibc_srcu_read_unlock (struct ibc_srcu *srcu, unsigned token);

/* Wait until every reader that entered before this call has left.
 * Writers must serialise their calls (hold their own update mutex). */
void ibc_srcu_synchronize (struct ibc_srcu *srcu);

#ifdef __cplusplus
}
#endif
#endif
