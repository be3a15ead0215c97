/*
 * The settings schema: a sorted array of entries plus an open-addressing
 * hash table of indices into it.
 */
#include "schema.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flatten.h"
#include "yaml_load.h"

typedef struct {
    cs_schema_key_t pub;
    char *key;
    cs_value_t *def;
    char **env;
} schema_entry_t;

struct cs_schema {
    schema_entry_t *entries;    /* sorted by key */
    size_t n;
    uint32_t *table;            /* entry index + 1; 0 is an empty slot */
    size_t mask;
};

static const char *const schema_type_names[] = {
    [CS_TYPE_ANY] = "any",
    [CS_TYPE_BOOL] = "bool",
    [CS_TYPE_INT] = "int",
    [CS_TYPE_FLOAT] = "float",
    [CS_TYPE_STRING] = "string",
    [CS_TYPE_DURATION] = "duration",
    [CS_TYPE_LIST] = "list",
    [CS_TYPE_MAP] = "map",
    [CS_TYPE_MAP_LIST] = "map_list",
};

const char *
cs_type_name(cs_type_t type)
{
    if ((size_t) type >= sizeof(schema_type_names) / sizeof(char *)) {
        return "unknown";
    }

    return schema_type_names[type];
}

int
cs_type_parse(const char *name, cs_type_t *type)
{
    size_t i;

    for (i = 0; i < sizeof(schema_type_names) / sizeof(char *); i++) {
        if (strcmp(name, schema_type_names[i]) == 0) {
            *type = (cs_type_t) i;
            return 0;
        }
    }

    return -EINVAL;
}

/* FNV-1a: short keys, good spread, no seed needed for trusted input. */
static uint32_t
schema_hash(const char *s)
{
    uint32_t h = 2166136261u;

    while (*s != '\0') {
        h ^= (unsigned char) *s++;
        h *= 16777619u;
    }

    return h;
}

static void
schema_entry_clear(schema_entry_t *e)
{
    size_t i;

    free(e->key);
    cs_value_free(e->def);
    for (i = 0; e->env != NULL && i < e->pub.n_env; i++) {
        free(e->env[i]);
    }
    free(e->env);
}

void
cs_schema_free(cs_schema_t *schema)
{
    size_t i;

    if (schema == NULL) {
        return;
    }

    for (i = 0; i < schema->n; i++) {
        schema_entry_clear(&schema->entries[i]);
    }
    free(schema->entries);
    free(schema->table);
    free(schema);
}

/* DD_ + the key upper-cased, dots as underscores. */
static char *
schema_env_rule(const char *key)
{
    char *name;
    size_t i;

    if (asprintf(&name, "DD_%s", key) < 0) {
        return NULL;
    }

    for (i = 3; name[i] != '\0'; i++) {
        name[i] = name[i] == '.' ? '_' : (char) toupper((unsigned char)
            name[i]);
    }

    return name;
}

static int
schema_parse_env(schema_entry_t *e, const cs_yaml_node_t *env,
    const char *name, char *err, size_t errlen)
{
    size_t i;

    if (env == NULL) {
        e->env = calloc(1, sizeof(char *));
        if (e->env == NULL) {
            return -ENOMEM;
        }
        e->env[0] = schema_env_rule(e->key);
        if (e->env[0] == NULL) {
            return -ENOMEM;
        }
        e->pub.n_env = 1;
        return 0;
    }

    if (env->kind != CS_YAML_SEQUENCE) {
        snprintf(err, errlen, "%s:%d:%d: %s: env must be a list of names",
            name, env->line, env->column, e->key);
        return -EINVAL;
    }

    e->env = calloc(env->n + 1, sizeof(char *));
    if (e->env == NULL) {
        return -ENOMEM;
    }

    for (i = 0; i < env->n; i++) {
        if (env->items[i]->kind != CS_YAML_SCALAR) {
            snprintf(err, errlen, "%s:%d:%d: %s: env must be a list of "
                "names", name, env->items[i]->line, env->items[i]->column,
                e->key);
            return -EINVAL;
        }
        e->env[i] = strdup(env->items[i]->text);
        if (e->env[i] == NULL) {
            return -ENOMEM;
        }
        e->pub.n_env = i + 1;
    }

    return 0;
}

static int
schema_parse_entry(schema_entry_t *e, const cs_yaml_node_t *knode,
    const cs_yaml_node_t *spec, const char *name, char *err, size_t errlen)
{
    const cs_yaml_node_t *type, *def, *secret;
    int b, rc;

    e->key = strdup(knode->text);
    if (e->key == NULL) {
        return -ENOMEM;
    }

    if (spec == NULL || spec->kind != CS_YAML_MAPPING) {
        snprintf(err, errlen, "%s:%d:%d: %s: expected a mapping such as "
            "{type: string}", name, knode->line, knode->column, e->key);
        return -EINVAL;
    }

    type = cs_yaml_map_get(spec, "type");
    if (type == NULL || type->kind != CS_YAML_SCALAR
        || cs_type_parse(type->text, &e->pub.type) < 0)
    {
        snprintf(err, errlen, "%s:%d:%d: %s: missing or unknown type",
            name, spec->line, spec->column, e->key);
        return -EINVAL;
    }

    def = cs_yaml_map_get(spec, "default");
    if (def != NULL) {
        rc = cs_flatten_convert(e->pub.type, e->key, def, name, &e->def,
            err, errlen);
        if (rc < 0) {
            return rc;
        }
        if (e->def->kind == CS_VAL_NULL) {
            cs_value_free(e->def);
            e->def = NULL;
        }
    }

    secret = cs_yaml_map_get(spec, "secret");
    if (secret != NULL) {
        if (secret->kind != CS_YAML_SCALAR
            || !cs_yaml_scalar_bool(secret->text, &b))
        {
            snprintf(err, errlen, "%s:%d:%d: %s: secret must be a boolean",
                name, secret->line, secret->column, e->key);
            return -EINVAL;
        }
        e->pub.secret = b;
    }

    return schema_parse_env(e, cs_yaml_map_get(spec, "env"), name, err,
        errlen);
}

static int
schema_entry_cmp(const void *a, const void *b)
{
    const schema_entry_t *x = a, *y = b;

    return strcmp(x->key, y->key);
}

static int
schema_index(cs_schema_t *schema)
{
    size_t size = 16, i, slot;

    while (size < schema->n * 2) {
        size *= 2;
    }

    schema->table = calloc(size, sizeof(uint32_t));
    if (schema->table == NULL) {
        return -ENOMEM;
    }
    schema->mask = size - 1;

    for (i = 0; i < schema->n; i++) {
        schema_entry_t *e = &schema->entries[i];

        e->pub.key = e->key;
        e->pub.def = e->def;
        e->pub.env = (const char *const *) e->env;

        slot = schema_hash(e->key) & schema->mask;
        while (schema->table[slot] != 0) {
            slot = (slot + 1) & schema->mask;
        }
        schema->table[slot] = (uint32_t) i + 1;
    }

    return 0;
}

/* Build a schema from a loaded document; root is freed. */
static int
schema_build(cs_schema_t **out, cs_yaml_node_t *root, const char *name,
    char *err, size_t errlen)
{
    cs_schema_t *schema;
    size_t i;
    int rc;

    schema = calloc(1, sizeof(*schema));
    if (schema == NULL) {
        rc = -ENOMEM;
        goto out_free_root;
    }

    if (root != NULL) {
        schema->entries = calloc(root->n + 1, sizeof(schema_entry_t));
        if (schema->entries == NULL) {
            rc = -ENOMEM;
            goto out_free_schema;
        }

        for (i = 0; i < root->n; i++) {
            schema->n = i + 1;
            rc = schema_parse_entry(&schema->entries[i], root->keys[i],
                root->items[i], name, err, errlen);
            if (rc < 0) {
                goto out_free_schema;
            }
        }
    }

    qsort(schema->entries, schema->n, sizeof(schema_entry_t),
        schema_entry_cmp);

    rc = schema_index(schema);
    if (rc < 0) {
        goto out_free_schema;
    }

    cs_yaml_node_free(root);
    *out = schema;
    return 0;

out_free_schema:
    cs_schema_free(schema);
out_free_root:
    cs_yaml_node_free(root);
    return rc;
}

int
cs_schema_load_buffer(cs_schema_t **out, const char *buf, size_t len,
    const char *name, char *err, size_t errlen)
{
    cs_yaml_node_t *root = NULL;
    int rc;

    rc = cs_yaml_load_buffer(buf, len, name, 0, &root, err, errlen);
    if (rc < 0) {
        return rc;
    }

    return schema_build(out, root, name, err, errlen);
}

int
cs_schema_load(cs_schema_t **schema, const char *path, char *err,
    size_t errlen)
{
    cs_yaml_node_t *root = NULL;
    const char *text;
    size_t len;
    int rc;

    if (path == NULL) {
        text = cs_schema_embedded(&len);
        return cs_schema_load_buffer(schema, text, len, "<embedded schema>",
            err, errlen);
    }

    rc = cs_yaml_load_file(path, 0, &root, err, errlen);
    if (rc < 0) {
        return rc;
    }

    return schema_build(schema, root, path, err, errlen);
}

const cs_schema_key_t *
cs_schema_lookup(const cs_schema_t *schema, const char *key)
{
    size_t slot;
    uint32_t idx;

    if (schema == NULL || schema->table == NULL) {
        return NULL;
    }

    slot = schema_hash(key) & schema->mask;
    while ((idx = schema->table[slot]) != 0) {
        if (strcmp(schema->entries[idx - 1].key, key) == 0) {
            return &schema->entries[idx - 1].pub;
        }
        slot = (slot + 1) & schema->mask;
    }

    return NULL;
}

size_t
cs_schema_count(const cs_schema_t *schema)
{
    return schema != NULL ? schema->n : 0;
}

const cs_schema_key_t *
cs_schema_at(const cs_schema_t *schema, size_t i)
{
    if (schema == NULL || i >= schema->n) {
        return NULL;
    }

    return &schema->entries[i].pub;
}

/* Every key under "prefix." sorts in one run; find its first place. */
int
cs_schema_is_section(const cs_schema_t *schema, const char *prefix)
{
    size_t lo = 0, hi, mid, plen = strlen(prefix);
    const char *k;
    int c;

    if (schema == NULL) {
        return 0;
    }

    hi = schema->n;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        k = schema->entries[mid].key;
        c = strncmp(k, prefix, plen);
        if (c < 0 || (c == 0 && k[plen] < '.')) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }

    if (lo == schema->n) {
        return 0;
    }

    k = schema->entries[lo].key;
    return strncmp(k, prefix, plen) == 0 && k[plen] == '.';
}

static int
schema_name_is_secret(const char *key)
{
    const char *leaf = strrchr(key, '.');
    static const char *const not_suffix[] = {
        "_path", "_file", "_files", "_dir", "_name", "_lifetime", "_bytes",
        "_ttl", NULL
    };
    size_t len, slen, i;

    leaf = leaf != NULL ? leaf + 1 : key;
    len = strlen(leaf);

    for (i = 0; not_suffix[i] != NULL; i++) {
        slen = strlen(not_suffix[i]);
        if (len >= slen && strcmp(leaf + len - slen, not_suffix[i]) == 0) {
            return 0;
        }
    }
    if (strstr(leaf, "tokenizer") != NULL) {
        return 0;
    }

    return strcmp(leaf, "api_key") == 0 || strcmp(leaf, "app_key") == 0
           || (len > 8 && strcmp(leaf + len - 8, "_api_key") == 0)
           || (len > 8 && strcmp(leaf + len - 8, "_app_key") == 0)
           || strstr(leaf, "password") != NULL
           || strstr(leaf, "token") != NULL;
}

int
cs_schema_is_secret(const cs_schema_t *schema, const char *key)
{
    const cs_schema_key_t *sk;

    sk = cs_schema_lookup(schema, key);
    if (sk != NULL) {
        return sk->secret;
    }

    return schema_name_is_secret(key);
}

int
cs_schema_defaults(const cs_schema_t *schema, cs_value_t **layer)
{
    cs_value_t *map, *v;
    size_t i;

    map = cs_value_map();
    if (map == NULL) {
        return -ENOMEM;
    }

    for (i = 0; i < schema->n; i++) {
        if (schema->entries[i].def == NULL) {
            continue;
        }

        v = cs_value_clone(schema->entries[i].def);
        if (v == NULL || cs_value_map_set(map, schema->entries[i].key, v)) {
            cs_value_free(map);
            return -ENOMEM;
        }
    }

    *layer = map;
    return 0;
}

static int
schema_duration_unit(const char **p, double *mult)
{
    static const struct {
        const char *name;
        double ns;
    } units[] = {
        { "ns", 1 }, { "us", 1e3 }, { "\xc2\xb5s", 1e3 },
        { "\xce\xbcs", 1e3 }, { "ms", 1e6 }, { "s", 1e9 },
        { "m", 60e9 }, { "h", 3600e9 },
    };
    size_t i, best = 0, blen = 0, len;

    /* Longest match first, so "ms" is not read as "m". */
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        len = strlen(units[i].name);
        if (strncmp(*p, units[i].name, len) == 0 && len > blen) {
            best = i;
            blen = len;
        }
    }

    if (blen == 0) {
        return -EINVAL;
    }

    *p += blen;
    *mult = units[best].ns;
    return 0;
}

int
cs_duration_parse(const char *text, double *ns)
{
    const char *p = text;
    double total = 0, num, mult;
    char *end;
    int neg = 0, is_int;

    if (cs_yaml_scalar_number(text, &num, &is_int)) {
        if (!isfinite(num)) {
            return -EINVAL;
        }
        *ns = num;
        return 0;
    }

    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    if (*p == '\0') {
        return -EINVAL;
    }

    while (*p != '\0') {
        if (!isdigit((unsigned char) *p) && *p != '.') {
            return -EINVAL;
        }

        num = strtod(p, &end);
        if (end == p) {
            return -EINVAL;
        }
        p = end;

        if (schema_duration_unit(&p, &mult) < 0) {
            return -EINVAL;
        }
        total += num * mult;
    }

    *ns = neg ? -total : total;
    return 0;
}
