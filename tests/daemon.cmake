# Tests of the daemon area: IPC credentials, telemetry, the configstreamd
# supervisor and the deploy/ files. System tests that need programs of
# other areas exit 77 (skipped) while one is not built.

add_executable(test_credentials
    ${CMAKE_CURRENT_LIST_DIR}/unit/test_credentials.c)
target_link_libraries(test_credentials PRIVATE cs_common PkgConfig::CMOCKA
    PkgConfig::OPENSSL)
add_test(NAME unit.credentials COMMAND test_credentials)

add_executable(test_metrics ${CMAKE_CURRENT_LIST_DIR}/unit/test_metrics.c)
target_link_libraries(test_metrics PRIVATE cs_common PkgConfig::CMOCKA
    PkgConfig::MHD)
add_test(NAME unit.metrics COMMAND test_metrics)

# The exposition text must satisfy Prometheus' own linter.
find_program(CS_PROMTOOL promtool)
if(CS_PROMTOOL)
    add_test(NAME unit.metrics_promtool COMMAND sh -c
        "text=$($<TARGET_FILE:test_metrics> --print) && [ -n \"$text\" ] && printf '%s\\n' \"$text\" | ${CS_PROMTOOL} check metrics")
endif()

# configstreamd over stand-ins for the three roles.
add_executable(daemon_fake_role
    ${CMAKE_CURRENT_LIST_DIR}/system/daemon_fake_role.c)
target_link_libraries(daemon_fake_role PRIVATE cs_common m)
add_test(NAME system.daemon_supervise
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/system/test_daemon_supervise.sh
        $<TARGET_FILE:configstreamd> $<TARGET_FILE:daemon_fake_role>
        ${CMAKE_SOURCE_DIR}/deploy)
set_tests_properties(system.daemon_supervise PROPERTIES TIMEOUT 90)

# The real group under configstreamd: snapshot, edits, kill -9 of each role.
add_test(NAME system.daemon_group
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/system/test_daemon_group.sh
        ${CMAKE_BINARY_DIR} ${CS_FIXTURES_DIR})
set_tests_properties(system.daemon_group PROPERTIES
    SKIP_RETURN_CODE 77 TIMEOUT 120)

# Every real-world datadog.yaml of the fixtures, end to end.
add_test(NAME system.daemon_real
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/system/test_daemon_real.sh
        ${CMAKE_BINARY_DIR} ${CS_FIXTURES_DIR})
set_tests_properties(system.daemon_real PROPERTIES
    SKIP_RETURN_CODE 77 TIMEOUT 300)

# The counters of /metrics follow streams and a slow consumer.
add_test(NAME system.daemon_telemetry
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/system/test_daemon_telemetry.sh
        ${CMAKE_BINARY_DIR})
set_tests_properties(system.daemon_telemetry PROPERTIES
    SKIP_RETURN_CODE 77 TIMEOUT 120)

# systemd-analyze verify on deploy/systemd.
add_test(NAME system.deploy_systemd
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/system/test_deploy_systemd.sh
        ${CMAKE_SOURCE_DIR}/deploy)
set_tests_properties(system.deploy_systemd PROPERTIES SKIP_RETURN_CODE 77
    TIMEOUT 60)

# The same group under Debian's supervisord, from deploy/supervisord.conf.
add_test(NAME system.deploy_supervisord
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/system/test_deploy_supervisord.sh
        ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR}/deploy)
set_tests_properties(system.deploy_supervisord PROPERTIES
    SKIP_RETURN_CODE 77 TIMEOUT 120)

# The installed programs find each other.
add_test(NAME system.install
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/system/test_install.sh
        ${CMAKE_BINARY_DIR})
set_tests_properties(system.install PROPERTIES TIMEOUT 60)
