/*
 * The handful of settings the broker needs, read straight from the YAML
 * file. The broker uses this reader only while the shared settings loader
 * (config.h) is not part of the build.
 */
#include "settings.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define SETTINGS_DEPTH_MAX  8

static int
settings_duration(const char *v, int64_t *ms)
{
    char *end;
    double n;

    n = strtod(v, &end);
    if (end == v || n < 0) {
        return -EINVAL;
    }

    if (strcmp(end, "ms") == 0) {
        *ms = (int64_t) n;
    } else if (strcmp(end, "s") == 0 || *end == '\0') {
        *ms = (int64_t) (n * 1000);
    } else if (strcmp(end, "m") == 0) {
        *ms = (int64_t) (n * 60000);
    } else {
        return -EINVAL;
    }

    return 0;
}

static int
settings_bool(const char *v, int *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    size_t i;

    for (i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }

    return -EINVAL;
}

static void
settings_str(char **dst, const char *v)
{
    free(*dst);
    *dst = strdup(v);
}

static int
settings_apply(cs_config_t *cfg, const char *key, const char *v)
{
    const char *k = key;

    if (strncmp(k, "remote_agent.registry.", 22) == 0) {
        k += 22;
    } else if (strncmp(k, "remote_agent_registry.", 22) == 0) {
        k += 22;
    } else if (strncmp(k, "remote_agent.configstream.", 26) == 0
               || strncmp(k, "config_stream.", 14) == 0)
    {
        k = strchr(k, '.') + 1;
        if (strncmp(k, "configstream.", 13) == 0) {
            k += 13;
        }
        if (strcmp(k, "workers") == 0) {
            cfg->workers = atoi(v);
        } else if (strcmp(k, "shm_path") == 0) {
            settings_str(&cfg->shm_path, v);
        }
        return 0;
    } else {
        if (strcmp(k, "run_path") == 0) {
            settings_str(&cfg->run_path, v);
        } else if (strcmp(k, "log_level") == 0) {
            return cs_log_level_parse(v, &cfg->log_level);
        }
        return 0;
    }

    if (strcmp(k, "enabled") == 0) {
        return settings_bool(v, &cfg->rar_enabled);
    }
    if (strcmp(k, "idle_timeout") == 0) {
        return settings_duration(v, &cfg->rar_idle_timeout_ms);
    }
    if (strcmp(k, "recommended_refresh_interval") == 0) {
        return settings_duration(v, &cfg->rar_refresh_interval_ms);
    }
    if (strcmp(k, "max_sessions") == 0) {
        cfg->rar_max_sessions = (uint32_t) strtoul(v, NULL, 10);
    }

    return 0;
}

/* Walk the document, calling settings_apply for every scalar leaf. */
static int
settings_parse(cs_config_t *cfg, FILE *f, const char *path, char *err,
    size_t errlen)
{
    char *keys[SETTINGS_DEPTH_MAX] = { 0 };
    int depth = 0, want_key[SETTINGS_DEPTH_MAX] = { 0 }, rc = 0, done = 0;
    char flat[512];
    yaml_parser_t p;
    yaml_event_t ev;
    int i;

    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);

    while (!done && rc == 0) {
        if (!yaml_parser_parse(&p, &ev)) {
            snprintf(err, errlen, "%s:%zu:%zu: %s", path,
                p.problem_mark.line + 1, p.problem_mark.column + 1,
                p.problem ? p.problem : "syntax error");
            rc = -EINVAL;
            break;
        }

        switch (ev.type) {
        case YAML_MAPPING_START_EVENT:
            if (depth + 1 >= SETTINGS_DEPTH_MAX) {
                break;
            }
            depth++;
            want_key[depth] = 1;
            break;
        case YAML_MAPPING_END_EVENT:
            free(keys[depth]);
            keys[depth] = NULL;
            depth--;
            if (depth > 0) {
                want_key[depth] = 1;
            }
            break;
        case YAML_SCALAR_EVENT:
            if (depth == 0) {
                break;
            }
            if (want_key[depth]) {
                free(keys[depth]);
                keys[depth] = strdup((char *) ev.data.scalar.value);
                want_key[depth] = 0;
                break;
            }
            flat[0] = '\0';
            for (i = 1; i <= depth; i++) {
                if (i > 1) {
                    strncat(flat, ".", sizeof(flat) - strlen(flat) - 1);
                }
                strncat(flat, keys[i] ? keys[i] : "",
                    sizeof(flat) - strlen(flat) - 1);
            }
            if (settings_apply(cfg, flat, (char *) ev.data.scalar.value) < 0)
            {
                snprintf(err, errlen, "%s:%zu:%zu: invalid value for %s",
                    path, ev.start_mark.line + 1, ev.start_mark.column + 1,
                    flat);
                rc = -EINVAL;
            }
            want_key[depth] = 1;
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            /* Lists carry nothing the broker reads. */
            if (ev.type == YAML_SEQUENCE_END_EVENT && depth > 0) {
                want_key[depth] = 1;
            }
            break;
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }

    for (i = 0; i < SETTINGS_DEPTH_MAX; i++) {
        free(keys[i]);
    }
    yaml_parser_delete(&p);

    return rc;
}

static char *
settings_join(const char *dir, const char *name)
{
    char *s;

    if (asprintf(&s, "%s/%s", dir, name) < 0) {
        return NULL;
    }

    return s;
}

int
broker_settings_load(cs_config_t *cfg, const char *path, char *err,
    size_t errlen)
{
    FILE *f;
    int rc = 0;

    memset(cfg, 0, sizeof(*cfg));
    cfg->log_level = CS_LOG_INFO;
    cfg->rar_enabled = 1;
    cfg->rar_idle_timeout_ms = 30000;
    cfg->rar_refresh_interval_ms = 10000;
    cfg->rar_max_sessions = 1024;

    if (path != NULL) {
        f = fopen(path, "r");
        if (f == NULL) {
            rc = -errno;
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return rc;
        }
        rc = settings_parse(cfg, f, path, err, errlen);
        fclose(f);
        if (rc < 0) {
            broker_settings_free(cfg);
            return rc;
        }
    }

    if (cfg->run_path == NULL) {
        cfg->run_path = strdup("/opt/datadog-agent/run");
    }
    if (cfg->shm_path == NULL || cfg->shm_path[0] == '\0') {
        free(cfg->shm_path);
        cfg->shm_path = settings_join(cfg->run_path, "configstream/shm");
    }
    cfg->broker_socket = settings_join(cfg->run_path,
        "configstream/broker.sock");

    return 0;
}

void
broker_settings_free(cs_config_t *cfg)
{
    free(cfg->run_path);
    free(cfg->shm_path);
    free(cfg->broker_socket);
    memset(cfg, 0, sizeof(*cfg));
}
