/*
 * The settings schema: every known setting with its type, its default, the
 * environment variables bound to it and whether its value is a secret.
 *
 * The default schema (data/default-schema.yaml: the Datadog core agent's
 * settings plus configstream's own) is embedded in every binary;
 * `--schema FILE` replaces it. A schema file is one YAML mapping, one
 * entry per dotted key:
 *
 *   api_key: {type: string, secret: true}
 *   cmd_port: {type: int, default: 5001}
 *   apm_config.max_tps: {type: float, default: 10.0, env: [DD_APM_MAX_TPS]}
 *
 * type is one of bool, int, float, string, duration (nanoseconds; Go
 * strings such as 1m30s are accepted too), list (of strings), map
 * (string -> string), map_list (string -> list of strings) or any (the
 * value keeps its YAML type). Without `env` the key binds DD_ + the key
 * upper-cased with dots as underscores; `env: []` binds nothing. A key
 * without `default` has none (it is absent from the default layer).
 *
 * Lookups are hash lookups; cs_schema_at() walks keys in sorted order.
 * A loaded schema is immutable and may be shared between threads.
 */
#ifndef CS_SCHEMA_H
#define CS_SCHEMA_H

#include <stddef.h>

#include "value.h"

typedef enum {
    CS_TYPE_ANY = 0,
    CS_TYPE_BOOL,
    CS_TYPE_INT,
    CS_TYPE_FLOAT,
    CS_TYPE_STRING,
    CS_TYPE_DURATION,
    CS_TYPE_LIST,
    CS_TYPE_MAP,
    CS_TYPE_MAP_LIST
} cs_type_t;

typedef struct cs_schema cs_schema_t;

typedef struct {
    const char *key;
    cs_type_t type;
    const cs_value_t *def;      /* NULL: declared without a default */
    const char *const *env;     /* names, in binding order */
    size_t n_env;
    int secret;
} cs_schema_key_t;

/*
 * Load a schema. path NULL means the embedded default. Returns 0, or a
 * negative errno with "file:line:column: message" in err.
 */
int cs_schema_load(cs_schema_t **schema, const char *path, char *err,
    size_t errlen);
int cs_schema_load_buffer(cs_schema_t **schema, const char *buf,
    size_t len, const char *name, char *err, size_t errlen);
void cs_schema_free(cs_schema_t *schema);

/* The embedded default schema's text. */
const char *cs_schema_embedded(size_t *len);

/* The entry of key, or NULL when the key is unknown. */
const cs_schema_key_t *cs_schema_lookup(const cs_schema_t *schema,
    const char *key);

/* Number of keys, and the i-th in sorted key order. */
size_t cs_schema_count(const cs_schema_t *schema);
const cs_schema_key_t *cs_schema_at(const cs_schema_t *schema, size_t i);

/*
 * 1 when some known key starts with prefix followed by a dot (the prefix
 * names a section, such as logs_config), else 0.
 */
int cs_schema_is_section(const cs_schema_t *schema, const char *prefix);

/*
 * 1 when the key's value must not be shown: the schema says so, or, for a
 * key the schema does not know, its last component names a credential
 * (api_key, app_key, *_api_key, *password*, *token*, except paths).
 */
int cs_schema_is_secret(const cs_schema_t *schema, const char *key);

/* "bool", "int", ...; and the reverse (-EINVAL for an unknown name). */
const char *cs_type_name(cs_type_t type);
int cs_type_parse(const char *name, cs_type_t *type);

/*
 * The default layer: a map of every key that has a default to a copy of
 * it. Returns 0 or -ENOMEM.
 */
int cs_schema_defaults(const cs_schema_t *schema, cs_value_t **layer);

/*
 * Parse a duration: a Go duration string ("300ms", "1m30s", "-1.5h"; units
 * ns, us, µs, ms, s, m, h) or a plain number of nanoseconds. 0 or -EINVAL.
 */
int cs_duration_parse(const char *text, double *ns);

#endif /* CS_SCHEMA_H */
