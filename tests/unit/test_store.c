/*
 * Unit tests for the LMDB store: ids, layout, epoch, encoding of settings,
 * snapshots and the changelog, retention, map growth and the failure paths
 * of a full map (through --wrap seams on mdb_put and mdb_txn_commit).
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "datadog/model/v1/model.pb-c.h"
#include "store.h"

/*
 * Seams: when fail_put_after reaches zero, mdb_put answers MDB_MAP_FULL
 * (negative: never); fail_commit makes the next commit abort the
 * transaction and answer MDB_MAP_FULL, as LMDB does when the map is full.
 */
static int fail_put_after = -1;
static int fail_commit;

int __real_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
    unsigned int flags);
int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
    unsigned int flags);
int __real_mdb_txn_commit(MDB_txn *txn);
int __wrap_mdb_txn_commit(MDB_txn *txn);

int
__wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
    unsigned int flags)
{
    if (fail_put_after == 0) {
        fail_put_after = -1;
        return MDB_MAP_FULL;
    }
    if (fail_put_after > 0) {
        fail_put_after--;
    }

    return __real_mdb_put(txn, dbi, key, data, flags);
}

int
__wrap_mdb_txn_commit(MDB_txn *txn)
{
    if (fail_commit) {
        fail_commit = 0;
        mdb_txn_abort(txn);
        return MDB_MAP_FULL;
    }

    return __real_mdb_txn_commit(txn);
}

typedef struct {
    char dir[PATH_MAX];
    cs_store_t *st;
} fixture_t;

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    return remove(path);
}

static int
setup(void **state)
{
    char err[256];
    fixture_t *f;

    f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/cs-test-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    strcat(f->dir, "/store");

    cs_store_set_initial_mapsize(0);
    assert_int_equal(cs_store_open(&f->st, f->dir, CS_STORE_CREATE, err,
        sizeof(err)), 0);
    *state = f;

    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    char *slash;

    cs_store_close(f->st);
    fail_put_after = -1;
    fail_commit = 0;
    cs_store_set_initial_mapsize(0);

    slash = strrchr(f->dir, '/');
    *slash = '\0';
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);

    return 0;
}

static void
reopen(fixture_t *f, int flags)
{
    char err[256];

    cs_store_close(f->st);
    assert_int_equal(cs_store_open(&f->st, f->dir, flags, err, sizeof(err)),
        0);
}

/* One transaction setting key to the string val from source file. */
static uint64_t
change_str(cs_store_t *st, const char *key, const char *val)
{
    cs_store_txn_t *txn;
    cs_value_t *v;
    uint64_t seq;

    v = cs_value_string(val);
    assert_int_equal(cs_store_txn_begin(st, &txn), 0);
    assert_int_equal(cs_store_setting_change(txn, key, "file", v, "", &seq),
        0);
    assert_int_equal(cs_store_txn_commit(txn, NULL), 0);
    cs_value_free(v);

    return seq;
}

static Datadog__Model__V1__ConfigEvent *
snapshot(cs_store_t *st, uint64_t *head)
{
    Datadog__Model__V1__ConfigEvent *ev;
    uint8_t *buf;
    size_t len;

    assert_int_equal(cs_store_snapshot_encode(st, head, &buf, &len), 0);
    ev = datadog__model__v1__config_event__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(ev);
    assert_int_equal(ev->event_case,
        DATADOG__MODEL__V1__CONFIG_EVENT__EVENT_SNAPSHOT);

    return ev;
}

static void
test_seq_wire(void **state)
{
    assert_int_equal(cs_seq_wire(0), 0);
    assert_int_equal(cs_seq_wire(1), 1);
    assert_int_equal(cs_seq_wire(INT32_MAX), INT32_MAX);
    assert_int_equal(cs_seq_wire((uint64_t) INT32_MAX + 1), 1);
    assert_int_equal(cs_seq_wire((uint64_t) INT32_MAX + 2), 2);
    assert_int_equal(cs_seq_wire(2 * (uint64_t) INT32_MAX), INT32_MAX);
    assert_true(cs_seq_wire(UINT64_MAX) > 0);
}

static void
test_ids_persist_across_reopen(void **state)
{
    fixture_t *f = *state;
    cs_store_meta_t meta;

    assert_int_equal(cs_store_meta_get(f->st, &meta), 0);
    assert_int_equal(meta.layout_version, CS_STORE_LAYOUT_VERSION);
    assert_int_equal(meta.head_seq, 0);
    assert_int_equal(meta.oldest_seq, 1);
    assert_string_equal(meta.origin, "core-agent");

    assert_int_equal(change_str(f->st, "site", "datadoghq.eu"), 1);
    assert_int_equal(change_str(f->st, "env", "prod"), 2);

    reopen(f, 0);
    assert_int_equal(cs_store_meta_get(f->st, &meta), 0);
    assert_int_equal(meta.head_seq, 2);
    assert_int_equal(meta.setting_count, 2);
    assert_int_equal(change_str(f->st, "env", "staging"), 3);

    reopen(f, CS_STORE_RDONLY);
    assert_int_equal(cs_store_meta_get(f->st, &meta), 0);
    assert_int_equal(meta.head_seq, 3);
    assert_int_equal(meta.oldest_seq, 1);
}

static void
test_epoch(void **state)
{
    fixture_t *f = *state;
    cs_store_meta_t a, b, other;
    char dir[PATH_MAX + 8], err[256];
    cs_store_t *st2;
    uint8_t zero[16] = { 0 };

    assert_int_equal(cs_store_meta_get(f->st, &a), 0);
    assert_memory_not_equal(a.epoch, zero, sizeof(zero));
    change_str(f->st, "site", "x");

    reopen(f, CS_STORE_CREATE);
    assert_int_equal(cs_store_meta_get(f->st, &b), 0);
    assert_memory_equal(a.epoch, b.epoch, sizeof(a.epoch));

    snprintf(dir, sizeof(dir), "%s2", f->dir);
    assert_int_equal(cs_store_open(&st2, dir, CS_STORE_CREATE, err,
        sizeof(err)), 0);
    assert_int_equal(cs_store_meta_get(st2, &other), 0);
    assert_memory_not_equal(a.epoch, other.epoch, sizeof(a.epoch));
    cs_store_close(st2);
}

/* Rewrite meta "layout" behind the store's back. */
static void
set_layout(const char *dir, uint32_t layout)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = { 6, "layout" }, v = { 4, &layout };

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void
test_layout_mismatch_refused(void **state)
{
    fixture_t *f = *state;
    cs_store_t *st;
    char err[256];

    cs_store_close(f->st);
    f->st = NULL;
    set_layout(f->dir, 99);

    err[0] = '\0';
    assert_int_equal(cs_store_open(&st, f->dir, CS_STORE_CREATE, err,
        sizeof(err)), -EPROTO);
    assert_null(st);
    assert_non_null(strstr(err, "layout version 99"));

    err[0] = '\0';
    assert_int_equal(cs_store_open(&st, f->dir, CS_STORE_RDONLY, err,
        sizeof(err)), -EPROTO);
    assert_non_null(strstr(err, "layout version 99"));

    set_layout(f->dir, CS_STORE_LAYOUT_VERSION);
    reopen(f, CS_STORE_RDONLY);
}

/* An LMDB environment of someone else's is refused, and left as it was. */
static void
test_foreign_environment_refused(void **state)
{
    fixture_t *f = *state;
    char dir[PATH_MAX + 16], err[256];
    cs_store_t *st;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_stat stat;

    snprintf(dir, sizeof(dir), "%s-foreign", f->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "other", MDB_CREATE, &dbi), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);

    err[0] = '\0';
    assert_int_equal(cs_store_open(&st, dir, CS_STORE_CREATE, err,
        sizeof(err)), -EPROTO);
    assert_non_null(strstr(err, "not a configstream store"));
    assert_int_equal(cs_store_open(&st, dir, CS_STORE_RDONLY, err,
        sizeof(err)), -ENOENT);

    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    assert_int_equal(mdb_stat(txn, dbi, &stat), 0);
    assert_int_equal(stat.ms_entries, 1);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

static void
test_rdonly_missing_store(void **state)
{
    fixture_t *f = *state;
    char dir[PATH_MAX + 16], err[256];
    cs_store_t *st;

    snprintf(dir, sizeof(dir), "%s/nowhere", f->dir);
    err[0] = '\0';
    assert_int_equal(cs_store_open(&st, dir, CS_STORE_RDONLY, err,
        sizeof(err)), -ENOENT);
    assert_null(st);
    assert_non_null(strstr(err, dir));
    assert_null(strchr(err, '\n'));
    assert_int_equal(access(dir, F_OK), -1);

    /* the writer without CREATE does not make one either */
    assert_int_equal(cs_store_open(&st, dir, 0, err, sizeof(err)), -ENOENT);
    assert_int_equal(access(dir, F_OK), -1);
}

static void
test_rdonly_cannot_write(void **state)
{
    fixture_t *f = *state;
    cs_store_txn_t *txn;

    reopen(f, CS_STORE_RDONLY);
    assert_int_equal(cs_store_txn_begin(f->st, &txn), -EROFS);
    assert_null(txn);
}

typedef struct {
    uint64_t seqs[64];
    Datadog__Model__V1__ConfigEvent *ev[64];
    size_t n;
} events_t;

static int
collect_event(uint64_t seq, const uint8_t *bytes, size_t len, void *arg)
{
    events_t *e = arg;

    assert_true(e->n < 64);
    e->seqs[e->n] = seq;
    e->ev[e->n] = datadog__model__v1__config_event__unpack(NULL, len, bytes);
    assert_non_null(e->ev[e->n]);
    e->n++;

    return 0;
}

static void
events_free(events_t *e)
{
    size_t i;

    for (i = 0; i < e->n; i++) {
        datadog__model__v1__config_event__free_unpacked(e->ev[i], NULL);
    }
    e->n = 0;
}

static void
test_consecutive_ids_one_per_change(void **state)
{
    fixture_t *f = *state;
    Datadog__Model__V1__ConfigUpdate *up;
    cs_store_txn_t *txn;
    cs_value_t *v;
    uint64_t seq, head;
    events_t e = { .n = 0 };
    int i;

    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_set_origin(txn, "datadog.yaml"), 0);
    for (i = 0; i < 5; i++) {
        v = cs_value_number(i * 1.5);
        assert_int_equal(cs_store_setting_change(txn, "a.b", "cli", v, "",
            &seq), 0);
        assert_int_equal(seq, (uint64_t) i + 1);
        cs_value_free(v);
    }
    assert_int_equal(cs_store_txn_commit(txn, &head), 0);
    assert_int_equal(head, 5);

    /* a transaction without changes assigns nothing */
    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_txn_commit(txn, &head), 0);
    assert_int_equal(head, 5);

    assert_int_equal(cs_store_changelog_read(f->st, 1, UINT64_MAX,
        collect_event, &e), 0);
    assert_int_equal(e.n, 5);
    for (i = 0; i < 5; i++) {
        assert_int_equal(e.seqs[i], (uint64_t) i + 1);
        assert_int_equal(e.ev[i]->event_case,
            DATADOG__MODEL__V1__CONFIG_EVENT__EVENT_UPDATE);
        up = e.ev[i]->update;
        assert_string_equal(up->origin, "datadog.yaml");
        assert_int_equal(up->sequence_id, i + 1);
        assert_string_equal(up->setting->key, "a.b");
        assert_string_equal(up->setting->source, "cli");
        assert_string_equal(up->setting->unset_source, "");
        assert_true(up->setting->value->number_value == i * 1.5);
    }
    events_free(&e);

    /* a bounded window */
    assert_int_equal(cs_store_changelog_read(f->st, 2, 3, collect_event,
        &e), 0);
    assert_int_equal(e.n, 2);
    assert_int_equal(e.seqs[0], 2);
    assert_int_equal(e.seqs[1], 3);
    events_free(&e);

    /* past the head: nothing, no error */
    assert_int_equal(cs_store_changelog_read(f->st, 6, UINT64_MAX,
        collect_event, &e), 0);
    assert_int_equal(e.n, 0);
}

static void
test_unset_to_absent(void **state)
{
    fixture_t *f = *state;
    Datadog__Model__V1__ConfigSetting *cs;
    cs_store_setting_t s;
    cs_store_meta_t meta;
    cs_store_txn_t *txn;
    cs_value_t *v;
    char src[64];
    events_t e = { .n = 0 };
    uint64_t seq;

    change_str(f->st, "api_key", "abc");
    change_str(f->st, "site", "datadoghq.com");

    /* falling back to a lower layer keeps the record */
    v = cs_value_string("datadoghq.eu");
    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_setting_change(txn, "site", "default", v,
        "file", &seq), 0);
    assert_int_equal(cs_store_setting_change(txn, "api_key", "file", NULL,
        "file", &seq), 0);
    assert_int_equal(seq, 4);
    assert_int_equal(cs_store_txn_commit(txn, NULL), 0);
    cs_value_free(v);

    assert_int_equal(cs_store_setting_get(f->st, "api_key", &s, src,
        sizeof(src)), -ENOENT);
    assert_int_equal(cs_store_setting_get(f->st, "site", &s, src,
        sizeof(src)), 0);
    assert_string_equal(s.source, "default");
    assert_int_equal(s.seq, 3);
    assert_string_equal(s.value->u.str.ptr, "datadoghq.eu");
    cs_value_free(s.value);

    assert_int_equal(cs_store_meta_get(f->st, &meta), 0);
    assert_int_equal(meta.setting_count, 1);

    assert_int_equal(cs_store_changelog_read(f->st, 3, 4, collect_event,
        &e), 0);
    assert_int_equal(e.n, 2);
    cs = e.ev[0]->update->setting;
    assert_string_equal(cs->source, "default");
    assert_string_equal(cs->unset_source, "file");
    assert_string_equal(cs->value->string_value, "datadoghq.eu");
    cs = e.ev[1]->update->setting;
    assert_string_equal(cs->key, "api_key");
    assert_string_equal(cs->source, "");
    assert_string_equal(cs->unset_source, "file");
    assert_null(cs->value);
    events_free(&e);
}

static void
test_snapshot_decodes_to_settings(void **state)
{
    fixture_t *f = *state;
    Datadog__Model__V1__ConfigEvent *ev;
    Datadog__Model__V1__ConfigSnapshot *sn;
    cs_store_txn_t *txn;
    cs_value_t *list, *map;
    uint64_t head;
    const char *keys[] = { "zeta", "alpha", "logs_config.enabled", "mid" };
    size_t i;

    /* an empty store: origin, no id, no settings, still a snapshot */
    ev = snapshot(f->st, &head);
    assert_int_equal(head, 0);
    assert_string_equal(ev->snapshot->origin, "core-agent");
    assert_int_equal(ev->snapshot->sequence_id, 0);
    assert_int_equal(ev->snapshot->n_settings, 0);
    datadog__model__v1__config_event__free_unpacked(ev, NULL);

    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_set_origin(txn, "datadog.yaml"), 0);
    for (i = 0; i < 4; i++) {
        list = cs_value_list();
        assert_int_equal(cs_value_list_append(list, cs_value_string(keys[i])),
            0);
        assert_int_equal(cs_value_list_append(list, cs_value_number(i)), 0);
        assert_int_equal(cs_store_setting_change(txn, keys[i], "file", list,
            "", NULL), 0);
        cs_value_free(list);
    }
    map = cs_value_map();
    assert_int_equal(cs_value_map_set(map, "https://a.example",
        cs_value_bool(1)), 0);
    assert_int_equal(cs_store_setting_change(txn, "additional_endpoints",
        "environment-variable", map, "", NULL), 0);
    cs_value_free(map);
    /* a key changed twice in one transaction is one setting */
    assert_int_equal(cs_store_setting_change(txn, "mid", "cli", NULL, "cli",
        NULL), 0);
    assert_int_equal(cs_store_txn_commit(txn, NULL), 0);

    ev = snapshot(f->st, &head);
    sn = ev->snapshot;
    assert_int_equal(head, 6);
    assert_string_equal(sn->origin, "datadog.yaml");
    assert_int_equal(sn->sequence_id, 6);
    assert_int_equal(sn->n_settings, 4);
    assert_string_equal(sn->settings[0]->key, "additional_endpoints");
    assert_string_equal(sn->settings[0]->source, "environment-variable");
    assert_int_equal(sn->settings[0]->value->kind_case,
        GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE);
    assert_string_equal(sn->settings[0]->value->struct_value->fields[0]->key,
        "https://a.example");
    assert_string_equal(sn->settings[1]->key, "alpha");
    assert_string_equal(sn->settings[2]->key, "logs_config.enabled");
    assert_string_equal(sn->settings[3]->key, "zeta");
    for (i = 1; i < 4; i++) {
        assert_string_equal(sn->settings[i]->source, "file");
        assert_string_equal(sn->settings[i]->unset_source, "");
        assert_int_equal(sn->settings[i]->value->list_value->n_values, 2);
        assert_string_equal(
            sn->settings[i]->value->list_value->values[0]->string_value,
            sn->settings[i]->key);
    }
    assert_true(sn->settings[3]->value->list_value->values[1]->number_value
        == 0);
    datadog__model__v1__config_event__free_unpacked(ev, NULL);
}

static void
test_changelog_trim_and_range(void **state)
{
    fixture_t *f = *state;
    cs_store_meta_t meta;
    cs_store_txn_t *txn;
    events_t e = { .n = 0 };
    char key[16];
    int i;

    for (i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        change_str(f->st, key, "v");
    }

    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_changelog_trim(txn, 4), 0);
    assert_int_equal(cs_store_txn_commit(txn, NULL), 0);

    assert_int_equal(cs_store_meta_get(f->st, &meta), 0);
    assert_int_equal(meta.head_seq, 10);
    assert_int_equal(meta.oldest_seq, 7);
    assert_int_equal(meta.setting_count, 10);

    assert_int_equal(cs_store_changelog_read(f->st, 6, UINT64_MAX,
        collect_event, &e), -ERANGE);
    assert_int_equal(e.n, 0);
    assert_int_equal(cs_store_changelog_read(f->st, 7, UINT64_MAX,
        collect_event, &e), 0);
    assert_int_equal(e.n, 4);
    assert_int_equal(e.seqs[0], 7);
    assert_int_equal(e.seqs[3], 10);
    events_free(&e);

    /* trimming to what is there already removes nothing */
    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_changelog_trim(txn, 4), 0);
    assert_int_equal(cs_store_txn_commit(txn, NULL), 0);
    assert_int_equal(cs_store_meta_get(f->st, &meta), 0);
    assert_int_equal(meta.oldest_seq, 7);

    /* an empty changelog: oldest is head + 1, ids carry on */
    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_changelog_trim(txn, 0), 0);
    assert_int_equal(cs_store_txn_commit(txn, NULL), 0);
    assert_int_equal(cs_store_meta_get(f->st, &meta), 0);
    assert_int_equal(meta.oldest_seq, 11);
    assert_int_equal(cs_store_changelog_read(f->st, 10, UINT64_MAX,
        collect_event, &e), -ERANGE);
    assert_int_equal(cs_store_changelog_read(f->st, 11, UINT64_MAX,
        collect_event, &e), 0);
    assert_int_equal(e.n, 0);

    assert_int_equal(change_str(f->st, "k0", "w"), 11);
    assert_int_equal(cs_store_changelog_read(f->st, 11, UINT64_MAX,
        collect_event, &e), 0);
    assert_int_equal(e.n, 1);
    events_free(&e);
}

static int
count_layer(const char *source, const char *key, const cs_value_t *value,
    void *arg)
{
    (*(int *) arg)++;
    return 0;
}

static void
test_layers(void **state)
{
    fixture_t *f = *state;
    cs_store_txn_t *txn;
    cs_value_t *v, *map;
    int n = 0;

    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    v = cs_value_string("debug");
    assert_int_equal(cs_store_layer_put(txn, "cli", "log_level", v), 0);
    assert_int_equal(cs_store_layer_put(txn, "file", "log_level", v), 0);
    cs_value_free(v);
    v = cs_value_bool(0);
    assert_int_equal(cs_store_layer_put(txn, "cli", "logs_enabled", v), 0);
    assert_int_equal(cs_store_layer_put(txn, "clix", "other", v), 0);
    cs_value_free(v);
    assert_int_equal(cs_store_txn_commit(txn, NULL), 0);

    reopen(f, 0);
    assert_int_equal(cs_store_layer_load(f->st, "cli", &map), 0);
    assert_int_equal(map->u.map.n, 2);
    assert_string_equal(cs_value_map_get(map, "log_level")->u.str.ptr,
        "debug");
    assert_int_equal(cs_value_map_get(map, "logs_enabled")->kind,
        CS_VAL_BOOL);
    assert_null(cs_value_map_get(map, "other"));
    cs_value_free(map);

    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_layer_del(txn, "cli", "log_level"), 0);
    assert_int_equal(cs_store_layer_del(txn, "cli", "absent"), -ENOENT);
    assert_int_equal(cs_store_txn_commit(txn, NULL), 0);

    assert_int_equal(cs_store_layer_load(f->st, "cli", &map), 0);
    assert_int_equal(map->u.map.n, 1);
    cs_value_free(map);
    assert_int_equal(cs_store_layers_foreach(f->st, count_layer, &n), 0);
    assert_int_equal(n, 3);
}

/*
 * The backstop for bad input: an oversized key is -ENAMETOOLONG, text that
 * is not UTF-8 (in the key, a string, a list item or a map key at any
 * depth) is -EILSEQ, and neither spoils the transaction.
 */
static void
test_bad_keys_and_text_refused(void **state)
{
    fixture_t *f = *state;
    char key[CS_KEY_MAX + 2];
    cs_store_txn_t *txn;
    cs_value_t *ok, *bad, *inner;
    cs_store_meta_t meta;
    uint64_t seq;

    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    ok = cs_value_string("fine");

    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_layer_put(txn, "cli", key, ok), -ENAMETOOLONG);
    assert_int_equal(cs_store_setting_change(txn, key, "cli", ok, NULL,
        &seq), -ENAMETOOLONG);
    key[CS_KEY_MAX] = '\0';
    assert_int_equal(cs_store_layer_put(txn, "cli", key, ok), 0);
    assert_int_equal(cs_store_setting_change(txn, key, "cli", ok, NULL,
        &seq), 0);

    assert_int_equal(cs_store_layer_put(txn, "cli", "bad\xffkey", ok),
        -EILSEQ);
    assert_int_equal(cs_store_setting_change(txn, "bad\xffkey", "cli", ok,
        NULL, &seq), -EILSEQ);

    bad = cs_value_string("host\xffname");
    assert_int_equal(cs_store_layer_put(txn, "cli", "hostname", bad),
        -EILSEQ);
    assert_int_equal(cs_store_setting_change(txn, "hostname", "cli", bad,
        NULL, &seq), -EILSEQ);
    cs_value_free(bad);

    bad = cs_value_map();
    inner = cs_value_list();
    assert_int_equal(cs_value_list_append(inner,
        cs_value_string("\xed\xa0\x80")), 0);
    assert_int_equal(cs_value_map_set(bad, "l", inner), 0);
    assert_int_equal(cs_store_layer_put(txn, "cli", "tags", bad), -EILSEQ);
    cs_value_free(bad);

    bad = cs_value_map();
    assert_int_equal(cs_value_map_set(bad, "k\xc0\xaf", cs_value_null()), 0);
    assert_int_equal(cs_store_setting_change(txn, "m", "cli", bad, NULL,
        &seq), -EILSEQ);
    cs_value_free(bad);

    assert_int_equal(cs_store_txn_commit(txn, NULL), 0);
    cs_value_free(ok);

    assert_int_equal(cs_store_meta_get(f->st, &meta), 0);
    assert_int_equal(meta.head_seq, 1);
    assert_int_equal(meta.setting_count, 1);
}

/*
 * A reader never sees an open write transaction: checked in-process and
 * from a separate read-only process.
 */
static int
child_head(const char *dir)
{
    cs_store_meta_t meta;
    cs_store_t *st;
    pid_t pid;
    int status;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (cs_store_open(&st, dir, CS_STORE_RDONLY, NULL, 0) != 0
            || cs_store_meta_get(st, &meta) != 0)
        {
            _exit(255);
        }
        cs_store_close(st);
        _exit((int) meta.head_seq);
    }

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));

    return WEXITSTATUS(status);
}

static void
test_readers_see_committed_only(void **state)
{
    fixture_t *f = *state;
    Datadog__Model__V1__ConfigEvent *ev;
    cs_store_setting_t s;
    cs_store_meta_t meta;
    cs_store_txn_t *txn;
    cs_value_t *v;
    char src[64];
    uint64_t head;

    change_str(f->st, "site", "one");

    v = cs_value_string("two");
    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_setting_change(txn, "site", "cli", v, "",
        NULL), 0);
    assert_int_equal(cs_store_setting_change(txn, "env", "cli", v, "",
        NULL), 0);
    cs_value_free(v);

    assert_int_equal(cs_store_meta_get(f->st, &meta), 0);
    assert_int_equal(meta.head_seq, 1);
    assert_int_equal(cs_store_setting_get(f->st, "site", &s, src,
        sizeof(src)), 0);
    assert_string_equal(s.value->u.str.ptr, "one");
    cs_value_free(s.value);
    ev = snapshot(f->st, &head);
    assert_int_equal(head, 1);
    assert_int_equal(ev->snapshot->n_settings, 1);
    datadog__model__v1__config_event__free_unpacked(ev, NULL);
    assert_int_equal(child_head(f->dir), 1);

    assert_int_equal(cs_store_txn_commit(txn, NULL), 0);
    assert_int_equal(child_head(f->dir), 3);
    ev = snapshot(f->st, &head);
    assert_int_equal(head, 3);
    assert_int_equal(ev->snapshot->n_settings, 2);
    datadog__model__v1__config_event__free_unpacked(ev, NULL);

    /* an aborted transaction leaves nothing behind */
    v = cs_value_string("three");
    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_setting_change(txn, "site", "cli", v, "",
        NULL), 0);
    cs_store_txn_abort(txn);
    cs_value_free(v);
    assert_int_equal(child_head(f->dir), 3);
    assert_int_equal(change_str(f->st, "x", "y"), 4);
}

/* One transaction writing n settings and layer values of size bytes. */
static int
write_batch(cs_store_t *st, int batch, int n, size_t size)
{
    cs_store_txn_t *txn;
    cs_value_t *v;
    char key[32], *big;
    int i, rc;

    big = malloc(size + 1);
    assert_non_null(big);
    memset(big, 'a' + batch % 26, size);
    big[size] = '\0';
    v = cs_value_string(big);
    free(big);

    rc = cs_store_txn_begin(st, &txn);
    assert_int_equal(rc, 0);
    for (i = 0; i < n && rc == 0; i++) {
        snprintf(key, sizeof(key), "key.%04d.%03d", batch, i);
        rc = cs_store_setting_change(txn, key, "file", v, "", NULL);
        if (rc == 0) {
            rc = cs_store_layer_put(txn, "file", key, v);
        }
    }
    if (rc == 0) {
        rc = cs_store_txn_commit(txn, NULL);
    } else {
        cs_store_txn_abort(txn);
    }
    cs_value_free(v);

    return rc;
}

/*
 * A 64 KiB map and a few megabytes of writes: the writer grows the map,
 * and a reader opened on the small map remaps.
 */
static void
test_map_growth(void **state)
{
    fixture_t *f = *state;
    Datadog__Model__V1__ConfigEvent *ev;
    cs_store_meta_t meta;
    cs_store_t *reader;
    char err[256];
    uint64_t head;
    int i, rc, tries;

    cs_store_close(f->st);
    f->st = NULL;
    *strrchr(f->dir, '/') = '\0';
    strcat(f->dir, "/small");
    cs_store_set_initial_mapsize(64 << 10);
    assert_int_equal(cs_store_open(&f->st, f->dir, CS_STORE_CREATE, err,
        sizeof(err)), 0);
    assert_int_equal(cs_store_open(&reader, f->dir, CS_STORE_RDONLY, err,
        sizeof(err)), 0);

    /*
     * A first transaction bigger than the whole map really fills it:
     * -ENOSPC, and the same transaction fits once retried enough.
     */
    rc = -ENOSPC;
    for (tries = 0; tries < 16 && rc == -ENOSPC; tries++) {
        rc = write_batch(f->st, 0, 100, 4000);
    }
    assert_int_equal(rc, 0);
    assert_true(tries > 1);

    /* small transactions never fail: the map grows ahead of them */
    for (i = 1; i <= 1000; i++) {
        assert_int_equal(write_batch(f->st, i, 1, 3000), 0);
    }

    assert_int_equal(cs_store_meta_get(reader, &meta), 0);
    assert_int_equal(meta.head_seq, 1100);
    assert_int_equal(meta.setting_count, 1100);
    ev = snapshot(reader, &head);
    assert_int_equal(head, 1100);
    assert_int_equal(ev->snapshot->n_settings, 1100);
    datadog__model__v1__config_event__free_unpacked(ev, NULL);
    cs_store_close(reader);
}

static int
die_inside(const cs_store_setting_t *s, void *arg)
{
    _exit(0);
}

/* A reader killed inside its transaction leaves a slot to reclaim. */
static void
test_reader_check_reclaims_dead_reader(void **state)
{
    fixture_t *f = *state;
    cs_store_t *st;
    int dead = -1, status;
    pid_t pid;

    change_str(f->st, "a", "1");

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (cs_store_open(&st, f->dir, CS_STORE_RDONLY, NULL, 0) != 0) {
            _exit(1);
        }
        cs_store_settings_foreach(st, die_inside, NULL);
        _exit(2);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    assert_int_equal(cs_store_reader_check(f->st, &dead), 0);
    assert_int_equal(dead, 1);
    assert_int_equal(cs_store_reader_check(f->st, &dead), 0);
    assert_int_equal(dead, 0);
    assert_int_equal(change_str(f->st, "a", "2"), 2);
}

typedef struct {
    cs_store_t *st;
    volatile int *stop;
    int rounds;
    int failures;
} reader_arg_t;

static void *
reader_thread(void *p)
{
    reader_arg_t *a = p;
    Datadog__Model__V1__ConfigEvent *ev;
    uint64_t head;
    uint8_t *buf;
    size_t len;

    while (!*a->stop) {
        if (cs_store_snapshot_encode(a->st, &head, &buf, &len) != 0) {
            a->failures++;
            continue;
        }
        ev = datadog__model__v1__config_event__unpack(NULL, len, buf);
        free(buf);
        if (ev == NULL || ev->snapshot->n_settings != head) {
            a->failures++;
        }
        if (ev != NULL) {
            datadog__model__v1__config_event__free_unpacked(ev, NULL);
        }
        a->rounds++;
    }

    return NULL;
}

/*
 * Threads snapshot through the writer's handle and through a read-only
 * one while the writer grows a tiny map many times over; every snapshot
 * is whole (one new key per id, so settings == head).
 */
static void
test_threads_read_while_map_grows(void **state)
{
    fixture_t *f = *state;
    reader_arg_t args[4];
    pthread_t threads[4];
    volatile int stop = 0;
    cs_store_t *reader;
    char err[256];
    int i;

    cs_store_close(f->st);
    f->st = NULL;
    *strrchr(f->dir, '/') = '\0';
    strcat(f->dir, "/threads");
    cs_store_set_initial_mapsize(64 << 10);
    assert_int_equal(cs_store_open(&f->st, f->dir, CS_STORE_CREATE, err,
        sizeof(err)), 0);
    assert_int_equal(cs_store_open(&reader, f->dir, CS_STORE_RDONLY, err,
        sizeof(err)), 0);

    for (i = 0; i < 4; i++) {
        args[i] = (reader_arg_t) { i < 2 ? f->st : reader, &stop, 0, 0 };
        assert_int_equal(pthread_create(&threads[i], NULL, reader_thread,
            &args[i]), 0);
    }

    for (i = 1; i <= 300; i++) {
        assert_int_equal(write_batch(f->st, i, 1, 2000), 0);
    }

    stop = 1;
    for (i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(args[i].failures, 0);
        assert_true(args[i].rounds > 0);
    }
    cs_store_close(reader);
}

static void
test_map_full_on_put(void **state)
{
    fixture_t *f = *state;
    cs_store_meta_t meta;
    cs_store_txn_t *txn;
    cs_value_t *v;
    uint64_t head;

    change_str(f->st, "a", "1");

    v = cs_value_string("2");
    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_setting_change(txn, "b", "file", v, "", NULL),
        0);
    fail_put_after = 0;
    assert_int_equal(cs_store_setting_change(txn, "c", "file", v, "", NULL),
        -ENOSPC);
    /* the failure sticks: nothing more is written, the commit refuses */
    assert_int_equal(cs_store_layer_put(txn, "file", "c", v), -ENOSPC);
    assert_int_equal(cs_store_txn_commit(txn, &head), -ENOSPC);

    assert_int_equal(cs_store_meta_get(f->st, &meta), 0);
    assert_int_equal(meta.head_seq, 1);
    assert_int_equal(meta.setting_count, 1);

    /* the caller rebuilds the transaction and retries */
    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_setting_change(txn, "b", "file", v, "", NULL),
        0);
    assert_int_equal(cs_store_setting_change(txn, "c", "file", v, "", NULL),
        0);
    assert_int_equal(cs_store_txn_commit(txn, &head), 0);
    assert_int_equal(head, 3);
    cs_value_free(v);
}

static void
test_map_full_on_commit(void **state)
{
    fixture_t *f = *state;
    cs_store_meta_t meta;
    cs_store_txn_t *txn;
    cs_value_t *v;
    uint64_t head = 0;

    v = cs_value_string("1");
    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_setting_change(txn, "a", "file", v, "", NULL),
        0);
    fail_commit = 1;
    assert_int_equal(cs_store_txn_commit(txn, &head), -ENOSPC);
    assert_int_equal(head, 0);

    assert_int_equal(cs_store_meta_get(f->st, &meta), 0);
    assert_int_equal(meta.head_seq, 0);
    assert_int_equal(meta.setting_count, 0);

    assert_int_equal(cs_store_txn_begin(f->st, &txn), 0);
    assert_int_equal(cs_store_setting_change(txn, "a", "file", v, "", NULL),
        0);
    assert_int_equal(cs_store_txn_commit(txn, &head), 0);
    assert_int_equal(head, 1);
    cs_value_free(v);
}

typedef struct {
    size_t n;
    uint64_t last;
} seen_t;

static int
check_setting(const cs_store_setting_t *s, void *arg)
{
    seen_t *seen = arg;

    seen->n++;
    assert_string_equal(s->source, "file");
    assert_non_null(s->value);
    return 0;
}

static int
check_change(uint64_t seq, const cs_store_setting_t *s, void *arg)
{
    seen_t *seen = arg;

    assert_int_equal(seq, s->seq);
    assert_true(seq > seen->last);
    seen->last = seq;
    seen->n++;
    return seen->n == 2 ? 42 : 0;
}

static void
test_foreach(void **state)
{
    fixture_t *f = *state;
    seen_t seen = { 0, 0 };

    change_str(f->st, "a", "1");
    change_str(f->st, "b", "2");
    change_str(f->st, "c", "3");

    assert_int_equal(cs_store_settings_foreach(f->st, check_setting, &seen),
        0);
    assert_int_equal(seen.n, 3);

    /* a non-zero return stops the walk and is returned */
    seen = (seen_t) { 0, 1 };
    assert_int_equal(cs_store_changes_foreach(f->st, 2, check_change,
        &seen), 42);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.last, 3);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seq_wire),
        cmocka_unit_test_setup_teardown(test_ids_persist_across_reopen,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_mismatch_refused,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_environment_refused,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_rdonly_missing_store, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_rdonly_cannot_write, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_consecutive_ids_one_per_change,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_unset_to_absent, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_decodes_to_settings,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_changelog_trim_and_range,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_keys_and_text_refused,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_readers_see_committed_only,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_check_reclaims_dead_reader,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_read_while_map_grows,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full_on_put, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_map_full_on_commit, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
    };

    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
