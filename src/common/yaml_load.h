/*
 * YAML documents as node trees, read with libyaml's event parser.
 *
 * Every node keeps its 1-based line and column; every scalar keeps its raw
 * text and whether it was quoted (or written as a block literal), so that
 * the schema can type it later: a string-typed key keeps `NO` or `0755` as
 * written.
 *
 * Anchors and aliases are resolved by copying the anchored node; the total
 * number of nodes a document may expand to is bounded
 * (CS_YAML_MAX_NODES), so an alias bomb fails instead of exhausting
 * memory. `<<` merge keys (a mapping or a sequence of mappings) are
 * applied: keys written in the mapping itself win over merged ones.
 *
 * Rejected, with "name:line:column: message" in err and -EINVAL:
 *   - what libyaml rejects: tabs used as indentation, bad indentation,
 *     invalid UTF-8, unterminated quotes, ...
 *   - a key given twice in one mapping;
 *   - a mapping key that is not a scalar;
 *   - more than CS_YAML_MAX_NODES nodes after alias expansion;
 *   - without CS_YAML_ANY_TOP: a top level that is not a mapping.
 * An empty document (or one holding only comments, or `null`) loads as
 * *root = NULL. A UTF-8 byte-order mark is accepted. Only the first
 * document of a stream is read.
 */
#ifndef CS_YAML_LOAD_H
#define CS_YAML_LOAD_H

#include <stddef.h>

#include "value.h"

#define CS_YAML_MAX_NODES 100000

/*
 * The largest file cs_yaml_load_file() reads. A datadog.yaml is a few
 * hundred KB at most, and a larger configuration would make a snapshot
 * above gRPC's default 4 MiB receive limit anyway.
 */
#define CS_YAML_MAX_FILE (4 * 1024 * 1024)

enum {
    CS_YAML_ANY_TOP = 0x1       /* accept a scalar or sequence at the top */
};

typedef enum {
    CS_YAML_SCALAR = 0,
    CS_YAML_SEQUENCE,
    CS_YAML_MAPPING
} cs_yaml_kind_t;

typedef struct cs_yaml_node cs_yaml_node_t;

struct cs_yaml_node {
    cs_yaml_kind_t kind;
    int line;                   /* 1-based */
    int column;                 /* 1-based */

    /* CS_YAML_SCALAR */
    char *text;                 /* NUL-terminated raw text */
    size_t len;
    int quoted;                 /* quoted or block scalar: a string */

    /* CS_YAML_SEQUENCE: items; CS_YAML_MAPPING: keys[i] -> items[i] */
    size_t n;
    cs_yaml_node_t **keys;      /* scalars; NULL for a sequence */
    cs_yaml_node_t **items;
};

/*
 * Load a regular file of at most CS_YAML_MAX_FILE bytes. Besides the
 * errors above: "path: open: ..." (its -errno), "path: not a regular
 * file" (-EINVAL, -EISDIR for a directory: a FIFO, a device or a symlink
 * to one is refused without blocking or reading it), "path: too large (N
 * bytes, at most 4194304)" (-EFBIG). Every YAML file configstream reads
 * (config, fleet policies, schema) goes through here.
 */
int cs_yaml_load_file(const char *path, int flags, cs_yaml_node_t **root,
    char *err, size_t errlen);

/* name is the file name used in error messages. */
int cs_yaml_load_buffer(const char *buf, size_t len, const char *name,
    int flags, cs_yaml_node_t **root, char *err, size_t errlen);

void cs_yaml_node_free(cs_yaml_node_t *node);

/* The value of key in a mapping node, or NULL. */
const cs_yaml_node_t *cs_yaml_map_get(const cs_yaml_node_t *map,
    const char *key);

/*
 * The untyped value of a node, typed as YAML 1.1 (Go's yaml.v2) types
 * plain scalars: null (~, null, empty), booleans (true/false, yes/no,
 * on/off, y/n in any of their usual cases), integers (decimal, 0x hex,
 * 0o and leading-0 octal, 0b binary, `_` separators), floats (with .inf
 * and .nan); anything else, and every quoted scalar, is a string.
 * NULL node -> null value. Returns NULL on ENOMEM.
 *
 * Numbers are doubles, as google.protobuf.Value carries them: integers
 * beyond 2^53 lose precision. Settings that hold such numbers (API keys,
 * ids) are strings in the schema, which keeps their text.
 */
cs_value_t *cs_yaml_to_value(const cs_yaml_node_t *node);

/* The plain-scalar typing above, on text alone. */
cs_value_t *cs_yaml_scalar_value(const char *text, int quoted);

/*
 * Parse the text of a plain scalar as YAML 1.1 would: 1 when it is a bool
 * (*b set), 0 when not. Likewise for an integer or float number (*d set).
 */
int cs_yaml_scalar_bool(const char *text, int *b);
int cs_yaml_scalar_number(const char *text, double *d, int *is_int);

#endif /* CS_YAML_LOAD_H */
