/*
 * frontend_seed: stand in for the resolver and the broker in frontend
 * system tests, so the frontend can be exercised on its own.
 *
 *   frontend_seed DIR init               create DIR/shm and DIR/store with a
 *                                        few settings, registry enabled
 *   frontend_seed DIR set KEY JSON       change one setting (runtime layer)
 *   frontend_seed DIR unset KEY          clear it
 *   frontend_seed DIR burst N            N changes of key burst.counter
 *   frontend_seed DIR session ID         add a live session
 *   frontend_seed DIR revoke ID          remove it and wake the frontends
 *   frontend_seed DIR registry 0|1       disable or enable the registry
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "shm.h"
#include "store.h"
#include "value.h"

static cs_value_t *
seed_from_json(json_object *j)
{
    cs_value_t *v;
    size_t i;

    switch (json_object_get_type(j)) {
    case json_type_null:
        return cs_value_null();
    case json_type_boolean:
        return cs_value_bool(json_object_get_boolean(j));
    case json_type_int:
    case json_type_double:
        return cs_value_number(json_object_get_double(j));
    case json_type_string:
        return cs_value_string(json_object_get_string(j));
    case json_type_array:
        v = cs_value_list();
        for (i = 0; i < json_object_array_length(j); i++) {
            cs_value_list_append(v,
                seed_from_json(json_object_array_get_idx(j, i)));
        }
        return v;
    case json_type_object:
        v = cs_value_map();
        json_object_object_foreach(j, key, val) {
            cs_value_map_set(v, key, seed_from_json(val));
        }
        return v;
    }

    return cs_value_null();
}

static int
seed_change(cs_store_t *st, cs_shm_t *shm, const char *key,
    const char *json, int count)
{
    cs_store_txn_t *txn;
    cs_value_t *v;
    uint64_t seq, head;
    char buf[64];
    int i, rc;

    rc = cs_store_txn_begin(st, &txn);
    if (rc < 0) {
        return rc;
    }

    for (i = 0; i < count; i++) {
        if (json == NULL) {
            rc = cs_store_setting_change(txn, key, "", NULL, "agent-runtime",
                &seq);
        } else {
            if (count > 1) {
                snprintf(buf, sizeof(buf), "%d", i);
                json = buf;
            }
            v = seed_from_json(json_tokener_parse(json));
            rc = cs_store_setting_change(txn, key, "agent-runtime", v, "",
                &seq);
            cs_value_free(v);
        }
        if (rc < 0) {
            cs_store_txn_abort(txn);
            return rc;
        }
    }

    rc = cs_store_changelog_trim(txn, 100000);
    if (rc == 0) {
        rc = cs_store_txn_commit(txn, &head);
    } else {
        cs_store_txn_abort(txn);
    }
    if (rc == 0) {
        cs_shm_publish_head(shm, head);
    }
    return rc;
}

static int
seed_init(cs_store_t *st, cs_shm_t *shm)
{
    static const char *init[][2] = {
        { "api_key", "\"0123456789\"" },
        { "cmd_port", "5001" },
        { "log_level", "\"info\"" },
        { "logs_config.enabled", "false" },
        { "tags", "[\"env:test\", \"team:a\"]" },
    };
    cs_store_txn_t *txn;
    cs_value_t *v;
    uint64_t seq, head;
    size_t i;
    int rc;

    rc = cs_store_txn_begin(st, &txn);
    if (rc < 0) {
        return rc;
    }

    cs_store_set_origin(txn, "datadog.yaml");
    for (i = 0; i < sizeof(init) / sizeof(init[0]); i++) {
        v = seed_from_json(json_tokener_parse(init[i][1]));
        rc = cs_store_setting_change(txn, init[i][0], "file", v, "", &seq);
        cs_value_free(v);
        if (rc < 0) {
            cs_store_txn_abort(txn);
            return rc;
        }
    }

    rc = cs_store_txn_commit(txn, &head);
    if (rc == 0) {
        atomic_store(&cs_shm_header(shm)->registry_enabled, 1);
        cs_shm_publish_head(shm, head);
    }
    return rc;
}

static int
seed_session(cs_shm_t *shm, const char *id, int add)
{
    cs_shm_session_t copy, *s;
    uint32_t slot;
    int rc;

    if (add) {
        rc = cs_shm_session_alloc(shm, id, &slot);
    } else {
        rc = cs_shm_session_lookup(shm, id, &copy, &slot);
    }
    if (rc < 0) {
        return rc;
    }

    s = cs_shm_session(shm, slot);
    cs_shm_session_write_begin(shm, slot);
    s->in_use = add;
    snprintf(s->id, sizeof(s->id), "%s", add ? id : "");
    snprintf(s->display_name, sizeof(s->display_name), "seeded");
    s->last_seen_ms = INT64_MAX / 2;
    cs_shm_session_write_end(shm, slot);

    if (!add) {
        cs_shm_wake(shm);
    }
    return 0;
}

int
main(int argc, char **argv)
{
    cs_shm_params_t params = { 64, 8 };
    cs_store_t *st;
    cs_shm_t *shm;
    char path[1024], err[256];
    int rc;

    if (argc < 3) {
        fprintf(stderr, "usage: frontend_seed DIR COMMAND [ARGS]\n");
        return 2;
    }

    snprintf(path, sizeof(path), "%s/shm", argv[1]);
    rc = cs_shm_create_or_attach(&shm, path, &params, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "frontend_seed: %s\n", err);
        return 1;
    }

    snprintf(path, sizeof(path), "%s/store", argv[1]);
    rc = cs_store_open(&st, path, CS_STORE_CREATE, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "frontend_seed: %s\n", err);
        return 1;
    }

    if (strcmp(argv[2], "init") == 0) {
        rc = seed_init(st, shm);
    } else if (strcmp(argv[2], "set") == 0 && argc == 5) {
        rc = seed_change(st, shm, argv[3], argv[4], 1);
    } else if (strcmp(argv[2], "unset") == 0 && argc == 4) {
        rc = seed_change(st, shm, argv[3], NULL, 1);
    } else if (strcmp(argv[2], "burst") == 0 && argc == 4) {
        rc = seed_change(st, shm, "burst.counter", "0", atoi(argv[3]));
    } else if (strcmp(argv[2], "session") == 0 && argc == 4) {
        rc = seed_session(shm, argv[3], 1);
    } else if (strcmp(argv[2], "revoke") == 0 && argc == 4) {
        rc = seed_session(shm, argv[3], 0);
    } else if (strcmp(argv[2], "registry") == 0 && argc == 4) {
        atomic_store(&cs_shm_header(shm)->registry_enabled, atoi(argv[3]));
        rc = 0;
    } else {
        fprintf(stderr, "frontend_seed: bad command\n");
        rc = -EINVAL;
    }

    if (rc < 0) {
        fprintf(stderr, "frontend_seed %s: %s\n", argv[2], strerror(-rc));
    }

    cs_store_close(st);
    cs_shm_detach(shm);
    return rc < 0 ? 1 : 0;
}
