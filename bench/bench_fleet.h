/*
 * The subscriber fleet: N subscribers, each on its own channel and so its
 * own TCP (and TLS) connection, as N agent processes would be, all driven
 * by one completion-queue thread.
 *
 *   configstream  each subscriber registers with the Remote Agent Registry
 *                 and opens StreamConfigEvents with its session id; the
 *                 first event is the snapshot, then updates;
 *   etcd          each subscriber reads the watched prefix with one Range
 *                 (its snapshot) and opens a Watch from the next revision.
 *
 * For every sequence id inside the recording window the fleet keeps how
 * many subscribers have it and when the last of them got it (a resync
 * snapshot counts for every id it covers). Receive times are taken when
 * the completion is dequeued, before any decoding.
 *
 * Functions return 0 or a negative errno and fill err on failure.
 */
#ifndef BENCH_FLEET_H
#define BENCH_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

typedef enum {
    BENCH_TARGET_CONFIGSTREAM = 0,
    BENCH_TARGET_ETCD
} bench_target_t;

typedef struct {
    bench_target_t target;
    const char *address;                /* host:port */
    grpc_channel_credentials *creds;    /* borrowed */
    const char *token;                  /* configstream bearer token */
    const char *prefix;                 /* etcd: the prefix watched */
    int subscribers;
} bench_fleet_opts_t;

typedef struct {
    uint64_t events;        /* snapshots and updates received */
    uint64_t resyncs;       /* snapshots after the first */
    uint64_t gaps;          /* an update not one above the previous id */
    int closed;             /* streams the server ended */
    int settings;           /* settings in the first snapshot */
} bench_fleet_stats_t;

typedef struct bench_fleet bench_fleet_t;

/* Create the channels and start the completion-queue thread. */
int bench_fleet_create(bench_fleet_t **f, const bench_fleet_opts_t *o,
    char *err, size_t errlen);

/*
 * Connect every subscriber: register it (configstream) or make one small
 * read (etcd), so that connection and TLS set-up are done before anything
 * is timed.
 */
int bench_fleet_connect(bench_fleet_t *f, char *err, size_t errlen);

/*
 * Each subscriber's time for the smallest unary call on its connected
 * channel (a health check, or an etcd Range of a missing key), measured by
 * bench_fleet_connect(): the transport's floor under an open.
 */
void bench_fleet_floor_ms(bench_fleet_t *f, double *ms);

/*
 * Open the streams one at a time, each after the previous one has its
 * snapshot; open_ms[i] gets subscriber i's open-to-snapshot time.
 */
int bench_fleet_open(bench_fleet_t *f, double *open_ms, int timeout_ms,
    char *err, size_t errlen);

/* The newest id any subscriber has seen. */
int64_t bench_fleet_head(bench_fleet_t *f);

/*
 * Subscriber idx stops reading: it never asks for another message. Ids
 * are then expected from the others only.
 */
void bench_fleet_stall(bench_fleet_t *f, int idx);

/* Record ids first .. first + count - 1 from now on (resets counts). */
int bench_fleet_window(bench_fleet_t *f, int64_t first, size_t count);

/*
 * Wait until every reading subscriber has id seq; -ETIMEDOUT after
 * timeout_ms.
 */
int bench_fleet_wait(bench_fleet_t *f, int64_t seq, int timeout_ms);

/*
 * When the last reading subscriber got seq (bench_now_ns() time), or 0
 * when some have not; *have gets how many have it.
 */
int64_t bench_fleet_last(bench_fleet_t *f, int64_t seq, uint32_t *have);

void bench_fleet_stats(bench_fleet_t *f, bench_fleet_stats_t *st);

/* Cancel every stream, stop the thread, free everything. */
void bench_fleet_destroy(bench_fleet_t *f);

#endif /* BENCH_FLEET_H */
