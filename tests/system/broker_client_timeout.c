/*
 * The broker client against a broker that is absent, gone, or too slow:
 * each call fails with the errno its contract names, within its timeout,
 * and the next call works again once the broker answers. A stand-in
 * broker (a forked child speaking the socket protocol) plays the slow
 * one.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker_client.h"
#include "configstream/broker.pb-c.h"

static int failures;

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,          \
                __LINE__, #cond);                                           \
            failures++;                                                     \
        }                                                                   \
    } while (0)

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
listen_on(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0
        || listen(fd, 8) < 0)
    {
        perror("listen_on");
        exit(1);
    }

    return fd;
}

/* Answer one request on fd after delay_ms, with NOT_FOUND "slow". */
static void
answer(int fd, int delay_ms)
{
    Configstream__Broker__V1__BrokerResponse resp =
        CONFIGSTREAM__BROKER__V1__BROKER_RESPONSE__INIT;
    Configstream__Broker__V1__BrokerRequest *req;
    struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
    uint8_t buf[4096];
    ssize_t n;
    size_t len;

    n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
        return;
    }
    req = configstream__broker__v1__broker_request__unpack(NULL, (size_t) n,
        buf);
    if (req == NULL) {
        return;
    }

    nanosleep(&ts, NULL);
    resp.request_id = req->request_id;
    resp.code = CS_RPC_NOT_FOUND;
    resp.message = (char *) "slow";
    len = configstream__broker__v1__broker_response__pack(&resp, buf);
    send(fd, buf, len, MSG_NOSIGNAL);
    configstream__broker__v1__broker_request__free_unpacked(req, NULL);
}

/*
 * The slow broker: the first request is answered after 400 ms, on a
 * connection the client has long given up on; later ones at once.
 */
static void
slow_broker(int lfd)
{
    int fd;

    fd = accept(lfd, NULL, NULL);
    answer(fd, 400);
    close(fd);

    fd = accept(lfd, NULL, NULL);
    for (;;) {
        answer(fd, 0);
    }
}

int
main(void)
{
    char dir[] = "/tmp/broker_client.XXXXXX", path[128];
    cs_broker_client_t *bc;
    cs_broker_reply_t reply;
    int64_t t0;
    pid_t pid;
    int lfd, rc;

    if (mkdtemp(dir) == NULL) {
        return 1;
    }
    snprintf(path, sizeof(path), "%s/broker.sock", dir);
    CHECK(cs_broker_client_new(&bc, path) == 0);

    /* No broker yet: no socket file. */
    rc = cs_broker_client_refresh(bc, "x", 100, &reply);
    CHECK(rc == -ENOENT);
    CHECK(!cs_broker_client_connected(bc));

    /* A socket file nobody listens on (a broker that crashed). */
    lfd = listen_on(path);
    close(lfd);
    CHECK(cs_broker_client_refresh(bc, "x", 100, &reply) == -ECONNREFUSED);
    unlink(path);

    /* A broker that answers too late: the call gives up in time. */
    lfd = listen_on(path);
    pid = fork();
    if (pid == 0) {
        slow_broker(lfd);
        _exit(0);
    }
    close(lfd);

    t0 = mono_ms();
    rc = cs_broker_client_refresh(bc, "x", 150, &reply);
    CHECK(rc == -ETIMEDOUT);
    CHECK(mono_ms() - t0 >= 140 && mono_ms() - t0 < 1000);
    CHECK(!cs_broker_client_connected(bc));

    /* The next call reconnects and gets its own answer. */
    memset(&reply, 0, sizeof(reply));
    CHECK(cs_broker_client_refresh(bc, "x", 2000, &reply) == 0);
    CHECK(reply.code == CS_RPC_NOT_FOUND);
    CHECK(strcmp(reply.message, "slow") == 0);
    CHECK(cs_broker_client_connected(bc));

    /* The broker dies: the kept connection reports it on the next call. */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    rc = cs_broker_client_refresh(bc, "x", 500, &reply);
    printf("call after the broker died: %s\n", strerror(-rc));
    CHECK(rc < 0);

    cs_broker_client_free(bc);
    unlink(path);
    rmdir(dir);
    printf("%s (%d failed checks)\n", failures == 0 ? "ok" : "FAILED",
        failures);

    return failures == 0 ? 0 : 1;
}
