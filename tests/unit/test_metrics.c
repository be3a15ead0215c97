/*
 * Telemetry: the sums over a fake segment, the exact exposition text and
 * the HTTP endpoint. The segment accessors of shm.h are provided here over
 * plain structs, so these tests need no broker.
 *
 * "test_metrics --print" writes the text of the fake segment to stdout for
 * promtool to lint.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "metrics.h"

#define FAKE_WORKERS 3

struct cs_shm {
    cs_shm_header_t hdr;
    cs_shm_registry_stats_t reg;
    cs_shm_worker_stats_t workers[FAKE_WORKERS];
};

static struct cs_shm fake;

cs_shm_header_t *
cs_shm_header(cs_shm_t *shm)
{
    return &shm->hdr;
}

cs_shm_registry_stats_t *
cs_shm_registry_stats(cs_shm_t *shm)
{
    return &shm->reg;
}

cs_shm_worker_stats_t *
cs_shm_worker(cs_shm_t *shm, uint32_t idx)
{
    assert_true(idx < FAKE_WORKERS);
    return &shm->workers[idx];
}

static void
fake_fill(void)
{
    memset(&fake, 0, sizeof(fake));
    fake.hdr.worker_capacity = FAKE_WORKERS;
    fake.hdr.head_seq = 4242;

    fake.reg.registered = 2;
    fake.reg.registrations = 7;
    fake.reg.refreshes = 30;
    fake.reg.expirations = 3;
    fake.reg.revocations = 1;
    fake.reg.rejected_lookups = 5;

    fake.workers[0].owner_pid = (int32_t)getpid();
    fake.workers[0].subscribers = 2;
    fake.workers[0].snapshots_sent = 10;
    fake.workers[0].updates_sent = 1000;
    fake.workers[0].discontinuities = 1;
    fake.workers[0].dropped_updates = 40;

    /* A worker that died: its streams are gone, its counts are not. */
    fake.workers[1].owner_pid = 0;
    fake.workers[1].subscribers = 9;
    fake.workers[1].snapshots_sent = 5;
    fake.workers[1].updates_sent = 500;

    fake.workers[2].owner_pid = (int32_t)getpid();
    fake.workers[2].subscribers = 1;
    fake.workers[2].snapshots_sent = 1;
    fake.workers[2].updates_sent = 2;
    fake.workers[2].discontinuities = 2;
    fake.workers[2].dropped_updates = 2;
}

static const char expected_text[] =
    "# HELP configstream_subscribers Config stream subscribers connected now.\n"
    "# TYPE configstream_subscribers gauge\n"
    "configstream_subscribers 3\n"
    "# HELP configstream_snapshots_sent Config snapshots sent to subscribers (monotonic counter).\n"
    "# TYPE configstream_snapshots_sent untyped\n"
    "configstream_snapshots_sent 16\n"
    "# HELP configstream_updates_sent Config updates sent to subscribers (monotonic counter).\n"
    "# TYPE configstream_updates_sent untyped\n"
    "configstream_updates_sent 1502\n"
    "# HELP configstream_discontinuities Subscribers resynchronised with a snapshot after a gap (monotonic counter).\n"
    "# TYPE configstream_discontinuities untyped\n"
    "configstream_discontinuities 3\n"
    "# HELP configstream_dropped_updates Config updates dropped for slow subscribers (monotonic counter).\n"
    "# TYPE configstream_dropped_updates untyped\n"
    "configstream_dropped_updates 42\n"
    "# HELP configstream_rar_registered_sessions Remote agent sessions registered now.\n"
    "# TYPE configstream_rar_registered_sessions gauge\n"
    "configstream_rar_registered_sessions 2\n"
    "# HELP configstream_rar_registrations Remote agent registrations (monotonic counter).\n"
    "# TYPE configstream_rar_registrations untyped\n"
    "configstream_rar_registrations 7\n"
    "# HELP configstream_rar_refreshes Remote agent session refreshes (monotonic counter).\n"
    "# TYPE configstream_rar_refreshes untyped\n"
    "configstream_rar_refreshes 30\n"
    "# HELP configstream_rar_expirations Remote agent sessions expired for idleness (monotonic counter).\n"
    "# TYPE configstream_rar_expirations untyped\n"
    "configstream_rar_expirations 3\n"
    "# HELP configstream_rar_revocations Remote agent sessions revoked (monotonic counter).\n"
    "# TYPE configstream_rar_revocations untyped\n"
    "configstream_rar_revocations 1\n"
    "# HELP configstream_rar_rejected_lookups Streams refused for an unknown session (monotonic counter).\n"
    "# TYPE configstream_rar_rejected_lookups untyped\n"
    "configstream_rar_rejected_lookups 5\n"
    "# HELP configstream_head_sequence_id Sequence id of the last committed configuration change.\n"
    "# TYPE configstream_head_sequence_id gauge\n"
    "configstream_head_sequence_id 4242\n";

static void
test_collect_sums(void **state)
{
    cs_metrics_t m;

    fake_fill();
    cs_metrics_collect(&fake, &m);

    assert_int_equal(m.subscribers, 3);
    assert_int_equal(m.snapshots_sent, 16);
    assert_int_equal(m.updates_sent, 1502);
    assert_int_equal(m.discontinuities, 3);
    assert_int_equal(m.dropped_updates, 42);
    assert_int_equal(m.rar_registered_sessions, 2);
    assert_int_equal(m.rar_rejected_lookups, 5);
    assert_int_equal(m.head_sequence_id, 4242);
}

/* A worker killed while holding its block: pid recorded, process gone. */
static void
test_collect_dead_owner(void **state)
{
    cs_metrics_t m;
    pid_t pid;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(0);
    }
    assert_int_equal(waitpid(pid, NULL, 0), pid);

    fake_fill();
    fake.workers[2].owner_pid = (int32_t)pid;
    cs_metrics_collect(&fake, &m);
    assert_int_equal(m.subscribers, 2);
    assert_int_equal(m.updates_sent, 1502);
}

static void
test_render_exact(void **state)
{
    cs_metrics_t m;
    char *text;
    size_t len;

    fake_fill();
    cs_metrics_collect(&fake, &m);
    assert_int_equal(cs_metrics_render(&m, &text, &len), 0);
    assert_string_equal(text, expected_text);
    assert_int_equal(len, strlen(expected_text));
    free(text);

    /* Counters near the top of the range print in full. */
    m.updates_sent = UINT64_MAX;
    assert_int_equal(cs_metrics_render(&m, &text, &len), 0);
    assert_non_null(strstr(text,
        "\nconfigstream_updates_sent 18446744073709551615\n"));
    free(text);
}

/* One HTTP/1.0 request on loopback; the whole reply, NUL-terminated. */
static char *
http_request(int port, const char *method, const char *path)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    char req[256], *buf;
    size_t used = 0;
    ssize_t n;
    int fd;

    buf = calloc(1, 65536);
    assert_non_null(buf);
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: x\r\n\r\n", method,
        path);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));

    while ((n = read(fd, buf + used, 65535 - used)) > 0) {
        used += (size_t)n;
    }
    buf[used] = '\0';
    close(fd);
    return buf;
}

static void
test_http_endpoint(void **state)
{
    char err[256] = "";
    char addr[64];
    char *reply, *body;
    int port;

    fake_fill();
    assert_int_equal(cs_metrics_http_start(&fake, "127.0.0.1:0", err,
        sizeof(err)), 0);
    port = cs_metrics_http_port();
    assert_true(port > 0);

    reply = http_request(port, "GET", "/metrics");
    assert_int_equal(strncmp(reply, "HTTP/1.", 7), 0);
    assert_int_equal(strncmp(reply + 8, " 200 ", 5), 0);
    assert_non_null(strcasestr(reply,
        "Content-Type: text/plain; version=0.0.4"));
    body = strstr(reply, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4, expected_text);
    free(reply);

    /* Scrapes read the segment live. */
    fake.workers[2].updates_sent += 8;
    reply = http_request(port, "GET", "/metrics");
    assert_non_null(strstr(reply, "\nconfigstream_updates_sent 1510\n"));
    free(reply);

    reply = http_request(port, "GET", "/");
    assert_non_null(strstr(reply, " 404 "));
    free(reply);
    reply = http_request(port, "GET", "/metrics/x");
    assert_non_null(strstr(reply, " 404 "));
    free(reply);
    reply = http_request(port, "POST", "/metrics");
    assert_non_null(strstr(reply, " 405 "));
    free(reply);

    assert_int_equal(cs_metrics_http_start(&fake, "127.0.0.1:0", err,
        sizeof(err)), -EALREADY);

    cs_metrics_http_stop();
    assert_int_equal(cs_metrics_http_port(), 0);

    /* The port is free again once stopped. */
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(cs_metrics_http_start(&fake, addr, err, sizeof(err)),
        0);
    cs_metrics_http_stop();
}

static void
test_http_bad_addresses(void **state)
{
    char err[256];
    int fd, port;
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t len = sizeof(sin);
    char addr[64];

    assert_int_equal(cs_metrics_http_start(&fake, "0.0.0.0:0", err,
        sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not a loopback address"));
    assert_int_equal(cs_metrics_http_start(&fake, "127.0.0.1", err,
        sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not host:port"));
    assert_int_equal(cs_metrics_http_start(&fake, "127.0.0.1:http", err,
        sizeof(err)), -EINVAL);

    assert_int_equal(cs_metrics_http_start(&fake, "[::1]:0", err,
        sizeof(err)) == 0 || strstr(err, "bind") != NULL, 1);
    cs_metrics_http_stop();

    /* A port someone else holds: the bind error, with its errno. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    port = ntohs(sin.sin_port);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(cs_metrics_http_start(&fake, addr, err, sizeof(err)),
        -EADDRINUSE);
    assert_non_null(strstr(err, "Address already in use"));
    close(fd);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collect_sums),
        cmocka_unit_test(test_collect_dead_owner),
        cmocka_unit_test(test_render_exact),
        cmocka_unit_test(test_http_endpoint),
        cmocka_unit_test(test_http_bad_addresses),
    };

    if (argc > 1 && strcmp(argv[1], "--print") == 0) {
        cs_metrics_t m;
        char *text;
        size_t len;

        fake_fill();
        cs_metrics_collect(&fake, &m);
        if (cs_metrics_render(&m, &text, &len) < 0) {
            return 1;
        }
        fwrite(text, 1, len, stdout);
        free(text);
        return 0;
    }

    return cmocka_run_group_tests(tests, NULL, NULL);
}
