/*
 * Values: map ordering, equality, and the round trip through
 * google.protobuf.Value bytes that every stored setting takes.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "value.h"

static cs_value_t *
sample(void)
{
    cs_value_t *m, *l, *inner;

    m = cs_value_map();
    l = cs_value_list();
    assert_int_equal(cs_value_list_append(l, cs_value_string("a b")), 0);
    assert_int_equal(cs_value_list_append(l, cs_value_number(-1.5)), 0);
    assert_int_equal(cs_value_list_append(l, cs_value_null()), 0);

    inner = cs_value_map();
    assert_int_equal(cs_value_map_set(inner, "https://x.example.com",
                                      cs_value_bool(1)), 0);

    assert_int_equal(cs_value_map_set(m, "zeta", l), 0);
    assert_int_equal(cs_value_map_set(m, "alpha", cs_value_number(5001)), 0);
    assert_int_equal(cs_value_map_set(m, "mid", inner), 0);
    assert_int_equal(cs_value_map_set(m, "nan", cs_value_number(NAN)), 0);

    return m;
}

static void
test_map_keys_sorted_and_replaced(void **state)
{
    cs_value_t *m;

    (void) state;
    m = sample();

    assert_int_equal(m->u.map.n, 4);
    assert_string_equal(m->u.map.keys[0], "alpha");
    assert_string_equal(m->u.map.keys[1], "mid");
    assert_string_equal(m->u.map.keys[2], "nan");
    assert_string_equal(m->u.map.keys[3], "zeta");

    assert_int_equal(cs_value_map_set(m, "alpha", cs_value_string("x")), 0);
    assert_int_equal(m->u.map.n, 4);
    assert_int_equal(cs_value_map_get(m, "alpha")->kind, CS_VAL_STRING);
    assert_null(cs_value_map_get(m, "absent"));

    cs_value_free(m);
}

static void
test_equal_distinguishes_kinds_and_bits(void **state)
{
    cs_value_t *a, *b;

    (void) state;
    a = cs_value_number(0.0);
    b = cs_value_number(-0.0);
    assert_false(cs_value_equal(a, b));
    cs_value_free(b);

    b = cs_value_bool(0);
    assert_false(cs_value_equal(a, b));
    cs_value_free(a);
    cs_value_free(b);

    a = cs_value_number(NAN);
    b = cs_value_number(NAN);
    assert_true(cs_value_equal(a, b));
    cs_value_free(a);
    cs_value_free(b);

    a = cs_value_string("1");
    b = cs_value_number(1);
    assert_false(cs_value_equal(a, b));
    cs_value_free(a);
    cs_value_free(b);
}

static void
test_protobuf_round_trip(void **state)
{
    Google__Protobuf__Value *pb, *back_pb;
    cs_value_t *v, *back;
    uint8_t *buf;
    size_t len;

    (void) state;
    v = sample();

    pb = cs_value_to_pb(v);
    assert_non_null(pb);
    len = google__protobuf__value__get_packed_size(pb);
    buf = malloc(len);
    google__protobuf__value__pack(pb, buf);

    back_pb = google__protobuf__value__unpack(NULL, len, buf);
    assert_non_null(back_pb);
    back = cs_value_from_pb(back_pb);
    assert_non_null(back);
    assert_true(cs_value_equal(v, back));

    google__protobuf__value__free_unpacked(back_pb, NULL);
    cs_value_pb_free(pb);
    cs_value_free(back);
    cs_value_free(v);
    free(buf);
}

static void
test_equal_maps_encode_identically(void **state)
{
    Google__Protobuf__Value *pa, *pb;
    cs_value_t *a, *b;
    uint8_t ba[256], bb[256];
    size_t la, lb;

    (void) state;
    a = cs_value_map();
    b = cs_value_map();
    cs_value_map_set(a, "b", cs_value_number(2));
    cs_value_map_set(a, "a", cs_value_number(1));
    cs_value_map_set(b, "a", cs_value_number(1));
    cs_value_map_set(b, "b", cs_value_number(2));

    pa = cs_value_to_pb(a);
    pb = cs_value_to_pb(b);
    la = google__protobuf__value__pack(pa, ba);
    lb = google__protobuf__value__pack(pb, bb);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);

    cs_value_pb_free(pa);
    cs_value_pb_free(pb);
    cs_value_free(a);
    cs_value_free(b);
}

static void
test_json_form(void **state)
{
    json_object *o;
    cs_value_t *v;

    (void) state;
    v = sample();
    o = cs_value_to_json(v);
    assert_string_equal(json_object_to_json_string_ext(o,
                            JSON_C_TO_STRING_PLAIN),
        "{\"alpha\":5001,\"mid\":{\"https:\\/\\/x.example.com\":true},"
        "\"nan\":\"NaN\",\"zeta\":[\"a b\",-1.5,null]}");
    json_object_put(o);
    cs_value_free(v);

    v = cs_value_number(-INFINITY);
    o = cs_value_to_json(v);
    assert_string_equal(json_object_get_string(o), "-Inf");
    json_object_put(o);
    cs_value_free(v);
}

static void
test_clone_is_deep(void **state)
{
    cs_value_t *v, *c;

    (void) state;
    v = sample();
    c = cs_value_clone(v);
    assert_true(cs_value_equal(v, c));

    cs_value_map_set(cs_value_map_get(c, "mid"), "new", cs_value_null());
    assert_false(cs_value_equal(v, c));

    cs_value_free(v);
    cs_value_free(c);
}

#define UTF8(lit) cs_utf8_valid(lit, sizeof(lit) - 1)

static void
test_utf8_valid(void **state)
{
    (void) state;

    assert_true(UTF8(""));
    assert_true(UTF8("plain ascii"));
    assert_true(UTF8("a\0b"));                      /* NUL is U+0000 */
    assert_true(UTF8("\xc2\x80"));                   /* U+0080 */
    assert_true(UTF8("caf\xc3\xa9"));
    assert_true(UTF8("\xe0\xa0\x80"));               /* U+0800 */
    assert_true(UTF8("\xed\x9f\xbf"));               /* U+D7FF */
    assert_true(UTF8("\xee\x80\x80"));               /* U+E000 */
    assert_true(UTF8("\xef\xbf\xbf"));               /* U+FFFF */
    assert_true(UTF8("\xf0\x90\x80\x80"));           /* U+10000 */
    assert_true(UTF8("\xf4\x8f\xbf\xbf"));           /* U+10FFFF */

    assert_false(UTF8("host\xffname"));
    assert_false(UTF8("\x80"));                      /* lone continuation */
    assert_false(UTF8("\xc3"));                      /* truncated */
    assert_false(UTF8("\xe2\x82"));
    assert_false(UTF8("\xc3(\xa9"));
    assert_false(UTF8("\xc0\xaf"));                  /* overlong '/' */
    assert_false(UTF8("\xc1\xbf"));
    assert_false(UTF8("\xe0\x9f\xbf"));              /* overlong U+07FF */
    assert_false(UTF8("\xf0\x8f\xbf\xbf"));          /* overlong U+FFFF */
    assert_false(UTF8("\xed\xa0\x80"));              /* U+D800 */
    assert_false(UTF8("\xed\xbf\xbf"));              /* U+DFFF */
    assert_false(UTF8("\xf4\x90\x80\x80"));          /* U+110000 */
    assert_false(UTF8("\xf5\x80\x80\x80"));
    assert_false(UTF8("\xfe"));
    /* the length bounds the check, not a NUL */
    assert_true(cs_utf8_valid("ok\xff", 2));
    assert_false(cs_utf8_valid("\xc3\xa9", 1));
}

static void
test_value_utf8_valid_recursive(void **state)
{
    cs_value_t *v, *inner, *list;

    (void) state;
    v = sample();
    assert_true(cs_value_utf8_valid(v));
    assert_true(cs_value_utf8_valid(NULL));

    /* a bad string deep in a list in a map */
    list = cs_value_list();
    assert_int_equal(cs_value_list_append(list, cs_value_string("ok")), 0);
    assert_int_equal(cs_value_list_append(list,
        cs_value_string("b\xff" "d")), 0);
    inner = cs_value_map();
    assert_int_equal(cs_value_map_set(inner, "l", list), 0);
    assert_int_equal(cs_value_map_set(v, "deep", inner), 0);
    assert_false(cs_value_utf8_valid(v));
    cs_value_free(v);

    /* a bad map key */
    v = cs_value_map();
    assert_int_equal(cs_value_map_set(v, "k\xc0\xaf", cs_value_null()), 0);
    assert_false(cs_value_utf8_valid(v));
    cs_value_free(v);

    v = cs_value_string("\xed\xa0\x80");
    assert_false(cs_value_utf8_valid(v));
    cs_value_free(v);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_keys_sorted_and_replaced),
        cmocka_unit_test(test_equal_distinguishes_kinds_and_bits),
        cmocka_unit_test(test_protobuf_round_trip),
        cmocka_unit_test(test_equal_maps_encode_identically),
        cmocka_unit_test(test_json_form),
        cmocka_unit_test(test_clone_is_deep),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_value_utf8_valid_recursive),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
