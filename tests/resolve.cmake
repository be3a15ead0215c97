# Schema, YAML loading, environment layer, resolution and the daemon's own
# settings (src/common/{schema,yaml_load,flatten,envlayer,resolve,config}).
#
# Tests that read fixtures get CS_FIXTURES_DIR as their first argument;
# test_schema also gets the source tree, to check the embedded schema
# against data/default-schema.yaml.
foreach(t yaml schema env resolve config fixtures)
    add_executable(test_${t} ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_${t}.c)
    target_link_libraries(test_${t} PRIVATE cs_common PkgConfig::CMOCKA m)
    set_target_properties(test_${t} PROPERTIES
        RUNTIME_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endforeach()

add_test(NAME unit.yaml COMMAND test_yaml)
add_test(NAME unit.schema COMMAND test_schema ${CMAKE_SOURCE_DIR})
add_test(NAME unit.env COMMAND test_env)
add_test(NAME unit.resolve COMMAND test_resolve)
add_test(NAME unit.config COMMAND test_config)
add_test(NAME unit.fixtures COMMAND test_fixtures ${CS_FIXTURES_DIR})
set_tests_properties(unit.yaml unit.schema unit.env unit.resolve unit.config
    unit.fixtures PROPERTIES TIMEOUT 60)
set_tests_properties(unit.fixtures PROPERTIES SKIP_RETURN_CODE 77)
