/*
 * Unit tests of the shared-memory segment (src/common/shm.c): creation and
 * re-attach, refusal of foreign or damaged segments, the session seqlock,
 * the change word and the worker blocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm.h"

#define ID_A "6f1c2d3e-4b5a-4c6d-8e7f-001122334455"
#define ID_B "6f1c2d3e-4b5a-4c6d-8e7f-001122334456"

typedef struct {
    char dir[64];
    char path[128];
    cs_shm_t *shm;
} fixture_t;

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    cs_shm_params_t p = { .session_capacity = 16, .worker_capacity = 4 };
    char err[256];

    strcpy(f->dir, "/tmp/test_shm.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/shm", f->dir);
    assert_int_equal(cs_shm_create_or_attach(&f->shm, f->path, &p, err,
        sizeof(err)), 0);
    *state = f;

    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;

    cs_shm_detach(f->shm);
    unlink(f->path);
    rmdir(f->dir);
    free(f);

    return 0;
}

/* Put a session in a slot the way the registry does. */
static uint32_t
put_session(cs_shm_t *shm, const char *id, const char *name)
{
    cs_shm_session_t *s;
    uint32_t slot;

    assert_int_equal(cs_shm_session_alloc(shm, id, &slot), 0);
    s = cs_shm_session(shm, slot);
    cs_shm_session_write_begin(shm, slot);
    memcpy(s->id, id, CS_SESSION_ID_LEN + 1);
    snprintf(s->display_name, sizeof(s->display_name), "%s", name);
    s->in_use = 1;
    cs_shm_session_write_end(shm, slot);

    return slot;
}

static void
test_create_then_attach(void **state)
{
    fixture_t *f = *state;
    cs_shm_params_t p = { .session_capacity = 999, .worker_capacity = 99 };
    cs_shm_t *other, *again;
    cs_shm_session_t out;
    char err[256];
    struct stat st;

    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(cs_shm_header(f->shm)->magic, CS_SHM_MAGIC);

    put_session(f->shm, ID_A, "kept");
    cs_shm_publish_head(f->shm, 42);

    /* A broker restart re-attaches with the segment's own capacities. */
    assert_int_equal(cs_shm_create_or_attach(&again, f->path, &p, err,
        sizeof(err)), 0);
    assert_int_equal(p.session_capacity, 16);
    assert_int_equal(p.worker_capacity, 4);
    assert_int_equal(cs_shm_session_lookup(again, ID_A, &out, NULL), 0);
    assert_string_equal(out.display_name, "kept");
    cs_shm_detach(again);

    assert_int_equal(cs_shm_attach(&other, f->path, err, sizeof(err)), 0);
    assert_int_equal(cs_shm_head(other), 42);
    cs_shm_detach(other);
}

static void
test_attach_absent(void **state)
{
    fixture_t *f = *state;
    cs_shm_t *shm;
    char path[160], err[256];

    snprintf(path, sizeof(path), "%s/none", f->dir);
    assert_int_equal(cs_shm_attach(&shm, path, err, sizeof(err)), -ENOENT);
}

static void
patch_file(const char *path, off_t off, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY);

    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, data, len, off), (ssize_t) len);
    close(fd);
}

static void
test_other_layout_refused(void **state)
{
    fixture_t *f = *state;
    cs_shm_params_t p = { .session_capacity = 16, .worker_capacity = 4 };
    uint32_t version = CS_SHM_LAYOUT_VERSION + 1;
    cs_shm_t *shm;
    char err[256];

    patch_file(f->path, offsetof(cs_shm_header_t, layout_version), &version,
        sizeof(version));

    assert_int_equal(cs_shm_attach(&shm, f->path, err, sizeof(err)),
        -EPROTO);
    assert_non_null(strstr(err, "layout version"));

    /* The broker refuses it too rather than rebuild over it. */
    assert_int_equal(cs_shm_create_or_attach(&shm, f->path, &p, err,
        sizeof(err)), -EPROTO);
}

static void
test_bad_magic_refused(void **state)
{
    fixture_t *f = *state;
    uint64_t magic = 0x1122334455667788ULL;
    cs_shm_t *shm;
    char err[256];

    patch_file(f->path, 0, &magic, sizeof(magic));

    assert_int_equal(cs_shm_attach(&shm, f->path, err, sizeof(err)),
        -EPROTO);
    assert_non_null(strstr(err, "magic"));
}

static void
test_truncated_refused(void **state)
{
    fixture_t *f = *state;
    cs_shm_t *shm;
    char err[256];

    assert_int_equal(truncate(f->path, 4096), 0);
    assert_int_equal(cs_shm_attach(&shm, f->path, err, sizeof(err)),
        -EPROTO);
    assert_non_null(strstr(err, "truncated"));

    assert_int_equal(truncate(f->path, 12), 0);
    assert_int_equal(cs_shm_attach(&shm, f->path, err, sizeof(err)),
        -EPROTO);
}

static void
test_lookup(void **state)
{
    fixture_t *f = *state;
    cs_shm_session_t out;
    uint32_t slot, found;

    slot = put_session(f->shm, ID_A, "agent-a");

    assert_int_equal(cs_shm_session_lookup(f->shm, ID_A, &out, &found), 0);
    assert_int_equal(found, slot);
    assert_string_equal(out.id, ID_A);
    assert_string_equal(out.display_name, "agent-a");

    /* One character off, a prefix, or nothing at all: not found. */
    assert_int_equal(cs_shm_session_lookup(f->shm, ID_B, &out, NULL),
        -ENOENT);
    assert_int_equal(cs_shm_session_lookup(f->shm, "6f1c2d3e", &out, NULL),
        -ENOENT);
    assert_int_equal(cs_shm_session_lookup(f->shm, "", &out, NULL),
        -ENOENT);
    assert_int_equal(cs_shm_registry_stats(f->shm)->rejected_lookups, 3);

    /* The broker's own look-ups are not rejections. */
    assert_int_equal(cs_shm_session_find(f->shm, ID_B, &out, NULL),
        -ENOENT);
    assert_int_equal(cs_shm_registry_stats(f->shm)->rejected_lookups, 3);

    assert_int_equal(cs_shm_session_read(f->shm, slot, &out), 0);
    assert_int_equal(cs_shm_session_read(f->shm, (slot + 1) % 16, &out),
        -ENOENT);
}

static void
test_full_table_probes_everywhere(void **state)
{
    fixture_t *f = *state;
    char ids[16][CS_SESSION_ID_LEN + 1];
    cs_shm_session_t out;
    uint32_t slot;
    int i;

    for (i = 0; i < 16; i++) {
        snprintf(ids[i], sizeof(ids[i]),
            "00000000-0000-4000-8000-%012d", i);
        put_session(f->shm, ids[i], "x");
    }
    assert_int_equal(cs_shm_session_alloc(f->shm, ID_A, &slot), -ENOSPC);

    for (i = 0; i < 16; i++) {
        assert_int_equal(cs_shm_session_lookup(f->shm, ids[i], &out,
            NULL), 0);
        assert_string_equal(out.id, ids[i]);
    }
}

static void
test_stuck_writer(void **state)
{
    fixture_t *f = *state;
    cs_shm_params_t p = { .session_capacity = 16, .worker_capacity = 4 };
    cs_shm_session_t out;
    cs_shm_t *again;
    char err[256];
    uint32_t slot;

    slot = put_session(f->shm, ID_A, "agent-a");

    /* A broker killed in the middle of a write leaves seq odd. */
    cs_shm_session_write_begin(f->shm, slot);
    assert_int_equal(cs_shm_session_lookup(f->shm, ID_A, &out, NULL),
        -ETIMEDOUT);

    /* The next broker repairs it and keeps the session. */
    assert_int_equal(cs_shm_create_or_attach(&again, f->path, &p, err,
        sizeof(err)), 0);
    assert_int_equal(cs_shm_session_lookup(f->shm, ID_A, &out, NULL), 0);
    cs_shm_detach(again);
}

static void
test_wait_and_publish(void **state)
{
    fixture_t *f = *state;
    uint32_t seen;

    seen = cs_shm_wake_word(f->shm);
    assert_int_equal(cs_shm_wait(f->shm, &seen, 0), -ETIMEDOUT);
    assert_int_equal(cs_shm_wait(f->shm, &seen, 20), -ETIMEDOUT);

    cs_shm_publish_head(f->shm, 7);
    assert_int_equal(cs_shm_wait(f->shm, &seen, 0), 0);
    assert_int_equal(seen, cs_shm_wake_word(f->shm));
    assert_int_equal(cs_shm_head(f->shm), 7);

    cs_shm_wake(f->shm);
    assert_int_equal(cs_shm_wait(f->shm, &seen, 1000), 0);
    assert_int_equal(cs_shm_head(f->shm), 7);
}

static void
test_worker_claim(void **state)
{
    fixture_t *f = *state;
    cs_shm_worker_stats_t *w;
    uint32_t idx[4], again;
    pid_t dead;
    int i;

    for (i = 0; i < 4; i++) {
        assert_int_equal(cs_shm_worker_claim(f->shm, &idx[i]), 0);
    }
    assert_int_not_equal(idx[0], idx[1]);
    assert_int_equal(cs_shm_worker_claim(f->shm, &again), -ENOSPC);

    /* A block whose owner died is taken over; its gauge restarts at 0,
     * its counters keep their totals. */
    dead = fork();
    if (dead == 0) {
        _exit(0);
    }
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    w = cs_shm_worker(f->shm, idx[2]);
    atomic_store(&w->owner_pid, dead);
    atomic_store(&w->subscribers, 5);
    atomic_store(&w->updates_sent, 1000);

    assert_int_equal(cs_shm_worker_claim(f->shm, &again), 0);
    assert_int_equal(again, idx[2]);
    assert_int_equal(atomic_load(&w->owner_pid), getpid());
    assert_int_equal(atomic_load(&w->subscribers), 0);
    assert_int_equal(atomic_load(&w->updates_sent), 1000);

    cs_shm_worker_release(f->shm, idx[0]);
    assert_int_equal(cs_shm_worker_claim(f->shm, &again), 0);
    assert_int_equal(again, idx[0]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_then_attach, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_attach_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_layout_refused, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_bad_magic_refused, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_truncated_refused, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_table_probes_everywhere,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_stuck_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_and_publish, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_worker_claim, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
