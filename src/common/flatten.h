/*
 * From a YAML tree to a flat layer: dotted keys -> values typed by the
 * schema.
 *
 * Flattening:
 *   - nested mappings become dotted leaves (logs_config.enabled); keys
 *     are lower-cased on the path, as the agent treats them;
 *   - a dotted key written at any level is the same as the nested path
 *     (`logs_config.use_http: true` == `logs_config: {use_http: true}`);
 *     when both are written, the one later in the file wins;
 *   - a mapping stays one setting when the schema knows its path as a key
 *     (of type map, map_list or any), or when the path is not a known
 *     section and one of its own keys contains a dot (URLs as keys,
 *     e.g. additional_endpoints);
 *   - an empty mapping that is not a known section is one setting ({}).
 *
 * Typing (known keys; unknown keys keep their YAML 1.1 type):
 *   bool      true/false, yes/no, on/off, y/n, 1/0, any case, quoted too
 *   int       integers (0x, 0o, leading-0 octal), quoted too; a float
 *             with no fraction is accepted
 *   float     any number, quoted too
 *   string    the scalar's text exactly as written (`NO`, `0755` stay)
 *   duration  a Go duration string or a number of nanoseconds
 *   list      a sequence (scalars become their text), or one string split
 *             on whitespace as the agent's string-slice cast does
 *   map       a mapping; scalar values become their text
 *   map_list  a mapping of lists; a single string value becomes a list of
 *             one (the agent accepts both)
 *   any       the YAML 1.1 type
 * null (or an empty value) stays null whatever the type. A value that
 * does not convert is an error:
 *   "datadog.yaml:3:12: cmd_port: expected an integer, got 'abc'"
 *
 * Functions return 0 or a negative errno (-EINVAL for bad input, with the
 * message in err).
 */
#ifndef CS_FLATTEN_H
#define CS_FLATTEN_H

#include <stddef.h>

#include "schema.h"
#include "value.h"
#include "yaml_load.h"

/*
 * Flatten root (a mapping, or NULL for an empty document) into *flat, a
 * new map. name prefixes error positions. When pos is not NULL, *pos gets
 * a map key -> [line, column] of where each setting's value was written
 * (of its key when the value is empty).
 */
int cs_flatten_node(const cs_schema_t *schema, const cs_yaml_node_t *root,
    const char *name, cs_value_t **flat, cs_value_t **pos, char *err,
    size_t errlen);

/* Load path with cs_yaml_load_file() and flatten it. */
int cs_flatten_file(const cs_schema_t *schema, const char *path,
    cs_value_t **flat, cs_value_t **pos, char *err, size_t errlen);

/*
 * Type one node as key's schema type (CS_TYPE_ANY for an unknown key).
 * Errors read "name:line:column: key: expected ..., got '...'".
 */
int cs_flatten_typed(const cs_schema_t *schema, const char *key,
    const cs_yaml_node_t *node, const char *name, cs_value_t **out,
    char *err, size_t errlen);

/*
 * Type one node as type; key (and name, when not NULL, with the node's
 * position) prefix the error message.
 */
int cs_flatten_convert(cs_type_t type, const char *key,
    const cs_yaml_node_t *node, const char *name, cs_value_t **out,
    char *err, size_t errlen);

/*
 * A key that can be a setting: 1 to CS_KEY_MAX bytes of UTF-8 without
 * control characters. Else -EINVAL with "empty key", "key too long (N
 * bytes, at most 255)", "key is not valid UTF-8" or "key contains
 * control characters" in err (the key itself is not repeated). Keys
 * written in a file are checked too, with their position.
 */
int cs_flatten_key_check(const char *key, char *err, size_t errlen);

/*
 * A value written on a command line (configstream-ctl set): key is
 * checked as above, text must be UTF-8 ("key: value is not valid
 * UTF-8"), is parsed as a YAML scalar or flow collection, then typed for
 * key. Errors read "key: expected an integer, got 'abc'".
 *
 * Typing, here and in files: a scalar-typed key (bool, int, float,
 * duration, string) refuses a sequence or mapping ("expected a boolean,
 * got a mapping"). An int-typed key takes integers of at most 2^53 - 1
 * either side of 0, the range a double (the wire's number) holds exactly;
 * a duration at most 2^63 - 1 nanoseconds either side of 0, Go's
 * time.Duration range.
 */
int cs_flatten_value_parse(const cs_schema_t *schema, const char *key,
    const char *text, cs_value_t **out, char *err, size_t errlen);

#endif /* CS_FLATTEN_H */
