# Tests of the resolver area: the resolution engine, configstream-resolver
# and configstream-ctl.

add_executable(test_engine ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_engine.c)
target_link_libraries(test_engine PRIVATE cs_engine cs_common
    PkgConfig::CMOCKA m)
# The store's commit is wrapped so full-map and failed commits can be made.
target_link_options(test_engine PRIVATE
    -Wl,--wrap=cs_store_txn_commit)
add_test(NAME unit.engine COMMAND test_engine)

# System tests: the real resolver, ctl (and configstream-dump when it is
# built) on loopback-only unix sockets in temporary directories.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
set(CS_RESOLVER_TEST_BINS $<TARGET_FILE:configstream-resolver>
    $<TARGET_FILE:configstream-ctl>)
if(TARGET configstream-dump)
    list(APPEND CS_RESOLVER_TEST_BINS $<TARGET_FILE:configstream-dump>)
endif()
foreach(t resolver_reload resolver_ctl resolver_badinput resolver_disk_full)
    add_test(NAME system.${t} COMMAND ${Python3_EXECUTABLE}
        ${CMAKE_CURRENT_SOURCE_DIR}/system/test_${t}.py
        ${CS_RESOLVER_TEST_BINS})
    set_tests_properties(system.${t} PROPERTIES TIMEOUT 120)
endforeach()

if(TARGET configstream-broker)
    add_test(NAME system.ctl_sessions COMMAND ${Python3_EXECUTABLE}
        ${CMAKE_CURRENT_SOURCE_DIR}/system/test_ctl_sessions.py
        $<TARGET_FILE:configstream-resolver>
        $<TARGET_FILE:configstream-ctl> $<TARGET_FILE:configstream-broker>)
    set_tests_properties(system.ctl_sessions PROPERTIES TIMEOUT 60)
endif()
set_tests_properties(system.resolver_disk_full PROPERTIES SKIP_RETURN_CODE 77)
