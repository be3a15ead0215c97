/*
 * The YAML loader: every rejection with its position, alias expansion
 * bounded, merge keys, and YAML 1.1 typing of plain scalars.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "yaml_load.h"

static int
load(const char *text, cs_yaml_node_t **root, char *err, size_t errlen)
{
    err[0] = '\0';
    return cs_yaml_load_buffer(text, strlen(text), "t.yaml", 0, root, err,
        errlen);
}

/* Load text and expect a rejection whose message starts with prefix. */
static void
expect_error(const char *text, const char *prefix)
{
    cs_yaml_node_t *root = NULL;
    char err[512];
    int rc;

    rc = load(text, &root, err, sizeof(err));
    assert_int_equal(rc, -22);
    assert_null(root);
    if (strncmp(err, prefix, strlen(prefix)) != 0) {
        fail_msg("error '%s' does not start with '%s'", err, prefix);
    }
}

static void
test_tab_indentation(void **state)
{
    expect_error("a:\n\tb: 1\n", "t.yaml:2:1: tab character");
}

static void
test_duplicate_key(void **state)
{
    expect_error("a: 1\nb: 2\na: 3\n",
        "t.yaml:3:1: duplicate key 'a' (first at line 1)");
    expect_error("s:\n  x: 1\n  x: 2\n", "t.yaml:3:3: duplicate key 'x'");
}

static void
test_invalid_utf8(void **state)
{
    expect_error("a: \xff\n", "t.yaml:1:4: invalid leading UTF-8 octet");
    expect_error("a: ok\nb: \xc3\x28\n",
        "t.yaml:2:5: invalid trailing UTF-8 octet");
}

static void
test_bad_indentation(void **state)
{
    expect_error("a:\n  b: 1\n c: 2\n", "t.yaml:3:2: did not find expected");
    expect_error("a:\n  - x\n  b: 1\n",
        "t.yaml:3:3: did not find expected '-' indicator");
}

static void
test_unterminated(void **state)
{
    expect_error("a: 'open\n", "t.yaml:2:1: found unexpected end");
    expect_error("a: [1, 2\n", "t.yaml:2:1: did not find expected ','");
    /* The error also points at where the unclosed collection began. */
    expect_error("a: 1\nb: [1, 2\n",
        "t.yaml:3:1: did not find expected ',' or ']' (while parsing a "
        "flow sequence started at line 2, column 4)");
}

static void
test_top_level_not_mapping(void **state)
{
    expect_error("- a\n- b\n", "t.yaml:1:1: top level is a sequence");
    expect_error("\n\nhello\n", "t.yaml:3:1: top level is a scalar");
}

static void
test_any_top_level(void **state)
{
    cs_yaml_node_t *root = NULL;
    char err[256];

    assert_int_equal(cs_yaml_load_buffer("[1, 2]", 6, "v", CS_YAML_ANY_TOP,
        &root, err, sizeof(err)), 0);
    assert_non_null(root);
    assert_int_equal(root->kind, CS_YAML_SEQUENCE);
    assert_int_equal(root->n, 2);
    cs_yaml_node_free(root);
}

static void
test_non_scalar_key(void **state)
{
    expect_error("? [a]\n: 1\n", "t.yaml:1:3: mapping key is not a scalar");
    expect_error("{a: 1}: x\n", "t.yaml:1:1: mapping key is not a scalar");
}

static void
test_alias_bomb_bounded(void **state)
{
    static const char bomb[] =
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
        "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
        "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
        "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
    cs_yaml_node_t *root = NULL;
    char err[512];

    assert_int_equal(load(bomb, &root, err, sizeof(err)), -22);
    assert_null(root);
    assert_non_null(strstr(err, "expands to more than 100000 nodes"));
    /* The position is the alias where the bound was crossed. */
    assert_int_equal(strncmp(err, "t.yaml:5:", 9), 0);
}

static void
test_unknown_alias(void **state)
{
    expect_error("a: *nope\n", "t.yaml:1:4: unknown anchor 'nope'");
}

static void
test_bom_accepted(void **state)
{
    static const char text[] = "\xef\xbb\xbf" "a: 1\n";
    char path[] = "/tmp/test_yaml_bomXXXXXX";
    cs_yaml_node_t *root = NULL;
    char err[256];
    int fd;

    assert_int_equal(load(text, &root, err, sizeof(err)), 0);
    assert_non_null(cs_yaml_map_get(root, "a"));
    cs_yaml_node_free(root);

    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, sizeof(text) - 1),
        (ssize_t) sizeof(text) - 1);
    close(fd);

    root = NULL;
    assert_int_equal(cs_yaml_load_file(path, 0, &root, err, sizeof(err)), 0);
    assert_string_equal(cs_yaml_map_get(root, "a")->text, "1");
    assert_int_equal(root->keys[0]->line, 1);
    assert_int_equal(root->keys[0]->column, 1);
    cs_yaml_node_free(root);
    unlink(path);
}

static void
test_empty_documents(void **state)
{
    static const char *const empty[] = {
        "", "\n", "# just a comment\n\n# another\n", "null\n", "~\n", "---\n",
        NULL
    };
    cs_yaml_node_t *root;
    char err[256];
    size_t i;

    for (i = 0; empty[i] != NULL; i++) {
        root = (cs_yaml_node_t *) 1;
        assert_int_equal(load(empty[i], &root, err, sizeof(err)), 0);
        assert_null(root);
    }
}

static void
test_missing_file(void **state)
{
    cs_yaml_node_t *root = NULL;
    char err[256];

    assert_int_equal(cs_yaml_load_file("/nonexistent/x.yaml", 0, &root, err,
        sizeof(err)), -2);
    assert_non_null(strstr(err, "/nonexistent/x.yaml"));
}

/*
 * A FIFO, a device behind a symlink and an oversized file are refused
 * without blocking or reading them whole. The alarm ends the test if the
 * open blocks or the read never ends.
 */
static void
test_file_not_regular(void **state)
{
    char dir[] = "/tmp/cs-yaml-XXXXXX", fifo[64], link[64], want[96];
    cs_yaml_node_t *root = NULL;
    char err[256];

    assert_non_null(mkdtemp(dir));
    snprintf(fifo, sizeof(fifo), "%s/fifo.yaml", dir);
    snprintf(link, sizeof(link), "%s/zero.yaml", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(symlink("/dev/zero", link), 0);

    alarm(10);
    assert_int_equal(cs_yaml_load_file(fifo, 0, &root, err, sizeof(err)),
        -EINVAL);
    snprintf(want, sizeof(want), "%s: not a regular file", fifo);
    assert_string_equal(err, want);

    assert_int_equal(cs_yaml_load_file(link, 0, &root, err, sizeof(err)),
        -EINVAL);
    snprintf(want, sizeof(want), "%s: not a regular file", link);
    assert_string_equal(err, want);

    assert_int_equal(cs_yaml_load_file(dir, 0, &root, err, sizeof(err)),
        -EISDIR);
    alarm(0);
    assert_null(root);

    unlink(fifo);
    unlink(link);
    rmdir(dir);
}

/* A file of exactly CS_YAML_MAX_FILE bytes loads; one byte more does not. */
static void
test_file_size_cap(void **state)
{
    char path[] = "/tmp/cs-yaml-big-XXXXXX", want[128];
    cs_yaml_node_t *root = NULL;
    char err[256], *text;
    int fd;

    text = malloc(CS_YAML_MAX_FILE + 1);
    assert_non_null(text);
    memset(text, ' ', CS_YAML_MAX_FILE);
    memcpy(text, "a: 1\n#", 6);
    text[CS_YAML_MAX_FILE - 1] = '\n';

    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, CS_YAML_MAX_FILE), CS_YAML_MAX_FILE);
    assert_int_equal(cs_yaml_load_file(path, 0, &root, err, sizeof(err)), 0);
    assert_string_equal(cs_yaml_map_get(root, "a")->text, "1");
    cs_yaml_node_free(root);
    root = NULL;

    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    assert_int_equal(cs_yaml_load_file(path, 0, &root, err, sizeof(err)),
        -EFBIG);
    snprintf(want, sizeof(want), "%s: too large (4194305 bytes, at most "
        "4194304)", path);
    assert_string_equal(err, want);
    assert_null(root);

    unlink(path);
    free(text);
}

static void
test_positions_and_quoting(void **state)
{
    cs_yaml_node_t *root = NULL;
    const cs_yaml_node_t *n;
    char err[256];

    assert_int_equal(load("a: 1\nsect:\n  b: 'x'\n  c: |\n    lit\n",
        &root, err, sizeof(err)), 0);
    n = cs_yaml_map_get(cs_yaml_map_get(root, "sect"), "b");
    assert_int_equal(n->line, 3);
    assert_int_equal(n->column, 6);
    assert_true(n->quoted);
    n = cs_yaml_map_get(root, "a");
    assert_false(n->quoted);
    n = cs_yaml_map_get(cs_yaml_map_get(root, "sect"), "c");
    assert_true(n->quoted);
    assert_string_equal(n->text, "lit\n");
    cs_yaml_node_free(root);
}

static void
test_anchors_and_merge(void **state)
{
    cs_yaml_node_t *root = NULL;
    cs_value_t *v;
    const cs_value_t *d;
    char err[256];

    assert_int_equal(load(
        "base: &b {x: 1, y: 2}\n"
        "more: &m {z: 3, x: 9}\n"
        "d:\n"
        "  <<: [*b, *m]\n"
        "  y: 5\n"
        "list: &l [a, b]\n"
        "copy: *l\n", &root, err, sizeof(err)), 0);

    v = cs_yaml_to_value(root);
    d = cs_value_map_get(v, "d");
    assert_non_null(d);
    assert_int_equal(d->u.map.n, 3);
    /* Written keys win; then the earlier merged mapping. */
    assert_true(cs_value_map_get(d, "x")->u.number == 1);
    assert_true(cs_value_map_get(d, "y")->u.number == 5);
    assert_true(cs_value_map_get(d, "z")->u.number == 3);
    assert_null(cs_value_map_get(d, "<<"));
    assert_int_equal(cs_value_map_get(v, "copy")->u.list.n, 2);

    cs_value_free(v);
    cs_yaml_node_free(root);
}

static void
test_anchored_merge_source_reused(void **state)
{
    cs_yaml_node_t *root = NULL;
    cs_value_t *v;
    char err[256];

    /* The merged mapping is an anchor target used again later. */
    assert_int_equal(load("a:\n  <<: &m {x: 1}\n  y: 2\nb: *m\n", &root,
        err, sizeof(err)), 0);
    v = cs_yaml_to_value(root);
    assert_true(cs_value_map_get(cs_value_map_get(v, "a"), "x")->u.number
        == 1);
    assert_true(cs_value_map_get(cs_value_map_get(v, "b"), "x")->u.number
        == 1);
    assert_int_equal(cs_value_map_get(v, "b")->u.map.n, 1);
    cs_value_free(v);
    cs_yaml_node_free(root);
}

static void
test_self_reference_rejected(void **state)
{
    expect_error("a: &a [x, *a]\n", "t.yaml:1:11: unknown anchor 'a'");
}

static void
test_deep_nesting_rejected(void **state)
{
    char *text;
    size_t i;

    text = calloc(1, 2048);
    strcpy(text, "a: ");
    for (i = 0; i < 600; i++) {
        strcat(text, "[");
    }
    strcat(text, "\n");
    expect_error(text, "t.yaml:1:");
    free(text);
}

static void
test_merge_of_scalar_rejected(void **state)
{
    expect_error("a:\n  <<: 5\n", "t.yaml:2:7: merge key");
}

static void
check_scalar(const char *text, cs_value_kind_t kind, double num)
{
    cs_value_t *v = cs_yaml_scalar_value(text, 0);

    assert_non_null(v);
    if (v->kind != kind) {
        fail_msg("'%s' typed %s, expected %s", text,
            cs_value_kind_name(v->kind), cs_value_kind_name(kind));
    }
    if (kind == CS_VAL_NUMBER && !isnan(num)) {
        if (v->u.number != num) {
            fail_msg("'%s' read as %g, expected %g", text, v->u.number, num);
        }
    } else if (kind == CS_VAL_NUMBER) {
        assert_true(isnan(v->u.number));
    } else if (kind == CS_VAL_BOOL) {
        assert_int_equal(v->u.boolean, (int) num);
    }
    cs_value_free(v);
}

static void
test_yaml11_scalars(void **state)
{
    cs_value_t *v;

    check_scalar("yes", CS_VAL_BOOL, 1);
    check_scalar("No", CS_VAL_BOOL, 0);
    check_scalar("ON", CS_VAL_BOOL, 1);
    check_scalar("off", CS_VAL_BOOL, 0);
    check_scalar("y", CS_VAL_BOOL, 1);
    check_scalar("n", CS_VAL_BOOL, 0);
    check_scalar("True", CS_VAL_BOOL, 1);
    check_scalar("tRUE", CS_VAL_STRING, 0);
    check_scalar("~", CS_VAL_NULL, 0);
    check_scalar("null", CS_VAL_NULL, 0);
    check_scalar("", CS_VAL_NULL, 0);
    check_scalar("42", CS_VAL_NUMBER, 42);
    check_scalar("-7", CS_VAL_NUMBER, -7);
    check_scalar("0x1F", CS_VAL_NUMBER, 31);
    check_scalar("0o17", CS_VAL_NUMBER, 15);
    check_scalar("0755", CS_VAL_NUMBER, 493);
    check_scalar("08", CS_VAL_NUMBER, 8);
    check_scalar("0b101", CS_VAL_NUMBER, 5);
    check_scalar("1_000", CS_VAL_NUMBER, 1000);
    check_scalar("1.5", CS_VAL_NUMBER, 1.5);
    check_scalar("1e3", CS_VAL_NUMBER, 1000);
    check_scalar(".5", CS_VAL_NUMBER, 0.5);
    check_scalar(".inf", CS_VAL_NUMBER, INFINITY);
    check_scalar("-.Inf", CS_VAL_NUMBER, -INFINITY);
    check_scalar(".nan", CS_VAL_NUMBER, NAN);
    check_scalar("1.2.3", CS_VAL_STRING, 0);
    check_scalar("0x", CS_VAL_STRING, 0);
    check_scalar("2001-12-14", CS_VAL_STRING, 0);
    check_scalar("30s", CS_VAL_STRING, 0);

    v = cs_yaml_scalar_value("yes", 1);
    assert_int_equal(v->kind, CS_VAL_STRING);
    cs_value_free(v);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tab_indentation),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_bad_indentation),
        cmocka_unit_test(test_unterminated),
        cmocka_unit_test(test_top_level_not_mapping),
        cmocka_unit_test(test_any_top_level),
        cmocka_unit_test(test_non_scalar_key),
        cmocka_unit_test(test_alias_bomb_bounded),
        cmocka_unit_test(test_unknown_alias),
        cmocka_unit_test(test_bom_accepted),
        cmocka_unit_test(test_empty_documents),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_file_not_regular),
        cmocka_unit_test(test_file_size_cap),
        cmocka_unit_test(test_positions_and_quoting),
        cmocka_unit_test(test_anchors_and_merge),
        cmocka_unit_test(test_anchored_merge_source_reused),
        cmocka_unit_test(test_self_reference_rejected),
        cmocka_unit_test(test_deep_nesting_rejected),
        cmocka_unit_test(test_merge_of_scalar_rejected),
        cmocka_unit_test(test_yaml11_scalars),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
