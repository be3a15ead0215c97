/*
 * The frontend's request checks: the exact codes and texts remote agents
 * match on, for each way a request can be refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <grpc/slice.h>

#include "auth.h"

#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HINT "remote agent must register with RAR before subscribing to " \
    "config stream"

typedef struct {
    grpc_metadata md[2];
    grpc_metadata_array arr;
} md_fixture_t;

static grpc_metadata_array *
md_make(md_fixture_t *f, const char *k1, const char *v1, const char *k2,
    const char *v2)
{
    memset(f, 0, sizeof(*f));
    f->arr.metadata = f->md;
    if (k1 != NULL) {
        f->md[f->arr.count].key = grpc_slice_from_static_string(k1);
        f->md[f->arr.count].value = grpc_slice_from_static_string(v1);
        f->arr.count++;
    }
    if (k2 != NULL) {
        f->md[f->arr.count].key = grpc_slice_from_static_string(k2);
        f->md[f->arr.count].value = grpc_slice_from_static_string(v2);
        f->arr.count++;
    }
    f->arr.capacity = f->arr.count;
    return &f->arr;
}

static void
expect_bearer(const char *value, int rc, grpc_status_code code,
    const char *msg)
{
    cs_auth_result_t res;
    md_fixture_t f;

    memset(&res, 0, sizeof(res));
    assert_int_equal(cs_auth_check_bearer(value == NULL
        ? md_make(&f, "session_id", "x", NULL, NULL)
        : md_make(&f, "session_id", "x", "authorization", value),
        TOKEN, &res), rc);
    if (rc != 0) {
        assert_int_equal(res.code, code);
        assert_string_equal(res.msg, msg);
    }
}

static void
test_bearer(void **state)
{
    expect_bearer(NULL, -EACCES, GRPC_STATUS_UNAUTHENTICATED,
        "Request unauthenticated with Bearer");
    expect_bearer("", -EACCES, GRPC_STATUS_UNAUTHENTICATED,
        "Request unauthenticated with Bearer");
    expect_bearer("Basic " TOKEN, -EACCES, GRPC_STATUS_UNAUTHENTICATED,
        "Request unauthenticated with Bearer");
    expect_bearer("Bearer", -EACCES, GRPC_STATUS_UNAUTHENTICATED,
        "Bad authorization string");
    expect_bearer("Bearer" TOKEN, -EACCES, GRPC_STATUS_UNAUTHENTICATED,
        "Bad authorization string");
    expect_bearer("Bearer nope", -EACCES, GRPC_STATUS_UNAUTHENTICATED,
        "invalid auth token: invalid session token");
    expect_bearer("Bearer " TOKEN "0", -EACCES, GRPC_STATUS_UNAUTHENTICATED,
        "invalid auth token: invalid session token");
    expect_bearer("Bearer ", -EACCES, GRPC_STATUS_UNAUTHENTICATED,
        "invalid auth token: invalid session token");
    expect_bearer("Bearer " TOKEN, 0, GRPC_STATUS_OK, NULL);
    expect_bearer("bearer " TOKEN, 0, GRPC_STATUS_OK, NULL);
}

static void
test_session_id(void **state)
{
    char id[CS_SESSION_ID_LEN + 2];
    cs_auth_result_t res;
    md_fixture_t f;

    assert_int_equal(cs_auth_session_id(md_make(&f, "authorization", "x",
        NULL, NULL), id, &res), -EACCES);
    assert_int_equal(res.code, GRPC_STATUS_UNAUTHENTICATED);
    assert_string_equal(res.msg, "session_id required in metadata: " HINT);

    assert_int_equal(cs_auth_session_id(md_make(&f, "session_id", "",
        NULL, NULL), id, &res), -EACCES);
    assert_int_equal(res.code, GRPC_STATUS_UNAUTHENTICATED);
    assert_string_equal(res.msg, "session_id cannot be empty: " HINT);

    assert_int_equal(cs_auth_session_id(md_make(&f, "session_id",
        "6f1c1a52-6a3e-4c2b-9a51-2d6f0e4b7c10", NULL, NULL), id, &res), 0);
    assert_string_equal(id, "6f1c1a52-6a3e-4c2b-9a51-2d6f0e4b7c10");

    /* Longer than any id: kept too long to match a live session. */
    assert_int_equal(cs_auth_session_id(md_make(&f, "session_id",
        "6f1c1a52-6a3e-4c2b-9a51-2d6f0e4b7c10-and-more", NULL, NULL), id,
        &res), 0);
    assert_int_equal(strlen(id), CS_SESSION_ID_LEN + 1);

    cs_auth_session_unknown("abc", &res);
    assert_int_equal(res.code, GRPC_STATUS_PERMISSION_DENIED);
    assert_string_equal(res.msg, "session_id 'abc' not found: " HINT);
}

static void
test_name(void **state)
{
    cs_auth_result_t res;
    char name[300];

    assert_int_equal(cs_auth_check_name("system-probe", &res), 0);
    assert_int_equal(cs_auth_check_name("", &res), -EINVAL);
    assert_int_equal(res.code, GRPC_STATUS_INVALID_ARGUMENT);
    assert_int_equal(cs_auth_check_name("a\tb", &res), -EINVAL);
    assert_int_equal(cs_auth_check_name("caf\xc3\xa9", &res), -EINVAL);

    memset(name, 'n', 256);
    name[256] = '\0';
    assert_int_equal(cs_auth_check_name(name, &res), 0);
    name[256] = 'n';
    name[257] = '\0';
    assert_int_equal(cs_auth_check_name(name, &res), -EINVAL);
    assert_int_equal(res.code, GRPC_STATUS_INVALID_ARGUMENT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_session_id),
        cmocka_unit_test(test_name),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
