/*
 * Request authentication of the frontend: the bearer token every call
 * carries, the session id a config stream carries, and the subscriber
 * name. Each check fills *res with the exact gRPC status code and message
 * remote agents match on (DESIGN.md, "Wire protocol").
 *
 * Functions return 0 when the request passes, -EACCES (or -EINVAL for a
 * bad argument) when it does not; res is then filled.
 */
#ifndef CS_FE_AUTH_H
#define CS_FE_AUTH_H

#include <stddef.h>

#include <grpc/grpc.h>

#include "shm_layout.h"

#define CS_AUTH_MSG_MAX 512
#define CS_AUTH_NAME_MAX 256

typedef struct {
    grpc_status_code code;
    char msg[CS_AUTH_MSG_MAX];
} cs_auth_result_t;

/* The authorization: Bearer <token> check, in constant time. */
int cs_auth_check_bearer(const grpc_metadata_array *md, const char *token,
    cs_auth_result_t *res);

/*
 * The session_id metadata: present and non-empty. On success id holds the
 * value NUL-terminated; an id too long to be one of ours is copied
 * truncated, which no live session matches.
 */
int cs_auth_session_id(const grpc_metadata_array *md,
    char id[CS_SESSION_ID_LEN + 2], cs_auth_result_t *res);

/* The PERMISSION_DENIED answer for a session id that is not live. */
void cs_auth_session_unknown(const char *id, cs_auth_result_t *res);

/* A subscriber name: 1..256 printable ASCII characters. */
int cs_auth_check_name(const char *name, cs_auth_result_t *res);

#endif /* CS_FE_AUTH_H */
