/*
 * configstream-resolver: owns every write to the settings store.
 *
 * It builds the layers (schema defaults, the config file and the files it
 * names, the environment, fleet policies, and the runtime layers kept in
 * the store), commits each resolution's differences in one transaction,
 * publishes the new head in the broker's shared memory, reloads when a
 * watched file changes or on SIGHUP, and answers configstream-ctl on its
 * control socket. It runs in the foreground and logs to stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "engine.h"
#include "envlayer.h"
#include "flatten.h"
#include "log.h"
#include "resolve.h"
#include "schema.h"
#include "shm.h"
#include "store.h"
#include "watch.h"

#define RESOLVER_ROLE "configstream-resolver"
/* KNOWN-ISSUE(debounce-slow-writes) */
#define RESOLVER_DEBOUNCE_MS 150
#define RESOLVER_RETRY_MIN_MS 1000  /* after a failed store commit */
#define RESOLVER_RETRY_MAX_MS 30000
#define RESOLVER_ERR_MAX 1024

extern char **environ;

typedef struct {
    const char *config_path;
    const char *schema_path;
    int once;

    cs_config_t cfg;
    int cfg_loaded;
    cs_schema_t *schema;
    cs_store_t *st;
    cs_engine_t *eng;
    cs_shm_t *shm;
    cs_watch_t *watch;
    cs_control_t *control;
    int sfd;

    /* The last reload, for `ctl status`. */
    int last_ok;
    size_t last_changes;
    int64_t last_ms;
    char last_err[RESOLVER_ERR_MAX];

    /*
     * A reload whose input was good but whose commit failed (a full disk)
     * is retried by itself, with back-off; bad input waits for the next
     * change instead, since retrying it cannot help.
     */
    int commit_failed;
    int64_t retry_at_ms;            /* 0: no retry due */
    int64_t retry_delay_ms;

    /* Error text handed to a control client. */
    char reply_err[RESOLVER_ERR_MAX];
    uint8_t epoch[16];
} resolver_t;

static void
resolver_usage(FILE *out)
{
    fprintf(out,
        "usage: " RESOLVER_ROLE " [-c FILE] [--schema FILE] [--once]\n"
        "\n"
        "  -c, --config FILE   the main config file (datadog.yaml)\n"
        "      --schema FILE   settings schema replacing the embedded one\n"
        "      --once          resolve, commit and exit\n"
        "  -h, --help          this help\n");
}

static int64_t
resolver_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
resolver_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Attach to the broker's segment when it exists; quiet until it does. */
static void
resolver_shm_try(resolver_t *r)
{
    char err[256];

    if (r->shm != NULL || r->cfg.shm_path == NULL) {
        return;
    }
    if (cs_shm_attach(&r->shm, r->cfg.shm_path, err, sizeof(err)) != 0) {
        r->shm = NULL;
        return;
    }

    atomic_store(&cs_shm_header(r->shm)->resolver_pid, (int32_t) getpid());
    cs_shm_publish_head(r->shm, cs_engine_head(r->eng));
    cs_log_notice("shm", "attached to %s", r->cfg.shm_path);
}

static void
resolver_publish(resolver_t *r)
{
    resolver_shm_try(r);
    if (r->shm != NULL) {
        cs_shm_publish_head(r->shm, cs_engine_head(r->eng));
    }
}

/* The fleet policy directory: the environment's, else the file's. */
static const char *
resolver_fleet_dir(const cs_value_t *env, const cs_value_t *file)
{
    const cs_value_t *v;

    v = cs_value_map_get(env, "fleet_policies_dir");
    if (v == NULL || v->kind != CS_VAL_STRING) {
        v = cs_value_map_get(file, "fleet_policies_dir");
    }
    if (v == NULL || v->kind != CS_VAL_STRING || v->u.str.len == 0) {
        return NULL;
    }

    return v->u.str.ptr;
}

static void
resolver_watch_arm(resolver_t *r, char **files, char **fleet_files,
    const char *fleet_dir)
{
    const char **all;
    size_t n = 0, i;

    if (r->watch == NULL) {
        return;
    }

    for (i = 0; files != NULL && files[i] != NULL; i++) {
        n++;
    }
    for (i = 0; fleet_files != NULL && fleet_files[i] != NULL; i++) {
        n++;
    }

    all = calloc(n + 1, sizeof(*all));
    if (all == NULL) {
        return;
    }
    n = 0;
    for (i = 0; files != NULL && files[i] != NULL; i++) {
        all[n++] = files[i];
    }
    for (i = 0; fleet_files != NULL && fleet_files[i] != NULL; i++) {
        all[n++] = fleet_files[i];
    }

    if (cs_watch_set(r->watch, all, n, &fleet_dir, fleet_dir ? 1 : 0)
        != 0)
    {
        cs_log_warn("watch", "cannot watch the config files");
    }
    free(all);
}

/*
 * log_level applies without a restart. Like every own setting it comes
 * from default < file < environment only: runtime layers are streamed but
 * do not reconfigure the process (config.h).
 */
static void
resolver_log_level_follow(resolver_t *r)
{
    static const cs_source_t order[] = {
        CS_SRC_ENV, CS_SRC_FILE, CS_SRC_DEFAULT
    };
    const cs_value_t *v = NULL;
    cs_log_level_t level;
    size_t i;

    for (i = 0; i < sizeof(order) / sizeof(order[0]) && v == NULL; i++) {
        v = cs_engine_layer_value(r->eng, order[i], "log_level");
    }
    if (v == NULL || v->kind != CS_VAL_STRING
        || cs_log_level_parse(v->u.str.ptr, &level) != 0
        || level == cs_log_get_level())
    {
        return;
    }

    cs_log_set_level(level);
    cs_log_notice("main", "log level now %s", v->u.str.ptr);
}

/*
 * LMDB reports a write that ran out of disk as EIO; say what the operator
 * must fix when the store's file system is full.
 */
static void
resolver_commit_error(resolver_t *r, int rc, char *err, size_t errlen)
{
    struct statvfs vfs;

    if ((rc == -EIO || rc == -ENOSPC)
        && statvfs(r->cfg.store_path, &vfs) == 0 && vfs.f_bavail == 0)
    {
        snprintf(err, errlen, "store commit: %s: the file system of %s is "
            "full", strerror(-rc), r->cfg.store_path);
        return;
    }

    snprintf(err, errlen, "store commit: %s", strerror(-rc));
}

/*
 * Build every file-backed layer aside and commit the differences. On
 * error err holds the reason (file:line:column: message for bad input)
 * and nothing was written.
 */
static int
resolver_reload(resolver_t *r, size_t *changes, char *err, size_t errlen)
{
    cs_value_t *layers[CS_SRC_COUNT] = { NULL };
    char **files = NULL, **fleet_files = NULL;
    const char *fleet_dir;
    cs_config_t check;
    int s, rc;

    *changes = 0;

    rc = cs_schema_defaults(r->schema, &layers[CS_SRC_DEFAULT]);
    if (rc != 0) {
        snprintf(err, errlen, "schema defaults: %s", strerror(-rc));
        goto out_free;
    }

    if (r->config_path != NULL) {
        rc = cs_resolve_load_file_layer(r->schema, r->config_path,
            &layers[CS_SRC_FILE], &files, err, errlen);
    } else {
        layers[CS_SRC_FILE] = cs_value_map();
        rc = layers[CS_SRC_FILE] != NULL ? 0 : -ENOMEM;
    }
    if (rc != 0) {
        goto out_free;
    }

    /*
     * The daemon's own settings must stay valid: a file the processes
     * would refuse at their next start is refused now too.
     */
    rc = cs_config_load(&check, r->config_path, r->schema_path, err,
        errlen);
    if (rc != 0) {
        goto out_free;
    }
    cs_config_free(&check);

    rc = cs_envlayer_load(r->schema, environ, &layers[CS_SRC_ENV], err,
        errlen);
    if (rc != 0) {
        goto out_free;
    }

    fleet_dir = resolver_fleet_dir(layers[CS_SRC_ENV], layers[CS_SRC_FILE]);
    if (fleet_dir != NULL) {
        rc = cs_resolve_load_fleet_layer(r->schema, fleet_dir,
            &layers[CS_SRC_FLEET], &fleet_files, err, errlen);
    } else {
        layers[CS_SRC_FLEET] = cs_value_map();
        rc = layers[CS_SRC_FLEET] != NULL ? 0 : -ENOMEM;
    }
    if (rc != 0) {
        goto out_free;
    }

    /* The watch set follows the files this resolution read. */
    resolver_watch_arm(r, files, fleet_files, fleet_dir);

    rc = cs_engine_apply(r->eng, layers, r->cfg.origin, changes);
    for (s = 0; s < CS_SRC_COUNT; s++) {
        layers[s] = NULL;
    }
    if (rc != 0) {
        r->commit_failed = 1;
        resolver_commit_error(r, rc, err, errlen);
        goto out_free;
    }

    if (*changes > 0) {
        resolver_publish(r);
        resolver_log_level_follow(r);
    }

out_free:
    for (s = 0; s < CS_SRC_COUNT; s++) {
        cs_value_free(layers[s]);
    }
    cs_resolve_files_free(files);
    cs_resolve_files_free(fleet_files);

    return rc;
}

/* Reload and remember the outcome; log it as the process must. */
static int
resolver_reload_logged(resolver_t *r, const char *why, size_t *changes)
{
    char err[RESOLVER_ERR_MAX];
    int rc;

    err[0] = '\0';
    r->commit_failed = 0;
    rc = resolver_reload(r, changes, err, sizeof(err));

    if (rc != 0 && r->commit_failed) {
        r->retry_delay_ms = r->retry_delay_ms == 0 ? RESOLVER_RETRY_MIN_MS
            : r->retry_delay_ms * 2 > RESOLVER_RETRY_MAX_MS
            ? RESOLVER_RETRY_MAX_MS : r->retry_delay_ms * 2;
        r->retry_at_ms = resolver_mono_ms() + r->retry_delay_ms;
    } else {
        r->retry_delay_ms = 0;
        r->retry_at_ms = 0;
    }

    r->last_ok = rc == 0;
    r->last_changes = *changes;
    r->last_ms = resolver_now_ms();
    snprintf(r->last_err, sizeof(r->last_err), "%s", rc == 0 ? "" : err);

    if (rc != 0) {
        if (r->retry_at_ms != 0) {
            cs_log_error("reload", "%s; retrying in %lld ms", err,
                (long long) r->retry_delay_ms);
        } else {
            cs_log_error("reload", "%s", err);
        }
        return rc;
    }

    if (*changes > 0) {
        cs_log_notice("reload", "%s: %zu changes, head %llu", why,
            *changes, (unsigned long long) cs_engine_head(r->eng));
    } else {
        cs_log_info("reload", "%s: no changes", why);
    }

    return 0;
}

/* Control requests. */

typedef Configstream__Control__V1__ControlRequest control_req_t;
typedef Configstream__Control__V1__ControlResponse control_resp_t;

static int
resolver_runtime_source(resolver_t *r, const char *name, cs_source_t *src)
{
    if (name == NULL || name[0] == '\0') {
        *src = CS_SRC_RUNTIME;
        return 0;
    }
    if (cs_source_parse(name, src) == 0
        && (*src == CS_SRC_RUNTIME || *src == CS_SRC_REMOTE_CONFIG
            || *src == CS_SRC_CLI))
    {
        return 0;
    }

    snprintf(r->reply_err, sizeof(r->reply_err),
        "unknown source '%s' (agent-runtime, remote-config or cli)", name);

    return -EINVAL;
}

static void
resolver_on_set(resolver_t *r, const Configstream__Control__V1__SetRequest
    *set, control_resp_t *resp)
{
    cs_source_t src;
    cs_value_t *v = NULL;
    size_t changes = 0;
    int rc;

    if (resolver_runtime_source(r, set->source, &src) != 0) {
        resp->error = r->reply_err;
        return;
    }
    if (set->key[0] == '\0') {
        resp->error = "empty key";
        return;
    }
    /* Layers hold dotted leaves: a section set whole would shadow none. */
    if (cs_schema_lookup(r->schema, set->key) == NULL
        && cs_schema_is_section(r->schema, set->key))
    {
        snprintf(r->reply_err, sizeof(r->reply_err), "%s is a section: "
            "set its keys one by one (%s.KEY)", set->key, set->key);
        resp->error = r->reply_err;
        return;
    }

    rc = cs_flatten_value_parse(r->schema, set->key, set->value_text, &v,
        r->reply_err, sizeof(r->reply_err));
    if (rc != 0) {
        resp->error = r->reply_err;
        return;
    }

    /* Remote agents read the daemon's settings too: keep them valid. */
    rc = cs_config_check_value(set->key, v, r->reply_err,
        sizeof(r->reply_err));
    if (rc != 0) {
        cs_value_free(v);
        resp->error = r->reply_err;
        return;
    }

    rc = cs_engine_layer_set(r->eng, src, set->key, v, &changes);
    cs_value_free(v);
    if (rc != 0) {
        snprintf(r->reply_err, sizeof(r->reply_err), "store commit: %s",
            strerror(-rc));
        cs_log_error("control", "set %s: %s", set->key, r->reply_err);
        resp->error = r->reply_err;
        return;
    }

    if (changes > 0) {
        resolver_publish(r);
    }
    cs_log_notice("control", "set %s in %s: %zu changes", set->key,
        cs_source_name(src), changes);
    resp->ok = 1;
    resp->changes = changes;
    resp->head_sequence_id = cs_engine_head(r->eng);
}

static void
resolver_on_unset(resolver_t *r,
    const Configstream__Control__V1__UnsetRequest *unset,
    control_resp_t *resp)
{
    cs_source_t src;
    size_t changes = 0;
    int rc;

    if (resolver_runtime_source(r, unset->source, &src) != 0) {
        resp->error = r->reply_err;
        return;
    }

    rc = cs_engine_layer_unset(r->eng, src, unset->key, &changes);
    if (rc != 0) {
        snprintf(r->reply_err, sizeof(r->reply_err), "store commit: %s",
            strerror(-rc));
        cs_log_error("control", "unset %s: %s", unset->key, r->reply_err);
        resp->error = r->reply_err;
        return;
    }

    if (changes > 0) {
        resolver_publish(r);
    }
    cs_log_notice("control", "unset %s in %s: %zu changes", unset->key,
        cs_source_name(src), changes);
    resp->ok = 1;
    resp->changes = changes;
    resp->head_sequence_id = cs_engine_head(r->eng);
}

static void
resolver_on_get(resolver_t *r, const Configstream__Control__V1__GetRequest
    *get, control_resp_t *resp)
{
    Configstream__Control__V1__GetResponse *g;
    Configstream__Control__V1__LayerValue *lv;
    const cs_value_t *v;
    cs_source_t src;
    uint64_t seq;
    int s;

    g = malloc(sizeof(*g));
    if (g == NULL) {
        resp->error = "out of memory";
        return;
    }
    configstream__control__v1__get_response__init(g);
    g->layers = calloc(CS_SRC_COUNT, sizeof(*g->layers));
    if (g->layers == NULL) {
        free(g);
        resp->error = "out of memory";
        return;
    }
    resp->get = g;
    g->key = get->key;

    if (cs_engine_get(r->eng, get->key, &src, &v, &seq) == 0) {
        g->found = 1;
        g->source = (char *) cs_source_name(src);
        g->value = cs_value_to_pb(v);
        g->sequence_id = seq;
    }

    for (s = 0; s < CS_SRC_COUNT && g->layers != NULL; s++) {
        v = cs_engine_layer_value(r->eng, s, get->key);
        if (v == NULL) {
            continue;
        }
        lv = malloc(sizeof(*lv));
        if (lv == NULL) {
            break;
        }
        configstream__control__v1__layer_value__init(lv);
        lv->source = (char *) cs_source_name(s);
        lv->value = cs_value_to_pb(v);
        g->layers[g->n_layers++] = lv;
    }

    resp->ok = 1;
    resp->head_sequence_id = cs_engine_head(r->eng);
}

static void
resolver_on_status(resolver_t *r, control_resp_t *resp)
{
    Configstream__Control__V1__StatusResponse *st;

    st = malloc(sizeof(*st));
    if (st == NULL) {
        resp->error = "out of memory";
        return;
    }
    configstream__control__v1__status_response__init(st);

    st->head_sequence_id = cs_engine_head(r->eng);
    st->epoch.data = r->epoch;
    st->epoch.len = sizeof(r->epoch);
    st->setting_count = cs_engine_setting_count(r->eng);
    st->last_reload_ok = r->last_ok;
    st->last_reload_error = r->last_err;
    st->last_reload_changes = r->last_changes;
    st->last_reload_unix_ms = r->last_ms;
    st->origin = r->cfg.origin;
    st->pid = (int32_t) getpid();
    st->broker_attached = r->shm != NULL;

    resp->status = st;
    resp->ok = 1;
    resp->head_sequence_id = st->head_sequence_id;
}

static void
resolver_on_request(const control_req_t *req, control_resp_t *resp,
    void *arg)
{
    resolver_t *r = arg;
    size_t changes;

    switch (req->request_case) {
    case CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__REQUEST_SET:
        resolver_on_set(r, req->set, resp);
        break;
    case CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__REQUEST_UNSET:
        resolver_on_unset(r, req->unset, resp);
        break;
    case CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__REQUEST_GET:
        resolver_on_get(r, req->get, resp);
        break;
    case CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__REQUEST_RELOAD:
        if (resolver_reload_logged(r, "control request", &changes) != 0) {
            resp->error = r->last_err;
            break;
        }
        resp->ok = 1;
        resp->changes = changes;
        resp->head_sequence_id = cs_engine_head(r->eng);
        break;
    case CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__REQUEST_STATUS:
        resolver_on_status(r, resp);
        break;
    default:
        resp->error = "unknown control request";
        break;
    }
}

static void
resolver_on_cleanup(control_resp_t *resp, void *arg)
{
    size_t i;

    if (resp->get != NULL) {
        cs_value_pb_free(resp->get->value);
        for (i = 0; i < resp->get->n_layers; i++) {
            cs_value_pb_free(resp->get->layers[i]->value);
            free(resp->get->layers[i]);
        }
        free(resp->get->layers);
        free(resp->get);
    }
    free(resp->status);
}

/* Process setup and the main loop. */

static int
resolver_args(resolver_t *r, int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "schema", required_argument, NULL, 's' },
        { "once", no_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            r->config_path = optarg;
            break;
        case 's':
            r->schema_path = optarg;
            break;
        case 'o':
            r->once = 1;
            break;
        case 'h':
            resolver_usage(stdout);
            exit(0);
        case ':':
            fprintf(stderr, RESOLVER_ROLE ": option '%s' needs a value "
                "(see --help)\n", argv[optind - 1]);
            return -EINVAL;
        default:
            fprintf(stderr, RESOLVER_ROLE ": unknown option '%s' "
                "(see --help)\n", argv[optind - 1]);
            return -EINVAL;
        }
    }

    if (optind < argc) {
        fprintf(stderr, RESOLVER_ROLE ": unexpected argument '%s' "
            "(see --help)\n", argv[optind]);
        return -EINVAL;
    }

    return 0;
}

/* Load settings, schema, store and engine; returns an exit status. */
static int
resolver_start(resolver_t *r)
{
    char err[RESOLVER_ERR_MAX];
    cs_store_meta_t meta;
    int rc;

    if (r->config_path != NULL && access(r->config_path, R_OK) != 0) {
        cs_log_error("config", "cannot read config file %s: %s",
            r->config_path, strerror(errno));
        return CS_EXIT_FATAL_CONFIG;
    }

    rc = cs_config_load(&r->cfg, r->config_path, r->schema_path, err,
        sizeof(err));
    if (rc != 0) {
        cs_log_error("config", "%s", err);
        return CS_EXIT_FATAL_CONFIG;
    }
    r->cfg_loaded = 1;
    cs_log_set_level(r->cfg.log_level);

    rc = cs_schema_load(&r->schema, r->schema_path, err, sizeof(err));
    if (rc != 0) {
        cs_log_error("config", "%s", err);
        return CS_EXIT_FATAL_CONFIG;
    }

    rc = cs_store_open(&r->st, r->cfg.store_path, CS_STORE_CREATE, err,
        sizeof(err));
    if (rc != 0) {
        cs_log_error("store", "cannot open store at %s: %s",
            r->cfg.store_path, err);
        return 1;
    }

    rc = cs_store_meta_get(r->st, &meta);
    if (rc == 0) {
        memcpy(r->epoch, meta.epoch, sizeof(r->epoch));
    }

    rc = cs_engine_open(&r->eng, r->st, r->cfg.changelog_retention);
    if (rc != 0) {
        cs_log_error("store", "cannot read the store at %s: %s",
            r->cfg.store_path, strerror(-rc));
        return 1;
    }

    return 0;
}

static int
resolver_signals(resolver_t *r)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    r->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (r->sfd < 0) {
        cs_log_error("main", "signalfd: %s", strerror(errno));
        return -errno;
    }

    return 0;
}

/* 1 when the process should stop. */
static int
resolver_on_signal(resolver_t *r)
{
    struct signalfd_siginfo si;
    size_t changes;

    while (read(r->sfd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            cs_log_notice("main", "sighup: reloading");
            resolver_reload_logged(r, "sighup", &changes);
            continue;
        }
        cs_log_notice("main", "%s: exiting",
            si.ssi_signo == SIGINT ? "sigint" : "sigterm");
        return 1;
    }

    return 0;
}

static int
resolver_loop(resolver_t *r)
{
    struct pollfd pfd[4];
    size_t changes;
    int64_t due;
    int n, timeout;

    pfd[0].fd = r->sfd;
    pfd[1].fd = cs_watch_fd(r->watch);
    pfd[2].fd = cs_watch_timer_fd(r->watch);
    pfd[3].fd = cs_control_fd(r->control);
    for (n = 0; n < 4; n++) {
        pfd[n].events = POLLIN;
    }

    for (;;) {
        /* Without the broker's segment, look for it once a second. */
        timeout = r->shm == NULL ? 1000 : -1;
        if (r->retry_at_ms != 0) {
            due = r->retry_at_ms - resolver_mono_ms();
            due = due < 0 ? 0 : due;
            if (timeout < 0 || due < timeout) {
                timeout = (int) due;
            }
        }

        n = poll(pfd, 4, timeout);
        if (n < 0 && errno != EINTR) {
            cs_log_error("main", "poll: %s", strerror(errno));
            return 1;
        }
        if (r->shm == NULL) {
            resolver_shm_try(r);
        }
        if (r->retry_at_ms != 0 && resolver_mono_ms() >= r->retry_at_ms) {
            resolver_reload_logged(r, "retry", &changes);
        }
        if (n <= 0) {
            continue;
        }

        if ((pfd[0].revents & POLLIN) && resolver_on_signal(r)) {
            return 0;
        }
        if (pfd[1].revents & POLLIN) {
            cs_watch_handle(r->watch);
        }
        if ((pfd[2].revents & POLLIN) && cs_watch_fired(r->watch)) {
            resolver_reload_logged(r, "file change", &changes);
        }
        if (pfd[3].revents & POLLIN) {
            cs_control_handle(r->control);
        }
    }
}

static int
resolver_serve(resolver_t *r)
{
    char err[RESOLVER_ERR_MAX];
    int rc;

    if (resolver_signals(r) != 0) {
        return 1;
    }

    rc = cs_watch_open(&r->watch, RESOLVER_DEBOUNCE_MS);
    if (rc != 0) {
        cs_log_error("watch", "inotify_init1: %s", strerror(-rc));
        return 1;
    }

    rc = cs_control_open(&r->control, r->cfg.control_socket,
        resolver_on_request, resolver_on_cleanup, r, err, sizeof(err));
    if (rc != 0) {
        cs_log_error("control", "%s", err);
        return 1;
    }

    return 0;
}

int
main(int argc, char **argv)
{
    resolver_t r;
    size_t changes;
    int status;

    memset(&r, 0, sizeof(r));
    r.sfd = -1;
    cs_log_init(RESOLVER_ROLE);

    if (resolver_args(&r, argc, argv) != 0) {
        return 2;
    }

    status = resolver_start(&r);
    if (status != 0) {
        goto out;
    }

    if (!r.once) {
        status = resolver_serve(&r);
        if (status != 0) {
            goto out;
        }
    } else if (cs_control_alive(r.cfg.control_socket)) {
        /* Two writers would each diff against a state the other changed. */
        cs_log_error("main", "a resolver already runs on %s: ask it with "
            "configstream-ctl reload", r.cfg.control_socket);
        status = 1;
        goto out;
    }

    cs_log_notice("main", "started (store %s)", r.cfg.store_path);
    if (resolver_reload_logged(&r, "start", &changes) != 0) {
        status = r.once ? 1 : CS_EXIT_FATAL_CONFIG;
        goto out;
    }
    resolver_publish(&r);

    if (r.once) {
        goto out;
    }

    cs_log_notice("main", "ready, control socket %s", r.cfg.control_socket);
    status = resolver_loop(&r);

out:
    cs_control_close(r.control);
    cs_watch_close(r.watch);
    if (r.sfd >= 0) {
        close(r.sfd);
    }
    if (r.shm != NULL) {
        cs_shm_detach(r.shm);
    }
    if (r.eng != NULL) {
        cs_engine_close(r.eng);
    }
    if (r.st != NULL) {
        cs_store_close(r.st);
    }
    if (r.schema != NULL) {
        cs_schema_free(r.schema);
    }
    if (r.cfg_loaded) {
        cs_config_free(&r.cfg);
    }

    return status;
}
