/* The status of this process's ibcrypt stack as JSON (never secrets). */
#ifndef IBCRYPT_STATUS_H
#define IBCRYPT_STATUS_H

#include "ibcrypt/profile.h"

#ifdef __cplusplus
extern "C" {
#endif

struct json_object;

/* A profile: slots, capabilities, counters and the keyslot table (key ids
 * only).  Returns a new object or NULL (ENOMEM). */
struct json_object *ibc_status_profile (struct ibc_profile *profile);

/* Every published layer, top first, with its devices.  Returns a new
 * object or NULL. */
struct json_object *ibc_status_registry (void);

/* Write ibc_status_registry() pretty-printed to path, atomically (write a
 * temporary file, rename).  Returns 0 or -1 with errno set. */
int ibc_status_write_file (const char *path);

#ifdef __cplusplus
}
#endif
#endif
