/*
 * The life of one call: accepted from the server, routed on its method
 * path, authenticated, answered. A call state is freed when its last batch
 * completes; RECV_CLOSE_ON_SERVER is started first and completes last, so
 * it keeps the state alive for as long as the call exists.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>

#include "auth.h"
#include "frontend.h"
#include "grpc_util.h"
#include "log.h"

#include "datadog/model/v1/model.pb-c.h"
#include "datadog/remoteagent/v1/remoteagent.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

static const struct {
    const char *path;
    int method;
} fe_methods[] = {
    { "/datadog.api.v1.AgentSecure/StreamConfigEvents", FE_M_STREAM },
    { "/datadog.api.v1.AgentSecure/RegisterRemoteAgent", FE_M_REGISTER },
    { "/datadog.api.v1.AgentSecure/RefreshRemoteAgent", FE_M_REFRESH },
    { "/datadog.remoteagent.v1.RemoteAgent/RegisterRemoteAgent",
        FE_M_REGISTER },
    { "/datadog.remoteagent.v1.RemoteAgent/RefreshRemoteAgent",
        FE_M_REFRESH },
    { "/grpc.health.v1.Health/Check", FE_M_HEALTH },
};

static void
fe_call_free(fe_call_t *c)
{
    grpc_metadata_array_destroy(&c->md);
    grpc_call_details_destroy(&c->details);
    if (c->recv_bb != NULL) {
        grpc_byte_buffer_destroy(c->recv_bb);
    }
    if (c->send_bb != NULL) {
        grpc_byte_buffer_destroy(c->send_bb);
    }
    grpc_slice_unref(c->status_details);
    if (c->call != NULL) {
        grpc_call_unref(c->call);
    }
    free(c->queue);
    free(c);
}

int
fe_call_request(fe_server_t *srv)
{
    grpc_call_error err;
    fe_call_t *c;
    int i;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }

    c->srv = srv;
    c->status_details = grpc_empty_slice();
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    for (i = 0; i < FE_OP_COUNT; i++) {
        c->tags[i].call = c;
        c->tags[i].op = i;
    }

    err = grpc_server_request_call(srv->server, &c->call, &c->details,
        &c->md, srv->cq, srv->cq, &c->tags[FE_OP_NEW]);
    if (err != GRPC_CALL_OK) {
        fe_call_free(c);
        return -EIO;
    }

    return 0;
}

/* Start a batch; the caller holds srv->lock. */
static int
fe_call_batch(fe_call_t *c, grpc_op *ops, size_t n, fe_op_t op)
{
    grpc_call_error err;

    c->pending++;
    err = grpc_call_start_batch(c->call, ops, n, &c->tags[op], NULL);
    if (err != GRPC_CALL_OK) {
        c->pending--;
        cs_log_error(FE_SUBSYS, "grpc_call_start_batch: error %d", err);
        return -EIO;
    }

    return 0;
}

/*
 * End the call with a final status. With a send in flight (a subscriber
 * that stopped reading) a status batch would queue behind it forever, so
 * the call is cancelled instead: the transport still sends the status and
 * message as trailers. The caller holds srv->lock.
 */
void
fe_call_end(fe_call_t *c, grpc_status_code code, const char *msg)
{
    grpc_op ops[2];
    size_t n = 0;

    if (c->ended || c->closed) {
        return;
    }
    c->ended = 1;

    if (c->sending) {
        grpc_call_cancel_with_status(c->call, code, msg, NULL);
        return;
    }

    memset(ops, 0, sizeof(ops));
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
        c->md_sent = 1;
    }

    grpc_slice_unref(c->status_details);
    c->status_details = grpc_slice_from_copied_string(msg);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n].data.send_status_from_server.status_details =
        code == GRPC_STATUS_OK ? NULL : &c->status_details;
    n++;

    if (fe_call_batch(c, ops, n, FE_OP_STATUS) < 0) {
        grpc_call_cancel_with_status(c->call, code, msg, NULL);
    }
}

/* Answer a unary call with msg and OK. The caller holds srv->lock. */
static void
fe_call_reply(fe_call_t *c, const ProtobufCMessage *msg)
{
    grpc_op ops[3];

    c->send_bb = cs_grpc_bb_pack(msg);
    if (c->send_bb == NULL) {
        fe_call_end(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }

    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->send_bb;
    ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
    c->md_sent = 1;
    c->ended = 1;

    if (fe_call_batch(c, ops, 3, FE_OP_STATUS) < 0) {
        grpc_call_cancel(c->call, NULL);
    }
}

static int
fe_call_method(const grpc_call_details *d)
{
    size_t i;

    for (i = 0; i < sizeof(fe_methods) / sizeof(fe_methods[0]); i++) {
        if (grpc_slice_str_cmp(d->method, fe_methods[i].path) == 0) {
            return fe_methods[i].method;
        }
    }

    return FE_M_UNKNOWN;
}

static int
fe_registry_enabled(fe_server_t *srv)
{
    return atomic_load(&cs_shm_header(srv->shm)->registry_enabled) != 0;
}

/*
 * Decide from the metadata alone whether the call may go on; on a refusal
 * the call is ended and -EACCES returned. The caller holds srv->lock.
 */
static int
fe_call_admit(fe_call_t *c)
{
    fe_server_t *srv = c->srv;
    cs_auth_result_t res;

    if (c->method == FE_M_UNKNOWN) {
        fe_call_end(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method");
        return -EACCES;
    }

    if (!atomic_load(&srv->ready)) {
        if (c->method == FE_M_HEALTH) {
            return 0;
        }
        fe_call_end(c, GRPC_STATUS_UNAVAILABLE,
            "configstream is starting: store or shared memory not ready");
        return -EACCES;
    }

    if (c->method == FE_M_HEALTH) {
        return 0;
    }

    if (cs_auth_check_bearer(&c->md, srv->token, &res) < 0) {
        fe_call_end(c, res.code, res.msg);
        return -EACCES;
    }

    if (!fe_registry_enabled(srv)) {
        fe_call_end(c, GRPC_STATUS_UNIMPLEMENTED,
            "remote agent registry not enabled");
        return -EACCES;
    }

    if (c->method == FE_M_STREAM
        && cs_auth_session_id(&c->md, c->session_id, &res) < 0)
    {
        fe_call_end(c, res.code, res.msg);
        return -EACCES;
    }

    return 0;
}

static void
fe_call_accept(fe_call_t *c)
{
    fe_server_t *srv = c->srv;
    grpc_op ops[1];

    if (!atomic_load(&srv->stopping) && fe_call_request(srv) < 0) {
        cs_log_error(FE_SUBSYS, "grpc_server_request_call failed");
    }

    c->method = fe_call_method(&c->details);

    pthread_mutex_lock(&srv->lock);

    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[0].data.recv_close_on_server.cancelled = &c->close_cancelled;
    if (fe_call_batch(c, ops, 1, FE_OP_CLOSE) < 0) {
        pthread_mutex_unlock(&srv->lock);
        fe_call_free(c);
        return;
    }

    if (fe_call_admit(c) == 0) {
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_RECV_MESSAGE;
        ops[0].data.recv_message.recv_message = &c->recv_bb;
        if (fe_call_batch(c, ops, 1, FE_OP_RECV) < 0) {
            fe_call_end(c, GRPC_STATUS_INTERNAL, "cannot read request");
        }
    }

    pthread_mutex_unlock(&srv->lock);
}

static void
fe_call_health(fe_call_t *c)
{
    Grpc__Health__V1__HealthCheckResponse resp =
        GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

    resp.status = atomic_load(&c->srv->ready)
        ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
        : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    fe_call_reply(c, &resp.base);
}

static int
fe_blank(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') {
            return 0;
        }
    }

    return 1;
}

static void
fe_call_register(fe_call_t *c)
{
    Datadog__Remoteagent__V1__RegisterRemoteAgentRequest *req;
    Datadog__Remoteagent__V1__RegisterRemoteAgentResponse resp =
        DATADOG__REMOTEAGENT__V1__REGISTER_REMOTE_AGENT_RESPONSE__INIT;
    char msg[256], id[CS_SESSION_ID_LEN + 1];
    grpc_status_code code;
    uint32_t secs;
    int rc;

    req = (void *) cs_grpc_bb_unpack(c->recv_bb,
        &datadog__remoteagent__v1__register_remote_agent_request__descriptor);
    if (req == NULL) {
        fe_call_end(c, GRPC_STATUS_INVALID_ARGUMENT,
            "request does not decode");
        return;
    }

    if (fe_blank(req->display_name)) {
        fe_call_end(c, GRPC_STATUS_INVALID_ARGUMENT,
            "display_name cannot be empty");
        goto out_free;
    }

    /*
     * The broker may take up to its timeout to answer: let the notifier
     * go on meanwhile. Only this thread frees calls, so c stays valid.
     */
    pthread_mutex_unlock(&c->srv->lock);
    rc = fe_broker_register(c->srv->broker, req, &code, msg, sizeof(msg),
        id, sizeof(id), &secs);
    pthread_mutex_lock(&c->srv->lock);

    if (rc < 0) {
        fe_call_end(c, GRPC_STATUS_UNAVAILABLE, "registry broker unavailable");
        goto out_free;
    }

    if (code != GRPC_STATUS_OK) {
        fe_call_end(c, code, msg);
        goto out_free;
    }

    resp.session_id = id;
    resp.recommended_refresh_interval_secs = secs;
    fe_call_reply(c, &resp.base);
    cs_log_debug(FE_SUBSYS, "remote agent registered (session %.8s)", id);

out_free:
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void
fe_call_refresh(fe_call_t *c)
{
    Datadog__Remoteagent__V1__RefreshRemoteAgentRequest *req;
    Datadog__Remoteagent__V1__RefreshRemoteAgentResponse resp =
        DATADOG__REMOTEAGENT__V1__REFRESH_REMOTE_AGENT_RESPONSE__INIT;
    grpc_status_code code;
    char msg[256];
    int rc;

    req = (void *) cs_grpc_bb_unpack(c->recv_bb,
        &datadog__remoteagent__v1__refresh_remote_agent_request__descriptor);
    if (req == NULL) {
        fe_call_end(c, GRPC_STATUS_INVALID_ARGUMENT,
            "request does not decode");
        return;
    }

    pthread_mutex_unlock(&c->srv->lock);
    rc = fe_broker_refresh(c->srv->broker, req->session_id, &code, msg,
        sizeof(msg));
    pthread_mutex_lock(&c->srv->lock);

    if (rc < 0) {
        fe_call_end(c, GRPC_STATUS_UNAVAILABLE, "registry broker unavailable");
    } else if (code != GRPC_STATUS_OK) {
        fe_call_end(c, code, msg);
    } else {
        fe_call_reply(c, &resp.base);
    }

    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void
fe_call_stream(fe_call_t *c)
{
    Datadog__Model__V1__ConfigStreamRequest *req;
    cs_shm_session_t session;
    cs_auth_result_t res;
    uint32_t slot;

    req = (void *) cs_grpc_bb_unpack(c->recv_bb,
        &datadog__model__v1__config_stream_request__descriptor);
    if (req == NULL) {
        fe_call_end(c, GRPC_STATUS_INVALID_ARGUMENT,
            "request does not decode");
        return;
    }

    if (cs_auth_check_name(req->name, &res) < 0) {
        fe_call_end(c, res.code, res.msg);
        goto out_free;
    }
    snprintf(c->name, sizeof(c->name), "%s", req->name);

    if (cs_shm_session_lookup(c->srv->shm, c->session_id, &session,
            &slot) == -ENOENT)
    {
        cs_auth_session_unknown(c->session_id, &res);
        fe_call_end(c, res.code, res.msg);
        goto out_free;
    }

    fe_stream_join(c);

out_free:
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void
fe_call_received(fe_call_t *c, int ok)
{
    /* The client may already be gone: its close can complete first. */
    if (c->closed) {
        return;
    }

    if (!ok || c->recv_bb == NULL) {
        fe_call_end(c, GRPC_STATUS_INVALID_ARGUMENT, "no request message");
        return;
    }

    switch (c->method) {
    case FE_M_HEALTH:
        fe_call_health(c);
        break;
    case FE_M_REGISTER:
        fe_call_register(c);
        break;
    case FE_M_REFRESH:
        fe_call_refresh(c);
        break;
    case FE_M_STREAM:
        fe_call_stream(c);
        break;
    }
}

void
fe_call_event(fe_tag_t *tag, int ok)
{
    fe_call_t *c = tag->call;
    fe_server_t *srv = c->srv;
    int done;

    if (tag->op == FE_OP_NEW) {
        if (!ok) {
            fe_call_free(c);
            return;
        }
        fe_call_accept(c);
        return;
    }

    pthread_mutex_lock(&srv->lock);
    c->pending--;

    switch (tag->op) {
    case FE_OP_RECV:
        fe_call_received(c, ok);
        break;
    case FE_OP_SEND:
        fe_stream_send_done(c, ok);
        break;
    case FE_OP_CLOSE:
        c->closed = 1;
        if (c->subscribed) {
            fe_stream_leave(c);
        }
        break;
    default:
        break;
    }

    done = c->pending == 0;
    pthread_mutex_unlock(&srv->lock);

    if (done) {
        fe_call_free(c);
    }
}
