/*
 * The daemon's own settings: defaults < file < environment, resolved
 * through the schema like every streamed setting, then checked.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envlayer.h"
#include "flatten.h"
#include "resolve.h"
#include "schema.h"

extern char **environ;

typedef struct {
    const cs_resolution_t *res;
    const cs_value_t *pos;      /* file positions, or NULL */
    const char *path;
    char *err;
    size_t errlen;
} config_ctx_t;

/* The newer spelling of a key, when it has one. */
static const char *
config_newer(const char *key, char *buf, size_t len)
{
    static const struct {
        const char *old, *new;
    } renames[] = {
        { "remote_agent_registry.", "remote_agent.registry." },
        { "config_stream.", "remote_agent.configstream." },
    };
    size_t i, olen;

    for (i = 0; i < sizeof(renames) / sizeof(renames[0]); i++) {
        olen = strlen(renames[i].old);
        if (strncmp(key, renames[i].old, olen) == 0) {
            snprintf(buf, len, "%s%s", renames[i].new, key + olen);
            return buf;
        }
    }

    return NULL;
}

/* The resolved setting for key, preferring a newer spelling's value. */
static const cs_resolved_t *
config_find(config_ctx_t *ctx, const char *key)
{
    const cs_resolved_t *r;
    const char *newer;
    char buf[256];

    newer = config_newer(key, buf, sizeof(buf));
    if (newer != NULL) {
        r = cs_resolution_find(ctx->res, newer);
        if (r != NULL && r->value->kind != CS_VAL_NULL) {
            return r;
        }
    }

    r = cs_resolution_find(ctx->res, key);
    if (r != NULL && r->value->kind == CS_VAL_NULL) {
        return NULL;
    }

    return r;
}

static int __attribute__((format(printf, 3, 4)))
config_fail(config_ctx_t *ctx, const cs_resolved_t *r, const char *fmt, ...)
{
    const cs_value_t *where = NULL;
    va_list ap;
    int n;

    if (r->source == CS_SRC_FILE && ctx->pos != NULL) {
        where = cs_value_map_get(ctx->pos, r->key);
    }

    if (where != NULL && where->kind == CS_VAL_LIST && where->u.list.n == 2) {
        n = snprintf(ctx->err, ctx->errlen, "%s:%d:%d: %s: ", ctx->path,
            (int) where->u.list.items[0]->u.number,
            (int) where->u.list.items[1]->u.number, r->key);
    } else {
        n = snprintf(ctx->err, ctx->errlen, "%s: %s: ",
            cs_source_name(r->source), r->key);
    }

    if (n >= 0 && (size_t) n < ctx->errlen) {
        va_start(ap, fmt);
        vsnprintf(ctx->err + n, ctx->errlen - n, fmt, ap);
        va_end(ap);
    }

    return -EINVAL;
}

static int
config_string(config_ctx_t *ctx, const char *key, const char *def,
    char **out)
{
    const cs_resolved_t *r;
    const char *s = def;

    r = config_find(ctx, key);
    if (r != NULL) {
        if (r->value->kind != CS_VAL_STRING) {
            return config_fail(ctx, r, "expected a string");
        }
        s = r->value->u.str.ptr;
    }

    if (s == NULL) {
        *out = NULL;
        return 0;
    }

    *out = strdup(s);
    return *out != NULL ? 0 : -ENOMEM;
}

static int
config_number(config_ctx_t *ctx, const char *key, double def, double min,
    double max, double *out)
{
    const cs_resolved_t *r;

    *out = def;

    r = config_find(ctx, key);
    if (r == NULL) {
        return 0;
    }

    if (r->value->kind != CS_VAL_NUMBER || !isfinite(r->value->u.number)) {
        return config_fail(ctx, r, "expected a number");
    }

    *out = r->value->u.number;
    if (*out < min || *out > max) {
        return config_fail(ctx, r, "must be between %.0f and %.0f, got %g",
            min, max, *out);
    }

    return 0;
}

static int
config_bool(config_ctx_t *ctx, const char *key, int def, int *out)
{
    const cs_resolved_t *r;

    *out = def;

    r = config_find(ctx, key);
    if (r == NULL) {
        return 0;
    }

    if (r->value->kind != CS_VAL_BOOL) {
        return config_fail(ctx, r, "expected a boolean");
    }

    *out = r->value->u.boolean;
    return 0;
}

/* A path setting whose empty value means <run_path>/rel. */
static int
config_path(config_ctx_t *ctx, const char *key, const char *run_path,
    const char *rel, char **out)
{
    int rc;

    rc = config_string(ctx, key, "", out);
    if (rc < 0) {
        return rc;
    }

    if (*out != NULL && (*out)[0] != '\0') {
        return 0;
    }

    free(*out);
    if (asprintf(out, "%s/%s", run_path, rel) < 0) {
        *out = NULL;
        return -ENOMEM;
    }

    return 0;
}

static int
config_read_paths(config_ctx_t *ctx, cs_config_t *cfg)
{
    char *s = NULL;
    int rc;

    rc = config_string(ctx, "cmd_host", "localhost", &cfg->cmd_host);
    if (rc == 0) {
        rc = config_string(ctx, "run_path", "/opt/datadog-agent/run",
            &cfg->run_path);
    }
    if (rc < 0) {
        return rc;
    }

    if (cfg->run_path[0] == '\0') {
        free(cfg->run_path);
        cfg->run_path = strdup(".");
        if (cfg->run_path == NULL) {
            return -ENOMEM;
        }
    }

    if ((rc = config_path(ctx, "auth_token_file_path", cfg->run_path,
             "auth_token", &cfg->auth_token_file_path)) < 0
        || (rc = config_path(ctx, "ipc_cert_file_path", cfg->run_path,
                "ipc_cert.pem", &cfg->ipc_cert_file_path)) < 0
        || (rc = config_path(ctx, "config_stream.store_path", cfg->run_path,
                "configstream/store", &cfg->store_path)) < 0
        || (rc = config_path(ctx, "config_stream.shm_path", cfg->run_path,
                "configstream/shm", &cfg->shm_path)) < 0)
    {
        return rc;
    }

    if (asprintf(&cfg->control_socket, "%s/configstream/resolver.sock",
            cfg->run_path) < 0)
    {
        cfg->control_socket = NULL;
        return -ENOMEM;
    }
    if (asprintf(&cfg->broker_socket, "%s/configstream/broker.sock",
            cfg->run_path) < 0)
    {
        cfg->broker_socket = NULL;
        return -ENOMEM;
    }

    rc = config_string(ctx, "fleet_policies_dir", NULL, &s);
    if (rc < 0) {
        return rc;
    }
    if (s != NULL && s[0] == '\0') {
        free(s);
        s = NULL;
    }
    cfg->fleet_policies_dir = s;

    return config_string(ctx, "config_stream.telemetry_address",
        "127.0.0.1:5002", &cfg->telemetry_address);
}

/* A host the config stream or the telemetry can listen on for 127.0.0.1. */
static int
config_host_is_local(const char *h, size_t n)
{
    static const char *const any[] = {
        "", "*", "0.0.0.0", "::", "[::]", "localhost", "127.0.0.1", "::1",
        "[::1]"
    };
    size_t i;

    for (i = 0; i < sizeof(any) / sizeof(any[0]); i++) {
        if (strlen(any[i]) == n && strncmp(h, any[i], n) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * The telemetry endpoint must not take the config stream's own port: the
 * frontends could never listen, and clients would reach an HTTP server.
 * Same port and the same host, or hosts that both cover loopback, clash.
 */
static int
config_check_addresses(config_ctx_t *ctx, const cs_config_t *cfg)
{
    const char *addr = cfg->telemetry_address, *colon;
    const cs_resolved_t *r;
    size_t hlen;
    char *end;
    long port;

    if (addr == NULL || (colon = strrchr(addr, ':')) == NULL) {
        return 0;
    }
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port != cfg->cmd_port) {
        return 0;
    }

    hlen = (size_t) (colon - addr);
    if ((strlen(cfg->cmd_host) != hlen
            || strncmp(cfg->cmd_host, addr, hlen) != 0)
        && !(config_host_is_local(addr, hlen)
            && config_host_is_local(cfg->cmd_host, strlen(cfg->cmd_host))))
    {
        return 0;
    }

    r = config_find(ctx, "config_stream.telemetry_address");
    if (r == NULL) {
        r = config_find(ctx, "cmd_port");
    }
    if (r == NULL) {
        snprintf(ctx->err, ctx->errlen, "config_stream.telemetry_address "
            "%s is the config stream's address %s:%d", addr, cfg->cmd_host,
            cfg->cmd_port);
        return -EINVAL;
    }
    return config_fail(ctx, r, "%s is the config stream's own address "
        "(cmd_host %s, cmd_port %d)", addr, cfg->cmd_host, cfg->cmd_port);
}

static int
config_read_numbers(config_ctx_t *ctx, cs_config_t *cfg)
{
    const cs_resolved_t *r;
    double d;
    int rc;

    if ((rc = config_number(ctx, "cmd_port", 5001, 1, 65535, &d)) < 0) {
        return rc;
    }
    cfg->cmd_port = (int) d;

    if ((rc = config_bool(ctx, "remote_agent_registry.enabled", 1,
             &cfg->rar_enabled)) < 0
        || (rc = config_bool(ctx, "config_stream.tls_enabled", 1,
                &cfg->tls_enabled)) < 0)
    {
        return rc;
    }

    /* Durations are nanoseconds; the daemon keeps milliseconds. */
    if ((rc = config_number(ctx, "remote_agent_registry.idle_timeout",
             30e9, 1e6, 1e15, &d)) < 0)
    {
        return rc;
    }
    cfg->rar_idle_timeout_ms = (int64_t) (d / 1e6);

    if ((rc = config_number(ctx,
             "remote_agent_registry.recommended_refresh_interval", 10e9, 1e9,
             1e15, &d)) < 0)
    {
        return rc;
    }
    cfg->rar_refresh_interval_ms = (int64_t) (d / 1e6);

    if ((rc = config_number(ctx, "remote_agent_registry.max_sessions", 1024,
             1, 1 << 20, &d)) < 0)
    {
        return rc;
    }
    cfg->rar_max_sessions = (uint32_t) d;

    if ((rc = config_number(ctx, "config_stream.sleep_interval", 10e6, 0,
             60e9, &d)) < 0)
    {
        return rc;
    }
    cfg->sleep_interval_ms = (int64_t) (d / 1e6);

    if ((rc = config_number(ctx, "config_stream.workers", 0, 0, 1024,
             &d)) < 0)
    {
        return rc;
    }
    cfg->workers = (int) d;

    if ((rc = config_number(ctx, "config_stream.queue_size", 64, 1,
             1 << 20, &d)) < 0)
    {
        return rc;
    }
    cfg->queue_size = (uint32_t) d;

    if ((rc = config_number(ctx, "config_stream.changelog_retention", 10000,
             1, 1e12, &d)) < 0)
    {
        return rc;
    }
    cfg->changelog_retention = (uint64_t) d;

    cfg->log_level = CS_LOG_INFO;
    r = config_find(ctx, "log_level");
    if (r != NULL) {
        if (r->value->kind != CS_VAL_STRING
            || cs_log_level_parse(r->value->u.str.ptr, &cfg->log_level) < 0)
        {
            return config_fail(ctx, r, "unknown log level");
        }
    }

    return 0;
}

static int
config_set_origin(cs_config_t *cfg, const char *path)
{
    const char *base;

    if (path == NULL) {
        cfg->origin = strdup("core-agent");
    } else {
        base = strrchr(path, '/');
        cfg->origin = strdup(base != NULL ? base + 1 : path);
    }

    return cfg->origin != NULL ? 0 : -ENOMEM;
}

/* Every daemon setting of the resolution, checked. */
static int
config_read(config_ctx_t *ctx, cs_config_t *cfg)
{
    int rc;

    if ((rc = config_read_paths(ctx, cfg)) < 0
        || (rc = config_read_numbers(ctx, cfg)) < 0)
    {
        return rc;
    }
    return config_check_addresses(ctx, cfg);
}

int
cs_config_load(cs_config_t *cfg, const char *path, const char *schema_path,
    char *err, size_t errlen)
{
    cs_value_t *layers[CS_SRC_COUNT] = { NULL };
    cs_value_t *pos = NULL;
    cs_resolution_t *res = NULL;
    cs_schema_t *schema = NULL;
    config_ctx_t ctx;
    int rc, i;

    memset(cfg, 0, sizeof(*cfg));

    rc = cs_schema_load(&schema, schema_path, err, errlen);
    if (rc < 0) {
        return rc;
    }

    rc = cs_schema_defaults(schema, &layers[CS_SRC_DEFAULT]);
    if (rc < 0) {
        goto out_free;
    }

    if (path != NULL) {
        rc = cs_flatten_file(schema, path, &layers[CS_SRC_FILE], &pos, err,
            errlen);
        if (rc < 0) {
            goto out_free;
        }
    }

    rc = cs_envlayer_load(schema, environ, &layers[CS_SRC_ENV], err, errlen);
    if (rc < 0) {
        goto out_free;
    }

    rc = cs_resolve(layers, &res);
    if (rc < 0) {
        goto out_free;
    }

    ctx.res = res;
    ctx.pos = pos;
    ctx.path = path;
    ctx.err = err;
    ctx.errlen = errlen;

    if ((path != NULL && (cfg->config_path = strdup(path)) == NULL)
        || (schema_path != NULL
            && (cfg->schema_path = strdup(schema_path)) == NULL))
    {
        rc = -ENOMEM;
        goto out_free;
    }

    if ((rc = config_set_origin(cfg, path)) < 0
        || (rc = config_read(&ctx, cfg)) < 0)
    {
        goto out_free;
    }

out_free:
    if (rc < 0) {
        if (rc == -ENOMEM) {
            snprintf(err, errlen, "cannot load settings: %s",
                strerror(ENOMEM));
        }
        cs_config_free(cfg);
    }
    cs_resolution_free(res);
    for (i = 0; i < CS_SRC_COUNT; i++) {
        cs_value_free(layers[i]);
    }
    cs_value_free(pos);
    cs_schema_free(schema);
    return rc;
}

int
cs_config_check_value(const char *key, const cs_value_t *value, char *err,
    size_t errlen)
{
    cs_value_t *layers[CS_SRC_COUNT] = { NULL };
    cs_resolution_t *res = NULL;
    config_ctx_t ctx;
    cs_config_t cfg;
    cs_value_t *v;
    int rc;

    /* The value alone, as the winner: every other setting defaults. */
    layers[CS_SRC_RUNTIME] = cs_value_map();
    v = cs_value_clone(value);
    if (layers[CS_SRC_RUNTIME] == NULL || v == NULL) {
        cs_value_free(v);
        rc = -ENOMEM;
        goto out_free;
    }
    rc = cs_value_map_set(layers[CS_SRC_RUNTIME], key, v);
    if (rc == 0) {
        rc = cs_resolve(layers, &res);
    }
    if (rc != 0) {
        goto out_free;
    }

    memset(&cfg, 0, sizeof(cfg));
    ctx.res = res;
    ctx.pos = NULL;
    ctx.path = NULL;
    ctx.err = err;
    ctx.errlen = errlen;

    rc = config_read(&ctx, &cfg);
    cs_config_free(&cfg);

out_free:
    if (rc == -ENOMEM) {
        snprintf(err, errlen, "%s: %s", key, strerror(ENOMEM));
    }
    cs_resolution_free(res);
    cs_value_free(layers[CS_SRC_RUNTIME]);
    return rc;
}

void
cs_config_free(cs_config_t *cfg)
{
    free(cfg->config_path);
    free(cfg->schema_path);
    free(cfg->origin);
    free(cfg->cmd_host);
    free(cfg->run_path);
    free(cfg->auth_token_file_path);
    free(cfg->ipc_cert_file_path);
    free(cfg->fleet_policies_dir);
    free(cfg->telemetry_address);
    free(cfg->store_path);
    free(cfg->shm_path);
    free(cfg->control_socket);
    free(cfg->broker_socket);
    memset(cfg, 0, sizeof(*cfg));
}
