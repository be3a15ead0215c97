/*
 * The resolution engine (see engine.h). The resolution is kept as an array
 * sorted by key, so the diff against the next one is a merge walk in key
 * order, which is also the order changes get their ids.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* Each retry after a full map runs with the map doubled. */
#define ENGINE_COMMIT_TRIES 8

typedef struct {
    char *key;
    int src;                    /* cs_source_t, or -1: unknown name */
    cs_value_t *value;          /* owned */
    uint64_t seq;
} engine_entry_t;

typedef struct {
    engine_entry_t *e;
    size_t n, cap;
} engine_res_t;

struct cs_engine {
    cs_store_t *st;
    uint64_t retention;
    cs_value_t *layers[CS_SRC_COUNT];    /* flat maps, never NULL */
    engine_res_t res;
    char origin[CS_STORE_ORIGIN_MAX];
    uint64_t head;
};

static void
engine_res_free(engine_res_t *r)
{
    size_t i;

    for (i = 0; i < r->n; i++) {
        free(r->e[i].key);
        cs_value_free(r->e[i].value);
    }
    free(r->e);
    memset(r, 0, sizeof(*r));
}

/* Append an entry; key and value are copied. */
static int
engine_res_add(engine_res_t *r, const char *key, int src,
    const cs_value_t *value, uint64_t seq)
{
    engine_entry_t *e;
    size_t cap;

    if (r->n == r->cap) {
        cap = r->cap ? r->cap * 2 : 256;
        e = realloc(r->e, cap * sizeof(*e));
        if (e == NULL) {
            return -ENOMEM;
        }
        r->e = e;
        r->cap = cap;
    }

    e = &r->e[r->n];
    e->key = strdup(key);
    e->value = cs_value_clone(value);
    if (e->key == NULL || e->value == NULL) {
        free(e->key);
        cs_value_free(e->value);
        return -ENOMEM;
    }
    e->src = src;
    e->seq = seq;
    r->n++;

    return 0;
}

static int
engine_entry_cmp(const void *a, const void *b)
{
    const engine_entry_t *x = a, *y = b;

    return strcmp(x->key, y->key);
}

static void
engine_res_sort(engine_res_t *r)
{
    if (r->n > 1) {
        qsort(r->e, r->n, sizeof(*r->e), engine_entry_cmp);
    }
}

static long
engine_res_find(const engine_res_t *r, const char *key)
{
    size_t lo = 0, hi = r->n, mid;
    int c;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        c = strcmp(r->e[mid].key, key);
        if (c == 0) {
            return (long) mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }

    return -1;
}

static int
engine_source_index(const char *name)
{
    cs_source_t src;

    if (cs_source_parse(name, &src) != 0) {
        return -1;
    }

    return (int) src;
}

static int
engine_settings_load_cb(const cs_store_setting_t *s, void *arg)
{
    engine_res_t *r = arg;

    if (s->value == NULL) {
        return 0;
    }

    return engine_res_add(r, s->key, engine_source_index(s->source),
        s->value, s->seq);
}

int
cs_engine_open(cs_engine_t **engp, cs_store_t *st, uint64_t retention)
{
    cs_store_meta_t meta;
    cs_engine_t *eng;
    int i, rc;

    eng = calloc(1, sizeof(*eng));
    if (eng == NULL) {
        return -ENOMEM;
    }
    eng->st = st;
    eng->retention = retention;

    rc = cs_store_meta_get(st, &meta);
    if (rc != 0) {
        goto out_free;
    }
    eng->head = meta.head_seq;
    snprintf(eng->origin, sizeof(eng->origin), "%s", meta.origin);

    for (i = 0; i < CS_SRC_COUNT; i++) {
        rc = cs_store_layer_load(st, cs_source_name(i), &eng->layers[i]);
        if (rc == -ENOENT) {
            eng->layers[i] = NULL;
            rc = 0;
        }
        if (rc != 0) {
            goto out_free;
        }
        if (eng->layers[i] == NULL) {
            eng->layers[i] = cs_value_map();
            if (eng->layers[i] == NULL) {
                rc = -ENOMEM;
                goto out_free;
            }
        }
    }

    rc = cs_store_settings_foreach(st, engine_settings_load_cb, &eng->res);
    if (rc != 0) {
        goto out_free;
    }
    engine_res_sort(&eng->res);

    *engp = eng;

    return 0;

out_free:
    cs_engine_close(eng);

    return rc < 0 ? rc : -EIO;
}

void
cs_engine_close(cs_engine_t *eng)
{
    int i;

    if (eng == NULL) {
        return;
    }

    for (i = 0; i < CS_SRC_COUNT; i++) {
        cs_value_free(eng->layers[i]);
    }
    engine_res_free(&eng->res);
    free(eng);
}

/* Resolve layers into r, sorted by key (cs_resolve decides precedence). */
static int
engine_resolve(cs_value_t *const layers[CS_SRC_COUNT], engine_res_t *r)
{
    cs_resolution_t *res;
    size_t i;
    int rc;

    rc = cs_resolve(layers, &res);
    if (rc != 0) {
        return rc;
    }

    for (i = 0; i < res->n && rc == 0; i++) {
        rc = engine_res_add(r, res->items[i].key, (int) res->items[i].source,
            res->items[i].value, 0);
    }
    cs_resolution_free(res);
    engine_res_sort(r);

    return rc;
}

/* Write the differences between two versions of one layer. */
static int
engine_layer_write(cs_store_txn_t *txn, cs_source_t src,
    const cs_value_t *old, const cs_value_t *new, size_t *writes)
{
    const cs_value_t *ov;
    size_t i;
    int rc;

    for (i = 0; i < new->u.map.n; i++) {
        ov = cs_value_map_get(old, new->u.map.keys[i]);
        if (ov != NULL && cs_value_equal(ov, new->u.map.vals[i])) {
            continue;
        }
        if (txn == NULL) {
            (*writes)++;
            continue;
        }
        rc = cs_store_layer_put(txn, cs_source_name(src),
            new->u.map.keys[i], new->u.map.vals[i]);
        if (rc != 0) {
            return rc;
        }
    }

    for (i = 0; i < old->u.map.n; i++) {
        if (cs_value_map_get(new, old->u.map.keys[i]) != NULL) {
            continue;
        }
        if (txn == NULL) {
            (*writes)++;
            continue;
        }
        rc = cs_store_layer_del(txn, cs_source_name(src),
            old->u.map.keys[i]);
        if (rc != 0) {
            return rc;
        }
    }

    return 0;
}

/*
 * Walk the old and new resolutions in key order. Without a transaction
 * only count the changes; with one, record each and stamp its id into
 * the new resolution.
 */
static int
engine_diff(cs_engine_t *eng, cs_store_txn_t *txn,
    cs_value_t *const layers[CS_SRC_COUNT], engine_res_t *new,
    size_t *changes)
{
    engine_res_t *old = &eng->res;
    engine_entry_t *o, *n;
    const char *unset;
    size_t i = 0, j = 0;
    uint64_t seq;
    int c, rc;

    *changes = 0;
    while (i < old->n || j < new->n) {
        o = i < old->n ? &old->e[i] : NULL;
        n = j < new->n ? &new->e[j] : NULL;
        c = o == NULL ? 1 : n == NULL ? -1 : strcmp(o->key, n->key);

        if (c == 0 && o->src == n->src
            && cs_value_equal(o->value, n->value))
        {
            n->seq = o->seq;
            i++;
            j++;
            continue;
        }

        /* The previous winner's layer gave the key up: an unset. */
        unset = "";
        if (c <= 0 && o->src >= 0
            && cs_value_map_get(layers[o->src], o->key) == NULL)
        {
            unset = cs_source_name(o->src);
        }

        (*changes)++;
        if (txn != NULL) {
            if (c < 0) {
                rc = cs_store_setting_change(txn, o->key, "", NULL, unset,
                    &seq);
            } else {
                rc = cs_store_setting_change(txn, n->key,
                    cs_source_name(n->src), n->value, unset, &seq);
                n->seq = seq;
            }
            if (rc != 0) {
                return rc;
            }
        }

        if (c <= 0) {
            i++;
        }
        if (c >= 0) {
            j++;
        }
    }

    return 0;
}

static int
engine_commit(cs_engine_t *eng, cs_value_t *const layers[CS_SRC_COUNT],
    engine_res_t *new, const char *origin, uint64_t *head)
{
    cs_store_txn_t *txn;
    size_t changes;
    int s, rc;

    rc = cs_store_txn_begin(eng->st, &txn);
    if (rc != 0) {
        return rc;
    }

    for (s = 0; s < CS_SRC_COUNT; s++) {
        rc = engine_layer_write(txn, s, eng->layers[s], layers[s], NULL);
        if (rc != 0) {
            goto out_abort;
        }
    }

    rc = engine_diff(eng, txn, layers, new, &changes);
    if (rc != 0) {
        goto out_abort;
    }

    if (strcmp(origin, eng->origin) != 0) {
        rc = cs_store_set_origin(txn, origin);
        if (rc != 0) {
            goto out_abort;
        }
    }

    if (changes > 0 && eng->retention > 0) {
        rc = cs_store_changelog_trim(txn, eng->retention);
        if (rc != 0) {
            goto out_abort;
        }
    }

    return cs_store_txn_commit(txn, head);

out_abort:
    cs_store_txn_abort(txn);

    return rc;
}

int
cs_engine_apply(cs_engine_t *eng, cs_value_t *layers[CS_SRC_COUNT],
    const char *origin, size_t *changesp)
{
    cs_value_t *next[CS_SRC_COUNT] = { NULL };
    engine_res_t new = { 0 };
    size_t changes = 0, writes = 0;
    uint64_t head;
    int s, rc;

    /* Take every handed-over map first, so each is freed on any path. */
    for (s = 0; s < CS_SRC_COUNT; s++) {
        next[s] = layers[s];
    }
    for (s = 0; s < CS_SRC_COUNT; s++) {
        if (next[s] != NULL && next[s]->kind != CS_VAL_MAP) {
            rc = -EINVAL;
            goto out_free;
        }
        if (next[s] == NULL) {
            next[s] = cs_value_clone(eng->layers[s]);
            if (next[s] == NULL) {
                rc = -ENOMEM;
                goto out_free;
            }
        }
    }

    rc = engine_resolve(next, &new);
    if (rc != 0) {
        goto out_free;
    }

    for (s = 0; s < CS_SRC_COUNT; s++) {
        engine_layer_write(NULL, s, eng->layers[s], next[s], &writes);
    }
    engine_diff(eng, NULL, next, &new, &changes);

    if (changes == 0 && writes == 0 && strcmp(origin, eng->origin) == 0) {
        goto out_free;
    }

    /* A transaction that filled the map grew it on abort: rebuild it. */
    rc = engine_commit(eng, next, &new, origin, &head);
    for (s = 0; rc == -ENOSPC && s < ENGINE_COMMIT_TRIES; s++) {
        rc = engine_commit(eng, next, &new, origin, &head);
    }
    if (rc != 0) {
        changes = 0;
        goto out_free;
    }

    for (s = 0; s < CS_SRC_COUNT; s++) {
        cs_value_free(eng->layers[s]);
        eng->layers[s] = next[s];
        next[s] = NULL;
    }
    engine_res_free(&eng->res);
    eng->res = new;
    memset(&new, 0, sizeof(new));
    snprintf(eng->origin, sizeof(eng->origin), "%s", origin);
    eng->head = head;

out_free:
    for (s = 0; s < CS_SRC_COUNT; s++) {
        cs_value_free(next[s]);
    }
    engine_res_free(&new);
    if (changesp != NULL) {
        *changesp = changes;
    }

    return rc;
}

/* Remove key from a map (value.h has no removal); absent is fine. */
static int
engine_map_remove(cs_value_t *map, const char *key)
{
    size_t i, n = map->u.map.n;

    for (i = 0; i < n; i++) {
        if (strcmp(map->u.map.keys[i], key) == 0) {
            break;
        }
    }
    if (i == n) {
        return 0;
    }

    free(map->u.map.keys[i]);
    cs_value_free(map->u.map.vals[i]);
    memmove(&map->u.map.keys[i], &map->u.map.keys[i + 1],
        (n - i - 1) * sizeof(*map->u.map.keys));
    memmove(&map->u.map.vals[i], &map->u.map.vals[i + 1],
        (n - i - 1) * sizeof(*map->u.map.vals));
    map->u.map.n--;

    return 0;
}

/*
 * One key of one layer changed (a runtime set or unset): only that key's
 * resolution can move, so resolve it alone instead of every setting.
 * The outcome is the one cs_engine_apply() would reach.
 */
static int
engine_key_winner(cs_engine_t *eng, cs_source_t src, const char *key,
    const cs_value_t *value, const cs_value_t **winner)
{
    const cs_value_t *v;
    int s;

    for (s = CS_SRC_COUNT - 1; s >= 0; s--) {
        v = s == (int) src ? value : cs_value_map_get(eng->layers[s], key);
        if (v != NULL) {
            *winner = v;
            return s;
        }
    }

    *winner = NULL;
    return -1;
}

static int
engine_key_commit(cs_engine_t *eng, cs_source_t src, const char *key,
    const cs_value_t *value, int changed, int wsrc, const cs_value_t *winner,
    const char *unset, uint64_t *seq, uint64_t *head)
{
    cs_store_txn_t *txn;
    int rc;

    rc = cs_store_txn_begin(eng->st, &txn);
    if (rc != 0) {
        return rc;
    }

    rc = value != NULL
         ? cs_store_layer_put(txn, cs_source_name(src), key, value)
         : cs_store_layer_del(txn, cs_source_name(src), key);
    if (rc == 0 && changed) {
        rc = cs_store_setting_change(txn, key,
            wsrc >= 0 ? cs_source_name(wsrc) : "", winner, unset, seq);
    }
    if (rc == 0 && changed && eng->retention > 0) {
        rc = cs_store_changelog_trim(txn, eng->retention);
    }
    if (rc != 0) {
        cs_store_txn_abort(txn);
        return rc;
    }

    return cs_store_txn_commit(txn, head);
}

/* Bring the in-memory resolution up to date for one committed key. */
static int
engine_res_update(engine_res_t *r, long idx, const char *key, int src,
    const cs_value_t *value, uint64_t seq)
{
    cs_value_t *v;

    if (value == NULL) {
        free(r->e[idx].key);
        cs_value_free(r->e[idx].value);
        memmove(&r->e[idx], &r->e[idx + 1],
            (r->n - (size_t) idx - 1) * sizeof(*r->e));
        r->n--;
        return 0;
    }

    if (idx < 0) {
        if (engine_res_add(r, key, src, value, seq) != 0) {
            return -ENOMEM;
        }
        engine_res_sort(r);
        return 0;
    }

    v = cs_value_clone(value);
    if (v == NULL) {
        return -ENOMEM;
    }
    cs_value_free(r->e[idx].value);
    r->e[idx].value = v;
    r->e[idx].src = src;
    r->e[idx].seq = seq;

    return 0;
}

static int
engine_layer_change(cs_engine_t *eng, cs_source_t src, const char *key,
    const cs_value_t *value, size_t *changes)
{
    const cs_value_t *old, *winner;
    const char *unset = "";
    uint64_t seq = 0, head;
    cs_value_t *v = NULL;
    int wsrc, changed, tries, rc;
    long idx;

    if ((int) src < 0 || src >= CS_SRC_COUNT) {
        return -EINVAL;
    }
    *changes = 0;

    old = cs_value_map_get(eng->layers[src], key);
    if ((value == NULL && old == NULL)
        || (value != NULL && old != NULL && cs_value_equal(old, value)))
    {
        return 0;
    }

    wsrc = engine_key_winner(eng, src, key, value, &winner);
    idx = engine_res_find(&eng->res, key);
    if (idx < 0) {
        changed = winner != NULL;
    } else {
        changed = winner == NULL || eng->res.e[idx].src != wsrc
                  || !cs_value_equal(eng->res.e[idx].value, winner);
        /* The previous winner's layer gave the key up: an unset. */
        if (value == NULL && eng->res.e[idx].src == (int) src) {
            unset = cs_source_name(src);
        }
    }

    rc = engine_key_commit(eng, src, key, value, changed, wsrc, winner,
        unset, &seq, &head);
    for (tries = 0; rc == -ENOSPC && tries < ENGINE_COMMIT_TRIES; tries++) {
        rc = engine_key_commit(eng, src, key, value, changed, wsrc, winner,
            unset, &seq, &head);
    }
    if (rc != 0) {
        return rc;
    }

    /* Committed: the memory must follow, or the next diff would lie. */
    if (changed) {
        rc = engine_res_update(&eng->res, idx, key, wsrc, winner, seq);
    }
    if (rc == 0 && value != NULL) {
        v = cs_value_clone(value);
        rc = v != NULL ? cs_value_map_set(eng->layers[src], key, v)
                       : -ENOMEM;
    } else if (rc == 0) {
        rc = engine_map_remove(eng->layers[src], key);
    }
    eng->head = head;
    *changes = changed ? 1 : 0;

    return rc;
}

int
cs_engine_layer_set(cs_engine_t *eng, cs_source_t src, const char *key,
    const cs_value_t *value, size_t *changes)
{
    if (value == NULL) {
        return -EINVAL;
    }

    return engine_layer_change(eng, src, key, value, changes);
}

int
cs_engine_layer_unset(cs_engine_t *eng, cs_source_t src, const char *key,
    size_t *changes)
{
    return engine_layer_change(eng, src, key, NULL, changes);
}

int
cs_engine_get(cs_engine_t *eng, const char *key, cs_source_t *src,
    const cs_value_t **value, uint64_t *seq)
{
    long at;

    at = engine_res_find(&eng->res, key);
    if (at < 0) {
        return -ENOENT;
    }

    *src = eng->res.e[at].src;
    *value = eng->res.e[at].value;
    *seq = eng->res.e[at].seq;

    return 0;
}

const cs_value_t *
cs_engine_layer_value(cs_engine_t *eng, cs_source_t src, const char *key)
{
    if ((int) src < 0 || src >= CS_SRC_COUNT) {
        return NULL;
    }

    return cs_value_map_get(eng->layers[src], key);
}

size_t
cs_engine_setting_count(cs_engine_t *eng)
{
    return eng->res.n;
}

uint64_t
cs_engine_head(cs_engine_t *eng)
{
    return eng->head;
}
