/*
 * Resolution: source names, precedence across every source, the file
 * layer and the fleet-policies directory.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "resolve.h"
#include "schema.h"

static const char *const names[CS_SRC_COUNT] = {
    "default", "unknown", "file", "environment-variable", "fleet-policies",
    "local-config-process", "agent-runtime", "remote-config", "cli"
};

static void
test_source_names(void **state)
{
    cs_source_t s;
    int i;

    for (i = 0; i < CS_SRC_COUNT; i++) {
        assert_string_equal(cs_source_name((cs_source_t) i), names[i]);
        assert_int_equal(cs_source_parse(names[i], &s), 0);
        assert_int_equal(s, i);
    }
    assert_null(cs_source_name(CS_SRC_COUNT));
    assert_int_equal(cs_source_parse("runtime", &s), -EINVAL);
    assert_int_equal(cs_source_parse("CLI", &s), -EINVAL);
}

/*
 * Key "kN" is held by sources 0..N with each layer's own value; the
 * winner must be source N, for every N, and for every pair of sources
 * the higher one wins.
 */
static void
test_precedence_every_source(void **state)
{
    cs_value_t *layers[CS_SRC_COUNT] = { NULL };
    const cs_resolved_t *r;
    cs_resolution_t *res;
    char key[32];
    int s, n, lo, hi;

    for (s = 0; s < CS_SRC_COUNT; s++) {
        layers[s] = cs_value_map();
        for (n = s; n < CS_SRC_COUNT; n++) {
            snprintf(key, sizeof(key), "k%d", n);
            cs_value_map_set(layers[s], key, cs_value_number(s));
        }
        for (lo = 0; lo < CS_SRC_COUNT; lo++) {
            for (hi = lo + 1; hi < CS_SRC_COUNT; hi++) {
                if (s == lo || s == hi) {
                    snprintf(key, sizeof(key), "p%d_%d", lo, hi);
                    cs_value_map_set(layers[s], key, cs_value_number(s));
                }
            }
        }
    }

    assert_int_equal(cs_resolve(layers, &res), 0);

    for (n = 0; n < CS_SRC_COUNT; n++) {
        snprintf(key, sizeof(key), "k%d", n);
        r = cs_resolution_find(res, key);
        assert_non_null(r);
        assert_int_equal(r->source, n);
        assert_true(r->value->u.number == n);
    }
    for (lo = 0; lo < CS_SRC_COUNT; lo++) {
        for (hi = lo + 1; hi < CS_SRC_COUNT; hi++) {
            snprintf(key, sizeof(key), "p%d_%d", lo, hi);
            r = cs_resolution_find(res, key);
            assert_int_equal(r->source, hi);
            assert_string_equal(cs_source_name(r->source), names[hi]);
        }
    }

    for (n = 1; n < (int) res->n; n++) {
        assert_true(strcmp(res->items[n - 1].key, res->items[n].key) < 0);
    }
    assert_null(cs_resolution_find(res, "absent"));

    cs_resolution_free(res);
    for (s = 0; s < CS_SRC_COUNT; s++) {
        cs_value_free(layers[s]);
    }
}

static void
test_null_and_empty_layers(void **state)
{
    cs_value_t *layers[CS_SRC_COUNT] = { NULL };
    cs_resolution_t *res;
    const cs_resolved_t *r;

    layers[CS_SRC_DEFAULT] = cs_value_map();
    cs_value_map_set(layers[CS_SRC_DEFAULT], "a", cs_value_string("d"));
    cs_value_map_set(layers[CS_SRC_DEFAULT], "b", cs_value_string("d"));
    layers[CS_SRC_FILE] = cs_value_map();
    cs_value_map_set(layers[CS_SRC_FILE], "a", cs_value_null());
    layers[CS_SRC_ENV] = cs_value_map();

    assert_int_equal(cs_resolve(layers, &res), 0);
    assert_int_equal(res->n, 2);
    r = cs_resolution_find(res, "a");
    assert_int_equal(r->source, CS_SRC_FILE);
    assert_int_equal(r->value->kind, CS_VAL_NULL);
    r = cs_resolution_find(res, "b");
    assert_int_equal(r->source, CS_SRC_DEFAULT);

    cs_resolution_free(res);
    cs_value_free(layers[CS_SRC_DEFAULT]);
    cs_value_free(layers[CS_SRC_FILE]);
    cs_value_free(layers[CS_SRC_ENV]);

    memset(layers, 0, sizeof(layers));
    assert_int_equal(cs_resolve(layers, &res), 0);
    assert_int_equal(res->n, 0);
    cs_resolution_free(res);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
test_file_layer(void **state)
{
    char dir[] = "/tmp/test_resolveXXXXXX", path[256], err[256];
    cs_value_t *layer = NULL;
    cs_schema_t *schema;
    char **files = NULL;

    assert_int_equal(cs_schema_load(&schema, NULL, err, sizeof(err)), 0);
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/datadog.yaml", dir);

    write_file(path, "cmd_port: 6001\nlogs_config:\n  use_http: yes\n");
    assert_int_equal(cs_resolve_load_file_layer(schema, path, &layer, &files,
        err, sizeof(err)), 0);
    assert_true(cs_value_map_get(layer, "cmd_port")->u.number == 6001);
    assert_true(cs_value_map_get(layer, "logs_config.use_http")->u.boolean);
    assert_string_equal(files[0], path);
    assert_null(files[1]);
    cs_resolve_files_free(files);
    cs_value_free(layer);

    write_file(path, "cmd_port: 6001\ncmd_port: 6002\n");
    layer = NULL;
    assert_int_equal(cs_resolve_load_file_layer(schema, path, &layer, &files,
        err, sizeof(err)), -EINVAL);
    assert_null(layer);
    assert_non_null(strstr(err, ":2:1: duplicate key 'cmd_port'"));
    assert_int_equal(strncmp(err, path, strlen(path)), 0);

    unlink(path);
    assert_int_equal(cs_resolve_load_file_layer(schema, path, &layer, &files,
        err, sizeof(err)), -ENOENT);

    rmdir(dir);
    cs_schema_free(schema);
}

static void
test_fleet_layer(void **state)
{
    char dir[] = "/tmp/test_fleetXXXXXX", path[256], err[256];
    cs_value_t *layer = NULL;
    cs_schema_t *schema;
    char **files = NULL;

    assert_int_equal(cs_schema_load(&schema, NULL, err, sizeof(err)), 0);
    assert_non_null(mkdtemp(dir));

    snprintf(path, sizeof(path), "%s/20-b.yaml", dir);
    write_file(path, "cmd_port: 7002\nsite: b\n");
    snprintf(path, sizeof(path), "%s/10-a.yaml", dir);
    write_file(path, "cmd_port: 7001\nlog_level: debug\n");
    snprintf(path, sizeof(path), "%s/30-c.txt", dir);
    write_file(path, "cmd_port: 7003\n");

    assert_int_equal(cs_resolve_load_fleet_layer(schema, dir, &layer, &files,
        err, sizeof(err)), 0);
    /* Name order, later wins. */
    assert_true(cs_value_map_get(layer, "cmd_port")->u.number == 7002);
    assert_string_equal(cs_value_map_get(layer, "log_level")->u.str.ptr,
        "debug");
    assert_string_equal(cs_value_map_get(layer, "site")->u.str.ptr, "b");
    assert_int_equal(layer->u.map.n, 3);
    assert_non_null(strstr(files[0], "10-a.yaml"));
    assert_non_null(strstr(files[1], "20-b.yaml"));
    assert_null(files[2]);
    cs_resolve_files_free(files);
    cs_value_free(layer);

    snprintf(path, sizeof(path), "%s/20-b.yaml", dir);
    write_file(path, "cmd_port: [\n");
    assert_int_equal(cs_resolve_load_fleet_layer(schema, dir, &layer, NULL,
        err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "20-b.yaml:2:1: "));

    /* A policy that is a FIFO is refused, not waited on. */
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(10);
    assert_int_equal(cs_resolve_load_fleet_layer(schema, dir, &layer, NULL,
        err, sizeof(err)), -EINVAL);
    alarm(0);
    assert_non_null(strstr(err, "20-b.yaml: not a regular file"));

    unlink(path);
    snprintf(path, sizeof(path), "%s/10-a.yaml", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/30-c.txt", dir);
    unlink(path);
    rmdir(dir);

    /* A missing directory is an empty layer. */
    assert_int_equal(cs_resolve_load_fleet_layer(schema, dir, &layer, &files,
        err, sizeof(err)), 0);
    assert_int_equal(layer->u.map.n, 0);
    assert_null(files[0]);
    cs_resolve_files_free(files);
    cs_value_free(layer);
    cs_schema_free(schema);
}

static void
test_layer_merge(void **state)
{
    cs_value_t *a = cs_value_map(), *b = cs_value_map();

    cs_value_map_set(a, "x", cs_value_number(1));
    cs_value_map_set(a, "y", cs_value_number(1));
    cs_value_map_set(b, "y", cs_value_number(2));
    cs_value_map_set(b, "z", cs_value_number(2));

    assert_int_equal(cs_layer_merge(a, b), 0);
    assert_int_equal(a->u.map.n, 3);
    assert_true(cs_value_map_get(a, "y")->u.number == 2);
    assert_int_equal(b->u.map.n, 2);

    cs_value_free(a);
    cs_value_free(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_names),
        cmocka_unit_test(test_precedence_every_source),
        cmocka_unit_test(test_null_and_empty_layers),
        cmocka_unit_test(test_file_layer),
        cmocka_unit_test(test_fleet_layer),
        cmocka_unit_test(test_layer_merge),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
