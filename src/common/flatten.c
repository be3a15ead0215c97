/*
 * From a YAML tree to a flat layer typed by the schema.
 */
#include "flatten.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The largest integer an int-typed key takes: 2^53 - 1, the last one a
 * double (google.protobuf.Value's number) holds exactly with all below. */
#define FLATTEN_INT_MAX 9007199254740991.0

/* 2^63 nanoseconds, past Go's time.Duration. */
#define FLATTEN_DURATION_MAX 9223372036854775808.0

typedef struct {
    const cs_schema_t *schema;
    const char *name;
    cs_value_t *flat;
    cs_value_t *pos;
    char *err;
    size_t errlen;
} flatten_ctx_t;

static void __attribute__((format(printf, 6, 7)))
flatten_fail(char *err, size_t errlen, const char *name,
    const cs_yaml_node_t *node, const char *key, const char *fmt, ...)
{
    va_list ap;
    int n = 0;

    if (err == NULL || errlen == 0) {
        return;
    }

    if (name != NULL && node != NULL) {
        n = snprintf(err, errlen, "%s:%d:%d: %s: ", name, node->line,
            node->column, key);
    } else if (name != NULL) {
        n = snprintf(err, errlen, "%s: %s: ", name, key);
    } else {
        n = snprintf(err, errlen, "%s: ", key);
    }
    if (n < 0 || (size_t) n >= errlen) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(err + n, errlen - n, fmt, ap);
    va_end(ap);
}

static const char *
flatten_kind_name(const cs_yaml_node_t *node)
{
    return node->kind == CS_YAML_SEQUENCE ? "a sequence" : "a mapping";
}

/* What a scalar type expects, for error messages. */
static const char *
flatten_type_what(cs_type_t type)
{
    switch (type) {
    case CS_TYPE_BOOL:
        return "a boolean";
    case CS_TYPE_INT:
        return "an integer";
    case CS_TYPE_FLOAT:
        return "a number";
    case CS_TYPE_DURATION:
        return "a duration";
    default:
        return "a string";
    }
}

/* What is wrong with a key, or NULL when nothing is. */
static const char *
flatten_key_problem(const char *key, size_t len)
{
    size_t i;

    if (len == 0) {
        return "empty key";
    }
    if (len > CS_KEY_MAX) {
        return "key too long";
    }
    if (!cs_utf8_valid(key, len)) {
        return "key is not valid UTF-8";
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char) key[i] < 0x20 || key[i] == 0x7f) {
            return "key contains control characters";
        }
    }

    return NULL;
}

int
cs_flatten_key_check(const char *key, char *err, size_t errlen)
{
    const char *problem;
    size_t len = strlen(key);

    problem = flatten_key_problem(key, len);
    if (problem == NULL) {
        return 0;
    }

    if (len > CS_KEY_MAX) {
        snprintf(err, errlen, "%s (%zu bytes, at most %d)", problem, len,
            CS_KEY_MAX);
    } else {
        snprintf(err, errlen, "%s", problem);
    }

    return -EINVAL;
}

static int
flatten_is_null(const cs_yaml_node_t *node)
{
    const char *t;

    if (node == NULL) {
        return 1;
    }
    if (node->kind != CS_YAML_SCALAR || node->quoted) {
        return 0;
    }

    t = node->text;
    return t[0] == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0
           || strcmp(t, "Null") == 0 || strcmp(t, "NULL") == 0;
}

/* The spellings users write for booleans, in any case. */
static int
flatten_parse_bool(const char *s, int *b)
{
    static const char *const yes[] = { "true", "yes", "on", "1", "y", "t",
                                       NULL };
    static const char *const no[] = { "false", "no", "off", "0", "n", "f",
                                      NULL };
    size_t i;

    for (i = 0; yes[i] != NULL; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *b = 1;
            return 1;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *b = 0;
            return 1;
        }
    }

    return 0;
}

/* Scalars inside lists and maps of strings become their text. */
static cs_value_t *
flatten_text_value(const cs_yaml_node_t *node)
{
    if (node->kind == CS_YAML_SCALAR) {
        return cs_value_string_len(node->text, node->len);
    }

    return cs_yaml_to_value(node);
}

/* The agent casts a string to a string slice by splitting on spaces. */
static cs_value_t *
flatten_split_words(const char *s)
{
    cs_value_t *list, *word;
    const char *p = s, *start;

    list = cs_value_list();
    if (list == NULL) {
        return NULL;
    }

    for (;;) {
        while (*p != '\0' && isspace((unsigned char) *p)) {
            p++;
        }
        if (*p == '\0') {
            break;
        }

        start = p;
        while (*p != '\0' && !isspace((unsigned char) *p)) {
            p++;
        }

        word = cs_value_string_len(start, (size_t) (p - start));
        if (word == NULL || cs_value_list_append(list, word) < 0) {
            cs_value_free(list);
            return NULL;
        }
    }

    return list;
}

static int
flatten_convert_list(const cs_yaml_node_t *node, cs_value_t **out)
{
    cs_value_t *list, *item;
    size_t i;

    if (node->kind == CS_YAML_SCALAR) {
        *out = flatten_split_words(node->text);
        return *out != NULL ? 0 : -ENOMEM;
    }

    list = cs_value_list();
    if (list == NULL) {
        return -ENOMEM;
    }

    for (i = 0; i < node->n; i++) {
        item = flatten_text_value(node->items[i]);
        if (item == NULL || cs_value_list_append(list, item) < 0) {
            cs_value_free(list);
            return -ENOMEM;
        }
    }

    *out = list;
    return 0;
}

static int
flatten_convert_map(cs_type_t type, const cs_yaml_node_t *node,
    cs_value_t **out)
{
    const cs_yaml_node_t *v;
    cs_value_t *map, *item;
    size_t i;
    int rc;

    map = cs_value_map();
    if (map == NULL) {
        return -ENOMEM;
    }

    for (i = 0; i < node->n; i++) {
        v = node->items[i];

        if (type == CS_TYPE_MAP_LIST && flatten_is_null(v)) {
            item = cs_value_list();
        } else if (type == CS_TYPE_MAP_LIST && v->kind == CS_YAML_SCALAR) {
            /* A single string is a list of one, not split into words. */
            item = cs_value_list();
            if (item != NULL
                && cs_value_list_append(item,
                       cs_value_string_len(v->text, v->len)) < 0)
            {
                item = NULL;
            }
        } else if (type == CS_TYPE_MAP_LIST) {
            rc = flatten_convert_list(v, &item);
            if (rc < 0) {
                cs_value_free(map);
                return rc;
            }
        } else {
            item = flatten_text_value(v);
        }

        if (item == NULL
            || cs_value_map_set(map, node->keys[i]->text, item) < 0)
        {
            cs_value_free(map);
            return -ENOMEM;
        }
    }

    *out = map;
    return 0;
}

static int
flatten_convert_scalar(cs_type_t type, const char *key,
    const cs_yaml_node_t *node, const char *name, cs_value_t **out,
    char *err, size_t errlen)
{
    const char *what;
    double d;
    int b, is_int;

    switch (type) {
    case CS_TYPE_BOOL:
        if (flatten_parse_bool(node->text, &b)) {
            *out = cs_value_bool(b);
            goto out_done;
        }
        what = "a boolean";
        break;

    case CS_TYPE_INT:
        if (cs_yaml_scalar_number(node->text, &d, &is_int)
            && isfinite(d) && d == floor(d))
        {
            /* Beyond 2^53 a double no longer holds every integer: the
             * value streamed would not be the one written. */
            if (fabs(d) > FLATTEN_INT_MAX) {
                flatten_fail(err, errlen, name, node, key, "expected an "
                    "integer between -%.0f and %.0f, got '%s'",
                    FLATTEN_INT_MAX, FLATTEN_INT_MAX, node->text);
                return -EINVAL;
            }
            *out = cs_value_number(d);
            goto out_done;
        }
        what = "an integer";
        break;

    case CS_TYPE_FLOAT:
        if (cs_yaml_scalar_number(node->text, &d, &is_int)) {
            *out = cs_value_number(d);
            goto out_done;
        }
        what = "a number";
        break;

    case CS_TYPE_DURATION:
        if (cs_duration_parse(node->text, &d) == 0) {
            /* Go's time.Duration is int64 nanoseconds (about 292 years). */
            if (!(fabs(d) < FLATTEN_DURATION_MAX)) {
                flatten_fail(err, errlen, name, node, key, "expected a "
                    "duration between -2562047h and 2562047h, got '%s'",
                    node->text);
                return -EINVAL;
            }
            *out = cs_value_number(d);
            goto out_done;
        }
        what = "a duration";
        break;

    default:
        *out = cs_value_string_len(node->text, node->len);
        goto out_done;
    }

    flatten_fail(err, errlen, name, node, key, "expected %s, got '%s'",
        what, node->text);
    return -EINVAL;

out_done:
    return *out != NULL ? 0 : -ENOMEM;
}

int
cs_flatten_convert(cs_type_t type, const char *key,
    const cs_yaml_node_t *node, const char *name, cs_value_t **out,
    char *err, size_t errlen)
{
    *out = NULL;

    if (flatten_is_null(node)) {
        *out = cs_value_null();
        return *out != NULL ? 0 : -ENOMEM;
    }

    switch (type) {
    case CS_TYPE_ANY:
        *out = cs_yaml_to_value(node);
        return *out != NULL ? 0 : -ENOMEM;

    case CS_TYPE_LIST:
        return flatten_convert_list(node, out);

    case CS_TYPE_MAP:
    case CS_TYPE_MAP_LIST:
        if (node->kind != CS_YAML_MAPPING) {
            flatten_fail(err, errlen, name, node, key,
                "expected a mapping, got %s",
                node->kind == CS_YAML_SCALAR ? "a scalar" : "a sequence");
            return -EINVAL;
        }
        return flatten_convert_map(type, node, out);

    default:
        break;
    }

    /* A scalar-typed key takes no collection, whatever it holds. */
    if (node->kind != CS_YAML_SCALAR) {
        flatten_fail(err, errlen, name, node, key, "expected %s, got %s",
            flatten_type_what(type), flatten_kind_name(node));
        return -EINVAL;
    }

    return flatten_convert_scalar(type, key, node, name, out, err, errlen);
}

int
cs_flatten_typed(const cs_schema_t *schema, const char *key,
    const cs_yaml_node_t *node, const char *name, cs_value_t **out,
    char *err, size_t errlen)
{
    const cs_schema_key_t *sk;

    sk = schema != NULL ? cs_schema_lookup(schema, key) : NULL;

    return cs_flatten_convert(sk != NULL ? sk->type : CS_TYPE_ANY, key,
        node, name, out, err, errlen);
}

static int
flatten_set(flatten_ctx_t *ctx, const char *key, cs_value_t *val,
    const cs_yaml_node_t *at)
{
    cs_value_t *where;
    int rc;

    rc = cs_value_map_set(ctx->flat, key, val);
    if (rc < 0 || ctx->pos == NULL) {
        return rc;
    }

    where = cs_value_list();
    if (where == NULL) {
        return -ENOMEM;
    }
    if (cs_value_list_append(where, cs_value_number(at->line)) < 0
        || cs_value_list_append(where, cs_value_number(at->column)) < 0)
    {
        cs_value_free(where);
        return -ENOMEM;
    }

    return cs_value_map_set(ctx->pos, key, where);
}

static int flatten_map(flatten_ctx_t *ctx, const cs_yaml_node_t *map,
    const char *prefix);

/* A key the store could not hold, or that no one could type, is refused
 * at its position rather than at commit. */
static int
flatten_key_bad(flatten_ctx_t *ctx, const char *key,
    const cs_yaml_node_t *at)
{
    char msg[128];

    if (cs_flatten_key_check(key, msg, sizeof(msg)) == 0) {
        return 0;
    }

    snprintf(ctx->err, ctx->errlen, "%s:%d:%d: %s", ctx->name, at->line,
        at->column, msg);
    return -EINVAL;
}

static int
flatten_has_dotted_key(const cs_yaml_node_t *map)
{
    size_t i;

    for (i = 0; i < map->n; i++) {
        if (strchr(map->keys[i]->text, '.') != NULL) {
            return 1;
        }
    }

    return 0;
}

static int
flatten_entry(flatten_ctx_t *ctx, const char *key,
    const cs_yaml_node_t *knode, const cs_yaml_node_t *val)
{
    const cs_schema_key_t *sk;
    cs_value_t *v = NULL;
    int rc;

    sk = cs_schema_lookup(ctx->schema, key);
    if (sk != NULL) {
        rc = cs_flatten_convert(sk->type, key, val, ctx->name, &v,
            ctx->err, ctx->errlen);
        if (rc < 0) {
            return rc;
        }
        return flatten_set(ctx, key, v,
            flatten_is_null(val) ? knode : val);
    }

    if (val != NULL && val->kind == CS_YAML_MAPPING
        && (cs_schema_is_section(ctx->schema, key)
            || (val->n > 0 && !flatten_has_dotted_key(val))))
    {
        return flatten_map(ctx, val, key);
    }

    v = cs_yaml_to_value(val);
    if (v == NULL) {
        return -ENOMEM;
    }

    return flatten_set(ctx, key, v, flatten_is_null(val) ? knode : val);
}

static int
flatten_map(flatten_ctx_t *ctx, const cs_yaml_node_t *map,
    const char *prefix)
{
    char *key;
    size_t i, j;
    int rc;

    for (i = 0; i < map->n; i++) {
        if (prefix != NULL) {
            rc = asprintf(&key, "%s.%s", prefix, map->keys[i]->text);
        } else {
            rc = asprintf(&key, "%s", map->keys[i]->text);
        }
        if (rc < 0) {
            return -ENOMEM;
        }

        /* The agent's keys are case-insensitive: it lower-cases them. */
        for (j = 0; key[j] != '\0'; j++) {
            key[j] = (char) tolower((unsigned char) key[j]);
        }

        rc = flatten_key_bad(ctx, key, map->keys[i]);
        if (rc < 0) {
            free(key);
            return rc;
        }

        rc = flatten_entry(ctx, key, map->keys[i], map->items[i]);
        free(key);
        if (rc < 0) {
            return rc;
        }
    }

    return 0;
}

int
cs_flatten_node(const cs_schema_t *schema, const cs_yaml_node_t *root,
    const char *name, cs_value_t **flat, cs_value_t **pos, char *err,
    size_t errlen)
{
    flatten_ctx_t ctx;
    int rc;

    memset(&ctx, 0, sizeof(ctx));
    ctx.schema = schema;
    ctx.name = name != NULL ? name : "<input>";
    ctx.err = err;
    ctx.errlen = errlen;

    ctx.flat = cs_value_map();
    if (ctx.flat == NULL) {
        return -ENOMEM;
    }

    if (pos != NULL) {
        ctx.pos = cs_value_map();
        if (ctx.pos == NULL) {
            rc = -ENOMEM;
            goto out_free;
        }
    }

    if (root != NULL) {
        if (root->kind != CS_YAML_MAPPING) {
            snprintf(err, errlen, "%s:%d:%d: top level is not a mapping",
                ctx.name, root->line, root->column);
            rc = -EINVAL;
            goto out_free;
        }

        rc = flatten_map(&ctx, root, NULL);
        if (rc < 0) {
            goto out_free;
        }
    }

    *flat = ctx.flat;
    if (pos != NULL) {
        *pos = ctx.pos;
    }
    return 0;

out_free:
    cs_value_free(ctx.pos);
    cs_value_free(ctx.flat);
    return rc;
}

int
cs_flatten_file(const cs_schema_t *schema, const char *path,
    cs_value_t **flat, cs_value_t **pos, char *err, size_t errlen)
{
    cs_yaml_node_t *root = NULL;
    int rc;

    rc = cs_yaml_load_file(path, 0, &root, err, errlen);
    if (rc < 0) {
        return rc;
    }

    rc = cs_flatten_node(schema, root, path, flat, pos, err, errlen);
    cs_yaml_node_free(root);

    return rc;
}

int
cs_flatten_value_parse(const cs_schema_t *schema, const char *key,
    const char *text, cs_value_t **out, char *err, size_t errlen)
{
    const cs_schema_key_t *sk;
    cs_yaml_node_t *node = NULL;
    int rc;

    rc = cs_flatten_key_check(key, err, errlen);
    if (rc < 0) {
        return rc;
    }
    if (!cs_utf8_valid(text, strlen(text))) {
        snprintf(err, errlen, "%s: value is not valid UTF-8", key);
        return -EINVAL;
    }

    rc = cs_yaml_load_buffer(text, strlen(text), key, CS_YAML_ANY_TOP,
        &node, err, errlen);
    if (rc < 0) {
        return rc;
    }

    sk = schema != NULL ? cs_schema_lookup(schema, key) : NULL;
    rc = cs_flatten_convert(sk != NULL ? sk->type : CS_TYPE_ANY, key, node,
        NULL, out, err, errlen);
    cs_yaml_node_free(node);

    return rc;
}
