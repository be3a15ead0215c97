/*
 * The control socket transport (see control.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"

#define CONTROL_MAX_CLIENTS 32

struct cs_control {
    int lfd;
    int efd;
    char *path;
    cs_control_handler handler;
    cs_control_cleanup cleanup;
    void *arg;
    int clients[CONTROL_MAX_CLIENTS];
};

static int
control_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path)) {
        return -ENAMETOOLONG;
    }
    strcpy(sa->sun_path, path);

    return 0;
}

/* 1 when a process accepts connections at path. */
static int
control_alive(const struct sockaddr_un *sa)
{
    int fd, alive;

    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    alive = connect(fd, (const struct sockaddr *) sa, sizeof(*sa)) == 0;
    close(fd);

    return alive;
}

static int
control_listen(cs_control_t *c, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    mode_t old;
    int rc;

    rc = control_addr(&sa, c->path);
    if (rc != 0) {
        snprintf(err, errlen, "control socket path too long: %s", c->path);
        return rc;
    }

    if (control_alive(&sa)) {
        snprintf(err, errlen, "another resolver listens on %s", c->path);
        return -EADDRINUSE;
    }
    if (unlink(c->path) != 0 && errno != ENOENT) {
        rc = -errno;
        snprintf(err, errlen, "unlink %s: %s", c->path, strerror(-rc));
        return rc;
    }

    c->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
        0);
    if (c->lfd < 0) {
        rc = -errno;
        snprintf(err, errlen, "socket: %s", strerror(-rc));
        return rc;
    }

    /* Created 0600 from the start: no window where others could connect. */
    old = umask(0177);
    rc = bind(c->lfd, (struct sockaddr *) &sa, sizeof(sa));
    rc = rc != 0 ? -errno : 0;
    umask(old);
    if (rc != 0) {
        snprintf(err, errlen, "bind %s: %s", c->path, strerror(-rc));
        return rc;
    }

    if (listen(c->lfd, 16) != 0) {
        rc = -errno;
        snprintf(err, errlen, "listen %s: %s", c->path, strerror(-rc));
        return rc;
    }

    return 0;
}

int
cs_control_open(cs_control_t **cp, const char *path,
    cs_control_handler handler, cs_control_cleanup cleanup, void *arg,
    char *err, size_t errlen)
{
    struct epoll_event ev;
    cs_control_t *c;
    int i, rc;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->lfd = -1;
    c->handler = handler;
    c->cleanup = cleanup;
    c->arg = arg;
    for (i = 0; i < CONTROL_MAX_CLIENTS; i++) {
        c->clients[i] = -1;
    }

    c->path = strdup(path);
    if (c->path == NULL) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out_free;
    }

    c->efd = epoll_create1(EPOLL_CLOEXEC);
    if (c->efd < 0) {
        rc = -errno;
        snprintf(err, errlen, "epoll_create1: %s", strerror(-rc));
        goto out_free;
    }

    rc = control_listen(c, err, errlen);
    if (rc != 0) {
        goto out_close;
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.fd = c->lfd;
    if (epoll_ctl(c->efd, EPOLL_CTL_ADD, c->lfd, &ev) != 0) {
        rc = -errno;
        snprintf(err, errlen, "epoll_ctl: %s", strerror(-rc));
        goto out_unlink;
    }

    *cp = c;

    return 0;

out_unlink:
    unlink(c->path);
out_close:
    if (c->lfd >= 0) {
        close(c->lfd);
    }
    close(c->efd);
out_free:
    free(c->path);
    free(c);

    return rc;
}

static void
control_drop(cs_control_t *c, int slot)
{
    epoll_ctl(c->efd, EPOLL_CTL_DEL, c->clients[slot], NULL);
    close(c->clients[slot]);
    c->clients[slot] = -1;
}

void
cs_control_close(cs_control_t *c)
{
    int i;

    if (c == NULL) {
        return;
    }

    for (i = 0; i < CONTROL_MAX_CLIENTS; i++) {
        if (c->clients[i] >= 0) {
            control_drop(c, i);
        }
    }
    close(c->lfd);
    close(c->efd);
    unlink(c->path);
    free(c->path);
    free(c);
}

int
cs_control_alive(const char *path)
{
    struct sockaddr_un sa;

    if (control_addr(&sa, path) != 0) {
        return 0;
    }

    return control_alive(&sa);
}

int
cs_control_fd(cs_control_t *c)
{
    return c->efd;
}

static void
control_accept(cs_control_t *c)
{
    struct epoll_event ev;
    int fd, i;

    for (;;) {
        fd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }

        for (i = 0; i < CONTROL_MAX_CLIENTS; i++) {
            if (c->clients[i] < 0) {
                break;
            }
        }

        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (i == CONTROL_MAX_CLIENTS
            || epoll_ctl(c->efd, EPOLL_CTL_ADD, fd, &ev) != 0)
        {
            close(fd);
            continue;
        }
        c->clients[i] = fd;
    }
}

/* One request from the client in slot; 0, or -1 to drop the client. */
static int
control_serve(cs_control_t *c, int slot)
{
    Configstream__Control__V1__ControlResponse resp =
        CONFIGSTREAM__CONTROL__V1__CONTROL_RESPONSE__INIT;
    Configstream__Control__V1__ControlRequest *req;
    char toobig[64];
    uint8_t *buf;
    ssize_t n;
    size_t len;
    int handled = 0, rc = -1;

    buf = malloc(CS_CONTROL_MSG_MAX);
    if (buf == NULL) {
        return -1;
    }

    n = recv(c->clients[slot], buf, CS_CONTROL_MSG_MAX, MSG_TRUNC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        rc = 0;
        goto out_free;
    }
    if (n <= 0) {
        goto out_free;
    }

    /* MSG_TRUNC gave the datagram's real length: say why it is refused
     * rather than hang up on the client. */
    req = NULL;
    if (n > CS_CONTROL_MSG_MAX) {
        snprintf(toobig, sizeof(toobig), "request too large (%zd bytes, at "
            "most %d)", n, CS_CONTROL_MSG_MAX);
        resp.error = toobig;
    } else {
        req = configstream__control__v1__control_request__unpack(NULL,
            (size_t) n, buf);
        if (req == NULL) {
            resp.error = "malformed control request";
        } else {
            c->handler(req, &resp, c->arg);
            handled = 1;
        }
    }

    len = configstream__control__v1__control_response__get_packed_size(
        &resp);
    if (len <= CS_CONTROL_MSG_MAX) {
        configstream__control__v1__control_response__pack(&resp, buf);
    }
    if (handled && c->cleanup != NULL) {
        c->cleanup(&resp, c->arg);
    }
    /* The response may point into the request: free it only now. */
    if (req != NULL) {
        configstream__control__v1__control_request__free_unpacked(req,
            NULL);
    }
    if (len > CS_CONTROL_MSG_MAX) {
        configstream__control__v1__control_response__init(&resp);
        resp.error = "response too large";
        len = configstream__control__v1__control_response__get_packed_size(
            &resp);
        configstream__control__v1__control_response__pack(&resp, buf);
    }

    if (send(c->clients[slot], buf, len, MSG_NOSIGNAL) == (ssize_t) len) {
        rc = 0;
    }

out_free:
    free(buf);

    return rc;
}

int
cs_control_handle(cs_control_t *c)
{
    struct epoll_event evs[8];
    int n, i, slot;

    n = epoll_wait(c->efd, evs, 8, 0);
    if (n < 0) {
        return errno == EINTR ? 0 : -errno;
    }

    for (i = 0; i < n; i++) {
        if (evs[i].data.fd == c->lfd) {
            control_accept(c);
            continue;
        }
        for (slot = 0; slot < CONTROL_MAX_CLIENTS; slot++) {
            if (c->clients[slot] == evs[i].data.fd) {
                break;
            }
        }
        if (slot == CONTROL_MAX_CLIENTS) {
            continue;
        }
        if ((evs[i].events & (EPOLLHUP | EPOLLERR))
            && !(evs[i].events & EPOLLIN))
        {
            control_drop(c, slot);
            continue;
        }
        if (control_serve(c, slot) != 0) {
            control_drop(c, slot);
        }
    }

    return 0;
}

int
cs_control_call(const char *path,
    const Configstream__Control__V1__ControlRequest *req,
    Configstream__Control__V1__ControlResponse **resp, int timeout_ms,
    char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct pollfd pfd;
    uint8_t *buf;
    size_t len;
    ssize_t n;
    int fd, rc;

    rc = control_addr(&sa, path);
    if (rc != 0) {
        snprintf(err, errlen, "control socket path too long: %s", path);
        return rc;
    }

    len = configstream__control__v1__control_request__get_packed_size(req);
    if (len > CS_CONTROL_MSG_MAX) {
        snprintf(err, errlen, "request too large (%zu bytes, at most %d)",
            len, CS_CONTROL_MSG_MAX);
        return -EMSGSIZE;
    }

    buf = malloc(CS_CONTROL_MSG_MAX);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }

    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "socket: %s", strerror(-rc));
        goto out_free;
    }

    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot connect to resolver at %s: %s", path,
            strerror(-rc));
        goto out_close;
    }

    configstream__control__v1__control_request__pack(req, buf);
    if (send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t) len) {
        rc = -errno;
        snprintf(err, errlen, "send to resolver at %s: %s", path,
            strerror(-rc));
        goto out_close;
    }

    pfd.fd = fd;
    pfd.events = POLLIN;
    rc = poll(&pfd, 1, timeout_ms);
    if (rc <= 0) {
        rc = rc == 0 ? -ETIMEDOUT : -errno;
        snprintf(err, errlen, "no answer from resolver at %s: %s", path,
            strerror(-rc));
        goto out_close;
    }

    n = recv(fd, buf, CS_CONTROL_MSG_MAX, 0);
    if (n <= 0) {
        rc = n < 0 ? -errno : -ECONNRESET;
        snprintf(err, errlen, "recv from resolver at %s: %s", path,
            strerror(-rc));
        goto out_close;
    }

    *resp = configstream__control__v1__control_response__unpack(NULL,
        (size_t) n, buf);
    if (*resp == NULL) {
        rc = -EPROTO;
        snprintf(err, errlen, "malformed answer from resolver at %s", path);
        goto out_close;
    }
    rc = 0;

out_close:
    close(fd);
out_free:
    free(buf);

    return rc;
}
