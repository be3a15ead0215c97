/*
 * config-stream-client: a remote agent in miniature. It registers with the
 * Remote Agent Registry, keeps its session refreshed, subscribes to the
 * config stream and prints every event, checking that after a snapshot
 * each update carries the previous sequence id plus one.
 *
 * SIGTERM or SIGINT ends it like the end of --duration: summary, then the
 * exit status. Exit status: 0 when everything received was in order, 1 on
 * any ordering violation or error, 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <json-c/json.h>

#include "credentials.h"
#include "grpc_util.h"
#include "schema.h"
#include "value.h"

#include "datadog/model/v1/model.pb-c.h"
#include "datadog/remoteagent/v1/remoteagent.pb-c.h"

#define CLI_UNARY_TIMEOUT_MS    5000
#define CLI_RETRY_MS            200
#define CLI_GIVE_UP_MS          15000
#define CLI_TICK_MS             200     /* how soon a signal is noticed */
#define CLI_WARN_MS             3000    /* unreachable this long: say so */

#define CLI_PATH_STREAM "/datadog.api.v1.AgentSecure/StreamConfigEvents"
#define CLI_SVC_NEW     "/datadog.remoteagent.v1.RemoteAgent/"
#define CLI_SVC_OLD     "/datadog.api.v1.AgentSecure/"

static volatile sig_atomic_t cli_signalled;

static void
cli_on_signal(int sig)
{
    cli_signalled = sig;
}

typedef struct {
    const char *address;
    const char *token;
    const char *token_file;
    const char *cert_file;
    const char *name;
    int insecure;
    int json;
    int dump_snapshot;
    int show_secrets;
    cs_schema_t *schema;        /* decides which keys are secret */
    double duration;
    long max_samples;

    char *token_buf;
    char bearer[512];
    grpc_channel *channel;
    grpc_completion_queue *cq;
    int64_t end_ms;

    const char *svc;
    char session_id[64];
    uint32_t refresh_secs;
    int64_t next_refresh_ms;

    long snapshots, updates, violations, errors, reconnects, samples;
    int in_order;               /* a snapshot started this stream */
    int64_t unready_since_ms;   /* the channel is not connected since */
    int warned;
    int32_t last_seq;
} cli_t;

typedef struct {
    grpc_status_code code;
    grpc_slice details;
    grpc_byte_buffer *resp;
} cli_result_t;

static int64_t
cli_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static gpr_timespec
cli_deadline_at(int64_t ms)
{
    int64_t left = ms - cli_now_ms();

    if (ms == INT64_MAX) {
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    }
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
        gpr_time_from_millis(left > 0 ? left : 0, GPR_TIMESPAN));
}

static void
cli_usage(FILE *out)
{
    fprintf(out,
        "usage: config-stream-client --ipc-address HOST:PORT\n"
        "           (--auth-token TOKEN | --auth-token-file FILE)\n"
        "           (--cert-file PEM | --insecure) [--name NAME]\n"
        "           [--duration SECS] [--max-samples N] [--json]\n"
        "           [--dump-snapshot] [--show-secrets]\n"
        "\n"
        "Register as a remote agent, stream configuration events and\n"
        "check their order. Exits 1 on any violation or error.\n"
        "--dump-snapshot prints every setting of the first snapshot as a\n"
        "JSON line ({\"event\":\"setting\",...}) and exits. Values of\n"
        "secret settings (API keys, passwords, tokens) print as ********\n"
        "unless --show-secrets.\n");
}

static void
cli_print(cli_t *cli, json_object *obj, const char *human)
{
    if (cli->json) {
        printf("%s\n", json_object_to_json_string_ext(obj,
            JSON_C_TO_STRING_PLAIN));
    } else if (human != NULL) {
        printf("%s\n", human);
    }
    fflush(stdout);
    json_object_put(obj);
}

static void
cli_error(cli_t *cli, const char *what, grpc_status_code code,
    const char *msg)
{
    json_object *o = json_object_new_object();
    char line[1024];

    cli->errors++;
    json_object_object_add(o, "event", json_object_new_string("error"));
    json_object_object_add(o, "what", json_object_new_string(what));
    json_object_object_add(o, "code",
        json_object_new_string(cs_grpc_status_name(code)));
    json_object_object_add(o, "message", json_object_new_string(msg));
    snprintf(line, sizeof(line), "%s: %s: %s", what,
        cs_grpc_status_name(code), msg);
    if (cli->json) {
        cli_print(cli, o, NULL);
    } else {
        json_object_put(o);
        fprintf(stderr, "config-stream-client: %s\n", line);
    }
}

static void
cli_metadata(cli_t *cli, grpc_metadata *md, size_t *n, int with_session)
{
    *n = 0;
    md[*n].key = grpc_slice_from_static_string("authorization");
    md[*n].value = grpc_slice_from_static_string(cli->bearer);
    (*n)++;
    if (with_session) {
        md[*n].key = grpc_slice_from_static_string("session_id");
        md[*n].value = grpc_slice_from_static_string(cli->session_id);
        (*n)++;
    }
}

static void
cli_result_free(cli_result_t *r)
{
    grpc_slice_unref(r->details);
    if (r->resp != NULL) {
        grpc_byte_buffer_destroy(r->resp);
    }
}

/* One unary call; r is always filled (a transport failure is a status). */
static void
cli_unary(cli_t *cli, const char *path, const ProtobufCMessage *req,
    cli_result_t *r)
{
    grpc_metadata_array recv_md;
    grpc_metadata md[2];
    grpc_byte_buffer *bb;
    grpc_call *call;
    grpc_op ops[6];
    size_t nmd;
    int tag;

    memset(r, 0, sizeof(*r));
    r->details = grpc_empty_slice();
    grpc_metadata_array_init(&recv_md);
    cli_metadata(cli, md, &nmd, 0);
    bb = cs_grpc_bb_pack(req);

    call = grpc_channel_create_call(cli->channel, NULL,
        GRPC_PROPAGATE_DEFAULTS, cli->cq, grpc_slice_from_static_string(path),
        NULL, cli_deadline_at(cli_now_ms() + CLI_UNARY_TIMEOUT_MS), NULL);

    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = nmd;
    ops[0].data.send_initial_metadata.metadata = md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &recv_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &r->resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.status = &r->code;
    ops[5].data.recv_status_on_client.status_details = &r->details;

    if (grpc_call_start_batch(call, ops, 6, &tag, NULL) == GRPC_CALL_OK) {
        grpc_completion_queue_pluck(cli->cq, &tag,
            gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    } else {
        r->code = GRPC_STATUS_INTERNAL;
    }

    grpc_call_unref(call);
    grpc_byte_buffer_destroy(bb);
    grpc_metadata_array_destroy(&recv_md);
}

static char *
cli_details(cli_result_t *r)
{
    return grpc_slice_to_c_string(r->details);
}

static int
cli_register_on(cli_t *cli, const char *svc, cli_result_t *r)
{
    Datadog__Remoteagent__V1__RegisterRemoteAgentRequest req =
        DATADOG__REMOTEAGENT__V1__REGISTER_REMOTE_AGENT_REQUEST__INIT;
    Datadog__Remoteagent__V1__RegisterRemoteAgentResponse *resp;
    char path[128], pid[32];

    snprintf(pid, sizeof(pid), "%d", (int) getpid());
    req.pid = pid;
    req.flavor = "config-stream-client";
    req.display_name = (char *) cli->name;
    req.api_endpoint_uri = "unix:///run/config-stream-client.sock";

    snprintf(path, sizeof(path), "%sRegisterRemoteAgent", svc);
    cli_unary(cli, path, &req.base, r);
    if (r->code != GRPC_STATUS_OK) {
        return -1;
    }

    resp = (void *) cs_grpc_bb_unpack(r->resp,
        &datadog__remoteagent__v1__register_remote_agent_response__descriptor);
    if (resp == NULL) {
        r->code = GRPC_STATUS_INTERNAL;
        return -1;
    }

    snprintf(cli->session_id, sizeof(cli->session_id), "%s",
        resp->session_id);
    cli->refresh_secs = resp->recommended_refresh_interval_secs;
    if (cli->refresh_secs == 0) {
        cli->refresh_secs = 10;
    }
    cli->next_refresh_ms = cli_now_ms() + cli->refresh_secs * 1000;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return 0;
}

/*
 * Register, trying the current service first and the older AgentSecure
 * path when the server does not know it. Retries while the server is
 * unavailable. Returns 0 or -1 (error reported).
 */
static int
cli_register(cli_t *cli)
{
    int64_t give_up = cli_now_ms() + CLI_GIVE_UP_MS;
    cli_result_t r;
    char *msg;

    for (;;) {
        if (cli_register_on(cli, cli->svc, &r) == 0) {
            cli_result_free(&r);
            return 0;
        }

        if (r.code == GRPC_STATUS_UNIMPLEMENTED
            && strcmp(cli->svc, CLI_SVC_OLD) != 0)
        {
            cli_result_free(&r);
            cli->svc = CLI_SVC_OLD;
            continue;
        }

        if (r.code != GRPC_STATUS_UNAVAILABLE || cli_now_ms() > give_up
            || cli_now_ms() > cli->end_ms)
        {
            msg = cli_details(&r);
            cli_error(cli, "register", r.code, msg);
            gpr_free(msg);
            cli_result_free(&r);
            return -1;
        }

        cli_result_free(&r);
        usleep(CLI_RETRY_MS * 1000);
    }
}

/* Refresh the session; re-register when the server forgot it. */
static int
cli_refresh(cli_t *cli)
{
    Datadog__Remoteagent__V1__RefreshRemoteAgentRequest req =
        DATADOG__REMOTEAGENT__V1__REFRESH_REMOTE_AGENT_REQUEST__INIT;
    cli_result_t r;
    char path[128], *msg;
    grpc_status_code code;

    req.session_id = cli->session_id;
    snprintf(path, sizeof(path), "%sRefreshRemoteAgent", cli->svc);
    cli_unary(cli, path, &req.base, &r);
    code = r.code;
    msg = cli_details(&r);
    cli_result_free(&r);

    cli->next_refresh_ms = cli_now_ms() + cli->refresh_secs * 1000;
    if (code == GRPC_STATUS_NOT_FOUND
        || code == GRPC_STATUS_PERMISSION_DENIED)
    {
        gpr_free(msg);
        return cli_register(cli);
    }

    if (code != GRPC_STATUS_OK && code != GRPC_STATUS_UNAVAILABLE) {
        cli_error(cli, "refresh", code, msg);
        gpr_free(msg);
        return -1;
    }

    gpr_free(msg);
    return 0;
}

/* A value as JSON, redacted when the key is secret. */
static json_object *
cli_value_json(cli_t *cli, const char *key, const Google__Protobuf__Value *pb)
{
    json_object *j;
    cs_value_t *v;

    if (pb == NULL) {
        return NULL;
    }
    if (!cli->show_secrets && cs_schema_is_secret(cli->schema, key)) {
        return json_object_new_string("********");
    }

    v = cs_value_from_pb(pb);
    if (v == NULL) {
        return NULL;
    }

    j = cs_value_to_json(v);
    cs_value_free(v);
    return j;
}

static void
cli_dump_snapshot(cli_t *cli, const Datadog__Model__V1__ConfigSnapshot *s)
{
    json_object *o;
    size_t i;

    for (i = 0; i < s->n_settings; i++) {
        o = json_object_new_object();
        json_object_object_add(o, "event",
            json_object_new_string("setting"));
        json_object_object_add(o, "key",
            json_object_new_string(s->settings[i]->key));
        json_object_object_add(o, "source",
            json_object_new_string(s->settings[i]->source));
        json_object_object_add(o, "value",
            cli_value_json(cli, s->settings[i]->key,
                s->settings[i]->value));
        printf("%s\n", json_object_to_json_string_ext(o,
            JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
    }
    fflush(stdout);
}

static void
cli_on_snapshot(cli_t *cli, const Datadog__Model__V1__ConfigSnapshot *s)
{
    json_object *o = json_object_new_object();
    char line[512];

    cli->snapshots++;
    cli->in_order = 1;
    cli->last_seq = s->sequence_id;

    json_object_object_add(o, "event", json_object_new_string("snapshot"));
    json_object_object_add(o, "seq", json_object_new_int(s->sequence_id));
    json_object_object_add(o, "origin", json_object_new_string(s->origin));
    json_object_object_add(o, "settings",
        json_object_new_int64((int64_t) s->n_settings));
    snprintf(line, sizeof(line), "snapshot seq=%d origin=%s settings=%zu",
        s->sequence_id, s->origin, s->n_settings);
    cli_print(cli, o, line);
}

static void
cli_on_update(cli_t *cli, const Datadog__Model__V1__ConfigUpdate *u)
{
    const Datadog__Model__V1__ConfigSetting *s = u->setting;
    json_object *o = json_object_new_object(), *v;
    char line[1024];

    cli->updates++;
    if (!cli->in_order) {
        fprintf(stderr, "config-stream-client: violation: update %d "
            "before any snapshot\n", u->sequence_id);
        cli->violations++;
    } else if ((int64_t) u->sequence_id != (int64_t) cli->last_seq + 1) {
        fprintf(stderr, "config-stream-client: violation: update %d "
            "after %d\n", u->sequence_id, cli->last_seq);
        cli->violations++;
    }
    cli->last_seq = u->sequence_id;

    v = cli_value_json(cli, s != NULL ? s->key : "",
        s != NULL ? s->value : NULL);
    json_object_object_add(o, "event", json_object_new_string("update"));
    json_object_object_add(o, "seq", json_object_new_int(u->sequence_id));
    json_object_object_add(o, "key",
        json_object_new_string(s != NULL ? s->key : ""));
    json_object_object_add(o, "source",
        json_object_new_string(s != NULL ? s->source : ""));
    snprintf(line, sizeof(line), "update seq=%d key=%s source=%s value=%s"
        "%s%s", u->sequence_id, s != NULL ? s->key : "",
        s != NULL ? s->source : "",
        v != NULL ? json_object_to_json_string_ext(v,
            JSON_C_TO_STRING_PLAIN) : "(none)",
        s != NULL && s->unset_source[0] != '\0' ? " unset_source=" : "",
        s != NULL ? s->unset_source : "");
    json_object_object_add(o, "value", v);
    json_object_object_add(o, "unset_source",
        json_object_new_string(s != NULL ? s->unset_source : ""));
    cli_print(cli, o, line);
}

/* Returns 1 when the client should stop (snapshot dumped). */
static int
cli_on_event(cli_t *cli, grpc_byte_buffer *bb)
{
    Datadog__Model__V1__ConfigEvent *ev;
    int stop = 0;

    ev = (void *) cs_grpc_bb_unpack(bb,
        &datadog__model__v1__config_event__descriptor);
    if (ev == NULL) {
        cli_error(cli, "stream", GRPC_STATUS_INTERNAL,
            "event does not decode");
        return 1;
    }

    cli->samples++;
    switch (ev->event_case) {
    case DATADOG__MODEL__V1__CONFIG_EVENT__EVENT_SNAPSHOT:
        if (cli->dump_snapshot) {
            cli_dump_snapshot(cli, ev->snapshot);
            stop = 1;
        } else {
            cli_on_snapshot(cli, ev->snapshot);
        }
        break;
    case DATADOG__MODEL__V1__CONFIG_EVENT__EVENT_UPDATE:
        cli_on_update(cli, ev->update);
        break;
    default:
        cli_error(cli, "stream", GRPC_STATUS_INTERNAL, "empty event");
        stop = 1;
        break;
    }

    protobuf_c_message_free_unpacked(&ev->base, NULL);
    if (cli->max_samples > 0 && cli->samples >= cli->max_samples) {
        stop = 1;
    }
    return stop;
}

typedef enum {
    CLI_STREAM_DONE = 0,        /* stop: duration, samples or dump done */
    CLI_STREAM_RECONNECT,
    CLI_STREAM_REREGISTER,
    CLI_STREAM_FAILED
} cli_stream_end_t;

/*
 * A stream waits for the daemon while it is unreachable; say so once it
 * has been a while, since a wrong address or certificate looks the same.
 */
static void
cli_check_connected(cli_t *cli)
{
    grpc_connectivity_state state;

    state = grpc_channel_check_connectivity_state(cli->channel, 0);
    if (state == GRPC_CHANNEL_READY) {
        cli->unready_since_ms = 0;
        cli->warned = 0;
        return;
    }

    if (cli->unready_since_ms == 0) {
        cli->unready_since_ms = cli_now_ms();
    } else if (!cli->warned
               && cli_now_ms() - cli->unready_since_ms >= CLI_WARN_MS)
    {
        fprintf(stderr, "config-stream-client: cannot connect to %s yet; "
            "still trying (is the daemon running, and is --cert-file its "
            "certificate?)\n", cli->address);
        cli->warned = 1;
    }
}

/* Wait for tag until the next refresh or the end; 1 when it completed. */
static int
cli_wait(cli_t *cli, void *tag, int *ok, int *stop)
{
    grpc_event ev;
    int64_t until;

    for (;;) {
        until = cli->end_ms;
        if (cli->next_refresh_ms < until) {
            until = cli->next_refresh_ms;
        }
        if (cli_now_ms() + CLI_TICK_MS < until) {
            until = cli_now_ms() + CLI_TICK_MS;
        }

        ev = grpc_completion_queue_pluck(cli->cq, tag,
            cli_deadline_at(until), NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            *ok = ev.success;
            return 1;
        }

        if (cli_now_ms() >= cli->end_ms || cli_signalled) {
            *stop = 1;
            return 0;
        }

        cli_check_connected(cli);

        if (cli_now_ms() >= cli->next_refresh_ms && cli_refresh(cli) < 0) {
            *stop = 1;
            return 0;
        }
    }
}

/* What to do once a stream ended with code. */
static cli_stream_end_t
cli_stream_status(cli_t *cli, grpc_status_code code, grpc_slice details)
{
    char *msg = grpc_slice_to_c_string(details);
    cli_stream_end_t end;

    switch (code) {
    case GRPC_STATUS_UNAVAILABLE:
        end = CLI_STREAM_RECONNECT;
        break;
    case GRPC_STATUS_PERMISSION_DENIED:
    case GRPC_STATUS_NOT_FOUND:
        end = CLI_STREAM_REREGISTER;
        break;
    default:
        cli_error(cli, "stream", code, msg);
        end = CLI_STREAM_FAILED;
        break;
    }

    if (end != CLI_STREAM_FAILED && !cli->json) {
        fprintf(stderr, "config-stream-client: stream ended: %s: %s\n",
            cs_grpc_status_name(code), msg);
    }
    gpr_free(msg);
    return end;
}

static cli_stream_end_t
cli_stream(cli_t *cli)
{
    Datadog__Model__V1__ConfigStreamRequest req =
        DATADOG__MODEL__V1__CONFIG_STREAM_REQUEST__INIT;
    grpc_metadata_array recv_md, trailers;
    grpc_byte_buffer *req_bb, *msg = NULL;
    grpc_status_code code = GRPC_STATUS_OK;
    grpc_slice details = grpc_empty_slice();
    cli_stream_end_t end = CLI_STREAM_DONE;
    grpc_metadata md[2];
    grpc_op ops[4];
    grpc_call *call;
    int start_tag, recv_tag, status_tag, ok, stop = 0;
    size_t nmd;

    req.name = (char *) cli->name;
    req_bb = cs_grpc_bb_pack(&req.base);
    cli_metadata(cli, md, &nmd, 1);
    grpc_metadata_array_init(&recv_md);
    grpc_metadata_array_init(&trailers);
    cli->in_order = 0;

    call = grpc_channel_create_call(cli->channel, NULL,
        GRPC_PROPAGATE_DEFAULTS, cli->cq,
        grpc_slice_from_static_string(CLI_PATH_STREAM), NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

    memset(ops, 0, sizeof(ops));
    /* While the daemon restarts, wait for it rather than fail at once. */
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
    ops[0].data.send_initial_metadata.count = nmd;
    ops[0].data.send_initial_metadata.metadata = md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &recv_md;
    grpc_call_start_batch(call, ops, 4, &start_tag, NULL);

    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.status = &code;
    ops[0].data.recv_status_on_client.status_details = &details;
    ops[0].data.recv_status_on_client.trailing_metadata = &trailers;
    grpc_call_start_batch(call, ops, 1, &status_tag, NULL);

    /* The start waits for the daemon; the end or a signal cuts it short. */
    if (!cli_wait(cli, &start_tag, &ok, &stop)) {
        grpc_call_cancel(call, NULL);
        grpc_completion_queue_pluck(cli->cq, &start_tag,
            gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        end = cli->errors ? CLI_STREAM_FAILED : CLI_STREAM_DONE;
        stop = 1;
    }

    while (!stop) {
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_RECV_MESSAGE;
        ops[0].data.recv_message.recv_message = &msg;
        grpc_call_start_batch(call, ops, 1, &recv_tag, NULL);

        if (!cli_wait(cli, &recv_tag, &ok, &stop)) {
            /* Out of time: cancel, then collect the pending receive. */
            grpc_call_cancel(call, NULL);
            grpc_completion_queue_pluck(cli->cq, &recv_tag,
                gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (msg != NULL) {
                grpc_byte_buffer_destroy(msg);
            }
            end = cli->errors ? CLI_STREAM_FAILED : CLI_STREAM_DONE;
            break;
        }

        if (msg == NULL) {
            grpc_completion_queue_pluck(cli->cq, &status_tag,
                gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            end = cli_stream_status(cli, code, details);
            goto out_free;
        }

        stop = cli_on_event(cli, msg);
        grpc_byte_buffer_destroy(msg);
        msg = NULL;
        if (stop) {
            grpc_call_cancel(call, NULL);
            end = cli->errors ? CLI_STREAM_FAILED : CLI_STREAM_DONE;
        }
    }

    grpc_completion_queue_pluck(cli->cq, &status_tag,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

out_free:
    grpc_call_unref(call);
    grpc_byte_buffer_destroy(req_bb);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&recv_md);
    grpc_metadata_array_destroy(&trailers);
    return end;
}

static void
cli_summary(cli_t *cli)
{
    json_object *o = json_object_new_object();
    char line[256];

    json_object_object_add(o, "event", json_object_new_string("summary"));
    json_object_object_add(o, "snapshots",
        json_object_new_int64(cli->snapshots));
    json_object_object_add(o, "updates", json_object_new_int64(cli->updates));
    json_object_object_add(o, "violations",
        json_object_new_int64(cli->violations));
    json_object_object_add(o, "reconnects",
        json_object_new_int64(cli->reconnects));
    json_object_object_add(o, "errors", json_object_new_int64(cli->errors));
    snprintf(line, sizeof(line), "summary: %ld snapshots, %ld updates, "
        "%ld violations, %ld reconnects, %ld errors", cli->snapshots,
        cli->updates, cli->violations, cli->reconnects, cli->errors);
    cli_print(cli, o, line);
}

static int
cli_parse_args(cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "ipc-address", required_argument, NULL, 'a' },
        { "auth-token", required_argument, NULL, 't' },
        { "auth-token-file", required_argument, NULL, 'T' },
        { "cert-file", required_argument, NULL, 'C' },
        { "insecure", no_argument, NULL, 'i' },
        { "name", required_argument, NULL, 'n' },
        { "duration", required_argument, NULL, 'd' },
        { "max-samples", required_argument, NULL, 'm' },
        { "json", no_argument, NULL, 'j' },
        { "dump-snapshot", no_argument, NULL, 'D' },
        { "show-secrets", no_argument, NULL, 'S' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'a': cli->address = optarg; break;
        case 't': cli->token = optarg; break;
        case 'T': cli->token_file = optarg; break;
        case 'C': cli->cert_file = optarg; break;
        case 'i': cli->insecure = 1; break;
        case 'n': cli->name = optarg; break;
        case 'd': cli->duration = strtod(optarg, NULL); break;
        case 'm': cli->max_samples = strtol(optarg, NULL, 10); break;
        case 'j': cli->json = 1; break;
        case 'D': cli->dump_snapshot = 1; break;
        case 'S': cli->show_secrets = 1; break;
        case 'h':
            cli_usage(stdout);
            exit(0);
        default:
            cli_usage(stderr);
            return -EINVAL;
        }
    }

    if (optind != argc || cli->address == NULL
        || (cli->token == NULL) == (cli->token_file == NULL)
        || (cli->cert_file == NULL) == !cli->insecure)
    {
        cli_usage(stderr);
        return -EINVAL;
    }

    return 0;
}

/*
 * The certificate blocks of a PEM file, as TLS roots. The file may also
 * hold the private key (the IPC certificate file does); it is left out.
 */
static char *
cli_read_roots(const char *path)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    char *data = NULL, *roots = NULL, *p, *q;
    size_t cap = 0, n = 0, len;
    FILE *f;

    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "config-stream-client: open %s: %s\n", path,
            strerror(errno));
        return NULL;
    }
    if (getdelim(&data, &cap, '\0', f) < 0) {
        fclose(f);
        free(data);
        fprintf(stderr, "config-stream-client: read %s failed\n", path);
        return NULL;
    }
    fclose(f);

    roots = calloc(1, strlen(data) + 1);
    for (p = strstr(data, begin); roots != NULL && p != NULL;
        p = strstr(q, begin))
    {
        q = strstr(p, end);
        if (q == NULL) {
            break;
        }
        q += sizeof(end) - 1;
        len = (size_t) (q - p);
        memcpy(roots + n, p, len);
        n += len;
        roots[n++] = '\n';
    }
    free(data);

    if (roots != NULL && n == 0) {
        fprintf(stderr, "config-stream-client: %s holds no certificate\n",
            path);
        free(roots);
        roots = NULL;
    }
    return roots;
}

static int
cli_connect(cli_t *cli)
{
    /*
     * The daemon is local: reconnect within a second of it coming back,
     * rather than after gRPC's default back-off of up to two minutes.
     */
    grpc_arg backoff[] = {
        { GRPC_ARG_INTEGER, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
          { .integer = 100 } },
        { GRPC_ARG_INTEGER, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
          { .integer = 100 } },
        { GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
          { .integer = 1000 } },
    };
    grpc_channel_args args = { 3, backoff };
    grpc_channel_credentials *creds;
    char *roots, err[256];
    int rc;

    if (cli->token_file != NULL) {
        rc = cs_credentials_read_token(cli->token_file, &cli->token_buf,
            err, sizeof(err));
        if (rc < 0) {
            fprintf(stderr, "config-stream-client: %s\n", err);
            return rc;
        }
        cli->token = cli->token_buf;
    }
    snprintf(cli->bearer, sizeof(cli->bearer), "Bearer %s", cli->token);

    if (cli->insecure) {
        creds = grpc_insecure_credentials_create();
    } else {
        roots = cli_read_roots(cli->cert_file);
        if (roots == NULL) {
            return -EINVAL;
        }
        creds = grpc_ssl_credentials_create(roots, NULL, NULL, NULL);
        free(roots);
    }

    cli->channel = grpc_channel_create(cli->address, creds, &args);
    grpc_channel_credentials_release(creds);
    cli->cq = grpc_completion_queue_create_for_pluck(NULL);
    return 0;
}

static void
cli_run(cli_t *cli)
{
    int64_t failing_since = 0;
    long seen;
    cli_stream_end_t end;

    if (cli_register(cli) < 0) {
        return;
    }

    for (;;) {
        seen = cli->samples;
        end = cli_stream(cli);
        if (end == CLI_STREAM_DONE || end == CLI_STREAM_FAILED) {
            return;
        }

        if (cli->samples > seen) {
            failing_since = 0;
        } else if (failing_since == 0) {
            failing_since = cli_now_ms();
        } else if (cli_now_ms() - failing_since > CLI_GIVE_UP_MS) {
            cli_error(cli, "stream", GRPC_STATUS_UNAVAILABLE,
                "no events for too long, giving up");
            return;
        }

        if (cli_now_ms() >= cli->end_ms || cli_signalled) {
            return;
        }

        cli->reconnects++;
        usleep(CLI_RETRY_MS * 1000);
        if (end == CLI_STREAM_REREGISTER && cli_register(cli) < 0) {
            return;
        }
    }
}

int
main(int argc, char **argv)
{
    struct sigaction sa;
    cli_t cli;

    memset(&cli, 0, sizeof(cli));
    cli.name = "config-stream-client";
    cli.svc = CLI_SVC_NEW;
    if (cli_parse_args(&cli, argc, argv) < 0) {
        return 2;
    }

    /* Without the schema the name rule alone decides what is secret. */
    if (!cli.show_secrets) {
        char err[256];

        if (cs_schema_load(&cli.schema, NULL, err, sizeof(err)) != 0) {
            cli.schema = NULL;
        }
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cli_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    grpc_init();
    if (cli_connect(&cli) < 0) {
        grpc_shutdown();
        return 1;
    }

    cli.end_ms = cli.duration > 0
        ? cli_now_ms() + (int64_t) (cli.duration * 1000) : INT64_MAX;
    cli.next_refresh_ms = INT64_MAX;
    cli_run(&cli);
    if (!cli.dump_snapshot) {
        cli_summary(&cli);
    }

    grpc_channel_destroy(cli.channel);
    grpc_completion_queue_shutdown(cli.cq);
    while (grpc_completion_queue_pluck(cli.cq, NULL,
            gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type
        != GRPC_QUEUE_SHUTDOWN)
    {
    }
    grpc_completion_queue_destroy(cli.cq);
    free(cli.token_buf);
    cs_schema_free(cli.schema);
    grpc_shutdown_blocking();
    return cli.violations > 0 || cli.errors > 0 ? 1 : 0;
}
