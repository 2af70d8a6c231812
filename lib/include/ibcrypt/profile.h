/* Crypto profiles: capabilities plus a keyslot manager (blk-crypto-profile). */
#ifndef IBCRYPT_PROFILE_H
#define IBCRYPT_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "ibcrypt/caps.h"
#include "ibcrypt/key.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ibc_profile;
struct ibc_keyslot;

/* Low-level operations of the device behind a profile.  Both are called
 * with the profile's write lock held, so they are serialised with each other
 * and with reprogramming; they may sleep. */
struct ibc_profile_ops {
  /* Program key into slot (idle, guaranteed).  Required if the profile has
   * keyslots.  Returns 0 or -errno. */
  int (*keyslot_program) (struct ibc_profile *profile,
                          const struct ibc_key *key, unsigned slot,
                          void *opaque);
  /* Evict key from slot.  For a profile without keyslots slot is -1 and the
   * op must forward the eviction to the lower devices.  Optional. */
  int (*keyslot_evict) (struct ibc_profile *profile, const struct ibc_key *key,
                        int slot, void *opaque);
};

struct ibc_profile_stats {
  uint64_t gets;     /* successful ibc_profile_get_keyslot() */
  uint64_t hits;     /* ... that found the key already in a slot */
  uint64_t programs; /* successful keyslot_program calls */
  uint64_t program_errors;
  uint64_t evictions; /* keyslot_evict calls (including forwarded) */
  uint64_t waits;     /* times a getter had to wait for an idle slot */
};

struct ibc_keyslot_info {
  unsigned index;
  unsigned refs;                      /* in-flight users */
  bool programmed;                    /* holds a key */
  char key_id[IBC_KEY_ID_STRLEN + 1]; /* "" when not programmed */
};

/* Create a profile with num_slots keyslots (0 = passthrough profile:
 * capabilities and eviction forwarding only, no per-slot memory).  caps is
 * copied; ops is referenced and must outlive the profile.  Returns 0,
 * -EINVAL (slots but no program op) or -ENOMEM. */
int ibc_profile_new (unsigned num_slots, const struct ibc_caps *caps,
                     const struct ibc_profile_ops *ops, void *opaque,
                     struct ibc_profile **ret_profile);

/* Free a profile; no slot may be held.  Drops the references the slots
 * hold on their keys.  Accepts NULL. */
void ibc_profile_free (struct ibc_profile *profile);

unsigned ibc_profile_num_slots (const struct ibc_profile *profile);

/* The profile's live capabilities (read with ibc_caps_supports() or
 * ibc_caps_snapshot(); they may be expanded concurrently). */
const struct ibc_caps *ibc_profile_caps (const struct ibc_profile *profile);

/* Expand the live capabilities to caps (blk_crypto_update_capabilities).
 * Returns 0, or -EINVAL if caps is not a superset of the current ones. */
int ibc_profile_update_caps (struct ibc_profile *profile,
                             const struct ibc_caps *caps);

/* Get a keyslot holding key (blk_crypto_get_keyslot).  Reuses the slot that
 * holds key; else programs the least-recently-used idle slot; else blocks
 * until a slot goes idle.  The fast path takes the read lock only.
 * *ret_slot is NULL for a profile without keyslots.  Returns 0, or the
 * program op's error (after waking the next waiter).  The slot holds a
 * reference on key until it is evicted or reprogrammed. */
int ibc_profile_get_keyslot (struct ibc_profile *profile,
                             const struct ibc_key *key,
                             struct ibc_keyslot **ret_slot);

/* Release a slot from ibc_profile_get_keyslot (any thread; accepts NULL).
 * When the last user releases it the slot becomes most-recently-used idle
 * and one waiter is woken. */
void ibc_keyslot_put (struct ibc_keyslot *slot);

/* The slot's index (0 .. num_slots-1). */
unsigned ibc_keyslot_index (const struct ibc_keyslot *slot);

/* Evict key (__blk_crypto_evict_key).  Profile without keyslots: calls the
 * evict op with slot -1 (if any) and returns its result.  Otherwise: a key
 * in no slot is not an error (0); a key in a busy slot returns -EBUSY
 * without calling the op; else the op's result.  Whenever the key was
 * found, the slot is unlinked from it, even on error.  Takes the write
 * lock. */
int ibc_profile_evict_key (struct ibc_profile *profile,
                           const struct ibc_key *key);

/* Reprogram every slot holding a key, e.g. after a device reset that lost
 * them (blk_crypto_reprogram_all_keys).  Takes the write lock and first
 * waits for every slot in use to be released (new getters wait meanwhile).
 * No-op without keyslots.  Returns 0 or the first program error (remaining
 * slots are still attempted).  Ops must not call back into the profile
 * (such calls return -EDEADLK). */
int ibc_profile_reprogram_all (struct ibc_profile *profile);

/* Forget every programmed key without calling the evict op (the hardware
 * lost them, and they will not be reprogrammed).  Fails with -EBUSY if a
 * slot is in use. */
int ibc_profile_forget_all (struct ibc_profile *profile);

void ibc_profile_get_stats (const struct ibc_profile *profile,
                            struct ibc_profile_stats *ret_stats);

/* Information about slot index.  Returns 0 or -ERANGE. */
int ibc_profile_slot_info (struct ibc_profile *profile, unsigned index,
                           struct ibc_keyslot_info *ret_info);

#ifdef __cplusplus
}
#endif
#endif
