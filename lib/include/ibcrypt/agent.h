/* The agent: the control-plane thread of an nbdkit process running ibcrypt. */
#ifndef IBCRYPT_AGENT_H
#define IBCRYPT_AGENT_H

#ifdef __cplusplus
extern "C" {
#endif

/* One agent per process, whichever ibcrypt filters are loaded: every
 * filter passes its config keys to ibc_agent_config first, calls
 * ibc_agent_start in .after_fork and ibc_agent_stop in .unload; only the
 * first start and the first stop act.
 *
 * The agent connects to ibcryptd (ibcrypt-socket=PATH), says hello as
 * instance ibcrypt-name=NAME (default nbdkit-PID), registers the process's
 * published layers, the keys it holds and its crypt table, and then serves
 * the daemon's requests (docs/CONTROL.md): keys into the fallback's
 * keyring, crypt tables, passthrough table load/resume, evictions, device
 * resets, status.  When the connection drops it reconnects with backoff
 * (0.1 s doubling to 5 s) and registers again; I/O never waits for it. */

/* 1 if key was an agent key (consumed), 0 if not, -1 on a bad value
 * (message in *ret_err, static). */
int ibc_agent_config (const char *key, const char *value, const char **ret_err);

/* True once ibcrypt-socket was given. */
int ibc_agent_configured (void);

/* The instance name (valid after config). */
const char *ibc_agent_instance (void);

/* Start the agent thread if configured and not started.  Returns 0 or
 * -errno. */
int ibc_agent_start (void);

/* Stop and join the agent thread (idempotent).  Must run before any layer
 * is freed. */
void ibc_agent_stop (void);

#ifdef __cplusplus
}
#endif
#endif
