# Frontend and config-stream-client: system tests on loopback.

# Stands in for the resolver and the broker where a test drives the
# store and the session table directly.
add_executable(frontend_seed ${CMAKE_CURRENT_SOURCE_DIR}/system/frontend_seed.c)
target_link_libraries(frontend_seed cs_common m)
