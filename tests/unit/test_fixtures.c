/*
 * Real configuration files: one test per file in the fixtures' real/,
 * real/upstream/ and rendered/ folders. A file's raw parse must equal what
 * Go's yaml.v2 made of it (expected-yaml-v2/<name>.json), or, where
 * yaml.v2 rejected it (<name>.error.txt), it must be rejected at the same
 * place with a file:line:column error. Every file that parses must also
 * flatten and resolve cleanly against the embedded schema, and keys the
 * schema does not know must keep exactly the parsed value.
 *
 * Usage: test_fixtures FIXTURES_DIR
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "flatten.h"
#include "resolve.h"
#include "schema.h"
#include "yaml_load.h"

static const char *fixtures;
static cs_schema_t *schema;

/* Does v equal the JSON yaml.v2 produced? Describes the first mismatch. */
static int
equal_json(const cs_value_t *v, json_object *j, char *why, size_t len,
    const char *at)
{
    char sub[512];
    size_t i;

    switch (json_object_get_type(j)) {
    case json_type_null:
        if (v->kind == CS_VAL_NULL) {
            return 1;
        }
        break;

    case json_type_boolean:
        if (v->kind == CS_VAL_BOOL
            && v->u.boolean == json_object_get_boolean(j))
        {
            return 1;
        }
        break;

    case json_type_int:
    case json_type_double:
        if (v->kind == CS_VAL_NUMBER
            && v->u.number == json_object_get_double(j))
        {
            return 1;
        }
        break;

    case json_type_string:
        if (v->kind == CS_VAL_STRING
            && v->u.str.len == (size_t) json_object_get_string_len(j)
            && memcmp(v->u.str.ptr, json_object_get_string(j),
                   v->u.str.len) == 0)
        {
            return 1;
        }
        break;

    case json_type_array:
        if (v->kind != CS_VAL_LIST
            || v->u.list.n != json_object_array_length(j))
        {
            break;
        }
        for (i = 0; i < v->u.list.n; i++) {
            snprintf(sub, sizeof(sub), "%s[%zu]", at, i);
            if (!equal_json(v->u.list.items[i],
                    json_object_array_get_idx(j, i), why, len, sub))
            {
                return 0;
            }
        }
        return 1;

    case json_type_object:
        if (v->kind != CS_VAL_MAP
            || v->u.map.n != (size_t) json_object_object_length(j))
        {
            break;
        }
        for (i = 0; i < v->u.map.n; i++) {
            json_object *child;

            snprintf(sub, sizeof(sub), "%s.%s", at, v->u.map.keys[i]);
            if (!json_object_object_get_ex(j, v->u.map.keys[i], &child)
                || !equal_json(v->u.map.vals[i], child, why, len, sub))
            {
                if (why[0] == '\0') {
                    snprintf(why, len, "%s: key missing in yaml.v2", sub);
                }
                return 0;
            }
        }
        return 1;
    }

    if (why[0] == '\0') {
        json_object *mine = cs_value_to_json(v);

        snprintf(why, len, "%s: got %s, yaml.v2 has %s", at,
            json_object_to_json_string(mine), json_object_to_json_string(j));
        json_object_put(mine);
    }
    return 0;
}

/*
 * The JSON under a flattened key: a dotted key may be one JSON key (as
 * yaml.v2 keeps `telemetry.enabled`) or a path through nested objects.
 */
static json_object *
find_json(json_object *j, const char *key)
{
    json_object *sub, *found;
    char *head;
    const char *dot;

    if (json_object_get_type(j) != json_type_object) {
        return NULL;
    }
    if (json_object_object_get_ex(j, key, &sub)) {
        return sub;
    }

    for (dot = strchr(key, '.'); dot != NULL; dot = strchr(dot + 1, '.')) {
        head = strndup(key, (size_t) (dot - key));
        found = NULL;
        if (json_object_object_get_ex(j, head, &sub)) {
            found = find_json(sub, dot + 1);
        }
        free(head);
        if (found != NULL) {
            return found;
        }
    }

    return NULL;
}

static void
check_error(const char *path, const char *err, const char *errtxt)
{
    const char *v2msg, *p;
    int v2line, line, col;

    /* yaml.v2: "yaml: line N: message" */
    assert_int_equal(sscanf(errtxt, "yaml: line %d:", &v2line), 1);
    v2msg = strstr(errtxt, ": ");
    v2msg = strstr(v2msg + 2, ": ") + 2;

    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    p = err + strlen(path);
    assert_int_equal(sscanf(p, ":%d:%d: ", &line, &col), 2);
    assert_true(col >= 1);

    /*
     * yaml.v2 reports a scanner error's line 1-based, but a parser error's
     * (libyaml says "while parsing ...") 0-based: one line earlier than
     * where the offending token is.
     */
    if (strstr(err, "while parsing") != NULL) {
        assert_int_equal(line, v2line + 1);
    } else {
        assert_int_equal(line, v2line);
    }

    if (strstr(err, v2msg) == NULL) {
        fail_msg("'%s' does not carry yaml.v2's message '%s'", err, v2msg);
    }
}

static char *
read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    size_t n;

    if (f == NULL) {
        return NULL;
    }
    buf = calloc(1, 4096);
    n = fread(buf, 1, 4095, f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
        buf[--n] = '\0';
    }
    fclose(f);
    return buf;
}

static void
check_resolves(const char *path, const cs_yaml_node_t *root,
    json_object *expected)
{
    cs_value_t *layers[CS_SRC_COUNT] = { NULL };
    cs_value_t *flat = NULL, *raw;
    cs_resolution_t *res;
    char err[512], why[1024];
    json_object *j;
    size_t i;

    if (cs_flatten_node(schema, root, path, &flat, NULL, err,
            sizeof(err)) != 0)
    {
        fail_msg("%s", err);
    }

    for (i = 0; i < flat->u.map.n; i++) {
        const char *key = flat->u.map.keys[i];

        if (cs_schema_lookup(schema, key) != NULL) {
            continue;
        }
        /* Lower-cased on the way: such keys are looked up as written. */
        j = find_json(expected, key);
        if (j == NULL) {
            continue;
        }
        raw = flat->u.map.vals[i];
        why[0] = '\0';
        if (!equal_json(raw, j, why, sizeof(why), key)) {
            fail_msg("unknown key %s: %s", key, why);
        }
    }

    assert_int_equal(cs_schema_defaults(schema, &layers[CS_SRC_DEFAULT]), 0);
    layers[CS_SRC_FILE] = flat;
    assert_int_equal(cs_resolve(layers, &res), 0);
    assert_true(res->n >= 1165);
    for (i = 0; i < flat->u.map.n; i++) {
        assert_int_equal(cs_resolution_find(res, flat->u.map.keys[i])
            ->source, CS_SRC_FILE);
    }
    cs_resolution_free(res);
    cs_value_free(layers[CS_SRC_DEFAULT]);
    cs_value_free(flat);
}

static void
test_fixture(void **state)
{
    const char *rel = *state;
    char path[1024], exp[1024], why[1024], err[512];
    const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
    cs_yaml_node_t *root = NULL;
    json_object *expected;
    cs_value_t *raw;
    char *errtxt;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", fixtures, rel);
    rc = cs_yaml_load_file(path, 0, &root, err, sizeof(err));

    snprintf(exp, sizeof(exp), "%s/expected-yaml-v2/%s.error.txt", fixtures,
        base);
    errtxt = read_text(exp);
    if (errtxt != NULL) {
        if (rc != -EINVAL) {
            fail_msg("%s parsed, yaml.v2 says: %s", rel, errtxt);
        }
        check_error(path, err, errtxt);
        free(errtxt);
        return;
    }

    if (rc != 0) {
        fail_msg("%s", err);
    }

    snprintf(exp, sizeof(exp), "%s/expected-yaml-v2/%s.json", fixtures,
        base);
    expected = json_object_from_file(exp);
    if (expected == NULL && access(exp, R_OK) != 0) {
        fail_msg("no expected parse for %s", rel);
    }

    raw = cs_yaml_to_value(root);
    why[0] = '\0';
    if (!equal_json(raw, expected, why, sizeof(why), "")) {
        fail_msg("%s: %s", rel, why);
    }
    cs_value_free(raw);

    check_resolves(path, root, expected);

    json_object_put(expected);
    cs_yaml_node_free(root);
}

/* The shipped example: only api_key is live, and it is null. */
static void
test_example_resolves(void **state)
{
    cs_value_t *layers[CS_SRC_COUNT] = { NULL };
    const cs_resolved_t *r;
    cs_resolution_t *res;
    char path[1024], err[512];

    snprintf(path, sizeof(path), "%s/rendered/datadog.yaml.example",
        fixtures);
    if (cs_resolve_load_file_layer(schema, path, &layers[CS_SRC_FILE], NULL,
            err, sizeof(err)) != 0)
    {
        fail_msg("%s", err);
    }
    assert_int_equal(layers[CS_SRC_FILE]->u.map.n, 1);

    assert_int_equal(cs_schema_defaults(schema, &layers[CS_SRC_DEFAULT]), 0);
    assert_int_equal(cs_resolve(layers, &res), 0);

    r = cs_resolution_find(res, "api_key");
    assert_int_equal(r->source, CS_SRC_FILE);
    assert_int_equal(r->value->kind, CS_VAL_NULL);
    r = cs_resolution_find(res, "cmd_port");
    assert_int_equal(r->source, CS_SRC_DEFAULT);
    assert_true(r->value->u.number == 5001);

    cs_resolution_free(res);
    cs_value_free(layers[CS_SRC_DEFAULT]);
    cs_value_free(layers[CS_SRC_FILE]);
}

/*
 * The embedded schema holds every core-agent setting with upstream's
 * default and environment names (datadog-defaults.flat.json), except the
 * registry switch, which configstream turns on.
 */
static void
test_schema_matches_upstream(void **state)
{
    json_object *root, *settings, *def, *env, *has;
    const cs_schema_key_t *k;
    char path[1024], why[1024];
    size_t count = 0, i;

    snprintf(path, sizeof(path), "%s/datadog-defaults.flat.json", fixtures);
    root = json_object_from_file(path);
    assert_non_null(root);
    assert_true(json_object_object_get_ex(root, "settings", &settings));

    json_object_object_foreach(settings, key, spec) {
        count++;
        k = cs_schema_lookup(schema, key);
        if (k == NULL) {
            fail_msg("%s missing from the schema", key);
        }

        assert_true(json_object_object_get_ex(spec, "has_default", &has));
        assert_true(json_object_object_get_ex(spec, "default", &def));
        if (strcmp(key, "remote_agent_registry.enabled") == 0) {
            assert_true(k->def->u.boolean);
        } else if (json_object_get_boolean(has)
                   && json_object_get_type(def) != json_type_null)
        {
            why[0] = '\0';
            if (k->def == NULL
                || !equal_json(k->def, def, why, sizeof(why), key))
            {
                fail_msg("default of %s: %s", key, why);
            }
        } else {
            assert_null(k->def);
        }

        assert_true(json_object_object_get_ex(spec, "env", &env));
        assert_int_equal(k->n_env, json_object_array_length(env));
        for (i = 0; i < k->n_env; i++) {
            assert_string_equal(k->env[i],
                json_object_get_string(json_object_array_get_idx(env, i)));
        }
    }

    assert_int_equal(count, 1458);
    json_object_put(root);
}

static int
is_yaml_file(const struct dirent *d)
{
    size_t len = strlen(d->d_name);

    return d->d_type != DT_DIR && d->d_name[0] != '.'
           && ((len > 5 && strcmp(d->d_name + len - 5, ".yaml") == 0)
               || (len > 8 && strcmp(d->d_name + len - 8, ".example") == 0));
}

static size_t
add_dir(const char *sub, struct CMUnitTest *tests, size_t n, size_t cap)
{
    struct dirent **names;
    char dir[1024], *rel;
    int count, i;

    snprintf(dir, sizeof(dir), "%s/%s", fixtures, sub);
    count = scandir(dir, &names, is_yaml_file, alphasort);
    if (count < 0) {
        return n;
    }

    for (i = 0; i < count; i++) {
        if (n < cap && asprintf(&rel, "%s/%s", sub, names[i]->d_name) > 0) {
            tests[n].name = rel;
            tests[n].test_func = test_fixture;
            tests[n].setup_func = NULL;
            tests[n].teardown_func = NULL;
            tests[n].initial_state = rel;
            n++;
        }
        free(names[i]);
    }
    free(names);

    return n;
}

int
main(int argc, char **argv)
{
    struct CMUnitTest tests[128];
    char err[512];
    size_t n = 0;
    int rc;

    if (argc < 2) {
        fprintf(stderr, "usage: test_fixtures FIXTURES_DIR\n");
        return 2;
    }
    fixtures = argv[1];

    /*
     * The fixtures live beside the repository, not in it; a checkout
     * without them skips this test (exit 77) rather than fail it.
     */
    if (access(fixtures, R_OK | X_OK) != 0) {
        fprintf(stderr, "fixtures not found at %s: skipped\n", fixtures);
        return 77;
    }

    if (cs_schema_load(&schema, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "embedded schema: %s\n", err);
        return 1;
    }

    n = add_dir("real", tests, n, 120);
    n = add_dir("real/upstream", tests, n, 120);
    n = add_dir("rendered", tests, n, 120);
    if (n < 24) {
        fprintf(stderr, "fixtures missing under %s (found %zu)\n", fixtures,
            n);
        return 1;
    }

    tests[n].name = "schema matches upstream defaults";
    tests[n].test_func = test_schema_matches_upstream;
    tests[n].setup_func = NULL;
    tests[n].teardown_func = NULL;
    tests[n].initial_state = NULL;
    n++;

    tests[n].name = "rendered/datadog.yaml.example resolves";
    tests[n].test_func = test_example_resolves;
    tests[n].setup_func = NULL;
    tests[n].teardown_func = NULL;
    tests[n].initial_state = NULL;
    n++;

    rc = _cmocka_run_group_tests("fixtures", tests, n, NULL, NULL);

    while (n-- > 0) {
        if (tests[n].test_func == test_fixture) {
            free((void *) tests[n].initial_state);
        }
    }
    cs_schema_free(schema);
    return rc;
}
