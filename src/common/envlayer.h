/*
 * The environment-variable layer.
 *
 * For every schema key, the first of its bound variables (DD_ + the key
 * upper-cased with dots as underscores, or the schema's explicit list, in
 * binding order) that is set to a non-empty value. Values are typed by the
 * schema:
 *   bool      true/false, 1/0, yes/no, on/off, y/n, t/f, any case
 *   int/float a number (0x hex accepted)
 *   duration  a Go duration string or a number of nanoseconds
 *   list      a JSON array, or words separated by whitespace
 *   map       a JSON object (string values)
 *   map_list  a JSON object of arrays
 *   string    the value as is
 *   any       a JSON array or object when it looks like one, else the
 *             string
 * An unknown key has no variable. The proxy settings also follow the
 * conventional variables: proxy.http <- DD_PROXY_HTTP, HTTP_PROXY,
 * http_proxy; proxy.https likewise; proxy.no_proxy <- DD_PROXY_NO_PROXY
 * (space-separated), NO_PROXY, no_proxy (comma-separated).
 * Errors name the variable:
 *   "DD_CMD_PORT: cmd_port: expected an integer, got 'abc'"
 *   "DD_HOSTNAME: hostname: not valid UTF-8" (settings travel in proto3
 *   strings, which must be UTF-8)
 */
#ifndef CS_ENVLAYER_H
#define CS_ENVLAYER_H

#include <stddef.h>

#include "schema.h"
#include "value.h"

/*
 * Build the layer from envp (NAME=VALUE strings, NULL-terminated, such as
 * environ) into *layer, a new flat map. Returns 0, or -EINVAL with the
 * message in err, or -ENOMEM.
 */
int cs_envlayer_load(const cs_schema_t *schema, char *const *envp,
    cs_value_t **layer, char *err, size_t errlen);

/* Type one variable's text for key; used by the layer and by tests. */
int cs_envlayer_value(const cs_schema_t *schema, const char *key,
    const char *text, cs_value_t **out, char *err, size_t errlen);

#endif /* CS_ENVLAYER_H */
