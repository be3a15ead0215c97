/*
 * The broker's own reading of its settings from datadog.yaml: run_path,
 * log_level, remote_agent_registry.* (or remote_agent.registry.*) and
 * config_stream.workers / shm_path, with the defaults of config.h. It
 * fills the fields of cs_config_t the broker uses and leaves the rest
 * zero. Returns 0 or a negative errno with "file:line:column: message" in
 * err.
 */
#ifndef CS_BROKER_SETTINGS_H
#define CS_BROKER_SETTINGS_H

#include <stddef.h>

#include "config.h"

int broker_settings_load(cs_config_t *cfg, const char *path, char *err,
    size_t errlen);
void broker_settings_free(cs_config_t *cfg);

#endif /* CS_BROKER_SETTINGS_H */
