/*
 * configstream-bench-snapshot: times the frontend's snapshot build,
 * cs_store_snapshot_encode(), on stores holding a given number of
 * settings. The settings are the core agent's defaults (the fixtures'
 * datadog-defaults.flat.json) in key order; counts beyond them repeat
 * those values under numbered keys, so a 100 000-setting store has the
 * same mix of types and sizes.
 *
 *   configstream-bench-snapshot --defaults FILE [--counts 350,1458,100000]
 *       [--dir DIR]
 *
 * Prints one JSON object: for each count, the median and minimum build
 * time in microseconds and the snapshot's size in bytes. Exit status 0,
 * 1 on a failure, 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bench_grpc.h"
#include "store.h"
#include "value.h"

#define BENCH_SNAP_ERR_MAX 512
#define BENCH_SNAP_MAX_RUNS 2000
#define BENCH_SNAP_BUDGET_NS 1000000000LL

typedef struct {
    char **keys;
    cs_value_t **vals;
    size_t n;
} bench_defaults_t;

static cs_value_t *bench_value_from_json(json_object *j)
{
    cs_value_t *v;

    switch (json_object_get_type(j)) {
    case json_type_null:
        return cs_value_null();
    case json_type_boolean:
        return cs_value_bool(json_object_get_boolean(j));
    case json_type_int:
        return cs_value_number((double) json_object_get_int64(j));
    case json_type_double:
        return cs_value_number(json_object_get_double(j));
    case json_type_string:
        return cs_value_string(json_object_get_string(j));
    case json_type_array:
        v = cs_value_list();
        for (size_t i = 0; v != NULL && i < json_object_array_length(j);
            i++)
        {
            if (cs_value_list_append(v, bench_value_from_json(
                json_object_array_get_idx(j, i))) < 0)
            {
                cs_value_free(v);
                return NULL;
            }
        }
        return v;
    case json_type_object:
        v = cs_value_map();
        json_object_object_foreach(j, k, child) {
            if (v != NULL && cs_value_map_set(v, k,
                bench_value_from_json(child)) < 0)
            {
                cs_value_free(v);
                return NULL;
            }
        }
        return v;
    }
    return NULL;
}

static int bench_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

static int bench_defaults_load(const char *path, bench_defaults_t *d)
{
    json_object *root, *settings, *def;
    size_t i = 0;

    root = json_object_from_file(path);
    if (root == NULL || !json_object_object_get_ex(root, "settings",
        &settings))
    {
        json_object_put(root);
        return -EINVAL;
    }

    d->n = (size_t) json_object_object_length(settings);
    d->keys = calloc(d->n, sizeof(*d->keys));
    d->vals = calloc(d->n, sizeof(*d->vals));
    if (d->keys == NULL || d->vals == NULL) {
        json_object_put(root);
        return -ENOMEM;
    }

    json_object_object_foreach(settings, key, unused) {
        (void) unused;
        d->keys[i++] = strdup(key);
    }
    qsort(d->keys, d->n, sizeof(*d->keys), bench_cmp_str);
    for (i = 0; i < d->n; i++) {
        json_object *e = json_object_object_get(settings, d->keys[i]);

        json_object_object_get_ex(e, "default", &def);
        d->vals[i] = bench_value_from_json(def);
        if (d->keys[i] == NULL || d->vals[i] == NULL) {
            json_object_put(root);
            return -ENOMEM;
        }
    }

    json_object_put(root);
    return 0;
}

static void bench_defaults_free(bench_defaults_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->keys[i]);
        cs_value_free(d->vals[i]);
    }
    free(d->keys);
    free(d->vals);
}

/* A store in dir holding count settings, written in one transaction. */
static int bench_store_fill(const char *dir, const bench_defaults_t *d,
    size_t count, char *err, size_t errlen)
{
    cs_store_txn_t *txn;
    cs_store_t *st;
    char key[512];
    uint64_t seq;
    int rc;

    rc = cs_store_open(&st, dir, CS_STORE_CREATE, err, errlen);
    if (rc < 0) {
        return rc;
    }

    rc = cs_store_txn_begin(st, &txn);
    if (rc < 0) {
        snprintf(err, errlen, "cs_store_txn_begin: %s", strerror(-rc));
        goto out_close;
    }

    rc = cs_store_set_origin(txn, "datadog.yaml");
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const char *k = d->keys[i % d->n];

        if (i >= d->n) {
            snprintf(key, sizeof(key), "%s.copy%06zu", k, i / d->n);
            k = key;
        }
        rc = cs_store_setting_change(txn, k, "default", d->vals[i % d->n],
            "", &seq);
    }

    if (rc < 0) {
        snprintf(err, errlen, "writing the settings: %s", strerror(-rc));
        cs_store_txn_abort(txn);
        goto out_close;
    }

    rc = cs_store_txn_commit(txn, &seq);
    if (rc < 0) {
        snprintf(err, errlen, "cs_store_txn_commit: %s", strerror(-rc));
    }

out_close:
    cs_store_close(st);
    return rc;
}

static int bench_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

    return (x > y) - (x < y);
}

/* Build the snapshot repeatedly (at least 5 times, about a second). */
static int bench_store_time(const char *dir, json_object *out, char *err,
    size_t errlen)
{
    int64_t t[BENCH_SNAP_MAX_RUNS], start, t0;
    cs_store_t *st;
    uint64_t head;
    uint8_t *buf;
    size_t len = 0;
    int n = 0, rc;

    rc = cs_store_open(&st, dir, CS_STORE_RDONLY, err, errlen);
    if (rc < 0) {
        return rc;
    }

    start = bench_now_ns();
    while (n < BENCH_SNAP_MAX_RUNS
        && (n < 5 || bench_now_ns() - start < BENCH_SNAP_BUDGET_NS))
    {
        t0 = bench_now_ns();
        rc = cs_store_snapshot_encode(st, &head, &buf, &len);
        t[n] = bench_now_ns() - t0;
        if (rc < 0) {
            snprintf(err, errlen, "cs_store_snapshot_encode: %s",
                strerror(-rc));
            goto out_close;
        }
        free(buf);
        n++;
    }

    qsort(t, (size_t) n, sizeof(t[0]), bench_cmp_i64);
    json_object_object_add(out, "median_us",
        json_object_new_double((double) t[n / 2] / 1e3));
    json_object_object_add(out, "min_us",
        json_object_new_double((double) t[0] / 1e3));
    json_object_object_add(out, "bytes", json_object_new_int64(
        (int64_t) len));
    json_object_object_add(out, "runs", json_object_new_int(n));

out_close:
    cs_store_close(st);
    return rc;
}

static int bench_rmtree(const char *dir)
{
    char cmd[1024];

    /* Only ever a directory this program created under mkdtemp. */
    snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
    return system(cmd) == 0 ? 0 : -EIO;
}

static void bench_snapshot_usage(FILE *f)
{
    fprintf(f, "usage: configstream-bench-snapshot --defaults FILE "
        "[--counts N,N,...] [--dir DIR]\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "defaults", required_argument, NULL, 'd' },
        { "counts", required_argument, NULL, 'c' },
        { "dir", required_argument, NULL, 'D' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *defaults = NULL, *counts = "350,1458,100000";
    const char *parent = "/tmp";
    char err[BENCH_SNAP_ERR_MAX], tmpl[512], sub[600];
    bench_defaults_t d = { 0 };
    json_object *out;
    char *list, *tok, *save;
    int c, rc;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': defaults = optarg; break;
        case 'c': counts = optarg; break;
        case 'D': parent = optarg; break;
        case 'h':
            bench_snapshot_usage(stdout);
            return 0;
        default:
            bench_snapshot_usage(stderr);
            return 2;
        }
    }
    if (defaults == NULL || optind != argc) {
        bench_snapshot_usage(stderr);
        return 2;
    }

    rc = bench_defaults_load(defaults, &d);
    if (rc < 0) {
        fprintf(stderr, "configstream-bench-snapshot: %s: cannot load "
            "the settings (%s)\n", defaults, strerror(-rc));
        return 1;
    }

    snprintf(tmpl, sizeof(tmpl), "%s/cs-bench-snapshot.XXXXXX", parent);
    if (mkdtemp(tmpl) == NULL) {
        fprintf(stderr, "configstream-bench-snapshot: mkdtemp %s: %s\n",
            tmpl, strerror(errno));
        bench_defaults_free(&d);
        return 1;
    }

    out = json_object_new_object();
    list = strdup(counts);
    for (tok = strtok_r(list, ",", &save); tok != NULL && rc == 0;
        tok = strtok_r(NULL, ",", &save))
    {
        json_object *one = json_object_new_object();
        long n = atol(tok);

        json_object_object_add(out, tok, one);
        snprintf(sub, sizeof(sub), "%s/%ld", tmpl, n);
        rc = n > 0 ? bench_store_fill(sub, &d, (size_t) n, err, sizeof(err))
            : -EINVAL;
        if (rc == 0) {
            rc = bench_store_time(sub, one, err, sizeof(err));
        }
        if (rc < 0) {
            fprintf(stderr, "configstream-bench-snapshot: %ld settings: "
                "%s\n", n, n > 0 ? err : "bad count");
        }
    }

    printf("%s\n", json_object_to_json_string_ext(out,
        JSON_C_TO_STRING_PRETTY));
    json_object_put(out);
    free(list);
    bench_rmtree(tmpl);
    bench_defaults_free(&d);
    return rc < 0 ? 1 : 0;
}
