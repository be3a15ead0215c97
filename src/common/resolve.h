/*
 * Configuration sources and their resolution.
 *
 * Sources, lowest to highest precedence; their names are what the wire
 * carries. The resolved value of a key is the value of the highest layer
 * that holds it (a layer holding null still wins: the setting was written
 * empty on purpose).
 *
 * Layers are flat maps (dotted key -> value, see flatten.h). The
 * `unknown` and `local-config-process` sources exist for wire
 * compatibility with the agent; configstream fills neither by itself.
 */
#ifndef CS_RESOLVE_H
#define CS_RESOLVE_H

#include <stddef.h>

#include "schema.h"
#include "value.h"

typedef enum {
    CS_SRC_DEFAULT = 0,
    CS_SRC_UNKNOWN,
    CS_SRC_FILE,
    CS_SRC_ENV,
    CS_SRC_FLEET,
    CS_SRC_LOCAL_PROCESS,
    CS_SRC_RUNTIME,
    CS_SRC_REMOTE_CONFIG,
    CS_SRC_CLI,
    CS_SRC_COUNT
} cs_source_t;

/* "default", "unknown", "file", "environment-variable",
 * "fleet-policies", "local-config-process", "agent-runtime",
 * "remote-config", "cli"; NULL when out of range. */
const char *cs_source_name(cs_source_t src);

/* The reverse; -EINVAL for an unknown name. */
int cs_source_parse(const char *name, cs_source_t *src);

/* One resolved setting. */
typedef struct {
    char *key;
    cs_source_t source;         /* the winning layer */
    cs_value_t *value;
} cs_resolved_t;

/* The resolution: settings sorted by key. */
typedef struct {
    cs_resolved_t *items;
    size_t n;
} cs_resolution_t;

/*
 * Resolve layers (indexed by source; NULL entries are empty layers) into
 * a new resolution holding copies of the winning values. 0 or -ENOMEM.
 */
int cs_resolve(cs_value_t *const layers[CS_SRC_COUNT],
    cs_resolution_t **res);
void cs_resolution_free(cs_resolution_t *res);

/* The setting of key (binary search), or NULL. */
const cs_resolved_t *cs_resolution_find(const cs_resolution_t *res,
    const char *key);

/*
 * The file layer: the main config file, typed by the schema. *files gets
 * a NULL-terminated, malloc'ed list of the files read (so the caller can
 * watch them); free it with cs_resolve_files_free(). A missing file is an
 * error (-ENOENT). Errors carry "file:line:column: message".
 */
int cs_resolve_load_file_layer(const cs_schema_t *schema, const char *path,
    cs_value_t **layer, char ***files, char *err, size_t errlen);

/*
 * The fleet-policies layer: every *.yaml file in dir, in name order, later
 * files winning key by key. A missing directory is an empty layer. *files
 * as above (may be NULL when not wanted).
 */
int cs_resolve_load_fleet_layer(const cs_schema_t *schema, const char *dir,
    cs_value_t **layer, char ***files, char *err, size_t errlen);

void cs_resolve_files_free(char **files);

/*
 * Merge src into dst key by key (src wins); src is left as it was.
 * 0 or -ENOMEM.
 */
int cs_layer_merge(cs_value_t *dst, const cs_value_t *src);

#endif /* CS_RESOLVE_H */
