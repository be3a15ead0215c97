/*
 * Record layouts of the shared-memory segment. Every process that maps the
 * segment compiles against this header; any change to a layout here must
 * bump CS_SHM_LAYOUT_VERSION.
 *
 *   [cs_shm_header_t]
 *   [cs_shm_registry_stats_t]
 *   [cs_shm_worker_stats_t  x worker_capacity]
 *   [cs_shm_session_t       x session_capacity]
 *
 * Times are milliseconds of CLOCK_BOOTTIME, which every process shares and
 * which keeps counting across process restarts.
 */
#ifndef CS_SHM_LAYOUT_H
#define CS_SHM_LAYOUT_H

#include <stdatomic.h>
#include <stdint.h>

#define CS_SHM_MAGIC           0x314d48534d524343ULL  /* "CCRMSHM1" */
#define CS_SHM_LAYOUT_VERSION  1U

#define CS_SESSION_ID_LEN      36      /* UUID text, without the NUL */
#define CS_SESSION_NAME_MAX    128
#define CS_SESSION_FLAVOR_MAX  64
#define CS_SESSION_URI_MAX     256
#define CS_SESSION_PID_MAX     32

typedef struct {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t header_size;
    uint64_t total_size;
    uint32_t session_capacity;
    uint32_t worker_capacity;
    int64_t created_ms;

    /* The change word: bumped, then futex-woken, on every change. */
    _Atomic uint32_t wake_word;
    uint32_t pad0;
    _Atomic uint64_t head_seq;      /* published by the resolver */
    _Atomic int32_t broker_pid;
    _Atomic int32_t resolver_pid;
    _Atomic uint32_t registry_enabled;
    /*
     * Longest distance, in slots, of any session from its home slot (the
     * hash of its id). Readers probe that many slots past the home slot;
     * the broker only ever raises it.
     */
    _Atomic uint32_t probe_limit;
} cs_shm_header_t;

typedef struct {
    _Atomic uint64_t registered;    /* gauge: live sessions */
    _Atomic uint64_t registrations;
    _Atomic uint64_t refreshes;
    _Atomic uint64_t expirations;
    _Atomic uint64_t revocations;
    _Atomic uint64_t rejected_lookups;
} cs_shm_registry_stats_t;

typedef struct {
    _Atomic int32_t owner_pid;      /* 0: free */
    uint32_t pad;
    _Atomic uint64_t subscribers;   /* gauge */
    _Atomic uint64_t snapshots_sent;
    _Atomic uint64_t updates_sent;
    _Atomic uint64_t discontinuities;
    _Atomic uint64_t dropped_updates;
} cs_shm_worker_stats_t;

/*
 * One session slot, guarded by a sequence lock: the broker makes seq odd,
 * writes, then makes it even again; a reader copies the slot between two
 * reads of an equal, even seq. in_use is 0 for a free slot. open_streams
 * is the number of config streams the frontends last reported for it.
 */
typedef struct {
    _Atomic uint32_t seq;
    uint32_t in_use;
    char id[CS_SESSION_ID_LEN + 1];
    char pid[CS_SESSION_PID_MAX];
    char flavor[CS_SESSION_FLAVOR_MAX];
    char display_name[CS_SESSION_NAME_MAX];
    char api_endpoint_uri[CS_SESSION_URI_MAX];
    int64_t registered_ms;
    int64_t last_seen_ms;
    uint32_t open_streams;
    uint32_t pad;
} cs_shm_session_t;

#endif /* CS_SHM_LAYOUT_H */
