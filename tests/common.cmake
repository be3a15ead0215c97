# Unit tests of the modules in src/common owned by no other area.
add_executable(test_value ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_value.c)
target_link_libraries(test_value cs_common PkgConfig::CMOCKA m)
add_test(NAME unit.value COMMAND test_value)

add_executable(test_log ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_log.c)
target_link_libraries(test_log cs_common PkgConfig::CMOCKA)
add_test(NAME unit.log COMMAND test_log)
