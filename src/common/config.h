/*
 * The daemon's own settings, read from the same datadog.yaml (and DD_*
 * environment) that is streamed, resolved through the embedded schema (or
 * --schema FILE): default < file < environment-variable.
 *
 * KNOWN-ISSUE(runtime-daemon-settings)
 * Runtime layers (configstream-ctl set) are streamed like any setting but
 * do not reconfigure a running process.
 *
 * Newer spellings are accepted: remote_agent.registry.* for
 * remote_agent_registry.* and remote_agent.configstream.* for
 * config_stream.*; when both are given the newer one wins.
 */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

/* Exit status of any process for a configuration it cannot run with; the
 * supervisor does not respawn a child that exits with it. */
#define CS_EXIT_FATAL_CONFIG 78     /* EX_CONFIG */

typedef struct {
    char *config_path;          /* -c FILE, or NULL: embedded defaults */
    char *schema_path;          /* --schema FILE, or NULL: embedded */
    char *origin;               /* base name of config_path, or core-agent */

    char *cmd_host;             /* cmd_host, default localhost */
    int cmd_port;               /* cmd_port, default 5001 */
    char *run_path;             /* run_path */
    char *auth_token_file_path; /* default <run_path>/auth_token */
    char *ipc_cert_file_path;   /* default <run_path>/ipc_cert.pem */
    cs_log_level_t log_level;   /* log_level, default info */
    char *fleet_policies_dir;   /* fleet_policies_dir, or NULL */

    int rar_enabled;                /* remote_agent_registry.enabled */
    int64_t rar_idle_timeout_ms;    /* .idle_timeout, default 30 s */
    int64_t rar_refresh_interval_ms;/* .recommended_refresh_interval, 10 s */
    uint32_t rar_max_sessions;      /* .max_sessions, default 1024 */

    int tls_enabled;            /* config_stream.tls_enabled, default true */
    int64_t sleep_interval_ms;  /* config_stream.sleep_interval, 10 ms */
    int workers;                /* config_stream.workers, 0: one per CPU */
    uint32_t queue_size;        /* config_stream.queue_size, default 64 */
    uint64_t changelog_retention; /* config_stream.changelog_retention */
    char *telemetry_address;    /* config_stream.telemetry_address */
    char *store_path;           /* config_stream.store_path,
                                   default <run_path>/configstream/store */
    char *shm_path;             /* config_stream.shm_path,
                                   default <run_path>/configstream/shm */
    char *control_socket;       /* <run_path>/configstream/resolver.sock */
    char *broker_socket;        /* <run_path>/configstream/broker.sock */
} cs_config_t;

/*
 * Load the daemon's settings. path may be NULL (embedded defaults only).
 * On a parse or validation error returns a negative errno and fills err
 * with "file:line:column: message".
 */
int cs_config_load(cs_config_t *cfg, const char *path,
    const char *schema_path, char *err, size_t errlen);
void cs_config_free(cs_config_t *cfg);

/*
 * Check one value for key as cs_config_load() would check it, were it the
 * winning value: ranges, log levels, paths. Keys that are not the
 * daemon's own settings always pass. Returns 0, or -EINVAL with err set
 * ("agent-runtime: cmd_port: must be between 1 and 65535, got -1").
 */
struct cs_value;
int cs_config_check_value(const char *key, const struct cs_value *value,
    char *err, size_t errlen);

#endif /* CS_CONFIG_H */
