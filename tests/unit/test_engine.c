/*
 * Unit tests of the resolution engine against a real store in a temporary
 * directory: what remote agents rely on is the changelog it writes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"
#include "resolve.h"
#include "store.h"
#include "value.h"

typedef struct {
    char dir[64];
    cs_store_t *st;
    cs_engine_t *eng;
} fx_t;

/* One recorded change, as read back from the store's changelog. */
typedef struct {
    uint64_t seq;
    char key[64];
    char source[32];
    char unset_source[32];
    int has_value;
    double number;
} change_t;

typedef struct {
    change_t c[64];
    size_t n;
} changes_t;

static void
fx_open(fx_t *fx, uint64_t retention)
{
    char err[256];

    assert_int_equal(cs_store_open(&fx->st, fx->dir, CS_STORE_CREATE, err,
        sizeof(err)), 0);
    assert_int_equal(cs_engine_open(&fx->eng, fx->st, retention), 0);
}

static void
fx_close(fx_t *fx)
{
    cs_engine_close(fx->eng);
    cs_store_close(fx->st);
    fx->eng = NULL;
    fx->st = NULL;
}

static int
setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_engine.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx_open(fx, 10000);
    *state = fx;

    return 0;
}

static int
teardown(void **state)
{
    fx_t *fx = *state;
    char cmd[128];

    fx_close(fx);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);

    return 0;
}

/* A flat map of number values: map("a", 1.0, "b", 2.0, NULL). */
static cs_value_t *
map(const char *key, ...)
{
    cs_value_t *m = cs_value_map();
    va_list ap;

    assert_non_null(m);
    va_start(ap, key);
    while (key != NULL) {
        assert_int_equal(cs_value_map_set(m, key,
            cs_value_number(va_arg(ap, double))), 0);
        key = va_arg(ap, const char *);
    }
    va_end(ap);

    return m;
}

static int
collect_cb(uint64_t seq, const cs_store_setting_t *s, void *arg)
{
    changes_t *out = arg;
    change_t *c;

    assert_true(out->n < 64);
    c = &out->c[out->n++];
    c->seq = seq;
    snprintf(c->key, sizeof(c->key), "%s", s->key);
    snprintf(c->source, sizeof(c->source), "%s", s->source);
    snprintf(c->unset_source, sizeof(c->unset_source), "%s",
        s->unset_source ? s->unset_source : "");
    c->has_value = s->value != NULL;
    if (s->value != NULL && s->value->kind == CS_VAL_NUMBER) {
        c->number = s->value->u.number;
    }

    return 0;
}

static void
changes_since(fx_t *fx, uint64_t from, changes_t *out)
{
    memset(out, 0, sizeof(*out));
    assert_int_equal(cs_store_changes_foreach(fx->st, from, collect_cb,
        out), 0);
}

static uint64_t
head(fx_t *fx)
{
    cs_store_meta_t meta;

    assert_int_equal(cs_store_meta_get(fx->st, &meta), 0);

    return meta.head_seq;
}

static void
apply_one(fx_t *fx, cs_source_t src, cs_value_t *layer, size_t want)
{
    cs_value_t *layers[CS_SRC_COUNT] = { NULL };
    size_t changes = 99;

    layers[src] = layer;
    assert_int_equal(cs_engine_apply(fx->eng, layers, "datadog.yaml",
        &changes), 0);
    assert_int_equal(changes, want);
}

/* Every source outranks the ones below it, and unsets fall back through
 * each of them in turn, naming the cleared layer. */
static void
test_precedence_and_unsets(void **state)
{
    fx_t *fx = *state;
    const cs_value_t *v;
    changes_t ch;
    cs_source_t src;
    uint64_t seq, h;
    int s;

    for (s = 0; s < CS_SRC_COUNT; s++) {
        apply_one(fx, s, map("k", (double) (s + 1), NULL), 1);
        assert_int_equal(cs_engine_get(fx->eng, "k", &src, &v, &seq), 0);
        assert_int_equal(src, s);
        assert_true(v->u.number == (double) (s + 1));
        assert_int_equal(seq, head(fx));
    }
    assert_int_equal(head(fx), CS_SRC_COUNT);

    h = head(fx);
    for (s = CS_SRC_COUNT - 1; s >= 0; s--) {
        apply_one(fx, s, cs_value_map(), 1);
    }

    changes_since(fx, h + 1, &ch);
    assert_int_equal(ch.n, CS_SRC_COUNT);
    for (s = CS_SRC_COUNT - 1; s >= 0; s--) {
        change_t *c = &ch.c[CS_SRC_COUNT - 1 - s];

        assert_int_equal(c->seq, h + 1 + (CS_SRC_COUNT - 1 - s));
        assert_string_equal(c->key, "k");
        assert_string_equal(c->unset_source, cs_source_name(s));
        if (s > 0) {
            assert_string_equal(c->source, cs_source_name(s - 1));
            assert_true(c->has_value);
            assert_true(c->number == (double) s);
        } else {
            /* Nothing left: no value and an empty source. */
            assert_string_equal(c->source, "");
            assert_false(c->has_value);
        }
    }
    assert_int_equal(cs_engine_get(fx->eng, "k", &src, &v, &seq), -ENOENT);
}

/* A value changing below the winner changes nothing streamed; a change
 * of the winning value is an update without unset_source. */
static void
test_shadowed_and_value_changes(void **state)
{
    fx_t *fx = *state;
    changes_t ch;
    uint64_t h;

    apply_one(fx, CS_SRC_DEFAULT, map("a", 1.0, "b", 2.0, NULL), 2);
    apply_one(fx, CS_SRC_FILE, map("a", 10.0, NULL), 1);
    h = head(fx);

    apply_one(fx, CS_SRC_DEFAULT, map("a", 5.0, "b", 2.0, NULL), 0);
    assert_int_equal(head(fx), h);

    apply_one(fx, CS_SRC_FILE, map("a", 11.0, NULL), 1);
    changes_since(fx, h + 1, &ch);
    assert_int_equal(ch.n, 1);
    assert_string_equal(ch.c[0].key, "a");
    assert_string_equal(ch.c[0].source, "file");
    assert_string_equal(ch.c[0].unset_source, "");
    assert_true(ch.c[0].number == 11.0);
}

/* The same inputs again: nothing written, no id. */
static void
test_noop_reload(void **state)
{
    fx_t *fx = *state;
    cs_value_t *layers[CS_SRC_COUNT] = { NULL };
    size_t changes = 99;
    uint64_t h;

    layers[CS_SRC_DEFAULT] = map("a", 1.0, "b", 2.0, NULL);
    layers[CS_SRC_FILE] = map("b", 3.0, NULL);
    assert_int_equal(cs_engine_apply(fx->eng, layers, "datadog.yaml",
        &changes), 0);
    assert_int_equal(changes, 2);
    h = head(fx);
    assert_int_equal(h, 2);

    layers[CS_SRC_DEFAULT] = map("a", 1.0, "b", 2.0, NULL);
    layers[CS_SRC_FILE] = map("b", 3.0, NULL);
    assert_int_equal(cs_engine_apply(fx->eng, layers, "datadog.yaml",
        &changes), 0);
    assert_int_equal(changes, 0);
    assert_int_equal(head(fx), h);

    /* Unsetting what a runtime layer does not hold is no change either. */
    assert_int_equal(cs_engine_layer_unset(fx->eng, CS_SRC_CLI, "a",
        &changes), 0);
    assert_int_equal(changes, 0);
    assert_int_equal(head(fx), h);
}

/* Ids, layers and the resolution survive closing and reopening. */
static void
test_persistence_across_reopen(void **state)
{
    fx_t *fx = *state;
    const cs_value_t *v;
    cs_value_t *rt;
    cs_source_t src;
    size_t changes;
    uint64_t seq, h;

    apply_one(fx, CS_SRC_DEFAULT, map("a", 1.0, "b", 2.0, NULL), 2);
    rt = cs_value_number(42.0);
    assert_int_equal(cs_engine_layer_set(fx->eng, CS_SRC_RUNTIME, "a", rt,
        &changes), 0);
    cs_value_free(rt);
    assert_int_equal(changes, 1);
    h = head(fx);

    fx_close(fx);
    fx_open(fx, 10000);

    assert_int_equal(cs_engine_head(fx->eng), h);
    assert_int_equal(cs_engine_get(fx->eng, "a", &src, &v, &seq), 0);
    assert_int_equal(src, CS_SRC_RUNTIME);
    assert_true(v->u.number == 42.0);
    assert_int_equal(seq, h);

    /* A restart with the same file-backed inputs writes nothing. */
    apply_one(fx, CS_SRC_DEFAULT, map("a", 1.0, "b", 2.0, NULL), 0);
    assert_int_equal(head(fx), h);

    /* The next change continues the sequence. */
    apply_one(fx, CS_SRC_DEFAULT, map("a", 1.0, "b", 3.0, NULL), 1);
    assert_int_equal(head(fx), h + 1);
}

/* Every layer is persisted, so tools can show each layer's value. */
static void
test_layers_persisted(void **state)
{
    fx_t *fx = *state;
    cs_value_t *layer;

    apply_one(fx, CS_SRC_DEFAULT, map("a", 1.0, NULL), 1);
    apply_one(fx, CS_SRC_FILE, map("a", 2.0, "c", 3.0, NULL), 2);

    assert_int_equal(cs_store_layer_load(fx->st, "default", &layer), 0);
    assert_int_equal(layer->u.map.n, 1);
    cs_value_free(layer);
    assert_int_equal(cs_store_layer_load(fx->st, "file", &layer), 0);
    assert_int_equal(layer->u.map.n, 2);
    assert_true(cs_value_map_get(layer, "c")->u.number == 3.0);
    cs_value_free(layer);

    apply_one(fx, CS_SRC_FILE, map("a", 2.0, NULL), 1);
    assert_int_equal(cs_store_layer_load(fx->st, "file", &layer), 0);
    assert_int_equal(layer->u.map.n, 1);
    assert_null(cs_value_map_get(layer, "c"));
    cs_value_free(layer);
}

/* The changelog keeps the newest `retention` entries. */
static void
test_changelog_trimmed(void **state)
{
    fx_t *fx = *state;
    cs_store_meta_t meta;
    int i;

    fx_close(fx);
    fx_open(fx, 3);
    for (i = 0; i < 6; i++) {
        apply_one(fx, CS_SRC_FILE, map("a", (double) i, NULL), 1);
    }

    assert_int_equal(cs_store_meta_get(fx->st, &meta), 0);
    assert_int_equal(meta.head_seq, 6);
    assert_int_equal(meta.oldest_seq, 4);
}

/* A map that is not a map is refused and changes nothing. */
static void
test_bad_layer_refused(void **state)
{
    fx_t *fx = *state;
    cs_value_t *layers[CS_SRC_COUNT] = { NULL };
    size_t changes;

    apply_one(fx, CS_SRC_FILE, map("a", 1.0, NULL), 1);
    layers[CS_SRC_FILE] = cs_value_number(1.0);
    assert_int_equal(cs_engine_apply(fx->eng, layers, "datadog.yaml",
        &changes), -EINVAL);
    assert_int_equal(changes, 0);
    assert_int_equal(head(fx), 1);
}

/*
 * The store's commit, wrapped (-Wl,--wrap): fail_commits next commits
 * abort and return fail_rc instead.
 */
int __real_cs_store_txn_commit(cs_store_txn_t *txn, uint64_t *head_seq);
int __wrap_cs_store_txn_commit(cs_store_txn_t *txn, uint64_t *head_seq);

static int fail_commits;
static int fail_rc;

int
__wrap_cs_store_txn_commit(cs_store_txn_t *txn, uint64_t *head_seq)
{
    if (fail_commits > 0) {
        fail_commits--;
        cs_store_txn_abort(txn);
        return fail_rc;
    }

    return __real_cs_store_txn_commit(txn, head_seq);
}

/* A full map is retried with a rebuilt transaction: one id per change. */
static void
test_full_map_retried(void **state)
{
    fx_t *fx = *state;
    changes_t ch;

    apply_one(fx, CS_SRC_FILE, map("a", 1.0, NULL), 1);
    fail_commits = 2;
    fail_rc = -ENOSPC;
    apply_one(fx, CS_SRC_FILE, map("a", 2.0, NULL), 1);
    assert_int_equal(fail_commits, 0);

    changes_since(fx, 1, &ch);
    assert_int_equal(ch.n, 2);
    assert_int_equal(ch.c[1].seq, 2);
    assert_true(ch.c[1].number == 2.0);
}

/* A failed commit leaves the previous resolution in effect, and the same
 * change lands when it is applied again. */
static void
test_failed_commit_keeps_state(void **state)
{
    fx_t *fx = *state;
    cs_value_t *layers[CS_SRC_COUNT] = { NULL };
    const cs_value_t *v;
    cs_source_t src;
    size_t changes = 99;
    uint64_t seq;

    apply_one(fx, CS_SRC_FILE, map("a", 1.0, NULL), 1);

    fail_commits = 1;
    fail_rc = -EIO;
    layers[CS_SRC_FILE] = map("a", 2.0, NULL);
    assert_int_equal(cs_engine_apply(fx->eng, layers, "datadog.yaml",
        &changes), -EIO);
    assert_int_equal(changes, 0);
    assert_int_equal(head(fx), 1);
    assert_int_equal(cs_engine_get(fx->eng, "a", &src, &v, &seq), 0);
    assert_true(v->u.number == 1.0);
    assert_true(cs_engine_layer_value(fx->eng, CS_SRC_FILE, "a")->u.number
        == 1.0);

    apply_one(fx, CS_SRC_FILE, map("a", 2.0, NULL), 1);
    assert_int_equal(head(fx), 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_precedence_and_unsets, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_shadowed_and_value_changes,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_noop_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence_across_reopen,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_layers_persisted, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_changelog_trimmed, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_bad_layer_refused, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_full_map_retried, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_keeps_state,
            setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
