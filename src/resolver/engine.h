/*
 * The resolution engine: the layers of every source, the resolved settings
 * they produce, and the one store transaction that records each change.
 *
 * A layer is a flat map (cs_value_t of kind map, dotted key -> value), one
 * per source of resolve.h (lowest precedence first). A key resolves to the
 * value of the highest layer holding it.
 *
 * cs_engine_apply() builds the new state aside: it resolves the new layers,
 * diffs the result against the current resolution and, only when something
 * differs, writes in ONE transaction:
 *   - every layer value that changed (all layers are persisted, so a
 *     restart starts from what was last committed and `ctl get` can show
 *     each layer's value),
 *   - one sequence id per key whose value or winning source changed; a key
 *     no layer holds any more is recorded with no value and an empty
 *     source; when the previous winner's layer no longer holds the key,
 *     unset_source names that layer,
 *   - the origin when it changed, and the changelog trimmed to the
 *     retention.
 * A resolution that changes nothing writes nothing and assigns no id. On
 * any error nothing is written and the previous state stays in effect.
 *
 * The first resolution against an empty store records every setting as
 * one change, so the changelog starts with the initial resolution.
 *
 * On open the engine reads its previous state back from the store (every
 * layer and the resolved settings), so runtime layers survive restarts and
 * a restart with unchanged inputs writes nothing.
 *
 * Functions return 0 or a negative errno. The engine is not thread-safe.
 */
#ifndef CS_ENGINE_H
#define CS_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "resolve.h"
#include "store.h"
#include "value.h"

typedef struct cs_engine cs_engine_t;

/* Open over an open store (borrowed; it must outlive the engine). */
int cs_engine_open(cs_engine_t **eng, cs_store_t *st, uint64_t retention);
void cs_engine_close(cs_engine_t *eng);

/*
 * Replace layers and commit the differences. layers[src] is a flat map
 * for source src, or NULL to keep that source's current layer (an empty
 * map clears it). Every non-NULL map is handed over, whatever the result.
 * origin is recorded in the store when it differs. *changes (may be NULL)
 * gets the number of ids assigned.
 */
int cs_engine_apply(cs_engine_t *eng, cs_value_t *layers[CS_SRC_COUNT],
    const char *origin, size_t *changes);

/*
 * Set or remove one key of one layer (a runtime override) and commit.
 * value is copied. Removing a key the layer does not hold is a no-op.
 */
int cs_engine_layer_set(cs_engine_t *eng, cs_source_t src, const char *key,
    const cs_value_t *value, size_t *changes);
int cs_engine_layer_unset(cs_engine_t *eng, cs_source_t src,
    const char *key, size_t *changes);

/*
 * The resolved value of key: its winning source, value (borrowed, valid
 * until the next apply) and the id of its last change. -ENOENT when no
 * layer holds it.
 */
int cs_engine_get(cs_engine_t *eng, const char *key, cs_source_t *src,
    const cs_value_t **value, uint64_t *seq);

/* What layer src holds for key (borrowed), or NULL. */
const cs_value_t *cs_engine_layer_value(cs_engine_t *eng, cs_source_t src,
    const char *key);

size_t cs_engine_setting_count(cs_engine_t *eng);
uint64_t cs_engine_head(cs_engine_t *eng);

#endif /* CS_ENGINE_H */
