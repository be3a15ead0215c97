# Tests of the resolver area: the resolution engine, configstream-resolver
# and configstream-ctl.

add_executable(test_engine ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_engine.c)
target_link_libraries(test_engine PRIVATE cs_engine cs_common
    PkgConfig::CMOCKA m)
add_test(NAME unit.engine COMMAND test_engine)
