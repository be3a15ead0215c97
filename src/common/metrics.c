/*
 * Prometheus text from the shared-memory counters, and the HTTP endpoint.
 *
 * Every number is read from the segment at scrape time, so the endpoint
 * keeps no state of its own and survives the death of any worker: a dead
 * worker's counters stay in its block and keep counting in the sums, only
 * its subscribers gauge is left out (those streams are gone), whether it
 * released its block or died holding it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "metrics.h"

#define CS_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct {
    const char *name;
    const char *type;
    const char *help;
    size_t offset;
} cs_metric_def_t;

#define CS_METRIC(n, t, h) { "configstream_" #n, t, h, \
    offsetof(cs_metrics_t, n) }

static const cs_metric_def_t cs_metric_defs[] = {
    CS_METRIC(subscribers, "gauge",
        "Config stream subscribers connected now."),
    CS_METRIC(snapshots_sent, "untyped",
        "Config snapshots sent to subscribers (monotonic counter)."),
    CS_METRIC(updates_sent, "untyped",
        "Config updates sent to subscribers (monotonic counter)."),
    CS_METRIC(discontinuities, "untyped",
        "Subscribers resynchronised with a snapshot after a gap "
        "(monotonic counter)."),
    CS_METRIC(dropped_updates, "untyped",
        "Config updates dropped for slow subscribers (monotonic counter)."),
    CS_METRIC(rar_registered_sessions, "gauge",
        "Remote agent sessions registered now."),
    CS_METRIC(rar_registrations, "untyped",
        "Remote agent registrations (monotonic counter)."),
    CS_METRIC(rar_refreshes, "untyped",
        "Remote agent session refreshes (monotonic counter)."),
    CS_METRIC(rar_expirations, "untyped",
        "Remote agent sessions expired for idleness (monotonic counter)."),
    CS_METRIC(rar_revocations, "untyped",
        "Remote agent sessions revoked (monotonic counter)."),
    CS_METRIC(rar_rejected_lookups, "untyped",
        "Streams refused for an unknown session (monotonic counter)."),
    CS_METRIC(head_sequence_id, "gauge",
        "Sequence id of the last committed configuration change."),
};

static struct MHD_Daemon *cs_metrics_daemon;
static cs_shm_t *cs_metrics_shm;
static int cs_metrics_port;

static void cs_metrics_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
cs_metrics_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t
cs_metrics_load(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/*
 * A worker killed with SIGKILL leaves its pid in the block until a new
 * worker reclaims it; its streams ended with it all the same.
 */
static int
cs_metrics_owner_alive(cs_shm_worker_stats_t *w)
{
    int32_t pid = atomic_load_explicit(&w->owner_pid, memory_order_relaxed);

    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

void
cs_metrics_collect(cs_shm_t *shm, cs_metrics_t *m)
{
    cs_shm_header_t *hdr = cs_shm_header(shm);
    cs_shm_registry_stats_t *reg = cs_shm_registry_stats(shm);

    memset(m, 0, sizeof(*m));

    for (uint32_t i = 0; i < hdr->worker_capacity; i++) {
        cs_shm_worker_stats_t *w = cs_shm_worker(shm, i);

        if (cs_metrics_owner_alive(w)) {
            m->subscribers += cs_metrics_load(&w->subscribers);
        }
        m->snapshots_sent += cs_metrics_load(&w->snapshots_sent);
        m->updates_sent += cs_metrics_load(&w->updates_sent);
        m->discontinuities += cs_metrics_load(&w->discontinuities);
        m->dropped_updates += cs_metrics_load(&w->dropped_updates);
    }

    m->rar_registered_sessions = cs_metrics_load(&reg->registered);
    m->rar_registrations = cs_metrics_load(&reg->registrations);
    m->rar_refreshes = cs_metrics_load(&reg->refreshes);
    m->rar_expirations = cs_metrics_load(&reg->expirations);
    m->rar_revocations = cs_metrics_load(&reg->revocations);
    m->rar_rejected_lookups = cs_metrics_load(&reg->rejected_lookups);
    m->head_sequence_id = cs_metrics_load(&hdr->head_seq);
}

int
cs_metrics_render(const cs_metrics_t *m, char **text, size_t *len)
{
    FILE *fp;
    char *buf = NULL;
    size_t size = 0;
    size_t n = sizeof(cs_metric_defs) / sizeof(cs_metric_defs[0]);
    int failed;

    fp = open_memstream(&buf, &size);
    if (fp == NULL) {
        return -ENOMEM;
    }

    for (size_t i = 0; i < n; i++) {
        const cs_metric_def_t *d = &cs_metric_defs[i];
        uint64_t v = *(const uint64_t *)((const char *)m + d->offset);

        fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", d->name,
            d->help, d->name, d->type, d->name, (unsigned long long)v);
    }

    failed = ferror(fp);
    if (fclose(fp) != 0 || failed) {
        free(buf);
        return -ENOMEM;
    }

    *text = buf;
    *len = size;
    return 0;
}

static enum MHD_Result
cs_metrics_reply(struct MHD_Connection *conn, unsigned int status,
    char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(len, body, mode);
    if (resp == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE) {
            free(body);
        }
        return MHD_NO;
    }

    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
        CS_METRICS_CONTENT_TYPE);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result
cs_metrics_answer(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **req_cls)
{
    static char not_found[] = "not found\n";
    static char not_allowed[] = "method not allowed\n";
    cs_metrics_t m;
    char *text;
    size_t len;

    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return cs_metrics_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
            not_allowed, strlen(not_allowed), MHD_RESPMEM_PERSISTENT);
    }

    if (strcmp(url, "/metrics") != 0) {
        return cs_metrics_reply(conn, MHD_HTTP_NOT_FOUND, not_found,
            strlen(not_found), MHD_RESPMEM_PERSISTENT);
    }

    cs_metrics_collect(cs_metrics_shm, &m);
    if (cs_metrics_render(&m, &text, &len) < 0) {
        return MHD_NO;
    }
    return cs_metrics_reply(conn, MHD_HTTP_OK, text, len,
        MHD_RESPMEM_MUST_FREE);
}

static int
cs_metrics_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return 0;
}

/*
 * Bind and listen ourselves rather than let libmicrohttpd do it, so that a
 * failure carries its errno ("Address already in use").
 */
static int
cs_metrics_listen(const char *addr, int *out_fd, char *err, size_t errlen)
{
    char host[256];
    const char *colon, *port, *h = addr;
    size_t hlen;
    struct addrinfo hints = { 0 }, *res = NULL;
    int fd, rc, one = 1;

    colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] == '\0') {
        cs_metrics_err(err, errlen,
            "telemetry address '%s' is not host:port", addr);
        return -EINVAL;
    }
    port = colon + 1;
    hlen = (size_t)(colon - addr);
    if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
        h = addr + 1;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        cs_metrics_err(err, errlen,
            "telemetry address '%s' is not host:port", addr);
        return -EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        cs_metrics_err(err, errlen, "telemetry address '%s': %s", addr,
            gai_strerror(rc));
        return -EINVAL;
    }

    if (!cs_metrics_is_loopback(res->ai_addr)) {
        cs_metrics_err(err, errlen,
            "telemetry address '%s' is not a loopback address", addr);
        rc = -EINVAL;
        goto out_free;
    }

    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        cs_metrics_err(err, errlen, "socket: %s", strerror(errno));
        goto out_free;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
        listen(fd, 64) != 0) {
        rc = -errno;
        cs_metrics_err(err, errlen, "bind %s: %s", addr, strerror(errno));
        close(fd);
        goto out_free;
    }

    *out_fd = fd;
    rc = 0;

out_free:
    freeaddrinfo(res);
    return rc;
}

static int
cs_metrics_bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return 0;
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int
cs_metrics_http_start(cs_shm_t *shm, const char *addr, char *err,
    size_t errlen)
{
    int fd, rc;

    if (cs_metrics_daemon != NULL) {
        cs_metrics_err(err, errlen, "telemetry endpoint already running");
        return -EALREADY;
    }

    rc = cs_metrics_listen(addr, &fd, err, errlen);
    if (rc < 0) {
        return rc;
    }

    cs_metrics_shm = shm;
    cs_metrics_port = cs_metrics_bound_port(fd);
    cs_metrics_daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
        cs_metrics_answer, NULL,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        /* KNOWN-ISSUE(metrics-connections) */
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)32,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
        MHD_OPTION_END);
    if (cs_metrics_daemon == NULL) {
        cs_metrics_err(err, errlen, "MHD_start_daemon %s failed", addr);
        close(fd);
        cs_metrics_shm = NULL;
        cs_metrics_port = 0;
        return -EIO;
    }
    return 0;
}

int
cs_metrics_http_port(void)
{
    return cs_metrics_port;
}

void
cs_metrics_http_stop(void)
{
    if (cs_metrics_daemon == NULL) {
        return;
    }

    /* This also closes the listening socket handed to libmicrohttpd. */
    MHD_stop_daemon(cs_metrics_daemon);
    cs_metrics_daemon = NULL;
    cs_metrics_shm = NULL;
    cs_metrics_port = 0;
}
