/*
 * The environment layer: the DD_ rule for nested keys, explicit names in
 * binding order, empty values ignored, and schema typing of bools, lists,
 * maps, numbers and durations.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "envlayer.h"
#include "schema.h"

static int
setup(void **state)
{
    cs_schema_t *schema;
    char err[512];

    if (cs_schema_load(&schema, NULL, err, sizeof(err)) != 0) {
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

static cs_value_t *
layer(void **state, char **envp)
{
    cs_value_t *l = NULL;
    char err[256];

    if (cs_envlayer_load(*state, envp, &l, err, sizeof(err)) != 0) {
        fail_msg("env layer: %s", err);
    }
    return l;
}

static void
test_nested_and_rule(void **state)
{
    char *envp[] = {
        "DD_LOGS_CONFIG_USE_HTTP=true",
        "DD_API_KEY=0000",
        "DD_NOT_A_SETTING=1",
        "HOME=/root",
        "DD_FLEET_LAYERS=x",         /* fleet_layers binds no variable */
        NULL
    };
    cs_value_t *l = layer(state, envp);

    /* DD_API_KEY is also an explicit name of another key. */
    assert_int_equal(l->u.map.n, 3);
    assert_string_equal(cs_value_map_get(l,
        "security_agent.internal_profiling.api_key")->u.str.ptr, "0000");
    assert_int_equal(cs_value_map_get(l, "logs_config.use_http")->kind,
        CS_VAL_BOOL);
    assert_string_equal(cs_value_map_get(l, "api_key")->u.str.ptr, "0000");
    cs_value_free(l);
}

static void
test_explicit_names(void **state)
{
    char *only_second[] = { "DD_CONNECTION_LIMIT=7", NULL };
    char *both[] = { "DD_CONNECTION_LIMIT=7", "DD_APM_CONNECTION_LIMIT=9",
                     NULL };
    char *first_empty[] = { "DD_APM_CONNECTION_LIMIT=",
                            "DD_CONNECTION_LIMIT=7", NULL };
    char *rule_name[] = { "DD_APM_CONFIG_CONNECTION_LIMIT=5", NULL };
    cs_value_t *l;

    l = layer(state, only_second);
    assert_true(cs_value_map_get(l, "apm_config.connection_limit")->u.number
        == 7);
    cs_value_free(l);

    /* The first bound name that is set wins, in binding order. */
    l = layer(state, both);
    assert_true(cs_value_map_get(l, "apm_config.connection_limit")->u.number
        == 9);
    cs_value_free(l);

    /* Empty is unset. */
    l = layer(state, first_empty);
    assert_true(cs_value_map_get(l, "apm_config.connection_limit")->u.number
        == 7);
    cs_value_free(l);

    /* With explicit names, the rule's name is not bound. */
    l = layer(state, rule_name);
    assert_int_equal(l->u.map.n, 0);
    cs_value_free(l);
}

static void
test_bool_spellings(void **state)
{
    static const char *const yes[] = { "true", "TRUE", "1", "yes", "On",
                                       "y", "t", NULL };
    static const char *const no[] = { "false", "False", "0", "NO", "off",
                                      "n", "f", NULL };
    cs_value_t *v;
    char err[256];
    size_t i;

    for (i = 0; yes[i] != NULL; i++) {
        assert_int_equal(cs_envlayer_value(*state, "logs_enabled", yes[i],
            &v, err, sizeof(err)), 0);
        assert_int_equal(v->kind, CS_VAL_BOOL);
        assert_true(v->u.boolean);
        cs_value_free(v);
    }
    for (i = 0; no[i] != NULL; i++) {
        assert_int_equal(cs_envlayer_value(*state, "logs_enabled", no[i],
            &v, err, sizeof(err)), 0);
        assert_int_equal(v->kind, CS_VAL_BOOL);
        assert_false(v->u.boolean);
        cs_value_free(v);
    }
}

static void
test_lists(void **state)
{
    char *words[] = { "DD_AC_EXCLUDE=name:a   name:b\tname:c", NULL };
    char *json[] = { "DD_AC_EXCLUDE=[\"name:a b\", \"name:c\"]", NULL };
    const cs_value_t *v;
    cs_value_t *l;

    l = layer(state, words);
    v = cs_value_map_get(l, "ac_exclude");
    assert_int_equal(v->kind, CS_VAL_LIST);
    assert_int_equal(v->u.list.n, 3);
    assert_string_equal(v->u.list.items[2]->u.str.ptr, "name:c");
    cs_value_free(l);

    l = layer(state, json);
    v = cs_value_map_get(l, "ac_exclude");
    assert_int_equal(v->u.list.n, 2);
    assert_string_equal(v->u.list.items[0]->u.str.ptr, "name:a b");
    cs_value_free(l);
}

static void
test_maps(void **state)
{
    char *envp[] = {
        "DD_CONTAINER_ENV_AS_TAGS={\"APP\": \"app\", \"N\": 1}",
        "DD_ADDITIONAL_ENDPOINTS={\"https://a.example.com\": [\"k1\", \"k2\"]}",
        NULL
    };
    const cs_value_t *v;
    cs_value_t *l;

    l = layer(state, envp);
    v = cs_value_map_get(l, "container_env_as_tags");
    assert_int_equal(v->kind, CS_VAL_MAP);
    assert_string_equal(cs_value_map_get(v, "APP")->u.str.ptr, "app");
    assert_string_equal(cs_value_map_get(v, "N")->u.str.ptr, "1");

    v = cs_value_map_get(l, "additional_endpoints");
    v = cs_value_map_get(v, "https://a.example.com");
    assert_int_equal(v->u.list.n, 2);
    cs_value_free(l);
}

static void
test_numbers_and_durations(void **state)
{
    char *envp[] = {
        "DD_CMD_PORT=6001",
        "DD_REMOTE_AGENT_REGISTRY_IDLE_TIMEOUT=1m30s",
        "DD_CONFIG_STREAM_SLEEP_INTERVAL=5000000",
        "DD_EXPVAR_PORT=05678",
        NULL
    };
    cs_value_t *l = layer(state, envp);

    assert_true(cs_value_map_get(l, "cmd_port")->u.number == 6001);
    assert_true(cs_value_map_get(l, "remote_agent_registry.idle_timeout")
        ->u.number == 90e9);
    assert_true(cs_value_map_get(l, "config_stream.sleep_interval")
        ->u.number == 5e6);
    assert_string_equal(cs_value_map_get(l, "expvar_port")->u.str.ptr,
        "05678");
    cs_value_free(l);
}

static void
test_errors_name_variable(void **state)
{
    char *bad_port[] = { "DD_CMD_PORT=abc", NULL };
    char *bad_bool[] = { "DD_LOGS_ENABLED=maybe", NULL };
    char *bad_map[] = { "DD_CONTAINER_ENV_AS_TAGS=[1]", NULL };
    cs_value_t *l = NULL;
    char err[256];

    assert_int_equal(cs_envlayer_load(*state, bad_port, &l, err,
        sizeof(err)), -EINVAL);
    assert_string_equal(err,
        "DD_CMD_PORT: cmd_port: expected an integer, got 'abc'");

    assert_int_equal(cs_envlayer_load(*state, bad_bool, &l, err,
        sizeof(err)), -EINVAL);
    assert_string_equal(err,
        "DD_LOGS_ENABLED: logs_enabled: expected a boolean, got 'maybe'");

    assert_int_equal(cs_envlayer_load(*state, bad_map, &l, err,
        sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "DD_CONTAINER_ENV_AS_TAGS: "));
    assert_null(l);
}

/* Values reach proto3 strings: text that is not UTF-8 is refused. */
static void
test_invalid_utf8_names_variable(void **state)
{
    char *bad_host[] = { "DD_HOSTNAME=host\xffname", NULL };
    char *bad_list[] = { "DD_TAGS=ok b\xc0\xaf" "d", NULL };
    char *bad_proxy[] = { "HTTPS_PROXY=http://\xed\xa0\x80:1", NULL };
    char *good[] = { "DD_HOSTNAME=h\xc3\xb4" "te", NULL };
    cs_value_t *l = NULL;
    char err[256];

    assert_int_equal(cs_envlayer_load(*state, bad_host, &l, err,
        sizeof(err)), -EINVAL);
    assert_string_equal(err, "DD_HOSTNAME: hostname: not valid UTF-8");
    assert_null(l);

    assert_int_equal(cs_envlayer_load(*state, bad_list, &l, err,
        sizeof(err)), -EINVAL);
    assert_string_equal(err, "DD_TAGS: tags: not valid UTF-8");

    assert_int_equal(cs_envlayer_load(*state, bad_proxy, &l, err,
        sizeof(err)), -EINVAL);
    assert_string_equal(err, "HTTPS_PROXY: proxy.https: not valid UTF-8");
    assert_null(l);

    l = layer(state, good);
    assert_string_equal(cs_value_map_get(l, "hostname")->u.str.ptr,
        "h\xc3\xb4" "te");
    cs_value_free(l);
}

static void
test_proxy(void **state)
{
    char *conventional[] = {
        "http_proxy=http://lower:1", "HTTP_PROXY=http://upper:1",
        "HTTPS_PROXY=http://secure:2", "NO_PROXY=a.example,b.example", NULL
    };
    char *dd[] = {
        "DD_PROXY_HTTP=http://dd:3", "HTTP_PROXY=http://upper:1",
        "DD_PROXY_NO_PROXY=x y", "NO_PROXY=a,b,c", NULL
    };
    const cs_value_t *v;
    cs_value_t *l;

    l = layer(state, conventional);
    assert_string_equal(cs_value_map_get(l, "proxy.http")->u.str.ptr,
        "http://upper:1");
    assert_string_equal(cs_value_map_get(l, "proxy.https")->u.str.ptr,
        "http://secure:2");
    v = cs_value_map_get(l, "proxy.no_proxy");
    assert_int_equal(v->u.list.n, 2);
    assert_string_equal(v->u.list.items[1]->u.str.ptr, "b.example");
    cs_value_free(l);

    l = layer(state, dd);
    assert_string_equal(cs_value_map_get(l, "proxy.http")->u.str.ptr,
        "http://dd:3");
    assert_null(cs_value_map_get(l, "proxy.https"));
    v = cs_value_map_get(l, "proxy.no_proxy");
    assert_int_equal(v->u.list.n, 2);
    assert_string_equal(v->u.list.items[0]->u.str.ptr, "x");
    cs_value_free(l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nested_and_rule),
        cmocka_unit_test(test_explicit_names),
        cmocka_unit_test(test_bool_spellings),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_numbers_and_durations),
        cmocka_unit_test(test_errors_name_variable),
        cmocka_unit_test(test_proxy),
        cmocka_unit_test(test_invalid_utf8_names_variable),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
