# A seconds-long smoke of the benchmark (10 subscribers, a fresh daemon on
# loopback): proves bench/run, configstream-bench and the snapshot timer
# still work against the current daemon. It checks that the run completes
# and reports m1..m7; it never judges speed.
if(EXISTS ${CMAKE_SOURCE_DIR}/bench/CMakeLists.txt)
    add_test(NAME bench.smoke
        COMMAND ${CMAKE_SOURCE_DIR}/bench/smoke ${CMAKE_BINARY_DIR}
            ${CS_FIXTURES_DIR} ${CMAKE_CURRENT_BINARY_DIR}/bench-smoke)
    set_tests_properties(bench.smoke PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE)
endif()
