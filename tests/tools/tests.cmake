# The shmkit command line (tools/shmkit), run as a real binary. Every test
# spawns processes (the CLI, python3 for JSON and XML checks, bench workers),
# so the binary carries the label "fork".
if(SHMKIT_BUILD_TOOLS)
  shmkit_test(shmkit_cli_test
    SOURCES
      ${CMAKE_CURRENT_LIST_DIR}/cli_test_util.cc
      ${CMAKE_CURRENT_LIST_DIR}/shmkit_cli_test.cc
      ${CMAKE_CURRENT_LIST_DIR}/shmkit_bench_test.cc
      ${CMAKE_CURRENT_LIST_DIR}/shmkit_faults_test.cc
    LABELS tools fork
    TIMEOUT 120)
  target_include_directories(shmkit_cli_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
  # tools/ is added after tests/: the generator expression and the
  # dependency resolve once every target exists.
  target_compile_definitions(shmkit_cli_test PRIVATE
    SHMKIT_CLI_PATH="$<TARGET_FILE:shmkit_cli>")
  add_dependencies(shmkit_cli_test shmkit_cli)
endif()

  # Fault campaigns (`shmkit faults`, tests/README.md): workers killed
  # mid-operation, every few milliseconds, while the supervisor checks what
  # they were acknowledged against the table, the counters and the ring. The
  # exit code is 0 only when every check passes; the seed is printed.
  add_test(NAME tools.faults.campaign_300_kills
    COMMAND shmkit_cli faults --workers=4 --kills=300)
  set_tests_properties(tools.faults.campaign_300_kills PROPERTIES
    LABELS "tools;fork" TIMEOUT 120)
  add_test(NAME tools.stress.faults_3000_kills
    COMMAND shmkit_cli faults --workers=6 --kills=3000 --recovery-kills=20)
  set_tests_properties(tools.stress.faults_3000_kills PROPERTIES
    LABELS "tools;fork;stress" TIMEOUT 600)
