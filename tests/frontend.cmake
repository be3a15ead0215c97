# Frontend and config-stream-client: system tests on loopback.

# Stands in for the resolver and the broker where a test drives the
# store and the session table directly.
add_executable(frontend_seed ${CMAKE_CURRENT_SOURCE_DIR}/system/frontend_seed.c)
target_link_libraries(frontend_seed cs_common m)

# Broker, resolver and two frontends on a free port, driven by
# config-stream-client and by the Node client of tests/node (its modules
# come from `npm ci` there; without them the cases are skipped).
find_package(Python3 COMPONENTS Interpreter)
find_program(CS_NODE node)
if(Python3_FOUND AND CS_NODE)
    foreach(case start_order snapshot updates fanout errors registry_disabled
            revoke keepalive
            slow_consumer sigterm)
        add_test(NAME system.frontend_${case}
            COMMAND ${Python3_EXECUTABLE}
                ${CMAKE_CURRENT_SOURCE_DIR}/system/test_frontend.py
                ${CMAKE_BINARY_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/node ${case})
        set_tests_properties(system.frontend_${case} PROPERTIES
            TIMEOUT 120 SKIP_RETURN_CODE 77)
    endforeach()
endif()
