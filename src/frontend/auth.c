#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "auth.h"
#include "grpc_util.h"

#define CS_AUTH_RAR_HINT \
    "remote agent must register with RAR before subscribing to config stream"

static int
cs_auth_fail(cs_auth_result_t *res, grpc_status_code code, const char *msg)
{
    res->code = code;
    snprintf(res->msg, sizeof(res->msg), "%s", msg);
    return -EACCES;
}

/*
 * Compare digests rather than the strings, so the time taken depends on
 * neither the content nor the length of what the client sent.
 */
static int
cs_auth_token_equal(const char *given, size_t len, const char *token)
{
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *) given, len, a);
    SHA256((const unsigned char *) token, strlen(token), b);
    return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

int
cs_auth_check_bearer(const grpc_metadata_array *md, const char *token,
    cs_auth_result_t *res)
{
    const char *val, *sp;
    size_t len;

    if (!cs_grpc_md_get(md, "authorization", &val, &len) || len == 0) {
        return cs_auth_fail(res, GRPC_STATUS_UNAUTHENTICATED,
            "Request unauthenticated with Bearer");
    }

    sp = memchr(val, ' ', len);
    if (sp == NULL) {
        return cs_auth_fail(res, GRPC_STATUS_UNAUTHENTICATED,
            "Bad authorization string");
    }

    if (sp - val != 6 || strncasecmp(val, "bearer", 6) != 0) {
        return cs_auth_fail(res, GRPC_STATUS_UNAUTHENTICATED,
            "Request unauthenticated with Bearer");
    }

    sp++;
    if (!cs_auth_token_equal(sp, len - (size_t) (sp - val), token)) {
        return cs_auth_fail(res, GRPC_STATUS_UNAUTHENTICATED,
            "invalid auth token: invalid session token");
    }

    return 0;
}

int
cs_auth_session_id(const grpc_metadata_array *md,
    char id[CS_SESSION_ID_LEN + 2], cs_auth_result_t *res)
{
    const char *val;
    size_t len;

    if (!cs_grpc_md_get(md, "session_id", &val, &len)) {
        return cs_auth_fail(res, GRPC_STATUS_UNAUTHENTICATED,
            "session_id required in metadata: " CS_AUTH_RAR_HINT);
    }

    if (len == 0) {
        return cs_auth_fail(res, GRPC_STATUS_UNAUTHENTICATED,
            "session_id cannot be empty: " CS_AUTH_RAR_HINT);
    }

    if (len > CS_SESSION_ID_LEN + 1) {
        len = CS_SESSION_ID_LEN + 1;
    }

    memcpy(id, val, len);
    id[len] = '\0';
    return 0;
}

void
cs_auth_session_unknown(const char *id, cs_auth_result_t *res)
{
    res->code = GRPC_STATUS_PERMISSION_DENIED;
    /* KNOWN-ISSUE(long-session-id-text) */
    snprintf(res->msg, sizeof(res->msg), "session_id '%s' not found: %s",
        id, CS_AUTH_RAR_HINT);
}

int
cs_auth_check_name(const char *name, cs_auth_result_t *res)
{
    size_t i, len;

    len = strlen(name);
    if (len == 0) {
        cs_auth_fail(res, GRPC_STATUS_INVALID_ARGUMENT,
            "subscriber name cannot be empty");
        return -EINVAL;
    }

    if (len > CS_AUTH_NAME_MAX) {
        cs_auth_fail(res, GRPC_STATUS_INVALID_ARGUMENT,
            "subscriber name longer than 256 bytes");
        return -EINVAL;
    }

    for (i = 0; i < len; i++) {
        if (name[i] < 0x20 || name[i] > 0x7e) {
            cs_auth_fail(res, GRPC_STATUS_INVALID_ARGUMENT,
                "subscriber name has a non-printable character");
            return -EINVAL;
        }
    }

    return 0;
}
