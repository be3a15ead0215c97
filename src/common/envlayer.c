/*
 * The environment-variable layer.
 */
#include "envlayer.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flatten.h"
#include "yaml_load.h"

/* The value of name in envp, or NULL. */
static const char *
envlayer_get(char *const *envp, const char *name)
{
    size_t len = strlen(name);

    if (envp == NULL) {
        return NULL;
    }

    for (; *envp != NULL; envp++) {
        if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=') {
            return *envp + len + 1;
        }
    }

    return NULL;
}

static int
envlayer_looks_json(const char *text, char open)
{
    while (isspace((unsigned char) *text)) {
        text++;
    }

    return *text == open;
}

/* JSON is flow YAML: parse it with the YAML loader, then type it. */
static int
envlayer_parse_json(cs_type_t type, const char *key, const char *text,
    cs_value_t **out, char *err, size_t errlen)
{
    cs_yaml_node_t *node = NULL;
    int rc;

    rc = cs_yaml_load_buffer(text, strlen(text), key, CS_YAML_ANY_TOP,
        &node, err, errlen);
    if (rc < 0) {
        return rc;
    }

    rc = cs_flatten_convert(type, key, node, NULL, out, err, errlen);
    cs_yaml_node_free(node);

    return rc;
}

int
cs_envlayer_value(const cs_schema_t *schema, const char *key,
    const char *text, cs_value_t **out, char *err, size_t errlen)
{
    const cs_schema_key_t *sk;
    cs_yaml_node_t scalar;
    cs_type_t type;

    /* Settings travel in proto3 strings, which must be UTF-8. */
    if (!cs_utf8_valid(text, strlen(text))) {
        snprintf(err, errlen, "%s: not valid UTF-8", key);
        return -EINVAL;
    }

    sk = cs_schema_lookup(schema, key);
    type = sk != NULL ? sk->type : CS_TYPE_STRING;

    switch (type) {
    case CS_TYPE_STRING:
        *out = cs_value_string(text);
        return *out != NULL ? 0 : -ENOMEM;

    case CS_TYPE_ANY:
        if (envlayer_looks_json(text, '[') || envlayer_looks_json(text, '{'))
        {
            return envlayer_parse_json(type, key, text, out, err, errlen);
        }
        *out = cs_value_string(text);
        return *out != NULL ? 0 : -ENOMEM;

    case CS_TYPE_LIST:
        if (envlayer_looks_json(text, '[')) {
            return envlayer_parse_json(type, key, text, out, err, errlen);
        }
        break;

    case CS_TYPE_MAP:
    case CS_TYPE_MAP_LIST:
        return envlayer_parse_json(type, key, text, out, err, errlen);

    default:
        break;
    }

    /* A quoted scalar: the text is a value, never YAML null. */
    memset(&scalar, 0, sizeof(scalar));
    scalar.kind = CS_YAML_SCALAR;
    scalar.text = (char *) text;
    scalar.len = strlen(text);
    scalar.quoted = 1;

    return cs_flatten_convert(type, key, &scalar, NULL, out, err, errlen);
}

static cs_value_t *
envlayer_split(const char *text, char sep)
{
    cs_value_t *list, *item;
    const char *p = text, *end;

    list = cs_value_list();
    while (list != NULL && *p != '\0') {
        end = strchr(p, sep);
        if (end == NULL) {
            end = p + strlen(p);
        }
        if (end > p) {
            item = cs_value_string_len(p, (size_t) (end - p));
            if (item == NULL || cs_value_list_append(list, item) < 0) {
                cs_value_free(list);
                return NULL;
            }
        }
        p = *end != '\0' ? end + 1 : end;
    }

    return list;
}

/*
 * The agent reads its proxy from DD_PROXY_* or, failing that, from the
 * conventional HTTP_PROXY, HTTPS_PROXY and NO_PROXY (upper case first);
 * DD_PROXY_NO_PROXY is space-separated, NO_PROXY comma-separated.
 */
/*
 * The first of names set, for key, when the schema has key; *text NULL
 * when none is. A value that is not UTF-8 is an error naming the variable.
 */
static int
envlayer_proxy_var(const cs_schema_t *schema, char *const *envp,
    const char *key, const char *const *names, const char **text,
    char *err, size_t errlen)
{
    *text = NULL;
    if (cs_schema_lookup(schema, key) == NULL) {
        return 0;
    }

    for (; *names != NULL; names++) {
        *text = envlayer_get(envp, *names);
        if (*text != NULL && (*text)[0] != '\0') {
            break;
        }
        *text = NULL;
    }
    if (*text != NULL && !cs_utf8_valid(*text, strlen(*text))) {
        snprintf(err, errlen, "%s: %s: not valid UTF-8", *names, key);
        return -EINVAL;
    }

    return 0;
}

/*
 * The agent reads its proxy from DD_PROXY_* or, failing that, from the
 * conventional HTTP_PROXY, HTTPS_PROXY and NO_PROXY (upper case first);
 * DD_PROXY_NO_PROXY is space-separated, NO_PROXY comma-separated.
 */
static int
envlayer_proxy(const cs_schema_t *schema, char *const *envp,
    cs_value_t *map, char *err, size_t errlen)
{
    static const char *const http[] = { "DD_PROXY_HTTP", "HTTP_PROXY",
                                        "http_proxy", NULL };
    static const char *const https[] = { "DD_PROXY_HTTPS", "HTTPS_PROXY",
                                         "https_proxy", NULL };
    static const char *const no_proxy[] = { "NO_PROXY", "no_proxy", NULL };
    static const char *const dd_no_proxy[] = { "DD_PROXY_NO_PROXY", NULL };
    const char *v;
    cs_value_t *val;
    int rc;

    rc = envlayer_proxy_var(schema, envp, "proxy.http", http, &v, err,
        errlen);
    if (rc == 0 && v != NULL) {
        rc = cs_value_map_set(map, "proxy.http", cs_value_string(v));
    }
    if (rc < 0) {
        return rc;
    }

    rc = envlayer_proxy_var(schema, envp, "proxy.https", https, &v, err,
        errlen);
    if (rc == 0 && v != NULL) {
        rc = cs_value_map_set(map, "proxy.https", cs_value_string(v));
    }
    if (rc < 0) {
        return rc;
    }

    rc = envlayer_proxy_var(schema, envp, "proxy.no_proxy", dd_no_proxy, &v,
        err, errlen);
    if (rc < 0) {
        return rc;
    }
    if (v != NULL) {
        val = envlayer_split(v, ' ');
    } else {
        rc = envlayer_proxy_var(schema, envp, "proxy.no_proxy", no_proxy,
            &v, err, errlen);
        if (rc < 0 || v == NULL) {
            return rc;
        }
        val = envlayer_split(v, ',');
    }

    if (val == NULL) {
        return -ENOMEM;
    }

    return cs_value_map_set(map, "proxy.no_proxy", val);
}

int
cs_envlayer_load(const cs_schema_t *schema, char *const *envp,
    cs_value_t **layer, char *err, size_t errlen)
{
    const cs_schema_key_t *sk;
    cs_value_t *map, *v = NULL;
    const char *text;
    char msg[512] = "";
    size_t i, j;
    int rc;

    map = cs_value_map();
    if (map == NULL) {
        return -ENOMEM;
    }

    for (i = 0; i < cs_schema_count(schema); i++) {
        sk = cs_schema_at(schema, i);

        for (j = 0; j < sk->n_env; j++) {
            text = envlayer_get(envp, sk->env[j]);
            if (text != NULL && text[0] != '\0') {
                break;
            }
        }
        if (j == sk->n_env) {
            continue;
        }

        rc = cs_envlayer_value(schema, sk->key, text, &v, msg, sizeof(msg));
        if (rc < 0) {
            snprintf(err, errlen, "%s: %s", sk->env[j], msg);
            goto out_free;
        }

        rc = cs_value_map_set(map, sk->key, v);
        if (rc < 0) {
            goto out_free;
        }
    }

    rc = envlayer_proxy(schema, envp, map, err, errlen);
    if (rc < 0) {
        goto out_free;
    }

    *layer = map;
    return 0;

out_free:
    cs_value_free(map);
    return rc;
}
