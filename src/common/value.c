/*
 * Configuration values and their conversion to the wire's
 * google.protobuf.Value and to JSON.
 */
#include "value.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static cs_value_t *
value_new(cs_value_kind_t kind)
{
    cs_value_t *v;

    v = calloc(1, sizeof(*v));
    if (v != NULL) {
        v->kind = kind;
    }

    return v;
}

cs_value_t *
cs_value_null(void)
{
    return value_new(CS_VAL_NULL);
}

cs_value_t *
cs_value_bool(int b)
{
    cs_value_t *v;

    v = value_new(CS_VAL_BOOL);
    if (v != NULL) {
        v->u.boolean = b ? 1 : 0;
    }

    return v;
}

cs_value_t *
cs_value_number(double d)
{
    cs_value_t *v;

    v = value_new(CS_VAL_NUMBER);
    if (v != NULL) {
        v->u.number = d;
    }

    return v;
}

cs_value_t *
cs_value_string_len(const char *s, size_t len)
{
    cs_value_t *v;

    v = value_new(CS_VAL_STRING);
    if (v == NULL) {
        return NULL;
    }

    v->u.str.ptr = malloc(len + 1);
    if (v->u.str.ptr == NULL) {
        free(v);
        return NULL;
    }

    memcpy(v->u.str.ptr, s, len);
    v->u.str.ptr[len] = '\0';
    v->u.str.len = len;

    return v;
}

cs_value_t *
cs_value_string(const char *s)
{
    return cs_value_string_len(s, strlen(s));
}

cs_value_t *
cs_value_list(void)
{
    return value_new(CS_VAL_LIST);
}

cs_value_t *
cs_value_map(void)
{
    return value_new(CS_VAL_MAP);
}

static int
grow(void **arr, size_t *cap, size_t elem)
{
    size_t ncap;
    void *p;

    ncap = *cap ? *cap * 2 : 4;
    p = realloc(*arr, ncap * elem);
    if (p == NULL) {
        return -ENOMEM;
    }

    *arr = p;
    *cap = ncap;

    return 0;
}

int
cs_value_list_append(cs_value_t *list, cs_value_t *item)
{
    if (list->u.list.n == list->u.list.cap
        && grow((void **) &list->u.list.items, &list->u.list.cap,
                sizeof(cs_value_t *)) != 0)
    {
        cs_value_free(item);
        return -ENOMEM;
    }

    list->u.list.items[list->u.list.n++] = item;

    return 0;
}

/* Index of key, or the insertion point encoded as -(pos + 1). */
static long
map_find(const cs_value_t *map, const char *key)
{
    size_t lo, hi, mid;
    int c;

    lo = 0;
    hi = map->u.map.n;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        c = strcmp(map->u.map.keys[mid], key);
        if (c == 0) {
            return (long) mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }

    return -((long) lo + 1);
}

int
cs_value_map_set(cs_value_t *map, const char *key, cs_value_t *val)
{
    size_t pos, cap;
    long at;
    char *k;

    at = map_find(map, key);
    if (at >= 0) {
        cs_value_free(map->u.map.vals[at]);
        map->u.map.vals[at] = val;
        return 0;
    }

    pos = (size_t) (-at - 1);

    k = strdup(key);
    if (k == NULL) {
        goto out_nomem;
    }

    if (map->u.map.n == map->u.map.cap) {
        cap = map->u.map.cap;
        if (grow((void **) &map->u.map.keys, &cap, sizeof(char *)) != 0) {
            goto out_free_key;
        }
        cap = map->u.map.cap;
        if (grow((void **) &map->u.map.vals, &cap, sizeof(cs_value_t *))
            != 0)
        {
            goto out_free_key;
        }
        map->u.map.cap = cap;
    }

    memmove(&map->u.map.keys[pos + 1], &map->u.map.keys[pos],
            (map->u.map.n - pos) * sizeof(char *));
    memmove(&map->u.map.vals[pos + 1], &map->u.map.vals[pos],
            (map->u.map.n - pos) * sizeof(cs_value_t *));
    map->u.map.keys[pos] = k;
    map->u.map.vals[pos] = val;
    map->u.map.n++;

    return 0;

out_free_key:
    free(k);
out_nomem:
    cs_value_free(val);
    return -ENOMEM;
}

cs_value_t *
cs_value_map_get(const cs_value_t *map, const char *key)
{
    long at;

    if (map == NULL || map->kind != CS_VAL_MAP) {
        return NULL;
    }

    at = map_find(map, key);

    return at >= 0 ? map->u.map.vals[at] : NULL;
}

void
cs_value_free(cs_value_t *v)
{
    size_t i;

    if (v == NULL) {
        return;
    }

    switch (v->kind) {
    case CS_VAL_STRING:
        free(v->u.str.ptr);
        break;
    case CS_VAL_LIST:
        for (i = 0; i < v->u.list.n; i++) {
            cs_value_free(v->u.list.items[i]);
        }
        free(v->u.list.items);
        break;
    case CS_VAL_MAP:
        for (i = 0; i < v->u.map.n; i++) {
            free(v->u.map.keys[i]);
            cs_value_free(v->u.map.vals[i]);
        }
        free(v->u.map.keys);
        free(v->u.map.vals);
        break;
    default:
        break;
    }

    free(v);
}

cs_value_t *
cs_value_clone(const cs_value_t *v)
{
    cs_value_t *c, *item;
    size_t i;

    switch (v->kind) {
    case CS_VAL_NULL:
        return cs_value_null();
    case CS_VAL_BOOL:
        return cs_value_bool(v->u.boolean);
    case CS_VAL_NUMBER:
        return cs_value_number(v->u.number);
    case CS_VAL_STRING:
        return cs_value_string_len(v->u.str.ptr, v->u.str.len);
    case CS_VAL_LIST:
        c = cs_value_list();
        for (i = 0; c != NULL && i < v->u.list.n; i++) {
            item = cs_value_clone(v->u.list.items[i]);
            if (item == NULL || cs_value_list_append(c, item) != 0) {
                cs_value_free(c);
                return NULL;
            }
        }
        return c;
    case CS_VAL_MAP:
        c = cs_value_map();
        for (i = 0; c != NULL && i < v->u.map.n; i++) {
            item = cs_value_clone(v->u.map.vals[i]);
            if (item == NULL
                || cs_value_map_set(c, v->u.map.keys[i], item) != 0)
            {
                cs_value_free(c);
                return NULL;
            }
        }
        return c;
    }

    return NULL;
}

int
cs_value_equal(const cs_value_t *a, const cs_value_t *b)
{
    size_t i;

    if (a->kind != b->kind) {
        return 0;
    }

    switch (a->kind) {
    case CS_VAL_NULL:
        return 1;
    case CS_VAL_BOOL:
        return a->u.boolean == b->u.boolean;
    case CS_VAL_NUMBER:
        return memcmp(&a->u.number, &b->u.number, sizeof(double)) == 0;
    case CS_VAL_STRING:
        return a->u.str.len == b->u.str.len
               && memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0;
    case CS_VAL_LIST:
        if (a->u.list.n != b->u.list.n) {
            return 0;
        }
        for (i = 0; i < a->u.list.n; i++) {
            if (!cs_value_equal(a->u.list.items[i], b->u.list.items[i])) {
                return 0;
            }
        }
        return 1;
    case CS_VAL_MAP:
        if (a->u.map.n != b->u.map.n) {
            return 0;
        }
        for (i = 0; i < a->u.map.n; i++) {
            if (strcmp(a->u.map.keys[i], b->u.map.keys[i]) != 0
                || !cs_value_equal(a->u.map.vals[i], b->u.map.vals[i]))
            {
                return 0;
            }
        }
        return 1;
    }

    return 0;
}

Google__Protobuf__Value *
cs_value_to_pb(const cs_value_t *v)
{
    Google__Protobuf__Value *pb;
    Google__Protobuf__ListValue *lv;
    Google__Protobuf__Struct *st;
    Google__Protobuf__Struct__FieldsEntry *fe;
    size_t i;

    pb = calloc(1, sizeof(*pb));
    if (pb == NULL) {
        return NULL;
    }
    google__protobuf__value__init(pb);

    switch (v->kind) {
    case CS_VAL_NULL:
        pb->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
        pb->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
        break;

    case CS_VAL_BOOL:
        pb->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
        pb->bool_value = v->u.boolean;
        break;

    case CS_VAL_NUMBER:
        pb->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        pb->number_value = v->u.number;
        break;

    case CS_VAL_STRING:
        pb->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        pb->string_value = strdup(v->u.str.ptr);
        if (pb->string_value == NULL) {
            goto out_free;
        }
        break;

    case CS_VAL_LIST:
        pb->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
        lv = calloc(1, sizeof(*lv));
        if (lv == NULL) {
            goto out_free;
        }
        google__protobuf__list_value__init(lv);
        pb->list_value = lv;
        lv->values = calloc(v->u.list.n + 1, sizeof(*lv->values));
        if (lv->values == NULL) {
            goto out_free;
        }
        for (i = 0; i < v->u.list.n; i++) {
            lv->values[i] = cs_value_to_pb(v->u.list.items[i]);
            if (lv->values[i] == NULL) {
                goto out_free;
            }
            lv->n_values++;
        }
        break;

    case CS_VAL_MAP:
        pb->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
        st = calloc(1, sizeof(*st));
        if (st == NULL) {
            goto out_free;
        }
        google__protobuf__struct__init(st);
        pb->struct_value = st;
        st->fields = calloc(v->u.map.n + 1, sizeof(*st->fields));
        if (st->fields == NULL) {
            goto out_free;
        }
        for (i = 0; i < v->u.map.n; i++) {
            fe = calloc(1, sizeof(*fe));
            if (fe == NULL) {
                goto out_free;
            }
            google__protobuf__struct__fields_entry__init(fe);
            st->fields[st->n_fields++] = fe;
            fe->key = strdup(v->u.map.keys[i]);
            fe->value = cs_value_to_pb(v->u.map.vals[i]);
            if (fe->key == NULL || fe->value == NULL) {
                goto out_free;
            }
        }
        break;
    }

    return pb;

out_free:
    cs_value_pb_free(pb);
    return NULL;
}

void
cs_value_pb_free(Google__Protobuf__Value *pb)
{
    size_t i;

    if (pb == NULL) {
        return;
    }

    switch (pb->kind_case) {
    case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
        free(pb->string_value);
        break;
    case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
        if (pb->list_value != NULL) {
            for (i = 0; i < pb->list_value->n_values; i++) {
                cs_value_pb_free(pb->list_value->values[i]);
            }
            free(pb->list_value->values);
            free(pb->list_value);
        }
        break;
    case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
        if (pb->struct_value != NULL) {
            for (i = 0; i < pb->struct_value->n_fields; i++) {
                free(pb->struct_value->fields[i]->key);
                cs_value_pb_free(pb->struct_value->fields[i]->value);
                free(pb->struct_value->fields[i]);
            }
            free(pb->struct_value->fields);
            free(pb->struct_value);
        }
        break;
    default:
        break;
    }

    free(pb);
}

cs_value_t *
cs_value_from_pb(const Google__Protobuf__Value *pb)
{
    Google__Protobuf__Struct__FieldsEntry *fe;
    cs_value_t *v, *item;
    size_t i;

    if (pb == NULL) {
        return cs_value_null();
    }

    switch (pb->kind_case) {
    case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
        return cs_value_bool(pb->bool_value);

    case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
        return cs_value_number(pb->number_value);

    case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
        return cs_value_string(pb->string_value ? pb->string_value : "");

    case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
        v = cs_value_list();
        for (i = 0; v != NULL && pb->list_value != NULL
                    && i < pb->list_value->n_values; i++)
        {
            item = cs_value_from_pb(pb->list_value->values[i]);
            if (item == NULL || cs_value_list_append(v, item) != 0) {
                cs_value_free(v);
                return NULL;
            }
        }
        return v;

    case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
        v = cs_value_map();
        for (i = 0; v != NULL && pb->struct_value != NULL
                    && i < pb->struct_value->n_fields; i++)
        {
            fe = pb->struct_value->fields[i];
            item = cs_value_from_pb(fe->value);
            if (item == NULL
                || cs_value_map_set(v, fe->key ? fe->key : "", item) != 0)
            {
                cs_value_free(v);
                return NULL;
            }
        }
        return v;

    default:
        return cs_value_null();
    }
}

json_object *
cs_value_to_json(const cs_value_t *v)
{
    json_object *o;
    double d;
    size_t i;

    switch (v->kind) {
    case CS_VAL_NULL:
        return NULL;        /* json-c's null */

    case CS_VAL_BOOL:
        return json_object_new_boolean(v->u.boolean);

    case CS_VAL_NUMBER:
        d = v->u.number;
        if (isnan(d)) {
            return json_object_new_string("NaN");
        }
        if (isinf(d)) {
            return json_object_new_string(d > 0 ? "+Inf" : "-Inf");
        }
        if (d == floor(d) && fabs(d) <= 9007199254740992.0
            && !(d == 0 && signbit(d)))
        {
            return json_object_new_int64((int64_t) d);
        }
        return json_object_new_double(d);

    case CS_VAL_STRING:
        return json_object_new_string_len(v->u.str.ptr, (int) v->u.str.len);

    case CS_VAL_LIST:
        o = json_object_new_array();
        for (i = 0; o != NULL && i < v->u.list.n; i++) {
            json_object_array_add(o, cs_value_to_json(v->u.list.items[i]));
        }
        return o;

    case CS_VAL_MAP:
        o = json_object_new_object();
        for (i = 0; o != NULL && i < v->u.map.n; i++) {
            json_object_object_add(o, v->u.map.keys[i],
                                   cs_value_to_json(v->u.map.vals[i]));
        }
        return o;
    }

    return NULL;
}

const char *
cs_value_kind_name(cs_value_kind_t kind)
{
    static const char *const names[] = {
        "null", "bool", "number", "string", "list", "map"
    };

    return (unsigned) kind < 6 ? names[kind] : "?";
}

int
cs_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    const unsigned char *end = p + len;
    unsigned char lo, hi;
    size_t n, i;

    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }

        /* The second byte's range rules out overlongs, surrogates and
         * code points past U+10FFFF (RFC 3629, section 4). */
        lo = 0x80;
        hi = 0xbf;
        if (*p >= 0xc2 && *p <= 0xdf) {
            n = 1;
        } else if (*p >= 0xe0 && *p <= 0xef) {
            n = 2;
            lo = *p == 0xe0 ? 0xa0 : 0x80;
            hi = *p == 0xed ? 0x9f : 0xbf;
        } else if (*p >= 0xf0 && *p <= 0xf4) {
            n = 3;
            lo = *p == 0xf0 ? 0x90 : 0x80;
            hi = *p == 0xf4 ? 0x8f : 0xbf;
        } else {
            return 0;
        }

        if ((size_t) (end - p) <= n || p[1] < lo || p[1] > hi) {
            return 0;
        }
        for (i = 2; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return 0;
            }
        }
        p += n + 1;
    }

    return 1;
}

int
cs_value_utf8_valid(const cs_value_t *v)
{
    size_t i;

    if (v == NULL) {
        return 1;
    }

    switch (v->kind) {
    case CS_VAL_STRING:
        return cs_utf8_valid(v->u.str.ptr, v->u.str.len);

    case CS_VAL_LIST:
        for (i = 0; i < v->u.list.n; i++) {
            if (!cs_value_utf8_valid(v->u.list.items[i])) {
                return 0;
            }
        }
        return 1;

    case CS_VAL_MAP:
        for (i = 0; i < v->u.map.n; i++) {
            if (!cs_utf8_valid(v->u.map.keys[i], strlen(v->u.map.keys[i]))
                || !cs_value_utf8_valid(v->u.map.vals[i]))
            {
                return 0;
            }
        }
        return 1;

    default:
        return 1;
    }
}
