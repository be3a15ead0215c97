/*
 * configstreamd: the built-in supervisor of the configstream process group.
 *
 * It prepares what every process needs (run_path, the token, the
 * certificate), then starts the broker, the resolver and the frontends in
 * that order, each once the one before it is usable (the segment exists,
 * then the store holds a first resolution), with a bounded wait. It never
 * initialises gRPC: gRPC's C core cannot survive a fork after init, and
 * the supervisor forks for every respawn.
 *
 * Signals arrive on a signalfd and are handled in the main loop:
 * SIGCHLD reaps, SIGHUP is forwarded to the resolver (which reloads),
 * SIGTERM/SIGINT stop the group frontends first, then the resolver, then
 * the broker, each with SIGTERM and SIGKILL after CS_SUP_KILL_MS.
 *
 * The telemetry endpoint runs here (libmicrohttpd's own thread), so the
 * broker it starts is not given --telemetry.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef CS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "config.h"
#include "credentials.h"
#include "fsutil.h"
#include "log.h"
#include "metrics.h"
#include "proctable.h"
#include "shm.h"

#define CS_SUP_START_WAIT_MS    10000   /* per start step */
#define CS_SUP_KILL_MS          5000    /* SIGTERM, then SIGKILL */
#define CS_SUP_TICK_MS          50
#define CS_SUP_MAX_WORKERS      64

typedef struct {
    cs_config_t cfg;
    const char *libexec;
    char *paths[3];             /* executable of each role */
    char table_path[PATH_MAX + 64];
    char *args[8];

    cs_sup_table_t table;
    cs_shm_t *shm;
    int sfd;
    int lock_fd;                /* held while we run on this run_path */

    int started_roles;          /* roles started so far, in order */
    int64_t step_started_ms;
    int ready;

    int stop_phase;             /* -1: running; else the role stopping */
    int stop_killed;
    int64_t stop_deadline_ms;
    int exit_code;
} cs_sup_t;

static const struct {
    const char *name;
    const char *subdir;
} cs_sup_roles[] = {
    [CS_ROLE_BROKER] = { "configstream-broker", "broker" },
    [CS_ROLE_RESOLVER] = { "configstream-resolver", "resolver" },
    [CS_ROLE_FRONTEND] = { "configstream-frontend", "frontend" },
};

static void
cs_sup_usage(FILE *fp)
{
    fprintf(fp,
        "usage: configstreamd [-c FILE] [--schema FILE] [--libexec DIR]\n"
        "\n"
        "Start and supervise the configstream broker, resolver and\n"
        "frontends; stop them all on SIGTERM, reload on SIGHUP.\n"
        "\n"
        "  -c, --config FILE   datadog.yaml to serve (default: embedded\n"
        "                      defaults only)\n"
        "      --schema FILE   settings schema replacing the embedded one\n"
        "      --libexec DIR   directory holding the configstream-*\n"
        "                      programs (default: beside configstreamd,\n"
        "                      then the build tree, then PATH)\n"
        "  -h, --help          show this help\n");
}

static void
cs_sup_notify(const char *state)
{
#ifdef CS_HAVE_SYSTEMD
    (void)sd_notify(0, state);
#else
    (void)state;
#endif
}

static int
cs_sup_executable(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
        access(path, X_OK) == 0;
}

/*
 * Where a role's program is: --libexec, beside our own executable, in the
 * build tree (src/supervisor/../<role dir>/), then PATH.
 */
static char *
cs_sup_find_program(const char *libexec, const char *name,
    const char *subdir)
{
    char self[PATH_MAX], cand[PATH_MAX * 2], *dir, *path, *save;
    ssize_t n;

    if (libexec != NULL) {
        snprintf(cand, sizeof(cand), "%s/%s", libexec, name);
        return cs_sup_executable(cand) ? strdup(cand) : NULL;
    }

    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        dir = strrchr(self, '/');
        if (dir != NULL) {
            *dir = '\0';
            snprintf(cand, sizeof(cand), "%s/%s", self, name);
            if (cs_sup_executable(cand)) {
                return strdup(cand);
            }
            snprintf(cand, sizeof(cand), "%s/../%s/%s", self, subdir, name);
            if (cs_sup_executable(cand) && realpath(cand, self) != NULL) {
                return strdup(self);
            }
        }
    }

    path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    for (dir = path ? strtok_r(path, ":", &save) : NULL; dir != NULL;
         dir = strtok_r(NULL, ":", &save)) {
        snprintf(cand, sizeof(cand), "%s/%s", dir, name);
        if (cs_sup_executable(cand)) {
            free(path);
            return strdup(cand);
        }
    }
    free(path);
    return NULL;
}

static int
cs_sup_parse_args(cs_sup_t *s, int argc, char **argv, const char **config,
    const char **schema)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "schema", required_argument, NULL, 's' },
        { "libexec", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int opt;

    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            *config = optarg;
            break;
        case 's':
            *schema = optarg;
            break;
        case 'l':
            s->libexec = optarg;
            break;
        case 'h':
            cs_sup_usage(stdout);
            exit(0);
        default:
            cs_sup_usage(stderr);
            return -EINVAL;
        }
    }

    if (optind != argc) {
        fprintf(stderr, "configstreamd: unexpected argument '%s'\n",
            argv[optind]);
        cs_sup_usage(stderr);
        return -EINVAL;
    }
    return 0;
}

/*
 * Two supervisors on one run_path would start two brokers on one segment:
 * the second one refuses to start. The lock dies with the process.
 */
static int
cs_sup_lock(cs_sup_t *s, const char *dir)
{
    char path[PATH_MAX + 32];
    int rc;

    snprintf(path, sizeof(path), "%s/configstreamd.lock", dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        rc = -errno;
        cs_log_error("main", "open %s: %s", path, strerror(errno));
        return rc;
    }

    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = -errno;
        if (rc == -EWOULDBLOCK) {
            cs_log_error("main",
                "another configstreamd is running on %s", s->cfg.run_path);
        } else {
            cs_log_error("main", "flock %s: %s", path, strerror(errno));
        }
        return rc;
    }
    return 0;
}

/* run_path, its configstream/ directory, the token and the certificate. */
static int
cs_sup_prepare(cs_sup_t *s)
{
    char dir[PATH_MAX], err[512];
    const char *failed = dir;
    int rc;

    snprintf(dir, sizeof(dir), "%s/configstream", s->cfg.run_path);
    rc = cs_mkdir_p(s->cfg.run_path, 0755, &failed);
    if (rc == 0) {
        rc = cs_mkdir_p(dir, 0750, &failed);
    }
    if (rc < 0) {
        cs_log_error("main", "mkdir %s: %s", failed, strerror(-rc));
        return rc;
    }

    rc = cs_credentials_ensure(s->cfg.auth_token_file_path,
        s->cfg.ipc_cert_file_path, err, sizeof(err));
    if (rc < 0) {
        cs_log_error("main", "credentials: %s", err);
        return rc;
    }

    snprintf(s->table_path, sizeof(s->table_path), "%s/configstreamd.procs",
        dir);
    return cs_sup_lock(s, dir);
}

static int
cs_sup_build_table(cs_sup_t *s, const char *config, const char *schema)
{
    int workers = s->cfg.workers, n = 0;

    for (int r = 0; r < 3; r++) {
        s->paths[r] = cs_sup_find_program(s->libexec, cs_sup_roles[r].name,
            cs_sup_roles[r].subdir);
        if (s->paths[r] == NULL) {
            cs_log_error("main",
                "cannot find %s (looked in %s, then PATH)",
                cs_sup_roles[r].name, s->libexec ? s->libexec :
                "the directory of configstreamd and the build tree");
            return -ENOENT;
        }
    }

    if (workers <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);

        workers = cpus > 0 ? (int)cpus : 1;
    }
    if (workers > CS_SUP_MAX_WORKERS) {
        workers = CS_SUP_MAX_WORKERS;
    }

    s->table.rows = calloc((size_t)workers + 2, sizeof(cs_sup_child_t));
    if (s->table.rows == NULL) {
        return -ENOMEM;
    }
    s->table.count = workers + 2;
    for (int i = 0; i < s->table.count; i++) {
        cs_sup_child_t *c = &s->table.rows[i];

        c->role = i < 2 ? (cs_sup_role_t)i : CS_ROLE_FRONTEND;
        c->name = cs_sup_roles[c->role].name;
        c->path = s->paths[c->role];
        c->index = i < 2 ? 0 : i - 2;
        c->backoff_ms = CS_SUP_BACKOFF_MIN_MS;
    }

    if (config != NULL) {
        s->args[n++] = "-c";
        s->args[n++] = (char *)config;
    }
    if (schema != NULL) {
        s->args[n++] = "--schema";
        s->args[n++] = (char *)schema;
    }
    s->args[n] = NULL;
    s->table.args = s->args;
    s->table.table_path = s->table_path;
    return 0;
}

static int
cs_sup_signals(cs_sup_t *s)
{
    sigset_t set;
    int rc;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        rc = -errno;
        cs_log_error("main", "sigprocmask: %s", strerror(-rc));
        return rc;
    }

    /* A client or scraper gone mid-write must not kill the supervisor. */
    signal(SIGPIPE, SIG_IGN);

    s->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (s->sfd < 0) {
        rc = -errno;
        cs_log_error("main", "signalfd: %s", strerror(-rc));
        return rc;
    }
    return 0;
}

/* The broker's segment, once it exists; telemetry starts with it. */
static void
cs_sup_attach(cs_sup_t *s)
{
    char err[512];
    const char *addr = s->cfg.telemetry_address;

    if (s->shm != NULL || cs_shm_attach(&s->shm, s->cfg.shm_path, err,
            sizeof(err)) < 0) {
        return;
    }

    if (addr == NULL || addr[0] == '\0') {
        return;
    }
    if (cs_metrics_http_start(s->shm, addr, err, sizeof(err)) < 0) {
        cs_log_error("telemetry", "%s", err);
        return;
    }
    cs_log_notice("telemetry", "serving http://%s/metrics", addr);
}

static int
cs_sup_store_exists(const cs_sup_t *s)
{
    char mdb[PATH_MAX];
    struct stat st;

    if (stat(s->cfg.store_path, &st) != 0) {
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        return 1;
    }
    snprintf(mdb, sizeof(mdb), "%s/data.mdb", s->cfg.store_path);
    return stat(mdb, &st) == 0;
}

/* Is the role before the next one usable, so the next can start? */
static int
cs_sup_step_done(cs_sup_t *s)
{
    cs_shm_header_t *hdr = s->shm != NULL ? cs_shm_header(s->shm) : NULL;

    /* A segment left by an earlier run exists before our broker is up. */
    switch (s->started_roles) {
    case 1:
        return hdr != NULL && atomic_load(&hdr->broker_pid) ==
            s->table.rows[CS_ROLE_BROKER].pid;
    case 2:
        return s->shm != NULL && cs_sup_store_exists(s) &&
            cs_shm_head(s->shm) > 0;
    default:
        return 1;
    }
}

static void
cs_sup_start_next(cs_sup_t *s, int64_t now)
{
    cs_sup_role_t role;

    if (s->started_roles >= 3 || s->stop_phase >= 0) {
        return;
    }

    if (s->started_roles > 0 && !cs_sup_step_done(s)) {
        if (now - s->step_started_ms < CS_SUP_START_WAIT_MS) {
            return;
        }
        cs_log_warn("main", "%s not ready after %d ms, starting %s anyway",
            cs_sup_roles[s->started_roles - 1].name, CS_SUP_START_WAIT_MS,
            cs_sup_roles[s->started_roles].name);
    }

    role = (cs_sup_role_t)s->started_roles;
    for (int i = 0; i < s->table.count; i++) {
        cs_sup_child_t *c = &s->table.rows[i];

        if (c->role == role && cs_sup_child_spawn(&s->table, c, now) < 0) {
            /* retried by the respawn logic after a back-off */
            c->state = CS_CHILD_BACKOFF;
            c->respawn_at_ms = now + c->backoff_ms;
        }
    }
    s->started_roles++;
    s->step_started_ms = now;
}

/* Can a client connect to the gRPC address? */
static int
cs_sup_port_open(const cs_sup_t *s)
{
    struct addrinfo hints = { 0 }, *res, *ai;
    char port[16];
    int ok = 0;

    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", s->cfg.cmd_port);
    if (getaddrinfo(s->cfg.cmd_host, port, &hints, &res) != 0) {
        return 0;
    }

    for (ai = res; ai != NULL && !ok; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0) {
            continue;
        }
        ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
        close(fd);
    }
    freeaddrinfo(res);
    return ok;
}

/* Ready once a snapshot can be served: a first resolution is published
 * and a frontend accepts connections. */
static void
cs_sup_check_ready(cs_sup_t *s)
{
    char status[384], notify[512];

    if (s->ready || s->stop_phase >= 0 || s->shm == NULL ||
        cs_shm_head(s->shm) == 0 ||
        cs_sup_table_alive(&s->table, CS_ROLE_FRONTEND) == 0 ||
        !cs_sup_port_open(s)) {
        return;
    }

    s->ready = 1;
    snprintf(status, sizeof(status), "%d frontends on %s:%d",
        s->table.count - 2, s->cfg.cmd_host, s->cfg.cmd_port);
    cs_log_notice("main", "ready: %s", status);
    snprintf(notify, sizeof(notify), "READY=1\nSTATUS=serving %s", status);
    cs_sup_notify(notify);
}

static const cs_sup_role_t cs_sup_stop_order[] = {
    CS_ROLE_FRONTEND, CS_ROLE_RESOLVER, CS_ROLE_BROKER,
};

static void
cs_sup_stop_begin(cs_sup_t *s, int exit_code, int64_t now)
{
    if (s->stop_phase >= 0) {
        return;
    }

    cs_sup_notify("STOPPING=1");
    s->exit_code = exit_code;
    s->stop_phase = 0;
    s->stop_killed = 0;
    s->stop_deadline_ms = now + CS_SUP_KILL_MS;
    (void)cs_sup_table_stop(&s->table, cs_sup_stop_order[0], SIGTERM);
}

/* A second stop signal: the operator does not want to wait. */
static void
cs_sup_stop_now(cs_sup_t *s, uint32_t signo)
{
    cs_log_warn("main", "signal %u (SIG%s) received while stopping, "
        "killing every process now", signo, cs_sup_signal_name((int)signo));

    for (size_t i = 0; i < sizeof(cs_sup_stop_order) /
         sizeof(cs_sup_stop_order[0]); i++) {
        (void)cs_sup_table_stop(&s->table, cs_sup_stop_order[i], SIGKILL);
    }
    s->stop_killed = 1;
}

/* Advance the ordered stop; returns 1 once every child is gone. */
static int
cs_sup_stop_step(cs_sup_t *s, int64_t now)
{
    while (s->stop_phase < 3) {
        cs_sup_role_t role = cs_sup_stop_order[s->stop_phase];

        if (cs_sup_table_alive(&s->table, role) > 0) {
            if (now >= s->stop_deadline_ms && !s->stop_killed) {
                cs_log_warn("main", "%s still running after %d ms, "
                    "sending SIGKILL", cs_sup_roles[role].name,
                    CS_SUP_KILL_MS);
                (void)cs_sup_table_stop(&s->table, role, SIGKILL);
                s->stop_killed = 1;
            }
            return 0;
        }

        s->stop_phase++;
        s->stop_killed = 0;
        s->stop_deadline_ms = now + CS_SUP_KILL_MS;
        if (s->stop_phase < 3) {
            (void)cs_sup_table_stop(&s->table,
                cs_sup_stop_order[s->stop_phase], SIGTERM);
        }
    }
    return 1;
}

static void
cs_sup_on_signals(cs_sup_t *s, int64_t now)
{
    struct signalfd_siginfo si;
    int fatal = 0;

    while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            break;
        case SIGHUP:
            cs_log_notice("main", "SIGHUP: asking the resolver to reload");
            if (cs_sup_table_signal(&s->table, CS_ROLE_RESOLVER,
                    SIGHUP) == 0) {
                cs_log_warn("main", "no resolver running to reload");
            }
            break;
        default:
            if (s->stop_phase >= 0) {
                cs_sup_stop_now(s, si.ssi_signo);
                break;
            }
            cs_log_notice("main",
                "signal %u (SIG%s) received, stopping the group",
                si.ssi_signo, cs_sup_signal_name((int)si.ssi_signo));
            cs_sup_stop_begin(s, 0, now);
            break;
        }
    }

    (void)cs_sup_table_reap(&s->table, now, &fatal);
    if (fatal && s->stop_phase < 0) {
        cs_log_error("main", "stopping the group: a process exited with "
            "a fatal configuration error (status %d)", CS_EXIT_FATAL_CONFIG);
        cs_sup_stop_begin(s, CS_EXIT_FATAL_CONFIG, now);
    }
}

static int
cs_sup_timeout(const cs_sup_t *s, int64_t next_respawn, int64_t now)
{
    int timeout = -1;

    if (s->stop_phase >= 0 || s->started_roles < 3 || !s->ready ||
        s->shm == NULL) {
        timeout = CS_SUP_TICK_MS;
    }
    if (next_respawn >= 0) {
        int64_t d = next_respawn - now;

        d = d < 0 ? 0 : d;
        if (timeout < 0 || d < timeout) {
            timeout = (int)d;
        }
    }
    return timeout;
}

static int
cs_sup_run(cs_sup_t *s)
{
    s->stop_phase = -1;

    for (;;) {
        int64_t now = cs_sup_now_ms(), next_respawn = -1;
        struct pollfd pfd = { .fd = s->sfd, .events = POLLIN };

        cs_sup_on_signals(s, now);

        if (s->stop_phase >= 0) {
            if (cs_sup_stop_step(s, now)) {
                return s->exit_code;
            }
        } else {
            cs_sup_attach(s);
            cs_sup_start_next(s, now);
            cs_sup_table_respawn(&s->table, now, &next_respawn);
            cs_sup_check_ready(s);
        }

        if (poll(&pfd, 1, cs_sup_timeout(s, next_respawn, now)) < 0 &&
            errno != EINTR) {
            cs_log_error("main", "poll: %s", strerror(errno));
            return 1;
        }
    }
}

int
main(int argc, char **argv)
{
    cs_sup_t s = { .sfd = -1, .lock_fd = -1, .stop_phase = -1 };
    const char *config = NULL, *schema = NULL;
    char err[1024];
    int rc, code = 1;

    cs_log_init("configstreamd");

    if (cs_sup_parse_args(&s, argc, argv, &config, &schema) < 0) {
        return 2;
    }

    rc = cs_config_load(&s.cfg, config, schema, err, sizeof(err));
    if (rc < 0) {
        cs_log_error("config", "%s", err);
        return CS_EXIT_FATAL_CONFIG;
    }
    cs_log_set_level(s.cfg.log_level);
    cs_log_notice("main", "starting with %s",
        config != NULL ? config : "the embedded defaults");

    if (cs_sup_prepare(&s) < 0) {
        goto out_free;
    }

    /*
     * Frontends share their address through SO_REUSEPORT, which would
     * just as happily split the clients of a foreign server already
     * there; refuse instead.
     */
    if (cs_sup_port_open(&s)) {
        cs_log_error("main", "%s:%d already accepts connections (another "
            "daemon?); refusing to share it", s.cfg.cmd_host,
            s.cfg.cmd_port);
        code = CS_EXIT_FATAL_CONFIG;
        goto out_free;
    }

    rc = cs_sup_build_table(&s, config, schema);
    if (rc < 0) {
        /* A missing program is an installation problem: do not respawn. */
        code = rc == -ENOENT ? CS_EXIT_FATAL_CONFIG : 1;
        goto out_free;
    }

    if (cs_sup_signals(&s) < 0) {
        goto out_free;
    }

    code = cs_sup_run(&s);
    cs_log_notice("main", "stopped (exit code %d)", code);

out_free:
    cs_metrics_http_stop();
    if (s.shm != NULL) {
        cs_shm_detach(s.shm);
    }
    if (s.sfd >= 0) {
        close(s.sfd);
    }
    if (s.lock_fd >= 0) {
        close(s.lock_fd);
    }
    for (int r = 0; r < 3; r++) {
        free(s.paths[r]);
    }
    free(s.table.rows);
    cs_config_free(&s.cfg);
    return code;
}
