/*
 * cs_config_load(): defaults, the file, the environment, newer spellings,
 * derived paths, and validation errors with their position.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char dir[] = "/tmp/test_configXXXXXX";
static char path[256];

static int
setup(void **state)
{
    /* Only what a test sets itself. */
    clearenv();

    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    snprintf(path, sizeof(path), "%s/datadog.yaml", dir);
    return 0;
}

static int
teardown(void **state)
{
    unlink(path);
    rmdir(dir);
    return 0;
}

static void
write_config(const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
test_defaults(void **state)
{
    cs_config_t cfg;
    char err[512];

    assert_int_equal(cs_config_load(&cfg, NULL, NULL, err, sizeof(err)), 0);

    assert_null(cfg.config_path);
    assert_string_equal(cfg.origin, "core-agent");
    assert_string_equal(cfg.cmd_host, "localhost");
    assert_int_equal(cfg.cmd_port, 5001);
    assert_string_equal(cfg.run_path, "/opt/datadog-agent/run");
    assert_string_equal(cfg.auth_token_file_path,
        "/opt/datadog-agent/run/auth_token");
    assert_string_equal(cfg.ipc_cert_file_path,
        "/opt/datadog-agent/run/ipc_cert.pem");
    assert_string_equal(cfg.store_path,
        "/opt/datadog-agent/run/configstream/store");
    assert_string_equal(cfg.shm_path,
        "/opt/datadog-agent/run/configstream/shm");
    assert_string_equal(cfg.control_socket,
        "/opt/datadog-agent/run/configstream/resolver.sock");
    assert_string_equal(cfg.broker_socket,
        "/opt/datadog-agent/run/configstream/broker.sock");
    assert_int_equal(cfg.log_level, CS_LOG_INFO);
    assert_null(cfg.fleet_policies_dir);
    assert_true(cfg.rar_enabled);
    assert_int_equal(cfg.rar_idle_timeout_ms, 30000);
    assert_int_equal(cfg.rar_refresh_interval_ms, 10000);
    assert_int_equal(cfg.rar_max_sessions, 1024);
    assert_true(cfg.tls_enabled);
    assert_int_equal(cfg.sleep_interval_ms, 10);
    assert_int_equal(cfg.workers, 0);
    assert_int_equal(cfg.queue_size, 64);
    assert_int_equal(cfg.changelog_retention, 10000);
    assert_string_equal(cfg.telemetry_address, "127.0.0.1:5002");

    cs_config_free(&cfg);
}

static void
test_file_and_spellings(void **state)
{
    cs_config_t cfg;
    char err[512];

    write_config(
        "cmd_host: 127.0.0.1\n"
        "cmd_port: 6001\n"
        "run_path: /tmp/cs-run\n"
        "auth_token_file_path: /etc/token\n"
        "log_level: DEBUG\n"
        "fleet_policies_dir: /etc/fleet\n"
        "remote_agent_registry:\n"
        "  enabled: no\n"
        "  idle_timeout: 10s\n"
        "remote_agent:\n"
        "  registry:\n"
        "    idle_timeout: 1m\n"
        "  configstream:\n"
        "    queue_size: 128\n"
        "config_stream:\n"
        "  queue_size: 32\n"
        "  sleep_interval: 25ms\n"
        "  workers: 3\n"
        "  tls_enabled: false\n"
        "  store_path: /var/lib/cs\n");

    assert_int_equal(cs_config_load(&cfg, path, NULL, err, sizeof(err)), 0);
    assert_string_equal(cfg.config_path, path);
    assert_string_equal(cfg.origin, "datadog.yaml");
    assert_string_equal(cfg.cmd_host, "127.0.0.1");
    assert_int_equal(cfg.cmd_port, 6001);
    assert_string_equal(cfg.auth_token_file_path, "/etc/token");
    assert_string_equal(cfg.ipc_cert_file_path, "/tmp/cs-run/ipc_cert.pem");
    assert_string_equal(cfg.store_path, "/var/lib/cs");
    assert_string_equal(cfg.shm_path, "/tmp/cs-run/configstream/shm");
    assert_int_equal(cfg.log_level, CS_LOG_DEBUG);
    assert_string_equal(cfg.fleet_policies_dir, "/etc/fleet");
    assert_false(cfg.rar_enabled);
    /* The newer spelling wins over the older one. */
    assert_int_equal(cfg.rar_idle_timeout_ms, 60000);
    assert_int_equal(cfg.queue_size, 128);
    assert_int_equal(cfg.sleep_interval_ms, 25);
    assert_int_equal(cfg.workers, 3);
    assert_false(cfg.tls_enabled);

    cs_config_free(&cfg);
}

static void
test_environment_wins(void **state)
{
    cs_config_t cfg;
    char err[512];

    write_config("cmd_port: 6001\n");
    setenv("DD_CMD_PORT", "7001", 1);
    setenv("DD_REMOTE_AGENT_REGISTRY_ENABLED", "0", 1);

    assert_int_equal(cs_config_load(&cfg, path, NULL, err, sizeof(err)), 0);
    assert_int_equal(cfg.cmd_port, 7001);
    assert_false(cfg.rar_enabled);
    cs_config_free(&cfg);

    setenv("DD_CMD_PORT", "x", 1);
    assert_int_equal(cs_config_load(&cfg, path, NULL, err, sizeof(err)),
        -EINVAL);
    assert_string_equal(err,
        "DD_CMD_PORT: cmd_port: expected an integer, got 'x'");

    unsetenv("DD_CMD_PORT");
    unsetenv("DD_REMOTE_AGENT_REGISTRY_ENABLED");
}

static void
expect_invalid(const char *text, const char *msg)
{
    cs_config_t cfg;
    char err[512], want[512];

    write_config(text);
    snprintf(want, sizeof(want), "%s:%s", path, msg);
    assert_int_equal(cs_config_load(&cfg, path, NULL, err, sizeof(err)),
        -EINVAL);
    if (strncmp(err, want, strlen(want)) != 0) {
        fail_msg("error '%s', expected '%s'", err, want);
    }
    assert_null(cfg.cmd_host);
}

static void
test_validation(void **state)
{
    expect_invalid("api_key: x\ncmd_port: 70000\n",
        "2:11: cmd_port: must be between 1 and 65535, got 70000");
    expect_invalid("cmd_port: 0\n",
        "1:11: cmd_port: must be between 1 and 65535, got 0");
    expect_invalid("log_level: loud\n", "1:12: log_level: unknown log level");
    expect_invalid("config_stream:\n  queue_size: 0\n",
        "2:15: config_stream.queue_size: must be between 1 and 1048576, "
        "got 0");
    expect_invalid("cmd_port: abc\n",
        "1:11: cmd_port: expected an integer, got 'abc'");
    expect_invalid("cmd_port: 1\n\tx: 2\n",
        "2:1: tab character where YAML allows only spaces");
}

static void
expect_valid(const char *text)
{
    cs_config_t cfg;
    char err[512];

    write_config(text);
    if (cs_config_load(&cfg, path, NULL, err, sizeof(err)) != 0) {
        fail_msg("'%s' refused: %s", text, err);
    }
    cs_config_free(&cfg);
}

/* The telemetry endpoint may not take the config stream's own port. */
static void
test_address_clash(void **state)
{
    expect_invalid("cmd_host: 127.0.0.1\ncmd_port: 6001\nconfig_stream:\n"
        "  telemetry_address: 127.0.0.1:6001\n",
        "4:22: config_stream.telemetry_address: 127.0.0.1:6001 is the config "
        "stream's own address (cmd_host 127.0.0.1, cmd_port 6001)");
    /* localhost (the default cmd_host) and 127.0.0.1 are one address. */
    expect_invalid("cmd_port: 6002\nconfig_stream:\n"
        "  telemetry_address: 127.0.0.1:6002\n",
        "3:22: config_stream.telemetry_address: 127.0.0.1:6002 is");
    expect_invalid("cmd_port: 6003\nconfig_stream:\n"
        "  telemetry_address: 0.0.0.0:6003\n",
        "3:22: config_stream.telemetry_address: 0.0.0.0:6003 is");

    expect_valid("cmd_port: 6004\nconfig_stream:\n"
        "  telemetry_address: 127.0.0.1:6005\n");
    expect_valid("cmd_host: 10.1.2.3\ncmd_port: 6006\nconfig_stream:\n"
        "  telemetry_address: 127.0.0.1:6006\n");
}

static void
test_missing_file(void **state)
{
    cs_config_t cfg;
    char err[512];

    assert_int_equal(cs_config_load(&cfg, "/nonexistent/datadog.yaml", NULL,
        err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/datadog.yaml"));

    assert_int_equal(cs_config_load(&cfg, NULL, "/nonexistent/schema.yaml",
        err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/schema.yaml"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_and_spellings),
        cmocka_unit_test(test_environment_wins),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_address_clash),
        cmocka_unit_test(test_missing_file),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
