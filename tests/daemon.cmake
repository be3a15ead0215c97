# Tests of the daemon area: IPC credentials, telemetry, the configstreamd
# supervisor and the deploy/ files.

add_executable(test_credentials
    ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_credentials.c)
target_link_libraries(test_credentials PRIVATE cs_common PkgConfig::CMOCKA
    PkgConfig::OPENSSL)
add_test(NAME unit.credentials COMMAND test_credentials)

add_executable(test_metrics ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_metrics.c)
target_link_libraries(test_metrics PRIVATE cs_common PkgConfig::CMOCKA
    PkgConfig::MHD)
add_test(NAME unit.metrics COMMAND test_metrics)

# The exposition text must satisfy Prometheus' own linter.
find_program(CS_PROMTOOL promtool)
if(CS_PROMTOOL)
    add_test(NAME unit.metrics_promtool COMMAND sh -c
        "$<TARGET_FILE:test_metrics> --print | ${CS_PROMTOOL} check metrics")
endif()
