/*
 * configstream-ctl: talk to a running configstream-resolver over its
 * control socket (set, unset, get, reload, status) and to the broker over
 * its socket (sessions, revoke).
 *
 * Exit status: 0 ok, 1 failure (including a resolver that is not
 * running), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "broker_client.h"
#include "config.h"
#include "control.h"
#include "resolve.h"
#include "schema.h"
#include "value.h"

#define CTL_NAME "configstream-ctl"
#define CTL_TIMEOUT_MS 10000

typedef Configstream__Control__V1__ControlRequest ctl_req_t;
typedef Configstream__Control__V1__ControlResponse ctl_resp_t;

typedef struct {
    const char *config_path;
    const char *schema_path;
    const char *socket_path;
    const char *source;
    int json;
    int show_secrets;
    cs_config_t cfg;
    int cfg_loaded;
} ctl_t;

static void
ctl_usage(FILE *out)
{
    fprintf(out,
        "usage: " CTL_NAME " [-c FILE | --socket PATH] COMMAND [ARGS]\n"
        "\n"
        "commands:\n"
        "  set KEY VALUE [--source S]  set a runtime value (S: agent-runtime"
        " (default),\n"
        "                              remote-config or cli); VALUE is YAML"
        "\n"
        "  unset KEY [--source S]      remove a runtime value (S as for set)"
        "\n"
        "  get KEY                     resolved value, source, id, layers\n"
        "  reload                      reload the config files now\n"
        "  status                      head id, epoch, settings, last reload"
        "\n"
        "  sessions                    list remote agent sessions\n"
        "  revoke ID                   end a session (id or 8+ char prefix)"
        "\n"
        "\n"
        "options:\n"
        "  -c, --config FILE    the daemon's config file (finds the sockets)"
        "\n"
        "      --socket PATH    the resolver's control socket\n"
        "      --schema FILE    settings schema (for secret redaction)\n"
        "      --json           JSON output (get, status, sessions)\n"
        "      --show-secrets   do not redact secret values\n"
        "  -h, --help           this help\n"
        "\n"
        "A VALUE starting with '-' needs `--` before the command.\n");
}

static int
ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
ctl_fail(const char *fmt, ...)
{
    va_list ap;

    fputs(CTL_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);

    return 1;
}

static int
ctl_config(ctl_t *c)
{
    char err[1024];

    if (c->cfg_loaded) {
        return 0;
    }
    if (cs_config_load(&c->cfg, c->config_path, c->schema_path, err,
        sizeof(err)) != 0)
    {
        return ctl_fail("%s (--socket PATH reaches the resolver without "
            "reading the config)", err);
    }
    c->cfg_loaded = 1;

    return 0;
}

static int
ctl_call(ctl_t *c, const ctl_req_t *req, ctl_resp_t **resp)
{
    const char *path = c->socket_path;
    char err[1024];

    if (path == NULL) {
        if (ctl_config(c) != 0) {
            return 1;
        }
        path = c->cfg.control_socket;
    }

    if (cs_control_call(path, req, resp, CTL_TIMEOUT_MS, err, sizeof(err))
        != 0)
    {
        return ctl_fail("%s", err);
    }
    if (!(*resp)->ok) {
        ctl_fail("%s", (*resp)->error[0] ? (*resp)->error : "failed");
        configstream__control__v1__control_response__free_unpacked(*resp,
            NULL);
        return 1;
    }

    return 0;
}

static int
ctl_source_check(const char *name)
{
    cs_source_t src;

    if (cs_source_parse(name, &src) != 0 || (src != CS_SRC_RUNTIME
        && src != CS_SRC_REMOTE_CONFIG && src != CS_SRC_CLI))
    {
        fprintf(stderr, CTL_NAME ": unknown source '%s' (agent-runtime, "
            "remote-config or cli)\n", name);
        return 2;
    }

    return 0;
}

static cs_schema_t *ctl_schema(ctl_t *c);

static int
ctl_set(ctl_t *c, char **args, int n)
{
    Configstream__Control__V1__SetRequest set =
        CONFIGSTREAM__CONTROL__V1__SET_REQUEST__INIT;
    ctl_req_t req = CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__INIT;
    ctl_resp_t *resp;

    if (n != 2) {
        fprintf(stderr, CTL_NAME ": usage: set KEY VALUE [--source S]\n");
        return 2;
    }
    if (c->source != NULL && ctl_source_check(c->source) != 0) {
        return 2;
    }

    set.key = args[0];
    set.value_text = args[1];
    set.source = (char *) (c->source ? c->source : "agent-runtime");
    req.request_case = CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__REQUEST_SET;
    req.set = &set;

    if (ctl_call(c, &req, &resp) != 0) {
        return 1;
    }

    printf("%s set in %s: %" PRIu64 " changes, head %" PRIu64 "\n",
        args[0], set.source, resp->changes, resp->head_sequence_id);
    if (ctl_schema(c) != NULL && cs_schema_lookup(ctl_schema(c), args[0])
        == NULL)
    {
        fprintf(stderr, CTL_NAME ": note: %s is not in the schema; it is "
            "streamed with the type its value was written in\n", args[0]);
    }
    configstream__control__v1__control_response__free_unpacked(resp, NULL);

    return 0;
}

static int
ctl_unset(ctl_t *c, char **args, int n)
{
    Configstream__Control__V1__UnsetRequest unset =
        CONFIGSTREAM__CONTROL__V1__UNSET_REQUEST__INIT;
    ctl_req_t req = CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__INIT;
    ctl_resp_t *resp;

    if (n != 1) {
        fprintf(stderr, CTL_NAME ": usage: unset KEY [--source S]\n");
        return 2;
    }
    if (c->source != NULL && ctl_source_check(c->source) != 0) {
        return 2;
    }

    unset.key = args[0];
    unset.source = (char *) (c->source ? c->source : "agent-runtime");
    req.request_case =
        CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__REQUEST_UNSET;
    req.unset = &unset;

    if (ctl_call(c, &req, &resp) != 0) {
        return 1;
    }

    printf("%s unset in %s: %" PRIu64 " changes, head %" PRIu64 "\n",
        args[0], unset.source, resp->changes, resp->head_sequence_id);
    configstream__control__v1__control_response__free_unpacked(resp, NULL);

    return 0;
}

/* The schema, loaded on first use; NULL when it cannot be loaded. */
static cs_schema_t *
ctl_schema(ctl_t *c)
{
    static cs_schema_t *schema;
    static int tried;
    char err[256];

    if (!tried) {
        tried = 1;
        if (cs_schema_load(&schema, c->schema_path, err, sizeof(err)) != 0) {
            schema = NULL;
        }
    }

    return schema;
}

/* 1 when key's value must be redacted. */
static int
ctl_secret(ctl_t *c, const char *key)
{
    if (c->show_secrets) {
        return 0;
    }

    /* Without a schema, the name rule alone decides. */
    return cs_schema_is_secret(ctl_schema(c), key);
}

/* A value as JSON (new reference), redacted when secret. */
static json_object *
ctl_value_json(ctl_t *c, const char *key, const Google__Protobuf__Value *pb)
{
    cs_value_t *v;
    json_object *j;

    if (pb == NULL) {
        return NULL;
    }
    if (ctl_secret(c, key)) {
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

static const char *
ctl_json_text(json_object *j)
{
    return j ? json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN
        | JSON_C_TO_STRING_NOSLASHESCAPE) : "null";
}

static void
ctl_get_print(ctl_t *c, const Configstream__Control__V1__GetResponse *g)
{
    json_object *o, *layers, *j;
    size_t i;

    if (c->json) {
        o = json_object_new_object();
        json_object_object_add(o, "key", json_object_new_string(g->key));
        json_object_object_add(o, "found", json_object_new_boolean(g->found));
        if (g->found) {
            json_object_object_add(o, "source",
                json_object_new_string(g->source));
            json_object_object_add(o, "value",
                ctl_value_json(c, g->key, g->value));
            json_object_object_add(o, "seq",
                json_object_new_uint64(g->sequence_id));
        }
        layers = json_object_new_object();
        for (i = 0; i < g->n_layers; i++) {
            json_object_object_add(layers, g->layers[i]->source,
                ctl_value_json(c, g->key, g->layers[i]->value));
        }
        json_object_object_add(o, "layers", layers);
        printf("%s\n", ctl_json_text(o));
        json_object_put(o);
        return;
    }

    printf("key: %s\n", g->key);
    j = ctl_value_json(c, g->key, g->value);
    printf("value: %s\n", ctl_json_text(j));
    json_object_put(j);
    printf("source: %s\n", g->source);
    printf("sequence_id: %" PRIu64 "\n", g->sequence_id);
    printf("layers:\n");
    for (i = 0; i < g->n_layers; i++) {
        j = ctl_value_json(c, g->key, g->layers[i]->value);
        printf("  %s: %s\n", g->layers[i]->source, ctl_json_text(j));
        json_object_put(j);
    }
}

static int
ctl_get(ctl_t *c, char **args, int n)
{
    Configstream__Control__V1__GetRequest get =
        CONFIGSTREAM__CONTROL__V1__GET_REQUEST__INIT;
    ctl_req_t req = CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__INIT;
    ctl_resp_t *resp;
    int rc = 0;

    if (n != 1) {
        fprintf(stderr, CTL_NAME ": usage: get KEY\n");
        return 2;
    }

    get.key = args[0];
    req.request_case = CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__REQUEST_GET;
    req.get = &get;

    if (ctl_call(c, &req, &resp) != 0) {
        return 1;
    }

    if (resp->get == NULL || !resp->get->found) {
        rc = ctl_fail("%s: no layer holds this key", args[0]);
    } else {
        ctl_get_print(c, resp->get);
    }
    configstream__control__v1__control_response__free_unpacked(resp, NULL);

    return rc;
}

static int
ctl_reload(ctl_t *c, int n)
{
    Configstream__Control__V1__ReloadRequest reload =
        CONFIGSTREAM__CONTROL__V1__RELOAD_REQUEST__INIT;
    ctl_req_t req = CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__INIT;
    ctl_resp_t *resp;

    if (n != 0) {
        fprintf(stderr, CTL_NAME ": usage: reload\n");
        return 2;
    }

    req.request_case =
        CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__REQUEST_RELOAD;
    req.reload = &reload;

    if (ctl_call(c, &req, &resp) != 0) {
        return 1;
    }

    printf("reloaded: %" PRIu64 " changes, head %" PRIu64 "\n",
        resp->changes, resp->head_sequence_id);
    configstream__control__v1__control_response__free_unpacked(resp, NULL);

    return 0;
}

static void
ctl_time_text(int64_t ms, char *buf, size_t len)
{
    struct tm tm;
    time_t t;

    if (ms <= 0) {
        snprintf(buf, len, "never");
        return;
    }

    t = (time_t) (ms / 1000);
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
        tm.tm_sec, (int) (ms % 1000));
}

static void
ctl_status_print(ctl_t *c, const Configstream__Control__V1__StatusResponse
    *st)
{
    char epoch[33], when[64];
    json_object *o, *r;
    size_t i;

    epoch[0] = '\0';
    for (i = 0; i < st->epoch.len && i < 16; i++) {
        snprintf(epoch + 2 * i, 3, "%02x", st->epoch.data[i]);
    }
    ctl_time_text(st->last_reload_unix_ms, when, sizeof(when));

    if (c->json) {
        o = json_object_new_object();
        json_object_object_add(o, "head",
            json_object_new_uint64(st->head_sequence_id));
        json_object_object_add(o, "epoch", json_object_new_string(epoch));
        json_object_object_add(o, "settings",
            json_object_new_uint64(st->setting_count));
        json_object_object_add(o, "origin", json_object_new_string(st->origin));
        json_object_object_add(o, "pid", json_object_new_int(st->pid));
        json_object_object_add(o, "broker_attached",
            json_object_new_boolean(st->broker_attached));
        r = json_object_new_object();
        json_object_object_add(r, "ok",
            json_object_new_boolean(st->last_reload_ok));
        json_object_object_add(r, "changes",
            json_object_new_uint64(st->last_reload_changes));
        json_object_object_add(r, "error",
            json_object_new_string(st->last_reload_error));
        json_object_object_add(r, "time", json_object_new_string(when));
        json_object_object_add(o, "last_reload", r);
        printf("%s\n", ctl_json_text(o));
        json_object_put(o);
        return;
    }

    printf("head: %" PRIu64 "\n", st->head_sequence_id);
    printf("epoch: %s\n", epoch);
    printf("settings: %" PRIu64 "\n", st->setting_count);
    printf("origin: %s\n", st->origin);
    printf("pid: %d\n", (int) st->pid);
    printf("broker: %s\n", st->broker_attached ? "attached" : "absent");
    if (st->last_reload_ok) {
        printf("last reload: ok, %" PRIu64 " changes, at %s\n",
            st->last_reload_changes, when);
    } else {
        printf("last reload: failed at %s: %s\n", when,
            st->last_reload_error);
    }
}

static int
ctl_status(ctl_t *c, int n)
{
    Configstream__Control__V1__StatusRequest status =
        CONFIGSTREAM__CONTROL__V1__STATUS_REQUEST__INIT;
    ctl_req_t req = CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__INIT;
    ctl_resp_t *resp;

    if (n != 0) {
        fprintf(stderr, CTL_NAME ": usage: status\n");
        return 2;
    }

    req.request_case =
        CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__REQUEST_STATUS;
    req.status = &status;

    if (ctl_call(c, &req, &resp) != 0) {
        return 1;
    }
    if (resp->status == NULL) {
        configstream__control__v1__control_response__free_unpacked(resp,
            NULL);
        return ctl_fail("malformed status answer");
    }

    ctl_status_print(c, resp->status);
    configstream__control__v1__control_response__free_unpacked(resp, NULL);

    return 0;
}

static int
ctl_broker(ctl_t *c, cs_broker_client_t **bc)
{
    int rc;

    if (ctl_config(c) != 0) {
        return 1;
    }

    rc = cs_broker_client_new(bc, c->cfg.broker_socket);
    if (rc != 0) {
        return ctl_fail("broker client: %s", strerror(-rc));
    }

    return 0;
}

static int
ctl_sessions(ctl_t *c, int n)
{
    cs_broker_session_info_t *s = NULL;
    cs_broker_client_t *bc;
    cs_broker_reply_t reply;
    json_object *o;
    size_t count = 0, i;
    int rc;

    if (n != 0) {
        fprintf(stderr, CTL_NAME ": usage: sessions\n");
        return 2;
    }
    if (ctl_broker(c, &bc) != 0) {
        return 1;
    }

    rc = cs_broker_client_list(bc, CTL_TIMEOUT_MS, &reply, &s, &count);
    cs_broker_client_free(bc);
    if (rc != 0) {
        return ctl_fail("cannot reach broker at %s: %s",
            c->cfg.broker_socket, strerror(-rc));
    }
    if (reply.code != CS_RPC_OK) {
        free(s);
        return ctl_fail("%s", reply.message);
    }

    if (!c->json) {
        printf("%-8s  %-24s  %-20s  %-8s  %8s  %8s  %s\n", "ID", "NAME",
            "FLAVOR", "PID", "AGE_S", "IDLE_S", "STREAMS");
    }
    for (i = 0; i < count; i++) {
        if (c->json) {
            o = json_object_new_object();
            json_object_object_add(o, "id",
                json_object_new_string(s[i].id_prefix));
            json_object_object_add(o, "display_name",
                json_object_new_string(s[i].display_name));
            json_object_object_add(o, "flavor",
                json_object_new_string(s[i].flavor));
            json_object_object_add(o, "pid", json_object_new_string(s[i].pid));
            json_object_object_add(o, "age_ms",
                json_object_new_int64(s[i].age_ms));
            json_object_object_add(o, "idle_ms",
                json_object_new_int64(s[i].idle_ms));
            json_object_object_add(o, "open_streams",
                json_object_new_int64(s[i].open_streams));
            printf("%s\n", ctl_json_text(o));
            json_object_put(o);
            continue;
        }
        printf("%-8s  %-24s  %-20s  %-8s  %8" PRId64 "  %8" PRId64 "  %u\n",
            s[i].id_prefix, s[i].display_name, s[i].flavor, s[i].pid,
            s[i].age_ms / 1000, s[i].idle_ms / 1000, s[i].open_streams);
    }
    free(s);

    return 0;
}

static int
ctl_revoke(ctl_t *c, char **args, int n)
{
    cs_broker_client_t *bc;
    cs_broker_reply_t reply;
    int rc;

    if (n != 1) {
        fprintf(stderr, CTL_NAME ": usage: revoke ID\n");
        return 2;
    }
    if (ctl_broker(c, &bc) != 0) {
        return 1;
    }

    rc = cs_broker_client_revoke(bc, args[0], CTL_TIMEOUT_MS, &reply);
    cs_broker_client_free(bc);
    if (rc != 0) {
        return ctl_fail("cannot reach broker at %s: %s",
            c->cfg.broker_socket, strerror(-rc));
    }
    if (reply.code != CS_RPC_OK) {
        return ctl_fail("revoke: %s", reply.message);
    }

    printf("revoked\n");

    return 0;
}

static int
ctl_args(ctl_t *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "socket", required_argument, NULL, 'S' },
        { "schema", required_argument, NULL, 'm' },
        { "source", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { "show-secrets", no_argument, NULL, 'x' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int o;

    opterr = 0;
    while ((o = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            c->config_path = optarg;
            break;
        case 'S':
            c->socket_path = optarg;
            break;
        case 'm':
            c->schema_path = optarg;
            break;
        case 's':
            c->source = optarg;
            break;
        case 'j':
            c->json = 1;
            break;
        case 'x':
            c->show_secrets = 1;
            break;
        case 'h':
            ctl_usage(stdout);
            exit(0);
        case ':':
            fprintf(stderr, CTL_NAME ": option '%s' needs a value "
                "(see --help)\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, CTL_NAME ": unknown option '%s' (see --help)\n",
                argv[optind - 1]);
            return 2;
        }
    }

    return 0;
}

int
main(int argc, char **argv)
{
    ctl_t c;
    const char *cmd;
    char **args;
    int n, rc;

    memset(&c, 0, sizeof(c));

    rc = ctl_args(&c, argc, argv);
    if (rc != 0) {
        return rc;
    }
    if (optind >= argc) {
        ctl_usage(stderr);
        return 2;
    }

    cmd = argv[optind];
    args = &argv[optind + 1];
    n = argc - optind - 1;

    if (strcmp(cmd, "set") == 0) {
        rc = ctl_set(&c, args, n);
    } else if (strcmp(cmd, "unset") == 0) {
        rc = ctl_unset(&c, args, n);
    } else if (strcmp(cmd, "get") == 0) {
        rc = ctl_get(&c, args, n);
    } else if (strcmp(cmd, "reload") == 0) {
        rc = ctl_reload(&c, n);
    } else if (strcmp(cmd, "status") == 0) {
        rc = ctl_status(&c, n);
    } else if (strcmp(cmd, "sessions") == 0) {
        rc = ctl_sessions(&c, n);
    } else if (strcmp(cmd, "revoke") == 0) {
        rc = ctl_revoke(&c, args, n);
    } else {
        fprintf(stderr, CTL_NAME ": unknown command '%s' (see --help)\n",
            cmd);
        rc = 2;
    }

    if (c.cfg_loaded) {
        cs_config_free(&c.cfg);
    }

    return rc;
}
