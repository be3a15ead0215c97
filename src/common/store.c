/*
 * The settings store on LMDB. See store.h for the layout of each named
 * database and the contract of every function.
 *
 * Concurrency. The environment is opened with MDB_NOTLS, so a read
 * transaction belongs to the caller rather than to a thread. LMDB lets a
 * process change its map size only while it has no transaction open, and
 * a process must remap when another one grew the map (MDB_MAP_RESIZED);
 * both are serialised by resize_lock: every transaction holds it shared,
 * a remap holds it exclusive. Transactions are short, so a remap waits
 * for at most one of them. The lock prefers the remap, so a thread must
 * not take it shared twice: callbacks never call back into the store.
 *
 * Map growth. The writer doubles the map in cs_store_txn_begin() while
 * the pages in use reach half of it, so one transaction may dirty up to
 * half the map. A transaction that still fills it fails with -ENOSPC;
 * aborting it doubles the map and the caller rebuilds and retries.
 */
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "datadog/model/v1/model.pb-c.h"
#include "fsutil.h"

#define STORE_MAPSIZE_DEFAULT   (64UL << 20)
#define STORE_MAPSIZE_MAX       (1UL << 40)
#define STORE_MAXREADERS        1024
#define STORE_MAXDBS            8
#define STORE_DEFAULT_ORIGIN    "core-agent"

/* A settings record: seq (8, little endian), source length (1), source. */
#define STORE_REC_HDR           9

_Static_assert(sizeof(size_t) == sizeof(uint64_t),
    "changelog keys are size_t-sized MDB_INTEGERKEY keys");

struct cs_store {
    MDB_env *env;
    MDB_dbi settings;
    MDB_dbi layers;
    MDB_dbi changelog;
    MDB_dbi meta;
    int rdonly;
    pthread_rwlock_t resize_lock;
};

struct cs_store_txn {
    cs_store_t *st;
    MDB_txn *txn;
    uint64_t head;
    int error;                  /* sticky: the first failure, or 0 */
    int map_full;
    char origin[CS_STORE_ORIGIN_MAX];
};

static size_t store_initial_mapsize = STORE_MAPSIZE_DEFAULT;

void
cs_store_set_initial_mapsize(size_t bytes)
{
    store_initial_mapsize = bytes ? bytes : STORE_MAPSIZE_DEFAULT;
}

static int
store_errno(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_MAP_FULL:
        return -ENOSPC;
    case MDB_NOTFOUND:
        return -ENOENT;
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
        return -EPROTO;
    default:
        /* LMDB passes system errors through as positive errno values */
        if (rc > 0 && rc < 4096) {
            return -rc;
        }
        return -EIO;
    }
}

static void
store_u64_put(uint8_t *p, uint64_t v)
{
    int i;

    for (i = 0; i < 8; i++) {
        p[i] = (uint8_t) (v >> (8 * i));
    }
}

static uint64_t
store_u64_get(const uint8_t *p)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++) {
        v |= (uint64_t) p[i] << (8 * i);
    }

    return v;
}

int32_t
cs_seq_wire(uint64_t seq)
{
    if (seq == 0) {
        return 0;
    }

    return (int32_t) ((seq - 1) % INT32_MAX + 1);
}

/*
 * Begin an LMDB transaction with the resize lock held shared; remap first
 * when another process grew the map.
 */
static int
store_mdb_begin(cs_store_t *st, unsigned flags, MDB_txn **txn)
{
    int rc, tries;

    for (tries = 0; tries < 8; tries++) {
        pthread_rwlock_rdlock(&st->resize_lock);

        rc = mdb_txn_begin(st->env, NULL, flags, txn);
        if (rc == MDB_SUCCESS) {
            return 0;
        }

        pthread_rwlock_unlock(&st->resize_lock);

        if (rc != MDB_MAP_RESIZED) {
            return store_errno(rc);
        }

        pthread_rwlock_wrlock(&st->resize_lock);
        rc = mdb_env_set_mapsize(st->env, 0);
        pthread_rwlock_unlock(&st->resize_lock);

        if (rc != MDB_SUCCESS) {
            return store_errno(rc);
        }
    }

    return -EAGAIN;
}

static void
store_mdb_end(cs_store_t *st, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&st->resize_lock);
}

static int
store_map_set(cs_store_t *st, size_t size)
{
    int rc;

    pthread_rwlock_wrlock(&st->resize_lock);
    rc = mdb_env_set_mapsize(st->env, size);
    pthread_rwlock_unlock(&st->resize_lock);

    return store_errno(rc);
}

/* Grow the map until the pages in use take less than half of it. */
static int
store_map_reserve(cs_store_t *st, int force)
{
    MDB_envinfo info;
    MDB_stat stat;
    size_t used, size;
    int rc;

    rc = mdb_env_info(st->env, &info);
    if (rc == MDB_SUCCESS) {
        rc = mdb_env_stat(st->env, &stat);
    }
    if (rc != MDB_SUCCESS) {
        return store_errno(rc);
    }

    used = (info.me_last_pgno + 1) * (size_t) stat.ms_psize;
    size = info.me_mapsize;
    if (force) {
        size *= 2;
    }
    while (used * 2 >= size && size < STORE_MAPSIZE_MAX) {
        size *= 2;
    }
    if (size == info.me_mapsize) {
        return 0;
    }
    if (size > STORE_MAPSIZE_MAX) {
        return -ENOSPC;
    }

    return store_map_set(st, size);
}

static int
store_meta_get(MDB_txn *txn, MDB_dbi dbi, const char *name, MDB_val *val)
{
    MDB_val key = { .mv_size = strlen(name), .mv_data = (void *) name };

    return store_errno(mdb_get(txn, dbi, &key, val));
}

static int
store_meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *v)
{
    MDB_val val;
    int rc;

    rc = store_meta_get(txn, dbi, name, &val);
    if (rc != 0) {
        return rc;
    }
    if (val.mv_size != 8) {
        return -EPROTO;
    }

    *v = store_u64_get(val.mv_data);

    return 0;
}

/* A changelog key; LMDB aligns keys to 2 bytes only. */
static uint64_t
store_seq_key(const MDB_val *k)
{
    size_t seq;

    memcpy(&seq, k->mv_data, sizeof(seq));

    return seq;
}

/* The origin recorded by the resolver, or the default. */
static void
store_origin_read(MDB_txn *txn, MDB_dbi dbi, char *buf)
{
    MDB_val val;

    if (store_meta_get(txn, dbi, "origin", &val) != 0
        || val.mv_size == 0 || val.mv_size >= CS_STORE_ORIGIN_MAX)
    {
        strcpy(buf, STORE_DEFAULT_ORIGIN);
        return;
    }

    memcpy(buf, val.mv_data, val.mv_size);
    buf[val.mv_size] = '\0';
}

/* The oldest retained changelog id, or head + 1 when it is empty. */
static int
store_oldest(MDB_txn *txn, MDB_dbi dbi, uint64_t head, uint64_t *oldest)
{
    MDB_cursor *cur;
    MDB_val key, val;
    int rc;

    rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != MDB_SUCCESS) {
        return store_errno(rc);
    }

    rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    mdb_cursor_close(cur);

    if (rc == MDB_NOTFOUND) {
        *oldest = head + 1;
        return 0;
    }
    if (rc != MDB_SUCCESS) {
        return store_errno(rc);
    }

    *oldest = store_seq_key(&key);

    return 0;
}

/*
 * Opening.
 */

/* Write a new store's meta: layout, a random epoch, an empty history. */
static int
store_meta_init(MDB_txn *txn, MDB_dbi dbi, char *err, size_t errlen)
{
    uint8_t epoch[16], buf[8];
    uint32_t layout = CS_STORE_LAYOUT_VERSION;
    MDB_val key, val;
    ssize_t n;
    int rc;

    n = getrandom(epoch, sizeof(epoch), 0);
    if (n != (ssize_t) sizeof(epoch)) {
        rc = n < 0 ? -errno : -EIO;
        snprintf(err, errlen, "getrandom: %s", strerror(-rc));
        return rc;
    }

    buf[0] = (uint8_t) layout;
    buf[1] = (uint8_t) (layout >> 8);
    buf[2] = (uint8_t) (layout >> 16);
    buf[3] = (uint8_t) (layout >> 24);
    key = (MDB_val) { 6, "layout" };
    val = (MDB_val) { 4, buf };
    rc = mdb_put(txn, dbi, &key, &val, 0);
    if (rc != MDB_SUCCESS) {
        goto out_err;
    }

    key = (MDB_val) { 5, "epoch" };
    val = (MDB_val) { sizeof(epoch), epoch };
    rc = mdb_put(txn, dbi, &key, &val, 0);
    if (rc != MDB_SUCCESS) {
        goto out_err;
    }

    store_u64_put(buf, 0);
    key = (MDB_val) { 4, "head" };
    val = (MDB_val) { 8, buf };
    rc = mdb_put(txn, dbi, &key, &val, 0);
    if (rc != MDB_SUCCESS) {
        goto out_err;
    }

    store_u64_put(buf, 1);
    key = (MDB_val) { 6, "oldest" };
    rc = mdb_put(txn, dbi, &key, &val, 0);
    if (rc != MDB_SUCCESS) {
        goto out_err;
    }

    return 0;

out_err:
    snprintf(err, errlen, "mdb_put: %s", mdb_strerror(rc));
    return store_errno(rc);
}

static int
store_layout_check(MDB_txn *txn, MDB_dbi dbi, const char *dir, char *err,
    size_t errlen)
{
    const uint8_t *p;
    uint32_t layout;
    MDB_val val;
    int rc;

    rc = store_meta_get(txn, dbi, "layout", &val);
    if (rc == -ENOENT) {
        snprintf(err, errlen, "store %s has no layout version: not a "
            "configstream store", dir);
        return -EPROTO;
    }
    if (rc != 0) {
        snprintf(err, errlen, "mdb_get: %s", strerror(-rc));
        return rc;
    }

    p = val.mv_data;
    layout = val.mv_size != 4 ? 0 : (uint32_t) p[0] | (uint32_t) p[1] << 8
        | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
    if (layout != CS_STORE_LAYOUT_VERSION) {
        snprintf(err, errlen, "store %s has layout version %u, this program "
            "reads version %u", dir, layout, CS_STORE_LAYOUT_VERSION);
        return -EPROTO;
    }

    return 0;
}

static const struct {
    const char *name;
    unsigned flags;
    size_t offset;
} store_dbs[] = {
    { "meta", 0, offsetof(cs_store_t, meta) },
    { "settings", 0, offsetof(cs_store_t, settings) },
    { "layers", 0, offsetof(cs_store_t, layers) },
    { "changelog", MDB_INTEGERKEY, offsetof(cs_store_t, changelog) },
};

/*
 * A new store is an environment with nothing in it yet; one that holds
 * databases but no meta belongs to someone else and is left alone.
 */
static int
store_is_new(MDB_txn *txn, const char *dir, int *fresh, char *err,
    size_t errlen)
{
    MDB_dbi dbi;
    MDB_stat stat;
    int rc;

    rc = mdb_dbi_open(txn, "meta", 0, &dbi);
    if (rc == MDB_SUCCESS) {
        *fresh = 0;
        return 0;
    }
    if (rc != MDB_NOTFOUND) {
        snprintf(err, errlen, "mdb_dbi_open meta: %s", mdb_strerror(rc));
        return store_errno(rc);
    }

    rc = mdb_dbi_open(txn, NULL, 0, &dbi);
    if (rc == MDB_SUCCESS) {
        rc = mdb_stat(txn, dbi, &stat);
    }
    if (rc != MDB_SUCCESS) {
        snprintf(err, errlen, "mdb_stat: %s", mdb_strerror(rc));
        return store_errno(rc);
    }
    if (stat.ms_entries != 0) {
        snprintf(err, errlen, "%s holds an LMDB environment that is not a "
            "configstream store", dir);
        return -EPROTO;
    }

    *fresh = 1;
    return 0;
}

/*
 * Open the named databases (creating them in a new store, whose meta is
 * initialised) and check the layout.
 */
static int
store_dbs_open(cs_store_t *st, const char *dir, char *err, size_t errlen)
{
    MDB_txn *txn;
    MDB_dbi *dbi;
    unsigned create;
    size_t i;
    int rc, fresh = 0;

    rc = store_mdb_begin(st, st->rdonly ? MDB_RDONLY : 0, &txn);
    if (rc != 0) {
        snprintf(err, errlen, "mdb_txn_begin: %s", strerror(-rc));
        return rc;
    }

    if (!st->rdonly) {
        rc = store_is_new(txn, dir, &fresh, err, errlen);
        if (rc != 0) {
            goto out_abort;
        }
    }

    create = fresh ? MDB_CREATE : 0;
    for (i = 0; i < sizeof(store_dbs) / sizeof(store_dbs[0]); i++) {
        dbi = (MDB_dbi *) ((char *) st + store_dbs[i].offset);
        rc = mdb_dbi_open(txn, store_dbs[i].name,
            store_dbs[i].flags | create, dbi);
        if (rc == MDB_NOTFOUND) {
            snprintf(err, errlen, "store %s is not initialised (no %s "
                "database)", dir, store_dbs[i].name);
            rc = -ENOENT;
            goto out_abort;
        }
        if (rc != MDB_SUCCESS) {
            snprintf(err, errlen, "mdb_dbi_open %s: %s", store_dbs[i].name,
                mdb_strerror(rc));
            rc = store_errno(rc);
            goto out_abort;
        }

        if (i > 0) {
            continue;
        }
        if (fresh) {
            rc = store_meta_init(txn, st->meta, err, errlen);
            if (rc != 0) {
                goto out_abort;
            }
        }
        /* checked before the other databases are looked at */
        rc = store_layout_check(txn, st->meta, dir, err, errlen);
        if (rc != 0) {
            goto out_abort;
        }
    }

    /* committing keeps the database handles, also for a read txn */
    rc = mdb_txn_commit(txn);
    pthread_rwlock_unlock(&st->resize_lock);
    if (rc != MDB_SUCCESS) {
        snprintf(err, errlen, "mdb_txn_commit: %s", mdb_strerror(rc));
        return store_errno(rc);
    }

    return 0;

out_abort:
    store_mdb_end(st, txn);
    return rc;
}

static int
store_env_open(cs_store_t *st, const char *dir, char *err, size_t errlen)
{
    unsigned flags;
    int rc, dead;

    rc = mdb_env_create(&st->env);
    if (rc != MDB_SUCCESS) {
        snprintf(err, errlen, "mdb_env_create: %s", mdb_strerror(rc));
        return store_errno(rc);
    }

    mdb_env_set_maxdbs(st->env, STORE_MAXDBS);
    mdb_env_set_maxreaders(st->env, STORE_MAXREADERS);
    if (!st->rdonly) {
        /* an existing larger map keeps its size */
        mdb_env_set_mapsize(st->env, store_initial_mapsize);
    }

    flags = MDB_NOTLS | (st->rdonly ? MDB_RDONLY : 0);
    rc = mdb_env_open(st->env, dir, flags, 0600);
    if (rc != MDB_SUCCESS) {
        snprintf(err, errlen, "mdb_env_open %s: %s", dir, mdb_strerror(rc));
        mdb_env_close(st->env);
        st->env = NULL;
        return store_errno(rc);
    }

    mdb_reader_check(st->env, &dead);

    if (!st->rdonly) {
        rc = store_map_reserve(st, 0);
        if (rc != 0) {
            snprintf(err, errlen, "mdb_env_set_mapsize: %s", strerror(-rc));
            return rc;
        }
    }

    return 0;
}

int
cs_store_open(cs_store_t **stp, const char *dir, int flags, char *err,
    size_t errlen)
{
    pthread_rwlockattr_t attr;
    const char *failed = dir;
    char path[PATH_MAX];
    cs_store_t *st;
    char dummy[1];
    int rc;

    if (err == NULL) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    *stp = NULL;

    if ((flags & CS_STORE_CREATE) && !(flags & CS_STORE_RDONLY)) {
        rc = cs_mkdir_p(dir, 0700, &failed);
        if (rc != 0) {
            snprintf(err, errlen, "mkdir %s: %s", failed, strerror(-rc));
            return rc;
        }
    } else {
        if (snprintf(path, sizeof(path), "%s/data.mdb", dir)
            >= (int) sizeof(path))
        {
            snprintf(err, errlen, "store path too long: %s", dir);
            return -ENAMETOOLONG;
        }
        if (access(path, F_OK) != 0) {
            rc = -errno;
            snprintf(err, errlen, "no store in %s: %s", dir, strerror(-rc));
            return rc;
        }
    }

    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        snprintf(err, errlen, "calloc: %s", strerror(ENOMEM));
        return -ENOMEM;
    }
    st->rdonly = (flags & CS_STORE_RDONLY) != 0;

    /* a steady stream of readers must not starve a remap */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr,
        PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&st->resize_lock, &attr);
    pthread_rwlockattr_destroy(&attr);

    rc = store_env_open(st, dir, err, errlen);
    if (rc != 0) {
        goto out_free;
    }

    rc = store_dbs_open(st, dir, err, errlen);
    if (rc != 0) {
        goto out_free;
    }

    *stp = st;

    return 0;

out_free:
    cs_store_close(st);
    return rc;
}

void
cs_store_close(cs_store_t *st)
{
    if (st == NULL) {
        return;
    }

    if (st->env != NULL) {
        mdb_env_close(st->env);
    }
    pthread_rwlock_destroy(&st->resize_lock);
    free(st);
}

int
cs_store_reader_check(cs_store_t *st, int *dead)
{
    int n = 0, rc;

    rc = mdb_reader_check(st->env, &n);
    if (dead != NULL) {
        *dead = n;
    }

    return store_errno(rc);
}

int
cs_store_meta_get(cs_store_t *st, cs_store_meta_t *meta)
{
    MDB_stat stat;
    MDB_txn *txn;
    MDB_val val;
    int rc;

    memset(meta, 0, sizeof(*meta));

    rc = store_mdb_begin(st, MDB_RDONLY, &txn);
    if (rc != 0) {
        return rc;
    }

    meta->layout_version = CS_STORE_LAYOUT_VERSION;

    rc = store_meta_get(txn, st->meta, "epoch", &val);
    if (rc == 0 && val.mv_size == sizeof(meta->epoch)) {
        memcpy(meta->epoch, val.mv_data, sizeof(meta->epoch));
    } else if (rc == 0) {
        rc = -EPROTO;
    }
    if (rc != 0) {
        goto out_end;
    }

    rc = store_meta_u64(txn, st->meta, "head", &meta->head_seq);
    if (rc != 0) {
        goto out_end;
    }

    rc = store_oldest(txn, st->changelog, meta->head_seq, &meta->oldest_seq);
    if (rc != 0) {
        goto out_end;
    }

    rc = store_errno(mdb_stat(txn, st->settings, &stat));
    if (rc != 0) {
        goto out_end;
    }
    meta->setting_count = stat.ms_entries;

    store_origin_read(txn, st->meta, meta->origin);

out_end:
    store_mdb_end(st, txn);
    return rc;
}

/*
 * Writing.
 */

int
cs_store_txn_begin(cs_store_t *st, cs_store_txn_t **txnp)
{
    cs_store_txn_t *t;
    int rc;

    *txnp = NULL;
    if (st->rdonly) {
        return -EROFS;
    }

    rc = store_map_reserve(st, 0);
    if (rc != 0) {
        return rc;
    }

    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return -ENOMEM;
    }
    t->st = st;

    rc = store_mdb_begin(st, 0, &t->txn);
    if (rc != 0) {
        free(t);
        return rc;
    }

    rc = store_meta_u64(t->txn, st->meta, "head", &t->head);
    if (rc != 0) {
        store_mdb_end(st, t->txn);
        free(t);
        return rc;
    }

    store_origin_read(t->txn, st->meta, t->origin);
    *txnp = t;

    return 0;
}

/* Remember the first failure; a full map makes the abort grow it. */
static int
store_txn_fail(cs_store_txn_t *t, int mdb_rc)
{
    int rc = store_errno(mdb_rc);

    if (mdb_rc == MDB_MAP_FULL) {
        t->map_full = 1;
    }
    if (t->error == 0) {
        t->error = rc;
    }

    return rc;
}

static int
store_txn_put(cs_store_txn_t *t, MDB_dbi dbi, MDB_val *key, MDB_val *val,
    unsigned flags)
{
    int rc;

    if (t->error != 0) {
        return t->error;
    }

    rc = mdb_put(t->txn, dbi, key, val, flags);
    if (rc != MDB_SUCCESS) {
        return store_txn_fail(t, rc);
    }

    return 0;
}

static int
store_txn_del(cs_store_txn_t *t, MDB_dbi dbi, MDB_val *key)
{
    int rc;

    if (t->error != 0) {
        return t->error;
    }

    rc = mdb_del(t->txn, dbi, key, NULL);
    if (rc == MDB_NOTFOUND) {
        return -ENOENT;
    }
    if (rc != MDB_SUCCESS) {
        return store_txn_fail(t, rc);
    }

    return 0;
}

static int
store_txn_meta_u64(cs_store_txn_t *t, const char *name, uint64_t v)
{
    uint8_t buf[8];
    MDB_val key = { strlen(name), (void *) name };
    MDB_val val = { sizeof(buf), buf };

    store_u64_put(buf, v);

    return store_txn_put(t, t->st->meta, &key, &val, 0);
}

static void
store_txn_free(cs_store_txn_t *t, int grow)
{
    cs_store_t *st = t->st;

    pthread_rwlock_unlock(&st->resize_lock);
    if (grow) {
        /* the next transaction of the caller's retry gets the room */
        store_map_reserve(st, 1);
    }
    free(t);
}

int
cs_store_txn_commit(cs_store_txn_t *t, uint64_t *head_seq)
{
    uint64_t oldest;
    int rc;

    rc = t->error;
    if (rc == 0) {
        rc = store_txn_meta_u64(t, "head", t->head);
    }
    if (rc == 0) {
        rc = store_oldest(t->txn, t->st->changelog, t->head, &oldest);
    }
    if (rc == 0) {
        rc = store_txn_meta_u64(t, "oldest", oldest);
    }
    if (rc != 0) {
        cs_store_txn_abort(t);
        return rc;
    }

    rc = mdb_txn_commit(t->txn);
    if (rc != MDB_SUCCESS) {
        /* LMDB has freed the transaction */
        store_txn_free(t, rc == MDB_MAP_FULL);
        return store_errno(rc);
    }

    if (head_seq != NULL) {
        *head_seq = t->head;
    }
    store_txn_free(t, 0);

    return 0;
}

void
cs_store_txn_abort(cs_store_txn_t *t)
{
    if (t == NULL) {
        return;
    }

    mdb_txn_abort(t->txn);
    store_txn_free(t, t->map_full);
}

int
cs_store_set_origin(cs_store_txn_t *t, const char *origin)
{
    MDB_val key = { 6, "origin" };
    MDB_val val;
    size_t len;
    int rc;

    len = strlen(origin);
    if (len >= CS_STORE_ORIGIN_MAX) {
        return -EINVAL;
    }

    val = (MDB_val) { len, (void *) origin };
    rc = store_txn_put(t, t->st->meta, &key, &val, 0);
    if (rc != 0) {
        return rc;
    }

    memcpy(t->origin, origin, len + 1);
    if (len == 0) {
        strcpy(t->origin, STORE_DEFAULT_ORIGIN);
    }

    return 0;
}

/* The layers key: source '\0' key, in a malloc'ed buffer. */
static int
store_layer_key(const char *source, const char *key, MDB_val *k)
{
    size_t slen = strlen(source), klen = strlen(key);
    char *p;

    if (slen == 0 || klen == 0 || slen > 255) {
        return -EINVAL;
    }
    if (klen > CS_KEY_MAX) {
        return -ENAMETOOLONG;
    }

    p = malloc(slen + 1 + klen);
    if (p == NULL) {
        return -ENOMEM;
    }
    memcpy(p, source, slen + 1);
    memcpy(p + slen + 1, key, klen);

    k->mv_data = p;
    k->mv_size = slen + 1 + klen;

    return 0;
}

int
cs_store_layer_put(cs_store_txn_t *t, const char *source, const char *key,
    const cs_value_t *value)
{
    Google__Protobuf__Value *pb;
    MDB_val k, v;
    int rc;

    rc = store_layer_key(source, key, &k);
    if (rc != 0) {
        return rc;
    }

    /* The last line of defence for readers in other languages: proto3
     * strings that are not UTF-8 make protobuf-go refuse the message. */
    if (!cs_utf8_valid(key, strlen(key)) || !cs_value_utf8_valid(value)) {
        rc = -EILSEQ;
        goto out_free_key;
    }

    pb = cs_value_to_pb(value);
    if (pb == NULL) {
        rc = -ENOMEM;
        goto out_free_key;
    }

    /* packed straight into the page LMDB reserves for it */
    v.mv_size = google__protobuf__value__get_packed_size(pb);
    v.mv_data = NULL;
    rc = store_txn_put(t, t->st->layers, &k, &v, MDB_RESERVE);
    if (rc == 0) {
        google__protobuf__value__pack(pb, v.mv_data);
    }

    cs_value_pb_free(pb);
out_free_key:
    free(k.mv_data);
    return rc;
}

int
cs_store_layer_del(cs_store_txn_t *t, const char *source, const char *key)
{
    MDB_val k;
    int rc;

    rc = store_layer_key(source, key, &k);
    if (rc != 0) {
        return rc;
    }

    rc = store_txn_del(t, t->st->layers, &k);
    free(k.mv_data);

    return rc;
}

static int
store_settings_write(cs_store_txn_t *t, const char *key, uint64_t seq,
    const char *source, const Datadog__Model__V1__ConfigSetting *cs)
{
    MDB_val k = { strlen(key), (void *) key };
    MDB_val v;
    size_t slen;
    uint8_t *p;
    int rc;

    if (cs == NULL) {
        rc = store_txn_del(t, t->st->settings, &k);
        return rc == -ENOENT ? 0 : rc;
    }

    slen = strlen(source);
    v.mv_size = STORE_REC_HDR + slen
        + datadog__model__v1__config_setting__get_packed_size(cs);
    v.mv_data = NULL;
    rc = store_txn_put(t, t->st->settings, &k, &v, MDB_RESERVE);
    if (rc != 0) {
        return rc;
    }

    p = v.mv_data;
    store_u64_put(p, seq);
    p[8] = (uint8_t) slen;
    memcpy(p + STORE_REC_HDR, source, slen);
    datadog__model__v1__config_setting__pack(cs, p + STORE_REC_HDR + slen);

    return 0;
}

static int
store_changelog_append(cs_store_txn_t *t, uint64_t seq,
    Datadog__Model__V1__ConfigSetting *cs)
{
    Datadog__Model__V1__ConfigUpdate up =
        DATADOG__MODEL__V1__CONFIG_UPDATE__INIT;
    Datadog__Model__V1__ConfigEvent ev =
        DATADOG__MODEL__V1__CONFIG_EVENT__INIT;
    size_t kseq = seq;
    MDB_val k = { sizeof(kseq), &kseq };
    MDB_val v;
    int rc;

    up.origin = t->origin;
    up.sequence_id = cs_seq_wire(seq);
    up.setting = cs;
    ev.event_case = DATADOG__MODEL__V1__CONFIG_EVENT__EVENT_UPDATE;
    ev.update = &up;

    v.mv_size = datadog__model__v1__config_event__get_packed_size(&ev);
    v.mv_data = NULL;
    rc = store_txn_put(t, t->st->changelog, &k, &v,
        MDB_RESERVE | MDB_APPEND);
    if (rc != 0) {
        return rc;
    }

    datadog__model__v1__config_event__pack(&ev, v.mv_data);

    return 0;
}

int
cs_store_setting_change(cs_store_txn_t *t, const char *key,
    const char *source, const cs_value_t *value, const char *unset_source,
    uint64_t *seqp)
{
    Datadog__Model__V1__ConfigSetting cs =
        DATADOG__MODEL__V1__CONFIG_SETTING__INIT;
    Google__Protobuf__Value *pb = NULL;
    uint64_t seq;
    int rc;

    if (t->error != 0) {
        return t->error;
    }
    if (key == NULL || key[0] == '\0') {
        return -EINVAL;
    }
    if (strlen(key) > CS_KEY_MAX) {
        return -ENAMETOOLONG;
    }
    if (value == NULL || source == NULL) {
        source = "";
    }
    if (strlen(source) > 255) {
        return -EINVAL;
    }
    if (!cs_utf8_valid(key, strlen(key)) || !cs_value_utf8_valid(value)) {
        return -EILSEQ;
    }

    if (value != NULL) {
        pb = cs_value_to_pb(value);
        if (pb == NULL) {
            return -ENOMEM;
        }
    }

    seq = t->head + 1;
    cs.source = (char *) source;
    cs.key = (char *) key;
    cs.value = pb;

    /* a snapshot states what holds now: its settings carry no unset */
    rc = store_settings_write(t, key, seq, source, pb ? &cs : NULL);
    if (rc != 0) {
        goto out_free;
    }

    cs.unset_source = (char *) (unset_source ? unset_source : "");
    rc = store_changelog_append(t, seq, &cs);
    if (rc != 0) {
        goto out_free;
    }

    t->head = seq;
    if (seqp != NULL) {
        *seqp = seq;
    }

out_free:
    cs_value_pb_free(pb);
    return rc;
}

int
cs_store_changelog_trim(cs_store_txn_t *t, uint64_t retain)
{
    MDB_cursor *cur;
    MDB_stat stat;
    MDB_val k, v;
    size_t n;
    int rc;

    if (t->error != 0) {
        return t->error;
    }

    rc = mdb_stat(t->txn, t->st->changelog, &stat);
    if (rc != MDB_SUCCESS) {
        return store_txn_fail(t, rc);
    }
    if (stat.ms_entries <= retain) {
        return 0;
    }

    rc = mdb_cursor_open(t->txn, t->st->changelog, &cur);
    if (rc != MDB_SUCCESS) {
        return store_txn_fail(t, rc);
    }

    for (n = stat.ms_entries - retain; n > 0; n--) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == MDB_SUCCESS) {
            rc = mdb_cursor_del(cur, 0);
        }
        if (rc != MDB_SUCCESS) {
            break;
        }
    }
    mdb_cursor_close(cur);

    if (rc != MDB_SUCCESS) {
        return store_txn_fail(t, rc);
    }

    return 0;
}

/*
 * Reading.
 */

/* Decode a settings record; s->key is left to the caller. */
static int
store_record_decode(const MDB_val *v, cs_store_setting_t *s, char *source,
    size_t source_len, cs_value_t **value)
{
    Datadog__Model__V1__ConfigSetting *cs;
    const uint8_t *p = v->mv_data;
    size_t slen;
    int has_value;

    if (v->mv_size < STORE_REC_HDR
        || v->mv_size < STORE_REC_HDR + (size_t) p[8])
    {
        return -EPROTO;
    }
    slen = p[8];
    if (slen >= source_len) {
        return -ENAMETOOLONG;
    }

    cs = datadog__model__v1__config_setting__unpack(NULL,
        v->mv_size - STORE_REC_HDR - slen, p + STORE_REC_HDR + slen);
    if (cs == NULL) {
        return -EPROTO;
    }

    has_value = cs->value != NULL;
    *value = has_value ? cs_value_from_pb(cs->value) : NULL;
    datadog__model__v1__config_setting__free_unpacked(cs, NULL);
    if (has_value && *value == NULL) {
        return -ENOMEM;
    }

    memcpy(source, p + STORE_REC_HDR, slen);
    source[slen] = '\0';
    s->source = source;
    s->seq = store_u64_get(p);
    s->value = *value;
    s->unset_source = "";

    return 0;
}

/* An LMDB key as a C string; keys are at most 511 bytes. */
static int
store_key_str(const MDB_val *k, char *buf, size_t len)
{
    if (k->mv_size >= len) {
        return -ENAMETOOLONG;
    }

    memcpy(buf, k->mv_data, k->mv_size);
    buf[k->mv_size] = '\0';

    return 0;
}

int
cs_store_settings_foreach(cs_store_t *st, cs_store_setting_cb cb, void *arg)
{
    char key[512], source[256];
    cs_store_setting_t s;
    cs_value_t *value;
    MDB_cursor *cur;
    MDB_txn *txn;
    MDB_val k, v;
    MDB_cursor_op op;
    int rc, mrc;

    rc = store_mdb_begin(st, MDB_RDONLY, &txn);
    if (rc != 0) {
        return rc;
    }

    mrc = mdb_cursor_open(txn, st->settings, &cur);
    if (mrc != MDB_SUCCESS) {
        rc = store_errno(mrc);
        goto out_end;
    }

    for (op = MDB_FIRST; ; op = MDB_NEXT) {
        mrc = mdb_cursor_get(cur, &k, &v, op);
        if (mrc != MDB_SUCCESS) {
            rc = mrc == MDB_NOTFOUND ? 0 : store_errno(mrc);
            break;
        }

        rc = store_key_str(&k, key, sizeof(key));
        if (rc == 0) {
            rc = store_record_decode(&v, &s, source, sizeof(source), &value);
        }
        if (rc != 0) {
            break;
        }

        s.key = key;
        rc = cb(&s, arg);
        cs_value_free(value);
        if (rc != 0) {
            break;
        }
    }

    mdb_cursor_close(cur);
out_end:
    store_mdb_end(st, txn);
    return rc;
}

int
cs_store_setting_get(cs_store_t *st, const char *key, cs_store_setting_t *s,
    char *source_buf, size_t source_len)
{
    MDB_val k = { strlen(key), (void *) key };
    cs_value_t *value;
    MDB_txn *txn;
    MDB_val v;
    int rc;

    memset(s, 0, sizeof(*s));
    if (k.mv_size == 0 || k.mv_size > 511) {
        return -EINVAL;
    }

    rc = store_mdb_begin(st, MDB_RDONLY, &txn);
    if (rc != 0) {
        return rc;
    }

    rc = store_errno(mdb_get(txn, st->settings, &k, &v));
    if (rc == 0) {
        rc = store_record_decode(&v, s, source_buf, source_len, &value);
    }
    if (rc == 0) {
        s->key = key;
    }

    store_mdb_end(st, txn);
    return rc;
}

/* Call cb for each layer value whose source is prefix (all when NULL). */
static int
store_layers_walk(cs_store_t *st, const char *prefix, cs_store_layer_cb cb,
    void *arg)
{
    Google__Protobuf__Value *pb;
    char buf[512], *key;
    cs_value_t *value;
    MDB_cursor *cur;
    MDB_txn *txn;
    MDB_val k, v;
    MDB_cursor_op op;
    size_t plen = prefix ? strlen(prefix) + 1 : 0;
    int rc, mrc;

    rc = store_mdb_begin(st, MDB_RDONLY, &txn);
    if (rc != 0) {
        return rc;
    }

    mrc = mdb_cursor_open(txn, st->layers, &cur);
    if (mrc != MDB_SUCCESS) {
        rc = store_errno(mrc);
        goto out_end;
    }

    k = (MDB_val) { plen, (void *) prefix };
    op = prefix ? MDB_SET_RANGE : MDB_FIRST;
    for (;; op = MDB_NEXT) {
        mrc = mdb_cursor_get(cur, &k, &v, op);
        if (mrc != MDB_SUCCESS) {
            rc = mrc == MDB_NOTFOUND ? 0 : store_errno(mrc);
            break;
        }
        if (prefix && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen)))
        {
            break;
        }

        rc = store_key_str(&k, buf, sizeof(buf));
        if (rc != 0) {
            break;
        }
        key = memchr(buf, '\0', k.mv_size);
        if (key == NULL) {
            rc = -EPROTO;
            break;
        }
        key++;

        pb = google__protobuf__value__unpack(NULL, v.mv_size, v.mv_data);
        if (pb == NULL) {
            rc = -EPROTO;
            break;
        }
        value = cs_value_from_pb(pb);
        google__protobuf__value__free_unpacked(pb, NULL);
        if (value == NULL) {
            rc = -ENOMEM;
            break;
        }

        rc = cb(buf, key, value, arg);
        cs_value_free(value);
        if (rc != 0) {
            break;
        }
    }

    mdb_cursor_close(cur);
out_end:
    store_mdb_end(st, txn);
    return rc;
}

int
cs_store_layers_foreach(cs_store_t *st, cs_store_layer_cb cb, void *arg)
{
    return store_layers_walk(st, NULL, cb, arg);
}

static int
store_layer_load_one(const char *source, const char *key,
    const cs_value_t *value, void *arg)
{
    cs_value_t *copy;

    copy = cs_value_clone(value);
    if (copy == NULL) {
        return -ENOMEM;
    }

    return cs_value_map_set(arg, key, copy);
}

int
cs_store_layer_load(cs_store_t *st, const char *source, cs_value_t **map)
{
    int rc;

    *map = cs_value_map();
    if (*map == NULL) {
        return -ENOMEM;
    }
    if (source[0] == '\0') {
        return 0;
    }

    rc = store_layers_walk(st, source, store_layer_load_one, *map);
    if (rc != 0) {
        cs_value_free(*map);
        *map = NULL;
    }

    return rc;
}

/* Decode a changelog entry into s; s->value is the caller's to free. */
static int
store_event_decode(const MDB_val *v, cs_store_setting_t *s, char *key,
    size_t key_len, char *source, size_t source_len, char *unset,
    size_t unset_len)
{
    Datadog__Model__V1__ConfigEvent *ev;
    Datadog__Model__V1__ConfigSetting *cs;
    int rc = 0;

    ev = datadog__model__v1__config_event__unpack(NULL, v->mv_size,
        v->mv_data);
    if (ev == NULL) {
        return -EPROTO;
    }
    if (ev->event_case != DATADOG__MODEL__V1__CONFIG_EVENT__EVENT_UPDATE
        || ev->update->setting == NULL)
    {
        rc = -EPROTO;
        goto out_free;
    }

    cs = ev->update->setting;
    if ((size_t) snprintf(key, key_len, "%s", cs->key) >= key_len
        || (size_t) snprintf(source, source_len, "%s", cs->source)
            >= source_len
        || (size_t) snprintf(unset, unset_len, "%s", cs->unset_source)
            >= unset_len)
    {
        rc = -ENAMETOOLONG;
        goto out_free;
    }

    s->key = key;
    s->source = source;
    s->unset_source = unset;
    s->value = NULL;
    if (cs->value != NULL) {
        s->value = cs_value_from_pb(cs->value);
        if (s->value == NULL) {
            rc = -ENOMEM;
        }
    }

out_free:
    datadog__model__v1__config_event__free_unpacked(ev, NULL);
    return rc;
}

/*
 * Call fn for each changelog entry with from_seq <= seq <= to_seq, in
 * order, inside txn; a non-zero return from fn stops and is returned.
 */
typedef int (*store_walk_fn)(uint64_t seq, const MDB_val *v, void *arg);

static int
store_changelog_walk(cs_store_t *st, MDB_txn *txn, uint64_t from_seq,
    uint64_t to_seq, store_walk_fn fn, void *arg)
{
    MDB_cursor *cur;
    MDB_val k, v;
    MDB_cursor_op op;
    size_t kseq = from_seq;
    uint64_t seq;
    int rc, mrc;

    mrc = mdb_cursor_open(txn, st->changelog, &cur);
    if (mrc != MDB_SUCCESS) {
        return store_errno(mrc);
    }

    k = (MDB_val) { sizeof(kseq), &kseq };
    for (op = MDB_SET_RANGE; ; op = MDB_NEXT) {
        mrc = mdb_cursor_get(cur, &k, &v, op);
        if (mrc != MDB_SUCCESS) {
            rc = mrc == MDB_NOTFOUND ? 0 : store_errno(mrc);
            break;
        }

        seq = store_seq_key(&k);
        if (seq > to_seq) {
            rc = 0;
            break;
        }

        rc = fn(seq, &v, arg);
        if (rc != 0) {
            break;
        }
    }

    mdb_cursor_close(cur);
    return rc;
}

typedef struct {
    cs_store_change_cb cb;
    void *arg;
} store_change_walk_t;

/* Decode one entry for cs_store_changes_foreach()'s callback. */
static int
store_change_decoded(uint64_t seq, const MDB_val *v, void *arg)
{
    char key[512], source[256], unset[256];
    store_change_walk_t *w = arg;
    cs_store_setting_t s;
    int rc;

    rc = store_event_decode(v, &s, key, sizeof(key), source,
        sizeof(source), unset, sizeof(unset));
    if (rc != 0) {
        return rc;
    }

    s.seq = seq;
    rc = w->cb(seq, &s, w->arg);
    cs_value_free(s.value);
    return rc;
}

int
cs_store_changes_foreach(cs_store_t *st, uint64_t from_seq,
    cs_store_change_cb cb, void *arg)
{
    store_change_walk_t w = { cb, arg };
    MDB_txn *txn;
    int rc;

    rc = store_mdb_begin(st, MDB_RDONLY, &txn);
    if (rc != 0) {
        return rc;
    }

    rc = store_changelog_walk(st, txn, from_seq, UINT64_MAX,
        store_change_decoded, &w);

    store_mdb_end(st, txn);
    return rc;
}

/*
 * The hot paths.
 */

static size_t
store_varint_len(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }

    return n;
}

static uint8_t *
store_varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t) (v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t) v;

    return p;
}

/* Protobuf tags: field number << 3 | wire type (0 varint, 2 bytes). */
#define STORE_TAG_LEN(field)    ((uint8_t) ((field) << 3 | 2))
#define STORE_TAG_VARINT(field) ((uint8_t) ((field) << 3 | 0))

/* The stored ConfigSetting bytes of a settings record. */
static int
store_record_setting(const MDB_val *v, const uint8_t **bytes, size_t *len)
{
    const uint8_t *p = v->mv_data;

    if (v->mv_size < STORE_REC_HDR
        || v->mv_size < STORE_REC_HDR + (size_t) p[8])
    {
        return -EPROTO;
    }

    *bytes = p + STORE_REC_HDR + p[8];
    *len = v->mv_size - STORE_REC_HDR - p[8];

    return 0;
}

/*
 * Walk the settings once to size the snapshot, once to copy: both inside
 * one read transaction, so they see the same records.
 */
static int
store_snapshot_settings(MDB_txn *txn, MDB_dbi dbi, uint8_t *out,
    size_t *total)
{
    const uint8_t *bytes;
    MDB_cursor *cur;
    MDB_val k, v;
    MDB_cursor_op op;
    size_t len, sum = 0;
    int rc, mrc;

    mrc = mdb_cursor_open(txn, dbi, &cur);
    if (mrc != MDB_SUCCESS) {
        return store_errno(mrc);
    }

    for (op = MDB_FIRST; ; op = MDB_NEXT) {
        mrc = mdb_cursor_get(cur, &k, &v, op);
        if (mrc != MDB_SUCCESS) {
            rc = mrc == MDB_NOTFOUND ? 0 : store_errno(mrc);
            break;
        }

        rc = store_record_setting(&v, &bytes, &len);
        if (rc != 0) {
            break;
        }

        sum += 1 + store_varint_len(len) + len;
        if (out != NULL) {
            *out++ = STORE_TAG_LEN(3);
            out = store_varint_put(out, len);
            memcpy(out, bytes, len);
            out += len;
        }
    }

    mdb_cursor_close(cur);
    *total = sum;

    return rc;
}

int
cs_store_snapshot_encode(cs_store_t *st, uint64_t *head_seq, uint8_t **bufp,
    size_t *lenp)
{
    char origin[CS_STORE_ORIGIN_MAX];
    size_t olen, settings_len, snap_len, len;
    uint64_t head;
    uint32_t wire;
    uint8_t *buf, *p;
    MDB_txn *txn;
    int rc;

    *bufp = NULL;
    *lenp = 0;

    rc = store_mdb_begin(st, MDB_RDONLY, &txn);
    if (rc != 0) {
        return rc;
    }

    rc = store_meta_u64(txn, st->meta, "head", &head);
    if (rc != 0) {
        goto out_end;
    }
    store_origin_read(txn, st->meta, origin);
    olen = strlen(origin);
    wire = (uint32_t) cs_seq_wire(head);

    rc = store_snapshot_settings(txn, st->settings, NULL, &settings_len);
    if (rc != 0) {
        goto out_end;
    }

    /* proto3 leaves out a zero sequence id */
    snap_len = 1 + store_varint_len(olen) + olen + settings_len;
    if (wire != 0) {
        snap_len += 1 + store_varint_len(wire);
    }
    len = 1 + store_varint_len(snap_len) + snap_len;

    buf = malloc(len);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto out_end;
    }

    p = buf;
    *p++ = STORE_TAG_LEN(1);
    p = store_varint_put(p, snap_len);
    *p++ = STORE_TAG_LEN(1);
    p = store_varint_put(p, olen);
    memcpy(p, origin, olen);
    p += olen;
    if (wire != 0) {
        *p++ = STORE_TAG_VARINT(2);
        p = store_varint_put(p, wire);
    }

    rc = store_snapshot_settings(txn, st->settings, p, &settings_len);
    if (rc != 0) {
        free(buf);
        goto out_end;
    }

    *bufp = buf;
    *lenp = len;
    if (head_seq != NULL) {
        *head_seq = head;
    }

out_end:
    store_mdb_end(st, txn);
    return rc;
}

typedef struct {
    cs_store_event_cb cb;
    void *arg;
} store_event_walk_t;

static int
store_event_raw(uint64_t seq, const MDB_val *v, void *arg)
{
    store_event_walk_t *w = arg;

    return w->cb(seq, v->mv_data, v->mv_size, w->arg);
}

int
cs_store_changelog_read(cs_store_t *st, uint64_t from_seq, uint64_t to_seq,
    cs_store_event_cb cb, void *arg)
{
    store_event_walk_t w = { cb, arg };
    uint64_t head, oldest;
    MDB_txn *txn;
    int rc;

    rc = store_mdb_begin(st, MDB_RDONLY, &txn);
    if (rc != 0) {
        return rc;
    }

    rc = store_meta_u64(txn, st->meta, "head", &head);
    if (rc == 0) {
        rc = store_oldest(txn, st->changelog, head, &oldest);
    }
    if (rc != 0) {
        goto out_end;
    }
    if (from_seq < oldest) {
        rc = -ERANGE;
        goto out_end;
    }
    if (from_seq > to_seq || from_seq > head) {
        goto out_end;
    }

    rc = store_changelog_walk(st, txn, from_seq, to_seq, store_event_raw,
        &w);

out_end:
    store_mdb_end(st, txn);
    return rc;
}
