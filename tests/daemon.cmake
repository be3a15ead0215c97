# Tests of the daemon area: IPC credentials, telemetry, the configstreamd
# supervisor and the deploy/ files.

add_executable(test_credentials
    ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_credentials.c)
target_link_libraries(test_credentials PRIVATE cs_common PkgConfig::CMOCKA
    PkgConfig::OPENSSL)
add_test(NAME unit.credentials COMMAND test_credentials)
