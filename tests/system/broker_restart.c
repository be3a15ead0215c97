/*
 * configstream-broker as a process: sessions registered through the
 * broker socket survive a kill -9 and restart with their expiry times
 * intact; a client that was connected gets errors (UNAVAILABLE for a
 * frontend) while the broker is down, and works again once it is back
 * without reconnecting by hand; lookups in the segment work throughout.
 * Also: listing, revoke by prefix, the registry switch, a bad config and
 * a segment of another layout (both exit CS_EXIT_FATAL_CONFIG), SIGTERM.
 *
 * usage: broker_restart PATH_TO_CONFIGSTREAM_BROKER
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker_client.h"
#include "config.h"
#include "shm.h"

#define IDLE_S      3
#define CALL_MS     2000

static const char *broker_bin;
static int failures;

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,          \
                __LINE__, #cond);                                           \
            failures++;                                                     \
        }                                                                   \
    } while (0)

typedef struct {
    char dir[64];
    char cfg[128];
    char sock[128];
    char shm[128];
} paths_t;

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000 };

    nanosleep(&ts, NULL);
}

static void
paths_init(paths_t *p, const char *extra_yaml)
{
    FILE *f;

    strcpy(p->dir, "/tmp/broker_restart.XXXXXX");
    if (mkdtemp(p->dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(p->cfg, sizeof(p->cfg), "%s/datadog.yaml", p->dir);
    snprintf(p->sock, sizeof(p->sock), "%s/configstream/broker.sock",
        p->dir);
    snprintf(p->shm, sizeof(p->shm), "%s/configstream/shm", p->dir);

    f = fopen(p->cfg, "w");
    if (f == NULL) {
        perror(p->cfg);
        exit(1);
    }
    fprintf(f, "run_path: %s\nlog_level: debug\n%s", p->dir, extra_yaml);
    fclose(f);
}

static void
paths_cleanup(const paths_t *p)
{
    char sub[160];

    unlink(p->shm);
    unlink(p->sock);
    unlink(p->cfg);
    snprintf(sub, sizeof(sub), "%s/configstream", p->dir);
    rmdir(sub);
    rmdir(p->dir);
}

static pid_t
broker_start(const paths_t *p)
{
    pid_t pid = fork();

    if (pid == 0) {
        execl(broker_bin, broker_bin, "-c", p->cfg, (char *) NULL);
        perror(broker_bin);
        _exit(127);
    }

    return pid;
}

/* Wait until the broker answers a listing, or it exits. */
static int
broker_wait_ready(const paths_t *p, pid_t pid)
{
    cs_broker_session_info_t *list;
    cs_broker_client_t *bc;
    cs_broker_reply_t reply;
    int64_t end = mono_ms() + 5000;
    size_t n;
    int rc = -ETIMEDOUT;

    cs_broker_client_new(&bc, p->sock);
    while (mono_ms() < end) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            rc = -ECHILD;
            break;
        }
        if (cs_broker_client_list(bc, 500, &reply, &list, &n) == 0) {
            free(list);
            rc = 0;
            break;
        }
        sleep_ms(20);
    }
    cs_broker_client_free(bc);

    return rc;
}

static int
broker_exit_code(pid_t pid, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    int status;

    while (mono_ms() < end) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128
                + WTERMSIG(status);
        }
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);

    return -1;
}

static int
do_register(cs_broker_client_t *bc, const char *name, char *id)
{
    const char *services[] = { "status" };
    cs_broker_agent_t a = {
        .pid = "123", .flavor = "trace_agent", .display_name = name,
        .api_endpoint_uri = "unix:///tmp/agent.sock",
        .services = services, .n_services = 1,
    };
    cs_broker_reply_t reply;
    uint32_t secs;
    int rc;

    rc = cs_broker_client_register(bc, &a, CALL_MS, &reply, id, &secs);
    if (rc < 0) {
        return rc;
    }
    if (reply.code != CS_RPC_OK) {
        fprintf(stderr, "register: %d %s\n", reply.code, reply.message);
        return -EINVAL;
    }
    CHECK(secs == 1);

    return 0;
}

static int
lookup_last_seen(cs_shm_t *shm, const char *id, int64_t *last_seen)
{
    cs_shm_session_t s;
    int rc;

    rc = cs_shm_session_lookup(shm, id, &s, NULL);
    if (rc == 0 && last_seen != NULL) {
        *last_seen = s.last_seen_ms;
    }

    return rc;
}

static void
test_kill_and_restart(void)
{
    char a[CS_SESSION_ID_LEN + 1], b[CS_SESSION_ID_LEN + 1];
    char c[CS_SESSION_ID_LEN + 1], d[CS_SESSION_ID_LEN + 1];
    cs_broker_stream_count_t streams = { .session_id = d, .open_streams = 2 };
    cs_broker_session_info_t *list = NULL;
    int64_t t0, seen_b = 0, seen_b2 = -1, seen_c;
    cs_broker_client_t *bc;
    cs_broker_reply_t reply;
    cs_shm_t *shm = NULL;
    char err[256];
    size_t n = 0;
    paths_t p;
    pid_t pid;
    int rc;

    paths_init(&p, "remote_agent_registry:\n  idle_timeout: 3s\n"
        "  recommended_refresh_interval: 1s\n");
    pid = broker_start(&p);
    CHECK(broker_wait_ready(&p, pid) == 0);

    cs_broker_client_new(&bc, p.sock);
    t0 = mono_ms();
    CHECK(do_register(bc, "agent a", a) == 0);
    CHECK(do_register(bc, "agent b", b) == 0);
    CHECK(do_register(bc, "agent c", c) == 0);
    CHECK(do_register(bc, "agent d", d) == 0);
    CHECK(cs_broker_client_keepalive(bc, 4242, &streams, 1, CALL_MS,
        &reply) == 0);
    CHECK(reply.code == CS_RPC_OK);

    if (cs_shm_attach(&shm, p.shm, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    CHECK(lookup_last_seen(shm, b, &seen_b) == 0);
    CHECK(cs_shm_header(shm)->registry_enabled == 1);

    /* The broker dies with live sessions and its socket file left. */
    sleep_ms(300);
    CHECK(cs_broker_client_refresh(bc, a, CALL_MS, &reply) == 0);
    CHECK(reply.code == CS_RPC_OK);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);

    /* Down: registry calls fail (UNAVAILABLE), lookups keep working. */
    rc = cs_broker_client_refresh(bc, a, CALL_MS, &reply);
    printf("refresh while the broker is down: %s\n", strerror(-rc));
    CHECK(rc < 0);
    CHECK(cs_broker_client_refresh(bc, a, CALL_MS, &reply) < 0);
    CHECK(lookup_last_seen(shm, a, NULL) == 0);
    CHECK(lookup_last_seen(shm, b, NULL) == 0);
    sleep_ms(1500);

    pid = broker_start(&p);
    CHECK(broker_wait_ready(&p, pid) == 0);

    /* Back: the same client works again, every session is still valid,
     * and their last-seen times were kept. */
    CHECK(cs_broker_client_refresh(bc, a, CALL_MS, &reply) == 0);
    CHECK(reply.code == CS_RPC_OK);
    CHECK(lookup_last_seen(shm, b, &seen_b2) == 0);
    CHECK(seen_b2 == seen_b);
    CHECK(lookup_last_seen(shm, c, &seen_c) == 0);

    CHECK(cs_broker_client_list(bc, CALL_MS, &reply, &list, &n) == 0);
    CHECK(n == 4);
    if (n > 0) {
        CHECK(strlen(list[0].id_prefix) == 8);
        CHECK(strncmp(list[0].display_name, "agent ", 6) == 0);
        CHECK(list[0].age_ms >= 1500);
    }
    free(list);

    /*
     * Expiry carries on from before the crash: b and c, never refreshed,
     * go IDLE_S after they registered, well before IDLE_S after the
     * restart. a, refreshed, stays; so does d, whose streams a frontend
     * keeps reporting.
     */
    while (mono_ms() < t0 + IDLE_S * 1000 + 700) {
        sleep_ms(250);
        CHECK(cs_broker_client_refresh(bc, a, CALL_MS, &reply) == 0);
        CHECK(cs_broker_client_keepalive(bc, 4242, &streams, 1, CALL_MS,
            &reply) == 0);
    }
    CHECK(lookup_last_seen(shm, b, NULL) == -ENOENT);
    CHECK(lookup_last_seen(shm, c, NULL) == -ENOENT);
    CHECK(lookup_last_seen(shm, a, NULL) == 0);
    CHECK(lookup_last_seen(shm, d, NULL) == 0);
    CHECK(cs_broker_client_list(bc, CALL_MS, &reply, &list, &n) == 0);
    CHECK(n == 2);
    for (size_t i = 0; i < n; i++) {
        CHECK(list[i].open_streams == (strcmp(list[i].display_name,
            "agent d") == 0 ? 2u : 0u));
    }
    free(list);
    printf("sessions after %lld ms: a and d live, b and c expired\n",
        (long long) (mono_ms() - t0));

    CHECK(cs_broker_client_refresh(bc, b, CALL_MS, &reply) == 0);
    CHECK(reply.code == CS_RPC_NOT_FOUND);
    CHECK(strcmp(reply.message, "no remote agent found with session ID")
        == 0);

    /* Revoke by the prefix a listing shows. */
    char prefix[9];
    memcpy(prefix, a, 8);
    prefix[8] = '\0';
    CHECK(cs_broker_client_revoke(bc, prefix, CALL_MS, &reply) == 0);
    CHECK(reply.code == CS_RPC_OK);
    CHECK(lookup_last_seen(shm, a, NULL) == -ENOENT);

    /* SIGTERM: a clean exit that removes the socket. */
    kill(pid, SIGTERM);
    CHECK(broker_exit_code(pid, 5000) == 0);
    CHECK(access(p.sock, F_OK) == -1);

    cs_shm_detach(shm);
    cs_broker_client_free(bc);
    paths_cleanup(&p);
}

static void
test_invalid_and_disabled(void)
{
    char id[CS_SESSION_ID_LEN + 1];
    cs_broker_agent_t a = { .display_name = "", .api_endpoint_uri =
        "unix:///x" };
    cs_broker_client_t *bc;
    cs_broker_reply_t reply;
    uint32_t secs;
    paths_t p;
    pid_t pid;

    paths_init(&p, "remote_agent_registry:\n  enabled: false\n");
    pid = broker_start(&p);
    CHECK(broker_wait_ready(&p, pid) == 0);
    cs_broker_client_new(&bc, p.sock);

    a.display_name = "x";
    CHECK(cs_broker_client_register(bc, &a, CALL_MS, &reply, id, &secs)
        == 0);
    CHECK(reply.code == CS_RPC_UNIMPLEMENTED);
    CHECK(strcmp(reply.message, "remote agent registry not enabled") == 0);
    CHECK(cs_broker_client_refresh(bc, "x", CALL_MS, &reply) == 0);
    CHECK(reply.code == CS_RPC_UNIMPLEMENTED);

    kill(pid, SIGTERM);
    CHECK(broker_exit_code(pid, 5000) == 0);
    paths_cleanup(&p);

    /* Enabled again: a blank display name is refused with its reason. */
    paths_init(&p, "");
    pid = broker_start(&p);
    CHECK(broker_wait_ready(&p, pid) == 0);
    cs_broker_client_free(bc);
    cs_broker_client_new(&bc, p.sock);

    a.display_name = " ";
    CHECK(cs_broker_client_register(bc, &a, CALL_MS, &reply, id, &secs)
        == 0);
    CHECK(reply.code == CS_RPC_INVALID_ARGUMENT);
    CHECK(strcmp(reply.message, "display_name cannot be empty") == 0);

    kill(pid, SIGTERM);
    CHECK(broker_exit_code(pid, 5000) == 0);
    cs_broker_client_free(bc);
    paths_cleanup(&p);
}

static void
test_fatal_config(void)
{
    uint32_t version = CS_SHM_LAYOUT_VERSION + 1;
    paths_t p;
    pid_t pid;
    int fd;

    paths_init(&p, "remote_agent_registry:\n  idle_timeout: soon\n");
    pid = broker_start(&p);
    CHECK(broker_exit_code(pid, 5000) == CS_EXIT_FATAL_CONFIG);
    paths_cleanup(&p);

    /* A segment of another layout is refused, never rebuilt or read. */
    paths_init(&p, "");
    pid = broker_start(&p);
    CHECK(broker_wait_ready(&p, pid) == 0);
    kill(pid, SIGTERM);
    CHECK(broker_exit_code(pid, 5000) == 0);

    fd = open(p.shm, O_WRONLY);
    CHECK(fd >= 0);
    CHECK(pwrite(fd, &version, sizeof(version),
        offsetof(cs_shm_header_t, layout_version)) == sizeof(version));
    close(fd);
    pid = broker_start(&p);
    CHECK(broker_exit_code(pid, 5000) == CS_EXIT_FATAL_CONFIG);
    paths_cleanup(&p);
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH_TO_CONFIGSTREAM_BROKER\n", argv[0]);
        return 2;
    }
    broker_bin = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);

    test_kill_and_restart();
    test_invalid_and_disabled();
    test_fatal_config();

    printf("%s (%d failed checks)\n", failures == 0 ? "ok" : "FAILED",
        failures);

    return failures == 0 ? 0 : 1;
}
