#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "configstream/control.pb-c.h"
#include "etcd_rpc.pb-c.h"

#include "bench_driver.h"
#include "bench_grpc.h"

#define BENCH_DRIVER_TIMEOUT_MS 10000
#define BENCH_DRIVER_MSG_MAX 65536

struct bench_driver {
    int fd;                     /* control socket, or -1 */
    grpc_channel *ch;           /* etcd, or NULL */
    char *key;
    uint64_t next_value;
};

static bench_driver_t *bench_driver_new(const char *key)
{
    bench_driver_t *d;
    struct timespec ts;

    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return NULL;
    }

    d->key = strdup(key);
    if (d->key == NULL) {
        free(d);
        return NULL;
    }

    /* Microseconds since the epoch: above any value an earlier run set. */
    clock_gettime(CLOCK_REALTIME, &ts);
    d->next_value = (uint64_t) ts.tv_sec * 1000000
        + (uint64_t) ts.tv_nsec / 1000;
    d->fd = -1;
    return d;
}

int bench_driver_open_control(bench_driver_t **d, const char *socket_path,
    const char *key, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct timeval tv = { .tv_sec = BENCH_DRIVER_TIMEOUT_MS / 1000 };
    bench_driver_t *nd;
    int rc;

    if (strlen(socket_path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "%s: path too long", socket_path);
        return -ENAMETOOLONG;
    }

    nd = bench_driver_new(key);
    if (nd == NULL) {
        return -ENOMEM;
    }

    nd->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (nd->fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto out_free;
    }

    /* A resolver that stops answering must not hang the run. */
    setsockopt(nd->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    strcpy(sa.sun_path, socket_path);
    if (connect(nd->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "connect %s: %s", socket_path,
            strerror(errno));
        goto out_free;
    }

    *d = nd;
    return 0;

out_free:
    bench_driver_close(nd);
    return rc;
}

int bench_driver_open_etcd(bench_driver_t **d, grpc_channel *ch,
    const char *key, char *err, size_t errlen)
{
    bench_driver_t *nd;

    nd = bench_driver_new(key);
    if (nd == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }

    nd->ch = ch;
    *d = nd;
    return 0;
}

static int bench_driver_control_set(bench_driver_t *d, const char *value,
    int64_t *seq, char *err, size_t errlen)
{
    Configstream__Control__V1__ControlRequest req =
        CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__INIT;
    Configstream__Control__V1__SetRequest set =
        CONFIGSTREAM__CONTROL__V1__SET_REQUEST__INIT;
    Configstream__Control__V1__ControlResponse *resp;
    uint8_t buf[BENCH_DRIVER_MSG_MAX];
    size_t len;
    ssize_t n;
    int rc = 0;

    set.key = d->key;
    set.value_text = (char *) value;
    set.source = (char *) "agent-runtime";
    req.request_case = CONFIGSTREAM__CONTROL__V1__CONTROL_REQUEST__REQUEST_SET;
    req.set = &set;

    len = configstream__control__v1__control_request__pack(&req, buf);
    if (send(d->fd, buf, len, MSG_NOSIGNAL) < 0) {
        snprintf(err, errlen, "send to the control socket: %s",
            strerror(errno));
        return -errno;
    }

    n = recv(d->fd, buf, sizeof(buf), 0);
    if (n <= 0) {
        rc = n < 0 ? -errno : -ECONNRESET;
        snprintf(err, errlen, "recv from the control socket: %s",
            strerror(-rc));
        return rc;
    }

    resp = configstream__control__v1__control_response__unpack(NULL,
        (size_t) n, buf);
    if (resp == NULL) {
        snprintf(err, errlen, "control socket: undecodable response");
        return -EPROTO;
    }

    if (!resp->ok) {
        snprintf(err, errlen, "set %s: %s", d->key, resp->error);
        rc = -EINVAL;
    } else if (resp->changes == 0) {
        snprintf(err, errlen, "set %s: no change committed", d->key);
        rc = -EALREADY;
    } else {
        *seq = (int64_t) resp->head_sequence_id;
    }

    configstream__control__v1__control_response__free_unpacked(resp, NULL);
    return rc;
}

static int bench_driver_etcd_put(bench_driver_t *d, const char *value,
    int64_t *seq, char *err, size_t errlen)
{
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__PutResponse *resp;
    grpc_slice s;
    int rc;

    req.key.data = (uint8_t *) d->key;
    req.key.len = strlen(d->key);
    req.value.data = (uint8_t *) value;
    req.value.len = strlen(value);

    rc = bench_grpc_unary(d->ch, "/etcdserverpb.KV/Put", NULL, 0,
        &req.base, &s, BENCH_DRIVER_TIMEOUT_MS, err, errlen);
    if (rc < 0) {
        return rc;
    }

    resp = etcdserverpb__put_response__unpack(NULL, GRPC_SLICE_LENGTH(s),
        GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    if (resp == NULL || resp->header == NULL) {
        snprintf(err, errlen, "etcd put: undecodable response");
        rc = -EPROTO;
    } else {
        *seq = resp->header->revision;
    }

    if (resp != NULL) {
        etcdserverpb__put_response__free_unpacked(resp, NULL);
    }
    return rc;
}

int bench_driver_change(bench_driver_t *d, int64_t *seq, char *err,
    size_t errlen)
{
    char value[32];

    snprintf(value, sizeof(value), "%" PRIu64, d->next_value++);
    if (d->fd >= 0) {
        return bench_driver_control_set(d, value, seq, err, errlen);
    }
    return bench_driver_etcd_put(d, value, seq, err, errlen);
}

void bench_driver_close(bench_driver_t *d)
{
    if (d == NULL) {
        return;
    }

    if (d->fd >= 0) {
        close(d->fd);
    }
    free(d->key);
    free(d);
}
