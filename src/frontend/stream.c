/*
 * Config stream subscribers and the notifier thread that feeds them.
 *
 * Delivery invariant: a subscriber's stream is a snapshot at head H, then
 * updates H+1, H+2, ... with no gap. next_seq is the first id not yet
 * queued. Whenever that cannot hold (its queue overflowed, its position
 * fell off the retained changelog, the wire id would wrap) the queue is
 * dropped and resync set: the next send is a fresh snapshot, which moves
 * next_seq to the new head + 1.
 *
 * Memory per subscriber is bounded by its queue (queue_size references on
 * shared buffers) plus the one message in flight; gRPC's flow control
 * bounds what the transport holds for a reader that stopped reading.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>

#include "auth.h"
#include "frontend.h"
#include "log.h"

#define FE_WAIT_MS          250     /* to notice a stop request */
#define FE_KEEPALIVE_MS     2000    /* at most; see fe_notifier_main */
#define FE_SESSION_SWEEP_MS 10000   /* session checks with no removal seen */
#define FE_ATTACH_RETRY_MS  200

typedef struct {
    fe_entry_t *entries;
    uint32_t n, cap;
} fe_batch_t;

static int64_t
fe_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
fe_free_sized(void *p, size_t len)
{
    free(p);
}

static void
fe_stream_clear(fe_call_t *c)
{
    uint32_t cap = c->srv->cfg.queue_size;

    while (c->qlen > 0) {
        grpc_slice_unref(c->queue[c->qhead].bytes);
        c->qhead = (c->qhead + 1) % cap;
        c->qlen--;
    }
    c->qhead = 0;
}

/* Send one message; the byte buffer takes its own reference on bytes. */
static void
fe_stream_send(fe_call_t *c, grpc_slice bytes)
{
    grpc_op ops[2];
    grpc_call_error err;
    size_t n = 0;

    c->send_bb = grpc_raw_byte_buffer_create(&bytes, 1);

    memset(ops, 0, sizeof(ops));
    if (!c->md_sent) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = c->send_bb;
    n++;

    c->pending++;
    err = grpc_call_start_batch(c->call, ops, n, &c->tags[FE_OP_SEND], NULL);
    if (err != GRPC_CALL_OK) {
        c->pending--;
        grpc_byte_buffer_destroy(c->send_bb);
        c->send_bb = NULL;
        cs_log_error(FE_SUBSYS, "grpc_call_start_batch: error %d", err);
        fe_call_end(c, GRPC_STATUS_INTERNAL, "cannot send");
        return;
    }

    c->md_sent = 1;
    c->sending = 1;
}

/*
 * The snapshot at the store's current head, as a reference for the caller
 * to drop. Every subscriber joining or resyncing at the same head shares
 * one encoded snapshot: a fleet reconnecting, or a burst that resyncs many
 * slow readers at once, costs one build and one buffer, not one each. The
 * cache is keyed by the store's epoch and origin too: a store created anew
 * can carry the same head, and a resolver restarted on another file
 * changes the origin without a new head. Called with srv->lock held.
 */
static int
fe_snapshot_get(fe_server_t *srv, uint64_t *head, grpc_slice *bytes)
{
    cs_store_meta_t meta;
    uint8_t *buf;
    size_t len;
    int rc;

    rc = cs_store_meta_get(srv->store, &meta);
    if (rc < 0) {
        return rc;
    }

    if (srv->snap_valid && srv->snap_head == meta.head_seq
        && memcmp(srv->snap_epoch, meta.epoch, sizeof(meta.epoch)) == 0
        && strcmp(srv->snap_origin, meta.origin) == 0)
    {
        *head = srv->snap_head;
        *bytes = grpc_slice_ref(srv->snap_bytes);
        return 0;
    }

    rc = cs_store_snapshot_encode(srv->store, head, &buf, &len);
    if (rc < 0) {
        return rc;
    }
    *bytes = grpc_slice_new_with_len(buf, len, fe_free_sized);

    /*
     * Keep it only if it is the head the epoch and origin were read with
     * (an origin changed in between costs one more build, never a stale
     * snapshot: the next lookup misses).
     */
    if (*head == meta.head_seq) {
        if (srv->snap_valid) {
            grpc_slice_unref(srv->snap_bytes);
        }
        srv->snap_bytes = grpc_slice_ref(*bytes);
        srv->snap_head = *head;
        memcpy(srv->snap_epoch, meta.epoch, sizeof(meta.epoch));
        snprintf(srv->snap_origin, sizeof(srv->snap_origin), "%s",
            meta.origin);
        srv->snap_valid = 1;
    }

    return 0;
}

void
fe_stream_fini(fe_server_t *srv)
{
    if (srv->snap_valid) {
        grpc_slice_unref(srv->snap_bytes);
        srv->snap_valid = 0;
    }
}

static void
fe_stream_snapshot(fe_call_t *c)
{
    fe_server_t *srv = c->srv;
    grpc_slice bytes;
    uint64_t head;
    int rc;

    rc = fe_snapshot_get(srv, &head, &bytes);
    if (rc < 0) {
        cs_log_error(FE_SUBSYS, "Failed to create config snapshot: %s",
            strerror(-rc));
        fe_call_end(c, GRPC_STATUS_UNAVAILABLE,
            "Failed to create config snapshot");
        return;
    }

    if (c->joined) {
        cs_log_warn(FE_SUBSYS, "Discontinuity detected for subscriber '%s'",
            c->name);
        atomic_fetch_add(&srv->stats->discontinuities, 1);
    }

    fe_stream_clear(c);
    c->next_seq = head + 1;
    c->resync = 0;
    c->joined = 1;

    /*
     * A change published after the snapshot was read but before this
     * subscriber counted as joined may already be behind the notifier:
     * have it look again rather than leave the change for the next one.
     */
    if (cs_shm_head(srv->shm) > head) {
        atomic_store(&srv->rescan, 1);
        cs_shm_wake(srv->shm);
    }
    atomic_fetch_add(&srv->stats->snapshots_sent, 1);
    fe_stream_send(c, bytes);
    grpc_slice_unref(bytes);
}

/* Start the next send, if none is in flight: a snapshot or an update. */
static void
fe_stream_pump(fe_call_t *c)
{
    uint32_t cap = c->srv->cfg.queue_size;
    grpc_slice bytes;

    if (!c->subscribed || c->sending || c->ended || c->closed) {
        return;
    }

    if (c->resync) {
        fe_stream_snapshot(c);
        return;
    }

    if (c->qlen == 0) {
        return;
    }

    bytes = c->queue[c->qhead].bytes;
    c->qhead = (c->qhead + 1) % cap;
    c->qlen--;
    atomic_fetch_add(&c->srv->stats->updates_sent, 1);
    fe_stream_send(c, bytes);
    grpc_slice_unref(bytes);
}

void
fe_stream_join(fe_call_t *c)
{
    fe_server_t *srv = c->srv;

    c->queue = calloc(srv->cfg.queue_size, sizeof(*c->queue));
    if (c->queue == NULL) {
        fe_call_end(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }

    c->subscribed = 1;
    c->resync = 1;
    c->next = srv->subs;
    if (srv->subs != NULL) {
        srv->subs->prev = c;
    }
    srv->subs = c;
    srv->nsubs++;
    atomic_fetch_add(&srv->stats->subscribers, 1);

    atomic_store(&srv->keepalive_due, 1);
    atomic_store(&srv->sessions_due, 1);

    cs_log_info(FE_SUBSYS, "New subscriber '%s' joining the config stream",
        c->name);
    cs_log_info(FE_SUBSYS, "Config stream authorized for remote agent "
        "(session %.8s)", c->session_id);

    fe_stream_pump(c);
}

void
fe_stream_leave(fe_call_t *c)
{
    fe_server_t *srv = c->srv;

    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        srv->subs = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }

    c->subscribed = 0;
    srv->nsubs--;
    atomic_fetch_sub(&srv->stats->subscribers, 1);
    fe_stream_clear(c);
    cs_log_info(FE_SUBSYS, "subscriber '%s' left the config stream",
        c->name);
}

void
fe_stream_send_done(fe_call_t *c, int ok)
{
    c->sending = 0;
    if (c->send_bb != NULL) {
        grpc_byte_buffer_destroy(c->send_bb);
        c->send_bb = NULL;
    }

    /* A failed send means the call is broken; its close event follows. */
    if (ok) {
        fe_stream_pump(c);
    }
}

void
fe_stream_end_all(fe_server_t *srv, grpc_status_code code, const char *msg)
{
    fe_call_t *c;

    pthread_mutex_lock(&srv->lock);
    for (c = srv->subs; c != NULL; c = c->next) {
        fe_call_end(c, code, msg);
    }
    pthread_mutex_unlock(&srv->lock);
}

/* Drop what is queued and resync: the subscriber is too slow or behind. */
static void
fe_stream_drop(fe_call_t *c, uint32_t extra)
{
    cs_log_info(FE_SUBSYS, "Dropping config update for subscriber '%s'",
        c->name);
    atomic_fetch_add(&c->srv->stats->dropped_updates, c->qlen + extra);
    fe_stream_clear(c);
    c->resync = 1;
}

static int
fe_wire_wraps(uint64_t seq)
{
    return (int64_t) cs_seq_wire(seq) != (int64_t) cs_seq_wire(seq - 1) + 1;
}

/* Queue the entries c has not seen yet. The caller holds srv->lock. */
static void
fe_stream_offer(fe_call_t *c, const fe_batch_t *b)
{
    uint32_t cap = c->srv->cfg.queue_size;
    uint32_t i;

    if (!c->subscribed || !c->joined || c->resync || c->ended) {
        return;
    }

    for (i = 0; i < b->n; i++) {
        const fe_entry_t *e = &b->entries[i];

        if (e->seq < c->next_seq) {
            continue;
        }

        if (e->seq > c->next_seq || c->qlen == cap) {
            fe_stream_drop(c, b->n - i);
            break;
        }

        if (fe_wire_wraps(e->seq)) {
            fe_stream_clear(c);
            c->resync = 1;
            break;
        }

        c->queue[(c->qhead + c->qlen) % cap].seq = e->seq;
        c->queue[(c->qhead + c->qlen) % cap].bytes = grpc_slice_ref(e->bytes);
        c->qlen++;
        c->next_seq++;
    }

    fe_stream_pump(c);
}

static int
fe_batch_add(uint64_t seq, const uint8_t *bytes, size_t len, void *arg)
{
    fe_batch_t *b = arg;

    if (b->n == b->cap) {
        return 1;
    }

    b->entries[b->n].seq = seq;
    b->entries[b->n].bytes = grpc_slice_from_copied_buffer(
        (const char *) bytes, len);
    b->n++;
    return 0;
}

/* The first update id any subscriber waits for; UINT64_MAX if none. */
static uint64_t
fe_subs_min_seq(fe_server_t *srv)
{
    uint64_t from = UINT64_MAX;
    fe_call_t *c;

    for (c = srv->subs; c != NULL; c = c->next) {
        if (c->joined && !c->resync && !c->ended && c->next_seq < from) {
            from = c->next_seq;
        }
    }

    return from;
}

/*
 * Read the changelog once for everyone and hand each subscriber its part.
 * At most queue_size entries are read: a subscriber further behind than
 * that would overflow its queue anyway and is resynced. Returns 0 once
 * every entry up to head was offered, -1 to have it tried again.
 */
static int
fe_notify_updates(fe_server_t *srv, uint64_t head)
{
    cs_store_meta_t meta;
    fe_batch_t b;
    uint64_t from;
    fe_call_t *c;
    uint32_t i;
    int rc;

    pthread_mutex_lock(&srv->lock);
    from = fe_subs_min_seq(srv);
    pthread_mutex_unlock(&srv->lock);

    if (from == UINT64_MAX || from > head) {
        return 0;
    }

    /* KNOWN-ISSUE(large-commit-resync) */
    b.cap = srv->cfg.queue_size;
    b.n = 0;
    if (head - from + 1 > b.cap) {
        from = head - b.cap + 1;
    }

    b.entries = calloc(b.cap, sizeof(*b.entries));
    if (b.entries == NULL) {
        return -1;
    }

    rc = cs_store_changelog_read(srv->store, from, head, fe_batch_add, &b);
    if (rc == -ERANGE && cs_store_meta_get(srv->store, &meta) == 0
        && meta.oldest_seq <= head)
    {
        rc = cs_store_changelog_read(srv->store, meta.oldest_seq, head,
            fe_batch_add, &b);
    }

    if (rc < 0) {
        cs_log_error(FE_SUBSYS, "read changelog %llu..%llu: %s",
            (unsigned long long) from, (unsigned long long) head,
            strerror(-rc));
        usleep(srv->cfg.sleep_interval_ms * 1000);
        goto out_free;
    }

    pthread_mutex_lock(&srv->lock);
    for (c = srv->subs; c != NULL; c = c->next) {
        fe_stream_offer(c, &b);
    }
    pthread_mutex_unlock(&srv->lock);

out_free:
    for (i = 0; i < b.n; i++) {
        grpc_slice_unref(b.entries[i].bytes);
    }
    free(b.entries);
    return rc < 0 ? -1 : 0;
}

/* End the streams whose session was revoked or expired. */
static void
fe_check_sessions(fe_server_t *srv)
{
    cs_shm_session_t session;
    cs_auth_result_t res;
    uint32_t slot;
    fe_call_t *c;

    pthread_mutex_lock(&srv->lock);
    for (c = srv->subs; c != NULL; c = c->next) {
        if (c->ended) {
            continue;
        }
        if (cs_shm_session_lookup(srv->shm, c->session_id, &session,
                &slot) == -ENOENT)
        {
            cs_log_info(FE_SUBSYS, "session of subscriber '%s' is gone, "
                "ending its stream", c->name);
            cs_auth_session_unknown(c->session_id, &res);
            fe_call_end(c, res.code, res.msg);
        }
    }
    pthread_mutex_unlock(&srv->lock);
}

/* Tell the broker which sessions have open streams, keeping them alive. */
static void
fe_keepalive(fe_server_t *srv)
{
    fe_session_id_t *ids;
    uint32_t n = 0, cap;
    fe_call_t *c;

    pthread_mutex_lock(&srv->lock);
    cap = srv->nsubs;
    ids = calloc(cap ? cap : 1, sizeof(*ids));
    for (c = srv->subs; ids != NULL && c != NULL && n < cap; c = c->next) {
        if (!c->ended) {
            snprintf(ids[n++], sizeof(*ids), "%.*s", CS_SESSION_ID_LEN,
                c->session_id);
        }
    }
    pthread_mutex_unlock(&srv->lock);

    if (ids == NULL) {
        return;
    }

    fe_broker_keepalive(srv->keepalive, ids, n);
    free(ids);
}

/* Sessions the broker removed so far: revoked plus expired. */
static uint64_t
fe_sessions_gone(fe_server_t *srv)
{
    cs_shm_registry_stats_t *st = cs_shm_registry_stats(srv->shm);

    return atomic_load(&st->revocations) + atomic_load(&st->expirations);
}

/*
 * Wait for the broker's segment and the resolver's store, opened once.
 * KNOWN-ISSUE(store-recreated-under-frontends)
 */
static int
fe_notifier_attach(fe_server_t *srv)
{
    cs_store_meta_t meta;
    char err[256];
    int logged = 0;

    while (!atomic_load(&srv->stopping)) {
        if (srv->shm == NULL
            && cs_shm_attach(&srv->shm, srv->cfg.shm_path, err,
                sizeof(err)) < 0)
        {
            srv->shm = NULL;
        }

        if (srv->shm != NULL && srv->store == NULL
            && cs_store_open(&srv->store, srv->cfg.store_path,
                CS_STORE_RDONLY, err, sizeof(err)) < 0)
        {
            srv->store = NULL;
        }

        /* The store counts once the resolver has published into it. */
        if (srv->shm != NULL && srv->store != NULL
            && cs_store_meta_get(srv->store, &meta) == 0
            && (meta.head_seq > 0
                || atomic_load(&cs_shm_header(srv->shm)->resolver_pid) != 0))
        {
            return 0;
        }
        if (srv->shm != NULL && srv->store != NULL) {
            snprintf(err, sizeof(err), "no resolution published yet");
        }

        if (!logged) {
            cs_log_notice(FE_SUBSYS, "waiting for the %s: %s",
                srv->shm == NULL ? "broker's segment" : "resolver's store",
                err);
            logged = 1;
        }
        usleep(FE_ATTACH_RETRY_MS * 1000);
    }

    return -ECANCELED;
}

/*
 * The notifier's work is proportional to the subscribers only when
 * something happened: it walks them when the head moved (or a joiner asks
 * for it) and checks their sessions when the broker removed one (or a
 * stream joined), plus a slow sweep in case a removal went uncounted. An
 * idle fleet costs a wake-up per FE_WAIT_MS and the keepalive.
 */
static void *
fe_notifier_main(void *arg)
{
    fe_server_t *srv = arg;
    int64_t now, last_keepalive, last_sweep, keepalive_ms;
    uint64_t head, done_head = 0, gone, gone_seen;
    int head_known = 0;
    uint32_t seen;

    if (fe_notifier_attach(srv) < 0) {
        return NULL;
    }

    if (cs_shm_worker_claim(srv->shm, &srv->worker_idx) == 0) {
        srv->worker_claimed = 1;
        srv->stats = cs_shm_worker(srv->shm, srv->worker_idx);
    }

    seen = cs_shm_wake_word(srv->shm);
    atomic_store(&srv->ready, 1);
    cs_log_notice(FE_SUBSYS, "ready: serving the config stream");

    /* Well within the idle timeout, so an open stream's session never
     * looks idle to the broker's expiry sweep. */
    keepalive_ms = FE_KEEPALIVE_MS;
    if (srv->cfg.rar_idle_timeout_ms > 0
        && srv->cfg.rar_idle_timeout_ms / 3 < keepalive_ms)
    {
        keepalive_ms = srv->cfg.rar_idle_timeout_ms / 3;
    }

    last_keepalive = last_sweep = fe_now_ms();
    gone_seen = fe_sessions_gone(srv);
    while (!atomic_load(&srv->stopping)) {
        cs_shm_wait(srv->shm, &seen, FE_WAIT_MS);
        if (atomic_load(&srv->stopping)) {
            break;
        }

        head = cs_shm_head(srv->shm);
        if (atomic_exchange(&srv->rescan, 0) || !head_known
            || head != done_head)
        {
            head_known = fe_notify_updates(srv, head) == 0;
            done_head = head;
        }

        now = fe_now_ms();
        gone = fe_sessions_gone(srv);
        if (atomic_exchange(&srv->sessions_due, 0) || gone != gone_seen
            || now - last_sweep >= FE_SESSION_SWEEP_MS)
        {
            fe_check_sessions(srv);
            gone_seen = gone;
            last_sweep = now;
        }

        if (atomic_exchange(&srv->keepalive_due, 0)
            || now - last_keepalive >= keepalive_ms)
        {
            fe_keepalive(srv);
            last_keepalive = fe_now_ms();
        }
    }

    /* Stopping: this process's streams are about to end. */
    fe_broker_keepalive(srv->keepalive, NULL, 0);
    return NULL;
}

int
fe_notifier_start(fe_server_t *srv)
{
    int rc;

    srv->stats = &srv->local_stats;
    rc = pthread_create(&srv->notifier, NULL, fe_notifier_main, srv);
    if (rc != 0) {
        return -rc;
    }

    srv->notifier_started = 1;
    return 0;
}

void
fe_notifier_stop(fe_server_t *srv)
{
    if (!srv->notifier_started) {
        return;
    }

    atomic_store(&srv->stopping, 1);
    pthread_join(srv->notifier, NULL);
    srv->notifier_started = 0;
}
