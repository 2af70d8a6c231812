/* Locked, guarded, wiped memory for key material, over libsodium. */
#include <errno.h>
#include <pthread.h>

#include <sodium.h>

#include "ibcrypt/secmem.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result;
static ibc_secmem_free_hook free_hook;

static void
do_init (void)
{
  init_result = sodium_init () < 0 ? -ENOSYS : 0;
}

int
ibc_secmem_init (void)
{
  pthread_once (&init_once, do_init);
  return init_result;
}

void *
ibc_secmem_alloc (size_t size)
{
  void *p;

  if (ibc_secmem_init () < 0) {
    errno = ENOSYS;
    return NULL;
  }
  /* sodium_malloc: guard pages around the region, mlock()ed, and excluded
   * from core dumps (MADV_DONTDUMP) where the kernel supports it. */
  p = sodium_malloc (size);
  if (p == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  sodium_memzero (p, size);
  return p;
}

void
ibc_secmem_free (void *p, size_t size)
{
  if (p == NULL)
    return;
  /* sodium_free wipes too, but the wipe is ours to guarantee and check. */
  sodium_memzero (p, size);
  if (free_hook)
    free_hook (p, size);
  sodium_free (p);
}

void
ibc_secmem_wipe (void *p, size_t size)
{
  if (p != NULL)
    sodium_memzero (p, size);
}

/* How deep the frames of the primitives we call may reach (BLAKE2b with its
 * message schedule, OpenSSL key setup): generously more than they use. */
#define STACK_WIPE_BYTES 16384

__attribute__ ((noinline)) void
ibc_secmem_wipe_stack (void)
{
  /* This frame overlays the dead frames of the functions the caller just
   * returned from; sodium_memzero cannot be optimised away. */
  unsigned char frame[STACK_WIPE_BYTES];

  sodium_memzero (frame, sizeof frame);
  __asm__ __volatile__("" : : "r"(frame) : "memory");
}

int
ibc_secmem_cmp (const void *a, const void *b, size_t size)
{
  return sodium_memcmp (a, b, size) == 0 ? 0 : 1;
}

void
ibc_secmem_set_free_hook (ibc_secmem_free_hook hook)
{
  free_hook = hook;
}
