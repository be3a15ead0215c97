# The LMDB store (src/common/store.c) and configstream-dump.
#
# The unit test builds store.c and value.c itself rather than linking
# cs_common, so that -Wl,--wrap seams on mdb_put and mdb_txn_commit apply
# to the store's calls.
set(CS_SRC ${CMAKE_SOURCE_DIR}/src)

add_executable(test_store ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_store.c
    ${CS_SRC}/common/store.c ${CS_SRC}/common/value.c
    ${CS_SRC}/common/fsutil.c)
target_include_directories(test_store PRIVATE ${CS_SRC}/common)
target_link_libraries(test_store PRIVATE cs_proto PkgConfig::LMDB
    PkgConfig::JSONC PkgConfig::CMOCKA Threads::Threads m)
target_link_options(test_store PRIVATE
    -Wl,--wrap=mdb_put -Wl,--wrap=mdb_txn_commit)
add_test(NAME unit.store COMMAND test_store)
set_tests_properties(unit.store PROPERTIES TIMEOUT 120)

# A store with known contents, for the tests of the tools that read one.
add_executable(store-seed ${CMAKE_CURRENT_SOURCE_DIR}/system/store_seed.c
    ${CS_SRC}/common/store.c ${CS_SRC}/common/value.c
    ${CS_SRC}/common/fsutil.c)
target_include_directories(store-seed PRIVATE ${CS_SRC}/common)
target_link_libraries(store-seed PRIVATE cs_proto PkgConfig::LMDB
    PkgConfig::JSONC Threads::Threads m)

add_test(NAME system.dump COMMAND sh
    ${CMAKE_CURRENT_SOURCE_DIR}/system/test_dump.sh
    $<TARGET_FILE:configstream-dump> $<TARGET_FILE:store-seed>)
set_tests_properties(system.dump PROPERTIES TIMEOUT 60)
