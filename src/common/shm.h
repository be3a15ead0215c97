/*
 * The broker's shared-memory segment: the change word, the Remote Agent
 * Registry session table and the telemetry counter blocks.
 *
 * The broker creates the segment (a file under run_path, mapped shared) or
 * re-attaches to the one a previous broker left; everyone else attaches.
 * Every attach checks the magic number and layout version and refuses a
 * segment of another layout (-EPROTO) rather than misread it. The record
 * layouts live in shm_layout.h.
 *
 * Writers:
 *   - the wake word and head sequence id: the resolver after each commit
 *     (cs_shm_publish_head), the broker when a session goes away
 *     (cs_shm_wake);
 *   - the session table: the broker only (src/broker/registry.c);
 *   - a worker's telemetry block: the worker that claimed it.
 *
 * Functions return 0 or a negative errno.
 */
#ifndef CS_SHM_H
#define CS_SHM_H

#include <stddef.h>
#include <stdint.h>

#include "shm_layout.h"

typedef struct cs_shm cs_shm_t;

typedef struct {
    uint32_t session_capacity;
    uint32_t worker_capacity;
} cs_shm_params_t;

/*
 * Broker: create path with params, or attach to an existing segment of the
 * same layout (its own capacities then apply and are reported back).
 */
int cs_shm_create_or_attach(cs_shm_t **shm, const char *path,
    cs_shm_params_t *params, char *err, size_t errlen);

/* Everyone else: attach to an existing segment (-ENOENT if none yet). */
int cs_shm_attach(cs_shm_t **shm, const char *path, char *err,
    size_t errlen);

void cs_shm_detach(cs_shm_t *shm);

cs_shm_header_t *cs_shm_header(cs_shm_t *shm);
cs_shm_session_t *cs_shm_session(cs_shm_t *shm, uint32_t slot);
cs_shm_worker_stats_t *cs_shm_worker(cs_shm_t *shm, uint32_t idx);
cs_shm_registry_stats_t *cs_shm_registry_stats(cs_shm_t *shm);

/*
 * The change word. cs_shm_publish_head() stores the new head sequence id
 * and wakes every waiter in every process; cs_shm_wake() wakes them with
 * no new head (a session went away). cs_shm_wait() sleeps until the wake
 * word differs from *seen or timeout_ms passes (-1: forever), then updates
 * *seen; it returns 0 on a wake-up, -ETIMEDOUT or -EINTR. No polling.
 */
void cs_shm_publish_head(cs_shm_t *shm, uint64_t head_seq);
void cs_shm_wake(cs_shm_t *shm);
uint64_t cs_shm_head(cs_shm_t *shm);
uint32_t cs_shm_wake_word(cs_shm_t *shm);
int cs_shm_wait(cs_shm_t *shm, uint32_t *seen, int timeout_ms);

/*
 * Lock-free session lookup by id (the 36-character UUID text), in
 * constant time with respect to the id's content. Fills *out with a
 * consistent copy of the slot (never a torn one). Returns 0, -ENOENT when
 * no live session has that id, or -ETIMEDOUT when a concurrent writer kept
 * the slot busy too long.
 */
int cs_shm_session_lookup(cs_shm_t *shm, const char *id,
    cs_shm_session_t *out, uint32_t *slot);

/*
 * The same lookup, except that cs_shm_session_lookup counts each -ENOENT
 * in the registry's rejected_lookups and cs_shm_session_find, for the
 * broker's own bookkeeping, does not.
 */
int cs_shm_session_find(cs_shm_t *shm, const char *id,
    cs_shm_session_t *out, uint32_t *slot);

/* Consistent copy of a slot for listing; -ENOENT when the slot is free. */
int cs_shm_session_read(cs_shm_t *shm, uint32_t slot, cs_shm_session_t *out);

/*
 * Writer side, for the broker's registry only (one writing thread).
 * cs_shm_session_alloc() finds a free slot on id's probe sequence and
 * raises the header's probe_limit so readers reach it (-ENOSPC: the table
 * is full). Every change to a slot goes between write_begin (seq made odd)
 * and write_end (seq made even again); the caller sets in_use and the
 * fields in between.
 */
int cs_shm_session_alloc(cs_shm_t *shm, const char *id, uint32_t *slot);
void cs_shm_session_write_begin(cs_shm_t *shm, uint32_t slot);
void cs_shm_session_write_end(cs_shm_t *shm, uint32_t slot);

/* Milliseconds of CLOCK_BOOTTIME, the clock of every time in the segment. */
int64_t cs_shm_now_ms(void);

/*
 * Claim a telemetry block for this process (reusing one whose owner died);
 * the block index is returned in *idx. -ENOSPC when all are taken.
 */
int cs_shm_worker_claim(cs_shm_t *shm, uint32_t *idx);
void cs_shm_worker_release(cs_shm_t *shm, uint32_t idx);

#endif /* CS_SHM_H */
