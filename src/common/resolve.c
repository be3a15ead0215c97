/*
 * Configuration sources and their resolution.
 */
#include "resolve.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flatten.h"

static const char *const resolve_source_names[CS_SRC_COUNT] = {
    [CS_SRC_DEFAULT] = "default",
    [CS_SRC_UNKNOWN] = "unknown",
    [CS_SRC_FILE] = "file",
    [CS_SRC_ENV] = "environment-variable",
    [CS_SRC_FLEET] = "fleet-policies",
    [CS_SRC_LOCAL_PROCESS] = "local-config-process",
    [CS_SRC_RUNTIME] = "agent-runtime",
    [CS_SRC_REMOTE_CONFIG] = "remote-config",
    [CS_SRC_CLI] = "cli",
};

const char *
cs_source_name(cs_source_t src)
{
    if ((unsigned) src >= CS_SRC_COUNT) {
        return NULL;
    }

    return resolve_source_names[src];
}

int
cs_source_parse(const char *name, cs_source_t *src)
{
    int i;

    for (i = 0; i < CS_SRC_COUNT; i++) {
        if (strcmp(name, resolve_source_names[i]) == 0) {
            *src = (cs_source_t) i;
            return 0;
        }
    }

    return -EINVAL;
}

void
cs_resolution_free(cs_resolution_t *res)
{
    size_t i;

    if (res == NULL) {
        return;
    }

    for (i = 0; i < res->n; i++) {
        free(res->items[i].key);
        cs_value_free(res->items[i].value);
    }
    free(res->items);
    free(res);
}

/*
 * Layers keep their keys sorted, so the resolution is a k-way merge: at
 * each step take the smallest key among the layers' cursors, and the
 * value of the highest layer holding it.
 */
int
cs_resolve(cs_value_t *const layers[CS_SRC_COUNT], cs_resolution_t **out)
{
    size_t cur[CS_SRC_COUNT] = { 0 }, total = 0;
    const cs_value_t *l;
    cs_resolution_t *res;
    cs_resolved_t *r;
    const char *min;
    int s, win;

    for (s = 0; s < CS_SRC_COUNT; s++) {
        if (layers[s] != NULL && layers[s]->kind == CS_VAL_MAP) {
            total += layers[s]->u.map.n;
        }
    }

    res = calloc(1, sizeof(*res));
    if (res == NULL) {
        return -ENOMEM;
    }
    res->items = calloc(total + 1, sizeof(cs_resolved_t));
    if (res->items == NULL) {
        free(res);
        return -ENOMEM;
    }

    for (;;) {
        min = NULL;
        for (s = 0; s < CS_SRC_COUNT; s++) {
            l = layers[s];
            if (l == NULL || l->kind != CS_VAL_MAP || cur[s] >= l->u.map.n) {
                continue;
            }
            if (min == NULL || strcmp(l->u.map.keys[cur[s]], min) < 0) {
                min = l->u.map.keys[cur[s]];
            }
        }
        if (min == NULL) {
            break;
        }

        win = -1;
        for (s = 0; s < CS_SRC_COUNT; s++) {
            l = layers[s];
            if (l == NULL || l->kind != CS_VAL_MAP || cur[s] >= l->u.map.n
                || strcmp(l->u.map.keys[cur[s]], min) != 0)
            {
                continue;
            }
            win = s;
        }

        r = &res->items[res->n];
        r->key = strdup(min);
        r->source = (cs_source_t) win;
        r->value = cs_value_clone(layers[win]->u.map.vals[cur[win]]);
        if (r->key == NULL || r->value == NULL) {
            free(r->key);
            cs_value_free(r->value);
            cs_resolution_free(res);
            return -ENOMEM;
        }
        res->n++;

        /* Advance past min in every layer (min may point into one). */
        for (s = CS_SRC_COUNT - 1; s >= 0; s--) {
            l = layers[s];
            if (l != NULL && l->kind == CS_VAL_MAP && cur[s] < l->u.map.n
                && strcmp(l->u.map.keys[cur[s]], r->key) == 0)
            {
                cur[s]++;
            }
        }
    }

    *out = res;
    return 0;
}

const cs_resolved_t *
cs_resolution_find(const cs_resolution_t *res, const char *key)
{
    size_t lo = 0, hi = res->n, mid;
    int c;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        c = strcmp(res->items[mid].key, key);
        if (c == 0) {
            return &res->items[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }

    return NULL;
}

void
cs_resolve_files_free(char **files)
{
    size_t i;

    if (files == NULL) {
        return;
    }

    for (i = 0; files[i] != NULL; i++) {
        free(files[i]);
    }
    free(files);
}

static int
resolve_files_add(char ***files, size_t *n, const char *path)
{
    char **f;

    f = realloc(*files, (*n + 2) * sizeof(char *));
    if (f == NULL) {
        return -ENOMEM;
    }
    *files = f;

    f[*n] = strdup(path);
    if (f[*n] == NULL) {
        return -ENOMEM;
    }
    f[++*n] = NULL;

    return 0;
}

int
cs_layer_merge(cs_value_t *dst, const cs_value_t *src)
{
    cs_value_t *v;
    size_t i;
    int rc;

    for (i = 0; i < src->u.map.n; i++) {
        v = cs_value_clone(src->u.map.vals[i]);
        if (v == NULL) {
            return -ENOMEM;
        }

        rc = cs_value_map_set(dst, src->u.map.keys[i], v);
        if (rc < 0) {
            return rc;
        }
    }

    return 0;
}

int
cs_resolve_load_file_layer(const cs_schema_t *schema, const char *path,
    cs_value_t **layer, char ***files, char *err, size_t errlen)
{
    char **list = NULL;
    size_t n = 0;
    int rc;

    rc = resolve_files_add(&list, &n, path);
    if (rc < 0) {
        goto out_free;
    }

    rc = cs_flatten_file(schema, path, layer, NULL, err, errlen);
    if (rc < 0) {
        goto out_free;
    }

    if (files != NULL) {
        *files = list;
    } else {
        cs_resolve_files_free(list);
    }
    return 0;

out_free:
    cs_resolve_files_free(list);
    return rc;
}

static int
resolve_is_yaml(const struct dirent *d)
{
    size_t len = strlen(d->d_name);

    return d->d_name[0] != '.' && len > 5
           && strcmp(d->d_name + len - 5, ".yaml") == 0;
}

int
cs_resolve_load_fleet_layer(const cs_schema_t *schema, const char *dir,
    cs_value_t **layer, char ***files, char *err, size_t errlen)
{
    struct dirent **names = NULL;
    cs_value_t *merged, *one = NULL;
    char **list = NULL, *path;
    size_t n = 0;
    int count, i, rc = 0;

    merged = cs_value_map();
    if (merged == NULL) {
        return -ENOMEM;
    }

    count = scandir(dir, &names, resolve_is_yaml, alphasort);
    if (count < 0) {
        if (errno == ENOENT) {
            goto out_done;
        }
        rc = -errno;
        snprintf(err, errlen, "%s: scandir: %s", dir, strerror(errno));
        goto out_free;
    }

    for (i = 0; i < count; i++) {
        if (asprintf(&path, "%s/%s", dir, names[i]->d_name) < 0) {
            rc = -ENOMEM;
            goto out_free;
        }

        rc = resolve_files_add(&list, &n, path);
        if (rc == 0) {
            rc = cs_flatten_file(schema, path, &one, NULL, err, errlen);
        }
        free(path);
        if (rc < 0) {
            goto out_free;
        }

        rc = cs_layer_merge(merged, one);
        cs_value_free(one);
        if (rc < 0) {
            goto out_free;
        }
    }

out_done:
    for (i = 0; i < count; i++) {
        free(names[i]);
    }
    free(names);

    if (list == NULL) {
        list = calloc(1, sizeof(char *));
        if (list == NULL) {
            cs_value_free(merged);
            return -ENOMEM;
        }
    }

    *layer = merged;
    if (files != NULL) {
        *files = list;
    } else {
        cs_resolve_files_free(list);
    }
    return 0;

out_free:
    for (i = 0; i < count; i++) {
        free(names[i]);
    }
    free(names);
    cs_resolve_files_free(list);
    cs_value_free(merged);
    return rc;
}
