/*
 * store-seed DIR: create a store in DIR holding a few settings, layer
 * values and changes (one of them an unset to nothing), for the tests of
 * the tools that read a store.
 *
 * store-seed --hold DIR: open a write transaction on an existing store,
 * change a setting, print "holding" and wait to be killed without
 * committing, as a resolver that dies mid-write.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

static int
seed_put(cs_store_txn_t *txn, const char *source, const char *key,
    cs_value_t *v)
{
    int rc;

    rc = cs_store_layer_put(txn, source, key, v);
    if (rc == 0) {
        rc = cs_store_setting_change(txn, key, source, v, "", NULL);
    }
    cs_value_free(v);

    return rc;
}

static cs_value_t *
seed_endpoints(void)
{
    cs_value_t *map, *keys;

    map = cs_value_map();
    keys = cs_value_list();
    cs_value_list_append(keys, cs_value_string("endpointkey0123456789"));
    cs_value_map_set(map, "https://app.example.com", keys);

    return map;
}

static cs_value_t *
seed_tags(void)
{
    cs_value_t *list;

    list = cs_value_list();
    cs_value_list_append(list, cs_value_string("team:core"));
    cs_value_list_append(list, cs_value_string("env:\"prod\""));

    return list;
}

static int
seed_hold(const char *dir)
{
    cs_store_txn_t *txn;
    cs_store_t *st;
    char err[256];
    int rc;

    rc = cs_store_open(&st, dir, 0, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "store-seed: cs_store_open: %s\n", err);
        return 1;
    }

    rc = cs_store_txn_begin(st, &txn);
    rc = rc ? rc : seed_put(txn, "file", "site",
        cs_value_string("uncommitted.example"));
    if (rc != 0) {
        fprintf(stderr, "store-seed: %s\n", strerror(-rc));
        return 1;
    }

    printf("holding\n");
    fflush(stdout);
    for (;;) {
        pause();
    }
}

int
main(int argc, char **argv)
{
    cs_store_txn_t *txn;
    cs_store_t *st;
    char err[256];
    int rc;

    if (argc == 3 && strcmp(argv[1], "--hold") == 0) {
        return seed_hold(argv[2]);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: store-seed DIR\n");
        return 2;
    }

    rc = cs_store_open(&st, argv[1], CS_STORE_CREATE, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "store-seed: cs_store_open: %s\n", err);
        return 1;
    }

    rc = cs_store_txn_begin(st, &txn);
    if (rc != 0) {
        goto out_close;
    }

    rc = cs_store_set_origin(txn, "datadog.yaml");
    rc = rc ? rc : seed_put(txn, "file", "api_key",
        cs_value_string("abcdef0123456789abcdef0123456789"));
    rc = rc ? rc : seed_put(txn, "file", "site",
        cs_value_string("datadoghq.eu"));
    rc = rc ? rc : seed_put(txn, "environment-variable",
        "logs_config.enabled", cs_value_bool(1));
    rc = rc ? rc : seed_put(txn, "file", "additional_endpoints",
        seed_endpoints());
    rc = rc ? rc : seed_put(txn, "file", "tags", seed_tags());
    rc = rc ? rc : seed_put(txn, "file", "proxy.https",
        cs_value_null());
    rc = rc ? rc : seed_put(txn, "file", "cmd_port", cs_value_number(5001));
    rc = rc ? rc : seed_put(txn, "cli", "custom.ratio",
        cs_value_number(NAN));
    rc = rc ? rc : seed_put(txn, "agent-runtime", "env",
        cs_value_string("staging"));
    if (rc != 0) {
        cs_store_txn_abort(txn);
        goto out_close;
    }
    rc = cs_store_txn_commit(txn, NULL);
    if (rc != 0) {
        goto out_close;
    }

    /* the runtime value of env is removed and nothing else holds it */
    rc = cs_store_txn_begin(st, &txn);
    if (rc != 0) {
        goto out_close;
    }
    rc = cs_store_layer_del(txn, "agent-runtime", "env");
    rc = rc ? rc : cs_store_setting_change(txn, "env", "", NULL,
        "agent-runtime", NULL);
    if (rc != 0) {
        cs_store_txn_abort(txn);
        goto out_close;
    }
    rc = cs_store_txn_commit(txn, NULL);

out_close:
    cs_store_close(st);
    if (rc != 0) {
        fprintf(stderr, "store-seed: %s\n", strerror(-rc));
        return 1;
    }

    return 0;
}
