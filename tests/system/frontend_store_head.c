/*
 * frontend_store_head DIR SEQ: move a stopped resolver's store forward so
 * its next sequence id is SEQ + 1, with an empty changelog, as after a
 * long life. Lets a test reach the int32 wire id wrap without 2^31
 * changes. Writes the meta records store.h documents ("head", "oldest":
 * 8-byte little-endian ids) directly with LMDB; run it only while no
 * resolver runs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

static int
head_put(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t v)
{
    MDB_val key, val;
    uint8_t buf[8];
    int i;

    for (i = 0; i < 8; i++) {
        buf[i] = (uint8_t) (v >> (8 * i));
    }
    key.mv_size = strlen(name);
    key.mv_data = (void *) name;
    val.mv_size = sizeof(buf);
    val.mv_data = buf;
    return mdb_put(txn, dbi, &key, &val, 0);
}

int
main(int argc, char **argv)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, changelog;
    uint64_t seq;
    int rc;

    if (argc != 3) {
        fprintf(stderr, "usage: frontend_store_head DIR SEQ\n");
        return 2;
    }
    seq = strtoull(argv[2], NULL, 10);

    if ((rc = mdb_env_create(&env)) != 0
        || (rc = mdb_env_set_maxdbs(env, 16)) != 0
        || (rc = mdb_env_open(env, argv[1], 0, 0600)) != 0
        || (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
    {
        fprintf(stderr, "frontend_store_head: %s\n", mdb_strerror(rc));
        return 1;
    }

    if ((rc = mdb_dbi_open(txn, "meta", 0, &meta)) != 0
        || (rc = mdb_dbi_open(txn, "changelog", MDB_INTEGERKEY,
                &changelog)) != 0
        || (rc = mdb_drop(txn, changelog, 0)) != 0
        || (rc = head_put(txn, meta, "head", seq)) != 0
        || (rc = head_put(txn, meta, "oldest", seq + 1)) != 0
        || (rc = mdb_txn_commit(txn)) != 0)
    {
        fprintf(stderr, "frontend_store_head: %s\n", mdb_strerror(rc));
        return 1;
    }

    mdb_env_close(env);
    return 0;
}
