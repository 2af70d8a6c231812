/* Internal interface of the agent: ops implemented outside lib/agent.c. */
#ifndef IBCRYPT_AGENT_INTERNAL_H
#define IBCRYPT_AGENT_INTERNAL_H

#include <stdint.h>

#include <json-c/json.h>

#include "ibcrypt/proto.h"

/* key_import, key_generate, key_prepare (lib/agent-wrapped.c): the reply,
 * or NULL if op is none of them. */
struct json_object *ibc_agent_op_wrapped (uint64_t id, const char *op,
                                          const struct ibc_frame *f);

#endif
