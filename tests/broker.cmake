# The broker: shared-memory segment, Remote Agent Registry, broker socket.

add_executable(test_shm ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_shm.c)
target_link_libraries(test_shm PRIVATE cs_common PkgConfig::CMOCKA)
add_test(NAME unit.shm COMMAND test_shm)

add_executable(test_registry ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_registry.c)
target_link_libraries(test_registry PRIVATE cs_registry cs_common
    PkgConfig::CMOCKA)
target_link_options(test_registry PRIVATE -Wl,--wrap=getrandom)
add_test(NAME unit.registry COMMAND test_registry)

# A writer and two reader processes on one session table.
add_executable(broker_shm_stress
    ${CMAKE_CURRENT_SOURCE_DIR}/system/broker_shm_stress.c)
target_link_libraries(broker_shm_stress PRIVATE cs_registry cs_common)
add_test(NAME system.broker_shm_stress COMMAND broker_shm_stress 500000)
set_tests_properties(system.broker_shm_stress PROPERTIES TIMEOUT 300)

# The change word wakes another process promptly, and only on a change.
add_executable(broker_wake ${CMAKE_CURRENT_SOURCE_DIR}/system/broker_wake.c)
target_link_libraries(broker_wake PRIVATE cs_common)
add_test(NAME system.broker_wake COMMAND broker_wake 50)

# configstream-broker killed and restarted under a connected client.
add_executable(broker_restart
    ${CMAKE_CURRENT_SOURCE_DIR}/system/broker_restart.c)
target_link_libraries(broker_restart PRIVATE cs_common)
add_test(NAME system.broker_restart
    COMMAND broker_restart $<TARGET_FILE:configstream-broker>)
set_tests_properties(system.broker_restart PROPERTIES TIMEOUT 60)

# The broker client against an absent, crashed and slow broker.
add_executable(broker_client_timeout
    ${CMAKE_CURRENT_SOURCE_DIR}/system/broker_client_timeout.c)
target_link_libraries(broker_client_timeout PRIVATE cs_common)
add_test(NAME system.broker_client_timeout COMMAND broker_client_timeout)
