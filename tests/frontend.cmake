# Frontend and config-stream-client: system tests on loopback.

# The request checks: codes and texts of every refusal.
add_executable(test_frontend_auth
    ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_frontend_auth.c
    ${CMAKE_SOURCE_DIR}/src/frontend/auth.c)
target_include_directories(test_frontend_auth PRIVATE
    ${CMAKE_SOURCE_DIR}/src/frontend)
target_link_libraries(test_frontend_auth cs_grpc_util cs_common
    PkgConfig::CMOCKA PkgConfig::OPENSSL)
add_test(NAME unit.frontend_auth COMMAND test_frontend_auth)

# Moves a store's head near the int32 wire id wrap.
add_executable(frontend_store_head
    ${CMAKE_CURRENT_SOURCE_DIR}/system/frontend_store_head.c)
target_link_libraries(frontend_store_head PkgConfig::LMDB)

# Broker, resolver and two frontends on a free port, driven by
# config-stream-client and by the Node client of tests/node (its modules
# come from `npm ci` there; without them the cases are skipped).
find_package(Python3 COMPONENTS Interpreter)
find_program(CS_NODE node)
if(Python3_FOUND AND CS_NODE)
    foreach(case start_order snapshot updates fanout errors registry_disabled
            revoke revoke_stuck changelog_gap keepalive broker_down bad_config
            plaintext wire_wrap slow_consumer sigterm stream_counts
            snapshot_fresh)
        add_test(NAME system.frontend_${case}
            COMMAND ${Python3_EXECUTABLE}
                ${CMAKE_CURRENT_SOURCE_DIR}/system/test_frontend.py
                ${CMAKE_BINARY_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/node ${case})
        set_tests_properties(system.frontend_${case} PROPERTIES
            TIMEOUT 120 SKIP_RETURN_CODE 77)
    endforeach()
endif()
