/*
 * Configuration values: the in-memory form of google.protobuf.Value.
 *
 * A value is null, a bool, a number (a double, as on the wire), a string,
 * a list or a map with string keys. Maps keep their keys sorted, so two
 * equal maps encode to the same bytes and iterate in the same order.
 *
 * Ownership: constructors return a new value or NULL on ENOMEM. Adding a
 * value to a list or map hands it over; the container frees it.
 */
#ifndef CS_VALUE_H
#define CS_VALUE_H

#include <stddef.h>

#include <json-c/json.h>

#include "google/protobuf/struct.pb-c.h"

typedef enum {
    CS_VAL_NULL = 0,
    CS_VAL_BOOL,
    CS_VAL_NUMBER,
    CS_VAL_STRING,
    CS_VAL_LIST,
    CS_VAL_MAP
} cs_value_kind_t;

typedef struct cs_value cs_value_t;

struct cs_value {
    cs_value_kind_t kind;
    union {
        int boolean;
        double number;
        struct {
            char *ptr;              /* NUL-terminated; may hold NULs */
            size_t len;
        } str;
        struct {
            cs_value_t **items;
            size_t n, cap;
        } list;
        struct {
            char **keys;            /* sorted, unique */
            cs_value_t **vals;
            size_t n, cap;
        } map;
    } u;
};

cs_value_t *cs_value_null(void);
cs_value_t *cs_value_bool(int b);
cs_value_t *cs_value_number(double d);
cs_value_t *cs_value_string(const char *s);
cs_value_t *cs_value_string_len(const char *s, size_t len);
cs_value_t *cs_value_list(void);
cs_value_t *cs_value_map(void);

/* Append item to a list. Returns 0 or -ENOMEM (item is freed then). */
int cs_value_list_append(cs_value_t *list, cs_value_t *item);

/*
 * Set key in a map, replacing and freeing any previous value. Returns 0
 * or -ENOMEM (val is freed then).
 */
int cs_value_map_set(cs_value_t *map, const char *key, cs_value_t *val);

/* The value of key in map, or NULL. */
cs_value_t *cs_value_map_get(const cs_value_t *map, const char *key);

void cs_value_free(cs_value_t *v);
cs_value_t *cs_value_clone(const cs_value_t *v);

/*
 * Deep equality. Numbers compare by bit pattern, so NaN equals NaN and
 * 0.0 differs from -0.0: a value "changed" when its encoding changed.
 */
int cs_value_equal(const cs_value_t *a, const cs_value_t *b);

/* Convert to and from protobuf-c's google.protobuf.Value. */
Google__Protobuf__Value *cs_value_to_pb(const cs_value_t *v);
void cs_value_pb_free(Google__Protobuf__Value *pb);
cs_value_t *cs_value_from_pb(const Google__Protobuf__Value *pb);

/*
 * JSON form, for tools. Integral numbers below 2^53 print as integers;
 * NaN and infinities, which JSON lacks, print as the strings "NaN",
 * "+Inf" and "-Inf".
 */
json_object *cs_value_to_json(const cs_value_t *v);

/*
 * The longest setting key, in bytes. LMDB keys are at most 511 bytes and
 * a layer key is the source and the key; the agent's keys are far shorter.
 */
#define CS_KEY_MAX 255

/*
 * 1 when s[0..len) is well-formed UTF-8 (RFC 3629): no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF; else 0. NUL bytes
 * are valid. proto3 string fields must hold such text: protobuf-go refuses
 * a whole message when one of its strings does not.
 */
int cs_utf8_valid(const char *s, size_t len);

/* 1 when every string in v, and every map key, at any depth, is. */
int cs_value_utf8_valid(const cs_value_t *v);

/* The kind's name: "null", "bool", "number", "string", "list", "map". */
const char *cs_value_kind_name(cs_value_kind_t kind);

#endif /* CS_VALUE_H */
