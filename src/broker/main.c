/*
 * configstream-broker: owns the shared-memory segment (session table,
 * change word, telemetry blocks) and serves the Remote Agent Registry on
 * a local SOCK_SEQPACKET socket, one protobuf message per packet.
 *
 * It is single-threaded: one poll loop for signals, the listening socket,
 * the clients and the expiry timer. Everything it must not lose lives in
 * the segment, so a broker killed at any point is replaced by one that
 * re-attaches and carries on.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker_client.h"
#include "config.h"
#include "configstream/broker.pb-c.h"
#include "fsutil.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "shm.h"

#define BROKER_CLIENTS_MAX      256
#define BROKER_PACKET_MAX       (256 * 1024)
#define BROKER_LIST_PAGE        64
#define BROKER_SWEEP_MAX_MS     1000

typedef Configstream__Broker__V1__BrokerRequest broker_request_t;
typedef Configstream__Broker__V1__BrokerResponse broker_response_t;

typedef struct {
    cs_config_t cfg;
    cs_shm_t *shm;
    cs_registry_t *reg;
    int sfd;                            /* signalfd */
    int lfd;                            /* listening socket */
    int clients[BROKER_CLIENTS_MAX];
    size_t n_clients;
    uint8_t *buf;
    int stop;
} broker_t;

static void
broker_usage(FILE *out, const char *prog)
{
    const char *slash = strrchr(prog, '/');

    fprintf(out,
        "usage: %s [-c FILE] [--schema FILE] [--telemetry]\n"
        "\n"
        "Own the configstream shared-memory segment and serve the Remote\n"
        "Agent Registry on the broker socket.\n"
        "\n"
        "  -c, --config FILE   datadog.yaml to read settings from\n"
        "      --schema FILE   settings schema (default: embedded)\n"
        "      --telemetry     serve Prometheus /metrics at\n"
        "                      config_stream.telemetry_address (under\n"
        "                      supervisord or systemd; configstreamd\n"
        "                      serves it itself)\n"
        "  -h, --help          show this help\n", slash ? slash + 1 : prog);
}

static uint32_t
broker_worker_capacity(const cs_config_t *cfg)
{
    long n = cfg->workers;

    if (n <= 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
    }
    if (n <= 0) {
        n = 1;
    }

    /* Room for replacements that start before the dead ones are seen. */
    return (uint32_t) (n * 2 + 8);
}

static int
broker_open_segment(broker_t *b)
{
    cs_shm_params_t params;
    char err[512];
    struct stat st;
    int existed, rc;

    params.session_capacity = b->cfg.rar_max_sessions;
    params.worker_capacity = broker_worker_capacity(&b->cfg);
    existed = stat(b->cfg.shm_path, &st) == 0;

    rc = cs_shm_create_or_attach(&b->shm, b->cfg.shm_path, &params, err,
        sizeof(err));
    if (rc < 0) {
        cs_log_error("shm", "%s", err);
        return rc;
    }

    atomic_store(&cs_shm_header(b->shm)->broker_pid, (int32_t) getpid());

    if (existed) {
        cs_log_notice("shm", "re-attached segment %s (capacity %u sessions,"
            " %u workers)", b->cfg.shm_path, params.session_capacity,
            params.worker_capacity);
        if (params.session_capacity != b->cfg.rar_max_sessions) {
            cs_log_warn("shm", "segment keeps its capacity of %u sessions, "
                "not the configured %u: remove %s while the group is "
                "stopped to resize it", params.session_capacity,
                b->cfg.rar_max_sessions, b->cfg.shm_path);
        }
    } else {
        cs_log_notice("shm", "created segment %s (capacity %u sessions, "
            "%u workers)", b->cfg.shm_path, params.session_capacity,
            params.worker_capacity);
    }

    return 0;
}

/*
 * A socket file left by a broker that died is replaced; one that a live
 * broker still answers on is not.
 */
static int
broker_clear_stale_socket(const struct sockaddr_un *sa)
{
    int fd, rc;

    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -errno;
    }

    rc = connect(fd, (const struct sockaddr *) sa, sizeof(*sa));
    close(fd);
    if (rc == 0) {
        cs_log_error("broker", "another broker is serving %s",
            sa->sun_path);
        return -EADDRINUSE;
    }

    if (unlink(sa->sun_path) == -1 && errno != ENOENT) {
        cs_log_error("broker", "unlink %s: %s", sa->sun_path,
            strerror(errno));
        return -errno;
    }

    return 0;
}

static int
broker_listen(broker_t *b)
{
    struct sockaddr_un sa;
    mode_t old_mask;
    int rc;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(b->cfg.broker_socket) >= sizeof(sa.sun_path)) {
        cs_log_error("broker", "socket path %s is too long",
            b->cfg.broker_socket);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, b->cfg.broker_socket);

    rc = broker_clear_stale_socket(&sa);
    if (rc < 0) {
        return rc;
    }

    b->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
        0);
    if (b->lfd == -1) {
        cs_log_error("broker", "socket: %s", strerror(errno));
        return -errno;
    }

    /* Created 0600 from the start: no window where others may connect. */
    old_mask = umask(0177);
    rc = bind(b->lfd, (struct sockaddr *) &sa, sizeof(sa));
    umask(old_mask);
    if (rc == -1) {
        cs_log_error("broker", "bind %s: %s", sa.sun_path, strerror(errno));
        return -errno;
    }

    if (listen(b->lfd, 64) == -1) {
        cs_log_error("broker", "listen %s: %s", sa.sun_path,
            strerror(errno));
        return -errno;
    }

    return 0;
}

static int
broker_signals(broker_t *b)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1) {
        return -errno;
    }
    signal(SIGPIPE, SIG_IGN);

    b->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (b->sfd == -1) {
        cs_log_error("broker", "signalfd: %s", strerror(errno));
        return -errno;
    }

    return 0;
}

static void
broker_on_signal(broker_t *b)
{
    struct signalfd_siginfo si;

    while (read(b->sfd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            cs_log_notice("broker", "sighup received, nothing to reload");
            continue;
        }
        cs_log_notice("broker", "%s received, shutting down",
            si.ssi_signo == SIGTERM ? "sigterm" : "sigint");
        b->stop = 1;
    }
}

/* Request handlers: each fills resp->code and resp->message. */

static void
broker_set_status(broker_response_t *resp, int rc, const char *msg)
{
    resp->code = cs_registry_rpc_code(rc);
    resp->message = (char *) (rc == 0 ? "" : msg);
}

static void
broker_do_register(broker_t *b, const broker_request_t *req,
    broker_response_t *resp, Configstream__Broker__V1__RegisterResponse *rr,
    char *msg, size_t msglen)
{
    const Configstream__Broker__V1__RegisterRequest *r = req->register_;
    static char id[CS_SESSION_ID_LEN + 1];
    cs_broker_agent_t agent;
    uint32_t secs = 0;
    int rc;

    agent.pid = r->pid;
    agent.flavor = r->flavor;
    agent.display_name = r->display_name;
    agent.api_endpoint_uri = r->api_endpoint_uri;
    /* KNOWN-ISSUE(session-services) */
    agent.services = (const char *const *) r->services;
    agent.n_services = r->n_services;

    rc = cs_registry_register(b->reg, &agent, id, &secs, msg, msglen);
    broker_set_status(resp, rc, msg);
    if (rc < 0) {
        cs_log_info("registry", "register of '%.64s' refused: %s",
            r->display_name, msg);
        return;
    }

    cs_log_info("registry", "registered remote agent '%.64s' (flavor "
        "'%.32s', pid %.16s, session %.8s)", r->display_name, r->flavor,
        r->pid, id);
    rr->session_id = id;
    rr->recommended_refresh_interval_secs = secs;
    resp->body_case = CONFIGSTREAM__BROKER__V1__BROKER_RESPONSE__BODY_REGISTER;
    resp->register_ = rr;
}

static void
broker_do_refresh(broker_t *b, const broker_request_t *req,
    broker_response_t *resp)
{
    int rc;

    rc = cs_registry_refresh(b->reg, req->refresh->session_id);
    broker_set_status(resp, rc, rc == -ENOTSUP
        ? "remote agent registry not enabled"
        : rc == -ENOENT ? "no remote agent found with session ID"
        : "session table busy");
    cs_log_debug("registry", "refresh of session %.8s: %s",
        req->refresh->session_id, rc == 0 ? "ok"
        : rc == -ENOENT ? "unknown" : strerror(-rc));
}

static void
broker_do_revoke(broker_t *b, const broker_request_t *req,
    broker_response_t *resp, char *msg, size_t msglen)
{
    int rc;

    rc = cs_registry_revoke(b->reg, req->revoke->session_id, msg, msglen);
    broker_set_status(resp, rc, msg);
    if (rc == 0) {
        cs_log_notice("registry", "revoked session %.8s",
            req->revoke->session_id);
    }
}

static void
broker_do_keepalive(broker_t *b, const broker_request_t *req, pid_t peer,
    broker_response_t *resp)
{
    const Configstream__Broker__V1__KeepaliveRequest *k = req->keepalive;
    cs_broker_stream_count_t *streams;
    size_t i;
    int rc;

    streams = calloc(k->n_streams + 1, sizeof(*streams));
    if (streams == NULL) {
        broker_set_status(resp, -ENOMEM, "out of memory");
        return;
    }

    for (i = 0; i < k->n_streams; i++) {
        streams[i].session_id = k->streams[i]->session_id;
        streams[i].open_streams = k->streams[i]->open_streams;
    }

    rc = cs_registry_keepalive(b->reg, k->frontend_pid > 0
        ? (pid_t) k->frontend_pid : peer, streams, k->n_streams);
    broker_set_status(resp, rc, "too many frontends reporting");
    free(streams);
}

static void
broker_do_list(broker_t *b, const broker_request_t *req,
    broker_response_t *resp, Configstream__Broker__V1__ListSessionsResponse
    *lr, Configstream__Broker__V1__SessionInfo *infos,
    Configstream__Broker__V1__SessionInfo **ptrs, cs_shm_session_t *copies,
    char (*prefixes)[CS_BROKER_PREFIX_LEN + 1])
{
    uint32_t cap = cs_shm_header(b->shm)->session_capacity, slot;
    int64_t now = cs_registry_now(b->reg);
    size_t n = 0;

    for (slot = req->list_sessions->start_slot;
         slot < cap && n < BROKER_LIST_PAGE; slot++)
    {
        cs_shm_session_t *s = &copies[n];
        Configstream__Broker__V1__SessionInfo *info = &infos[n];

        if (cs_shm_session_read(b->shm, slot, s) < 0) {
            continue;
        }
        configstream__broker__v1__session_info__init(info);
        memcpy(prefixes[n], s->id, CS_BROKER_PREFIX_LEN);
        prefixes[n][CS_BROKER_PREFIX_LEN] = '\0';
        info->session_id_prefix = prefixes[n];
        info->display_name = s->display_name;
        info->flavor = s->flavor;
        info->pid = s->pid;
        info->api_endpoint_uri = s->api_endpoint_uri;
        info->age_ms = now - s->registered_ms;
        info->idle_ms = now - s->last_seen_ms;
        info->open_streams = s->open_streams;
        ptrs[n] = info;
        n++;
    }

    lr->sessions = ptrs;
    lr->n_sessions = n;
    lr->next_slot = slot < cap ? slot : 0;
    resp->body_case =
        CONFIGSTREAM__BROKER__V1__BROKER_RESPONSE__BODY_LIST_SESSIONS;
    resp->list_sessions = lr;
    broker_set_status(resp, 0, "");
}

static pid_t
broker_peer_pid(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
        return 0;
    }

    return cred.pid;
}

static void
broker_dispatch(broker_t *b, int fd, const broker_request_t *req,
    broker_response_t *resp)
{
    static Configstream__Broker__V1__SessionInfo infos[BROKER_LIST_PAGE];
    static Configstream__Broker__V1__SessionInfo *ptrs[BROKER_LIST_PAGE];
    static cs_shm_session_t copies[BROKER_LIST_PAGE];
    static char prefixes[BROKER_LIST_PAGE][CS_BROKER_PREFIX_LEN + 1];
    static Configstream__Broker__V1__RegisterResponse rr =
        CONFIGSTREAM__BROKER__V1__REGISTER_RESPONSE__INIT;
    static Configstream__Broker__V1__ListSessionsResponse lr =
        CONFIGSTREAM__BROKER__V1__LIST_SESSIONS_RESPONSE__INIT;
    static char msg[CS_BROKER_MESSAGE_MAX];

    msg[0] = '\0';
    resp->request_id = req->request_id;

    switch (req->body_case) {
    case CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__BODY_REGISTER:
        broker_do_register(b, req, resp, &rr, msg, sizeof(msg));
        break;
    case CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__BODY_REFRESH:
        broker_do_refresh(b, req, resp);
        break;
    case CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__BODY_REVOKE:
        broker_do_revoke(b, req, resp, msg, sizeof(msg));
        break;
    case CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__BODY_KEEPALIVE:
        broker_do_keepalive(b, req, broker_peer_pid(fd), resp);
        break;
    case CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__BODY_LIST_SESSIONS:
        broker_do_list(b, req, resp, &lr, infos, ptrs, copies, prefixes);
        break;
    default:
        resp->code = CS_RPC_UNIMPLEMENTED;
        resp->message = (char *) "unknown broker request";
        break;
    }
}

/* Serve one packet; a negative return drops the client. */
static int
broker_serve(broker_t *b, int fd)
{
    broker_response_t resp = CONFIGSTREAM__BROKER__V1__BROKER_RESPONSE__INIT;
    broker_request_t *req;
    size_t len;
    ssize_t n;

    n = recv(fd, b->buf, BROKER_PACKET_MAX, MSG_DONTWAIT);
    if (n == 0) {
        return -ECONNRESET;
    }
    if (n < 0) {
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    }

    req = configstream__broker__v1__broker_request__unpack(NULL, (size_t) n,
        b->buf);
    if (req == NULL) {
        cs_log_info("broker", "dropping client: undecodable request");
        return -EBADMSG;
    }

    broker_dispatch(b, fd, req, &resp);

    len = configstream__broker__v1__broker_response__get_packed_size(&resp);
    configstream__broker__v1__broker_response__pack(&resp, b->buf);
    configstream__broker__v1__broker_request__free_unpacked(req, NULL);

    /* A client waits for each answer, so a full socket means it is stuck. */
    if (send(fd, b->buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t) len)
    {
        cs_log_info("broker", "dropping client: send: %s", strerror(errno));
        return -errno;
    }

    return 0;
}

static void
broker_accept(broker_t *b)
{
    int fd;

    for (;;) {
        fd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd == -1) {
            if (errno != EAGAIN && errno != EINTR) {
                cs_log_error("broker", "accept4: %s", strerror(errno));
            }
            return;
        }

        if (b->n_clients == BROKER_CLIENTS_MAX) {
            cs_log_warn("broker", "refusing client: %d clients connected",
                BROKER_CLIENTS_MAX);
            close(fd);
            continue;
        }
        b->clients[b->n_clients++] = fd;
    }
}

static int
broker_poll_timeout(broker_t *b, int64_t next_ms)
{
    int64_t left;

    left = next_ms - cs_registry_now(b->reg);
    if (left < 0) {
        return 0;
    }

    return left > BROKER_SWEEP_MAX_MS ? BROKER_SWEEP_MAX_MS : (int) left;
}

static int
broker_run(broker_t *b)
{
    struct pollfd pfds[BROKER_CLIENTS_MAX + 2];
    int64_t next_ms = 0;
    size_t i, n;
    int expired, rc;

    while (!b->stop) {
        expired = cs_registry_sweep(b->reg, &next_ms);
        if (expired > 0) {
            cs_log_info("registry", "%d idle sessions expired", expired);
        }

        pfds[0] = (struct pollfd) { .fd = b->sfd, .events = POLLIN };
        pfds[1] = (struct pollfd) { .fd = b->lfd, .events = POLLIN };
        for (i = 0; i < b->n_clients; i++) {
            pfds[i + 2] = (struct pollfd) {
                .fd = b->clients[i], .events = POLLIN
            };
        }
        n = b->n_clients;

        rc = poll(pfds, n + 2, broker_poll_timeout(b, next_ms));
        if (rc == -1 && errno != EINTR) {
            cs_log_error("broker", "poll: %s", strerror(errno));
            return -errno;
        }
        if (rc <= 0) {
            continue;
        }

        if (pfds[0].revents) {
            broker_on_signal(b);
        }

        /* Backwards, so dropping a client keeps earlier indexes valid. */
        for (i = n; i-- > 0;) {
            if (pfds[i + 2].revents == 0) {
                continue;
            }
            if (broker_serve(b, b->clients[i]) < 0) {
                close(b->clients[i]);
                b->clients[i] = b->clients[--b->n_clients];
            }
        }

        if (pfds[1].revents) {
            broker_accept(b);
        }
    }

    return 0;
}

/*
 * The telemetry endpoint runs on libmicrohttpd's thread, started once the
 * signals are blocked so that the thread inherits the mask. A failure is
 * logged and the registry keeps serving: metrics are not worth an outage.
 */
static void
broker_telemetry_start(broker_t *b)
{
    const char *addr = b->cfg.telemetry_address;
    char err[512];

    if (addr == NULL || addr[0] == '\0') {
        return;
    }
    if (cs_metrics_http_start(b->shm, addr, err, sizeof(err)) < 0) {
        cs_log_error("telemetry", "%s", err);
        return;
    }
    cs_log_notice("telemetry", "serving http://%s/metrics", addr);
}

static void
broker_shutdown(broker_t *b)
{
    size_t i;

    for (i = 0; i < b->n_clients; i++) {
        close(b->clients[i]);
    }
    if (b->lfd != -1) {
        close(b->lfd);
        unlink(b->cfg.broker_socket);
    }
    if (b->sfd != -1) {
        close(b->sfd);
    }
    cs_metrics_http_stop();
    if (b->shm != NULL) {
        atomic_store(&cs_shm_header(b->shm)->broker_pid, 0);
    }
    cs_registry_free(b->reg);
    cs_shm_detach(b->shm);
    free(b->buf);
    cs_config_free(&b->cfg);
}

static int
broker_check_settings(const cs_config_t *cfg)
{
    if (cfg->rar_idle_timeout_ms <= 0 || cfg->rar_refresh_interval_ms <= 0) {
        cs_log_error("config", "remote_agent_registry.idle_timeout and "
            ".recommended_refresh_interval must be positive");
        return -EINVAL;
    }

    if (cfg->rar_max_sessions == 0 || cfg->rar_max_sessions > (1u << 20)) {
        cs_log_error("config", "remote_agent_registry.max_sessions must be "
            "between 1 and 1048576");
        return -EINVAL;
    }

    return 0;
}

static int
broker_setup(broker_t *b)
{
    cs_registry_params_t params;
    const char *failed = "";
    int rc;

    rc = cs_mkdir_parent(b->cfg.shm_path, 0700, &failed);
    if (rc == 0) {
        rc = cs_mkdir_parent(b->cfg.broker_socket, 0700, &failed);
    }
    if (rc < 0) {
        cs_log_error("broker", "mkdir %s: %s", failed, strerror(-rc));
        return rc;
    }

    rc = broker_open_segment(b);
    if (rc < 0) {
        return rc;
    }

    memset(&params, 0, sizeof(params));
    params.enabled = b->cfg.rar_enabled;
    params.idle_timeout_ms = b->cfg.rar_idle_timeout_ms;
    params.refresh_interval_ms = b->cfg.rar_refresh_interval_ms;

    rc = cs_registry_new(&b->reg, b->shm, &params);
    if (rc < 0) {
        cs_log_error("registry", "cannot set up: %s", strerror(-rc));
        return rc;
    }
    cs_log_notice("registry", "remote agent registry %s (%llu sessions "
        "kept, idle timeout %lld ms)", b->cfg.rar_enabled ? "enabled"
        : "disabled", (unsigned long long) atomic_load(
            &cs_shm_registry_stats(b->shm)->registered),
        (long long) b->cfg.rar_idle_timeout_ms);

    rc = broker_signals(b);
    if (rc < 0) {
        return rc;
    }

    return broker_listen(b);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "schema", required_argument, NULL, 's' },
        { "telemetry", no_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *config_path = NULL, *schema_path = NULL;
    broker_t b;
    char err[1024];
    int opt, rc, telemetry = 0;

    cs_log_init(argv[0]);

    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 's':
            schema_path = optarg;
            break;
        case 't':
            telemetry = 1;
            break;
        case 'h':
            broker_usage(stdout, argv[0]);
            return 0;
        default:
            broker_usage(stderr, argv[0]);
            return 2;
        }
    }

    memset(&b, 0, sizeof(b));
    b.sfd = -1;
    b.lfd = -1;

    rc = cs_config_load(&b.cfg, config_path, schema_path, err, sizeof(err));
    if (rc < 0) {
        cs_log_error("config", "%s", err);
        return CS_EXIT_FATAL_CONFIG;
    }
    cs_log_set_level(b.cfg.log_level);

    if (broker_check_settings(&b.cfg) < 0) {
        cs_config_free(&b.cfg);
        return CS_EXIT_FATAL_CONFIG;
    }

    cs_log_notice("broker", "starting");

    b.buf = malloc(BROKER_PACKET_MAX);
    rc = b.buf == NULL ? -ENOMEM : broker_setup(&b);
    if (rc == 0) {
        if (telemetry) {
            broker_telemetry_start(&b);
        }
        cs_log_notice("broker", "ready, serving %s", b.cfg.broker_socket);
        rc = broker_run(&b);
    }

    broker_shutdown(&b);
    if (rc == -EPROTO) {
        /* A segment of another layout: restarting will not help. */
        return CS_EXIT_FATAL_CONFIG;
    }
    if (rc < 0) {
        return 1;
    }
    cs_log_notice("broker", "stopped");

    return 0;
}
