/*
 * The resolver's control socket: a unix SOCK_SEQPACKET socket, mode 0600,
 * where each datagram is one configstream.control.v1.ControlRequest and is
 * answered by one ControlResponse (proto/configstream/control.proto).
 *
 * The module is transport only: it accepts clients, unpacks requests and
 * hands each to the handler, which returns the packed response. All of it
 * runs on the caller's thread: poll cs_control_fd() (an epoll descriptor
 * covering the listener and every client) and call cs_control_handle()
 * when it is readable.
 *
 * A stale socket file left by a dead resolver is replaced; a live one
 * (something accepts connections) makes cs_control_open() fail with
 * -EADDRINUSE.
 *
 * Functions return 0 or a negative errno and, where err is given, fill it
 * with the failed call and its error.
 */
#ifndef CS_CONTROL_H
#define CS_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "configstream/control.pb-c.h"

/*
 * Largest request or response datagram. A larger request is answered
 * with the error "request too large (N bytes, at most 65536)";
 * cs_control_call() refuses to send one, with the same text and
 * -EMSGSIZE.
 */
#define CS_CONTROL_MSG_MAX (64 * 1024)

typedef struct cs_control cs_control_t;

/*
 * Answer req: fill resp (already initialised); it is packed after the
 * call, then cleanup(resp, arg) releases what the handler allocated.
 */
typedef void (*cs_control_handler)(
    const Configstream__Control__V1__ControlRequest *req,
    Configstream__Control__V1__ControlResponse *resp, void *arg);
typedef void (*cs_control_cleanup)(
    Configstream__Control__V1__ControlResponse *resp, void *arg);

int cs_control_open(cs_control_t **c, const char *path,
    cs_control_handler handler, cs_control_cleanup cleanup, void *arg,
    char *err, size_t errlen);

/* Close every client and the listener, and remove the socket file. */
void cs_control_close(cs_control_t *c);

int cs_control_fd(cs_control_t *c);
int cs_control_handle(cs_control_t *c);

/* 1 when a process accepts connections on the control socket at path. */
int cs_control_alive(const char *path);

/*
 * Client side: connect to path, send req, wait up to timeout_ms for the
 * response (*resp: free with
 * configstream__control__v1__control_response__free_unpacked).
 */
int cs_control_call(const char *path,
    const Configstream__Control__V1__ControlRequest *req,
    Configstream__Control__V1__ControlResponse **resp, int timeout_ms,
    char *err, size_t errlen);

#endif /* CS_CONTROL_H */
