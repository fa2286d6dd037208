shmkit_test(table_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/schema_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/table_ops_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/bad_input_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/capacity_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/ttl_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/attach_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/hash_golden_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/layout_golden_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/corruption_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/fast_api_test.cc
  LABELS table
  TIMEOUT 300)
target_include_directories(table_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
shmkit_test(table_fork_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/table_fork_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/crash_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/recovery_test.cc
  LABELS table fork
  TIMEOUT 300)
target_include_directories(table_fork_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})

# Longer runs of the same tests, under the "stress" label (tools/test.sh runs
# them in the normal build only).
add_test(NAME table.stress.torn_reads_10s
  COMMAND table_fork_test --gtest_filter=TableFork.ReadersNeverSeeATornRow)
set_tests_properties(table.stress.torn_reads_10s PROPERTIES
  ENVIRONMENT SHMKIT_STRESS_SECONDS=10 LABELS "table;fork;stress" TIMEOUT 120)
add_test(NAME table.stress.crash_3000_kills
  COMMAND table_fork_test --gtest_filter=Crash.EveryWritePathSurvivesAKillAtEveryPoint)
set_tests_properties(table.stress.crash_3000_kills PROPERTIES
  ENVIRONMENT SHMKIT_CRASH_KILLS=3000 LABELS "table;fork;stress" TIMEOUT 300)

# libFuzzer target over damaged segments (see table_fuzz.cc). The top level
# instruments every target when SHMKIT_BUILD_FUZZERS is on; this one also
# links libFuzzer's main.
if(SHMKIT_BUILD_FUZZERS)
  add_executable(table_fuzz ${CMAKE_CURRENT_LIST_DIR}/table_fuzz.cc)
  target_link_libraries(table_fuzz PRIVATE shmkit::shmkit)
  target_link_options(table_fuzz PRIVATE -fsanitize=fuzzer)
  shmkit_warnings(table_fuzz)
endif()
