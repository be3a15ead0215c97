/*
 * The Remote Agent Registry on the session table of the shared segment.
 *
 * The table itself is the only durable state: a restarted broker picks it
 * up as it is. What lives in this heap are the frontends' latest reports
 * of open streams, which they resend every few seconds anyway; until they
 * have had time to do so after a restart, the open-stream counts found in
 * the table are left alone, so a stream kept open across a broker restart
 * does not see its session expire.
 */
#include "registry.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "shm_layout.h"
#include "value.h"

/* A report older than this no longer counts (frontends send every ~2 s). */
#define REGISTRY_REPORT_STALE_MS    10000
#define REGISTRY_FRONTENDS_MAX      256

/* slot: where the session was when reported; UINT32_MAX if nowhere. */
typedef struct {
    char id[CS_SESSION_ID_LEN + 1];
    uint32_t count;
    uint32_t slot;
} registry_stream_t;

typedef struct {
    pid_t pid;                      /* 0: unused */
    int64_t at_ms;
    registry_stream_t *streams;
    size_t n;
} registry_report_t;

struct cs_registry {
    cs_shm_t *shm;
    cs_registry_params_t params;
    int64_t started_ms;
    uint32_t capacity;
    uint32_t *sums;                 /* scratch: open streams per slot */
    registry_report_t reports[REGISTRY_FRONTENDS_MAX];
};

static int64_t
registry_default_clock(void *arg)
{
    return cs_shm_now_ms();
}

int64_t
cs_registry_now(cs_registry_t *reg)
{
    return reg->params.clock(reg->params.clock_arg);
}

int
cs_registry_rpc_code(int rc)
{
    switch (rc) {
    case 0:
        return CS_RPC_OK;
    case -ENOTSUP:
        return CS_RPC_UNIMPLEMENTED;
    case -EINVAL:
        return CS_RPC_INVALID_ARGUMENT;
    case -ENOSPC:
        return CS_RPC_RESOURCE_EXHAUSTED;
    case -ENOENT:
        return CS_RPC_NOT_FOUND;
    case -ETIMEDOUT:
        return CS_RPC_UNAVAILABLE;
    default:
        return CS_RPC_INTERNAL;
    }
}

static void
registry_count_sessions(cs_registry_t *reg)
{
    uint64_t live = 0;
    uint32_t i;

    for (i = 0; i < reg->capacity; i++) {
        live += cs_shm_session(reg->shm, i)->in_use != 0;
    }

    atomic_store(&cs_shm_registry_stats(reg->shm)->registered, live);
}

int
cs_registry_new(cs_registry_t **out, cs_shm_t *shm,
    const cs_registry_params_t *params)
{
    cs_registry_t *reg;

    reg = calloc(1, sizeof(*reg));
    if (reg == NULL) {
        return -ENOMEM;
    }

    reg->shm = shm;
    reg->params = *params;
    if (reg->params.clock == NULL) {
        reg->params.clock = registry_default_clock;
    }
    reg->capacity = cs_shm_header(shm)->session_capacity;
    reg->sums = calloc(reg->capacity, sizeof(*reg->sums));
    if (reg->sums == NULL) {
        free(reg);
        return -ENOMEM;
    }
    reg->started_ms = cs_registry_now(reg);

    registry_count_sessions(reg);
    atomic_store(&cs_shm_header(shm)->registry_enabled,
        params->enabled ? 1 : 0);
    *out = reg;

    return 0;
}

void
cs_registry_free(cs_registry_t *reg)
{
    size_t i;

    if (reg == NULL) {
        return;
    }

    for (i = 0; i < REGISTRY_FRONTENDS_MAX; i++) {
        free(reg->reports[i].streams);
    }
    free(reg->sums);
    free(reg);
}

static int
registry_mint_id(char id[CS_SESSION_ID_LEN + 1])
{
    uint8_t b[16];
    size_t got = 0;
    ssize_t n;

    while (got < sizeof(b)) {
        n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        got += (size_t) n;
    }

    b[6] = (uint8_t) ((b[6] & 0x0f) | 0x40);   /* version 4 */
    b[8] = (uint8_t) ((b[8] & 0x3f) | 0x80);   /* RFC 4122 variant */

    snprintf(id, CS_SESSION_ID_LEN + 1,
        "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
        "%02x%02x%02x%02x%02x%02x",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
        b[10], b[11], b[12], b[13], b[14], b[15]);

    return 0;
}

static int
registry_blank(const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') {
            return 0;
        }
    }

    return 1;
}

/*
 * A field fits its slot, is UTF-8 (it goes back out in proto3 strings,
 * which protobuf-go refuses otherwise) and holds no control characters.
 */
static int
registry_check_field(const char *name, const char *value, size_t max,
    char *msg, size_t msglen)
{
    const unsigned char *p;

    if (strlen(value) >= max) {
        snprintf(msg, msglen, "%s is longer than %zu bytes", name, max - 1);
        return -EINVAL;
    }

    if (!cs_utf8_valid(value, strlen(value))) {
        snprintf(msg, msglen, "%s is not valid UTF-8", name);
        return -EINVAL;
    }

    for (p = (const unsigned char *) value; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            snprintf(msg, msglen, "%s contains control characters", name);
            return -EINVAL;
        }
    }

    return 0;
}

static int
registry_check_uri(const char *uri, char *msg, size_t msglen)
{
    static const char *const schemes[] = { "unix", "https", "vsock" };
    const char *colon;
    size_t len, i;

    colon = strchr(uri, ':');
    if (uri[0] == '\0' || colon == NULL) {
        snprintf(msg, msglen, "api_endpoint_uri has no scheme: it must be "
            "unix, https or vsock");
        return -EINVAL;
    }

    len = (size_t) (colon - uri);
    for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        /* Schemes are case-insensitive (RFC 3986, 3.1). */
        if (strlen(schemes[i]) == len
            && strncasecmp(uri, schemes[i], len) == 0)
        {
            return 0;
        }
    }

    snprintf(msg, msglen, "api_endpoint_uri scheme '%.*s' is not "
        "supported: it must be unix, https or vsock",
        (int) (len > 32 ? 32 : len), uri);
    return -EINVAL;
}

static int
registry_check_agent(const cs_broker_agent_t *a, char *msg, size_t msglen)
{
    int rc;

    if (registry_blank(a->display_name)) {
        snprintf(msg, msglen, "display_name cannot be empty");
        return -EINVAL;
    }

    rc = registry_check_field("display_name", a->display_name,
        CS_SESSION_NAME_MAX, msg, msglen);
    if (rc == 0) {
        rc = registry_check_field("flavor", a->flavor ? a->flavor : "",
            CS_SESSION_FLAVOR_MAX, msg, msglen);
    }
    if (rc == 0) {
        rc = registry_check_field("pid", a->pid ? a->pid : "",
            CS_SESSION_PID_MAX, msg, msglen);
    }
    if (rc == 0) {
        rc = registry_check_field("api_endpoint_uri",
            a->api_endpoint_uri ? a->api_endpoint_uri : "",
            CS_SESSION_URI_MAX, msg, msglen);
    }
    if (rc == 0) {
        rc = registry_check_uri(a->api_endpoint_uri ? a->api_endpoint_uri
            : "", msg, msglen);
    }

    return rc;
}

static void
registry_copy(char *dst, const char *src, size_t size)
{
    memset(dst, 0, size);
    if (src != NULL) {
        strncpy(dst, src, size - 1);
    }
}

int
cs_registry_register(cs_registry_t *reg, const cs_broker_agent_t *agent,
    char id[CS_SESSION_ID_LEN + 1], uint32_t *refresh_secs, char *msg,
    size_t msglen)
{
    cs_shm_session_t *s, existing;
    uint32_t slot;
    int64_t now;
    int rc;

    if (!reg->params.enabled) {
        snprintf(msg, msglen, "remote agent registry not enabled");
        return -ENOTSUP;
    }

    rc = registry_check_agent(agent, msg, msglen);
    if (rc < 0) {
        return rc;
    }

    /* A collision of 122 random bits will not happen; a repeat is cheap
     * insurance that it cannot alias another agent's session. */
    do {
        rc = registry_mint_id(id);
        if (rc < 0) {
            snprintf(msg, msglen, "getrandom: %s", strerror(-rc));
            return rc;
        }
        rc = cs_shm_session_find(reg->shm, id, &existing, NULL);
    } while (rc == 0);

    rc = cs_shm_session_alloc(reg->shm, id, &slot);
    if (rc < 0) {
        snprintf(msg, msglen, "remote agent registry is full (%u sessions)",
            reg->capacity);
        return -ENOSPC;
    }

    now = cs_registry_now(reg);
    s = cs_shm_session(reg->shm, slot);

    cs_shm_session_write_begin(reg->shm, slot);
    memcpy(s->id, id, CS_SESSION_ID_LEN + 1);
    registry_copy(s->pid, agent->pid, sizeof(s->pid));
    registry_copy(s->flavor, agent->flavor, sizeof(s->flavor));
    registry_copy(s->display_name, agent->display_name,
        sizeof(s->display_name));
    registry_copy(s->api_endpoint_uri, agent->api_endpoint_uri,
        sizeof(s->api_endpoint_uri));
    s->registered_ms = now;
    s->last_seen_ms = now;
    s->open_streams = 0;
    s->in_use = 1;
    cs_shm_session_write_end(reg->shm, slot);

    atomic_fetch_add(&cs_shm_registry_stats(reg->shm)->registered, 1);
    atomic_fetch_add(&cs_shm_registry_stats(reg->shm)->registrations, 1);
    *refresh_secs = (uint32_t) ((reg->params.refresh_interval_ms + 999)
        / 1000);

    return 0;
}

int
cs_registry_refresh(cs_registry_t *reg, const char *id)
{
    cs_shm_session_t copy;
    uint32_t slot;
    int rc;

    if (!reg->params.enabled) {
        return -ENOTSUP;
    }

    rc = cs_shm_session_find(reg->shm, id, &copy, &slot);
    if (rc < 0) {
        return rc;
    }

    cs_shm_session_write_begin(reg->shm, slot);
    cs_shm_session(reg->shm, slot)->last_seen_ms = cs_registry_now(reg);
    cs_shm_session_write_end(reg->shm, slot);

    atomic_fetch_add(&cs_shm_registry_stats(reg->shm)->refreshes, 1);

    return 0;
}

static void
registry_remove(cs_registry_t *reg, uint32_t slot)
{
    cs_shm_session_t *s = cs_shm_session(reg->shm, slot);

    cs_shm_session_write_begin(reg->shm, slot);
    s->in_use = 0;
    memset(s->id, 0, sizeof(*s) - offsetof(cs_shm_session_t, id));
    cs_shm_session_write_end(reg->shm, slot);

    atomic_fetch_sub(&cs_shm_registry_stats(reg->shm)->registered, 1);
}

/* Find the one slot whose id starts with prefix (the broker reads its own
 * table directly: it is the only writer). */
static int
registry_find_prefix(cs_registry_t *reg, const char *prefix, uint32_t *slot,
    char *msg, size_t msglen)
{
    size_t len = strlen(prefix);
    uint32_t i, found = 0;

    if (len < CS_BROKER_PREFIX_LEN || len > CS_SESSION_ID_LEN) {
        snprintf(msg, msglen, "a session id or a prefix of at least %d "
            "characters is needed", CS_BROKER_PREFIX_LEN);
        return -EINVAL;
    }

    for (i = 0; i < reg->capacity; i++) {
        cs_shm_session_t *s = cs_shm_session(reg->shm, i);

        if (s->in_use && strncmp(s->id, prefix, len) == 0) {
            *slot = i;
            found++;
        }
    }

    if (found > 1) {
        snprintf(msg, msglen, "session id prefix matches %u sessions",
            found);
        return -EINVAL;
    }
    if (found == 0) {
        snprintf(msg, msglen, "no remote agent found with session ID");
        return -ENOENT;
    }

    return 0;
}

int
cs_registry_revoke(cs_registry_t *reg, const char *id, char *msg,
    size_t msglen)
{
    cs_shm_session_t copy;
    uint32_t slot;
    int rc;

    if (strlen(id) == CS_SESSION_ID_LEN) {
        rc = cs_shm_session_find(reg->shm, id, &copy, &slot);
        if (rc == -ENOENT) {
            snprintf(msg, msglen, "no remote agent found with session ID");
        }
    } else {
        rc = registry_find_prefix(reg, id, &slot, msg, msglen);
    }
    if (rc < 0) {
        return rc;
    }

    registry_remove(reg, slot);
    atomic_fetch_add(&cs_shm_registry_stats(reg->shm)->revocations, 1);
    cs_shm_wake(reg->shm);

    return 0;
}

/* The report slot of frontend pid: its own, a free one, or a stale one. */
static registry_report_t *
registry_report_slot(cs_registry_t *reg, pid_t pid, int64_t now)
{
    registry_report_t *spare = NULL, *r;
    size_t i;

    for (i = 0; i < REGISTRY_FRONTENDS_MAX; i++) {
        r = &reg->reports[i];
        if (r->pid == pid) {
            return r;
        }
        if (spare == NULL && (r->pid == 0
                || now - r->at_ms > REGISTRY_REPORT_STALE_MS))
        {
            spare = r;
        }
    }

    return spare;
}

/*
 * Rewrite each session's open_streams as the sum of the fresh reports.
 * Right after a restart no report has come in yet, so counts left by the
 * previous broker are kept until the reports had time to arrive.
 */
static void
registry_recount(cs_registry_t *reg, int64_t now)
{
    int in_grace = now - reg->started_ms < REGISTRY_REPORT_STALE_MS;
    cs_shm_session_t *s;
    registry_report_t *r;
    uint32_t slot, i;
    size_t j;

    memset(reg->sums, 0, reg->capacity * sizeof(*reg->sums));

    for (i = 0; i < REGISTRY_FRONTENDS_MAX; i++) {
        r = &reg->reports[i];
        if (r->pid == 0 || now - r->at_ms > REGISTRY_REPORT_STALE_MS) {
            continue;
        }
        /*
         * The slot found when the report came in still holds the session
         * unless it was removed since (a new one there has another id).
         * The broker is the segment's only writer: plain reads suffice.
         */
        for (j = 0; j < r->n; j++) {
            slot = r->streams[j].slot;
            if (slot == UINT32_MAX) {
                continue;
            }
            s = cs_shm_session(reg->shm, slot);
            if (s->in_use
                && memcmp(s->id, r->streams[j].id, CS_SESSION_ID_LEN) == 0)
            {
                reg->sums[slot] += r->streams[j].count;
            }
        }
    }

    for (i = 0; i < reg->capacity; i++) {
        s = cs_shm_session(reg->shm, i);
        if (!s->in_use || s->open_streams == reg->sums[i]) {
            continue;
        }
        if (in_grace && reg->sums[i] == 0) {
            continue;
        }
        cs_shm_session_write_begin(reg->shm, i);
        s->open_streams = reg->sums[i];
        cs_shm_session_write_end(reg->shm, i);
    }
}

int
cs_registry_keepalive(cs_registry_t *reg, pid_t frontend,
    const cs_broker_stream_count_t *streams, size_t n)
{
    registry_stream_t *list = NULL;
    cs_shm_session_t copy;
    registry_report_t *r;
    uint32_t slot;
    int64_t now;
    size_t i;

    now = cs_registry_now(reg);

    r = registry_report_slot(reg, frontend, now);
    if (r == NULL) {
        return -ENOSPC;
    }

    if (n > 0) {
        list = calloc(n, sizeof(*list));
        if (list == NULL) {
            return -ENOMEM;
        }
    }

    for (i = 0; i < n; i++) {
        registry_copy(list[i].id, streams[i].session_id, sizeof(list[i].id));
        list[i].count = streams[i].open_streams;
        list[i].slot = UINT32_MAX;

        if (streams[i].open_streams == 0
            || cs_shm_session_find(reg->shm, list[i].id, &copy, &slot)
               < 0)
        {
            continue;
        }
        list[i].slot = slot;
        cs_shm_session_write_begin(reg->shm, slot);
        cs_shm_session(reg->shm, slot)->last_seen_ms = now;
        cs_shm_session_write_end(reg->shm, slot);
    }

    free(r->streams);
    r->pid = frontend;
    r->at_ms = now;
    r->streams = list;
    r->n = n;

    registry_recount(reg, now);

    return 0;
}

int
cs_registry_sweep(cs_registry_t *reg, int64_t *next_ms)
{
    int64_t now, due, next = INT64_MAX;
    int64_t timeout = reg->params.idle_timeout_ms;
    cs_shm_session_t *s;
    int expired = 0;
    uint32_t i;

    now = cs_registry_now(reg);
    registry_recount(reg, now);

    for (i = 0; i < reg->capacity; i++) {
        s = cs_shm_session(reg->shm, i);
        if (!s->in_use || s->open_streams > 0) {
            continue;
        }

        due = s->last_seen_ms + timeout;
        if (now > due) {
            registry_remove(reg, i);
            expired++;
        } else if (due + 1 < next) {
            next = due + 1;
        }
    }

    /* Counts kept through a restart get settled when the grace ends. */
    if (now - reg->started_ms < REGISTRY_REPORT_STALE_MS
        && reg->started_ms + REGISTRY_REPORT_STALE_MS < next)
    {
        next = reg->started_ms + REGISTRY_REPORT_STALE_MS;
    }

    if (expired > 0) {
        atomic_fetch_add(&cs_shm_registry_stats(reg->shm)->expirations,
            (uint64_t) expired);
        cs_shm_wake(reg->shm);
    }
    *next_ms = next;

    return expired;
}
