#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/support/time.h>

#include "datadog/model/v1/model.pb-c.h"
#include "datadog/remoteagent/v1/remoteagent.pb-c.h"
#include "etcd_rpc.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

#include "bench_fleet.h"
#include "bench_grpc.h"

#define BENCH_FLEET_CALL_TIMEOUT_MS 10000
#define BENCH_FLEET_SESSION_MAX 128

#define BENCH_METHOD_REGISTER \
    "/datadog.remoteagent.v1.RemoteAgent/RegisterRemoteAgent"
#define BENCH_METHOD_STREAM "/datadog.api.v1.AgentSecure/StreamConfigEvents"
#define BENCH_METHOD_RANGE "/etcdserverpb.KV/Range"
#define BENCH_METHOD_WATCH "/etcdserverpb.Watch/Watch"
#define BENCH_METHOD_HEALTH "/grpc.health.v1.Health/Check"

typedef enum {
    BENCH_OP_START = 0,
    BENCH_OP_RECV,
    BENCH_OP_STATUS
} bench_op_kind_t;

typedef struct bench_sub bench_sub_t;

typedef struct {
    bench_sub_t *sub;
    bench_op_kind_t kind;
} bench_op_t;

struct bench_sub {
    bench_fleet_t *fleet;
    int idx;
    grpc_channel *ch;
    grpc_call *call;

    char auth[160];
    char session[BENCH_FLEET_SESSION_MAX];
    grpc_metadata md[2];
    size_t nmd;

    grpc_byte_buffer *send_buf;
    grpc_byte_buffer *recv_buf;
    grpc_metadata_array init_md;
    grpc_metadata_array trailing_md;
    grpc_status_code status;
    grpc_slice details;
    bench_op_t op_start, op_recv, op_status;

    /* Owned by the completion-queue thread once the stream is open. */
    int stall;
    int ready;                  /* snapshot (or watch created) seen */
    int closed;
    int64_t t_open;
    int64_t t_ready;
    double floor_ms;            /* one small unary call, warm connection */
    int64_t last_seq;
    int settings;
    uint64_t events, resyncs, gaps;
};

struct bench_fleet {
    bench_target_t target;
    char *address;
    char *token;
    char *prefix;
    grpc_channel_credentials *creds;

    bench_sub_t *subs;
    int n;

    grpc_completion_queue *cq;
    pthread_t thread;
    int thread_started;

    /* Everything below is shared with the thread, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int expect;                 /* reading subscribers */
    int64_t head;
    int64_t base;
    size_t cap;
    int64_t *t_last;
    uint32_t *have;
    int pending_total;
};

static char *bench_fleet_prefix_end(const char *prefix, size_t *len)
{
    char *end;

    /* etcd's prefix range end: the prefix with its last byte plus one. */
    *len = strlen(prefix);
    end = strdup(prefix);
    if (end != NULL && *len > 0) {
        end[*len - 1]++;
    }
    return end;
}

/* Count id seq for one subscriber received at now; called under lock. */
static void bench_fleet_record(bench_fleet_t *f, int64_t seq, int64_t now)
{
    size_t i;

    if (seq > f->head) {
        f->head = seq;
    }

    if (f->have == NULL || seq < f->base) {
        return;
    }

    i = (size_t) (seq - f->base);
    if (i >= f->cap) {
        return;
    }

    f->have[i]++;
    if (now > f->t_last[i]) {
        f->t_last[i] = now;
    }
    if ((int) f->have[i] == f->expect) {
        pthread_cond_broadcast(&f->cond);
    }
}

static void bench_fleet_got_ready(bench_sub_t *s, int64_t now, int64_t seq)
{
    bench_fleet_t *f = s->fleet;

    pthread_mutex_lock(&f->lock);
    s->ready = 1;
    s->t_ready = now;
    s->last_seq = seq;
    if (seq > f->head) {
        f->head = seq;
    }
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

static void bench_fleet_got_seq(bench_sub_t *s, int64_t seq, int64_t now)
{
    bench_fleet_t *f = s->fleet;

    if (s->last_seq >= 0 && seq != s->last_seq + 1) {
        s->gaps++;
    }

    pthread_mutex_lock(&f->lock);
    bench_fleet_record(f, seq, now);
    pthread_mutex_unlock(&f->lock);
    s->last_seq = seq;
}

/* A resync snapshot at seq gives the subscriber every id up to it. */
static void bench_fleet_got_resync(bench_sub_t *s, int64_t seq, int64_t now)
{
    bench_fleet_t *f = s->fleet;
    int64_t from = s->last_seq + 1;

    s->resyncs++;
    pthread_mutex_lock(&f->lock);
    if (f->have != NULL && from < f->base) {
        from = f->base;
    }
    for (int64_t id = from; id <= seq; id++) {
        if (f->have != NULL && (size_t) (id - f->base) >= f->cap) {
            break;
        }
        bench_fleet_record(f, id, now);
    }
    pthread_mutex_unlock(&f->lock);
    s->last_seq = seq;
}

/*
 * A minimal protobuf reader: the fleet needs a few numbers out of every
 * event (kind, sequence id or revision), and a full unpack of every
 * delivery would cost the shared cores more than the server's send.
 */
typedef struct {
    const uint8_t *p, *end;
    uint32_t field;
    uint32_t wire;
    uint64_t varint;            /* wire type 0 */
    const uint8_t *bytes;       /* wire type 2 */
    size_t len;
} bench_pb_t;

static int bench_pb_varint(bench_pb_t *r, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;

        *v |= (uint64_t) (b & 0x7f) << shift;
        if (!(b & 0x80)) {
            return 0;
        }
    }
    return -EPROTO;
}

/* The next field: 1, 0 at the end, -EPROTO on malformed input. */
static int bench_pb_next(bench_pb_t *r)
{
    uint64_t key, len;

    if (r->p >= r->end) {
        return 0;
    }
    if (bench_pb_varint(r, &key) < 0) {
        return -EPROTO;
    }

    r->field = (uint32_t) (key >> 3);
    r->wire = (uint32_t) (key & 7);
    switch (r->wire) {
    case 0:
        return bench_pb_varint(r, &r->varint) < 0 ? -EPROTO : 1;
    case 1:
    case 5:
        len = r->wire == 1 ? 8 : 4;
        if ((uint64_t) (r->end - r->p) < len) {
            return -EPROTO;
        }
        r->p += len;
        return 1;
    case 2:
        if (bench_pb_varint(r, &len) < 0
            || (uint64_t) (r->end - r->p) < len)
        {
            return -EPROTO;
        }
        r->bytes = r->p;
        r->len = (size_t) len;
        r->p += len;
        return 1;
    default:
        return -EPROTO;
    }
}

static bench_pb_t bench_pb(const uint8_t *p, size_t len)
{
    return (bench_pb_t) { .p = p, .end = p + len };
}

/*
 * ConfigEvent: snapshot = 1 { sequence_id = 2, settings = 3 } or
 * update = 2 { sequence_id = 2 }. Sequence ids are int32 on the wire.
 */
static void bench_fleet_decode_cs(bench_sub_t *s, const uint8_t *p,
    size_t len, int64_t now)
{
    bench_pb_t ev = bench_pb(p, len), inner;
    int64_t seq = 0;
    int kind = 0, settings = 0, rc;

    while ((rc = bench_pb_next(&ev)) > 0) {
        if ((ev.field == 1 || ev.field == 2) && ev.wire == 2) {
            kind = (int) ev.field;
            inner = bench_pb(ev.bytes, ev.len);
            while ((rc = bench_pb_next(&inner)) > 0) {
                if (inner.field == 2 && inner.wire == 0) {
                    seq = (int32_t) (uint32_t) inner.varint;
                } else if (inner.field == 3 && kind == 1) {
                    settings++;
                }
            }
        }
        if (rc < 0) {
            break;
        }
    }
    if (rc < 0 || kind == 0) {
        s->gaps++;
        return;
    }

    s->events++;
    if (kind == 1 && !s->ready) {
        s->settings = settings;
        bench_fleet_got_ready(s, now, seq);
    } else if (kind == 1) {
        bench_fleet_got_resync(s, seq, now);
    } else {
        bench_fleet_got_seq(s, seq, now);
    }
}

/* The mod_revision (field 3) of an Event's kv (field 2). */
static int64_t bench_fleet_event_rev(const uint8_t *p, size_t len)
{
    bench_pb_t ev = bench_pb(p, len), kv;

    while (bench_pb_next(&ev) > 0) {
        if (ev.field == 2 && ev.wire == 2) {
            kv = bench_pb(ev.bytes, ev.len);
            while (bench_pb_next(&kv) > 0) {
                if (kv.field == 3 && kv.wire == 0) {
                    return (int64_t) kv.varint;
                }
            }
        }
    }
    return -1;
}

/* WatchResponse: created = 3, events = 11 (repeated Event). */
static void bench_fleet_decode_etcd(bench_sub_t *s, const uint8_t *p,
    size_t len, int64_t now)
{
    bench_pb_t wr = bench_pb(p, len);
    int64_t rev;
    int rc;

    s->events++;
    while ((rc = bench_pb_next(&wr)) > 0) {
        if (wr.field == 3 && wr.wire == 0 && wr.varint && !s->ready) {
            bench_fleet_got_ready(s, s->t_ready, s->last_seq);
        } else if (wr.field == 11 && wr.wire == 2) {
            rev = bench_fleet_event_rev(wr.bytes, wr.len);
            if (rev >= 0) {
                bench_fleet_got_seq(s, rev, now);
            }
        }
    }
    if (rc < 0) {
        s->gaps++;
    }
}

static void bench_fleet_pending_add(bench_fleet_t *f, int delta)
{
    pthread_mutex_lock(&f->lock);
    f->pending_total += delta;
    pthread_mutex_unlock(&f->lock);
}

static int bench_fleet_post_recv(bench_sub_t *s, int with_md)
{
    grpc_op ops[2];
    size_t n = 0;

    memset(ops, 0, sizeof(ops));
    if (with_md) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n].data.recv_initial_metadata.recv_initial_metadata =
            &s->init_md;
        n++;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &s->recv_buf;
    n++;

    /* Counted first: the batch may complete before start returns. */
    bench_fleet_pending_add(s->fleet, 1);
    if (grpc_call_start_batch(s->call, ops, n, &s->op_recv, NULL)
        != GRPC_CALL_OK)
    {
        bench_fleet_pending_add(s->fleet, -1);
        return -EINVAL;
    }

    return 0;
}

static void bench_fleet_on_recv(bench_sub_t *s, int success, int64_t now)
{
    grpc_slice msg;

    if (!success || s->recv_buf == NULL) {
        return;             /* the stream ended: the status tells why */
    }

    msg = bench_grpc_flatten(s->recv_buf);
    grpc_byte_buffer_destroy(s->recv_buf);
    s->recv_buf = NULL;

    if (s->fleet->target == BENCH_TARGET_CONFIGSTREAM) {
        bench_fleet_decode_cs(s, GRPC_SLICE_START_PTR(msg),
            GRPC_SLICE_LENGTH(msg), now);
    } else {
        bench_fleet_decode_etcd(s, GRPC_SLICE_START_PTR(msg),
            GRPC_SLICE_LENGTH(msg), now);
    }
    grpc_slice_unref(msg);

    if (!s->stall) {
        bench_fleet_post_recv(s, 0);
    }
}

static void *bench_fleet_loop(void *arg)
{
    bench_fleet_t *f = arg;
    bench_op_t *op;
    grpc_event ev;
    int64_t now;

    for (;;) {
        ev = grpc_completion_queue_next(f->cq,
            gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (ev.type != GRPC_OP_COMPLETE) {
            continue;
        }

        now = bench_now_ns();
        op = ev.tag;
        switch (op->kind) {
        case BENCH_OP_START:
            grpc_byte_buffer_destroy(op->sub->send_buf);
            op->sub->send_buf = NULL;
            break;
        case BENCH_OP_RECV:
            bench_fleet_on_recv(op->sub, ev.success, now);
            break;
        case BENCH_OP_STATUS:
            op->sub->closed = 1;
            break;
        }

        pthread_mutex_lock(&f->lock);
        f->pending_total--;
        if (op->kind == BENCH_OP_STATUS || f->pending_total == 0) {
            pthread_cond_broadcast(&f->cond);
        }
        pthread_mutex_unlock(&f->lock);
    }

    return NULL;
}

int bench_fleet_create(bench_fleet_t **f, const bench_fleet_opts_t *o,
    char *err, size_t errlen)
{
    bench_fleet_t *nf;

    nf = calloc(1, sizeof(*nf));
    if (nf == NULL) {
        goto out_nomem;
    }

    pthread_mutex_init(&nf->lock, NULL);
    pthread_cond_init(&nf->cond, NULL);
    nf->target = o->target;
    nf->creds = o->creds;
    nf->n = o->subscribers;
    nf->expect = o->subscribers;
    nf->head = -1;
    nf->address = strdup(o->address);
    nf->token = strdup(o->token != NULL ? o->token : "");
    nf->prefix = strdup(o->prefix != NULL ? o->prefix : "");
    nf->subs = calloc((size_t) nf->n, sizeof(*nf->subs));
    nf->cq = grpc_completion_queue_create_for_next(NULL);
    if (nf->address == NULL || nf->token == NULL || nf->prefix == NULL
        || nf->subs == NULL)
    {
        goto out_free;
    }

    for (int i = 0; i < nf->n; i++) {
        bench_sub_t *s = &nf->subs[i];

        s->fleet = nf;
        s->idx = i;
        s->last_seq = -1;
        s->details = grpc_empty_slice();
        s->op_start = (bench_op_t) { s, BENCH_OP_START };
        s->op_recv = (bench_op_t) { s, BENCH_OP_RECV };
        s->op_status = (bench_op_t) { s, BENCH_OP_STATUS };
        grpc_metadata_array_init(&s->init_md);
        grpc_metadata_array_init(&s->trailing_md);
        s->ch = bench_grpc_channel(nf->address, nf->creds);
        if (s->ch == NULL) {
            snprintf(err, errlen, "grpc_channel_create %s failed",
                nf->address);
            bench_fleet_destroy(nf);
            return -EINVAL;
        }
    }

    if (pthread_create(&nf->thread, NULL, bench_fleet_loop, nf) != 0) {
        goto out_free;
    }
    nf->thread_started = 1;

    *f = nf;
    return 0;

out_free:
    bench_fleet_destroy(nf);
out_nomem:
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

static int bench_fleet_register(bench_sub_t *s, char *err, size_t errlen)
{
    Datadog__Remoteagent__V1__RegisterRemoteAgentRequest req =
        DATADOG__REMOTEAGENT__V1__REGISTER_REMOTE_AGENT_REQUEST__INIT;
    Datadog__Remoteagent__V1__RegisterRemoteAgentResponse *resp;
    char pid[32], name[64], uri[96];
    grpc_slice out;
    int rc;

    snprintf(pid, sizeof(pid), "%d", (int) getpid());
    snprintf(name, sizeof(name), "bench-subscriber-%d", s->idx);
    snprintf(uri, sizeof(uri), "unix:///run/bench/subscriber-%d.sock",
        s->idx);
    req.pid = pid;
    req.flavor = (char *) "bench";
    req.display_name = name;
    req.api_endpoint_uri = uri;

    rc = bench_grpc_unary(s->ch, BENCH_METHOD_REGISTER, s->md, 1,
        &req.base, &out, BENCH_FLEET_CALL_TIMEOUT_MS, err, errlen);
    if (rc < 0) {
        return rc;
    }

    resp = datadog__remoteagent__v1__register_remote_agent_response__unpack(
        NULL, GRPC_SLICE_LENGTH(out), GRPC_SLICE_START_PTR(out));
    grpc_slice_unref(out);
    if (resp == NULL || resp->session_id[0] == '\0'
        || strlen(resp->session_id) >= sizeof(s->session))
    {
        snprintf(err, errlen, "register: no usable session id");
        rc = -EPROTO;
    } else {
        strcpy(s->session, resp->session_id);
        s->md[1].key = grpc_slice_from_static_string("session_id");
        s->md[1].value = grpc_slice_from_static_string(s->session);
        s->nmd = 2;
    }

    if (resp != NULL) {
        datadog__remoteagent__v1__register_remote_agent_response__free_unpacked(
            resp, NULL);
    }
    return rc;
}

/* A Range of the prefix; the first one of a subscriber also connects. */
static int bench_fleet_range(bench_sub_t *s, int *count, int64_t *rev,
    char *err, size_t errlen)
{
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__RangeResponse *resp;
    size_t plen;
    char *end;
    grpc_slice out;
    int rc;

    end = bench_fleet_prefix_end(s->fleet->prefix, &plen);
    if (end == NULL) {
        return -ENOMEM;
    }

    req.key.data = (uint8_t *) s->fleet->prefix;
    req.key.len = plen;
    req.range_end.data = (uint8_t *) end;
    req.range_end.len = plen;

    rc = bench_grpc_unary(s->ch, BENCH_METHOD_RANGE, NULL, 0, &req.base,
        &out, BENCH_FLEET_CALL_TIMEOUT_MS, err, errlen);
    free(end);
    if (rc < 0) {
        return rc;
    }

    resp = etcdserverpb__range_response__unpack(NULL,
        GRPC_SLICE_LENGTH(out), GRPC_SLICE_START_PTR(out));
    grpc_slice_unref(out);
    if (resp == NULL || resp->header == NULL) {
        snprintf(err, errlen, "etcd range: undecodable response");
        rc = -EPROTO;
    } else {
        *count = (int) resp->n_kvs;
        *rev = resp->header->revision;
    }

    if (resp != NULL) {
        etcdserverpb__range_response__free_unpacked(resp, NULL);
    }
    return rc;
}

/*
 * The smallest round trip on the subscriber's warm connection: a health
 * check (configstream) or a Range of a key that does not exist (etcd).
 */
static int bench_fleet_floor(bench_sub_t *s, char *err, size_t errlen)
{
    Grpc__Health__V1__HealthCheckRequest hreq =
        GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    Etcdserverpb__RangeRequest rreq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    static const char none[] = "/bench-no-such-key";
    grpc_slice out;
    int64_t t0;
    int rc;

    rreq.key.data = (uint8_t *) none;
    rreq.key.len = sizeof(none) - 1;
    t0 = bench_now_ns();
    if (s->fleet->target == BENCH_TARGET_CONFIGSTREAM) {
        rc = bench_grpc_unary(s->ch, BENCH_METHOD_HEALTH, s->md, 1,
            &hreq.base, &out, BENCH_FLEET_CALL_TIMEOUT_MS, err, errlen);
    } else {
        rc = bench_grpc_unary(s->ch, BENCH_METHOD_RANGE, NULL, 0,
            &rreq.base, &out, BENCH_FLEET_CALL_TIMEOUT_MS, err, errlen);
    }
    if (rc < 0) {
        return rc;
    }

    s->floor_ms = (double) (bench_now_ns() - t0) / 1e6;
    grpc_slice_unref(out);
    return 0;
}

int bench_fleet_connect(bench_fleet_t *f, char *err, size_t errlen)
{
    int64_t rev;
    int count, rc;

    for (int i = 0; i < f->n; i++) {
        bench_sub_t *s = &f->subs[i];

        if (f->target == BENCH_TARGET_CONFIGSTREAM) {
            snprintf(s->auth, sizeof(s->auth), "Bearer %s", f->token);
            s->md[0].key = grpc_slice_from_static_string("authorization");
            s->md[0].value = grpc_slice_from_static_string(s->auth);
            s->nmd = 1;
            rc = bench_fleet_register(s, err, errlen);
        } else {
            rc = bench_fleet_range(s, &count, &rev, err, errlen);
        }

        if (rc == 0) {
            rc = bench_fleet_floor(s, err, errlen);
        }
        if (rc < 0) {
            return rc;
        }
    }

    return 0;
}

void bench_fleet_floor_ms(bench_fleet_t *f, double *ms)
{
    for (int i = 0; i < f->n; i++) {
        ms[i] = f->subs[i].floor_ms;
    }
}

static grpc_byte_buffer *bench_fleet_first_message(bench_sub_t *s,
    int64_t start_rev)
{
    Datadog__Model__V1__ConfigStreamRequest sreq =
        DATADOG__MODEL__V1__CONFIG_STREAM_REQUEST__INIT;
    Etcdserverpb__WatchRequest wreq = ETCDSERVERPB__WATCH_REQUEST__INIT;
    Etcdserverpb__WatchCreateRequest create =
        ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    grpc_byte_buffer *bb;
    char name[64];
    size_t plen;
    char *end;

    if (s->fleet->target == BENCH_TARGET_CONFIGSTREAM) {
        snprintf(name, sizeof(name), "bench-subscriber-%d", s->idx);
        sreq.name = name;
        sreq.session_id = s->session;
        return bench_grpc_pack(&sreq.base);
    }

    end = bench_fleet_prefix_end(s->fleet->prefix, &plen);
    if (end == NULL) {
        return NULL;
    }

    create.key.data = (uint8_t *) s->fleet->prefix;
    create.key.len = plen;
    create.range_end.data = (uint8_t *) end;
    create.range_end.len = plen;
    create.start_revision = start_rev;
    wreq.request_union_case =
        ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    wreq.create_request = &create;
    bb = bench_grpc_pack(&wreq.base);
    free(end);
    return bb;
}

/* Start the stream (configstream) or the watch (etcd) of one subscriber. */
static int bench_fleet_start(bench_sub_t *s, int64_t start_rev)
{
    bench_fleet_t *f = s->fleet;
    int is_cs = f->target == BENCH_TARGET_CONFIGSTREAM;
    grpc_op ops[3];
    size_t n = 0;

    s->send_buf = bench_fleet_first_message(s, start_rev);
    if (s->send_buf == NULL) {
        return -ENOMEM;
    }

    s->call = grpc_channel_create_call(s->ch, NULL, GRPC_PROPAGATE_DEFAULTS,
        f->cq, grpc_slice_from_static_string(is_cs ? BENCH_METHOD_STREAM
            : BENCH_METHOD_WATCH), NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

    bench_fleet_pending_add(f, 2);
    memset(ops, 0, sizeof(ops));
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = is_cs ? s->nmd : 0;
    ops[n].data.send_initial_metadata.metadata = is_cs ? s->md : NULL;
    n++;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = s->send_buf;
    n++;
    /* A watch ends when the client half-closes; a config stream may. */
    if (is_cs) {
        ops[n].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        n++;
    }

    if (f->target == BENCH_TARGET_CONFIGSTREAM) {
        s->t_open = bench_now_ns();
    }
    if (grpc_call_start_batch(s->call, ops, n, &s->op_start, NULL)
        != GRPC_CALL_OK)
    {
        bench_fleet_pending_add(f, -2);
        return -EINVAL;
    }

    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    ops[0].data.recv_status_on_client.status = &s->status;
    ops[0].data.recv_status_on_client.status_details = &s->details;
    if (grpc_call_start_batch(s->call, ops, 1, &s->op_status, NULL)
        != GRPC_CALL_OK)
    {
        bench_fleet_pending_add(f, -1);
        return -EINVAL;
    }

    return bench_fleet_post_recv(s, 1);
}

static int bench_fleet_wait_ready(bench_sub_t *s, int timeout_ms)
{
    bench_fleet_t *f = s->fleet;
    struct timespec dl;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long) (timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }

    pthread_mutex_lock(&f->lock);
    while (!s->ready && !s->closed && rc == 0) {
        rc = pthread_cond_timedwait(&f->cond, &f->lock, &dl);
    }
    if (!s->ready) {
        rc = s->closed ? -ECONNRESET : -ETIMEDOUT;
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

int bench_fleet_open(bench_fleet_t *f, double *open_ms, int timeout_ms,
    char *err, size_t errlen)
{
    int64_t t0, rev = 0;
    int count = 0, rc;

    for (int i = 0; i < f->n; i++) {
        bench_sub_t *s = &f->subs[i];

        if (f->target == BENCH_TARGET_ETCD) {
            t0 = bench_now_ns();
            rc = bench_fleet_range(s, &count, &rev, err, errlen);
            if (rc < 0) {
                return rc;
            }
            s->t_open = t0;
            s->t_ready = bench_now_ns();
            s->settings = count;
            s->last_seq = rev;
        }

        rc = bench_fleet_start(s, rev + 1);
        if (rc < 0) {
            snprintf(err, errlen, "subscriber %d: cannot start its call",
                i);
            return rc;
        }

        rc = bench_fleet_wait_ready(s, timeout_ms);
        if (rc < 0) {
            snprintf(err, errlen, "subscriber %d: %s: status %d: %.*s", i,
                rc == -ETIMEDOUT ? "no snapshot in time" : "stream ended",
                (int) s->status, (int) GRPC_SLICE_LENGTH(s->details),
                (const char *) GRPC_SLICE_START_PTR(s->details));
            return rc;
        }

        open_ms[i] = (double) (s->t_ready - s->t_open) / 1e6;
    }

    return 0;
}

int64_t bench_fleet_head(bench_fleet_t *f)
{
    int64_t head;

    pthread_mutex_lock(&f->lock);
    head = f->head;
    pthread_mutex_unlock(&f->lock);
    return head;
}

void bench_fleet_stall(bench_fleet_t *f, int idx)
{
    pthread_mutex_lock(&f->lock);
    if (!f->subs[idx].stall) {
        f->subs[idx].stall = 1;
        f->expect--;
    }
    pthread_mutex_unlock(&f->lock);
}

int bench_fleet_window(bench_fleet_t *f, int64_t first, size_t count)
{
    int64_t *t_last;
    uint32_t *have;

    t_last = calloc(count, sizeof(*t_last));
    have = calloc(count, sizeof(*have));
    if (t_last == NULL || have == NULL) {
        free(t_last);
        free(have);
        return -ENOMEM;
    }

    pthread_mutex_lock(&f->lock);
    free(f->t_last);
    free(f->have);
    f->t_last = t_last;
    f->have = have;
    f->base = first;
    f->cap = count;
    pthread_mutex_unlock(&f->lock);
    return 0;
}

int bench_fleet_wait(bench_fleet_t *f, int64_t seq, int timeout_ms)
{
    struct timespec dl;
    size_t i;
    int rc = 0;

    if (seq < f->base || (size_t) (seq - f->base) >= f->cap) {
        return -ERANGE;
    }
    i = (size_t) (seq - f->base);

    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long) (timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }

    pthread_mutex_lock(&f->lock);
    while ((int) f->have[i] < f->expect && rc == 0) {
        rc = pthread_cond_timedwait(&f->cond, &f->lock, &dl);
    }
    rc = (int) f->have[i] < f->expect ? -ETIMEDOUT : 0;
    pthread_mutex_unlock(&f->lock);
    return rc;
}

int64_t bench_fleet_last(bench_fleet_t *f, int64_t seq, uint32_t *have)
{
    int64_t t = 0;
    size_t i;

    *have = 0;
    if (seq < f->base || (size_t) (seq - f->base) >= f->cap) {
        return 0;
    }
    i = (size_t) (seq - f->base);

    pthread_mutex_lock(&f->lock);
    *have = f->have[i];
    if ((int) f->have[i] >= f->expect) {
        t = f->t_last[i];
    }
    pthread_mutex_unlock(&f->lock);
    return t;
}

void bench_fleet_stats(bench_fleet_t *f, bench_fleet_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < f->n; i++) {
        st->events += f->subs[i].events;
        st->resyncs += f->subs[i].resyncs;
        st->gaps += f->subs[i].gaps;
        st->closed += f->subs[i].closed;
    }
    if (f->n > 0) {
        st->settings = f->subs[0].settings;
    }
    pthread_mutex_unlock(&f->lock);
}

void bench_fleet_destroy(bench_fleet_t *f)
{
    if (f == NULL) {
        return;
    }

    for (int i = 0; f->subs != NULL && i < f->n; i++) {
        if (f->subs[i].call != NULL) {
            grpc_call_cancel(f->subs[i].call, NULL);
        }
    }

    /* Every batch completes once its call is cancelled. */
    pthread_mutex_lock(&f->lock);
    while (f->pending_total > 0 && f->thread_started) {
        pthread_cond_wait(&f->cond, &f->lock);
    }
    pthread_mutex_unlock(&f->lock);

    grpc_completion_queue_shutdown(f->cq);
    if (f->thread_started) {
        pthread_join(f->thread, NULL);
    } else {
        while (grpc_completion_queue_next(f->cq,
            gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type
            != GRPC_QUEUE_SHUTDOWN)
        {
        }
    }
    grpc_completion_queue_destroy(f->cq);

    for (int i = 0; f->subs != NULL && i < f->n; i++) {
        bench_sub_t *s = &f->subs[i];

        if (s->call != NULL) {
            grpc_call_unref(s->call);
        }
        if (s->ch != NULL) {
            grpc_channel_destroy(s->ch);
        }
        if (s->recv_buf != NULL) {
            grpc_byte_buffer_destroy(s->recv_buf);
        }
        if (s->send_buf != NULL) {
            grpc_byte_buffer_destroy(s->send_buf);
        }
        grpc_slice_unref(s->details);
        grpc_metadata_array_destroy(&s->init_md);
        grpc_metadata_array_destroy(&s->trailing_md);
    }

    free(f->subs);
    free(f->t_last);
    free(f->have);
    free(f->address);
    free(f->token);
    free(f->prefix);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    free(f);
}
