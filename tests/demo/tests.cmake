# The prefork-demo server (tools/prefork-demo). demo_http_parser_test runs
# the HTTP parser in-process; prefork_demo_test runs the real binary (a
# master and its workers, plus curl and wrk, which it skips without), so it
# carries the label "fork".
if(SHMKIT_BUILD_TOOLS)
  shmkit_test(demo_http_parser_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/http_parser_test.cc
    LIBS prefork_demo_lib
    LABELS demo)
  shmkit_test(prefork_demo_test
    SOURCES
      ${CMAKE_CURRENT_LIST_DIR}/demo_test_util.cc
      ${CMAKE_CURRENT_LIST_DIR}/prefork_demo_test.cc
    LABELS demo fork
    TIMEOUT 120)
  target_include_directories(prefork_demo_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
  # tools/ is added after tests/: the generator expression and the
  # dependency resolve once every target exists.
  target_compile_definitions(prefork_demo_test PRIVATE
    PREFORK_DEMO_PATH="$<TARGET_FILE:prefork_demo>"
    DEMO_LUA_PATH="${CMAKE_CURRENT_LIST_DIR}/count_hits.lua")
  add_dependencies(prefork_demo_test prefork_demo)
endif()
