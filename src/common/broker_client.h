/*
 * Client of the broker's local socket (proto/configstream/broker.proto):
 * what frontends use to forward Remote Agent Registry calls and report the
 * sessions they stream to, and what configstream-ctl uses to list and
 * revoke sessions.
 *
 * The socket is a unix SOCK_SEQPACKET socket (config.h broker_socket).
 * A client connects lazily, on its first call, and again on the first call
 * after the broker went away, so a restarted broker is picked up without
 * the caller doing anything. Connecting a unix socket never blocks; every
 * call waits at most timeout_ms for its answer.
 *
 * Return values: 0 when the broker answered (its verdict is in
 * reply->code, a gRPC status code, and reply->message); a negative errno
 * when it could not be reached or did not answer in time (-ENOENT,
 * -ECONNREFUSED, -ENOTCONN, -ECONNRESET, -EPIPE, -ETIMEDOUT, ...). A
 * frontend answers any negative return with UNAVAILABLE.
 *
 * A client is not thread-safe: one thread at a time may call into it
 * (a frontend guards its client with a mutex or keeps one per thread).
 */
#ifndef CS_BROKER_CLIENT_H
#define CS_BROKER_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm_layout.h"

/* The gRPC status codes the broker answers with (grpc_status_code). */
typedef enum {
    CS_RPC_OK = 0,
    CS_RPC_INVALID_ARGUMENT = 3,
    CS_RPC_NOT_FOUND = 5,
    CS_RPC_PERMISSION_DENIED = 7,
    CS_RPC_RESOURCE_EXHAUSTED = 8,
    CS_RPC_UNIMPLEMENTED = 12,
    CS_RPC_INTERNAL = 13,
    CS_RPC_UNAVAILABLE = 14
} cs_rpc_code_t;

#define CS_BROKER_MESSAGE_MAX   256
#define CS_BROKER_PREFIX_LEN    8   /* shown part of a session id */

typedef struct {
    int code;                               /* cs_rpc_code_t */
    char message[CS_BROKER_MESSAGE_MAX];    /* "" when code is OK */
} cs_broker_reply_t;

typedef struct {
    const char *pid;
    const char *flavor;
    const char *display_name;
    const char *api_endpoint_uri;
    const char *const *services;
    size_t n_services;
} cs_broker_agent_t;

typedef struct {
    const char *session_id;
    uint32_t open_streams;
} cs_broker_stream_count_t;

typedef struct {
    char id_prefix[CS_BROKER_PREFIX_LEN + 1];
    char display_name[CS_SESSION_NAME_MAX];
    char flavor[CS_SESSION_FLAVOR_MAX];
    char pid[CS_SESSION_PID_MAX];
    char api_endpoint_uri[CS_SESSION_URI_MAX];
    int64_t age_ms;
    int64_t idle_ms;
    uint32_t open_streams;
} cs_broker_session_info_t;

typedef struct cs_broker_client cs_broker_client_t;

/* Creates a client for socket_path; does not connect yet. */
int cs_broker_client_new(cs_broker_client_t **bc, const char *socket_path);
void cs_broker_client_free(cs_broker_client_t *bc);

/* Connect now (optional: every call connects when needed). */
int cs_broker_client_connect(cs_broker_client_t *bc);
int cs_broker_client_connected(const cs_broker_client_t *bc);

/*
 * Register: on OK, session_id gets the 36-character id and
 * *refresh_secs the recommended refresh interval.
 */
int cs_broker_client_register(cs_broker_client_t *bc,
    const cs_broker_agent_t *agent, int timeout_ms, cs_broker_reply_t *reply,
    char session_id[CS_SESSION_ID_LEN + 1], uint32_t *refresh_secs);

/* Refresh: NOT_FOUND `no remote agent found with session ID` if unknown. */
int cs_broker_client_refresh(cs_broker_client_t *bc, const char *session_id,
    int timeout_ms, cs_broker_reply_t *reply);

/* Revoke by full id or by a unique prefix of at least 8 characters. */
int cs_broker_client_revoke(cs_broker_client_t *bc, const char *session_id,
    int timeout_ms, cs_broker_reply_t *reply);

/*
 * Report the sessions this frontend (frontend_pid) streams to, with their
 * open stream counts; it replaces this frontend's previous report. Send it
 * every ~2 s while streams are open (and once with n = 0 when they close).
 */
int cs_broker_client_keepalive(cs_broker_client_t *bc, pid_t frontend_pid,
    const cs_broker_stream_count_t *streams, size_t n, int timeout_ms,
    cs_broker_reply_t *reply);

/*
 * List every session (ids shortened to their first 8 characters). *out is
 * a malloc'ed array of *n entries for the caller to free().
 */
int cs_broker_client_list(cs_broker_client_t *bc, int timeout_ms,
    cs_broker_reply_t *reply, cs_broker_session_info_t **out, size_t *n);

#endif /* CS_BROKER_CLIENT_H */
