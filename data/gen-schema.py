#!/usr/bin/env python3
"""Generate data/default-schema.yaml, the embedded default schema.

Input: the core agent's settings as a flat JSON map (key -> default,
go_type, env names) and the TSV of environment bindings (for the env
parsers). Output: one line per key, sorted, each a flow mapping

    key: {type: T, default: V, env: [NAMES], secret: true}

`default` is absent for a key declared without one; `env` is absent when
the key binds only the default-rule name (DD_ + upper(key), dots as
underscores) and `[]` when it binds none.

It also writes src/common/schema_embed.c, the same text as a C string,
which is how the binaries embed it.

Usage: data/gen-schema.py FLAT_JSON ENV_TSV
"""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GO_TYPES = {
    "bool": "bool",
    "int": "int",
    "int64": "int",
    "float64": "float",
    "string": "string",
    "[]string": "list",
    "time.Duration": "duration",
    "map[string]string": "map",
    "map[string][]string": "map_list",
}

# Keys declared without a default whose type the name rules below would
# get wrong or cannot tell.
OVERRIDES = {
    "process_config.enabled": "string",     # legacy: "true" or "disabled"
    "process_config.blacklist_patterns": "list",
    "otlp_config.metrics.resource_attributes_as_tags": "bool",
    "apm_config.max_memory": "float",
    "apm_config.max_cpu_percent": "float",
    "apm_config.extra_sample_rate": "float",
    "apm_config.errors_per_second": "float",
    "apm_config.max_events_per_second": "float",
    "apm_config.max_traces_per_second": "float",
    "apm_config.max_remote_traces_per_second": "float",
    "apm_config.target_traces_per_second": "float",
    "apm_config.probabilistic_sampler.sampling_percentage": "float",
    "apm_config.probabilistic_sampler.hash_seed": "int",
    "apm_config.analyzed_rate_by_service": "any",
    "apm_config.analyzed_spans": "any",
    "apm_config.replace_tags": "any",
    "apm_config.instrumentation.targets": "any",
    "apm_config.decoder_timeout": "int",
    "apm_config.receiver_timeout": "int",
    "apm_config.connection_reset_interval": "int",
    "apm_config.watchdog_check_delay": "int",
    "apm_config.install_time": "string",
    "apm_config.trace_buffer": "int",
    "apm_config.decoders": "int",
    "apm_config.bucket_size_seconds": "int",
    "dogstatsd_mapper_profiles": "any",
    "logs_config.processing_rules": "any",
    "logs_config.auto_multi_line_detection_custom_samples": "any",
    "config_providers": "any",
    "listeners": "any",
    "metadata_providers": "any",
    "remote_policies": "any",
    "external_metrics_provider.endpoints": "any",
    "network_devices.autodiscovery.configs": "any",
    "network_devices.netflow.listeners": "any",
    "network_devices.snmp_traps.users": "any",
    "snmp_listener.configs": "any",
    "prometheus_scrape.checks": "any",
    "otlp_config.metrics.tags": "string",
    "telemetry.checks": "list",
    "autoscaling.failover.metrics": "list",
    "multi_region_failover.metric_allowlist": "list",
    "otlp_config.receiver.protocols.http.cors.allowed_headers": "list",
    "otlp_config.receiver.protocols.http.cors.allowed_origins": "list",
    "compliance_config.run_commands_as": "string",
    "http_dial_fallback_delay": "duration",
    "tls_handshake_timeout": "duration",
    "remote_configuration.refresh_interval": "duration",
    "multi_region_failover.remote_configuration.refresh_interval": "duration",
    "multi_region_failover.remote_configuration.max_backoff_time":
        "duration",
    "otlp_config.metrics.delta_ttl": "int",
    "otlp_config.receiver.protocols.grpc.keepalive.enforcement_policy"
    ".min_time": "duration",
    "admission_controller.pod_owners_cache_validity": "int",
    "admission_controller.auto_instrumentation.init_security_context":
        "string",
    "reverse_dns_enrichment.rate_limiter.recovery_intervals": "int",
    "otlp_config.metrics.sums.initial_cumulative_monotonic_value": "string",
    "cmd.check.fullsketches": "bool",
    "entity_id": "string",
    "ha_agent.group": "string",
    "network.id": "string",
}

# Endpoint maps of the form {url: [api keys]} (the forwarder's shape);
# the other *additional_endpoints keys are lists of log endpoints.
MAP_LIST_RE = re.compile(
    r"^(apm_config\.[a-z_]*additional_endpoints"
    r"|apm_config\.telemetry\.additional_endpoints"
    r"|orchestrator_explorer\.orchestrator_additional_endpoints"
    r"|process_config\.orchestrator_additional_endpoints)$")

BOOL_LEAF_RE = re.compile(
    r"^(enabled|dev_mode_no_ssl|use_.*|include_metadata|send_.*"
    r"|collect_.*|.*_sampler|apm_non_local_traffic|sync_flushing"
    r"|no_proxy_nonexact_match|scrub_args|strip_proc_arguments"
    r"|internal_profiling|use_raw_socket|fullsketches)$")

INT_LEAF_RE = re.compile(
    r"^(.*_port|port|workers|count|.*_size|.*_limit|.*limit_per_sec"
    r"|max_.*|.*_mib|.*allowed_failures|chan_size|.*_threshold"
    r"|.*_interval|interval|.*_timeout|timeout|.*_per_message"
    r"|.*_bytes|.*_streams|.*_ttl|.*_intervals|connections|container"
    r"|container_realtime|process|process_realtime)$")


def default_rule(key):
    return "DD_" + key.upper().replace(".", "_")


def infer_type(key, parser):
    leaf = key.rsplit(".", 1)[-1]

    if key in OVERRIDES:
        return OVERRIDES[key]
    if parser == "ParseEnvAsStringSlice":
        return "list"
    if parser in ("ParseEnvAsMapStringInterface", "ParseEnvAsSlice",
                  "ParseEnvAsSliceMapString"):
        return "any"
    if MAP_LIST_RE.match(key):
        return "map_list"
    if leaf == "additional_endpoints":
        return "any"
    if BOOL_LEAF_RE.match(leaf):
        return "bool"
    if INT_LEAF_RE.match(leaf):
        return "int"
    return "string"


SECRET_RE = re.compile(
    r"^(api_key|app_key|.*_api_key|.*_app_key|.*password.*|.*token.*)$")
NOT_SECRET_RE = re.compile(
    r"(_path|_file|_files|_dir|_name|_lifetime|_bytes|_ttl)$|tokenizer")


def is_secret(key):
    leaf = key.rsplit(".", 1)[-1]
    return bool(SECRET_RE.match(leaf)) and not NOT_SECRET_RE.search(leaf)


def flow(value):
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def yaml_key(key):
    if re.match(r"^[a-z0-9_][a-z0-9_.]*$", key):
        return key
    return json.dumps(key)


def emit(out, key, typ, default, env, secret):
    parts = ["type: " + typ]
    if default is not None:
        parts.append("default: " + flow(default))
    if env is not None:
        parts.append("env: [" + ", ".join(env) + "]")
    if secret:
        parts.append("secret: true")
    out.append("%s: {%s}" % (yaml_key(key), ", ".join(parts)))


# configstream's own settings: key -> (type, default)
OWN = {
    "config_stream.sleep_interval": ("duration", 10000000),
    "config_stream.workers": ("int", 0),
    "config_stream.queue_size": ("int", 64),
    "config_stream.changelog_retention": ("int", 10000),
    "config_stream.telemetry_address": ("string", "127.0.0.1:5002"),
    "config_stream.tls_enabled": ("bool", True),
    "config_stream.store_path": ("string", ""),
    "config_stream.shm_path": ("string", ""),
    "remote_agent_registry.max_sessions": ("int", 1024),
}

RAR_KEYS = ("enabled", "idle_timeout", "recommended_refresh_interval",
            "query_timeout", "max_sessions")


def main():
    flat = json.load(open(sys.argv[1]))["settings"]
    parsers = {}
    for line in open(sys.argv[2]):
        if line.startswith("#") or not line.strip():
            continue
        cols = line.rstrip("\n").split("\t")
        parsers[cols[0]] = cols[3] if len(cols) > 3 else "-"

    entries = {}
    for key, s in flat.items():
        if s["has_default"]:
            typ = GO_TYPES[s["go_type"]]
            default = s["default"]
        else:
            typ = infer_type(key, parsers.get(key, "-"))
            default = None
        env = s["env"]
        if env == [default_rule(key)]:
            env = None
        entries[key] = (typ, default, env)

    # The daemon serves the Remote Agent Registry, so it is on unless the
    # operator turns it off (upstream's core agent defaults it to false).
    typ, _, env = entries["remote_agent_registry.enabled"]
    entries["remote_agent_registry.enabled"] = (typ, True, env)

    for key, (typ, default) in OWN.items():
        entries[key] = (typ, default, None)

    # Newer spellings, declared without a default so that the older
    # spelling's default shows through unless one is written.
    for leaf in RAR_KEYS:
        typ = entries["remote_agent_registry." + leaf][0]
        entries["remote_agent.registry." + leaf] = (typ, None, None)
    for key in OWN:
        if key.startswith("config_stream."):
            leaf = key.split(".", 1)[1]
            entries["remote_agent.configstream." + leaf] = (
                entries[key][0], None, None)

    out = [
        "# configstream default schema: every known setting with its type,",
        "# default (absent: none), environment names (absent: the DD_ rule;",
        "# []: none) and whether it is a secret. Generated by",
        "# data/gen-schema.py from the core agent's declared settings; do",
        "# not edit by hand.",
        "#",
        "# remote_agent_registry.enabled defaults to true here (false in the",
        "# core agent): configstream serves no stream without the registry.",
        "# Durations are nanoseconds; they also accept Go strings (30s).",
    ]
    for key in sorted(entries):
        typ, default, env = entries[key]
        emit(out, key, typ, default, env, is_secret(key))
    text = "\n".join(out) + "\n"
    with open(os.path.join(ROOT, "data", "default-schema.yaml"), "w") as f:
        f.write(text)
    write_embed(text)


def c_string(line):
    out = []
    for ch in line.encode("utf-8"):
        c = chr(ch)
        if c in "\\\"":
            out.append("\\" + c)
        elif 32 <= ch < 127:
            out.append(c)
        else:
            out.append("\\%03o" % ch)
    return '"' + "".join(out) + '\\n"'


def write_embed(text):
    lines = [
        "/*",
        " * The embedded default schema: data/default-schema.yaml as a C",
        " * string. Generated by data/gen-schema.py; do not edit by hand.",
        " */",
        "#include \"schema.h\"",
        "",
        "static const char schema_embedded_text[] =",
    ]
    for line in text.splitlines():
        lines.append("    " + c_string(line))
    lines[-1] += ";"
    lines += [
        "",
        "const char *",
        "cs_schema_embedded(size_t *len)",
        "{",
        "    *len = sizeof(schema_embedded_text) - 1;",
        "    return schema_embedded_text;",
        "}",
    ]
    path = os.path.join(ROOT, "src", "common", "schema_embed.c")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
