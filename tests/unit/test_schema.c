/*
 * The schema (embedded default, lookups, sections, secrets, durations) and
 * schema-directed typing of a file's values.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "flatten.h"
#include "schema.h"
#include "yaml_load.h"

static const char *source_dir;

static int
setup(void **state)
{
    cs_schema_t *schema;
    char err[512];

    if (cs_schema_load(&schema, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "embedded schema: %s\n", err);
        return -1;
    }

    *state = schema;
    return 0;
}

static int
teardown(void **state)
{
    cs_schema_free(*state);
    return 0;
}

static void
test_embedded_counts(void **state)
{
    const cs_schema_t *schema = *state;
    const cs_schema_key_t *prev = NULL, *k;
    size_t i;

    /* 1458 core settings plus configstream's own and newer spellings. */
    assert_true(cs_schema_count(schema) >= 1458 + 9 + 13);

    for (i = 0; i < cs_schema_count(schema); i++) {
        k = cs_schema_at(schema, i);
        assert_ptr_equal(cs_schema_lookup(schema, k->key), k);
        if (prev != NULL) {
            assert_true(strcmp(prev->key, k->key) < 0);
        }
        prev = k;
    }
    assert_null(cs_schema_at(schema, i));
}

static void
test_embedded_matches_data_file(void **state)
{
    const char *text;
    char path[4096], *buf;
    size_t len, got;
    FILE *f;

    if (source_dir == NULL) {
        skip();
    }

    snprintf(path, sizeof(path), "%s/data/default-schema.yaml", source_dir);
    f = fopen(path, "rb");
    assert_non_null(f);

    text = cs_schema_embedded(&len);
    buf = malloc(len + 2);
    got = fread(buf, 1, len + 1, f);
    fclose(f);

    assert_int_equal(got, len);
    assert_memory_equal(buf, text, len);
    free(buf);
}

static void
test_known_keys(void **state)
{
    const cs_schema_t *schema = *state;
    const cs_schema_key_t *k;

    k = cs_schema_lookup(schema, "api_key");
    assert_non_null(k);
    assert_int_equal(k->type, CS_TYPE_STRING);
    assert_null(k->def);
    assert_true(k->secret);
    assert_int_equal(k->n_env, 1);
    assert_string_equal(k->env[0], "DD_API_KEY");

    k = cs_schema_lookup(schema, "cmd_port");
    assert_int_equal(k->type, CS_TYPE_INT);
    assert_true(k->def->u.number == 5001);
    assert_false(k->secret);

    k = cs_schema_lookup(schema, "expvar_port");
    assert_int_equal(k->type, CS_TYPE_STRING);
    assert_string_equal(k->def->u.str.ptr, "5000");

    k = cs_schema_lookup(schema, "remote_agent_registry.enabled");
    assert_int_equal(k->def->kind, CS_VAL_BOOL);
    assert_true(k->def->u.boolean);

    k = cs_schema_lookup(schema, "remote_agent_registry.idle_timeout");
    assert_int_equal(k->type, CS_TYPE_DURATION);
    assert_true(k->def->u.number == 30e9);

    k = cs_schema_lookup(schema, "config_stream.sleep_interval");
    assert_int_equal(k->type, CS_TYPE_DURATION);
    assert_true(k->def->u.number == 10e6);

    k = cs_schema_lookup(schema, "remote_agent.registry.idle_timeout");
    assert_int_equal(k->type, CS_TYPE_DURATION);
    assert_null(k->def);

    k = cs_schema_lookup(schema, "additional_endpoints");
    assert_int_equal(k->type, CS_TYPE_MAP_LIST);

    k = cs_schema_lookup(schema, "apm_config.connection_limit");
    assert_int_equal(k->n_env, 2);
    assert_string_equal(k->env[0], "DD_APM_CONNECTION_LIMIT");
    assert_string_equal(k->env[1], "DD_CONNECTION_LIMIT");

    k = cs_schema_lookup(schema, "logs_config.enabled");
    assert_null(k);
    k = cs_schema_lookup(schema, "logs_config.use_http");
    assert_string_equal(k->env[0], "DD_LOGS_CONFIG_USE_HTTP");

    k = cs_schema_lookup(schema, "fleet_layers");
    assert_int_equal(k->n_env, 0);

    assert_null(cs_schema_lookup(schema, "no_such_key"));
    assert_null(cs_schema_lookup(schema, "logs_config"));
}

static void
test_sections(void **state)
{
    const cs_schema_t *schema = *state;

    assert_true(cs_schema_is_section(schema, "logs_config"));
    assert_true(cs_schema_is_section(schema, "otlp_config.receiver"));
    assert_true(cs_schema_is_section(schema, "remote_agent"));
    assert_false(cs_schema_is_section(schema, "logs_conf"));
    assert_false(cs_schema_is_section(schema, "api_key"));
    assert_false(cs_schema_is_section(schema, "zzz"));
    assert_false(cs_schema_is_section(schema, ""));
}

static void
test_secrets(void **state)
{
    const cs_schema_t *schema = *state;

    assert_true(cs_schema_is_secret(schema, "api_key"));
    assert_true(cs_schema_is_secret(schema, "app_key"));
    assert_true(cs_schema_is_secret(schema, "logs_config.api_key"));
    assert_true(cs_schema_is_secret(schema, "cluster_agent.auth_token"));
    assert_false(cs_schema_is_secret(schema, "auth_token_file_path"));
    assert_false(cs_schema_is_secret(schema, "cmd_port"));
    /* Unknown keys: by name. */
    assert_true(cs_schema_is_secret(schema, "x.my_api_key"));
    assert_true(cs_schema_is_secret(schema, "db_password"));
    assert_false(cs_schema_is_secret(schema, "x.token_file_path"));
    assert_false(cs_schema_is_secret(schema, "x.hostname"));
}

static void
test_durations(void **state)
{
    double ns;

    assert_int_equal(cs_duration_parse("30s", &ns), 0);
    assert_true(ns == 30e9);
    assert_int_equal(cs_duration_parse("1m30s", &ns), 0);
    assert_true(ns == 90e9);
    assert_int_equal(cs_duration_parse("10ms", &ns), 0);
    assert_true(ns == 10e6);
    assert_int_equal(cs_duration_parse("1.5h", &ns), 0);
    assert_true(ns == 5400e9);
    assert_int_equal(cs_duration_parse("-2s", &ns), 0);
    assert_true(ns == -2e9);
    assert_int_equal(cs_duration_parse("250us", &ns), 0);
    assert_true(ns == 250e3);
    assert_int_equal(cs_duration_parse("500", &ns), 0);
    assert_true(ns == 500);
    assert_int_equal(cs_duration_parse("abc", &ns), -EINVAL);
    assert_int_equal(cs_duration_parse("10x", &ns), -EINVAL);
    assert_int_equal(cs_duration_parse("1h2", &ns), -EINVAL);
    assert_int_equal(cs_duration_parse("", &ns), -EINVAL);
    assert_int_equal(cs_duration_parse(".inf", &ns), -EINVAL);
}

static void
test_custom_schema(void **state)
{
    static const char text[] =
        "a.b: {type: int, default: 3}\n"
        "a.c: {type: bool, env: [X_C, Y_C], secret: true}\n"
        "d: {type: any, env: []}\n";
    const cs_schema_key_t *k;
    cs_schema_t *schema;
    cs_value_t *defaults;
    char err[256];

    assert_int_equal(cs_schema_load_buffer(&schema, text, strlen(text), "s",
        err, sizeof(err)), 0);
    assert_int_equal(cs_schema_count(schema), 3);

    k = cs_schema_lookup(schema, "a.c");
    assert_int_equal(k->type, CS_TYPE_BOOL);
    assert_true(k->secret);
    assert_int_equal(k->n_env, 2);
    assert_string_equal(k->env[1], "Y_C");

    assert_int_equal(cs_schema_defaults(schema, &defaults), 0);
    assert_int_equal(defaults->u.map.n, 1);
    assert_true(cs_value_map_get(defaults, "a.b")->u.number == 3);
    cs_value_free(defaults);
    cs_schema_free(schema);
}

static void
expect_schema_error(const char *text, const char *msg)
{
    cs_schema_t *schema = NULL;
    char err[256] = "";

    assert_int_equal(cs_schema_load_buffer(&schema, text, strlen(text), "s",
        err, sizeof(err)), -EINVAL);
    assert_null(schema);
    assert_string_equal(err, msg);
}

static void
test_bad_schema(void **state)
{
    expect_schema_error("a: {type: nope}\n",
        "s:1:4: a: missing or unknown type");
    expect_schema_error("a: {type: int, default: x}\n",
        "s:1:25: a: expected an integer, got 'x'");
    expect_schema_error("a: string\n",
        "s:1:1: a: expected a mapping such as {type: string}");
    expect_schema_error("a: {type: int}\na: {type: int}\n",
        "s:2:1: duplicate key 'a' (first at line 1)");
}

static void
test_schema_file(void **state)
{
    cs_schema_t *schema = NULL;
    char err[256];

    assert_int_equal(cs_schema_load(&schema, "/nonexistent/schema.yaml",
        err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/schema.yaml"));

    /* The schema file is read like any YAML file: a device is refused. */
    alarm(10);
    assert_int_equal(cs_schema_load(&schema, "/dev/zero", err, sizeof(err)),
        -EINVAL);
    alarm(0);
    assert_string_equal(err, "/dev/zero: not a regular file");
    assert_null(schema);
}

/* Flatten text with the embedded schema. */
static int
flat(const cs_schema_t *schema, const char *text, cs_value_t **out,
    char *err, size_t errlen)
{
    cs_yaml_node_t *root = NULL;
    int rc;

    rc = cs_yaml_load_buffer(text, strlen(text), "t.yaml", 0, &root, err,
        errlen);
    if (rc < 0) {
        return rc;
    }

    rc = cs_flatten_node(schema, root, "t.yaml", out, NULL, err, errlen);
    cs_yaml_node_free(root);

    return rc;
}

static const cs_value_t *
get(const cs_value_t *map, const char *key)
{
    const cs_value_t *v = cs_value_map_get(map, key);

    if (v == NULL) {
        fail_msg("key %s missing", key);
    }
    return v;
}

static void
test_typing_strings_stay(void **state)
{
    cs_value_t *f;
    char err[256];

    assert_int_equal(flat(*state,
        "api_key: 00000000\n"
        "log_level: NO\n"
        "hostname: 0755\n"
        "site: 1.5\n"
        "env: true\n"
        "expvar_port: 5678\n"
        "tags_unknown: 0755\n", &f, err, sizeof(err)), 0);

    assert_string_equal(get(f, "api_key")->u.str.ptr, "00000000");
    assert_string_equal(get(f, "log_level")->u.str.ptr, "NO");
    assert_string_equal(get(f, "hostname")->u.str.ptr, "0755");
    assert_string_equal(get(f, "site")->u.str.ptr, "1.5");
    assert_string_equal(get(f, "env")->u.str.ptr, "true");
    assert_string_equal(get(f, "expvar_port")->u.str.ptr, "5678");
    /* An unknown key keeps its YAML 1.1 type: octal 0755. */
    assert_int_equal(get(f, "tags_unknown")->kind, CS_VAL_NUMBER);
    assert_true(get(f, "tags_unknown")->u.number == 493);
    cs_value_free(f);
}

static void
test_typing_bools(void **state)
{
    static const char *const yes[] = { "true", "True", "YES", "on", "1",
                                       "y", "'true'", "\"On\"", NULL };
    static const char *const no[] = { "false", "FALSE", "no", "Off", "0",
                                      "n", "'false'", NULL };
    char text[128], err[256];
    cs_value_t *f;
    size_t i;

    for (i = 0; yes[i] != NULL; i++) {
        snprintf(text, sizeof(text), "logs_enabled: %s\n", yes[i]);
        assert_int_equal(flat(*state, text, &f, err, sizeof(err)), 0);
        assert_int_equal(get(f, "logs_enabled")->kind, CS_VAL_BOOL);
        assert_true(get(f, "logs_enabled")->u.boolean);
        cs_value_free(f);
    }
    for (i = 0; no[i] != NULL; i++) {
        snprintf(text, sizeof(text), "logs_enabled: %s\n", no[i]);
        assert_int_equal(flat(*state, text, &f, err, sizeof(err)), 0);
        assert_int_equal(get(f, "logs_enabled")->kind, CS_VAL_BOOL);
        assert_false(get(f, "logs_enabled")->u.boolean);
        cs_value_free(f);
    }

    assert_int_equal(flat(*state, "logs_enabled: maybe\n", &f, err,
        sizeof(err)), -EINVAL);
    assert_string_equal(err,
        "t.yaml:1:15: logs_enabled: expected a boolean, got 'maybe'");
}

static void
test_typing_numbers(void **state)
{
    cs_value_t *f;
    char err[256];

    assert_int_equal(flat(*state,
        "cmd_port: '6001'\n"
        "dogstatsd_port : 8125\n"
        "apm_config:\n"
        "  max_memory: 123.4\n"
        "  extra_sample_rate: 1\n"
        "remote_agent_registry:\n"
        "  idle_timeout: 45s\n"
        "  recommended_refresh_interval: 1000\n", &f, err, sizeof(err)), 0);
    assert_true(get(f, "cmd_port")->u.number == 6001);
    assert_true(get(f, "dogstatsd_port")->u.number == 8125);
    assert_true(get(f, "apm_config.max_memory")->u.number == 123.4);
    assert_true(get(f, "apm_config.extra_sample_rate")->u.number == 1);
    assert_true(get(f, "remote_agent_registry.idle_timeout")->u.number
        == 45e9);
    assert_true(get(f, "remote_agent_registry.recommended_refresh_interval")
        ->u.number == 1000);
    cs_value_free(f);

    assert_int_equal(flat(*state, "api_key: x\n\ncmd_port:  abc\n", &f, err,
        sizeof(err)), -EINVAL);
    assert_string_equal(err,
        "t.yaml:3:12: cmd_port: expected an integer, got 'abc'");

    assert_int_equal(flat(*state, "cmd_port: 1.5\n", &f, err, sizeof(err)),
        -EINVAL);
    assert_int_equal(flat(*state, "cmd_port: [1]\n", &f, err, sizeof(err)),
        -EINVAL);
    assert_string_equal(err,
        "t.yaml:1:11: cmd_port: expected an integer, got a sequence");
    assert_int_equal(flat(*state, "remote_agent_registry:\n"
        "  idle_timeout: soon\n", &f, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "t.yaml:2:17: remote_agent_registry."
        "idle_timeout: expected a duration, got 'soon'");
}

static void
test_typing_nulls(void **state)
{
    cs_value_t *f;
    char err[256];

    assert_int_equal(flat(*state, "api_key:\ncmd_port: ~\nenv: null\n"
        "site: ''\n", &f, err, sizeof(err)), 0);
    assert_int_equal(get(f, "api_key")->kind, CS_VAL_NULL);
    assert_int_equal(get(f, "cmd_port")->kind, CS_VAL_NULL);
    assert_int_equal(get(f, "env")->kind, CS_VAL_NULL);
    assert_int_equal(get(f, "site")->kind, CS_VAL_STRING);
    assert_string_equal(get(f, "site")->u.str.ptr, "");
    cs_value_free(f);
}

static void
test_typing_collections(void **state)
{
    const cs_value_t *v;
    cs_value_t *f;
    char err[256];

    assert_int_equal(flat(*state,
        "tags: [a:1, 2, true]\n"
        "ac_exclude: name:x  name:y\n"
        "additional_endpoints:\n"
        "  \"https://a.example.com\": [k1, k2]\n"
        "  \"https://b.example.com.\": single\n"
        "container_env_as_tags: {A: b, N: 1}\n", &f, err, sizeof(err)), 0);

    v = get(f, "tags");
    assert_int_equal(v->u.list.n, 3);
    assert_string_equal(v->u.list.items[1]->u.str.ptr, "2");
    assert_string_equal(v->u.list.items[2]->u.str.ptr, "true");

    v = get(f, "ac_exclude");
    assert_int_equal(v->kind, CS_VAL_LIST);
    assert_int_equal(v->u.list.n, 2);
    assert_string_equal(v->u.list.items[1]->u.str.ptr, "name:y");

    v = get(f, "additional_endpoints");
    assert_int_equal(v->u.map.n, 2);
    assert_int_equal(cs_value_map_get(v, "https://b.example.com.")->kind,
        CS_VAL_LIST);
    assert_string_equal(cs_value_map_get(v, "https://b.example.com.")
        ->u.list.items[0]->u.str.ptr, "single");

    v = get(f, "container_env_as_tags");
    assert_string_equal(cs_value_map_get(v, "N")->u.str.ptr, "1");
    assert_string_equal(cs_value_map_get(v, "A")->u.str.ptr, "b");

    assert_int_equal(f->u.map.n, 4);
    cs_value_free(f);

    assert_int_equal(flat(*state, "container_env_as_tags: nope\n", &f, err,
        sizeof(err)), -EINVAL);
    assert_string_equal(err, "t.yaml:1:24: container_env_as_tags: expected "
        "a mapping, got a scalar");
}

static void
test_flatten_shapes(void **state)
{
    const cs_value_t *v;
    cs_value_t *f, *g;
    char err[256];

    /* A dotted key at top level is the nested key. */
    assert_int_equal(flat(*state, "logs_config.use_http: true\n", &f, err,
        sizeof(err)), 0);
    assert_int_equal(flat(*state, "logs_config:\n  use_http: true\n", &g,
        err, sizeof(err)), 0);
    assert_true(cs_value_equal(f, g));
    assert_int_equal(get(f, "logs_config.use_http")->kind, CS_VAL_BOOL);
    cs_value_free(f);
    cs_value_free(g);

    assert_int_equal(flat(*state,
        "Logs_Config:\n  USE_HTTP: yes\n"
        "my_section:\n  deep:\n    leaf: 1\n"
        "urls:\n  \"a.example.com\": x\n  plain: y\n"
        "empty: {}\n"
        "otlp_config:\n  receiver:\n", &f, err, sizeof(err)), 0);
    assert_true(get(f, "logs_config.use_http")->u.boolean);
    assert_true(get(f, "my_section.deep.leaf")->u.number == 1);
    v = get(f, "urls");
    assert_int_equal(v->kind, CS_VAL_MAP);
    assert_string_equal(cs_value_map_get(v, "a.example.com")->u.str.ptr,
        "x");
    assert_int_equal(get(f, "empty")->kind, CS_VAL_MAP);
    assert_int_equal(get(f, "otlp_config.receiver")->kind, CS_VAL_NULL);
    assert_int_equal(f->u.map.n, 5);
    cs_value_free(f);
}

static void
test_value_parse(void **state)
{
    cs_value_t *v;
    char err[256];

    assert_int_equal(cs_flatten_value_parse(*state, "cmd_port", "6001", &v,
        err, sizeof(err)), 0);
    assert_true(v->u.number == 6001);
    cs_value_free(v);

    assert_int_equal(cs_flatten_value_parse(*state, "tags", "[a, b]", &v,
        err, sizeof(err)), 0);
    assert_int_equal(v->u.list.n, 2);
    cs_value_free(v);

    assert_int_equal(cs_flatten_value_parse(*state, "new.key", "{a: 1}", &v,
        err, sizeof(err)), 0);
    assert_int_equal(v->kind, CS_VAL_MAP);
    cs_value_free(v);

    assert_int_equal(cs_flatten_value_parse(*state, "cmd_port", "abc", &v,
        err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "cmd_port: expected an integer, got 'abc'");
}

/*
 * An int-typed key takes what a double holds exactly (|n| < 2^53); a
 * duration what Go's time.Duration holds. Larger numbers are refused
 * rather than streamed rounded (1e+20 for a port).
 */
static void
test_typing_ranges(void **state)
{
    cs_value_t *v;
    char err[256];

    assert_int_equal(cs_flatten_value_parse(*state, "cmd_port",
        "9007199254740991", &v, err, sizeof(err)), 0);
    assert_true(v->u.number == 9007199254740991.0);
    cs_value_free(v);
    assert_int_equal(cs_flatten_value_parse(*state, "cmd_port",
        "-9007199254740991", &v, err, sizeof(err)), 0);
    cs_value_free(v);

    assert_int_equal(cs_flatten_value_parse(*state, "cmd_port",
        "99999999999999999999", &v, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "cmd_port: expected an integer between "
        "-9007199254740991 and 9007199254740991, got '99999999999999999999'");
    assert_int_equal(cs_flatten_value_parse(*state, "cmd_port",
        "9007199254740992", &v, err, sizeof(err)), -EINVAL);
    assert_int_equal(cs_flatten_value_parse(*state, "cmd_port",
        "9007199254740993", &v, err, sizeof(err)), -EINVAL);
    assert_int_equal(cs_flatten_value_parse(*state, "cmd_port",
        "-0x20000000000000", &v, err, sizeof(err)), -EINVAL);
    assert_int_equal(cs_flatten_value_parse(*state, "cmd_port", "1e20", &v,
        err, sizeof(err)), -EINVAL);

    assert_int_equal(flat(*state, "cmd_port: 18446744073709551615\n", &v,
        err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "t.yaml:1:11: cmd_port: expected an integer "
        "between"));

    assert_int_equal(cs_flatten_value_parse(*state,
        "remote_agent_registry.idle_timeout", "2562047h", &v, err,
        sizeof(err)), 0);
    cs_value_free(v);
    assert_int_equal(cs_flatten_value_parse(*state,
        "remote_agent_registry.idle_timeout", "2562048h", &v, err,
        sizeof(err)), -EINVAL);
    assert_string_equal(err, "remote_agent_registry.idle_timeout: expected "
        "a duration between -2562047h and 2562047h, got '2562048h'");
    assert_int_equal(cs_flatten_value_parse(*state,
        "remote_agent_registry.idle_timeout", "1e300", &v, err,
        sizeof(err)), -EINVAL);
}

/* A collection given to a scalar-typed key is refused, for every type. */
static void
test_scalar_types_refuse_collections(void **state)
{
    static const struct {
        const char *key, *text, *err;
    } cases[] = {
        { "logs_enabled", "{x: 1}",
          "logs_enabled: expected a boolean, got a mapping" },
        { "logs_enabled", "[true]",
          "logs_enabled: expected a boolean, got a sequence" },
        { "cmd_port", "{x: 1}",
          "cmd_port: expected an integer, got a mapping" },
        { "apm_config.max_memory", "[1.5]",
          "apm_config.max_memory: expected a number, got a sequence" },
        { "remote_agent_registry.idle_timeout", "{s: 30}",
          "remote_agent_registry.idle_timeout: expected a duration, got a "
          "mapping" },
        { "hostname", "{x: 1}", "hostname: expected a string, got a mapping" },
    };
    cs_value_t *v = NULL;
    char err[256];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(cs_flatten_value_parse(*state, cases[i].key,
            cases[i].text, &v, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, cases[i].err);
        assert_null(v);
    }

    /* An unknown key keeps the type it was written in. */
    assert_int_equal(cs_flatten_value_parse(*state, "logs_config.enabled",
        "{x: 1}", &v, err, sizeof(err)), 0);
    assert_int_equal(v->kind, CS_VAL_MAP);
    cs_value_free(v);
}

/* Keys the store could not hold or a client could not read. */
static void
test_key_checks(void **state)
{
    char key[CS_KEY_MAX + 2], text[CS_KEY_MAX + 16];
    cs_value_t *v;
    char err[256];

    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    assert_int_equal(cs_flatten_value_parse(*state, key, "1", &v, err,
        sizeof(err)), -EINVAL);
    assert_string_equal(err, "key too long (256 bytes, at most 255)");
    key[CS_KEY_MAX] = '\0';
    assert_int_equal(cs_flatten_value_parse(*state, key, "1", &v, err,
        sizeof(err)), 0);
    cs_value_free(v);

    assert_int_equal(cs_flatten_value_parse(*state, "", "1", &v, err,
        sizeof(err)), -EINVAL);
    assert_string_equal(err, "empty key");
    assert_int_equal(cs_flatten_value_parse(*state, "bad\xffkey", "v", &v,
        err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "key is not valid UTF-8");
    assert_int_equal(cs_flatten_value_parse(*state, "a\x01" "b", "v", &v,
        err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "key contains control characters");
    assert_int_equal(cs_flatten_value_parse(*state, "k", "bad\xff", &v,
        err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "k: value is not valid UTF-8");
    assert_int_equal(cs_flatten_value_parse(*state, "a\tb", "v", &v,
        err, sizeof(err)), -EINVAL);
    assert_int_equal(cs_flatten_value_parse(*state, "caf\xc3\xa9", "v", &v,
        err, sizeof(err)), 0);
    cs_value_free(v);

    /* In a file, the dotted key counts, at the position of its last part. */
    memset(text, 0, sizeof(text));
    memcpy(text, "a:\n  ", 5);
    memset(text + 5, 'k', CS_KEY_MAX - 1);
    strcat(text, ": 1\n");
    assert_int_equal(flat(*state, text, &v, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "t.yaml:2:3: key too long (256 bytes, at most "
        "255)");
    assert_int_equal(flat(*state, "site: x\n\"\": 1\n", &v, err,
        sizeof(err)), -EINVAL);
    assert_string_equal(err, "t.yaml:2:1: empty key");
    assert_int_equal(flat(*state, "\"a\\x01b\": 1\n", &v, err,
        sizeof(err)), -EINVAL);
    assert_string_equal(err, "t.yaml:1:1: key contains control characters");
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_counts),
        cmocka_unit_test(test_embedded_matches_data_file),
        cmocka_unit_test(test_known_keys),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_custom_schema),
        cmocka_unit_test(test_bad_schema),
        cmocka_unit_test(test_schema_file),
        cmocka_unit_test(test_typing_strings_stay),
        cmocka_unit_test(test_typing_bools),
        cmocka_unit_test(test_typing_numbers),
        cmocka_unit_test(test_typing_nulls),
        cmocka_unit_test(test_typing_collections),
        cmocka_unit_test(test_flatten_shapes),
        cmocka_unit_test(test_value_parse),
        cmocka_unit_test(test_typing_ranges),
        cmocka_unit_test(test_scalar_types_refuse_collections),
        cmocka_unit_test(test_key_checks),
    };

    source_dir = argc > 1 ? argv[1] : NULL;

    return cmocka_run_group_tests(tests, setup, teardown);
}
