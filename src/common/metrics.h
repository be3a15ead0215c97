/*
 * Telemetry: the shared-memory counters as Prometheus text (exposition
 * format 0.0.4), served over HTTP at /metrics by libmicrohttpd.
 *
 * One process of the group serves the endpoint: configstreamd when it
 * supervises the group, otherwise the broker when started with
 * --telemetry (deploy/ does so). Both read the same segment, so the
 * numbers are the same whoever serves them.
 *
 * Names (DESIGN.md): configstream_subscribers (gauge, live workers only),
 * configstream_snapshots_sent, configstream_updates_sent,
 * configstream_discontinuities, configstream_dropped_updates (monotonic,
 * summed over every worker block), configstream_rar_registered_sessions
 * (gauge), configstream_rar_{registrations,refreshes,expirations,
 * revocations,rejected_lookups} (monotonic) and
 * configstream_head_sequence_id (gauge). The monotonic series keep the
 * design's names without a "_total" suffix, so they are declared untyped:
 * promtool rejects a counter whose name lacks "_total".
 */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "shm.h"

typedef struct {
    uint64_t subscribers;
    uint64_t snapshots_sent;
    uint64_t updates_sent;
    uint64_t discontinuities;
    uint64_t dropped_updates;

    uint64_t rar_registered_sessions;
    uint64_t rar_registrations;
    uint64_t rar_refreshes;
    uint64_t rar_expirations;
    uint64_t rar_revocations;
    uint64_t rar_rejected_lookups;

    uint64_t head_sequence_id;
} cs_metrics_t;

/* Read and sum the segment's counters (relaxed atomic loads). */
void cs_metrics_collect(cs_shm_t *shm, cs_metrics_t *m);

/*
 * Render m as Prometheus text into a malloc'ed NUL-terminated string;
 * *len gets its length. Returns 0 or -ENOMEM.
 */
int cs_metrics_render(const cs_metrics_t *m, char **text, size_t *len);

/*
 * Serve GET /metrics on addr ("host:port", "[v6]:port"; the host must be
 * a loopback address) from the segment shm, on libmicrohttpd's own thread.
 * Other paths answer 404, other methods 405. One endpoint per process:
 * -EALREADY when one is running. -EINVAL for a bad or non-loopback
 * address, or the errno of the failed bind. Fills err on failure.
 */
int cs_metrics_http_start(cs_shm_t *shm, const char *addr, char *err,
    size_t errlen);

/* The port the endpoint listens on (useful with port 0), or 0. */
int cs_metrics_http_port(void);

/* Stop the endpoint (no-op when none runs); shm is no longer read. */
void cs_metrics_http_stop(void);

#endif /* CS_METRICS_H */
