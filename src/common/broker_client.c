/*
 * The broker's socket, client side. Each call sends one BrokerRequest
 * packet and waits for the BrokerResponse with the same request_id;
 * answers to earlier calls that timed out are skipped. Any failure of the
 * connection closes it, and the next call connects again.
 */
#include "broker_client.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "configstream/broker.pb-c.h"

#define BROKER_PACKET_MAX   (256 * 1024)

struct cs_broker_client {
    char *path;
    int fd;
    uint64_t next_id;
    uint8_t *buf;
};

typedef Configstream__Broker__V1__BrokerRequest broker_request_t;
typedef Configstream__Broker__V1__BrokerResponse broker_response_t;

int
cs_broker_client_new(cs_broker_client_t **out, const char *socket_path)
{
    cs_broker_client_t *bc;

    bc = calloc(1, sizeof(*bc));
    if (bc == NULL) {
        return -ENOMEM;
    }

    bc->path = strdup(socket_path);
    bc->buf = malloc(BROKER_PACKET_MAX);
    if (bc->path == NULL || bc->buf == NULL) {
        free(bc->path);
        free(bc->buf);
        free(bc);
        return -ENOMEM;
    }
    bc->fd = -1;
    bc->next_id = 1;
    *out = bc;

    return 0;
}

static void
broker_client_disconnect(cs_broker_client_t *bc)
{
    if (bc->fd != -1) {
        close(bc->fd);
        bc->fd = -1;
    }
}

void
cs_broker_client_free(cs_broker_client_t *bc)
{
    if (bc == NULL) {
        return;
    }

    broker_client_disconnect(bc);
    free(bc->path);
    free(bc->buf);
    free(bc);
}

int
cs_broker_client_connect(cs_broker_client_t *bc)
{
    struct sockaddr_un sa;
    int fd, rc;

    if (bc->fd != -1) {
        return 0;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(bc->path) >= sizeof(sa.sun_path)) {
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, bc->path);

    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd == -1) {
        return -errno;
    }

    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == -1) {
        rc = -errno;
        close(fd);
        return rc;
    }

    bc->fd = fd;

    return 0;
}

int
cs_broker_client_connected(const cs_broker_client_t *bc)
{
    return bc->fd != -1;
}

static int64_t
broker_client_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on the socket until deadline; -ETIMEDOUT past it. */
static int
broker_client_poll(cs_broker_client_t *bc, short events, int64_t deadline)
{
    struct pollfd pfd = { .fd = bc->fd, .events = events };
    int64_t left;
    int n;

    for (;;) {
        left = deadline - broker_client_now_ms();
        if (left < 0) {
            return -ETIMEDOUT;
        }

        n = poll(&pfd, 1, (int) left);
        if (n > 0) {
            return 0;
        }
        if (n == 0) {
            return -ETIMEDOUT;
        }
        if (errno != EINTR) {
            return -errno;
        }
    }
}

static int
broker_client_send(cs_broker_client_t *bc, const uint8_t *buf, size_t len,
    int64_t deadline)
{
    int rc;

    for (;;) {
        if (send(bc->fd, buf, len, MSG_NOSIGNAL) == (ssize_t) len) {
            return 0;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN) {
            return -errno;
        }

        rc = broker_client_poll(bc, POLLOUT, deadline);
        if (rc < 0) {
            return rc;
        }
    }
}

static int
broker_client_recv(cs_broker_client_t *bc, uint64_t id, int64_t deadline,
    broker_response_t **out)
{
    broker_response_t *resp;
    ssize_t n;
    int rc;

    for (;;) {
        n = recv(bc->fd, bc->buf, BROKER_PACKET_MAX, 0);
        if (n == 0) {
            return -ECONNRESET;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN) {
                return -errno;
            }
            rc = broker_client_poll(bc, POLLIN, deadline);
            if (rc < 0) {
                return rc;
            }
            continue;
        }

        resp = configstream__broker__v1__broker_response__unpack(NULL,
            (size_t) n, bc->buf);
        if (resp == NULL) {
            return -EBADMSG;
        }
        if (resp->request_id == id) {
            *out = resp;
            return 0;
        }

        /* The late answer to a call that already timed out. */
        configstream__broker__v1__broker_response__free_unpacked(resp, NULL);
    }
}

/* Connect if needed, send req, wait for its response. */
static int
broker_client_call(cs_broker_client_t *bc, broker_request_t *req,
    int timeout_ms, cs_broker_reply_t *reply, broker_response_t **out)
{
    int64_t deadline;
    size_t len;
    int rc, attempt;

    req->request_id = bc->next_id++;
    len = configstream__broker__v1__broker_request__get_packed_size(req);
    if (len > BROKER_PACKET_MAX) {
        return -EMSGSIZE;
    }
    configstream__broker__v1__broker_request__pack(req, bc->buf);
    deadline = broker_client_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);

    /*
     * A connection to a broker that has since died only reports it on
     * the first send; one fresh connection is worth trying then.
     */
    for (attempt = 0; attempt < 2; attempt++) {
        rc = cs_broker_client_connect(bc);
        if (rc < 0) {
            return rc;
        }

        rc = broker_client_send(bc, bc->buf, len, deadline);
        if (rc == 0) {
            break;
        }
        broker_client_disconnect(bc);
        if (rc != -EPIPE && rc != -ECONNRESET && rc != -ENOTCONN) {
            return rc;
        }
    }
    if (rc < 0) {
        return rc;
    }

    rc = broker_client_recv(bc, req->request_id, deadline, out);
    if (rc < 0) {
        broker_client_disconnect(bc);
        return rc;
    }

    reply->code = (*out)->code;
    reply->message[0] = '\0';
    if ((*out)->message != NULL) {
        strncat(reply->message, (*out)->message, sizeof(reply->message) - 1);
    }

    return 0;
}

static void
broker_response_free(broker_response_t *resp)
{
    configstream__broker__v1__broker_response__free_unpacked(resp, NULL);
}

static char *
broker_str(const char *s)
{
    return (char *) (s != NULL ? s : "");
}

int
cs_broker_client_register(cs_broker_client_t *bc,
    const cs_broker_agent_t *agent, int timeout_ms, cs_broker_reply_t *reply,
    char session_id[CS_SESSION_ID_LEN + 1], uint32_t *refresh_secs)
{
    Configstream__Broker__V1__RegisterRequest r =
        CONFIGSTREAM__BROKER__V1__REGISTER_REQUEST__INIT;
    broker_request_t req = CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__INIT;
    broker_response_t *resp;
    int rc;

    r.pid = broker_str(agent->pid);
    r.flavor = broker_str(agent->flavor);
    r.display_name = broker_str(agent->display_name);
    r.api_endpoint_uri = broker_str(agent->api_endpoint_uri);
    r.n_services = agent->n_services;
    r.services = (char **) agent->services;
    req.body_case = CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__BODY_REGISTER;
    req.register_ = &r;

    rc = broker_client_call(bc, &req, timeout_ms, reply, &resp);
    if (rc < 0) {
        return rc;
    }

    session_id[0] = '\0';
    *refresh_secs = 0;
    if (reply->code == CS_RPC_OK) {
        if (resp->body_case
                != CONFIGSTREAM__BROKER__V1__BROKER_RESPONSE__BODY_REGISTER
            || strlen(resp->register_->session_id) != CS_SESSION_ID_LEN)
        {
            broker_response_free(resp);
            return -EBADMSG;
        }
        memcpy(session_id, resp->register_->session_id,
            CS_SESSION_ID_LEN + 1);
        *refresh_secs = resp->register_->recommended_refresh_interval_secs;
    }
    broker_response_free(resp);

    return 0;
}

static int
broker_client_simple(cs_broker_client_t *bc, broker_request_t *req,
    int timeout_ms, cs_broker_reply_t *reply)
{
    broker_response_t *resp;
    int rc;

    rc = broker_client_call(bc, req, timeout_ms, reply, &resp);
    if (rc < 0) {
        return rc;
    }
    broker_response_free(resp);

    return 0;
}

int
cs_broker_client_refresh(cs_broker_client_t *bc, const char *session_id,
    int timeout_ms, cs_broker_reply_t *reply)
{
    Configstream__Broker__V1__RefreshRequest r =
        CONFIGSTREAM__BROKER__V1__REFRESH_REQUEST__INIT;
    broker_request_t req = CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__INIT;

    r.session_id = broker_str(session_id);
    req.body_case = CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__BODY_REFRESH;
    req.refresh = &r;

    return broker_client_simple(bc, &req, timeout_ms, reply);
}

int
cs_broker_client_revoke(cs_broker_client_t *bc, const char *session_id,
    int timeout_ms, cs_broker_reply_t *reply)
{
    Configstream__Broker__V1__RevokeRequest r =
        CONFIGSTREAM__BROKER__V1__REVOKE_REQUEST__INIT;
    broker_request_t req = CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__INIT;

    r.session_id = broker_str(session_id);
    req.body_case = CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__BODY_REVOKE;
    req.revoke = &r;

    return broker_client_simple(bc, &req, timeout_ms, reply);
}

int
cs_broker_client_keepalive(cs_broker_client_t *bc, pid_t frontend_pid,
    const cs_broker_stream_count_t *streams, size_t n, int timeout_ms,
    cs_broker_reply_t *reply)
{
    Configstream__Broker__V1__KeepaliveRequest r =
        CONFIGSTREAM__BROKER__V1__KEEPALIVE_REQUEST__INIT;
    broker_request_t req = CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__INIT;
    Configstream__Broker__V1__StreamCount *items = NULL, **ptrs = NULL;
    size_t i;
    int rc;

    if (n > 0) {
        items = calloc(n, sizeof(*items));
        ptrs = calloc(n, sizeof(*ptrs));
        if (items == NULL || ptrs == NULL) {
            rc = -ENOMEM;
            goto out_free;
        }
    }

    for (i = 0; i < n; i++) {
        configstream__broker__v1__stream_count__init(&items[i]);
        items[i].session_id = broker_str(streams[i].session_id);
        items[i].open_streams = streams[i].open_streams;
        ptrs[i] = &items[i];
    }
    r.frontend_pid = (int32_t) frontend_pid;
    r.n_streams = n;
    r.streams = ptrs;
    req.body_case = CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__BODY_KEEPALIVE;
    req.keepalive = &r;

    rc = broker_client_simple(bc, &req, timeout_ms, reply);

out_free:
    free(ptrs);
    free(items);
    return rc;
}

static void
broker_info_copy(cs_broker_session_info_t *dst,
    const Configstream__Broker__V1__SessionInfo *src)
{
    memset(dst, 0, sizeof(*dst));
    strncat(dst->id_prefix, src->session_id_prefix,
        sizeof(dst->id_prefix) - 1);
    strncat(dst->display_name, src->display_name,
        sizeof(dst->display_name) - 1);
    strncat(dst->flavor, src->flavor, sizeof(dst->flavor) - 1);
    strncat(dst->pid, src->pid, sizeof(dst->pid) - 1);
    strncat(dst->api_endpoint_uri, src->api_endpoint_uri,
        sizeof(dst->api_endpoint_uri) - 1);
    dst->age_ms = src->age_ms;
    dst->idle_ms = src->idle_ms;
    dst->open_streams = src->open_streams;
}

/* Append one page of a listing to *list; *next_slot gets where to go on. */
static int
broker_list_page(const broker_response_t *resp,
    cs_broker_session_info_t **list, size_t *n, uint32_t *next_slot)
{
    const Configstream__Broker__V1__ListSessionsResponse *page;
    cs_broker_session_info_t *grown;
    size_t i;

    if (resp->body_case
        != CONFIGSTREAM__BROKER__V1__BROKER_RESPONSE__BODY_LIST_SESSIONS)
    {
        return -EBADMSG;
    }
    page = resp->list_sessions;

    if (page->n_sessions > 0) {
        grown = realloc(*list, (*n + page->n_sessions) * sizeof(**list));
        if (grown == NULL) {
            return -ENOMEM;
        }
        *list = grown;
    }

    for (i = 0; i < page->n_sessions; i++) {
        broker_info_copy(&(*list)[*n + i], page->sessions[i]);
    }
    *n += page->n_sessions;
    *next_slot = page->next_slot;

    return 0;
}

int
cs_broker_client_list(cs_broker_client_t *bc, int timeout_ms,
    cs_broker_reply_t *reply, cs_broker_session_info_t **out, size_t *n)
{
    Configstream__Broker__V1__ListSessionsRequest r =
        CONFIGSTREAM__BROKER__V1__LIST_SESSIONS_REQUEST__INIT;
    broker_request_t req = CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__INIT;
    cs_broker_session_info_t *list = NULL;
    broker_response_t *resp;
    uint32_t next = 0;
    size_t count = 0;
    int rc;

    req.body_case =
        CONFIGSTREAM__BROKER__V1__BROKER_REQUEST__BODY_LIST_SESSIONS;
    req.list_sessions = &r;

    do {
        r.start_slot = next;

        rc = broker_client_call(bc, &req, timeout_ms, reply, &resp);
        if (rc < 0) {
            goto out_free;
        }
        if (reply->code != CS_RPC_OK) {
            broker_response_free(resp);
            break;
        }

        rc = broker_list_page(resp, &list, &count, &next);
        broker_response_free(resp);
        if (rc < 0) {
            goto out_free;
        }
    } while (next != 0);

    *out = list;
    *n = count;

    return 0;

out_free:
    free(list);
    return rc;
}
