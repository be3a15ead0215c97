/*
 * The settings store: one LMDB environment, written only by the resolver,
 * read by frontends and tools (read-only, safe while the resolver runs and
 * after it was killed).
 *
 * Named databases:
 *
 *   settings   key -> record: 8-byte sequence id of the key's last change
 *              (little endian), 1-byte length of the winning source, the
 *              source, then the setting encoded as
 *              datadog.model.v1.ConfigSetting bytes (source, key, value;
 *              no unset_source: a snapshot states what holds now). Keys
 *              sort, so a snapshot is the records concatenated in cursor
 *              order.
 *   layers     source '\0' key -> google.protobuf.Value bytes: the raw value
 *              a layer holds for a key. Runtime layers (agent-runtime,
 *              remote-config, cli) persist here across restarts.
 *   changelog  sequence id (uint64, MDB_INTEGERKEY) -> the update encoded as
 *              datadog.model.v1.ConfigEvent bytes. Retained for a configured
 *              count; older entries are trimmed in the same transaction.
 *   meta       "layout" (uint32), "epoch" (16 bytes), "head", "oldest"
 *              (uint64), "origin", "reload"; integers little endian.
 *
 * Sequence ids are 64-bit, start at 1 and never repeat in an environment.
 * The wire carries int32: cs_seq_wire() maps an id onto it; a stream that
 * would see the wire id wrap gets a snapshot instead.
 *
 * All functions return 0 or a negative errno (LMDB errors are mapped:
 * MDB_MAP_FULL -> -ENOSPC, MDB_NOTFOUND -> -ENOENT, a layout mismatch ->
 * -EPROTO, anything else -> -EIO) and, where err is given, fill it with
 * the failed call and its decoded error.
 */
#ifndef CS_STORE_H
#define CS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "value.h"

#define CS_STORE_LAYOUT_VERSION 1
#define CS_STORE_ORIGIN_MAX 256

typedef struct cs_store cs_store_t;
typedef struct cs_store_txn cs_store_txn_t;

enum {
    CS_STORE_RDONLY = 0x1,      /* read-only; never creates anything */
    CS_STORE_CREATE = 0x2       /* create the directory and store if absent */
};

typedef struct {
    uint32_t layout_version;
    uint8_t epoch[16];          /* random at creation */
    uint64_t head_seq;          /* last assigned id; 0 before the first */
    uint64_t oldest_seq;        /* oldest retained changelog id, or
                                   head_seq + 1 when the changelog is empty */
    uint64_t setting_count;
    char origin[CS_STORE_ORIGIN_MAX];
} cs_store_meta_t;

/* Open (and with CS_STORE_CREATE, create) the store in directory dir. */
int cs_store_open(cs_store_t **st, const char *dir, int flags,
    char *err, size_t errlen);
void cs_store_close(cs_store_t *st);

/* Reclaim reader slots of dead processes (mdb_reader_check). */
int cs_store_reader_check(cs_store_t *st, int *dead);

int cs_store_meta_get(cs_store_t *st, cs_store_meta_t *meta);

/*
 * The int32 wire form of a sequence id: 0 stays 0, ids 1..INT32_MAX map to
 * themselves, and past that the mapping wraps to 1 again (wire = (seq - 1)
 * mod INT32_MAX + 1), so a wire id is never negative. A stream whose next
 * wire id is not one above the last one it sent resyncs with a snapshot.
 */
int32_t cs_seq_wire(uint64_t seq);

/*
 * The map size a new environment starts with (default 64 MiB; 0 restores
 * it). For tests that exercise map growth; call before cs_store_open().
 */
void cs_store_set_initial_mapsize(size_t bytes);

/*
 * Writing (the resolver only). One transaction per resolution; nothing is
 * visible to readers until cs_store_txn_commit() returns 0. The map grows
 * before a transaction could fill it: cs_store_txn_begin() doubles it while
 * the pages in use reach half of it. A transaction that fills the rest
 * anyway fails with -ENOSPC (from the write or from the commit); once it
 * is aborted (the commit aborts it itself) the map has doubled, and the
 * caller rebuilds the same transaction and retries. After any failed write
 * the transaction only aborts: later calls and the commit return the same
 * error. cs_store_layer_del() returns -ENOENT when the layer has no value
 * for key (the transaction stays usable).
 *
 * Keys are 1 to CS_KEY_MAX bytes: a longer one is -ENAMETOOLONG. Keys and
 * values travel in proto3 strings: cs_store_layer_put() and
 * cs_store_setting_change() refuse a key, or a value holding a string or
 * map key at any depth, that is not valid UTF-8 with -EILSEQ. Neither of
 * these refusals spoils the transaction; callers check their input first
 * and these are the backstop.
 */
int cs_store_txn_begin(cs_store_t *st, cs_store_txn_t **txn);
int cs_store_txn_commit(cs_store_txn_t *txn, uint64_t *head_seq);
void cs_store_txn_abort(cs_store_txn_t *txn);

int cs_store_set_origin(cs_store_txn_t *txn, const char *origin);
int cs_store_layer_put(cs_store_txn_t *txn, const char *source,
    const char *key, const cs_value_t *value);
int cs_store_layer_del(cs_store_txn_t *txn, const char *source,
    const char *key);

/*
 * Record a change of key's resolved value: assign the next sequence id,
 * rewrite the settings record (or delete it when value is NULL, meaning no
 * layer holds the key any more) and append the ConfigEvent update to the
 * changelog. unset_source is the layer that was cleared, or "".
 */
int cs_store_setting_change(cs_store_txn_t *txn, const char *key,
    const char *source, const cs_value_t *value, const char *unset_source,
    uint64_t *seq);

/*
 * Trim the changelog to the newest retain entries; meta "oldest" is
 * updated on commit.
 */
int cs_store_changelog_trim(cs_store_txn_t *txn, uint64_t retain);

/*
 * Reading. Each call is one short read transaction; a store handle may be
 * shared by threads. Callbacks run inside the transaction and must not
 * call the store again.
 */

/* The layer's values as a flat map (key -> value). */
int cs_store_layer_load(cs_store_t *st, const char *source,
    cs_value_t **map);

typedef struct {
    const char *key;
    const char *source;
    uint64_t seq;
    cs_value_t *value;          /* NULL when the key has no value */
    const char *unset_source;
} cs_store_setting_t;

typedef int (*cs_store_setting_cb)(const cs_store_setting_t *s, void *arg);
typedef int (*cs_store_layer_cb)(const char *source, const char *key,
    const cs_value_t *value, void *arg);
typedef int (*cs_store_change_cb)(uint64_t seq, const cs_store_setting_t *s,
    void *arg);

/* Iterate, in key order; a non-zero return from cb stops and is returned. */
int cs_store_settings_foreach(cs_store_t *st, cs_store_setting_cb cb,
    void *arg);
int cs_store_layers_foreach(cs_store_t *st, cs_store_layer_cb cb, void *arg);
int cs_store_changes_foreach(cs_store_t *st, uint64_t from_seq,
    cs_store_change_cb cb, void *arg);

/* One setting by key; -ENOENT when absent. Free s->value after use. */
int cs_store_setting_get(cs_store_t *st, const char *key,
    cs_store_setting_t *s, char *source_buf, size_t source_len);

/*
 * The frontend's two hot paths, with no decoding.
 *
 * cs_store_snapshot_encode() builds a complete ConfigEvent{snapshot} at the
 * current head: origin, the head's wire sequence id and the stored
 * ConfigSetting bytes, under one read transaction. *buf is malloc'ed.
 *
 * cs_store_changelog_read() calls cb for each stored ConfigEvent{update}
 * with from_seq <= seq <= to_seq, in order, under one read transaction; the
 * bytes are valid only during the callback. -ERANGE when from_seq is older
 * than the oldest retained entry (the caller resyncs with a snapshot).
 */
int cs_store_snapshot_encode(cs_store_t *st, uint64_t *head_seq,
    uint8_t **buf, size_t *len);

typedef int (*cs_store_event_cb)(uint64_t seq, const uint8_t *bytes,
    size_t len, void *arg);
int cs_store_changelog_read(cs_store_t *st, uint64_t from_seq,
    uint64_t to_seq, cs_store_event_cb cb, void *arg);

#endif /* CS_STORE_H */
