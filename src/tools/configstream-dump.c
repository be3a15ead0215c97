/*
 * configstream-dump: print what the store holds (meta, resolved settings,
 * per-layer values, the retained changelog), human-readable or as one JSON
 * object per line. The store is opened read-only, so this is safe while
 * the resolver runs and after it died; each section is read in its own
 * short read transaction.
 *
 * Exit status: 0 ok, 1 runtime failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "schema.h"
#include "store.h"
#include "value.h"

#define DUMP_NAME       "configstream-dump"
#define DUMP_REDACTED   "********"

enum {
    DUMP_META = 0x1,
    DUMP_SETTINGS = 0x2,
    DUMP_LAYERS = 0x4,
    DUMP_CHANGELOG = 0x8,
    DUMP_ALL = 0xf
};

typedef struct {
    int json;
    int show_secrets;
    int sections;
    const char *config_path;
    const char *store_path;
    const char *schema_path;
    cs_schema_t *schema;
    cs_store_t *st;
} dump_t;

static void
dump_usage(FILE *out)
{
    fprintf(out,
        "usage: " DUMP_NAME " [-c FILE | --store DIR] [options]\n"
        "\n"
        "Print the configstream store: meta, resolved settings, layer values\n"
        "and the retained changelog. Read-only; safe while the resolver runs.\n"
        "\n"
        "  -c, --config FILE   find the store through this datadog.yaml\n"
        "                      (default: the embedded defaults' store)\n"
        "      --store DIR     the store directory\n"
        "      --schema FILE   schema deciding which keys are secret\n"
        "                      (default: the embedded schema)\n"
        "      --json          one JSON object per line\n"
        "      --meta          print the meta section\n"
        "      --settings      print the resolved settings\n"
        "      --layers        print every layer's values\n"
        "      --changelog     print the retained changelog\n"
        "                      (without a section option, all of them)\n"
        "      --show-secrets  print secret values instead of " DUMP_REDACTED
        "\n"
        "  -h, --help          this text\n"
        "\n"
        "Exit status: 0 ok, 1 failure, 2 usage.\n");
}

/*
 * Secrets. Besides the keys the schema marks, the values of an
 * *additional_endpoints map are API keys (URL -> keys): the URLs stay
 * visible, the keys do not.
 */
static int
dump_is_endpoints(const char *key)
{
    static const char suffix[] = "additional_endpoints";
    size_t len = strlen(key), slen = sizeof(suffix) - 1;

    return len >= slen && strcmp(key + len - slen, suffix) == 0;
}

static json_object *
dump_value_json(const dump_t *d, const char *key, const cs_value_t *v)
{
    json_object *o;
    size_t i;

    if (d->show_secrets) {
        return cs_value_to_json(v);
    }
    if (cs_schema_is_secret(d->schema, key)) {
        return json_object_new_string(DUMP_REDACTED);
    }
    if (v->kind == CS_VAL_MAP && dump_is_endpoints(key)) {
        o = json_object_new_object();
        for (i = 0; o != NULL && i < v->u.map.n; i++) {
            json_object_object_add(o, v->u.map.keys[i],
                json_object_new_string(DUMP_REDACTED));
        }
        return o;
    }

    return cs_value_to_json(v);
}

static int
dump_print(json_object *o)
{
    const char *text;
    int rc = 0;

    text = json_object_to_json_string_ext(o,
        JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (text == NULL || puts(text) == EOF) {
        rc = -EIO;
    }

    json_object_put(o);
    return rc;
}

/* A value in the human-readable form: compact JSON, or (none). */
static int
dump_print_value(const dump_t *d, const char *key, const cs_value_t *v)
{
    const char *text;
    json_object *o;

    if (v == NULL) {
        fputs("(none)", stdout);
        return 0;
    }

    o = dump_value_json(d, key, v);
    text = json_object_to_json_string_ext(o,
        JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    fputs(text != NULL ? text : "?", stdout);
    json_object_put(o);

    return 0;
}

static void
dump_hex(const uint8_t *p, size_t n, char *out)
{
    size_t i;

    for (i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", p[i]);
    }
    out[2 * n] = '\0';
}

static int
dump_meta(dump_t *d)
{
    cs_store_meta_t meta;
    char epoch[33];
    json_object *o;
    int rc;

    rc = cs_store_meta_get(d->st, &meta);
    if (rc != 0) {
        fprintf(stderr, DUMP_NAME ": cs_store_meta_get: %s\n",
            strerror(-rc));
        return rc;
    }
    dump_hex(meta.epoch, sizeof(meta.epoch), epoch);

    if (!d->json) {
        printf("meta\n"
            "  layout         %" PRIu32 "\n"
            "  epoch          %s\n"
            "  head           %" PRIu64 "\n"
            "  oldest         %" PRIu64 "\n"
            "  origin         %s\n"
            "  setting_count  %" PRIu64 "\n",
            meta.layout_version, epoch, meta.head_seq, meta.oldest_seq,
            meta.origin, meta.setting_count);
        return 0;
    }

    o = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string("meta"));
    json_object_object_add(o, "layout",
        json_object_new_int64(meta.layout_version));
    json_object_object_add(o, "epoch", json_object_new_string(epoch));
    json_object_object_add(o, "head",
        json_object_new_int64((int64_t) meta.head_seq));
    json_object_object_add(o, "oldest",
        json_object_new_int64((int64_t) meta.oldest_seq));
    json_object_object_add(o, "origin", json_object_new_string(meta.origin));
    json_object_object_add(o, "setting_count",
        json_object_new_int64((int64_t) meta.setting_count));

    return dump_print(o);
}

static int
dump_setting_cb(const cs_store_setting_t *s, void *arg)
{
    dump_t *d = arg;
    json_object *o;

    if (!d->json) {
        printf("  %s = ", s->key);
        dump_print_value(d, s->key, s->value);
        printf("  (%s, seq %" PRIu64 ")\n", s->source, s->seq);
        return 0;
    }

    o = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string("setting"));
    json_object_object_add(o, "key", json_object_new_string(s->key));
    json_object_object_add(o, "source", json_object_new_string(s->source));
    if (s->value != NULL) {
        json_object_object_add(o, "value",
            dump_value_json(d, s->key, s->value));
    }
    json_object_object_add(o, "seq", json_object_new_int64((int64_t) s->seq));

    return dump_print(o);
}

static int
dump_layer_cb(const char *source, const char *key, const cs_value_t *value,
    void *arg)
{
    dump_t *d = arg;
    json_object *o;

    if (!d->json) {
        printf("  %s  %s = ", source, key);
        dump_print_value(d, key, value);
        putchar('\n');
        return 0;
    }

    o = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string("layer"));
    json_object_object_add(o, "source", json_object_new_string(source));
    json_object_object_add(o, "key", json_object_new_string(key));
    json_object_object_add(o, "value", dump_value_json(d, key, value));

    return dump_print(o);
}

static int
dump_change_cb(uint64_t seq, const cs_store_setting_t *s, void *arg)
{
    dump_t *d = arg;
    json_object *o;

    if (!d->json) {
        printf("  %" PRIu64 "  %s = ", seq, s->key);
        dump_print_value(d, s->key, s->value);
        printf("  (%s", s->source[0] ? s->source : "no source");
        if (s->unset_source[0] != '\0') {
            printf(", unset from %s", s->unset_source);
        }
        printf(")\n");
        return 0;
    }

    o = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string("change"));
    json_object_object_add(o, "seq", json_object_new_int64((int64_t) seq));
    json_object_object_add(o, "key", json_object_new_string(s->key));
    json_object_object_add(o, "source", json_object_new_string(s->source));
    if (s->value != NULL) {
        json_object_object_add(o, "value",
            dump_value_json(d, s->key, s->value));
    }
    json_object_object_add(o, "unset_source",
        json_object_new_string(s->unset_source));

    return dump_print(o);
}

static int
dump_sections(dump_t *d)
{
    int rc;

    if (d->sections & DUMP_META) {
        rc = dump_meta(d);
        if (rc != 0) {
            return rc;
        }
    }

    if (d->sections & DUMP_SETTINGS) {
        if (!d->json) {
            printf("%ssettings\n", d->sections & DUMP_META ? "\n" : "");
        }
        rc = cs_store_settings_foreach(d->st, dump_setting_cb, d);
        if (rc != 0) {
            fprintf(stderr, DUMP_NAME ": cs_store_settings_foreach: %s\n",
                strerror(-rc));
            return rc;
        }
    }

    if (d->sections & DUMP_LAYERS) {
        if (!d->json) {
            printf("%slayers\n",
                d->sections & (DUMP_META | DUMP_SETTINGS) ? "\n" : "");
        }
        rc = cs_store_layers_foreach(d->st, dump_layer_cb, d);
        if (rc != 0) {
            fprintf(stderr, DUMP_NAME ": cs_store_layers_foreach: %s\n",
                strerror(-rc));
            return rc;
        }
    }

    if (d->sections & DUMP_CHANGELOG) {
        if (!d->json) {
            printf("%schangelog\n",
                d->sections & ~DUMP_CHANGELOG ? "\n" : "");
        }
        rc = cs_store_changes_foreach(d->st, 0, dump_change_cb, d);
        if (rc != 0) {
            fprintf(stderr, DUMP_NAME ": cs_store_changes_foreach: %s\n",
                strerror(-rc));
            return rc;
        }
    }

    if (fflush(stdout) != 0) {
        fprintf(stderr, DUMP_NAME ": write: %s\n", strerror(errno));
        return -EIO;
    }

    return 0;
}

/* Returns 0, or the exit status for a usage error. */
static int
dump_args(dump_t *d, int argc, char **argv)
{
    enum {
        OPT_STORE = 256, OPT_SCHEMA, OPT_JSON, OPT_META, OPT_SETTINGS,
        OPT_LAYERS, OPT_CHANGELOG, OPT_SHOW_SECRETS
    };
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "store", required_argument, NULL, OPT_STORE },
        { "schema", required_argument, NULL, OPT_SCHEMA },
        { "json", no_argument, NULL, OPT_JSON },
        { "meta", no_argument, NULL, OPT_META },
        { "settings", no_argument, NULL, OPT_SETTINGS },
        { "layers", no_argument, NULL, OPT_LAYERS },
        { "changelog", no_argument, NULL, OPT_CHANGELOG },
        { "show-secrets", no_argument, NULL, OPT_SHOW_SECRETS },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            d->config_path = optarg;
            break;
        case OPT_STORE:
            d->store_path = optarg;
            break;
        case OPT_SCHEMA:
            d->schema_path = optarg;
            break;
        case OPT_JSON:
            d->json = 1;
            break;
        case OPT_META:
            d->sections |= DUMP_META;
            break;
        case OPT_SETTINGS:
            d->sections |= DUMP_SETTINGS;
            break;
        case OPT_LAYERS:
            d->sections |= DUMP_LAYERS;
            break;
        case OPT_CHANGELOG:
            d->sections |= DUMP_CHANGELOG;
            break;
        case OPT_SHOW_SECRETS:
            d->show_secrets = 1;
            break;
        case 'h':
            dump_usage(stdout);
            exit(0);
        case ':':
            fprintf(stderr, DUMP_NAME ": option %s needs an argument "
                "(see --help)\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, DUMP_NAME ": unknown option %s (see --help)\n",
                argv[optind - 1]);
            return 2;
        }
    }

    if (optind < argc) {
        fprintf(stderr, DUMP_NAME ": unexpected argument %s (see --help)\n",
            argv[optind]);
        return 2;
    }
    if (d->config_path != NULL && d->store_path != NULL) {
        fprintf(stderr, DUMP_NAME ": give -c FILE or --store DIR, not both "
            "(see --help)\n");
        return 2;
    }
    if (d->sections == 0) {
        d->sections = DUMP_ALL;
    }

    return 0;
}

int
main(int argc, char **argv)
{
    cs_config_t cfg;
    int cfg_loaded = 0;
    dump_t d = { 0 };
    char err[512];
    int rc, status = 1;

    rc = dump_args(&d, argc, argv);
    if (rc != 0) {
        return rc;
    }

    if (d.store_path == NULL) {
        /* with no -c, the store of the embedded defaults (and DD_*) */
        rc = cs_config_load(&cfg, d.config_path, d.schema_path, err,
            sizeof(err));
        if (rc != 0) {
            fprintf(stderr, DUMP_NAME ": cs_config_load: %s\n", err);
            return 1;
        }
        cfg_loaded = 1;
        d.store_path = cfg.store_path;
        if (d.schema_path == NULL) {
            d.schema_path = cfg.schema_path;
        }
    }

    /* redaction follows the schema: without it nothing is printed */
    rc = cs_schema_load(&d.schema, d.schema_path, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, DUMP_NAME ": cs_schema_load: %s\n", err);
        goto out_config;
    }

    rc = cs_store_open(&d.st, d.store_path, CS_STORE_RDONLY, err,
        sizeof(err));
    if (rc != 0) {
        fprintf(stderr, DUMP_NAME ": cs_store_open: %s\n", err);
        goto out_schema;
    }

    if (dump_sections(&d) == 0) {
        status = 0;
    }

    cs_store_close(d.st);
out_schema:
    cs_schema_free(d.schema);
out_config:
    if (cfg_loaded) {
        cs_config_free(&cfg);
    }
    return status;
}
