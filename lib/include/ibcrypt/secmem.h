/* Locked, wiped memory for key material (libsodium guarded allocations). */
#ifndef IBCRYPT_SECMEM_H
#define IBCRYPT_SECMEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Initialise libsodium once; safe to call from any thread, any number of
 * times.  Returns 0 or -ENOSYS if libsodium cannot initialise. */
int ibc_secmem_init (void);

/* size bytes of zeroed, mlock()ed memory with guard pages, or NULL
 * (errno set). */
void *ibc_secmem_alloc (size_t size);

/* Wipe size bytes at p, then release it.  Accepts NULL. */
void ibc_secmem_free (void *p, size_t size);

/* Wipe memory in a way the compiler cannot elide. */
void ibc_secmem_wipe (void *p, size_t size);

/* Wipe the stack below the caller: hash and cipher primitives leave
 * copies of what they processed in their (dead) stack frames.  Call it after
 * any function that processed key bytes on this thread's stack. */
void ibc_secmem_wipe_stack (void);

/* Constant-time comparison: 0 if equal. */
int ibc_secmem_cmp (const void *a, const void *b, size_t size);

/* Test seam: called by ibc_secmem_free with the region after it has been
 * wiped and before it is released, so tests can check the wipe.  NULL
 * removes the hook.  Not thread-safe; for tests only. */
typedef void (*ibc_secmem_free_hook) (const void *p, size_t size);
void ibc_secmem_set_free_hook (ibc_secmem_free_hook hook);

#ifdef __cplusplus
}
#endif
#endif
