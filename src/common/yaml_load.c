/*
 * YAML documents as node trees, on libyaml's event parser.
 */
#include "yaml_load.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

/* Deeper nesting than this is refused rather than risk the stack. */
#define YAML_MAX_DEPTH 512

typedef struct {
    char *name;
    cs_yaml_node_t *node;       /* borrowed from the tree */
} yaml_anchor_t;

typedef struct {
    yaml_parser_t parser;
    const char *buf;
    size_t len;
    const char *name;
    char *err;
    size_t errlen;
    size_t nodes;
    yaml_anchor_t *anchors;
    size_t n_anchors;
    size_t cap_anchors;
    cs_yaml_node_t **retired;
    size_t n_retired;
} yaml_loader_t;

static int yaml_parse_node(yaml_loader_t *ld, yaml_event_t *ev, int depth,
    cs_yaml_node_t **out);

static void __attribute__((format(printf, 4, 5)))
yaml_fail(yaml_loader_t *ld, int line, int column, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (ld->err == NULL || ld->errlen == 0) {
        return;
    }

    n = snprintf(ld->err, ld->errlen, "%s:%d:%d: ", ld->name, line, column);
    if (n < 0 || (size_t) n >= ld->errlen) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(ld->err + n, ld->errlen - n, fmt, ap);
    va_end(ap);
}

/* Line and column (1-based) of a byte offset, for reader errors that
 * carry only an offset. */
static void
yaml_offset_position(const yaml_loader_t *ld, size_t offset, int *line,
    int *column)
{
    size_t i;

    *line = 1;
    *column = 1;
    for (i = 0; i < offset && i < ld->len; i++) {
        if (ld->buf[i] == '\n') {
            (*line)++;
            *column = 1;
        } else if (((unsigned char) ld->buf[i] & 0xc0) != 0x80) {
            (*column)++;
        }
    }
}

static int
yaml_parser_fail(yaml_loader_t *ld)
{
    yaml_parser_t *p = &ld->parser;
    const char *problem = p->problem ? p->problem : "cannot parse";
    int line, column;

    if (p->error == YAML_MEMORY_ERROR) {
        return -ENOMEM;
    }

    if (p->error == YAML_READER_ERROR) {
        yaml_offset_position(ld, p->problem_offset, &line, &column);
        if (p->problem_value != -1) {
            yaml_fail(ld, line, column, "%s (byte 0x%02x)", problem,
                (unsigned) p->problem_value & 0xff);
        } else {
            yaml_fail(ld, line, column, "%s", problem);
        }
        return -EINVAL;
    }

    line = (int) p->problem_mark.line + 1;
    column = (int) p->problem_mark.column + 1;
    if (p->problem_mark.index < ld->len
        && ld->buf[p->problem_mark.index] == '\t')
    {
        yaml_fail(ld, line, column, "tab character where YAML allows only "
            "spaces (%s)", problem);
    } else if (p->context != NULL) {
        /* Where the unfinished construct began is what the user fixes. */
        yaml_fail(ld, line, column, "%s (%s started at line %d, column %d)",
            problem, p->context, (int) p->context_mark.line + 1,
            (int) p->context_mark.column + 1);
    } else {
        yaml_fail(ld, line, column, "%s", problem);
    }

    return -EINVAL;
}

static int
yaml_next(yaml_loader_t *ld, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&ld->parser, ev)) {
        return yaml_parser_fail(ld);
    }

    return 0;
}

static cs_yaml_node_t *
yaml_node_new(yaml_loader_t *ld, cs_yaml_kind_t kind, const yaml_mark_t *m)
{
    cs_yaml_node_t *node;

    if (ld->nodes >= CS_YAML_MAX_NODES) {
        yaml_fail(ld, (int) m->line + 1, (int) m->column + 1,
            "document expands to more than %d nodes", CS_YAML_MAX_NODES);
        errno = EINVAL;
        return NULL;
    }

    node = calloc(1, sizeof(*node));
    if (node == NULL) {
        errno = ENOMEM;
        return NULL;
    }

    ld->nodes++;
    node->kind = kind;
    node->line = (int) m->line + 1;
    node->column = (int) m->column + 1;

    return node;
}

void
cs_yaml_node_free(cs_yaml_node_t *node)
{
    size_t i;

    if (node == NULL) {
        return;
    }

    for (i = 0; i < node->n; i++) {
        if (node->keys != NULL) {
            cs_yaml_node_free(node->keys[i]);
        }
        cs_yaml_node_free(node->items[i]);
    }

    free(node->keys);
    free(node->items);
    free(node->text);
    free(node);
}

/* Append (key, item) to a sequence (key NULL) or mapping. */
static int
yaml_node_push(cs_yaml_node_t *node, cs_yaml_node_t *key,
    cs_yaml_node_t *item)
{
    size_t cap = node->n + 1;
    cs_yaml_node_t **items, **keys;

    items = realloc(node->items, cap * sizeof(*items));
    if (items == NULL) {
        return -ENOMEM;
    }
    node->items = items;

    if (node->kind == CS_YAML_MAPPING) {
        keys = realloc(node->keys, cap * sizeof(*keys));
        if (keys == NULL) {
            return -ENOMEM;
        }
        node->keys = keys;
        node->keys[node->n] = key;
    }

    node->items[node->n++] = item;

    return 0;
}

/* A deep copy, counted against the node bound: aliases expand here. */
static int
yaml_node_copy(yaml_loader_t *ld, const cs_yaml_node_t *src,
    const yaml_mark_t *at, cs_yaml_node_t **out)
{
    cs_yaml_node_t *dst, *k = NULL, *v = NULL;
    size_t i;
    int rc;

    dst = yaml_node_new(ld, src->kind, at);
    if (dst == NULL) {
        return -errno;
    }
    dst->line = src->line;
    dst->column = src->column;
    dst->quoted = src->quoted;

    if (src->kind == CS_YAML_SCALAR) {
        dst->text = strndup(src->text, src->len);
        dst->len = src->len;
        if (dst->text == NULL) {
            rc = -ENOMEM;
            goto out_free;
        }
        *out = dst;
        return 0;
    }

    for (i = 0; i < src->n; i++) {
        k = NULL;
        if (src->keys != NULL) {
            rc = yaml_node_copy(ld, src->keys[i], at, &k);
            if (rc < 0) {
                goto out_free;
            }
        }

        rc = yaml_node_copy(ld, src->items[i], at, &v);
        if (rc < 0) {
            cs_yaml_node_free(k);
            goto out_free;
        }

        rc = yaml_node_push(dst, k, v);
        if (rc < 0) {
            cs_yaml_node_free(k);
            cs_yaml_node_free(v);
            goto out_free;
        }
    }

    *out = dst;
    return 0;

out_free:
    cs_yaml_node_free(dst);
    return rc;
}

static int
yaml_anchor_add(yaml_loader_t *ld, const char *name, cs_yaml_node_t *node)
{
    yaml_anchor_t *a;
    size_t cap;

    if (ld->n_anchors == ld->cap_anchors) {
        cap = ld->cap_anchors ? ld->cap_anchors * 2 : 8;
        a = realloc(ld->anchors, cap * sizeof(*a));
        if (a == NULL) {
            return -ENOMEM;
        }
        ld->anchors = a;
        ld->cap_anchors = cap;
    }

    ld->anchors[ld->n_anchors].name = strdup(name);
    if (ld->anchors[ld->n_anchors].name == NULL) {
        return -ENOMEM;
    }
    ld->anchors[ld->n_anchors++].node = node;

    return 0;
}

/* The latest definition of an anchor wins, as YAML says. */
static cs_yaml_node_t *
yaml_anchor_find(yaml_loader_t *ld, const char *name)
{
    size_t i;

    for (i = ld->n_anchors; i > 0; i--) {
        if (strcmp(ld->anchors[i - 1].name, name) == 0) {
            return ld->anchors[i - 1].node;
        }
    }

    return NULL;
}

static int
yaml_parse_alias(yaml_loader_t *ld, yaml_event_t *ev, cs_yaml_node_t **out)
{
    const char *name = (const char *) ev->data.alias.anchor;
    cs_yaml_node_t *target;

    target = yaml_anchor_find(ld, name);
    if (target == NULL) {
        yaml_fail(ld, (int) ev->start_mark.line + 1,
            (int) ev->start_mark.column + 1, "unknown anchor '%s'", name);
        return -EINVAL;
    }

    return yaml_node_copy(ld, target, &ev->start_mark, out);
}

static int
yaml_parse_scalar(yaml_loader_t *ld, yaml_event_t *ev, cs_yaml_node_t **out)
{
    cs_yaml_node_t *node;
    const char *tag = (const char *) ev->data.scalar.tag;

    node = yaml_node_new(ld, CS_YAML_SCALAR, &ev->start_mark);
    if (node == NULL) {
        return -errno;
    }

    node->len = ev->data.scalar.length;
    node->text = malloc(node->len + 1);
    if (node->text == NULL) {
        cs_yaml_node_free(node);
        return -ENOMEM;
    }
    memcpy(node->text, ev->data.scalar.value, node->len);
    node->text[node->len] = '\0';

    node->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    if (tag != NULL && (strcmp(tag, YAML_STR_TAG) == 0
                        || strcmp(tag, "!") == 0))
    {
        node->quoted = 1;
    }

    *out = node;
    return 0;
}

static int
yaml_parse_sequence(yaml_loader_t *ld, yaml_event_t *start, int depth,
    cs_yaml_node_t **out)
{
    cs_yaml_node_t *node, *item;
    yaml_event_t ev;
    int rc;

    node = yaml_node_new(ld, CS_YAML_SEQUENCE, &start->start_mark);
    if (node == NULL) {
        return -errno;
    }

    for (;;) {
        rc = yaml_next(ld, &ev);
        if (rc < 0) {
            goto out_free;
        }

        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }

        rc = yaml_parse_node(ld, &ev, depth + 1, &item);
        yaml_event_delete(&ev);
        if (rc < 0) {
            goto out_free;
        }

        rc = yaml_node_push(node, NULL, item);
        if (rc < 0) {
            cs_yaml_node_free(item);
            goto out_free;
        }
    }

    *out = node;
    return 0;

out_free:
    cs_yaml_node_free(node);
    return rc;
}

static int
yaml_map_index(const cs_yaml_node_t *map, const char *key)
{
    size_t i;

    for (i = 0; i < map->n; i++) {
        if (strcmp(map->keys[i]->text, key) == 0) {
            return (int) i;
        }
    }

    return -1;
}

/*
 * Apply the `<<` merges of a mapping once its own keys are known: a key
 * written in the mapping wins, then the earlier merged mapping. Entries
 * are copied (and counted), as an alias would be.
 */
static int
yaml_apply_merge(yaml_loader_t *ld, cs_yaml_node_t *map,
    const cs_yaml_node_t *src)
{
    cs_yaml_node_t *k, *v;
    yaml_mark_t at;
    size_t i;
    int rc;

    if (src->kind == CS_YAML_SEQUENCE) {
        for (i = 0; i < src->n; i++) {
            rc = yaml_apply_merge(ld, map, src->items[i]);
            if (rc < 0) {
                return rc;
            }
        }
        return 0;
    }

    if (src->kind != CS_YAML_MAPPING) {
        yaml_fail(ld, src->line, src->column,
            "merge key '<<' needs a mapping or a sequence of mappings");
        return -EINVAL;
    }

    memset(&at, 0, sizeof(at));
    at.line = (size_t) src->line - 1;
    at.column = (size_t) src->column - 1;

    for (i = 0; i < src->n; i++) {
        if (yaml_map_index(map, src->keys[i]->text) >= 0) {
            continue;
        }

        rc = yaml_node_copy(ld, src->keys[i], &at, &k);
        if (rc < 0) {
            return rc;
        }
        rc = yaml_node_copy(ld, src->items[i], &at, &v);
        if (rc < 0) {
            cs_yaml_node_free(k);
            return rc;
        }

        rc = yaml_node_push(map, k, v);
        if (rc < 0) {
            cs_yaml_node_free(k);
            cs_yaml_node_free(v);
            return rc;
        }
    }

    return 0;
}

/*
 * A node that left the tree (a merge source) may still be an anchor's
 * target, so it lives until the whole document is loaded.
 */
static int
yaml_retire(yaml_loader_t *ld, cs_yaml_node_t *node)
{
    cs_yaml_node_t **r;

    r = realloc(ld->retired, (ld->n_retired + 1) * sizeof(*r));
    if (r == NULL) {
        cs_yaml_node_free(node);
        return -ENOMEM;
    }

    ld->retired = r;
    ld->retired[ld->n_retired++] = node;

    return 0;
}

/*
 * The keys of a mapping being read, hashed so that a duplicate is found in
 * constant time even in mappings of thousands of keys (a schema file).
 */
typedef struct {
    uint32_t *slots;            /* key index + 1; 0 is empty */
    size_t mask;
} yaml_keyset_t;

static uint32_t
yaml_key_hash(const char *s)
{
    uint32_t h = 2166136261u;

    while (*s != '\0') {
        h ^= (unsigned char) *s++;
        h *= 16777619u;
    }

    return h;
}

static int
yaml_keyset_grow(yaml_keyset_t *ks, const cs_yaml_node_t *map)
{
    size_t size = ks->slots ? (ks->mask + 1) * 2 : 16, i, slot;
    uint32_t *slots;

    slots = calloc(size, sizeof(*slots));
    if (slots == NULL) {
        return -ENOMEM;
    }

    for (i = 0; i < map->n; i++) {
        slot = yaml_key_hash(map->keys[i]->text) & (size - 1);
        while (slots[slot] != 0) {
            slot = (slot + 1) & (size - 1);
        }
        slots[slot] = (uint32_t) i + 1;
    }

    free(ks->slots);
    ks->slots = slots;
    ks->mask = size - 1;

    return 0;
}

/*
 * Index of key in map, or -1; when absent, reserve its slot for the entry
 * about to be pushed at index map->n.
 */
static int
yaml_keyset_claim(yaml_keyset_t *ks, const cs_yaml_node_t *map,
    const char *key, int *idx)
{
    size_t slot;
    uint32_t v;
    int rc;

    if (ks->slots == NULL || (map->n + 1) * 2 > ks->mask + 1) {
        rc = yaml_keyset_grow(ks, map);
        if (rc < 0) {
            return rc;
        }
    }

    slot = yaml_key_hash(key) & ks->mask;
    while ((v = ks->slots[slot]) != 0) {
        if (strcmp(map->keys[v - 1]->text, key) == 0) {
            *idx = (int) v - 1;
            return 0;
        }
        slot = (slot + 1) & ks->mask;
    }

    ks->slots[slot] = (uint32_t) map->n + 1;
    *idx = -1;
    return 0;
}

static int
yaml_parse_mapping(yaml_loader_t *ld, yaml_event_t *start, int depth,
    cs_yaml_node_t **out)
{
    cs_yaml_node_t *node, *key = NULL, *val = NULL;
    cs_yaml_node_t **merges = NULL, **tmp;
    yaml_keyset_t keyset = { NULL, 0 };
    size_t n_merges = 0, i;
    yaml_event_t ev;
    int rc, idx;

    node = yaml_node_new(ld, CS_YAML_MAPPING, &start->start_mark);
    if (node == NULL) {
        return -errno;
    }

    for (;;) {
        rc = yaml_next(ld, &ev);
        if (rc < 0) {
            goto out_free;
        }

        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }

        rc = yaml_parse_node(ld, &ev, depth + 1, &key);
        yaml_event_delete(&ev);
        if (rc < 0) {
            goto out_free;
        }

        if (key->kind != CS_YAML_SCALAR) {
            yaml_fail(ld, key->line, key->column,
                "mapping key is not a scalar");
            rc = -EINVAL;
            goto out_free_key;
        }

        rc = yaml_next(ld, &ev);
        if (rc < 0) {
            goto out_free_key;
        }
        rc = yaml_parse_node(ld, &ev, depth + 1, &val);
        yaml_event_delete(&ev);
        if (rc < 0) {
            goto out_free_key;
        }

        if (!key->quoted && strcmp(key->text, "<<") == 0) {
            tmp = realloc(merges, (n_merges + 1) * sizeof(*tmp));
            if (tmp == NULL) {
                rc = -ENOMEM;
                goto out_free_val;
            }
            merges = tmp;
            merges[n_merges++] = val;
            cs_yaml_node_free(key);
            rc = yaml_retire(ld, val);
            if (rc < 0) {
                n_merges--;
                goto out_free;
            }
            continue;
        }

        rc = yaml_keyset_claim(&keyset, node, key->text, &idx);
        if (rc < 0) {
            goto out_free_val;
        }
        if (idx >= 0) {
            yaml_fail(ld, key->line, key->column,
                "duplicate key '%s' (first at line %d)", key->text,
                node->keys[idx]->line);
            rc = -EINVAL;
            goto out_free_val;
        }

        rc = yaml_node_push(node, key, val);
        if (rc < 0) {
            goto out_free_val;
        }
    }

    for (i = 0; i < n_merges; i++) {
        rc = yaml_apply_merge(ld, node, merges[i]);
        if (rc < 0) {
            goto out_free;
        }
    }
    free(merges);
    free(keyset.slots);

    *out = node;
    return 0;

out_free_val:
    cs_yaml_node_free(val);
out_free_key:
    cs_yaml_node_free(key);
out_free:
    free(merges);
    free(keyset.slots);
    cs_yaml_node_free(node);
    return rc;
}

static int
yaml_parse_node(yaml_loader_t *ld, yaml_event_t *ev, int depth,
    cs_yaml_node_t **out)
{
    const yaml_char_t *anchor = NULL;
    int rc;

    if (depth > YAML_MAX_DEPTH) {
        yaml_fail(ld, (int) ev->start_mark.line + 1,
            (int) ev->start_mark.column + 1,
            "nesting deeper than %d levels", YAML_MAX_DEPTH);
        return -EINVAL;
    }

    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return yaml_parse_alias(ld, ev, out);

    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        rc = yaml_parse_scalar(ld, ev, out);
        break;

    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        rc = yaml_parse_sequence(ld, ev, depth, out);
        break;

    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        rc = yaml_parse_mapping(ld, ev, depth, out);
        break;

    default:
        yaml_fail(ld, (int) ev->start_mark.line + 1,
            (int) ev->start_mark.column + 1, "unexpected event");
        return -EINVAL;
    }

    if (rc == 0 && anchor != NULL) {
        rc = yaml_anchor_add(ld, (const char *) anchor, *out);
        if (rc < 0) {
            cs_yaml_node_free(*out);
        }
    }

    return rc;
}

static int
yaml_is_null_text(const char *s)
{
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0
           || strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static int
yaml_parse_document(yaml_loader_t *ld, int flags, cs_yaml_node_t **root)
{
    cs_yaml_node_t *node = NULL;
    yaml_event_t ev;
    int rc;

    *root = NULL;

    for (;;) {
        rc = yaml_next(ld, &ev);
        if (rc < 0) {
            return rc;
        }
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (ev.type != YAML_STREAM_START_EVENT
            && ev.type != YAML_DOCUMENT_START_EVENT)
        {
            break;
        }
        yaml_event_delete(&ev);
    }

    rc = yaml_parse_node(ld, &ev, 0, &node);
    yaml_event_delete(&ev);
    if (rc < 0) {
        return rc;
    }

    /* Read to the end of the document so trailing garbage is reported. */
    rc = yaml_next(ld, &ev);
    if (rc < 0) {
        cs_yaml_node_free(node);
        return rc;
    }
    yaml_event_delete(&ev);

    if (node->kind == CS_YAML_SCALAR && !node->quoted
        && yaml_is_null_text(node->text))
    {
        cs_yaml_node_free(node);
        return 0;
    }

    if (!(flags & CS_YAML_ANY_TOP) && node->kind != CS_YAML_MAPPING) {
        yaml_fail(ld, node->line, node->column,
            "top level is a %s, not a mapping of settings",
            node->kind == CS_YAML_SEQUENCE ? "sequence" : "scalar");
        cs_yaml_node_free(node);
        return -EINVAL;
    }

    *root = node;
    return 0;
}

int
cs_yaml_load_buffer(const char *buf, size_t len, const char *name,
    int flags, cs_yaml_node_t **root, char *err, size_t errlen)
{
    yaml_loader_t ld;
    size_t i;
    int rc;

    memset(&ld, 0, sizeof(ld));
    ld.buf = buf;
    ld.len = len;
    ld.name = name != NULL ? name : "<input>";
    ld.err = err;
    ld.errlen = errlen;

    if (!yaml_parser_initialize(&ld.parser)) {
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&ld.parser, (const unsigned char *) buf,
        len);
    yaml_parser_set_encoding(&ld.parser, YAML_UTF8_ENCODING);

    rc = yaml_parse_document(&ld, flags, root);

    yaml_parser_delete(&ld.parser);
    for (i = 0; i < ld.n_anchors; i++) {
        free(ld.anchors[i].name);
    }
    free(ld.anchors);
    for (i = 0; i < ld.n_retired; i++) {
        cs_yaml_node_free(ld.retired[i]);
    }
    free(ld.retired);

    return rc;
}

/*
 * Read a whole regular file of at most CS_YAML_MAX_FILE bytes. Opened
 * non-blocking, so a FIFO cannot block the open; fstat then refuses
 * anything that is not a regular file (a device such as /dev/zero would
 * never end). The read stops one byte past the cap, so a file that grows
 * after the fstat is refused too.
 */
static int
yaml_read_file(const char *path, char **bufp, size_t *lenp, char *err,
    size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0, cap;
    ssize_t n;
    int fd, rc;

    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: open: %s", path, strerror(-rc));
        return rc;
    }

    if (fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: fstat: %s", path, strerror(-rc));
        goto out_close;
    }

    if (!S_ISREG(st.st_mode)) {
        rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        snprintf(err, errlen, "%s: not a regular file", path);
        goto out_close;
    }

    if (st.st_size > CS_YAML_MAX_FILE) {
        rc = -EFBIG;
        snprintf(err, errlen, "%s: too large (%lld bytes, at most %d)", path,
            (long long) st.st_size, CS_YAML_MAX_FILE);
        goto out_close;
    }

    cap = (size_t) st.st_size + 1;
    buf = malloc(cap);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto out_close;
    }

    for (;;) {
        if (len == cap) {
            char *nb;

            if (cap > CS_YAML_MAX_FILE) {
                rc = -EFBIG;
                snprintf(err, errlen, "%s: too large (more than %d bytes)",
                    path, CS_YAML_MAX_FILE);
                goto out_free;
            }
            cap = cap * 2 > CS_YAML_MAX_FILE + 1 ? CS_YAML_MAX_FILE + 1
                : cap * 2;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                rc = -ENOMEM;
                goto out_free;
            }
            buf = nb;
        }

        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            snprintf(err, errlen, "%s: read: %s", path, strerror(-rc));
            goto out_free;
        }
        if (n == 0) {
            break;
        }
        len += (size_t) n;
    }

    close(fd);
    *bufp = buf;
    *lenp = len;
    return 0;

out_free:
    free(buf);
out_close:
    close(fd);
    return rc;
}

int
cs_yaml_load_file(const char *path, int flags, cs_yaml_node_t **root,
    char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    int rc;

    rc = yaml_read_file(path, &buf, &len, err, errlen);
    if (rc < 0) {
        return rc;
    }

    /* libyaml takes a BOM only as the first bytes; skip it ourselves so
     * the encoding we force stays UTF-8. */
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
        rc = cs_yaml_load_buffer(buf + 3, len - 3, path, flags, root, err,
            errlen);
    } else {
        rc = cs_yaml_load_buffer(buf, len, path, flags, root, err, errlen);
    }

    free(buf);
    return rc;
}

const cs_yaml_node_t *
cs_yaml_map_get(const cs_yaml_node_t *map, const char *key)
{
    int idx;

    if (map == NULL || map->kind != CS_YAML_MAPPING) {
        return NULL;
    }

    idx = yaml_map_index(map, key);

    return idx >= 0 ? map->items[idx] : NULL;
}

int
cs_yaml_scalar_bool(const char *s, int *b)
{
    static const char *const yes[] = {
        "y", "Y", "yes", "Yes", "YES", "on", "On", "ON",
        "true", "True", "TRUE", NULL
    };
    static const char *const no[] = {
        "n", "N", "no", "No", "NO", "off", "Off", "OFF",
        "false", "False", "FALSE", NULL
    };
    size_t i;

    for (i = 0; yes[i] != NULL; i++) {
        if (strcmp(s, yes[i]) == 0) {
            *b = 1;
            return 1;
        }
        if (strcmp(s, no[i]) == 0) {
            *b = 0;
            return 1;
        }
    }

    return 0;
}

/* Go's strconv.ParseInt(s, 0, 64), then ParseUint, as yaml.v2 calls it. */
static int
yaml_parse_int(const char *s, double *d)
{
    const char *p = s;
    int neg = 0, base = 10;
    unsigned long long v = 0, digit;

    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }

    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    } else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O')) {
        base = 8;
        p += 2;
    } else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B')) {
        base = 2;
        p += 2;
    } else if (p[0] == '0' && p[1] != '\0') {
        base = 8;
        p += 1;
    }

    if (*p == '\0') {
        return 0;
    }

    for (; *p != '\0'; p++) {
        if (*p >= '0' && *p <= '9') {
            digit = (unsigned) (*p - '0');
        } else if (*p >= 'a' && *p <= 'f') {
            digit = (unsigned) (*p - 'a' + 10);
        } else if (*p >= 'A' && *p <= 'F') {
            digit = (unsigned) (*p - 'A' + 10);
        } else {
            return 0;
        }
        if (digit >= (unsigned) base) {
            return 0;
        }
        if (v > (ULLONG_MAX - digit) / (unsigned) base) {
            return 0;
        }
        v = v * (unsigned) base + digit;
    }

    if (neg && v > (unsigned long long) INT64_MAX + 1) {
        return 0;
    }

    *d = neg ? -(double) v : (double) v;
    return 1;
}

/* yaml.v2's float shape: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int
yaml_is_float_shape(const char *p)
{
    int digits = 0;

    if (*p == '+' || *p == '-') {
        p++;
    }

    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            digits++;
        }
        if (digits == 0) {
            return 0;
        }
    } else {
        while (*p >= '0' && *p <= '9') {
            p++;
            digits++;
        }
        if (digits == 0) {
            return 0;
        }
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9') {
                p++;
            }
        }
    }

    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') {
            p++;
        }
        digits = 0;
        while (*p >= '0' && *p <= '9') {
            p++;
            digits++;
        }
        if (digits == 0) {
            return 0;
        }
    }

    return *p == '\0';
}

int
cs_yaml_scalar_number(const char *text, double *d, int *is_int)
{
    static const char *const inf[] = {
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL
    };
    static const char *const ninf[] = { "-.inf", "-.Inf", "-.INF", NULL };
    static const char *const nan[] = { ".nan", ".NaN", ".NAN", NULL };
    char buf[128];
    size_t i, j;

    *is_int = 0;
    for (i = 0; inf[i] != NULL; i++) {
        if (strcmp(text, inf[i]) == 0) {
            *d = INFINITY;
            return 1;
        }
    }
    for (i = 0; ninf[i] != NULL; i++) {
        if (strcmp(text, ninf[i]) == 0) {
            *d = -INFINITY;
            return 1;
        }
    }
    for (i = 0; nan[i] != NULL; i++) {
        if (strcmp(text, nan[i]) == 0) {
            *d = NAN;
            return 1;
        }
    }

    if (strchr("0123456789+-.", text[0]) == NULL || text[0] == '\0') {
        return 0;
    }

    /* yaml.v2 drops underscores before trying the number forms. */
    for (i = 0, j = 0; text[i] != '\0'; i++) {
        if (text[i] == '_') {
            continue;
        }
        if (j + 1 >= sizeof(buf)) {
            return 0;
        }
        buf[j++] = text[i];
    }
    buf[j] = '\0';

    if (yaml_parse_int(buf, d)) {
        *is_int = 1;
        return 1;
    }

    if (yaml_is_float_shape(buf)) {
        *d = strtod(buf, NULL);
        return 1;
    }

    return 0;
}

cs_value_t *
cs_yaml_scalar_value(const char *text, int quoted)
{
    double d;
    int b, is_int;

    if (quoted) {
        return cs_value_string(text);
    }
    if (yaml_is_null_text(text)) {
        return cs_value_null();
    }
    if (cs_yaml_scalar_bool(text, &b)) {
        return cs_value_bool(b);
    }
    if (cs_yaml_scalar_number(text, &d, &is_int)) {
        return cs_value_number(d);
    }

    return cs_value_string(text);
}

cs_value_t *
cs_yaml_to_value(const cs_yaml_node_t *node)
{
    cs_value_t *v, *item;
    size_t i;

    if (node == NULL) {
        return cs_value_null();
    }

    switch (node->kind) {
    case CS_YAML_SCALAR:
        return cs_yaml_scalar_value(node->text, node->quoted);

    case CS_YAML_SEQUENCE:
        v = cs_value_list();
        break;

    default:
        v = cs_value_map();
        break;
    }

    if (v == NULL) {
        return NULL;
    }

    for (i = 0; i < node->n; i++) {
        item = cs_yaml_to_value(node->items[i]);
        if (item == NULL) {
            cs_value_free(v);
            return NULL;
        }

        if (node->kind == CS_YAML_SEQUENCE) {
            if (cs_value_list_append(v, item) < 0) {
                cs_value_free(v);
                return NULL;
            }
        } else if (cs_value_map_set(v, node->keys[i]->text, item) < 0) {
            cs_value_free(v);
            return NULL;
        }
    }

    return v;
}
