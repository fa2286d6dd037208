# The shmkit command line (tools/shmkit), run as a real binary. Every test
# spawns processes (the CLI, python3 for JSON and XML checks, bench workers),
# so the binary carries the label "fork".
if(SHMKIT_BUILD_TOOLS)
  shmkit_test(shmkit_cli_test
    SOURCES
      ${CMAKE_CURRENT_LIST_DIR}/cli_test_util.cc
      ${CMAKE_CURRENT_LIST_DIR}/shmkit_cli_test.cc
      ${CMAKE_CURRENT_LIST_DIR}/shmkit_bench_test.cc
    LABELS tools fork
    TIMEOUT 120)
  target_include_directories(shmkit_cli_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
  # tools/ is added after tests/: the generator expression and the
  # dependency resolve once every target exists.
  target_compile_definitions(shmkit_cli_test PRIVATE
    SHMKIT_CLI_PATH="$<TARGET_FILE:shmkit_cli>")
  add_dependencies(shmkit_cli_test shmkit_cli)
endif()
