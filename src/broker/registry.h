/*
 * The Remote Agent Registry, writer side: the broker's operations on the
 * session table in the shared segment (shm.h). Only the broker's main
 * thread calls these; frontends read the table directly.
 *
 * Times come from the clock in the params (milliseconds of the segment's
 * clock, CLOCK_BOOTTIME by default), so tests can drive expiry.
 *
 * Functions return 0 or a negative errno:
 *   -ENOTSUP   the registry is disabled (register, refresh)
 *   -EINVAL    a bad argument; msg says which
 *   -ENOSPC    the session table is full; msg says so
 *   -ENOENT    no such session
 *   -ETIMEDOUT the table could not be read consistently
 * The broker turns them into gRPC status codes (cs_registry_rpc_code).
 * Session ids never appear in msg.
 */
#ifndef CS_REGISTRY_H
#define CS_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker_client.h"
#include "shm.h"

typedef int64_t (*cs_registry_clock_fn)(void *arg);

typedef struct {
    int enabled;                    /* remote_agent_registry.enabled */
    int64_t idle_timeout_ms;        /* expiry after this much idleness */
    int64_t refresh_interval_ms;    /* recommended to registrants */
    cs_registry_clock_fn clock;     /* NULL: cs_shm_now_ms */
    void *clock_arg;
} cs_registry_params_t;

typedef struct cs_registry cs_registry_t;

/*
 * Take over the session table of shm: sessions a previous broker left
 * stay valid with their last-seen times; open-stream counts are trusted
 * until the frontends have had time to report again.
 */
int cs_registry_new(cs_registry_t **reg, cs_shm_t *shm,
    const cs_registry_params_t *params);
void cs_registry_free(cs_registry_t *reg);

/*
 * Mint a session (a random UUIDv4) for agent. id gets the 36-character
 * id, *refresh_secs the recommended refresh interval. agent->services
 * is accepted and not stored.
 */
int cs_registry_register(cs_registry_t *reg, const cs_broker_agent_t *agent,
    char id[CS_SESSION_ID_LEN + 1], uint32_t *refresh_secs, char *msg,
    size_t msglen);

/* Mark a session seen now. */
int cs_registry_refresh(cs_registry_t *reg, const char *id);

/*
 * Remove a session at once, by its id or a unique prefix of at least
 * CS_BROKER_PREFIX_LEN characters (-EINVAL when shorter or ambiguous).
 */
int cs_registry_revoke(cs_registry_t *reg, const char *id, char *msg,
    size_t msglen);

/*
 * A frontend's report of the sessions it streams to; replaces its
 * previous report. Listed sessions count as seen now, and stay alive
 * while reports keep listing them. Unknown ids are ignored.
 */
int cs_registry_keepalive(cs_registry_t *reg, pid_t frontend,
    const cs_broker_stream_count_t *streams, size_t n);

/*
 * Expire sessions idle longer than the idle timeout and with no open
 * stream. Returns how many expired; *next_ms gets the clock time of the
 * next possible expiry (INT64_MAX when none is due).
 */
int cs_registry_sweep(cs_registry_t *reg, int64_t *next_ms);

/* The current time on the registry's clock. */
int64_t cs_registry_now(cs_registry_t *reg);

/* The gRPC status code that reports rc to a caller. */
int cs_registry_rpc_code(int rc);

#endif /* CS_REGISTRY_H */
