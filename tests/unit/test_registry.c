/*
 * Unit tests of the Remote Agent Registry (src/broker/registry.c) on a
 * real segment in a temporary directory, with a clock the test moves.
 */
#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <cmocka.h>

#include "registry.h"
#include "shm.h"

#define IDLE_MS     30000
#define CAPACITY    8

typedef struct {
    char dir[64];
    char path[128];
    cs_shm_t *shm;
    cs_registry_t *reg;
    int64_t now;
    char msg[256];
} fixture_t;

/*
 * getrandom seam (-Wl,--wrap=getrandom): wrap_random_script holds the
 * results of the next calls (0: the real call; > 0: at most that many
 * bytes; < 0: fail with that errno), ended by 0.
 */
ssize_t __real_getrandom(void *buf, size_t len, unsigned int flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned int flags);

static int wrap_random_script[8];
static int wrap_random_calls;

ssize_t
__wrap_getrandom(void *buf, size_t len, unsigned int flags)
{
    int step = wrap_random_script[0];

    wrap_random_calls++;
    memmove(wrap_random_script, wrap_random_script + 1,
        sizeof(wrap_random_script) - sizeof(int));
    wrap_random_script[7] = 0;

    if (step < 0) {
        errno = -step;
        return -1;
    }
    if (step > 0 && (size_t) step < len) {
        len = (size_t) step;
    }

    return __real_getrandom(buf, len, flags);
}

static int64_t
fake_clock(void *arg)
{
    return ((fixture_t *) arg)->now;
}

static cs_registry_params_t
params_of(fixture_t *f, int enabled)
{
    cs_registry_params_t p = {
        .enabled = enabled,
        .idle_timeout_ms = IDLE_MS,
        .refresh_interval_ms = 10000,
        .clock = fake_clock,
        .clock_arg = f,
    };

    return p;
}

static int
setup_capacity(void **state, uint32_t capacity)
{
    fixture_t *f = calloc(1, sizeof(*f));
    cs_shm_params_t sp = { .session_capacity = capacity,
                           .worker_capacity = 2 };
    cs_registry_params_t rp;
    char err[256];

    strcpy(f->dir, "/tmp/test_registry.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/shm", f->dir);
    assert_int_equal(cs_shm_create_or_attach(&f->shm, f->path, &sp, err,
        sizeof(err)), 0);

    f->now = 1000000;
    rp = params_of(f, 1);
    assert_int_equal(cs_registry_new(&f->reg, f->shm, &rp), 0);
    *state = f;

    return 0;
}

static int
setup(void **state)
{
    return setup_capacity(state, CAPACITY);
}

static int
setup_large(void **state)
{
    return setup_capacity(state, 1024);
}

static int
teardown(void **state)
{
    fixture_t *f = *state;

    cs_registry_free(f->reg);
    cs_shm_detach(f->shm);
    unlink(f->path);
    rmdir(f->dir);
    free(f);

    return 0;
}

static const cs_broker_agent_t agent_ok = {
    .pid = "4242",
    .flavor = "system_probe",
    .display_name = "System Probe",
    .api_endpoint_uri = "unix:///var/run/sysprobe.sock",
};

static void
register_ok(fixture_t *f, char id[CS_SESSION_ID_LEN + 1])
{
    uint32_t secs = 0;

    assert_int_equal(cs_registry_register(f->reg, &agent_ok, id, &secs,
        f->msg, sizeof(f->msg)), 0);
    assert_int_equal(secs, 10);
}

static int
is_live(fixture_t *f, const char *id)
{
    cs_shm_session_t out;

    return cs_shm_session_lookup(f->shm, id, &out, NULL) == 0;
}

static void
test_register_lookup(void **state)
{
    fixture_t *f = *state;
    char id[CS_SESSION_ID_LEN + 1];
    cs_shm_session_t out;

    register_ok(f, id);

    assert_int_equal(cs_shm_session_lookup(f->shm, id, &out, NULL), 0);
    assert_string_equal(out.display_name, "System Probe");
    assert_string_equal(out.flavor, "system_probe");
    assert_string_equal(out.pid, "4242");
    assert_string_equal(out.api_endpoint_uri,
        "unix:///var/run/sysprobe.sock");
    assert_int_equal(out.registered_ms, f->now);
    assert_int_equal(out.last_seen_ms, f->now);
    assert_int_equal(cs_shm_registry_stats(f->shm)->registered, 1);
    assert_int_equal(cs_shm_registry_stats(f->shm)->registrations, 1);
    assert_int_equal(cs_shm_registry_stats(f->shm)->rejected_lookups, 0);
}

static void
test_invalid_arguments(void **state)
{
    fixture_t *f = *state;
    char id[CS_SESSION_ID_LEN + 1];
    cs_broker_agent_t a = agent_ok;
    uint32_t secs;

    a.display_name = "";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), -EINVAL);
    assert_string_equal(f->msg, "display_name cannot be empty");
    assert_int_equal(cs_registry_rpc_code(-EINVAL), CS_RPC_INVALID_ARGUMENT);

    a.display_name = "  \t ";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), -EINVAL);
    assert_string_equal(f->msg, "display_name cannot be empty");

    a.display_name = "ok";
    a.api_endpoint_uri = "http://127.0.0.1:5000";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), -EINVAL);
    assert_non_null(strstr(f->msg, "'http'"));

    a.api_endpoint_uri = "localhost:5000/";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), -EINVAL);
    assert_non_null(strstr(f->msg, "'localhost'"));

    a.api_endpoint_uri = "";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), -EINVAL);
    assert_non_null(strstr(f->msg, "api_endpoint_uri"));

    a.api_endpoint_uri = "https://127.0.0.1:5000";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), 0);
    a.api_endpoint_uri = "vsock://3:5000";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), 0);
    a.api_endpoint_uri = "UNIX:///run/agent.sock";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), 0);

    a.api_endpoint_uri = "unixx:///run/agent.sock";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), -EINVAL);
    assert_non_null(strstr(f->msg, "'unixx'"));

    /* Control characters would end up in log lines. */
    a.api_endpoint_uri = "unix:///x";
    a.display_name = "two\nlines";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), -EINVAL);
    assert_non_null(strstr(f->msg, "display_name"));

    /* Fields go back out in proto3 strings, which must be UTF-8. */
    a.display_name = "probe\xff";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), -EINVAL);
    assert_string_equal(f->msg, "display_name is not valid UTF-8");
    a.display_name = "ok";
    a.flavor = "\xc0\xaf";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), -EINVAL);
    assert_string_equal(f->msg, "flavor is not valid UTF-8");
    a.flavor = "system_probe";
    a.pid = "\xed\xa0\x80";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), -EINVAL);
    assert_string_equal(f->msg, "pid is not valid UTF-8");
    a.pid = "4242";
    a.api_endpoint_uri = "unix:///r\xfe";
    assert_int_equal(cs_registry_register(f->reg, &a, id, &secs, f->msg,
        sizeof(f->msg)), -EINVAL);
    assert_string_equal(f->msg, "api_endpoint_uri is not valid UTF-8");

    assert_int_equal(cs_shm_registry_stats(f->shm)->registered, 3);
}

static void
test_refresh_and_expire(void **state)
{
    fixture_t *f = *state;
    char a[CS_SESSION_ID_LEN + 1], b[CS_SESSION_ID_LEN + 1];
    uint32_t seen = cs_shm_wake_word(f->shm);
    int64_t next;

    register_ok(f, a);
    register_ok(f, b);

    f->now += 20000;
    assert_int_equal(cs_registry_refresh(f->reg, a), 0);

    /* Exactly at the timeout nothing goes; one ms later b does. */
    f->now += IDLE_MS - 20000;
    assert_int_equal(cs_registry_sweep(f->reg, &next), 0);
    assert_int_equal(next, f->now + 1);
    assert_int_equal(cs_shm_wait(f->shm, &seen, 0), -ETIMEDOUT);

    f->now += 1;
    assert_int_equal(cs_registry_sweep(f->reg, &next), 1);
    assert_false(is_live(f, b));
    assert_true(is_live(f, a));
    assert_int_equal(next, f->now + 20000);
    /* Frontends are woken to end the streams of the expired session. */
    assert_int_equal(cs_shm_wait(f->shm, &seen, 0), 0);

    assert_int_equal(cs_registry_refresh(f->reg, b), -ENOENT);
    assert_int_equal(cs_registry_rpc_code(-ENOENT), CS_RPC_NOT_FOUND);

    f->now += 20000;
    assert_int_equal(cs_registry_sweep(f->reg, &next), 1);
    assert_false(is_live(f, a));
    assert_int_equal(next, INT64_MAX);
    assert_int_equal(cs_shm_registry_stats(f->shm)->expirations, 2);
    assert_int_equal(cs_shm_registry_stats(f->shm)->refreshes, 1);
    assert_int_equal(cs_shm_registry_stats(f->shm)->registered, 0);
}

static void
test_open_stream_keeps_alive(void **state)
{
    fixture_t *f = *state;
    char a[CS_SESSION_ID_LEN + 1];
    cs_broker_stream_count_t s;
    cs_shm_session_t out;
    int64_t next;
    int i;

    register_ok(f, a);
    s.session_id = a;
    s.open_streams = 2;

    /* Reports every 2 s for three idle timeouts keep it alive. */
    for (i = 0; i < 3 * IDLE_MS / 2000; i++) {
        f->now += 2000;
        assert_int_equal(cs_registry_keepalive(f->reg, 100, &s, 1), 0);
        assert_int_equal(cs_registry_sweep(f->reg, &next), 0);
    }
    assert_int_equal(cs_shm_session_lookup(f->shm, a, &out, NULL), 0);
    assert_int_equal(out.open_streams, 2);

    /* A second frontend's streams add up. */
    s.open_streams = 1;
    assert_int_equal(cs_registry_keepalive(f->reg, 200, &s, 1), 0);
    assert_int_equal(cs_shm_session_lookup(f->shm, a, &out, NULL), 0);
    assert_int_equal(out.open_streams, 3);

    /* Streams closed: idle from the last report on. */
    assert_int_equal(cs_registry_keepalive(f->reg, 100, NULL, 0), 0);
    assert_int_equal(cs_registry_keepalive(f->reg, 200, NULL, 0), 0);
    assert_int_equal(cs_shm_session_lookup(f->shm, a, &out, NULL), 0);
    assert_int_equal(out.open_streams, 0);
    f->now += IDLE_MS + 1;
    assert_int_equal(cs_registry_sweep(f->reg, &next), 1);
}

static void
test_capacity_exhausted(void **state)
{
    fixture_t *f = *state;
    char ids[CAPACITY][CS_SESSION_ID_LEN + 1], extra[CS_SESSION_ID_LEN + 1];
    uint32_t secs;
    int i;

    for (i = 0; i < CAPACITY; i++) {
        register_ok(f, ids[i]);
    }

    assert_int_equal(cs_registry_register(f->reg, &agent_ok, extra, &secs,
        f->msg, sizeof(f->msg)), -ENOSPC);
    assert_non_null(strstr(f->msg, "full"));
    assert_int_equal(cs_registry_rpc_code(-ENOSPC),
        CS_RPC_RESOURCE_EXHAUSTED);

    for (i = 0; i < CAPACITY; i++) {
        assert_true(is_live(f, ids[i]));
    }
    assert_int_equal(cs_shm_registry_stats(f->shm)->registered, CAPACITY);

    /* Room again once one goes. */
    assert_int_equal(cs_registry_revoke(f->reg, ids[3], f->msg,
        sizeof(f->msg)), 0);
    register_ok(f, extra);
}

static void
test_revoke(void **state)
{
    fixture_t *f = *state;
    char a[CS_SESSION_ID_LEN + 1], b[CS_SESSION_ID_LEN + 1], prefix[9];
    uint32_t seen = cs_shm_wake_word(f->shm);

    register_ok(f, a);
    register_ok(f, b);

    assert_int_equal(cs_registry_revoke(f->reg, a, f->msg, sizeof(f->msg)),
        0);
    assert_false(is_live(f, a));
    assert_true(is_live(f, b));
    assert_int_equal(cs_shm_wait(f->shm, &seen, 0), 0);
    assert_int_equal(cs_registry_revoke(f->reg, a, f->msg, sizeof(f->msg)),
        -ENOENT);

    /* By the prefix configstream-ctl shows. */
    memcpy(prefix, b, 8);
    prefix[8] = '\0';
    assert_int_equal(cs_registry_revoke(f->reg, "abc", f->msg,
        sizeof(f->msg)), -EINVAL);
    assert_int_equal(cs_registry_revoke(f->reg, prefix, f->msg,
        sizeof(f->msg)), 0);
    assert_false(is_live(f, b));
    assert_int_equal(cs_shm_registry_stats(f->shm)->revocations, 2);
}

static void
test_disabled(void **state)
{
    fixture_t *f = *state;
    cs_registry_params_t p = params_of(f, 0);
    char id[CS_SESSION_ID_LEN + 1];
    cs_registry_t *off;
    uint32_t secs;

    assert_int_equal(cs_registry_new(&off, f->shm, &p), 0);
    assert_int_equal(cs_shm_header(f->shm)->registry_enabled, 0);
    assert_int_equal(cs_registry_register(off, &agent_ok, id, &secs,
        f->msg, sizeof(f->msg)), -ENOTSUP);
    assert_string_equal(f->msg, "remote agent registry not enabled");
    assert_int_equal(cs_registry_rpc_code(-ENOTSUP), CS_RPC_UNIMPLEMENTED);
    assert_int_equal(cs_registry_refresh(off, "x"), -ENOTSUP);
    cs_registry_free(off);
}

static void
test_restart_keeps_sessions(void **state)
{
    fixture_t *f = *state;
    char a[CS_SESSION_ID_LEN + 1], b[CS_SESSION_ID_LEN + 1];
    cs_registry_params_t p = params_of(f, 1);
    cs_broker_stream_count_t s = { .open_streams = 1 };
    int64_t next;

    register_ok(f, a);
    register_ok(f, b);
    s.session_id = b;
    assert_int_equal(cs_registry_keepalive(f->reg, 100, &s, 1), 0);

    /* A new broker on the same table, after a long outage. */
    cs_registry_free(f->reg);
    f->now += IDLE_MS + 5000;
    assert_int_equal(cs_registry_new(&f->reg, f->shm, &p), 0);
    assert_int_equal(cs_shm_registry_stats(f->shm)->registered, 2);

    /* a's expiry carried on through the outage; b has an open stream. */
    assert_int_equal(cs_registry_sweep(f->reg, &next), 1);
    assert_false(is_live(f, a));
    assert_true(is_live(f, b));

    /* The frontend reports again and b stays. */
    f->now += 2000;
    assert_int_equal(cs_registry_keepalive(f->reg, 100, &s, 1), 0);
    f->now += 20000;
    assert_int_equal(cs_registry_sweep(f->reg, &next), 0);
    assert_true(is_live(f, b));
}

static void
test_random_source_errors(void **state)
{
    fixture_t *f = *state;
    int script[8] = { -EINTR, 5, 5, 0 };
    char id[CS_SESSION_ID_LEN + 1];
    uint32_t secs;

    /* Interrupted and short reads are retried until 16 bytes arrive. */
    memcpy(wrap_random_script, script, sizeof(script));
    wrap_random_calls = 0;
    register_ok(f, id);
    assert_int_equal(wrap_random_calls, 4);
    assert_true(is_live(f, id));

    /* A failing source fails the registration, leaving no session. */
    memset(wrap_random_script, 0, sizeof(wrap_random_script));
    wrap_random_script[0] = -ENOSYS;
    assert_int_equal(cs_registry_register(f->reg, &agent_ok, id, &secs,
        f->msg, sizeof(f->msg)), -ENOSYS);
    assert_non_null(strstr(f->msg, "getrandom"));
    assert_int_equal(cs_shm_registry_stats(f->shm)->registered, 1);
}

static int
cmp_ids(const void *a, const void *b)
{
    return memcmp(a, b, CS_SESSION_ID_LEN);
}

static void
test_id_format_and_uniqueness(void **state)
{
    enum { N = 100000 };
    fixture_t *f = *state;
    char (*ids)[CS_SESSION_ID_LEN + 1];
    regex_t re;
    int i;

    assert_int_equal(regcomp(&re, "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-"
        "[89ab][0-9a-f]{3}-[0-9a-f]{12}$", REG_EXTENDED | REG_NOSUB), 0);
    ids = calloc(N, sizeof(*ids));
    assert_non_null(ids);

    for (i = 0; i < N; i++) {
        register_ok(f, ids[i]);
        assert_int_equal(regexec(&re, ids[i], 0, NULL, 0), 0);
        assert_int_equal(cs_registry_revoke(f->reg, ids[i], f->msg,
            sizeof(f->msg)), 0);
    }

    qsort(ids, N, sizeof(*ids), cmp_ids);
    for (i = 1; i < N; i++) {
        assert_int_not_equal(memcmp(ids[i - 1], ids[i], CS_SESSION_ID_LEN),
            0);
    }

    free(ids);
    regfree(&re);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_lookup, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_invalid_arguments, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_refresh_and_expire, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_open_stream_keeps_alive, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_capacity_exhausted, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_sessions, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_random_source_errors, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_id_format_and_uniqueness,
            setup_large, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
